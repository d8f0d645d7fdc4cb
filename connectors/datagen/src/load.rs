//! Loading a generated federation into PostgreSQL or MySQL/MariaDB.
//!
//! Each source becomes one schema (PostgreSQL) or database (MySQL) named
//! `<prefix><source>`, e.g. `creditgate_demo_market`; each table is dropped,
//! re-created with column types matching the Parquet file, filled in bulk
//! (binary `COPY` on PostgreSQL, multi-row `INSERT`s in one transaction on
//! MySQL) and indexed on its subject and record identifier columns, so a
//! lookup of one subject reads one subject's rows.
//!
//! Text is compared byte-wise, as Arrow does: PostgreSQL columns use
//! `COLLATE "C"`, MySQL databases `utf8mb4_bin`. (With a case-insensitive
//! collation, `WHERE credit_code = 'x'` pushed to MySQL would match rows the
//! same predicate does not match on Parquet.)
//!
//! When the URL carries no password it is read from the file
//! [`LoadOptions::password_file`] if one is given, otherwise taken from the
//! environment variable [`LoadOptions::password_env`] (`PGPASSWORD` /
//! `MYSQL_PWD` by default). URLs are only ever shown through [`redact_url`];
//! passwords never appear in messages.
//!
//! [`drop_postgres`] and [`drop_mysql`] remove what a load created.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchReader};
use arrow::datatypes::{
    DataType, Date32Type, Field, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, SchemaRef, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::{Manifest, read_manifest};

/// Schema/database name prefix used by the demo.
pub const DEFAULT_SCHEMA_PREFIX: &str = "creditgate_demo_";
/// Rows per multi-row `INSERT` on MySQL (fewer for wide tables, to stay
/// under the 65,535 placeholders a statement may have).
const MYSQL_ROWS_PER_INSERT: usize = 1_000;
const MYSQL_MAX_PLACEHOLDERS: usize = 60_000;

/// Errors of a load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The options or the URL cannot be used.
    #[error("invalid load options: {0}")]
    Invalid(String),
    /// The generated data could not be read.
    #[error(transparent)]
    Data(#[from] crate::DatagenError),
    /// The database refused a connection or a statement.
    #[error("{database}: {message}")]
    Database {
        /// The database, as a redacted URL.
        database: String,
        /// What failed.
        message: String,
    },
}

/// What to load and where.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Schema (PostgreSQL) or database (MySQL) name prefix; the source name follows.
    pub schema_prefix: String,
    /// Sources to load (all of the manifest's when `None`).
    pub sources: Option<Vec<String>>,
    /// Environment variable holding the password when the URL has none
    /// (`PGPASSWORD` / `MYSQL_PWD` when `None`).
    pub password_env: Option<String>,
    /// File holding the password when the URL has none (trailing newline
    /// ignored); set this or `password_env`, not both.
    pub password_file: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> LoadOptions {
        LoadOptions {
            schema_prefix: DEFAULT_SCHEMA_PREFIX.to_string(),
            sources: None,
            password_env: None,
            password_file: None,
        }
    }
}

impl LoadOptions {
    /// The password for a URL without one: the file's contents, else the
    /// environment variable (`default_env` unless `password_env` names
    /// another), else none. An unreadable file is an error naming the file,
    /// never its contents.
    fn password(&self, default_env: &str) -> Result<Option<String>, LoadError> {
        match (&self.password_file, &self.password_env) {
            (Some(_), Some(_)) => {
                Err(LoadError::Invalid("give a password file or a password variable, not both".to_string()))
            }
            (Some(file), None) => match std::fs::read_to_string(file) {
                Ok(text) => Ok(Some(text.trim_end_matches(['\n', '\r']).to_string())),
                Err(e) => Err(LoadError::Invalid(format!("password file {}: {}", file.display(), e.kind()))),
            },
            (None, env) => Ok(std::env::var(env.as_deref().unwrap_or(default_env)).ok()),
        }
    }
}

