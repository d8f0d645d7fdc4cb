//! Tables that live in PostgreSQL or MySQL/MariaDB.
//!
//! Built on `datafusion-table-providers`: the provider turns the scan's
//! projection, filters and limit into one SQL statement that the database
//! runs, so a lookup of one subject reads one subject's rows.
//!
//! Around the provider this module adds what a connector needs:
//!
//! * **One pool per distinct connection** ([`Pools`]): every table with the
//!   same URL, password source and timeout shares it.
//! * **A per-query timeout enforced by the database**: PostgreSQL's
//!   `statement_timeout` (a connection option), MariaDB's
//!   `max_statement_time` or MySQL's `max_execution_time` (set on every
//!   connection the pool hands out, [`TimedMysqlPool`]), so a statement that
//!   runs too long is stopped on the server, not only abandoned by the
//!   connector. A deadline on the scan's stream ([`DatabaseScanExec`]),
//!   [`DEADLINE_GRACE`] later, covers a database that stops answering.
//! * **Errors that name the table** and say what went wrong
//!   ([`SourceError`]), mapped to `UNAVAILABLE`/`DEADLINE_EXCEEDED` by the
//!   connector's single error mapping.
//! * **Only filters the database evaluates exactly as DataFusion would**
//!   ([`DbPushdown`]). The provider would hand the database every filter it
//!   can unparse; this module decides instead, column by column, from the
//!   column's database type: comparisons of integers, declared-scale
//!   decimals, dates and timestamps (in the ranges both sides read the same
//!   way) go to the database as they are; string equality, `IN` and `LIKE`
//!   go as a pre-filter that the connector checks again (MariaDB compares
//!   with trailing spaces ignored and, under `_ci` collations, without case;
//!   PostgreSQL's `char(n)` pads); float comparisons go only with finite,
//!   non-zero literals (DataFusion orders `-0.0 < 0.0` and NaNs by IEEE
//!   total order, the databases do not; every NaN read from PostgreSQL, which
//!   has only one, is served as the canonical positive NaN, ordered above
//!   every number on both sides); everything else — string ordering (it
//!   depends on the collation), `<>`/`NOT` on strings, `ILIKE`, a literal with
//!   a NUL or a backslash (MariaDB reads backslash escapes, and the SQL
//!   writer takes `\'` for an escaped quote, which would end a PostgreSQL
//!   literal early), a `LIKE` ending in a lone escape,
//!   any function — is evaluated by the connector's own engine. PostgreSQL
//!   sessions run with `TimeZone=UTC` and `standard_conforming_strings=on`
//!   so that timestamp and string literals mean what they say.
//! * **Plain Arrow types**: `LargeUtf8` → `Utf8`, nanosecond timestamps and
//!   times → microseconds (both databases store microseconds), MySQL
//!   `BOOLEAN` (`TINYINT(1)`) and `BIT(1)` → `Boolean`.
//! * **Start-up that survives a broken source**: a table whose database is
//!   down, or whose table or columns do not exist, is logged at `error` and
//!   registered as an [`UnavailableTable`] with its configured columns (typed
//!   `Null`); every query on it fails with that reason, naming the table,
//!   while the connector keeps serving its other tables. Restart the
//!   connector once the database is fixed.
//!
//! Passwords are read once, at start-up, from `password_env` or
//! `password_file`; they are handed to the driver only and never logged.
//! Logged URLs are [`DatabaseUrl`]'s `Display`, which has no password.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Column, ScalarValue, TableReference};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::expr::{Between, InList, Like};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning, PlanProperties,
};
use datafusion::sql::unparser::dialect::MySqlDialect;
use datafusion_table_providers::mysql::DynMySQLConnectionPool;
use datafusion_table_providers::postgres::PostgresTableFactory;
use datafusion_table_providers::sql::db_connection_pool::dbconnection::DbConnection;
use datafusion_table_providers::sql::db_connection_pool::mysqlpool::MySQLConnectionPool;
use datafusion_table_providers::sql::db_connection_pool::postgrespool::PostgresConnectionPool;
use datafusion_table_providers::sql::db_connection_pool::{DbConnectionPool, JoinPushDown};
use datafusion_table_providers::sql::sql_provider_datafusion::SqlTable;
use datafusion_table_providers::util::secrets::to_secret_map;
use futures::Stream;

use crate::config::{DatabaseSource, TableConfig, TableFormat};
use crate::dburl::{DatabaseKind, DatabaseUrl};

/// How long opening a pool (first connection included) may take at start-up.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections per pool.
pub const DEFAULT_POOL_SIZE: usize = 8;
/// Longest database error text passed on to callers.
const MAX_ERROR_CHARS: usize = 500;
/// How long after a table's query timeout the connector stops waiting for
/// the database itself. The database's own limit normally ends the
/// statement first (which frees the server, and names the cause); this
/// deadline is the backstop for a database that stops answering.
pub const DEADLINE_GRACE: Duration = Duration::from_secs(1);
/// What the databases say when their statement time limit stopped a query:
/// PostgreSQL (`canceling statement due to statement timeout`), MariaDB
/// (error 1969, `max_statement_time exceeded`) and MySQL (error 3024).
const SERVER_TIMEOUT_MARKERS: &[&str] =
    &["statement timeout", "max_statement_time exceeded", "maximum statement execution time exceeded"];

/// What went wrong with a database-backed table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceErrorKind {
    /// The database cannot be reached, or the table could not be opened.
    Unavailable,
    /// The query ran past its timeout.
    Timeout,
    /// The database refused or failed the query.
    Failed,
}

/// An error of a database-backed table; always names the table.
#[derive(Debug, Clone, thiserror::Error)]
#[error("table `{table}`: {message}")]
pub struct SourceError {
    /// The table callers use.
    pub table: String,
    /// What kind of failure.
    pub kind: SourceErrorKind,
    /// What went wrong (no password, no URL with credentials).
    pub message: String,
}

impl SourceError {
    fn new(table: &str, kind: SourceErrorKind, message: impl Into<String>) -> SourceError {
        SourceError { table: table.to_string(), kind, message: message.into() }
    }

    fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }
}

/// One line, capped: provider errors come with multi-line hints.
fn tidy(text: &str) -> String {
    let flat = text.split('\n').map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
    match flat.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    url: DatabaseUrl,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    timeout_ms: u64,
}

#[derive(Debug, Clone)]
enum Pool {
    Postgres(Arc<PostgresConnectionPool>),
    Mysql(Arc<TimedMysqlPool>),
}

