//! The creditgate connector: an Arrow Flight SQL server that sits next to one
//! department's or platform's data and serves only what that source's config
//! exposes, only to the identities it lists (normally just the gateway).
//!
//! A connector is the source's own control point: the department decides
//! which tables and columns leave, and it keeps its own served-query log
//! (who asked, the SQL, rows, bytes, duration) independent of the gateway.
//!
//! Tables come from Parquet, CSV or SQLite files, or from PostgreSQL and
//! MySQL/MariaDB servers (see [`database`]), where projection, filters and
//! limit run as SQL in the database.

mod config;
pub mod database;
mod dburl;
mod error;
mod exposed;
mod served_log;
mod server;
mod sources;
pub mod statements;

pub use config::{
    ConnectorConfig, DEFAULT_CRL_CHECK_INTERVAL_SECONDS, DEFAULT_MAX_CONNECTION_AGE_SECONDS,
    DEFAULT_MEMORY_LIMIT_BYTES, DEFAULT_QUERY_TIMEOUT_MS, DatabaseSource, TableConfig, TableFormat,
};
pub use dburl::{DatabaseKind, DatabaseUrl};
pub use error::ConnectorError;
pub use exposed::ExposedTable;
pub use served_log::{ServedLog, ServedRecord};
pub use server::{Connector, RunningConnector};
pub use statements::{MAX_STATEMENTS, StatementCounts};
