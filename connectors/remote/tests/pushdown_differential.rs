//! Pushdown that cannot change an answer, checked against real connectors.
//!
//! One connector on 127.0.0.1:0 over mTLS (certificates made here) serves
//! the same edge-case rows from three storages: a Parquet file, a PostgreSQL
//! table and a MariaDB table (uniquely named schemas, dropped at the end).
//! The gateway side is a `RemoteTable` twice over each: once as built (filters
//! pushed when exact) and once `with_pushdown(false)` (every filter evaluated
//! in the gateway).
//!
//! * `generated_predicates_answer_the_same_with_and_without_pushdown`: a
//!   property test. Predicates over every column type the datasets use
//!   (text under a byte-wise and a case-blind collation, Int32, Int64,
//!   Float64, two decimals, date, timestamp with and without zone, boolean,
//!   NULLs) with edge literals (NaN, ±inf, -0.0, `1e308 * 10`, huge
//!   decimals, quotes, backslashes, `%`/`_`/`!`, NUL, Unicode, empty
//!   strings, `LIKE … ESCAPE`) must give the same multiset of rows with and
//!   without pushdown, or fail on both sides; a failure with pushdown must
//!   never come from the connector. It prints how many predicates it checked.
//! * The red team's cases (`> 1e308 * 10`, `> CAST('NaN' AS DOUBLE)`,
//!   `LIKE 'a!%' ESCAPE '!'`), each with a negative control that is pushed,
//!   proven by the connector's served-query log.
//! * The second hop: what the connector lets PostgreSQL evaluate, proven by
//!   the statement PostgreSQL ran.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use creditgate_certs::ca::{DevCa, IssueRequest};
use creditgate_connector::{Connector, ConnectorConfig, RunningConnector, ServedLog};
use creditgate_remote::{Deadlines, RemoteScanExec, RemoteSource, RemoteTable, SourceError};
use datafusion::error::DataFusionError;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use mysql_async::prelude::Queryable;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRng, TestRunner};

const GATEWAY: &str = "spiffe://credit.example/org/creditgate-gateway";
const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";
const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const COLUMNS: &[&str] = &["id", "s", "s2", "i", "n", "f", "amount", "big", "d", "ts", "tstz", "b"];
/// Generated predicates per storage in the property test (each runs twice
/// per storage: with and without pushdown).
const CASES: u32 = 256;

// ------------------------------------------------------------------ the rows

/// Text edge values; `None` marks where a storage cannot hold the value
/// (NUL in PostgreSQL text) and gets something plain instead.
const TEXTS: &[&str] = &[
    "",
    " ",
    "a",
    "A",
    "a ",
    "abc",
    "ABC",
    "it's",
    "a\\b",
    "a\\",
    "a%b",
    "a_b",
    "a%",
    "a!%",
    "100%",
    "é",
    "E",
    "青岛澜屿",
    "😀",
    "tab\t",
    "a\u{0}b",
    "O''Brien",
    "%",
    "_",
    "\\%",
];
const INTS: &[i32] = &[0, -1, 1, 42, i32::MAX, i32::MIN, 7];
const LONGS: &[i64] = &[0, -1, 42, i64::MAX, i64::MIN, 1_000_000_007];
const FLOATS: &[f64] =
    &[0.0, -0.0, 1.5, -1.5, 1e308, f64::MIN_POSITIVE, 0.1, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e15, -2.5e-7];
/// Decimal(12,2) values, as unscaled integers.
const AMOUNTS: &[i128] = &[0, -50, 1_234_567, 999_999_999_999, -999_999_999_999, 1];
/// Decimal(38,10) values, as unscaled integers.
const BIGS: &[i128] = &[
    0,
    1,
    -1,
    12_345_678_901_234_567_890_123_456_781_234_567_890,
    -99_999_999_999_999_999_999_999_999_999_999_999_999,
    99_999_999_999_999_999_999_999_999_999_999_999_999,
];
/// Days since 1970-01-01: 1970-01-01, 2024-02-29, 1000-01-01, 9999-12-31, 0001-01-01.
const DATES: &[i32] = &[0, 19_782, -354_285, 2_932_896, -719_162, 10_957];
/// Microseconds since the epoch.
const TIMES: &[i64] = &[
    1_709_195_400_123_456, // 2024-02-29 08:30:00.123456
    1_709_195_400_000_000, // 2024-02-29 08:30:00
    946_684_799_000_000,   // 1999-12-31 23:59:59
    0,
    1_000_000,
    2_145_916_800_000_000, // 2038-01-01
];

/// Which storage a table lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Storage {
    Parquet,
    Postgres,
    Mariadb,
}

const STORAGES: [Storage; 3] = [Storage::Parquet, Storage::Postgres, Storage::Mariadb];

impl Storage {
    fn table(self) -> &'static str {
        match self {
            Storage::Parquet => "pq",
            Storage::Postgres => "pg",
            Storage::Mariadb => "my",
        }
    }
}

/// One row; `None` is NULL.
#[derive(Debug, Clone)]
struct Row {
    id: i64,
    s: Option<String>,
    s2: Option<String>,
    i: Option<i32>,
    n: Option<i64>,
    f: Option<f64>,
    amount: Option<i128>,
    big: Option<i128>,
    d: Option<i32>,
    ts: Option<i64>,
    tstz: Option<i64>,
    b: Option<bool>,
}