/// The statement that limits a MySQL/MariaDB session's statements to
/// `timeout_ms`: MariaDB's `max_statement_time` (seconds, any statement),
/// MySQL's `max_execution_time` (milliseconds, `SELECT`s, which is all a
/// connector sends). `version` is the server's `VERSION()`.
fn mysql_session_limit(version: &str, timeout_ms: u64) -> String {
    if version.to_ascii_lowercase().contains("mariadb") {
        // MariaDB accepts up to one year.
        let ms = timeout_ms.min(31_536_000_000);
        format!("SET SESSION max_statement_time = {}.{:03}", ms / 1_000, ms % 1_000)
    } else {
        format!("SET SESSION max_execution_time = {}", timeout_ms.min(u64::from(u32::MAX)))
    }
}

/// A MySQL/MariaDB pool that puts the table's query timeout on every
/// connection it hands out, so the server stops a statement that runs too
/// long. (Set at every checkout: the driver resets a connection returned to
/// the pool, which clears session variables.)
pub struct TimedMysqlPool {
    inner: Arc<MySQLConnectionPool>,
    limit: String,
}

impl fmt::Debug for TimedMysqlPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimedMysqlPool").field("limit", &self.limit).finish_non_exhaustive()
    }
}

impl TimedMysqlPool {
    /// Wraps `inner`, asking the server which limit it understands and
    /// checking that it accepts it.
    async fn new(inner: MySQLConnectionPool, timeout_ms: u64) -> std::result::Result<TimedMysqlPool, String> {
        use mysql_async::prelude::Queryable;
        let connection = inner.connect_direct().await.map_err(|e| tidy(&e.to_string()))?;
        let mut conn = connection.conn.lock().await;
        let version: Option<String> = conn.query_first("SELECT VERSION()").await.map_err(|e| tidy(&e.to_string()))?;
        let limit = mysql_session_limit(version.as_deref().unwrap_or_default(), timeout_ms);
        conn.query_drop(&limit).await.map_err(|e| format!("cannot set the query timeout: {}", tidy(&e.to_string())))?;
        drop(conn);
        Ok(TimedMysqlPool { inner: Arc::new(inner), limit })
    }
}

#[async_trait]
impl DbConnectionPool<mysql_async::Conn, &'static (dyn mysql_async::prelude::ToValue + Sync)> for TimedMysqlPool {
    async fn connect(
        &self,
    ) -> std::result::Result<
        Box<dyn DbConnection<mysql_async::Conn, &'static (dyn mysql_async::prelude::ToValue + Sync)>>,
        Box<dyn std::error::Error + Send + Sync>,
    > {
        use mysql_async::prelude::Queryable;
        let connection = self.inner.connect_direct().await?;
        connection.conn.lock().await.query_drop(&self.limit).await?;
        Ok(Box::new(connection))
    }

    fn join_push_down(&self) -> JoinPushDown {
        DbConnectionPool::<mysql_async::Conn, &'static (dyn mysql_async::prelude::ToValue + Sync)>::join_push_down(
            self.inner.as_ref(),
        )
    }
}

/// The connection pools of one connector, keyed by connection; a failed
/// connection attempt is remembered too, so ten tables on a dead server
/// cost one timeout, not ten.
#[derive(Debug, Default)]
pub struct Pools {
    pools: HashMap<PoolKey, std::result::Result<Pool, String>>,
}

impl Pools {
    /// Number of distinct pools opened (tests).
    pub fn len(&self) -> usize {
        self.pools.values().filter(|p| p.is_ok()).count()
    }

    /// Whether no pool was opened.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn get(&mut self, url: &DatabaseUrl, db: &DatabaseSource) -> std::result::Result<Pool, String> {
        let key = PoolKey {
            url: url.clone(),
            password_env: db.password_env.clone(),
            password_file: db.password_file.clone(),
            timeout_ms: db.query_timeout_ms,
        };
        if let Some(pool) = self.pools.get(&key) {
            return pool.clone();
        }
        let opened = match tokio::time::timeout(DEFAULT_CONNECT_TIMEOUT, open_pool(url, db)).await {
            Ok(result) => result,
            Err(_) => Err(format!("no connection within {} s", DEFAULT_CONNECT_TIMEOUT.as_secs())),
        };
        match &opened {
            Ok(_) => tracing::info!(database = %url, "database pool opened"),
            Err(e) => tracing::error!(database = %url, error = %e, "cannot connect to database"),
        }
        self.pools.insert(key, opened.clone());
        opened
    }
}

fn read_password(db: &DatabaseSource) -> std::result::Result<Option<String>, String> {
    if let Some(var) = &db.password_env {
        return match std::env::var(var) {
            Ok(value) => Ok(Some(value)),
            Err(_) => Err(format!("password_env: environment variable `{var}` is not set")),
        };
    }
    if let Some(file) = &db.password_file {
        return match std::fs::read_to_string(file) {
            Ok(text) => Ok(Some(text.trim_end_matches(['\n', '\r']).to_string())),
            Err(e) => Err(format!("password_file {}: {}", file.display(), e.kind())),
        };
    }
    Ok(None)
}

async fn open_pool(url: &DatabaseUrl, db: &DatabaseSource) -> std::result::Result<Pool, String> {
    let password = read_password(db)?;
    let mut params: HashMap<String, String> = HashMap::new();
    params.insert("host".into(), url.host.clone());
    params.insert("user".into(), url.user.clone());
    params.insert("db".into(), url.database.clone());
    params.insert("sslmode".into(), url.sslmode.clone());
    if let Some(password) = password {
        params.insert("pass".into(), password);
    }
    // Errors of the drivers never contain the password; they may name host and user.
    match url.kind {
        DatabaseKind::Postgres => {
            params.insert("port".into(), url.port.to_string());
            params.insert("connection_pool_size".into(), DEFAULT_POOL_SIZE.to_string());
            params.insert("application_name".into(), "creditgate-connector".into());
            params.insert(
                "options".into(),
                // UTC and standard strings: the unparsed SQL writes timestamp
                // literals as UTC wall-clock times and strings without
                // backslash escapes (see `DbPushdown`).
                format!(
                    "-c statement_timeout={} -c default_transaction_read_only=on -c TimeZone=UTC \
                     -c standard_conforming_strings=on",
                    db.query_timeout_ms
                ),
            );
            let pool = PostgresConnectionPool::new(to_secret_map(params)).await.map_err(|e| tidy(&e.to_string()))?;
            Ok(Pool::Postgres(Arc::new(pool)))
        }
        DatabaseKind::Mysql => {
            params.insert("tcp_port".into(), url.port.to_string());
            params.insert("pool_min".into(), "0".into());
            params.insert("pool_max".into(), DEFAULT_POOL_SIZE.to_string());
            let pool = MySQLConnectionPool::new(to_secret_map(params)).await.map_err(|e| tidy(&e.to_string()))?;
            Ok(Pool::Mysql(Arc::new(TimedMysqlPool::new(pool, db.query_timeout_ms).await?)))
        }
    }
}