/// What a load did.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// `(source, schema)` pairs loaded, in manifest order.
    pub schemas: Vec<(String, String)>,
    /// Tables loaded.
    pub tables: usize,
    /// Rows loaded.
    pub rows: u64,
    /// Wall-clock time.
    pub elapsed: Duration,
}

/// The schema/database a source is loaded into.
pub fn schema_name(prefix: &str, source: &str) -> String {
    format!("{prefix}{source}")
}

/// `url` without its password (and without query), for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.set_query(None);
            parsed.to_string()
        }
        Err(_) => "<unparsable URL>".to_string(),
    }
}

/// An identifier the databases take unquoted, in either case: the one rule
/// of [`creditgate_ident::is_identifier`] with capitals allowed too, since a
/// schema prefix ([`LoadOptions::schema_prefix`]) or a column may be written
/// in capitals.
fn is_identifier(name: &str) -> bool {
    creditgate_ident::is_identifier(&name.to_ascii_lowercase())
}

/// Columns worth an index: subject identifiers and record ids.
fn indexed(column: &str) -> bool {
    column.ends_with("credit_code") || column.ends_with("resident_id") || column.ends_with("_id") || column == "barcode"
}

/// `(table, Parquet file, rows)`.
type PlannedTable = (String, PathBuf, u64);

/// `(source, schema, tables)` for each source to load.
struct Plan {
    sources: Vec<(String, String, Vec<PlannedTable>)>,
}