/// The rows `storage` holds: every edge value, in varying combinations,
/// NULLs in every column of some rows; adjusted to what the storage can
/// hold (no NUL in PostgreSQL or MariaDB text, no NaN/±inf in MariaDB,
/// MariaDB dates from year 1000 and `TIMESTAMP`s from 1970-01-01 00:00:01);
/// PostgreSQL's NaNs carry the sign bit.
fn rows(storage: Storage) -> Vec<Row> {
    let pick = |k: usize, stride: usize, len: usize| (k * stride + k / len) % len;
    let mut out = Vec::new();
    for k in 0..30usize {
        let null = |column: usize| (k + column).is_multiple_of(11);
        let text = |stride: usize, column: usize| {
            (!null(column)).then(|| {
                let t = TEXTS[pick(k, stride, TEXTS.len())];
                if storage != Storage::Parquet && t.contains('\0') { "nul".to_string() } else { t.to_string() }
            })
        };
        let float = FLOATS[pick(k, 5, FLOATS.len())];
        let float = match storage {
            Storage::Mariadb if !float.is_finite() => 2.0,
            // PostgreSQL keeps the bits it is given: its NaNs here have the
            // sign bit, which DataFusion would order below every number.
            Storage::Postgres if float.is_nan() => -f64::NAN,
            _ => float,
        };
        let date = DATES[pick(k, 3, DATES.len())];
        let date = if storage == Storage::Mariadb && date < -354_285 { -354_285 } else { date };
        let tstz = TIMES[pick(k, 5, TIMES.len())];
        let tstz = if storage == Storage::Mariadb && tstz < 1_000_000 { 1_000_000 } else { tstz };
        out.push(Row {
            id: k as i64,
            s: text(1, 1),
            s2: text(7, 2),
            i: (!null(3)).then(|| INTS[pick(k, 3, INTS.len())]),
            n: (!null(4)).then(|| LONGS[pick(k, 5, LONGS.len())]),
            f: (!null(5)).then_some(float),
            amount: (!null(6)).then(|| AMOUNTS[pick(k, 5, AMOUNTS.len())]),
            big: (!null(7)).then(|| BIGS[pick(k, 7, BIGS.len())]),
            d: (!null(8)).then_some(date),
            ts: (!null(9)).then(|| TIMES[pick(k, 1, TIMES.len())]),
            tstz: (!null(10)).then_some(tstz),
            b: (!null(0)).then_some(k.is_multiple_of(3)),
        });
    }
    out.push(Row {
        id: 99,
        s: None,
        s2: None,
        i: None,
        n: None,
        f: None,
        amount: None,
        big: None,
        d: None,
        ts: None,
        tstz: None,
        b: None,
    });
    out
}

fn write_parquet(path: &Path, rows: &[Row]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("s", DataType::Utf8, true),
        Field::new("s2", DataType::Utf8, true),
        Field::new("i", DataType::Int32, true),
        Field::new("n", DataType::Int64, true),
        Field::new("f", DataType::Float64, true),
        Field::new("amount", DataType::Decimal128(12, 2), true),
        Field::new("big", DataType::Decimal128(38, 10), true),
        Field::new("d", DataType::Date32, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("tstz", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("b", DataType::Boolean, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.id))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.s.clone()))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.s2.clone()))),
        Arc::new(Int32Array::from_iter(rows.iter().map(|r| r.i))),
        Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.n))),
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.f))),
        Arc::new(
            Decimal128Array::from_iter(rows.iter().map(|r| r.amount))
                .with_precision_and_scale(12, 2)
                .expect("decimal(12,2)"),
        ),
        Arc::new(
            Decimal128Array::from_iter(rows.iter().map(|r| r.big))
                .with_precision_and_scale(38, 10)
                .expect("decimal(38,10)"),
        ),
        Arc::new(Date32Array::from_iter(rows.iter().map(|r| r.d))),
        Arc::new(TimestampMicrosecondArray::from_iter(rows.iter().map(|r| r.ts))),
        Arc::new(TimestampMicrosecondArray::from_iter(rows.iter().map(|r| r.tstz)).with_timezone("UTC")),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| r.b))),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).expect("batch");
    let file = std::fs::File::create(path).expect("parquet file");
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).expect("parquet writer");
    writer.write(&batch).expect("write parquet");
    writer.close().expect("close parquet");
}