/// Opens a `postgres`/`mysql` table. Never fails: a table that cannot be
/// opened becomes an [`UnavailableTable`] (logged at `error`), so one broken
/// source table does not take the connector down.
pub(crate) async fn open_database_table(table: &TableConfig, pools: &mut Pools) -> Arc<dyn TableProvider> {
    match try_open(table, pools).await {
        Ok(provider) => provider,
        Err(reason) => {
            tracing::error!(table = %table.name, error = %reason, "table unavailable; serving the other tables");
            Arc::new(UnavailableTable::new(&table.name, &table.columns, reason))
        }
    }
}

async fn try_open(table: &TableConfig, pools: &mut Pools) -> std::result::Result<Arc<dyn TableProvider>, String> {
    let (kind, db) = match &table.format {
        TableFormat::Postgres(db) => (DatabaseKind::Postgres, db),
        TableFormat::Mysql(db) => (DatabaseKind::Mysql, db),
        TableFormat::Parquet | TableFormat::Csv | TableFormat::Sqlite => {
            return Err("not a database table".to_string());
        }
    };
    let url = DatabaseUrl::parse(kind, &db.connection).map_err(|e| format!("connection: {e}"))?;
    let pool = pools.get(&url, db).await.map_err(|e| format!("cannot connect to {url}: {e}"))?;
    let reference = TableReference::partial(db.schema.as_str(), table.source_table());
    let shown = format!("{}.{}", db.schema, table.source_table());
    let (inner, facts) = match pool {
        Pool::Postgres(pool) => {
            let facts = postgres_columns(&pool, &db.schema, table.source_table())
                .await
                .map_err(|e| format!("cannot read the columns of `{shown}` in {url}: {e}"))?;
            let inner = PostgresTableFactory::new(pool)
                .table_provider(reference)
                .await
                .map_err(|e| format!("cannot open `{shown}` in {url}: {}", tidy(&e.to_string())))?;
            (inner, facts)
        }
        Pool::Mysql(pool) => {
            let facts = mysql_columns(&pool.inner, &db.schema, table.source_table())
                .await
                .map_err(|e| format!("cannot read the columns of `{shown}` in {url}: {e}"))?;
            // The provider's `MySQLTable` is this same `SqlTable` over its own
            // pool type; built directly, its scans use the timed pool.
            let timed: Arc<DynMySQLConnectionPool> = pool;
            let inner = SqlTable::new("mysql", &timed, reference)
                .await
                .map_err(|e| format!("cannot open `{shown}` in {url}: {}", tidy(&e.to_string())))?
                .with_dialect(Arc::new(MySqlDialect {}));
            (Arc::new(inner) as Arc<dyn TableProvider>, facts)
        }
    };
    let wrapped = DatabaseTable::new(&table.name, inner, kind, facts, Duration::from_millis(db.query_timeout_ms));
    let exposed = crate::exposed::ExposedTable::try_new(Arc::new(wrapped), &table.columns)
        .map_err(|e| format!("`{shown}` in {url}: {}", e.strip_backtrace()))?;
    Ok(Arc::new(exposed))
}

/// What the pushdown rules need to know about one database column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnFacts {
    /// The database's type name, lower case (`information_schema`'s
    /// `data_type`: `integer`, `character varying`, `datetime`, …).
    pub db_type: String,
    /// MariaDB/MySQL: declared `BOOLEAN` (= `TINYINT(1)`) or `BIT(1)`, read
    /// as Arrow `Boolean` although the database holds an integer.
    pub mysql_boolean: bool,
    /// MariaDB/MySQL: the column's character set (`utf8mb4`, …).
    pub charset: Option<String>,
    /// PostgreSQL `numeric`: the declared scale (`None` for a bare
    /// `numeric`, whose values the provider rounds to a fixed scale).
    pub numeric_scale: Option<i64>,
    /// PostgreSQL `numeric`: the declared precision. The provider reads
    /// through a 96-bit decimal, so values of more than
    /// [`PG_EXACT_NUMERIC_DIGITS`] digits arrive rounded.
    pub numeric_precision: Option<i64>,
    /// PostgreSQL: whether the column's collation is deterministic
    /// (equal only when byte-equal; `LIKE` is refused otherwise).
    pub deterministic: bool,
    /// Text compared and ordered byte by byte, as Arrow does, with trailing
    /// spaces significant: PostgreSQL `COLLATE "C"`/`"POSIX"`/`ucs_basic`,
    /// MariaDB `utf8mb4_nopad_bin`, MySQL `utf8mb4_0900_bin`.
    pub byte_ordered: bool,
}

/// Digits of a PostgreSQL `numeric` the provider reads exactly (it goes
/// through `rust_decimal`'s 96-bit mantissa); wider columns arrive rounded,
/// so the database's exact comparisons would disagree with the values the
/// connector serves.
pub const PG_EXACT_NUMERIC_DIGITS: i64 = 28;

