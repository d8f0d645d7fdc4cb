//! The gateway's side of a connector: a DataFusion table provider whose scans
//! run as Flight SQL queries on a remote creditgate connector over mTLS.
//!
//! Projection, limit and the filters that are plain `column op literal`
//! comparisons are sent to the connector as SQL; anything else (a function
//! call, a cast of a column, a comparison between columns) is evaluated in the
//! gateway. A filter is pushed only when its SQL means exactly what the
//! gateway meant, literal for literal (see [`pushable_sql`]), so pushdown
//! never changes an answer. Each source has its own deadlines (connect, first
//! batch, total), and every failure names the source it came from as a typed
//! [`SourceError`]; the connector's own words are carried, never interpreted.

mod error;
mod pushdown;
mod scan;
mod source;
mod table;

pub use error::{SourceError, SourceErrorKind};
pub use pushdown::{
    RawColumns, filter_to_sql, is_pushable, literal_to_sql, placeholder_position, pushable_sql, quote_ident,
};
pub use scan::RemoteScanExec;
pub use source::{
    CIRCUIT_FAILURE_THRESHOLD, CIRCUIT_OPEN_FOR, Deadlines, MAX_PREPARED_HANDLES, Reachability, RemoteSource,
    RemoteTableInfo, Statement,
};
pub use table::RemoteTable;