fn decimal_text(v: i128, scale: u32) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let digits = format!("{:0>width$}", v.unsigned_abs(), width = scale as usize + 1);
    let (int, frac) = digits.split_at(digits.len() - scale as usize);
    format!("{sign}{int}.{frac}")
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` of a microsecond timestamp.
fn timestamp_text(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    let (y, m, d) = civil(seconds.div_euclid(86_400));
    let s = seconds.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{fraction:06}", s / 3_600, s / 60 % 60, s % 60)
}

fn date_text(days: i32) -> String {
    let (y, m, d) = civil(i64::from(days));
    format!("{y:04}-{m:02}-{d:02}")
}

fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn pg_literal(value: Option<String>) -> String {
    value.unwrap_or_else(|| "NULL".to_string())
}

fn pg_text(t: &Option<String>) -> String {
    pg_literal(t.as_ref().map(|t| format!("'{}'", t.replace('\'', "''"))))
}

fn pg_float(f: f64) -> String {
    if f.is_nan() {
        return if f.is_sign_negative() { "(-'NaN'::float8)" } else { "'NaN'::float8" }.to_string();
    }
    let text =
        if f.is_infinite() { if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string() } else { format!("{f:?}") };
    format!("'{text}'::float8")
}

async fn load_postgres(schema: &str, rows: &[Row]) {
    let client = pg().await;
    let mut sql = format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.pg (id bigint NOT NULL, s text COLLATE \"C\", s2 varchar(40), i integer, n bigint,
             f double precision, amount numeric(12,2), big numeric(38,10), d date, ts timestamp, tstz timestamptz,
             b boolean);
         INSERT INTO {schema}.pg VALUES "
    );
    let values: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
                r.id,
                pg_text(&r.s),
                pg_text(&r.s2),
                pg_literal(r.i.map(|v| v.to_string())),
                pg_literal(r.n.map(|v| v.to_string())),
                pg_literal(r.f.map(pg_float)),
                pg_literal(r.amount.map(|v| decimal_text(v, 2))),
                pg_literal(r.big.map(|v| decimal_text(v, 10))),
                pg_literal(r.d.map(|v| format!("DATE '{}'", date_text(v)))),
                pg_literal(r.ts.map(|v| format!("TIMESTAMP '{}'", timestamp_text(v)))),
                pg_literal(r.tstz.map(|v| format!("TIMESTAMPTZ '{}+00'", timestamp_text(v)))),
                pg_literal(r.b.map(|v| v.to_string())),
            )
        })
        .collect();
    sql.push_str(&values.join(",\n"));
    client.batch_execute(&sql).await.expect("PostgreSQL fixture");
}

async fn load_mariadb(database: &str, rows: &[Row]) {
    let mut conn = mysql().await;
    conn.query_drop(format!(
        "CREATE DATABASE {database} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
         CREATE TABLE {database}.my (id BIGINT NOT NULL, s TEXT, s2 VARCHAR(40) COLLATE utf8mb4_general_ci, i INT,
             n BIGINT, f DOUBLE, amount DECIMAL(12,2), big DECIMAL(38,10), d DATE, ts DATETIME(6),
             tstz TIMESTAMP(6) NULL, b BOOLEAN);
         SET time_zone = '+00:00';"
    ))
    .await
    .expect("MariaDB fixture");
    use mysql_async::Value;
    let text = |t: &Option<String>| t.clone().map(Value::from).unwrap_or(Value::NULL);
    for r in rows {
        let params: Vec<Value> = vec![
            Value::from(r.id),
            text(&r.s),
            text(&r.s2),
            r.i.map(Value::from).unwrap_or(Value::NULL),
            r.n.map(Value::from).unwrap_or(Value::NULL),
            r.f.map(Value::from).unwrap_or(Value::NULL),
            r.amount.map(|v| Value::from(decimal_text(v, 2))).unwrap_or(Value::NULL),
            r.big.map(|v| Value::from(decimal_text(v, 10))).unwrap_or(Value::NULL),
            r.d.map(|v| Value::from(date_text(v))).unwrap_or(Value::NULL),
            r.ts.map(|v| Value::from(timestamp_text(v))).unwrap_or(Value::NULL),
            r.tstz.map(|v| Value::from(timestamp_text(v))).unwrap_or(Value::NULL),
            r.b.map(Value::from).unwrap_or(Value::NULL),
        ];
        conn.exec_drop(format!("INSERT INTO {database}.my VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"), params)
            .await
            .expect("MariaDB row");
    }
}

// ------------------------------------------------------------- the fixture

/// A name no other test run uses.
fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("cg_{prefix}_{}_{nanos:x}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

async fn pg() -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect("host=127.0.0.1 port=5432 user=postgres dbname=test", tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432");
    tokio::spawn(connection);
    client
}

async fn mysql() -> mysql_async::Conn {
    mysql_async::Conn::from_url(MYSQL_URL).await.expect("MariaDB on 127.0.0.1:3306")
}

/// A scratch PostgreSQL schema or MariaDB database, dropped when the guard
/// goes out of scope, test failure included.
enum Scratch {
    Postgres(String),
    Mariadb(String),
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let (postgres, name) = match self {
            Scratch::Postgres(name) => (true, name.clone()),
            Scratch::Mariadb(name) => (false, name.clone()),
        };
        // A runtime of its own on a thread of its own: `drop` may run on a runtime thread.
        let outcome = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                if postgres {
                    pg().await
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .await
                        .map_err(|e| e.to_string())
                } else {
                    mysql().await.query_drop(format!("DROP DATABASE IF EXISTS {name}")).await.map_err(|e| e.to_string())
                }
            })
        })
        .join();
        if !matches!(outcome, Ok(Ok(()))) {
            eprintln!("cannot drop a scratch schema: {outcome:?}");
        }
    }
}

/// A connector serving the three tables, and a gateway-side session with
/// `on_<table>` (pushdown) and `off_<table>` (no pushdown) for each.
struct Federation {
    ctx: SessionContext,
    served_log: PathBuf,
    running: Option<RunningConnector>,
    connector: Arc<Connector>,
    config: ConnectorConfig,
    source: Arc<RemoteSource>,
    infos: Vec<creditgate_remote::RemoteTableInfo>,
    _tmp: tempfile::TempDir,
    _scratch: Vec<Scratch>,
}

impl Federation {
    async fn start() -> Federation {
        creditgate_certs::install_default_provider();
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let ca = DevCa::init(&dir.join("ca"), "test CA").expect("ca");
        let server = ca
            .issue(&IssueRequest::server("diff-connector", vec!["localhost".into()], vec![Ipv4Addr::LOCALHOST.into()]))
            .expect("issue")
            .write(&dir, "server")
            .expect("write");
        let gateway = ca
            .issue(&IssueRequest::client("creditgate-gateway", "creditgate gateway", "gateway"))
            .expect("issue")
            .write(&dir, "gateway")
            .expect("write");
        let ca_file = dir.join("ca").join("ca.pem");

        let parquet = dir.join("pq.parquet");
        write_parquet(&parquet, &rows(Storage::Parquet));
        let pg_schema = unique("pushpg");
        let my_database = unique("pushmy");
        let scratch = vec![Scratch::Postgres(pg_schema.clone()), Scratch::Mariadb(my_database.clone())];
        load_postgres(&pg_schema, &rows(Storage::Postgres)).await;
        load_mariadb(&my_database, &rows(Storage::Mariadb)).await;

        // Written as a config file and loaded the way a deployment loads it
        // (defaults for everything not given here).
        let columns = COLUMNS.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
        let served_log = dir.join("served.jsonl");
        let toml = format!(
            r#"name = "diff"
listen = "127.0.0.1:0"
cert = "{cert}"
key = "{key}"
client_ca = "{ca}"
allowed_clients = ["{GATEWAY}"]
served_log = "{log}"
memory_limit_bytes = 268435456

[[tables]]
name = "pq"
format = "parquet"
path = "{parquet}"
columns = [{columns}]

[[tables]]
name = "pg"
format = "postgres"
connection = "{PG_URL}"
schema = "{pg_schema}"
source_table = "pg"
query_timeout_ms = 10000
columns = [{columns}]

[[tables]]
name = "my"
format = "mysql"
connection = "{MYSQL_URL}"
schema = "{my_database}"
source_table = "my"
query_timeout_ms = 10000
columns = [{columns}]
"#,
            cert = server.0.display(),
            key = server.1.display(),
            ca = ca_file.display(),
            log = served_log.display(),
            parquet = parquet.display(),
        );
        let config_file = dir.join("connector.toml");
        std::fs::write(&config_file, toml).expect("connector config");
        let config = ConnectorConfig::load(&config_file).expect("connector config loads");
        let connector = Connector::open(config.clone()).await.expect("connector opens");
        let running = Arc::clone(&connector).start().await.expect("connector starts");

        let client = creditgate_certs::tls::client_config(&ca_file, Some((&gateway.0, &gateway.1)), &[b"h2"])
            .expect("client TLS");
        let channel =
            creditgate_certs::tls::channel(&running.addr.to_string(), "localhost", client, Duration::from_secs(3))
                .expect("channel");
        let source = Arc::new(RemoteSource::new("diff".parse().expect("source name"), channel, Deadlines::default()));
        let infos = source.tables().await.expect("GetTables");
        let ctx = SessionContext::new();
        for storage in STORAGES {
            let info = infos.iter().find(|t| t.table == storage.table()).expect("table advertised");
            let on = RemoteTable::new(Arc::clone(&source), info.table.clone(), Arc::clone(&info.schema));
            let off = RemoteTable::new(Arc::clone(&source), info.table.clone(), Arc::clone(&info.schema))
                .with_pushdown(false);
            ctx.register_table(format!("on_{}", storage.table()).as_str(), Arc::new(on)).expect("register");
            ctx.register_table(format!("off_{}", storage.table()).as_str(), Arc::new(off)).expect("register");
        }
        Federation {
            ctx,
            served_log,
            running: Some(running),
            connector,
            config,
            source,
            infos,
            _tmp: tmp,
            _scratch: scratch,
        }
    }

    /// Runs `SELECT * FROM <prefix>_<table> WHERE <predicate>`.
    async fn run(&self, prefix: &str, storage: Storage, predicate: &str) -> Outcome {
        let sql = format!("SELECT * FROM {prefix}_{} WHERE {predicate}", storage.table());
        let plan = match self.ctx.sql(&sql).await {
            Ok(frame) => frame.create_physical_plan().await,
            Err(e) => Err(e),
        };
        let plan = match plan {
            Ok(plan) => plan,
            Err(e) => return Outcome { rows: Err(e), sent: Vec::new() },
        };
        let mut sent = Vec::new();
        remote_sql(&plan, &mut sent);
        let rows = datafusion::physical_plan::collect(plan, self.ctx.task_ctx()).await.map(|b| sorted_rows(&b));
        Outcome { rows, sent }
    }

    async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("stop");
        }
    }
}

/// The answer to one query, and the SQL sent to the connector for it.
struct Outcome {
    rows: Result<Vec<String>, DataFusionError>,
    sent: Vec<String>,
}

impl Outcome {
    fn pushed(&self) -> bool {
        self.sent.iter().any(|s| s.contains(" WHERE "))
    }
}

fn remote_sql(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<String>) {
    if let Some(scan) = plan.downcast_ref::<RemoteScanExec>() {
        out.push(scan.sql().to_string());
    }
    for child in plan.children() {
        remote_sql(child, out);
    }
}

/// Rows rendered as sorted strings (multiset comparison; `-0.0`, `NaN` and
/// NULL all render distinctly).
fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
    let options = arrow::util::display::FormatOptions::default().with_null("∅");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter"))
            .collect();
        for row in 0..batch.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(row).to_string()).collect::<Vec<_>>().join("|"));
        }
    }
    rows.sort();
    rows
}

// ------------------------------------------------------------ the predicates

const TEXT_LITERALS: &[&str] = &[
    "''",
    "' '",
    "'a'",
    "'A'",
    "'a '",
    "'abc'",
    "'ABC'",
    "'it''s'",
    "'a\\b'",
    "'a\\'",
    "'a%b'",
    "'a_b'",
    "'a!%'",
    "'100%'",
    "'é'",
    "'E'",
    "'青岛澜屿'",
    "'😀'",
    "'a\u{0}b'",
    "'O''''Brien'",
    "'nul'",
    "NULL",
    "upper('abc')",
];
const PATTERNS: &[&str] = &[
    "'a%'",
    "'%'",
    "'_'",
    "'a\\%'",
    "'a\\_b'",
    "'%\\'",
    "'a!%'",
    "'%b%'",
    "'A%'",
    "'é%'",
    "''",
    "'%\\\\'",
    "'_%_'",
    "'a\u{0}%'",
    "'%''%'",
    "'青%'",
    "'\\a%'",
];
const ESCAPES: &[&str] = &["", " ESCAPE '!'", " ESCAPE '\\'", " ESCAPE 'a'"];
const INT_LITERALS: &[&str] =
    &["0", "-1", "1", "42", "2147483647", "-2147483648", "2147483648", "1.5", "1e308 * 10", "NULL", "CAST(7 AS INT)"];
const LONG_LITERALS: &[&str] =
    &["0", "-1", "42", "9223372036854775807", "-9223372036854775808", "1000000007", "0.5", "NULL"];
const FLOAT_LITERALS: &[&str] = &[
    "0.0",
    "-0.0",
    "1.5",
    "-1.5",
    "1e308",
    "1e308 * 10",
    "-1e308 * 10",
    "CAST('NaN' AS DOUBLE)",
    "-CAST('NaN' AS DOUBLE)",
    "CAST('Infinity' AS DOUBLE)",
    "CAST('-inf' AS DOUBLE)",
    "0.1",
    "2.2250738585072014e-308",
    "1e15",
    "-2.5e-7",
    "1",
    "NULL",
];
const AMOUNT_LITERALS: &[&str] = &[
    "0",
    "-0.5",
    "12345.67",
    "12345.675",
    "CAST(12345.67 AS DECIMAL(12,2))",
    "9999999999.99",
    "-9999999999.99",
    "0.01",
    "1e308 * 10",
    "NULL",
];
const BIG_LITERALS: &[&str] = &[
    "0",
    "1",
    "CAST('0.0000000001' AS DECIMAL(38,10))",
    "CAST('1234567890123456789012345678.1234567890' AS DECIMAL(38,10))",
    "CAST('9999999999999999999999999999.9999999999' AS DECIMAL(38,10))",
    "CAST('-9999999999999999999999999999.9999999999' AS DECIMAL(38,10))",
    "1234567890123456789012345678.1234567890",
    "NULL",
];
const DATE_LITERALS: &[&str] = &[
    "DATE '2024-02-29'",
    "DATE '1970-01-01'",
    "DATE '1000-01-01'",
    "DATE '0001-01-01'",
    "DATE '9999-12-31'",
    "'2000-01-01'",
    "NULL",
];
const TS_LITERALS: &[&str] = &[
    "TIMESTAMP '2024-02-29 08:30:00.123456'",
    "TIMESTAMP '2024-02-29 08:30:00'",
    "TIMESTAMP '1999-12-31 23:59:59'",
    "'2024-02-29T08:30:00.123456'",
    "TIMESTAMP '1970-01-01 00:00:00'",
    "arrow_cast(TIMESTAMP '2038-01-01 00:00:00', 'Timestamp(µs)')",
    "NULL",
];
const TSTZ_LITERALS: &[&str] = &[
    "TIMESTAMP '2024-02-29 08:30:00'",
    "'2024-02-29T08:30:00.123456Z'",
    "'2024-02-29T16:30:00.123456+08:00'",
    "arrow_cast('2000-01-01T00:00:00Z', 'Timestamp(µs, \"UTC\")')",
    "TIMESTAMP '1970-01-01 00:00:01'",
    "NULL",
];
const BOOL_LITERALS: &[&str] = &["TRUE", "FALSE", "NULL"];
const OPS: &[&str] = &["=", "<>", "<", "<=", ">", ">="];
/// Predicates that contain a function, arithmetic or two columns: never
/// pushed (the shape masked columns take), checked all the same.
const GATEWAY_ONLY: &[&str] = &[
    "upper(s) = 'ABC'",
    "length(s2) > 2",
    "i + 1 > 2",
    "s = s2",
    "abs(f) > 1",
    "lower(s2) LIKE 'a%'",
    "CAST(amount AS DOUBLE) > 0.5",
];

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    proptest::sample::select(list)
}

fn column_atom(column: &'static str, literals: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        4 => (pick(OPS), pick(literals)).prop_map(move |(op, l)| format!("{column} {op} {l}")),
        1 => (pick(OPS), pick(literals)).prop_map(move |(op, l)| format!("{l} {op} {column}")),
        1 => Just(format!("{column} IS NULL")),
        1 => Just(format!("{column} IS NOT NULL")),
        1 => (proptest::collection::vec(pick(literals), 1..4), any::<bool>())
            .prop_map(move |(ls, not)| format!("{column} {}IN ({})", if not { "NOT " } else { "" }, ls.join(", "))),
        1 => (pick(literals), pick(literals), any::<bool>()).prop_map(move |(lo, hi, not)| {
            format!("{column} {}BETWEEN {lo} AND {hi}", if not { "NOT " } else { "" })
        }),
    ]
    .boxed()
}

fn like_atom(column: &'static str) -> BoxedStrategy<String> {
    (pick(PATTERNS), pick(ESCAPES), any::<bool>(), any::<bool>())
        .prop_map(move |(pattern, escape, not, ilike)| {
            let like = if ilike { "ILIKE" } else { "LIKE" };
            format!("{column} {}{like} {pattern}{escape}", if not { "NOT " } else { "" })
        })
        .boxed()
}

fn atom() -> BoxedStrategy<String> {
    prop_oneof![
        3 => column_atom("s", TEXT_LITERALS),
        2 => column_atom("s2", TEXT_LITERALS),
        3 => like_atom("s"),
        2 => like_atom("s2"),
        2 => column_atom("i", INT_LITERALS),
        1 => column_atom("n", LONG_LITERALS),
        3 => column_atom("f", FLOAT_LITERALS),
        2 => column_atom("amount", AMOUNT_LITERALS),
        1 => column_atom("big", BIG_LITERALS),
        2 => column_atom("d", DATE_LITERALS),
        2 => column_atom("ts", TS_LITERALS),
        2 => column_atom("tstz", TSTZ_LITERALS),
        1 => column_atom("b", BOOL_LITERALS),
        1 => pick(&["b", "NOT b", "b IS TRUE", "b IS NOT FALSE", "b IS UNKNOWN", "b = TRUE", "b <> FALSE"])
            .prop_map(str::to_string),
        1 => pick(GATEWAY_ONLY).prop_map(str::to_string),
    ]
    .boxed()
}

fn predicate() -> impl Strategy<Value = String> {
    atom().prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) AND ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) OR ({b})")),
            inner.prop_map(|a| format!("NOT ({a})")),
        ]
    })
}

/// Tallies of the property test, per storage.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    checked: usize,
    pushed: usize,
    both_failed: usize,
}

/// The same answer with and without pushdown, or a failure on both sides
/// that does not come from the connector.
fn compare(storage: Storage, predicate: &str, on: &Outcome, off: &Outcome) -> Result<(), String> {
    let from_connector = |e: &DataFusionError| SourceError::find(e).is_some();
    match (&on.rows, &off.rows) {
        (Ok(a), Ok(b)) if a == b => Ok(()),
        (Ok(a), Ok(b)) => Err(format!(
            "{storage:?}: `{predicate}` answers differently with pushdown ({} rows) and without ({} rows)\n\
             sent: {:?}\nwith: {a:?}\nwithout: {b:?}",
            a.len(),
            b.len(),
            on.sent
        )),
        (Err(e), _) if from_connector(e) => {
            Err(format!("{storage:?}: `{predicate}` failed at the connector with pushdown: {e}\nsent: {:?}", on.sent))
        }
        (Err(_), Err(_)) => Ok(()),
        (Err(e), Ok(_)) => {
            Err(format!("{storage:?}: `{predicate}` fails only with pushdown: {e}\nsent: {:?}", on.sent))
        }
        (Ok(_), Err(e)) => {
            Err(format!("{storage:?}: `{predicate}` fails only without pushdown: {e}\nsent: {:?}", on.sent))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_predicates_answer_the_same_with_and_without_pushdown() {
    let federation = Federation::start().await;
    let started = Instant::now();
    // Generate first (proptest's runner is synchronous), then run each
    // predicate on every storage.
    // A fixed seed: the same predicates on every run (reproducible failures).
    let config = Config { cases: CASES, failure_persistence: None, ..Config::default() };
    let rng = TestRng::deterministic_rng(config.rng_algorithm);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let mut predicates = Vec::new();
    let strategy = predicate();
    while predicates.len() < CASES as usize {
        let tree = strategy.new_tree(&mut runner).expect("generate");
        predicates.push(tree.current());
    }
    // The red team's cases are always among them.
    predicates.extend(
        ["f > 1e308 * 10", "f > CAST('NaN' AS DOUBLE)", "s LIKE 'a!%' ESCAPE '!'", "f = -0.0", "f < 0.0"]
            .map(str::to_string),
    );
    let mut tallies = [Tally::default(); 3];
    let mut failures = Vec::new();
    for predicate in &predicates {
        for (storage, tally) in STORAGES.iter().zip(tallies.iter_mut()) {
            let on = federation.run("on", *storage, predicate).await;
            let off = federation.run("off", *storage, predicate).await;
            assert!(!off.pushed(), "nothing is pushed without pushdown: {:?}", off.sent);
            tally.checked += 1;
            tally.pushed += usize::from(on.pushed());
            tally.both_failed += usize::from(on.rows.is_err() && off.rows.is_err());
            if let Err(message) = compare(*storage, predicate, &on, &off) {
                failures.push(message);
            }
        }
    }
    let elapsed = started.elapsed();
    for (storage, tally) in STORAGES.iter().zip(&tallies) {
        eprintln!(
            "differential {storage:?}: {} predicates checked ({} pushed at least in part, {} failing on both sides)",
            tally.checked, tally.pushed, tally.both_failed
        );
    }
    eprintln!("differential: {} predicates per storage, 3 storages, {elapsed:?}", predicates.len());
    federation.stop().await;
    assert!(failures.is_empty(), "{} differences:\n{}", failures.len(), failures.join("\n\n"));
    for tally in &tallies {
        assert!(tally.pushed * 4 >= tally.checked, "the test must exercise pushdown: {tally:?}");
        assert!(tally.both_failed * 2 < tally.checked, "most predicates must plan: {tally:?}");
    }
}

// ------------------------------------------------------- the red team's cases

/// `sql` with its single-quoted strings blanked out.
fn outside_strings(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        if c == '\'' {
            quoted = !quoted;
            out.push(' ');
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

/// Whether `sql` has a bare `inf`, `infinity` or `nan` word (which a
/// connector would read as a column name).
fn has_bare_non_finite(sql: &str) -> bool {
    outside_strings(sql)
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .any(|word| matches!(word.to_ascii_lowercase().as_str(), "inf" | "infinity" | "nan"))
}

impl Federation {
    /// Waits until the connector's served-query log has a record of `sql`.
    async fn served(&self, sql: &str) -> bool {
        for _ in 0..50 {
            if self.served_sql().iter().any(|s| s == sql) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn served_sql(&self) -> Vec<String> {
        ServedLog::read_all(&self.served_log).unwrap_or_default().into_iter().map(|r| r.sql).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_team_predicates_stay_in_the_gateway_and_normal_ones_are_pushed() {
    let federation = Federation::start().await;
    // (red-team predicate, a normal predicate on the same column, what the
    // connector must receive for the normal one)
    let cases = [
        ("f > 1e308 * 10", "f = 1.5", "(\"f\" = CAST('1.5' AS DOUBLE))"),
        // (DataFusion writes a short IN list as ORs.)
        (
            "f > CAST('NaN' AS DOUBLE)",
            "f IN (1.5, -1.5)",
            "((\"f\" = CAST('1.5' AS DOUBLE)) OR (\"f\" = CAST('-1.5' AS DOUBLE)))",
        ),
        // Both mean "the text `a%`", which one row holds.
        ("s LIKE 'a!%' ESCAPE '!'", "s LIKE 'a\\%'", "(\"s\" LIKE 'a\\%')"),
    ];
    for storage in STORAGES {
        for (red, control, sent) in cases {
            let on = federation.run("on", storage, red).await;
            let off = federation.run("off", storage, red).await;
            compare(storage, red, &on, &off).unwrap_or_else(|e| panic!("{e}"));
            assert!(!on.pushed(), "{storage:?}: `{red}` must stay in the gateway: {:?}", on.sent);
            if refused_while_planning(red) {
                // The engine refuses it before any request: nothing reaches
                // the connector, with pushdown or without.
                assert!(on.sent.is_empty() && off.sent.is_empty(), "{storage:?}: `{red}` sent {:?}", on.sent);
            } else {
                let sql = on.sent.first().cloned().unwrap_or_default();
                assert!(federation.served(&sql).await, "{storage:?}: the connector ran {:?}", on.sent);
            }
            match &on.rows {
                // DataFusion orders NaN above +inf: the NaN rows (not
                // MariaDB's, which has none) are the answer; PostgreSQL's,
                // stored with the sign bit, are served as its one NaN.
                Ok(rows) if red.starts_with("f > 1e308") => {
                    assert_eq!(rows.is_empty(), storage == Storage::Mariadb, "{storage:?}: {rows:?}")
                }
                Ok(rows) if red.contains("NaN") => assert!(rows.is_empty(), "{storage:?}: {rows:?}"),
                Ok(rows) => panic!("{storage:?}: `{red}` is refused by the engine, got {rows:?}"),
                Err(e) => {
                    // The gateway's own refusal, on a raw column as on a
                    // masked one: never the connector's words.
                    assert!(red.contains("ESCAPE"), "{storage:?}: `{red}`: {e}");
                    assert!(SourceError::find(e).is_none(), "{storage:?}: `{red}`: {e}");
                    assert!(e.to_string().contains("escape"), "{storage:?}: `{red}`: {e}");
                }
            }

            let on = federation.run("on", storage, control).await;
            let off = federation.run("off", storage, control).await;
            compare(storage, control, &on, &off).unwrap_or_else(|e| panic!("{e}"));
            assert!(on.rows.as_ref().is_ok_and(|r| !r.is_empty()), "{storage:?}: `{control}` finds rows");
            let sql = on.sent.first().cloned().unwrap_or_default();
            assert!(sql.ends_with(&format!(" WHERE {sent}")), "{storage:?}: `{control}` pushed as {sql}");
            assert!(federation.served(&sql).await, "{storage:?}: the connector's log shows {sql}");
        }
    }
    // Nothing the connector ever received has a bare non-finite word. Each
    // case ran four queries per storage (red and control, with and without
    // pushdown), less the two that the engine refused while planning.
    let served = federation.served_sql();
    let refused = cases.iter().filter(|(red, _, _)| refused_while_planning(red)).count();
    assert!(served.len() >= (4 * cases.len() - 2 * refused) * STORAGES.len(), "{} records", served.len());
    assert!(!served.iter().any(|s| has_bare_non_finite(s)), "{served:?}");
    federation.stop().await;
}

/// Whether the gateway's engine refuses `predicate` while planning (a
/// `LIKE` escape other than the backslash), so that no scan is ever sent.
fn refused_while_planning(predicate: &str) -> bool {
    predicate.contains(" ESCAPE '!'")
}

#[test]
fn bare_non_finite_words_are_found_outside_strings_only() {
    assert!(has_bare_non_finite("SELECT * FROM t WHERE (f > inf)"));
    assert!(has_bare_non_finite("SELECT * FROM t WHERE (f > NaN)"));
    assert!(!has_bare_non_finite("SELECT * FROM t WHERE (f > CAST('Infinity' AS DOUBLE))"));
    assert!(!has_bare_non_finite("SELECT \"info\" FROM t WHERE (s = 'nan')"));
}

// ------------------------------------------------------------- the second hop

/// What PostgreSQL last ran on the connector's pooled connections, for
/// statements containing `marker`.
async fn pg_statements(admin: &tokio_postgres::Client, marker: &str) -> Vec<String> {
    admin
        .query(
            "SELECT query FROM pg_stat_activity WHERE application_name = 'creditgate-connector' AND query LIKE $1",
            &[&format!("%{marker}%")],
        )
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_lets_postgres_evaluate_only_what_it_evaluates_exactly() {
    let federation = Federation::start().await;
    let admin = pg().await;
    let marker = unique("mark");
    // `s` is `COLLATE "C"`: equality and order are byte-wise, as in
    // DataFusion, so both go to PostgreSQL. `s2` has the database's default
    // collation: its ordering stays in the connector's engine. `i` is an
    // integer: exact. The gateway pushes all three to the connector.
    // (pg_stat_activity keeps each connection's last statement only: it is
    // read before the query without pushdown reuses the pooled connection.)
    let predicate = format!("(s = '{marker}' OR s >= 'zz{marker}') AND s2 > 'a' AND i <> 123456789");
    let on = federation.run("on", Storage::Postgres, &predicate).await;
    let ran = pg_statements(&admin, &marker).await;
    let off = federation.run("off", Storage::Postgres, &predicate).await;
    compare(Storage::Postgres, &predicate, &on, &off).unwrap_or_else(|e| panic!("{e}"));
    let sent = on.sent.first().cloned().unwrap_or_default();
    assert!(sent.contains("\"s2\" > 'a'") && sent.contains(&marker), "the gateway pushed it all: {sent}");
    let statement = ran.first().unwrap_or_else(|| panic!("PostgreSQL ran nothing with {marker}: {ran:?}"));
    eprintln!("PostgreSQL ran: {statement}");
    // The select list names every column; the conditions are after WHERE.
    let (_, conditions) =
        statement.split_once(" WHERE ").unwrap_or_else(|| panic!("no WHERE in what PostgreSQL ran: {statement}"));
    assert!(conditions.contains(&format!("'zz{marker}'")), "the byte-wise order went to PostgreSQL: {statement}");
    assert!(conditions.contains("123456789"), "the integer comparison went to PostgreSQL: {statement}");
    assert!(!conditions.contains("s2"), "the collation-dependent order stayed in the connector: {statement}");

    // Negative control on the same column: equality under the default
    // collation goes to PostgreSQL as a pre-filter (the connector checks it again).
    let predicate = format!("s2 = '{marker}x'");
    let on = federation.run("on", Storage::Postgres, &predicate).await;
    let ran = pg_statements(&admin, &format!("{marker}x")).await;
    let off = federation.run("off", Storage::Postgres, &predicate).await;
    compare(Storage::Postgres, &predicate, &on, &off).unwrap_or_else(|e| panic!("{e}"));
    let conditions: Vec<&str> = ran.iter().filter_map(|s| s.split_once(" WHERE ").map(|(_, c)| c)).collect();
    assert!(conditions.iter().any(|c| c.contains("\"s2\" =")), "equality went to PostgreSQL: {ran:?}");
    federation.stop().await;
}

// ------------------------------------------------ prepared point reads

/// The rows of a remote read whose row policy is `mandatory`, with the
/// placeholders of its scan bound to `parameters` (if any).
async fn read_with(
    federation: &Federation,
    storage: Storage,
    mandatory: datafusion::logical_expr::Expr,
    parameters: Option<&RecordBatch>,
) -> Result<Vec<String>, DataFusionError> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    let info = federation.infos.iter().find(|t| t.table == storage.table()).expect("table advertised");
    let table = RemoteTable::new(Arc::clone(&federation.source), info.table.clone(), Arc::clone(&info.schema))
        .with_mandatory_filter(Some(mandatory));
    let plan = federation.ctx.read_table(Arc::new(table))?.create_physical_plan().await?;
    let plan = match parameters {
        None => plan,
        Some(row) => {
            plan.transform_down(|node| {
                let Some(scan) = node.downcast_ref::<RemoteScanExec>() else { return Ok(Transformed::no(node)) };
                assert_eq!(scan.placeholders(), row.num_columns(), "the scan's SQL: {}", scan.sql());
                Ok(Transformed::yes(Arc::new(scan.with_parameters(row.clone())) as Arc<dyn ExecutionPlan>))
            })?
            .data
        }
    };
    let batches = datafusion::physical_plan::collect(plan, federation.ctx.task_ctx()).await?;
    Ok(sorted_rows(&batches))
}

/// One parameter row holding `value` as `$1`.
fn parameter_row(value: &datafusion::common::ScalarValue) -> RecordBatch {
    let array = value.to_array().expect("array");
    let schema = Arc::new(Schema::new(vec![Field::new("$1", value.data_type(), true)]));
    RecordBatch::try_new(schema, vec![array]).expect("parameter row")
}

/// A point read as a prepared statement (the subject key bound as `$1`)
/// answers exactly what the same read with the key written as a literal
/// answers, on Parquet, PostgreSQL and MariaDB, for every value of every
/// key-like column type the datasets use (text under both collations,
/// integers, decimals, dates, timestamps with and without zone, booleans);
/// SQL-shaped values stay values (they match nothing, as their literals do);
/// each statement is planned once at the connector and reused; the served
/// log records the statement with `$1` and its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_point_reads_answer_what_literal_reads_answer() {
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::{col, lit, placeholder};
    let federation = Federation::start().await;
    let columns = ["id", "s", "s2", "i", "n", "amount", "d", "ts", "tstz", "b"];
    let injections = ["x' OR '1'='1", "'; DROP TABLE pq; --", "$1", "a\\' OR 1=1 -- ", "' UNION SELECT * FROM pg --"];
    let before = federation.connector.statement_counts();
    let mut compared = 0usize;
    let mut statements = 0u64;
    let mut failures = Vec::new();
    for storage in STORAGES {
        for column in columns {
            // Every distinct value the table holds in this column.
            let sql = format!("SELECT DISTINCT {column} FROM off_{} WHERE {column} IS NOT NULL", storage.table());
            let batches = federation.ctx.sql(&sql).await.expect("plan").collect().await.expect("distinct values");
            let mut values: Vec<ScalarValue> = Vec::new();
            for batch in &batches {
                for row in 0..batch.num_rows() {
                    values.push(ScalarValue::try_from_array(batch.column(0), row).expect("value"));
                }
            }
            if matches!(values.first().map(ScalarValue::data_type), Some(DataType::Utf8 | DataType::Utf8View)) {
                values.extend(injections.iter().map(|v| ScalarValue::Utf8(Some(v.to_string()))));
            }
            assert!(!values.is_empty(), "{storage:?}.{column} has values");
            statements += 1;
            for value in values {
                let literal = read_with(&federation, storage, col(column).eq(lit(value.clone())), None).await;
                let bound =
                    read_with(&federation, storage, col(column).eq(placeholder("$1")), Some(&parameter_row(&value)))
                        .await;
                compared += 1;
                match (&literal, &bound) {
                    (Ok(a), Ok(b)) if a == b => {
                        if injections.iter().any(|i| value == ScalarValue::Utf8(Some(i.to_string()))) {
                            assert!(b.is_empty(), "{storage:?}.{column} = {value:?} matched rows: {b:?}");
                        }
                    }
                    _ => {
                        failures.push(format!("{storage:?}.{column} = {value:?}: literal {literal:?}, bound {bound:?}"))
                    }
                }
            }
        }
    }
    let after = federation.connector.statement_counts();
    eprintln!("prepared reads: {compared} values compared over {statements} statements; connector: {after:?}");
    let served = ServedLog::read_all(&federation.served_log).expect("served log");
    let handles = federation.source.prepared_handles() as u64;

    // A restarted connector (a new process: new handle key, nothing kept)
    // refuses the old handles as unknown; the gateway prepares again, once,
    // and the read answers as before.
    let mut federation = federation;
    let addr = federation.running.as_ref().map(|r| r.addr).expect("running");
    let expected = read_with(&federation, Storage::Parquet, col("s").eq(lit("abc")), None).await.expect("literal read");
    federation.running.take().expect("running").stop().await.expect("stop");
    let mut config = federation.config.clone();
    config.listen = addr;
    let restarted = Connector::open(config).await.expect("connector opens again");
    federation.running = Some(Arc::clone(&restarted).start().await.expect("connector restarts on the same port"));
    let again = read_with(
        &federation,
        Storage::Parquet,
        col("s").eq(placeholder("$1")),
        Some(&parameter_row(&ScalarValue::Utf8(Some("abc".into())))),
    )
    .await
    .expect("a prepared read after the restart");
    assert_eq!(again, expected, "the same rows after the restart");
    assert!(!expected.is_empty(), "the control read finds rows");
    assert_eq!(restarted.statement_counts().planned, 1, "prepared again at the new connector");
    // A parameter row that does not fit the statement is refused, naming the problem.
    let two = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("$1", DataType::Utf8, true), Field::new("$2", DataType::Utf8, true)])),
        vec![Arc::new(StringArray::from(vec!["a"])), Arc::new(StringArray::from(vec!["b"]))],
    )
    .expect("row");
    let mismatched = col("s").eq(placeholder("$1")).and(col("s2").eq(placeholder("$2")));
    let ok = read_with(&federation, Storage::Parquet, mismatched, Some(&two)).await;
    assert!(ok.is_ok(), "two placeholders, two values: {ok:?}");
    let wrong_type = parameter_row(&ScalarValue::Utf8(Some("not a number".into())));
    let refused = read_with(&federation, Storage::Parquet, col("i").eq(placeholder("$1")), Some(&wrong_type)).await;
    let message = refused.expect_err("a text value for an integer column is refused").to_string();
    assert!(message.contains("parameter $1") && message.contains("does not convert"), "{message}");
    federation.stop().await;
    assert!(failures.is_empty(), "{} differences:\n{}", failures.len(), failures.join("\n"));
    assert!(compared > 100, "the test must compare many values: {compared}");
    // One plan per statement; every other execution reused it.
    assert_eq!(after.planned - before.planned, statements, "each statement planned once");
    assert_eq!(after.reused - before.reused, compared as u64, "every execution reused a kept plan");
    assert_eq!(handles, statements, "one handle per statement");
    let prepared: Vec<_> = served.iter().filter(|r| !r.parameters.is_empty()).collect();
    assert_eq!(prepared.len(), compared, "each prepared read is in the served log");
    assert!(
        prepared.iter().all(|r| r.sql.contains("$1") && r.parameters.len() == 1),
        "statement with $1 and its value"
    );
    assert!(
        prepared.iter().any(|r| r.parameters[0] == "x' OR '1'='1"),
        "the value is logged as received: {:?}",
        prepared.iter().map(|r| &r.parameters).take(3).collect::<Vec<_>>()
    );
}