/// Quotes `text` as a SQL string literal (`'` doubled); only for the fixed
/// catalogue queries below, whose values come from the connector's config.
fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The columns of a PostgreSQL table, from `information_schema`.
async fn postgres_columns(
    pool: &PostgresConnectionPool,
    schema: &str,
    table: &str,
) -> std::result::Result<HashMap<String, ColumnFacts>, String> {
    let connection = pool.connect_direct().await.map_err(|e| tidy(&e.to_string()))?;
    let sql = format!(
        "SELECT c.column_name::text, c.data_type::text, \
                CASE WHEN c.data_type = 'numeric' THEN c.numeric_scale::int8 END, \
                CASE WHEN c.data_type = 'numeric' THEN c.numeric_precision::int8 END, \
                COALESCE((SELECT bool_and(co.collisdeterministic) FROM pg_catalog.pg_collation co \
                          WHERE co.collname = c.collation_name), true), \
                COALESCE(c.collation_name::text, '') \
         FROM information_schema.columns c WHERE c.table_schema = {} AND c.table_name = {}",
        sql_string(schema),
        sql_string(table)
    );
    let rows = connection.conn.query(sql.as_str(), &[]).await.map_err(|e| tidy(&e.to_string()))?;
    let mut out = HashMap::new();
    for row in rows {
        let name: String = row.try_get(0).map_err(|e| tidy(&e.to_string()))?;
        let db_type: String = row.try_get(1).map_err(|e| tidy(&e.to_string()))?;
        let numeric_scale: Option<i64> = row.try_get(2).map_err(|e| tidy(&e.to_string()))?;
        let numeric_precision: Option<i64> = row.try_get(3).map_err(|e| tidy(&e.to_string()))?;
        let deterministic: bool = row.try_get(4).map_err(|e| tidy(&e.to_string()))?;
        let collation: String = row.try_get(5).map_err(|e| tidy(&e.to_string()))?;
        let facts = ColumnFacts {
            db_type: db_type.to_ascii_lowercase(),
            numeric_scale,
            numeric_precision,
            deterministic,
            byte_ordered: deterministic && matches!(collation.as_str(), "C" | "POSIX" | "ucs_basic"),
            ..Default::default()
        };
        out.insert(name, facts);
    }
    Ok(out)
}

/// One row of [`mysql_columns`]' catalogue query: name, column type, data
/// type, character set, collation.
type MysqlColumnRow = (String, String, String, Option<String>, Option<String>);

/// The columns of a MariaDB/MySQL table, from `information_schema`;
/// `BOOLEAN` (= `TINYINT(1)`) and `BIT(1)` columns are marked, since the
/// provider reads them as integers.
async fn mysql_columns(
    pool: &MySQLConnectionPool,
    schema: &str,
    table: &str,
) -> std::result::Result<HashMap<String, ColumnFacts>, String> {
    use mysql_async::prelude::Queryable;
    let connection = pool.connect_direct().await.map_err(|e| tidy(&e.to_string()))?;
    let mut conn = connection.conn.lock().await;
    let rows: Vec<MysqlColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, CHARACTER_SET_NAME, COLLATION_NAME \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (schema, table),
        )
        .await
        .map_err(|e| tidy(&e.to_string()))?;
    Ok(rows
        .into_iter()
        .map(|(name, column_type, data_type, charset, collation)| {
            let column_type = column_type.to_ascii_lowercase();
            let mysql_boolean = column_type.starts_with("tinyint(1)") || column_type == "bit(1)";
            let facts = ColumnFacts {
                db_type: data_type.to_ascii_lowercase(),
                mysql_boolean,
                charset: charset.map(|c| c.to_ascii_lowercase()),
                numeric_scale: None,
                numeric_precision: None,
                deterministic: true,
                byte_ordered: matches!(collation.as_deref(), Some("utf8mb4_nopad_bin" | "utf8mb4_0900_bin")),
            };
            (name, facts)
        })
        .collect())
}

/// How faithfully the database evaluates a filter, compared with DataFusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fidelity {
    /// The database keeps exactly the rows DataFusion would.
    Exact,
    /// The database keeps at least those rows (it may keep more); the
    /// connector's engine applies the filter again.
    Superset,
    /// Neither: the connector's engine evaluates it.
    No,
}

impl Fidelity {
    /// Of `a AND b` and of `a OR b`: exact if both are, a superset if both
    /// are at least that.
    fn combine(self, other: Fidelity) -> Fidelity {
        match (self, other) {
            (Fidelity::No, _) | (_, Fidelity::No) => Fidelity::No,
            (Fidelity::Exact, Fidelity::Exact) => Fidelity::Exact,
            _ => Fidelity::Superset,
        }
    }

    fn pushdown(self) -> TableProviderFilterPushDown {
        match self {
            Fidelity::Exact => TableProviderFilterPushDown::Exact,
            Fidelity::Superset => TableProviderFilterPushDown::Inexact,
            Fidelity::No => TableProviderFilterPushDown::Unsupported,
        }
    }
}

/// A column as the pushdown rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    Decimal,
    Float,
    Boolean,
    /// `text`/`varchar` (PostgreSQL), `char`/`varchar`/`text` in `utf8mb4`
    /// (MariaDB); `exact` when compared byte by byte
    /// ([`ColumnFacts::byte_ordered`]).
    Text {
        /// Compared and ordered as Arrow does.
        exact: bool,
    },
    Date,
    /// Without a time zone: PostgreSQL `timestamp`, MariaDB `datetime`.
    Timestamp,
    /// PostgreSQL `timestamptz`, read as UTC.
    TimestampUtc,
    /// Anything else: only `IS [NOT] NULL` is pushed.
    Other,
}

/// Decides which filters on one database table the database may evaluate
/// (see the module docs for the rules and why).
#[derive(Debug, Clone)]
pub struct DbPushdown {
    kind: DatabaseKind,
    columns: HashMap<String, (Kind, ColumnFacts)>,
}

impl DbPushdown {
    /// Rules for a table of `kind` whose columns have the Arrow types of
    /// `schema` (after [`plain_type`]) and the database facts `facts`.
    fn new(kind: DatabaseKind, schema: &Schema, facts: &HashMap<String, ColumnFacts>) -> DbPushdown {
        let columns = schema
            .fields()
            .iter()
            .filter_map(|field| {
                let facts = facts.get(field.name())?.clone();
                Some((field.name().clone(), (column_kind(kind, field.data_type(), &facts), facts)))
            })
            .collect();
        DbPushdown { kind, columns }
    }

    fn column(&self, expr: &Expr) -> Option<Kind> {
        let Expr::Column(Column { name, .. }) = expr else { return None };
        self.columns.get(name).map(|(kind, _)| *kind)
    }

    fn facts(&self, expr: &Expr) -> Option<&ColumnFacts> {
        let Expr::Column(Column { name, .. }) = expr else { return None };
        self.columns.get(name).map(|(_, facts)| facts)
    }