fn plan(dir: &Path, options: &LoadOptions) -> Result<Plan, LoadError> {
    let manifest: Manifest = read_manifest(dir)?;
    if let Some(wanted) = &options.sources {
        let unknown: Vec<&str> =
            wanted.iter().filter(|w| !manifest.sources.iter().any(|s| &s.name == *w)).map(String::as_str).collect();
        if !unknown.is_empty() {
            return Err(LoadError::Invalid(format!("unknown source(s): {}", unknown.join(", "))));
        }
    }
    let mut sources = Vec::new();
    for source in &manifest.sources {
        if options.sources.as_ref().is_some_and(|w| !w.contains(&source.name)) {
            continue;
        }
        let schema = schema_name(&options.schema_prefix, &source.name);
        if !is_identifier(&schema) {
            return Err(LoadError::Invalid(format!("`{schema}` is not a plain identifier")));
        }
        let tables = source
            .tables
            .iter()
            .map(|t| {
                if is_identifier(&t.name) {
                    Ok((t.name.clone(), dir.join(&t.file), t.rows))
                } else {
                    Err(LoadError::Invalid(format!("table name `{}` is not a plain identifier", t.name)))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        sources.push((source.name.clone(), schema, tables));
    }
    Ok(Plan { sources })
}

fn read_parquet(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>), LoadError> {
    let file = File::open(path).map_err(|e| crate::DatagenError::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(8_192).build())
        .map_err(crate::DatagenError::from)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>().map_err(crate::DatagenError::from)?;
    Ok((schema, batches))
}

/// One value of one row, borrowed from an Arrow column.
#[derive(Debug, Clone, Copy)]
enum Cell<'a> {
    Null,
    Text(&'a str),
    Date(NaiveDate),
    Timestamp(NaiveDateTime),
    Float(f64),
    Bool(bool),
    Int(i64),
}

fn unsupported(field: &Field) -> LoadError {
    LoadError::Invalid(format!("column `{}`: type {} is not supported by the loader", field.name(), field.data_type()))
}

fn check_supported(field: &Field) -> Result<(), LoadError> {
    match field.data_type() {
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Date32
        | DataType::Timestamp(_, _)
        | DataType::Float32
        | DataType::Float64
        | DataType::Boolean
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64 => Ok(()),
        _ => Err(unsupported(field)),
    }
}

fn cell(column: &ArrayRef, row: usize) -> Cell<'_> {
    if column.is_null(row) {
        return Cell::Null;
    }
    let ts = |value: i64, per_second: i64| {
        DateTime::from_timestamp(
            value.div_euclid(per_second),
            (value.rem_euclid(per_second) * (1_000_000_000 / per_second)) as u32,
        )
        .map(|t| Cell::Timestamp(t.naive_utc()))
        .unwrap_or(Cell::Null)
    };
    match column.data_type() {
        DataType::Utf8 => Cell::Text(column.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Cell::Text(column.as_string::<i64>().value(row)),
        DataType::Utf8View => Cell::Text(column.as_string_view().value(row)),
        DataType::Date32 => {
            let days = column.as_primitive::<Date32Type>().value(row);
            NaiveDate::from_num_days_from_ce_opt(days + 719_163).map(Cell::Date).unwrap_or(Cell::Null)
        }
        DataType::Timestamp(TimeUnit::Second, _) => ts(column.as_primitive::<TimestampSecondType>().value(row), 1),
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            ts(column.as_primitive::<TimestampMillisecondType>().value(row), 1_000)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            ts(column.as_primitive::<TimestampMicrosecondType>().value(row), 1_000_000)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            ts(column.as_primitive::<TimestampNanosecondType>().value(row), 1_000_000_000)
        }
        DataType::Float32 => Cell::Float(f64::from(column.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => Cell::Float(column.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => Cell::Bool(column.as_boolean().value(row)),
        DataType::Int16 => Cell::Int(i64::from(column.as_primitive::<Int16Type>().value(row))),
        DataType::Int32 => Cell::Int(i64::from(column.as_primitive::<Int32Type>().value(row))),
        DataType::Int64 => Cell::Int(column.as_primitive::<Int64Type>().value(row)),
        _ => Cell::Null, // refused earlier by `check_supported`
    }
}

// ---------------------------------------------------------------- PostgreSQL

mod pg {
    use bytes::BytesMut;
    use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

    use super::*;

    impl ToSql for Cell<'_> {
        fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
            match *self {
                Cell::Null => Ok(IsNull::Yes),
                Cell::Text(v) => v.to_sql(ty, out),
                Cell::Date(v) => v.to_sql(ty, out),
                Cell::Timestamp(v) if *ty == Type::TIMESTAMPTZ => v.and_utc().to_sql(ty, out),
                Cell::Timestamp(v) => v.to_sql(ty, out),
                Cell::Float(v) => v.to_sql(ty, out),
                Cell::Bool(v) => v.to_sql(ty, out),
                Cell::Int(v) if *ty == Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                Cell::Int(v) if *ty == Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
                Cell::Int(v) => v.to_sql(ty, out),
            }
        }

        fn accepts(_ty: &Type) -> bool {
            true
        }

        to_sql_checked!();
    }

    pub(super) fn column_type(field: &Field) -> Result<(&'static str, Type), LoadError> {
        Ok(match field.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ("text COLLATE \"C\"", Type::TEXT),
            DataType::Date32 => ("date", Type::DATE),
            DataType::Timestamp(_, None) => ("timestamp", Type::TIMESTAMP),
            DataType::Timestamp(_, Some(_)) => ("timestamptz", Type::TIMESTAMPTZ),
            DataType::Float32 | DataType::Float64 => ("double precision", Type::FLOAT8),
            DataType::Boolean => ("boolean", Type::BOOL),
            DataType::Int16 => ("smallint", Type::INT2),
            DataType::Int32 => ("integer", Type::INT4),
            DataType::Int64 => ("bigint", Type::INT8),
            _ => return Err(unsupported(field)),
        })
    }

    pub(super) async fn connect(url: &str, options: &LoadOptions) -> Result<tokio_postgres::Client, LoadError> {
        let shown = redact_url(url);
        let fail = |message: String| LoadError::Database { database: shown.clone(), message };
        // sslmode: disable | prefer | require (no certificate check) | verify-ca | verify-full.
        let mut parsed = url::Url::parse(url).map_err(|e| LoadError::Invalid(format!("{shown}: {e}")))?;
        let mut sslmode = "prefer".to_string();
        let rest: Vec<(String, String)> = parsed
            .query_pairs()
            .filter_map(|(k, v)| {
                if k == "sslmode" {
                    sslmode = v.to_string();
                    None
                } else {
                    Some((k.to_string(), v.to_string()))
                }
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(rest);
        let text = parsed.as_str().trim_end_matches('?').to_string();
        let mut config: tokio_postgres::Config = text.parse().map_err(|e| fail(format!("bad URL: {e}")))?;
        if config.get_password().is_none()
            && let Some(password) = options.password("PGPASSWORD")?
        {
            config.password(password);
        }
        let verify = match sslmode.as_str() {
            "disable" => None,
            "prefer" | "require" => Some(false),
            "verify-ca" | "verify-full" => Some(true),
            other => return Err(LoadError::Invalid(format!("{shown}: sslmode `{other}` is not supported"))),
        };
        let client = match verify {
            None => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                let (client, connection) =
                    config.connect(tokio_postgres::NoTls).await.map_err(|e| fail(e.to_string()))?;
                tokio::spawn(connection);
                client
            }
            Some(verify) => {
                config.ssl_mode(if sslmode == "prefer" {
                    tokio_postgres::config::SslMode::Prefer
                } else {
                    tokio_postgres::config::SslMode::Require
                });
                let tls = native_tls::TlsConnector::builder()
                    .danger_accept_invalid_certs(!verify)
                    .danger_accept_invalid_hostnames(sslmode != "verify-full")
                    .build()
                    .map_err(|e| fail(format!("TLS: {e}")))?;
                let (client, connection) = config
                    .connect(postgres_native_tls::MakeTlsConnector::new(tls))
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                tokio::spawn(connection);
                client
            }
        };
        Ok(client)
    }
}

/// Loads the federation in `dir` (generated Parquet files and manifest) into
/// the PostgreSQL database at `url`, one schema per source.
pub async fn load_postgres(dir: &Path, url: &str, options: &LoadOptions) -> Result<LoadReport, LoadError> {
    use futures::pin_mut;
    use tokio_postgres::binary_copy::BinaryCopyInWriter;

    let started = Instant::now();
    let plan = plan(dir, options)?;
    let shown = redact_url(url);
    let fail = |message: String| LoadError::Database { database: shown.clone(), message };
    let mut client = pg::connect(url, options).await?;
    let mut report = LoadReport { schemas: Vec::new(), tables: 0, rows: 0, elapsed: Duration::ZERO };
    for (source, schema, tables) in &plan.sources {
        client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .await
            .map_err(|e| fail(format!("create schema {schema}: {e}")))?;
        for (table, path, _) in tables {
            let (arrow_schema, batches) = read_parquet(path)?;
            let mut definitions = Vec::new();
            let mut types = Vec::new();
            for field in arrow_schema.fields() {
                check_supported(field)?;
                if !is_identifier(field.name()) {
                    return Err(LoadError::Invalid(format!("column `{}` is not a plain identifier", field.name())));
                }
                let (sql_type, pg_type) = pg::column_type(field)?;
                let null = if field.is_nullable() { "" } else { " NOT NULL" };
                definitions.push(format!("\"{}\" {sql_type}{null}", field.name()));
                types.push(pg_type);
            }
            let qualified = format!("\"{schema}\".\"{table}\"");
            let tx = client.transaction().await.map_err(|e| fail(e.to_string()))?;
            tx.batch_execute(&format!(
                "DROP TABLE IF EXISTS {qualified}; CREATE TABLE {qualified} ({});",
                definitions.join(", ")
            ))
            .await
            .map_err(|e| fail(format!("create {qualified}: {e}")))?;
            let columns: Vec<String> = arrow_schema.fields().iter().map(|f| format!("\"{}\"", f.name())).collect();
            let sink = tx
                .copy_in(&format!("COPY {qualified} ({}) FROM STDIN (FORMAT binary)", columns.join(", ")))
                .await
                .map_err(|e| fail(format!("copy into {qualified}: {e}")))?;
            let writer = BinaryCopyInWriter::new(sink, &types);
            pin_mut!(writer);
            let mut rows = 0u64;
            for batch in &batches {
                for row in 0..batch.num_rows() {
                    let cells: Vec<Cell<'_>> = batch.columns().iter().map(|c| cell(c, row)).collect();
                    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                        cells.iter().map(|c| c as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
                    writer.as_mut().write(&refs).await.map_err(|e| fail(format!("copy into {qualified}: {e}")))?;
                    rows += 1;
                }
            }
            writer.finish().await.map_err(|e| fail(format!("copy into {qualified}: {e}")))?;
            for field in arrow_schema.fields().iter().filter(|f| indexed(f.name())) {
                tx.batch_execute(&format!("CREATE INDEX ON {qualified} (\"{}\")", field.name()))
                    .await
                    .map_err(|e| fail(format!("index {qualified}: {e}")))?;
            }
            tx.commit().await.map_err(|e| fail(e.to_string()))?;
            client.batch_execute(&format!("ANALYZE {qualified}")).await.map_err(|e| fail(e.to_string()))?;
            tracing::info!(table = %qualified, rows, "loaded into PostgreSQL");
            report.tables += 1;
            report.rows += rows;
        }
        report.schemas.push((source.clone(), schema.clone()));
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

// ---------------------------------------------------------------- MySQL

fn mysql_column_type(field: &Field) -> Result<&'static str, LoadError> {
    Ok(match field.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "TEXT",
        DataType::Date32 => "DATE",
        DataType::Timestamp(_, _) => "DATETIME(6)",
        DataType::Float32 | DataType::Float64 => "DOUBLE",
        DataType::Boolean => "BOOLEAN",
        DataType::Int16 => "SMALLINT",
        DataType::Int32 => "INT",
        DataType::Int64 => "BIGINT",
        _ => return Err(unsupported(field)),
    })
}

fn mysql_value(cell: Cell<'_>) -> mysql_async::Value {
    use mysql_async::Value;
    match cell {
        Cell::Null => Value::NULL,
        Cell::Text(v) => Value::Bytes(v.as_bytes().to_vec()),
        Cell::Date(d) => Value::Date(d.year() as u16, d.month() as u8, d.day() as u8, 0, 0, 0, 0),
        Cell::Timestamp(t) => Value::Date(
            t.year() as u16,
            t.month() as u8,
            t.day() as u8,
            t.hour() as u8,
            t.minute() as u8,
            t.second() as u8,
            t.nanosecond() / 1_000,
        ),
        Cell::Float(v) => Value::Double(v),
        Cell::Bool(v) => Value::Int(i64::from(v)),
        Cell::Int(v) => Value::Int(v),
    }
}

async fn mysql_connect(url: &str, options: &LoadOptions) -> Result<mysql_async::Conn, LoadError> {
    let shown = redact_url(url);
    let mut opts = mysql_async::OptsBuilder::from_opts(
        mysql_async::Opts::from_url(url).map_err(|e| LoadError::Invalid(format!("{shown}: {e}")))?,
    );
    if mysql_async::Opts::from(opts.clone()).pass().is_none()
        && let Some(password) = options.password("MYSQL_PWD")?
    {
        opts = opts.pass(Some(password));
    }
    mysql_async::Conn::new(opts).await.map_err(|e| LoadError::Database { database: shown, message: e.to_string() })
}

/// The schemas a load with `options` creates for `sources`, checked to be
/// plain identifiers (they are spliced into `DROP` statements).
fn schemas_of(sources: &[String], options: &LoadOptions) -> Result<Vec<String>, LoadError> {
    sources
        .iter()
        .map(|source| {
            let schema = schema_name(&options.schema_prefix, source);
            if is_identifier(&schema) {
                Ok(schema)
            } else {
                Err(LoadError::Invalid(format!("`{schema}` is not a plain identifier")))
            }
        })
        .collect()
}

/// Drops the PostgreSQL schema a load with `options` created for each of
/// `sources` (`<prefix><source>`, with everything in it), if it exists.
/// Returns the schemas named.
pub async fn drop_postgres(url: &str, sources: &[String], options: &LoadOptions) -> Result<Vec<String>, LoadError> {
    let schemas = schemas_of(sources, options)?;
    let client = pg::connect(url, options).await?;
    for schema in &schemas {
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await.map_err(|e| {
            LoadError::Database { database: redact_url(url), message: format!("drop schema {schema}: {e}") }
        })?;
    }
    Ok(schemas)
}

/// Drops the MySQL/MariaDB database a load with `options` created for each
/// of `sources` (`<prefix><source>`), if it exists. Returns the databases named.
pub async fn drop_mysql(url: &str, sources: &[String], options: &LoadOptions) -> Result<Vec<String>, LoadError> {
    use mysql_async::prelude::Queryable;
    let schemas = schemas_of(sources, options)?;
    let mut conn = mysql_connect(url, options).await?;
    for schema in &schemas {
        conn.query_drop(format!("DROP DATABASE IF EXISTS `{schema}`")).await.map_err(|e| LoadError::Database {
            database: redact_url(url),
            message: format!("drop database {schema}: {e}"),
        })?;
    }
    let _ = conn.disconnect().await;
    Ok(schemas)
}

/// Loads the federation in `dir` into the MySQL/MariaDB server at `url`,
/// one database per source (`utf8mb4`, binary collation).
pub async fn load_mysql(dir: &Path, url: &str, options: &LoadOptions) -> Result<LoadReport, LoadError> {
    use mysql_async::prelude::Queryable;

    let started = Instant::now();
    let plan = plan(dir, options)?;
    let shown = redact_url(url);
    let fail = |message: String| LoadError::Database { database: shown.clone(), message };
    let mut conn = mysql_connect(url, options).await?;
    let mut report = LoadReport { schemas: Vec::new(), tables: 0, rows: 0, elapsed: Duration::ZERO };
    for (source, schema, tables) in &plan.sources {
        conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS `{schema}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
            .await
            .map_err(|e| fail(format!("create database {schema}: {e}")))?;
        for (table, path, _) in tables {
            let (arrow_schema, batches) = read_parquet(path)?;
            let mut definitions = Vec::new();
            for field in arrow_schema.fields() {
                check_supported(field)?;
                if !is_identifier(field.name()) {
                    return Err(LoadError::Invalid(format!("column `{}` is not a plain identifier", field.name())));
                }
                let null = if field.is_nullable() { "" } else { " NOT NULL" };
                definitions.push(format!("`{}` {}{null}", field.name(), mysql_column_type(field)?));
            }
            for field in arrow_schema.fields().iter().filter(|f| indexed(f.name())) {
                let prefix = if matches!(field.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
                    "(64)"
                } else {
                    ""
                };
                definitions.push(format!("INDEX (`{}`{prefix})", field.name()));
            }
            let qualified = format!("`{schema}`.`{table}`");
            conn.query_drop(format!("DROP TABLE IF EXISTS {qualified}")).await.map_err(|e| fail(e.to_string()))?;
            conn.query_drop(format!(
                "CREATE TABLE {qualified} ({}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                definitions.join(", ")
            ))
            .await
            .map_err(|e| fail(format!("create {qualified}: {e}")))?;
            let width = arrow_schema.fields().len().max(1);
            let per_insert = MYSQL_ROWS_PER_INSERT.min(MYSQL_MAX_PLACEHOLDERS / width).max(1);
            let columns: Vec<String> = arrow_schema.fields().iter().map(|f| format!("`{}`", f.name())).collect();
            let row_marks = format!("({})", vec!["?"; width].join(","));
            let mut tx =
                conn.start_transaction(mysql_async::TxOpts::default()).await.map_err(|e| fail(e.to_string()))?;
            let mut pending: Vec<mysql_async::Value> = Vec::with_capacity(per_insert * width);
            let mut pending_rows = 0usize;
            let mut rows = 0u64;
            let flush = async |tx: &mut mysql_async::Transaction<'_>,
                               pending: &mut Vec<mysql_async::Value>,
                               count: usize|
                   -> Result<(), LoadError> {
                if count == 0 {
                    return Ok(());
                }
                let sql = format!(
                    "INSERT INTO {qualified} ({}) VALUES {}",
                    columns.join(", "),
                    vec![row_marks.as_str(); count].join(",")
                );
                tx.exec_drop(sql, mysql_async::Params::Positional(std::mem::take(pending)))
                    .await
                    .map_err(|e| fail(format!("insert into {qualified}: {e}")))
            };
            for batch in &batches {
                for row in 0..batch.num_rows() {
                    pending.extend(batch.columns().iter().map(|c| mysql_value(cell(c, row))));
                    pending_rows += 1;
                    rows += 1;
                    if pending_rows == per_insert {
                        flush(&mut tx, &mut pending, pending_rows).await?;
                        pending_rows = 0;
                    }
                }
            }
            flush(&mut tx, &mut pending, pending_rows).await?;
            tx.commit().await.map_err(|e| fail(e.to_string()))?;
            tracing::info!(table = %qualified, rows, "loaded into MySQL");
            report.tables += 1;
            report.rows += rows;
        }
        report.schemas.push((source.clone(), schema.clone()));
    }
    let _ = conn.disconnect().await;
    report.elapsed = started.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/d?sslmode=disable"), "postgres://u:***@h:5432/d");
        assert_eq!(redact_url("mysql://root@127.0.0.1:3306/test"), "mysql://root@127.0.0.1:3306/test");
        assert!(!redact_url("not a url secret").contains("secret"));
    }

    #[test]
    fn password_from_file_or_variable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret-loader\r\n").expect("write");
        let options = LoadOptions { password_file: Some(file.clone()), ..LoadOptions::default() };
        assert_eq!(options.password("PATH").expect("file").as_deref(), Some("s3cret-loader"), "file beats the default");
        let missing = LoadOptions { password_file: Some(dir.path().join("nope")), ..LoadOptions::default() };
        let error = missing.password("PATH").expect_err("missing file").to_string();
        assert!(error.contains("password file") && error.contains("nope"), "{error}");
        let both = LoadOptions { password_env: Some("PATH".into()), ..options };
        assert!(both.password("PATH").is_err(), "file and variable together are refused");
        // `PATH` is always set; a variable that is not yields no password.
        assert!(LoadOptions::default().password("PATH").expect("env").is_some());
        assert_eq!(LoadOptions::default().password("CREDITGATE_LOADER_UNSET_VARIABLE").expect("env"), None);
    }

    #[test]
    fn drops_only_plain_identifiers() {
        let options = LoadOptions { schema_prefix: "x\"; DROP".into(), ..LoadOptions::default() };
        assert!(schemas_of(&["market".into()], &options).is_err());
        assert_eq!(schemas_of(&["market".into()], &LoadOptions::default()).expect("ok"), ["creditgate_demo_market"]);
    }

    #[test]
    fn index_choice() {
        assert!(indexed("credit_code") && indexed("owner_resident_id") && indexed("shop_id"));
        assert!(!indexed("name") && !indexed("amount"));
    }
}