    /// The fidelity of `filter` at the database.
    fn classify(&self, filter: &Expr) -> Fidelity {
        match filter {
            Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
                self.classify(left).combine(self.classify(right))
            }
            // OR keeps the rows of either side: a superset of each is a
            // superset of the union.
            Expr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => {
                self.classify(left).combine(self.classify(right))
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match (self.column(left), self.column(right)) {
                (Some(kind), None) => self.compare(kind, *op, right),
                (None, Some(kind)) => match op.swap() {
                    Some(swapped) => self.compare(kind, swapped, left),
                    None => Fidelity::No,
                },
                _ => Fidelity::No,
            },
            // NOT of a superset is not a subset of anything useful.
            Expr::Not(inner) => match self.classify(inner) {
                Fidelity::Exact => Fidelity::Exact,
                _ => Fidelity::No,
            },
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => match self.column(inner) {
                Some(_) => Fidelity::Exact,
                None => Fidelity::No,
            },
            Expr::IsTrue(inner)
            | Expr::IsFalse(inner)
            | Expr::IsNotTrue(inner)
            | Expr::IsNotFalse(inner)
            | Expr::IsUnknown(inner)
            | Expr::IsNotUnknown(inner)
                if self.column(inner) == Some(Kind::Boolean) =>
            {
                Fidelity::Exact
            }
            // A bare boolean column: MariaDB's `WHERE b` is `b <> 0`, which
            // is how its integer is read as a boolean.
            Expr::Column(_) if self.column(filter) == Some(Kind::Boolean) => Fidelity::Exact,
            Expr::InList(InList { expr, list, negated }) => {
                let Some(kind) = self.column(expr) else { return Fidelity::No };
                if list.is_empty() {
                    return Fidelity::No;
                }
                let op = if *negated { Operator::NotEq } else { Operator::Eq };
                let each = list
                    .iter()
                    .map(|v| if is_null_literal(v) { Fidelity::Exact } else { self.compare(kind, op, v) })
                    .fold(Fidelity::Exact, Fidelity::combine);
                if *negated && each != Fidelity::Exact { Fidelity::No } else { each }
            }
            Expr::Between(Between { expr, negated, low, high }) => {
                let Some(kind) = self.column(expr) else { return Fidelity::No };
                let both = self.compare(kind, Operator::GtEq, low).combine(self.compare(kind, Operator::LtEq, high));
                let strict = self.compare(kind, Operator::Lt, low).combine(self.compare(kind, Operator::Gt, high));
                match (*negated, both, strict) {
                    (false, both, _) => both,
                    (true, Fidelity::Exact, Fidelity::Exact) => Fidelity::Exact,
                    (true, _, _) => Fidelity::No,
                }
            }
            Expr::Like(like) => self.like(like),
            _ => Fidelity::No,
        }
    }

    /// `column op literal` on a column of `kind`.
    fn compare(&self, kind: Kind, op: Operator, literal: &Expr) -> Fidelity {
        let Expr::Literal(value, None) = literal else { return Fidelity::No };
        if value.is_null() {
            return Fidelity::No;
        }
        let ordering = matches!(op, Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq);
        if !matches!(op, Operator::Eq | Operator::NotEq) && !ordering {
            return Fidelity::No;
        }
        let mysql = self.kind == DatabaseKind::Mysql;
        match (kind, value) {
            (
                Kind::Integer,
                ScalarValue::Int8(_)
                | ScalarValue::Int16(_)
                | ScalarValue::Int32(_)
                | ScalarValue::Int64(_)
                | ScalarValue::UInt8(_)
                | ScalarValue::UInt16(_)
                | ScalarValue::UInt32(_)
                | ScalarValue::UInt64(_),
            ) => Fidelity::Exact,
            (Kind::Decimal, ScalarValue::Decimal128(Some(_), _, scale)) if *scale >= 0 => Fidelity::Exact,
            (Kind::Date, ScalarValue::Date32(Some(days))) if date_in_range(i64::from(*days), mysql) => Fidelity::Exact,
            (Kind::Timestamp, ScalarValue::TimestampMicrosecond(Some(micros), None))
                if timestamp_in_range(*micros, mysql) =>
            {
                Fidelity::Exact
            }
            (Kind::TimestampUtc, ScalarValue::TimestampMicrosecond(Some(micros), Some(tz)))
                if matches!(tz.as_ref(), "UTC" | "+00:00") && timestamp_in_range(*micros, false) =>
            {
                Fidelity::Exact
            }
            // MariaDB holds no NaN. PostgreSQL has one NaN, equal to itself
            // and above every number; the connector reads it as the
            // canonical NaN ([`canonical_nans`]), which DataFusion orders
            // the same way (a NaN with the sign bit, which DataFusion would
            // order below every number, never reaches it).
            (Kind::Float, ScalarValue::Float64(Some(v))) if float_literal_ok(*v, mysql) => Fidelity::Exact,
            (Kind::Boolean, ScalarValue::Boolean(Some(_))) if !mysql && !ordering => Fidelity::Exact,
            (Kind::Text { exact: true }, ScalarValue::Utf8(Some(text))) if self.text_literal_ok(text) => {
                Fidelity::Exact
            }
            // Equal under a padding or case-blind collation includes equal.
            (Kind::Text { exact: false }, ScalarValue::Utf8(Some(text)))
                if op == Operator::Eq && self.text_literal_ok(text) =>
            {
                Fidelity::Superset
            }
            _ => Fidelity::No,
        }
    }

    fn text_literal_ok(&self, text: &str) -> bool {
        // PostgreSQL text cannot hold NUL; a MariaDB string literal reads
        // backslash escapes; and the SQL writer (sqlparser) takes a quote
        // after a backslash as already escaped and does not double it, so
        // `a\' OR TRUE --` would end the literal early in PostgreSQL too.
        !text.contains('\0') && !text.contains('\\')
    }

    fn like(&self, like: &Like) -> Fidelity {
        let Like { negated, expr, pattern, escape_char, case_insensitive } = like;
        let exact = match self.column(expr) {
            Some(Kind::Text { exact }) => exact,
            _ => return Fidelity::No,
        };
        // Case folding differs between engines; NOT of a superset is nothing.
        if *case_insensitive || (*negated && !exact) {
            return Fidelity::No;
        }
        let Expr::Literal(ScalarValue::Utf8(Some(pattern)), None) = pattern.as_ref() else { return Fidelity::No };
        if !self.text_literal_ok(pattern) {
            return Fidelity::No;
        }
        let facts_ok = self.facts(expr).is_some_and(|f| f.deterministic);
        let escape_ok = matches!((self.kind, escape_char), (_, None) | (DatabaseKind::Postgres, Some('\\')));
        // PostgreSQL refuses a pattern that ends in a lone escape, DataFusion
        // reads it as a literal backslash.
        let trailing = pattern.chars().rev().take_while(|c| *c == '\\').count();
        match (facts_ok && escape_ok && trailing % 2 == 0, exact) {
            (false, _) => Fidelity::No,
            (true, true) => Fidelity::Exact,
            (true, false) => Fidelity::Superset,
        }
    }
}

fn is_null_literal(expr: &Expr) -> bool {
    matches!(expr, Expr::Literal(v, None) if v.is_null())
}

/// What a column is for the pushdown rules, from its Arrow type and its
/// database type: both must agree, or nothing but `IS [NOT] NULL` is pushed.
fn column_kind(kind: DatabaseKind, data_type: &DataType, facts: &ColumnFacts) -> Kind {
    let db = facts.db_type.as_str();
    let postgres = kind == DatabaseKind::Postgres;
    match data_type {
        DataType::Boolean if postgres && db == "boolean" => Kind::Boolean,
        // A MariaDB boolean is an integer to the provider, which refuses to
        // plan `WHERE b` over it: only `IS [NOT] NULL` goes to the database.
        DataType::Boolean if !postgres && facts.mysql_boolean => Kind::Other,
        t if t.is_integer() && postgres && matches!(db, "smallint" | "integer" | "bigint") => Kind::Integer,
        t if t.is_integer()
            && !postgres
            && !facts.mysql_boolean
            && matches!(db, "tinyint" | "smallint" | "mediumint" | "int" | "bigint") =>
        {
            Kind::Integer
        }
        DataType::Decimal128(_, scale) if *scale >= 0 && postgres && db == "numeric" => {
            match (facts.numeric_precision, facts.numeric_scale) {
                (Some(precision), Some(declared))
                    if declared == i64::from(*scale) && precision <= PG_EXACT_NUMERIC_DIGITS =>
                {
                    Kind::Decimal
                }
                _ => Kind::Other,
            }
        }
        DataType::Decimal128(_, scale) if *scale >= 0 && !postgres && db == "decimal" => Kind::Decimal,
        DataType::Float64 if (postgres && db == "double precision") || (!postgres && db == "double") => Kind::Float,
        DataType::Utf8 if postgres && matches!(db, "text" | "character varying") => {
            Kind::Text { exact: facts.byte_ordered }
        }
        // MariaDB `char` drops trailing spaces when read, and compares them
        // away: never exact.
        DataType::Utf8
            if !postgres
                && matches!(db, "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext")
                && facts.charset.as_deref() == Some("utf8mb4") =>
        {
            Kind::Text { exact: facts.byte_ordered && db != "char" }
        }
        DataType::Date32 if db == "date" => Kind::Date,
        DataType::Timestamp(TimeUnit::Microsecond, None)
            if (postgres && db == "timestamp without time zone") || (!postgres && db == "datetime") =>
        {
            Kind::Timestamp
        }
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz))
            if postgres && db == "timestamp with time zone" && matches!(tz.as_ref(), "UTC" | "+00:00") =>
        {
            Kind::TimestampUtc
        }
        _ => Kind::Other,
    }
}

/// Days from 1970-01-01 of the first and after-last dates both databases
/// read the way DataFusion writes them (`YYYY-MM-DD`, four-digit years):
/// 0001-01-01 ..= 9999-12-31, MariaDB from 1000-01-01.
const DAY_0001_01_01: i64 = -719_162;
const DAY_1000_01_01: i64 = -354_285;
const DAY_10000_01_01: i64 = 2_932_897;

fn date_in_range(days: i64, mysql: bool) -> bool {
    let first = if mysql { DAY_1000_01_01 } else { DAY_0001_01_01 };
    (first..DAY_10000_01_01).contains(&days)
}

/// A timestamp literal the database reads back exactly: a date in range,
/// and for MariaDB whole seconds (`CAST(… AS DATETIME)` drops fractions).
fn timestamp_in_range(micros: i64, mysql: bool) -> bool {
    const PER_DAY: i64 = 86_400_000_000;
    date_in_range(micros.div_euclid(PER_DAY), mysql) && (!mysql || micros.rem_euclid(1_000_000) == 0)
}

/// A float literal both databases compare as DataFusion does: finite and
/// not ±0.0 (DataFusion orders `-0.0 < 0.0`); for MariaDB also of a size
/// whose decimal spelling it reads as an exact-value literal.
fn float_literal_ok(v: f64, mysql: bool) -> bool {
    v.is_finite() && v != 0.0 && (!mysql || (1e-15..1e15).contains(&v.abs()))
}

fn plain_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        DataType::Timestamp(TimeUnit::Nanosecond, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
        DataType::Time64(TimeUnit::Nanosecond) => DataType::Time64(TimeUnit::Microsecond),
        DataType::Dictionary(_, value) => plain_type(value),
        other => other.clone(),
    }
}

/// A database table with plain Arrow types, guarded scans and only exact
/// filters pushed to the database ([`DbPushdown`]).
#[derive(Debug)]
pub struct DatabaseTable {
    name: String,
    inner: Arc<dyn TableProvider>,
    schema: SchemaRef,
    timeout: Duration,
    pushdown: DbPushdown,
}

impl DatabaseTable {
    fn new(
        name: &str,
        inner: Arc<dyn TableProvider>,
        kind: DatabaseKind,
        facts: HashMap<String, ColumnFacts>,
        timeout: Duration,
    ) -> DatabaseTable {
        let fields: Vec<Field> = inner
            .schema()
            .fields()
            .iter()
            .map(|f| {
                let boolean = facts.get(f.name()).is_some_and(|c| c.mysql_boolean);
                let target =
                    if boolean && f.data_type().is_integer() { DataType::Boolean } else { plain_type(f.data_type()) };
                f.as_ref().clone().with_data_type(target)
            })
            .collect();
        let schema = Schema::new(fields);
        let pushdown = DbPushdown::new(kind, &schema, &facts);
        DatabaseTable { name: name.to_string(), inner, schema: Arc::new(schema), timeout, pushdown }
    }
}

#[async_trait]
impl TableProvider for DatabaseTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // DataFusion passes only the filters reported `Exact` or `Inexact`;
        // anything else would be evaluated by the database unchecked.
        if filters.iter().any(|f| self.pushdown.classify(f) == Fidelity::No) {
            return Err(DataFusionError::Internal(format!(
                "table `{}`: a filter the database cannot evaluate exactly reached its scan",
                self.name
            )));
        }
        // Same column order as the inner table: projection indices carry over.
        let inner = self.inner.scan(state, projection, filters, limit).await.map_err(|e| {
            SourceError::new(&self.name, SourceErrorKind::Failed, tidy(&e.strip_backtrace())).into_datafusion()
        })?;
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => Arc::clone(&self.schema),
        };
        let canonical_nans = self.pushdown.kind == DatabaseKind::Postgres;
        Ok(Arc::new(DatabaseScanExec::new(&self.name, inner, schema, self.timeout, canonical_nans)))
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        // The provider says what it can unparse; the rules say what the
        // database evaluates as DataFusion would.
        let unparsable = self.inner.supports_filters_pushdown(filters)?;
        Ok(filters
            .iter()
            .zip(unparsable)
            .map(|(filter, inner)| match inner {
                TableProviderFilterPushDown::Unsupported => TableProviderFilterPushDown::Unsupported,
                _ => self.pushdown.classify(filter).pushdown(),
            })
            .collect())
    }
}

/// Runs the provider's SQL scan with a deadline, converts its batches to
/// plain Arrow types (and, for PostgreSQL, every NaN to the canonical one:
/// [`canonical_nans`]) and names the table in every error. Opaque: it has no
/// children, so optimizer rules cannot rewrite the SQL scan inside it.
#[derive(Debug)]
pub struct DatabaseScanExec {
    table: Arc<str>,
    inner: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    timeout: Duration,
    canonical_nans: bool,
    properties: Arc<PlanProperties>,
}

impl DatabaseScanExec {
    fn new(
        table: &str,
        inner: Arc<dyn ExecutionPlan>,
        schema: SchemaRef,
        timeout: Duration,
        canonical_nans: bool,
    ) -> DatabaseScanExec {
        let partitions = inner.output_partitioning().partition_count();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        DatabaseScanExec { table: Arc::from(table), inner, schema, timeout, canonical_nans, properties }
    }
}

impl DisplayAs for DatabaseScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "DatabaseScanExec: table={} timeout={}ms", self.table, self.timeout.as_millis())
    }
}

impl ExecutionPlan for DatabaseScanExec {
    fn name(&self) -> &str {
        "DatabaseScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let inner = self
            .inner
            .execute(partition, context)
            .map_err(|e| classify(&self.table, &e, self.timeout).into_datafusion())?;
        Ok(Box::pin(GuardedStream {
            inner,
            schema: Arc::clone(&self.schema),
            table: Arc::clone(&self.table),
            timeout: self.timeout,
            canonical_nans: self.canonical_nans,
            deadline: Box::pin(tokio::time::sleep(self.timeout + DEADLINE_GRACE)),
            done: false,
        }))
    }
}

/// A database error as a [`SourceError`]: the database's statement time
/// limit is a timeout (said in plain words, with the table's `timeout`),
/// anything about connections means the database is unavailable, the rest
/// (missing column, bad SQL, …) is a failure.
fn classify(table: &str, error: &DataFusionError, timeout: Duration) -> SourceError {
    let message = tidy(&error.strip_backtrace());
    let lower = message.to_ascii_lowercase();
    if SERVER_TIMEOUT_MARKERS.iter().any(|m| lower.contains(m)) {
        let message =
            format!("the query ran past the table's timeout of {} ms; the database stopped it", timeout.as_millis());
        return SourceError::new(table, SourceErrorKind::Timeout, message);
    }
    let kind = if lower.contains("canceling statement") {
        SourceErrorKind::Timeout
    } else if lower.contains("connection") || lower.contains("connect ") || lower.contains("timed out") {
        SourceErrorKind::Unavailable
    } else {
        SourceErrorKind::Failed
    };
    SourceError::new(table, kind, message)
}

struct GuardedStream {
    inner: SendableRecordBatchStream,
    schema: SchemaRef,
    table: Arc<str>,
    timeout: Duration,
    canonical_nans: bool,
    deadline: Pin<Box<tokio::time::Sleep>>,
    done: bool,
}

impl GuardedStream {
    fn error(&mut self, kind: SourceErrorKind, message: String) -> Poll<Option<Result<RecordBatch>>> {
        self.done = true;
        Poll::Ready(Some(Err(SourceError::new(&self.table, kind, message).into_datafusion())))
    }

    fn convert(&self, batch: RecordBatch) -> std::result::Result<RecordBatch, String> {
        let batch = self.plain(batch)?;
        if self.canonical_nans { canonical_nans(batch) } else { Ok(batch) }
    }

    fn plain(&self, batch: RecordBatch) -> std::result::Result<RecordBatch, String> {
        if batch.schema().fields() == self.schema.fields() {
            return Ok(batch);
        }
        let columns = batch
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(column, field)| {
                if column.data_type() == field.data_type() {
                    Ok(Arc::clone(column))
                } else {
                    cast(column, field.data_type())
                        .map_err(|_| format!("column `{}`: cannot convert to {}", field.name(), field.data_type()))
                }
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        RecordBatch::try_new_with_options(Arc::clone(&self.schema), columns, &options)
            .map_err(|e| format!("unexpected batch from the database: {e}"))
    }
}

/// `batch` with every NaN in its float columns replaced by the canonical
/// NaN (positive, no payload). PostgreSQL has a single NaN, equal to every
/// other and above every number, but stores whatever bits it was given
/// (`-'NaN'::float8` has the sign bit); DataFusion orders floats by IEEE
/// total order, where a NaN with the sign bit is below every number. Read
/// as the canonical NaN, PostgreSQL's comparisons and DataFusion's agree,
/// so float comparisons can be left to the database ([`DbPushdown`]).
fn canonical_nans(batch: RecordBatch) -> std::result::Result<RecordBatch, String> {
    use arrow::array::{Array, ArrayRef, AsArray};
    use arrow::datatypes::{Float32Type, Float64Type};
    let mut columns: Option<Vec<ArrayRef>> = None;
    for (i, column) in batch.columns().iter().enumerate() {
        let replaced: Option<ArrayRef> = match column.data_type() {
            DataType::Float64 => {
                let values = column.as_primitive::<Float64Type>();
                values.values().iter().any(|v| v.is_nan() && v.to_bits() != f64::NAN.to_bits()).then(|| {
                    Arc::new(values.unary::<_, Float64Type>(|v| if v.is_nan() { f64::NAN } else { v })) as ArrayRef
                })
            }
            DataType::Float32 => {
                let values = column.as_primitive::<Float32Type>();
                values.values().iter().any(|v| v.is_nan() && v.to_bits() != f32::NAN.to_bits()).then(|| {
                    Arc::new(values.unary::<_, Float32Type>(|v| if v.is_nan() { f32::NAN } else { v })) as ArrayRef
                })
            }
            _ => None,
        };
        if let Some(replaced) = replaced {
            columns.get_or_insert_with(|| batch.columns().to_vec())[i] = replaced;
        }
    }
    let Some(columns) = columns else { return Ok(batch) };
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(batch.schema(), columns, &options)
        .map_err(|e| format!("unexpected batch from the database: {e}"))
}

impl Stream for GuardedStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let waited = self.timeout + DEADLINE_GRACE;
            let message = format!("no complete answer from the database within {} ms", waited.as_millis());
            return self.error(SourceErrorKind::Timeout, message);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(batch))) => match self.convert(batch) {
                Ok(batch) => Poll::Ready(Some(Ok(batch))),
                Err(message) => self.error(SourceErrorKind::Failed, message),
            },
            Poll::Ready(Some(Err(e))) => {
                let error = classify(&self.table, &e, self.timeout);
                self.error(error.kind, error.message)
            }
        }
    }
}

impl RecordBatchStream for GuardedStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

/// Stands in for a database table that could not be opened at start-up:
/// the configured columns exist (typed `Null`), and every scan fails with
/// the reason, naming the table.
#[derive(Debug)]
pub struct UnavailableTable {
    name: String,
    schema: SchemaRef,
    reason: String,
}

impl UnavailableTable {
    /// A placeholder for `name` with `columns`, failing with `reason`.
    pub fn new(name: &str, columns: &[String], reason: String) -> UnavailableTable {
        let fields: Vec<Field> = columns.iter().map(|c| Field::new(c, DataType::Null, true)).collect();
        UnavailableTable { name: name.to_string(), schema: Arc::new(Schema::new(fields)), reason }
    }
}

#[async_trait]
impl TableProvider for UnavailableTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let message = format!("unavailable since start-up: {}", self.reason);
        Err(SourceError::new(&self.name, SourceErrorKind::Unavailable, message).into_datafusion())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_types() {
        assert_eq!(plain_type(&DataType::LargeUtf8), DataType::Utf8);
        assert_eq!(
            plain_type(&DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(plain_type(&DataType::Decimal128(12, 2)), DataType::Decimal128(12, 2));
    }

    #[test]
    fn session_limit_per_server() {
        assert_eq!(mysql_session_limit("10.11.19-MariaDB-0+deb12u1", 2_500), "SET SESSION max_statement_time = 2.500");
        assert_eq!(mysql_session_limit("8.0.36", 2_500), "SET SESSION max_execution_time = 2500");
        assert_eq!(mysql_session_limit("8.4.0", u64::MAX), format!("SET SESSION max_execution_time = {}", u32::MAX));
    }

    #[test]
    fn server_timeouts_are_timeouts_in_plain_words() {
        let timeout = Duration::from_millis(1_500);
        for text in [
            "Query execution failed.\nServer error: `ERROR 70100 (1969): Query execution was interrupted (max_statement_time exceeded)'",
            "Server error: `ERROR HY000 (3024): Query execution was interrupted, maximum statement execution time exceeded'",
            "db error: ERROR: canceling statement due to statement timeout",
        ] {
            let error = classify("slow", &DataFusionError::Execution(text.to_string()), timeout);
            assert_eq!(error.kind, SourceErrorKind::Timeout, "{text}");
            assert_eq!(
                error.to_string(),
                "table `slow`: the query ran past the table's timeout of 1500 ms; the database stopped it"
            );
        }
        let error = classify("t", &DataFusionError::Execution("Unknown column 'x'".into()), timeout);
        assert_eq!(error.kind, SourceErrorKind::Failed);
    }

    #[test]
    fn postgres_nans_are_read_as_the_canonical_nan() {
        use arrow::array::{Array, AsArray, Float64Array, Int32Array};
        use arrow::datatypes::Float64Type;
        let signed = -f64::NAN;
        let payload = f64::from_bits(0x7ff8_0000_0000_0001);
        let schema = Arc::new(Schema::new(vec![
            Field::new("f", DataType::Float64, true),
            Field::new("i", DataType::Int32, true),
        ]));
        let floats = Float64Array::from(vec![Some(signed), None, Some(payload), Some(-0.0), Some(1.5)]);
        let ints = Int32Array::from(vec![Some(1), None, Some(3), Some(4), Some(5)]);
        let batch = RecordBatch::try_new(schema, vec![Arc::new(floats), Arc::new(ints)]).expect("batch");
        let read = canonical_nans(batch).expect("canonical");
        let f = read.column(0).as_primitive::<Float64Type>();
        assert_eq!(f.value(0).to_bits(), f64::NAN.to_bits());
        assert!(f.is_null(1), "NULL stays NULL");
        assert_eq!(f.value(2).to_bits(), f64::NAN.to_bits());
        assert_eq!(f.value(3).to_bits(), (-0.0f64).to_bits(), "-0.0 is a number, kept as it is");
        assert_eq!(f.value(4), 1.5);
        assert_eq!(read.column(1).len(), 5);
    }

    #[test]
    fn float_comparisons_go_to_the_database_with_finite_non_zero_literals_only() {
        use datafusion::prelude::{col, lit};
        let schema = Schema::new(vec![Field::new("f", DataType::Float64, true)]);
        for (kind, db_type) in [(DatabaseKind::Postgres, "double precision"), (DatabaseKind::Mysql, "double")] {
            let facts = HashMap::from([(
                "f".to_string(),
                ColumnFacts { db_type: db_type.to_string(), deterministic: true, ..Default::default() },
            )]);
            let rules = DbPushdown::new(kind, &schema, &facts);
            for exact in [
                col("f").gt(lit(1000.0)),
                col("f").gt_eq(lit(1.5)),
                col("f").lt(lit(1.5)),
                col("f").lt_eq(lit(-1.5)),
                col("f").eq(lit(1.5)),
                col("f").not_eq(lit(1.5)),
                !col("f").gt(lit(1000.0)),
            ] {
                assert_eq!(rules.classify(&exact), Fidelity::Exact, "{kind:?}: {exact}");
            }
            for kept in [
                col("f").gt(lit(f64::NAN)),
                col("f").lt(lit(f64::INFINITY)),
                col("f").eq(lit(-0.0)),
                col("f").lt(lit(0.0)),
            ] {
                assert_eq!(rules.classify(&kept), Fidelity::No, "{kind:?}: {kept}");
            }
        }
    }

    #[test]
    fn tidy_flattens_and_caps() {
        assert_eq!(tidy("a\n\n  b\n"), "a; b");
        assert!(tidy(&"x".repeat(2_000)).chars().count() <= MAX_ERROR_CHARS + 1);
    }
}
