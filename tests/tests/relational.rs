//! Connectors in front of PostgreSQL and MariaDB/MySQL (the servers on
//! 127.0.0.1:5432 and :3306, database `test`): type mapping over mTLS,
//! projection/filter/limit pushdown seen from the database's side, failures
//! that name the table while the other tables keep serving, query timeouts
//! enforced by the database itself, identical lookups whether a source is
//! served from Parquet, PostgreSQL or MariaDB — at the connector and
//! through the whole gateway — and the `demo --backend mixed` federation.
//!
//! Every test works in its own uniquely named schemas/databases and drops
//! them when it ends, failed or not (guards), so tests run in parallel and
//! rerun cleanly.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, TimeUnit};
use creditgate_certs::ca::{DevCa, IssueRequest};
use creditgate_connector::{Connector, ConnectorConfig, DatabaseSource, RunningConnector, TableConfig, TableFormat};
use creditgate_tests::{LoadedSchemas, share_lab_data, start_lab_on};
use creditgate_tooling::client::{ClientIdentity, FlightClient, flight_error_text};
use creditgate_tooling::demo::Lab;
use creditgate_tooling::demo_backend::{BackendArgs, DemoBackend, Placement, source_tables};
use mysql_async::prelude::Queryable;
use serde_json::{Value, json};

const GATEWAY: &str = "spiffe://credit.example/org/creditgate-gateway";
const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// A schema name no other test run uses.
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

/// A scratch PostgreSQL schema or MariaDB database, dropped (with
/// everything in it) when the guard goes out of scope, test failure included.
enum Scratch {
    Postgres(String),
    Mysql(String),
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let (is_postgres, name) = match self {
            Scratch::Postgres(name) => (true, name.clone()),
            Scratch::Mysql(name) => (false, name.clone()),
        };
        // A runtime of its own on a thread of its own: `drop` may run on a runtime thread.
        let outcome = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                if is_postgres {
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

/// Certificates for one connector and its caller.
struct Pki {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    ca: PathBuf,
    server: (PathBuf, PathBuf),
    gateway: (PathBuf, PathBuf),
}

fn pki() -> Pki {
    creditgate_certs::install_default_provider();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    let ca = DevCa::init(&dir.join("ca"), "test CA").expect("ca");
    let server = ca
        .issue(&IssueRequest::server("db-connector", vec!["localhost".into()], vec![Ipv4Addr::LOCALHOST.into()]))
        .expect("issue")
        .write(&dir, "server")
        .expect("write");
    let gateway = ca
        .issue(&IssueRequest::client("creditgate-gateway", "creditgate gateway", "gateway"))
        .expect("issue")
        .write(&dir, "gateway")
        .expect("write");
    Pki { ca: dir.join("ca").join("ca.pem"), _tmp: tmp, dir, server, gateway }
}

impl Pki {
    async fn start(&self, name: &str, tables: Vec<TableConfig>) -> RunningConnector {
        let config = ConnectorConfig {
            crl_check_interval_seconds: creditgate_certs::revocation::DEFAULT_CRL_CHECK_INTERVAL.as_secs(),
            max_connection_age_seconds: creditgate_certs::revocation::DEFAULT_MAX_CONNECTION_AGE.as_secs(),
            name: name.into(),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            cert: self.server.0.clone(),
            key: self.server.1.clone(),
            client_ca: self.ca.clone(),
            crls: vec![],
            enforce_crl_expiry: false,
            allowed_clients: vec![GATEWAY.into()],
            served_log: self.dir.join(format!("served-{name}-{}.jsonl", unique("log"))),
            memory_limit_bytes: 256 * 1024 * 1024,
            handshake_timeout_ms: 5_000,
            tables,
        };
        Connector::open(config).await.expect("connector opens").start().await.expect("connector starts")
    }

    fn client(&self, running: &RunningConnector) -> FlightClient {
        let who = ClientIdentity { ca: &self.ca, cert: Some((&self.gateway.0, &self.gateway.1)) };
        FlightClient::connect(&running.addr.to_string(), "localhost", &who).expect("client")
    }
}

fn database(connection: &str, schema: &str) -> DatabaseSource {
    DatabaseSource {
        connection: connection.into(),
        schema: schema.into(),
        password_env: None,
        password_file: None,
        query_timeout_ms: 10_000,
    }
}

fn table(name: &str, format: TableFormat, source_table: &str, columns: &[&str]) -> TableConfig {
    TableConfig {
        name: name.into(),
        format,
        path: PathBuf::new(),
        source_table: Some(source_table.into()),
        columns: columns.iter().map(|c| c.to_string()).collect(),
    }
}

async fn query(client: &mut FlightClient, sql: &str) -> Result<Vec<RecordBatch>, String> {
    client.query(sql).await.map_err(|e| flight_error_text(&e))
}

async fn rows(client: &mut FlightClient, sql: &str) -> Vec<String> {
    match query(client, sql).await {
        Ok(batches) => creditgate_tests::sorted_rows(&batches),
        Err(e) => panic!("{sql}: {e}"),
    }
}

fn types(batches: &[RecordBatch]) -> Vec<DataType> {
    batches.first().map(|b| b.schema().fields().iter().map(|f| f.data_type().clone()).collect()).unwrap_or_default()
}

const TYPE_COLUMNS: &[&str] = &["id", "t", "v", "n", "d", "ts", "tstz", "b"];

/// The rows both databases hold, as the connector must render them.
fn expected_type_rows(tz_suffix: &str) -> Vec<String> {
    vec![
        format!(
            "1|青岛澜屿优选电子商务有限公司|欧阳翊宸|12345.67|2024-02-29|2024-02-29T08:30:00.123456|2024-02-29T08:30:00{tz_suffix}|true"
        ),
        "2|||||||".to_string(),
        format!("3|plain ascii|x|-0.50|1970-01-01|1999-12-31T23:59:59|2000-01-01T00:00:00{tz_suffix}|false"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_types_nulls_and_chinese_over_mtls() {
    let schema = unique("pgtypes");
    let _scratch = Scratch::Postgres(schema.clone());
    let admin = pg().await;
    admin
        .batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.types (id bigint NOT NULL, t text, v varchar(40), n numeric(12,2), d date,
                                          ts timestamp, tstz timestamptz, b boolean, secret text);
             INSERT INTO {schema}.types VALUES
               (1, '青岛澜屿优选电子商务有限公司', '欧阳翊宸', 12345.67, '2024-02-29', '2024-02-29 08:30:00.123456',
                '2024-02-29 16:30:00+08', true, 'hidden'),
               (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
               (3, 'plain ascii', 'x', -0.5, '1970-01-01', '1999-12-31 23:59:59', '2000-01-01 00:00:00+00', false, 'h');"
        ))
        .await
        .expect("fixture");
    let pki = pki();
    let pg_table = table("types", TableFormat::Postgres(database(PG_URL, &schema)), "types", TYPE_COLUMNS);
    let running = pki.start("pgtypes", vec![pg_table]).await;
    let mut client = pki.client(&running);

    let batches = query(&mut client, "SELECT * FROM types").await.expect("select *");
    assert_eq!(
        types(&batches),
        vec![
            DataType::Int64,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Decimal128(12, 2),
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Boolean,
        ],
        "plain Arrow types"
    );
    assert_eq!(creditgate_tests::sorted_rows(&batches), expected_type_rows("Z"));
    // Filters on each type are answered correctly (and by the database).
    for (predicate, ids) in [
        ("t = '青岛澜屿优选电子商务有限公司'", "1"),
        ("v LIKE '欧阳%'", "1"),
        ("n > 0", "1"),
        ("d < DATE '2000-01-01'", "3"),
        ("ts >= TIMESTAMP '2024-01-01 00:00:00'", "1"),
        ("b", "1"),
        ("NOT b", "3"),
        ("t IS NULL", "2"),
        ("id = 3", "3"),
    ] {
        assert_eq!(
            rows(&mut client, &format!("SELECT id FROM types WHERE {predicate}")).await,
            vec![ids],
            "{predicate}"
        );
    }
    let error = query(&mut client, "SELECT secret FROM types").await.expect_err("unexposed column");
    assert!(error.contains("InvalidArgument"), "{error}");

    running.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_types_nulls_and_chinese_over_mtls() {
    let schema = unique("mytypes");
    let _scratch = Scratch::Mysql(schema.clone());
    let mut admin = mysql().await;
    admin
        .query_drop(format!(
            "CREATE DATABASE {schema} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
             CREATE TABLE {schema}.types (id BIGINT NOT NULL, t TEXT, v VARCHAR(40), n DECIMAL(12,2), d DATE,
                                          ts DATETIME(6), tstz TIMESTAMP(6) NULL, b BOOLEAN, secret TEXT);
             SET time_zone = '+00:00';
             INSERT INTO {schema}.types VALUES
               (1, '青岛澜屿优选电子商务有限公司', '欧阳翊宸', 12345.67, '2024-02-29', '2024-02-29 08:30:00.123456',
                '2024-02-29 08:30:00', TRUE, 'hidden'),
               (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
               (3, 'plain ascii', 'x', -0.5, '1970-01-01', '1999-12-31 23:59:59', '2000-01-01 00:00:00', FALSE, 'h');"
        ))
        .await
        .expect("fixture");
    let pki = pki();
    let my_table = table("types", TableFormat::Mysql(database(MYSQL_URL, &schema)), "types", TYPE_COLUMNS);
    let running = pki.start("mytypes", vec![my_table]).await;
    let mut client = pki.client(&running);

    let batches = query(&mut client, "SELECT * FROM types").await.expect("select *");
    assert_eq!(
        types(&batches),
        vec![
            DataType::Int64,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Decimal128(12, 2),
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Microsecond, None),
            // MySQL's TIMESTAMP stores UTC but carries no zone; the driver session runs in UTC.
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Boolean,
        ],
        "plain Arrow types; BOOLEAN (TINYINT(1)) is Boolean"
    );
    assert_eq!(creditgate_tests::sorted_rows(&batches), expected_type_rows(""));
    for (predicate, ids) in [
        ("t = '青岛澜屿优选电子商务有限公司'", "1"),
        ("v LIKE '欧阳%'", "1"),
        ("n > 0", "1"),
        ("d < DATE '2000-01-01'", "3"),
        ("b", "1"),
        ("NOT b", "3"),
        ("t IS NULL", "2"),
        // Binary collation: case matters, as it does on Parquet.
        ("t = 'PLAIN ASCII'", ""),
    ] {
        let got = rows(&mut client, &format!("SELECT id FROM types WHERE {predicate}")).await;
        let want: Vec<String> = if ids.is_empty() { vec![] } else { vec![ids.to_string()] };
        assert_eq!(got, want, "{predicate}");
    }
    running.stop().await.expect("stop");
}

/// Guards dropping what [`load_demo`] loaded into both databases.
type DemoSchemas = [LoadedSchemas; 2];

/// Generates scale-1 data in `dir` and loads `sources` into both databases
/// under a unique prefix; returns the backend arguments that point at them
/// and the guards that drop them again.
async fn load_demo(dir: &Path, sources: &[&str]) -> (creditgate_datagen::Manifest, BackendArgs, DemoSchemas) {
    let mut generate = creditgate_datagen::GenOptions::new(dir, chrono::Local::now().date_naive());
    generate.scale = 1;
    let manifest = creditgate_datagen::generate(&generate).expect("data");
    let args = BackendArgs { db_schema_prefix: format!("{}_", unique("demo")), ..BackendArgs::default() };
    let names: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    let guards = [
        LoadedSchemas::new(&BackendArgs { backend: DemoBackend::Postgres, ..args.clone() }, &names),
        LoadedSchemas::new(&BackendArgs { backend: DemoBackend::Mysql, ..args.clone() }, &names),
    ];
    let options = creditgate_datagen::load::LoadOptions {
        schema_prefix: args.db_schema_prefix.clone(),
        sources: Some(names.clone()),
        password_env: None,
        password_file: None,
    };
    let started = std::time::Instant::now();
    let pg_report = creditgate_datagen::load::load_postgres(dir, PG_URL, &options).await.expect("load postgres");
    let my_report = creditgate_datagen::load::load_mysql(dir, MYSQL_URL, &options).await.expect("load mysql");
    eprintln!(
        "loaded {} rows into PostgreSQL in {:?} and MariaDB in {:?} ({:?} in all)",
        pg_report.rows,
        pg_report.elapsed,
        my_report.elapsed,
        started.elapsed()
    );
    (manifest, args, guards)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_lookups_from_parquet_postgres_and_mariadb() {
    let sources = ["market", "platform_a", "traceability"];
    let pki = pki();
    let data = pki.dir.join("data");
    let (manifest, args, _schemas) = load_demo(&data, &sources).await;
    let featured = &manifest.featured;
    let lookups: Vec<(&str, String)> = vec![
        ("market", format!("SELECT * FROM enterprises WHERE credit_code = '{}'", featured.enterprise_credit_code)),
        ("market", format!("SELECT * FROM penalties WHERE credit_code = '{}'", featured.enterprise_credit_code)),
        ("market", "SELECT penalty_id, amount, is_public FROM penalties WHERE amount > 50000 AND NOT disputed".into()),
        ("market", "SELECT * FROM licences WHERE expiry_date < DATE '2026-01-01' ORDER BY licence_no LIMIT 7".into()),
        ("market", "SELECT status, count(*), sum(registered_capital) FROM enterprises GROUP BY status".into()),
        ("market", format!("SELECT * FROM enterprises WHERE name = '{}'", featured.enterprise_name)),
        ("platform_a", format!("SELECT * FROM shops WHERE owner_resident_id = '{}'", featured.individual_resident_id)),
        (
            "platform_a",
            format!("SELECT * FROM violations WHERE owner_credit_code = '{}'", featured.enterprise_credit_code),
        ),
        ("platform_a", "SELECT * FROM commitments".into()),
        ("traceability", "SELECT * FROM events WHERE event_time >= TIMESTAMP '2025-01-01 00:00:00'".into()),
        ("traceability", "SELECT * FROM products".into()),
    ];
    let mut nonempty = 0;
    for source in sources {
        let mut served = Vec::new();
        for placement in [Placement::Parquet, Placement::Postgres, Placement::Mysql] {
            let tables = source_tables(&manifest, &data, source, placement, &args);
            let running = pki.start(source, tables).await;
            let client = pki.client(&running);
            served.push((placement, running, client));
        }
        for (_, sql) in lookups.iter().filter(|(s, _)| *s == source) {
            let mut results = Vec::new();
            for (placement, _, client) in &mut served {
                let batches = query(client, sql).await.unwrap_or_else(|e| panic!("{placement:?} {sql}: {e}"));
                results.push((*placement, types(&batches), creditgate_tests::sorted_rows(&batches)));
            }
            let (_, parquet_types, parquet_rows) = &results[0];
            nonempty += usize::from(!parquet_rows.is_empty());
            for (placement, got_types, got_rows) in &results[1..] {
                assert_eq!(got_rows, parquet_rows, "{placement:?} differs from Parquet for {sql}");
                if !parquet_rows.is_empty() {
                    assert_eq!(got_types, parquet_types, "{placement:?} column types for {sql}");
                }
            }
        }
        for (_, running, _) in served {
            running.stop().await.expect("stop");
        }
    }
    assert!(nonempty >= 9, "the lookups must find data ({nonempty} non-empty)");
    // The demo's own `mixed` layout points at the same loaded schemas.
    assert_eq!(creditgate_tooling::demo_backend::placement(DemoBackend::Mixed, "platform_a"), Placement::Mysql);
}

/// Reads what PostgreSQL last ran on the connector's pooled connections.
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
async fn projection_filters_and_limit_run_in_the_database() {
    let sources = ["market"];
    let pki = pki();
    let data = pki.dir.join("data");
    let (manifest, args, _schemas) = load_demo(&data, &sources).await;
    let code = manifest.featured.enterprise_credit_code.clone();
    let schema = format!("{}market", args.db_schema_prefix);

    // --- PostgreSQL: the statement the server ran, from pg_stat_activity.
    let admin = pg().await;
    let running = pki.start("market", source_tables(&manifest, &data, "market", Placement::Postgres, &args)).await;
    let mut client = pki.client(&running);
    let lookup = format!("SELECT penalty_id, amount FROM penalties WHERE credit_code = '{code}'");
    let got = rows(&mut client, &lookup).await;
    assert!(!got.is_empty(), "the featured enterprise has penalties");
    let statements = pg_statements(&admin, &code).await;
    let sql =
        statements.iter().find(|s| s.contains("penalties")).unwrap_or_else(|| panic!("no statement: {statements:?}"));
    eprintln!("PostgreSQL ran: {sql}");
    assert!(sql.contains(&schema), "{sql}");
    assert!(sql.contains("WHERE") && sql.contains(&format!("'{code}'")), "filter pushed: {sql}");
    assert!(sql.contains("penalty_id") && sql.contains("amount") && !sql.contains("violation"), "projection: {sql}");
    assert!(!sql.contains('*'), "only the selected columns: {sql}");
    // One subject's rows are all the database reads: an index access whose
    // row count is the answer's, with nothing filtered out afterwards.
    let plan_text: Vec<String> = admin
        .query(&format!("EXPLAIN (ANALYZE, FORMAT TEXT) {sql}"), &[])
        .await
        .expect("explain")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    let plan_text = plan_text.join("\n");
    assert!(plan_text.contains("Index") && !plan_text.contains("Seq Scan"), "{plan_text}");
    assert!(plan_text.contains(&format!("rows={} ", got.len())), "reads {} rows: {plan_text}", got.len());

    let limited = rows(&mut client, "SELECT penalty_id FROM penalties WHERE amount > 1000 LIMIT 3").await;
    assert_eq!(limited.len(), 3);
    let statements = pg_statements(&admin, "LIMIT").await;
    let sql = statements.iter().find(|s| s.contains(&schema)).unwrap_or_else(|| panic!("no LIMIT: {statements:?}"));
    assert!(sql.contains("LIMIT 3") && sql.contains("amount") && sql.contains("1000"), "{sql}");
    running.stop().await.expect("stop");

    // --- MariaDB: the general log, switched on for this test and restored.
    let mut my = mysql().await;
    let (general, output): (String, String) =
        my.query_first("SELECT @@GLOBAL.general_log, @@GLOBAL.log_output").await.expect("read").expect("row");
    my.query_drop("SET GLOBAL log_output = 'TABLE'; SET GLOBAL general_log = 'ON'").await.expect("general log on");
    let running = pki.start("market", source_tables(&manifest, &data, "market", Placement::Mysql, &args)).await;
    let mut client = pki.client(&running);
    let my_got = rows(&mut client, &lookup).await;
    let my_limited = rows(&mut client, "SELECT penalty_id FROM penalties WHERE amount > 1000 LIMIT 3").await;
    let logged: Vec<String> = my
        .exec(
            "SELECT CONVERT(argument USING utf8mb4) FROM mysql.general_log \
             WHERE command_type IN ('Query', 'Execute') AND CONVERT(argument USING utf8mb4) LIKE ?",
            (format!("%{schema}%penalties%"),),
        )
        .await
        .expect("general log");
    my.query_drop(format!(
        "SET GLOBAL general_log = '{}'; SET GLOBAL log_output = '{output}'",
        if general == "1" { "ON" } else { "OFF" }
    ))
    .await
    .expect("restore general log");
    running.stop().await.expect("stop");
    assert_eq!(my_got, got, "same answer as PostgreSQL");
    assert_eq!(my_limited.len(), 3);
    let point = logged.iter().find(|s| s.contains(&code)).unwrap_or_else(|| panic!("no lookup logged: {logged:?}"));
    assert!(point.contains("WHERE") && point.contains("penalty_id") && !point.contains("violation"), "{point}");
    eprintln!("MariaDB ran: {point}");
    let limit = logged.iter().find(|s| s.contains("LIMIT")).unwrap_or_else(|| panic!("no LIMIT logged: {logged:?}"));
    assert!(limit.contains("LIMIT 3") && limit.contains("1000"), "{limit}");
    let explain: Vec<mysql_async::Row> = my.query(format!("EXPLAIN {point}")).await.expect("explain");
    let access: Option<String> = explain.first().and_then(|r| r.get("type"));
    assert_eq!(access.as_deref(), Some("ref"), "an index lookup, not a scan of every subject");
}

/// A TCP relay to PostgreSQL that can be cut, to take the database away mid-life.
struct Relay {
    addr: SocketAddr,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let tasks = Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = Arc::clone(&tasks);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                if let Ok(mut held) = held.lock() {
                    held.push(task);
                }
            }
        });
        Relay { addr, tasks, accept }
    }

    fn cut(&self) {
        self.accept.abort();
        if let Ok(tasks) = self.tasks.lock() {
            tasks.iter().for_each(|t| t.abort());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_tables_name_themselves_and_the_rest_keeps_serving() {
    let schema = unique("broken");
    let _scratch = Scratch::Postgres(schema.clone());
    let admin = pg().await;
    admin
        .batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.good (id bigint, name text);
             INSERT INTO {schema}.good VALUES (1, '张三'), (2, '李四');"
        ))
        .await
        .expect("fixture");
    let relay = Relay::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 5432))).await;
    let dead_port = {
        let probe = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("probe");
        probe.local_addr().expect("addr").port()
    }; // closed again: nothing listens there
    let pki = pki();
    let password_file = pki.dir.join("db.pw");
    std::fs::write(&password_file, "s3cret-xyz\n").expect("password file");
    let mut dead = database(&format!("postgres://postgres@127.0.0.1:{dead_port}/test"), &schema);
    dead.password_file = Some(password_file.clone());
    let mut relayed =
        database(&format!("postgres://postgres@127.0.0.1:{}/test?sslmode=disable", relay.addr.port()), &schema);
    relayed.query_timeout_ms = 2_000;
    let mut no_env = database(PG_URL, &schema);
    no_env.password_env = Some("CREDITGATE_TEST_UNSET_PASSWORD_VARIABLE".into());
    let pg_format = || TableFormat::Postgres(database(PG_URL, &schema));
    let tables = vec![
        table("good", pg_format(), "good", &["id", "name"]),
        table("same_pool", pg_format(), "good", &["name"]),
        table("missing_table", pg_format(), "nope", &["id"]),
        table("missing_column", pg_format(), "good", &["id", "salary"]),
        table("dead_server", TableFormat::Postgres(dead), "good", &["id"]),
        table("no_password", TableFormat::Postgres(no_env), "good", &["id"]),
        table("relayed", TableFormat::Postgres(relayed), "good", &["id", "name"]),
        table("missing_mysql", TableFormat::Mysql(database(MYSQL_URL, &schema)), "nope", &["id"]),
    ];
    let running = pki.start("broken", tables).await;
    let mut client = pki.client(&running);

    assert_eq!(rows(&mut client, "SELECT name FROM good").await, vec!["张三", "李四"]);
    assert_eq!(rows(&mut client, "SELECT name FROM same_pool WHERE name = '李四'").await, vec!["李四"]);
    assert_eq!(rows(&mut client, "SELECT id FROM relayed WHERE id = 2").await, vec!["2"]);
    for (name, reason) in [
        ("missing_table", "nope"),
        ("missing_column", "salary"),
        ("dead_server", "cannot connect"),
        ("no_password", "CREDITGATE_TEST_UNSET_PASSWORD_VARIABLE` is not set"),
        ("missing_mysql", "nope"),
    ] {
        let error = query(&mut client, &format!("SELECT * FROM {name}")).await.expect_err(name);
        assert!(error.starts_with("Unavailable"), "{name}: {error}");
        assert!(error.contains(&format!("table `{name}`")) && error.contains(reason), "{name}: {error}");
        assert!(!error.contains("s3cret"), "no password in errors: {error}");
    }
    // The database goes away under a table that was serving.
    relay.cut();
    let started = std::time::Instant::now();
    let error = query(&mut client, "SELECT name FROM relayed").await.expect_err("database gone");
    eprintln!("database gone: {error} after {:?}", started.elapsed());
    assert!(error.contains("table `relayed`"), "{error}");
    assert!(error.starts_with("DeadlineExceeded") || error.starts_with("Unavailable"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(8), "bounded by the table's timeout: {:?}", started.elapsed());
    // ... and everything else still answers.
    assert_eq!(rows(&mut client, "SELECT count(*) FROM good").await, vec!["2"]);
    running.stop().await.expect("stop");
}

// ------------------------------------------------- query timeouts in the database

/// Seconds the `slow` views sleep: well past the short timeout below, short
/// enough for the negative control (the same view under a long timeout).
const SLOW_SECONDS: u64 = 3;
/// The timeout of the tables that must time out.
const SHORT_TIMEOUT_MS: u64 = 1_000;

fn timed(format: TableFormat, timeout_ms: u64) -> TableFormat {
    match format {
        TableFormat::Postgres(db) => TableFormat::Postgres(DatabaseSource { query_timeout_ms: timeout_ms, ..db }),
        TableFormat::Mysql(db) => TableFormat::Mysql(DatabaseSource { query_timeout_ms: timeout_ms, ..db }),
        other => other,
    }
}

/// `good` and `slow` (a view that sleeps) under a short timeout, and
/// `patient` (the same view) under a long one. `sleeping` counts the
/// database sessions still sleeping in the view.
async fn timeout_is_enforced_by_the_database<F>(format: TableFormat, sleeping: F)
where
    F: AsyncFn() -> usize,
{
    let pki = pki();
    let tables = vec![
        table("good", timed(format.clone(), SHORT_TIMEOUT_MS), "good", &["id", "name"]),
        table("slow", timed(format.clone(), SHORT_TIMEOUT_MS), "slow", &["id", "name"]),
        table("patient", timed(format, 30_000), "slow", &["id", "name"]),
    ];
    let running = pki.start("slow", tables).await;
    let mut client = pki.client(&running);

    // Positive control of the probe: while a query sleeps in the view, the
    // probe sees it (the loop ends when the query does, whatever the clock).
    let mut patient = pki.client(&running);
    let answer = tokio::spawn(async move { rows(&mut patient, "SELECT name FROM patient").await });
    let mut seen = 0;
    while !answer.is_finished() && seen == 0 {
        seen = sleeping().await;
        tokio::task::yield_now().await;
    }
    // Negative control: the same view answers under a timeout it fits in.
    assert_eq!(answer.await.expect("patient query"), vec!["慢"]);
    assert_eq!(seen, 1, "the probe saw the patient query sleeping in the database");

    for attempt in 0..2 {
        let error = query(&mut client, "SELECT id, name FROM slow").await.expect_err("past the timeout");
        eprintln!("slow query {attempt}: {error}");
        assert!(error.starts_with("DeadlineExceeded"), "{error}");
        assert!(error.contains("table `slow`"), "names the table: {error}");
        // Said by the database, not by the connector's own deadline.
        assert!(
            error.contains(&format!("timeout of {SHORT_TIMEOUT_MS} ms; the database stopped it")),
            "the database enforced the timeout: {error}"
        );
        // The error comes after the database interrupted the statement: nothing sleeps on.
        assert_eq!(sleeping().await, 0, "the statement keeps running on the server");
        // The pool the slow table shares keeps serving the other tables.
        assert_eq!(rows(&mut client, "SELECT name FROM good").await, vec!["张三", "李四"]);
    }
    running.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_query_timeout_stops_the_statement_in_the_database() {
    let schema = unique("pgslow");
    let _scratch = Scratch::Postgres(schema.clone());
    let admin = pg().await;
    admin
        .batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.good (id bigint, name text);
             INSERT INTO {schema}.good VALUES (1, '张三'), (2, '李四');
             CREATE TABLE {schema}.tick (id bigint, name text);
             INSERT INTO {schema}.tick VALUES (1, '慢');
             CREATE VIEW {schema}.slow AS SELECT t.id, t.name FROM {schema}.tick t, pg_sleep({SLOW_SECONDS}) s;"
        ))
        .await
        .expect("fixture");
    let pattern = format!("%{schema}%slow%");
    let sleeping = async || -> usize {
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'creditgate-connector' \
                 AND wait_event = 'PgSleep' AND query LIKE $1",
                &[&pattern],
            )
            .await
            .expect("pg_stat_activity");
        usize::try_from(row.get::<_, i64>(0)).unwrap_or(usize::MAX)
    };
    timeout_is_enforced_by_the_database(TableFormat::Postgres(database(PG_URL, &schema)), sleeping).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_query_timeout_stops_the_statement_in_the_database() {
    let schema = unique("myslow");
    let _scratch = Scratch::Mysql(schema.clone());
    let mut admin = mysql().await;
    admin
        .query_drop(format!(
            "CREATE DATABASE {schema} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
             CREATE TABLE {schema}.good (id BIGINT, name TEXT);
             INSERT INTO {schema}.good VALUES (1, '张三'), (2, '李四');
             CREATE TABLE {schema}.tick (id BIGINT, name TEXT);
             INSERT INTO {schema}.tick VALUES (1, '慢');
             CREATE VIEW {schema}.slow AS SELECT id, name FROM {schema}.tick WHERE SLEEP({SLOW_SECONDS}) = 0;"
        ))
        .await
        .expect("fixture");
    let pattern = format!("%{schema}%slow%");
    let admin = tokio::sync::Mutex::new(admin);
    let sleeping = async || -> usize {
        let count: Option<u64> = admin
            .lock()
            .await
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE ID <> CONNECTION_ID() AND STATE = 'User sleep' AND INFO LIKE ?",
                (pattern.as_str(),),
            )
            .await
            .expect("processlist");
        count.and_then(|c| usize::try_from(c).ok()).unwrap_or(usize::MAX)
    };
    timeout_is_enforced_by_the_database(TableFormat::Mysql(database(MYSQL_URL, &schema)), sleeping).await;
}

// ------------------------------------------------- the loader's password file

/// A MariaDB user with a password, dropped with the guard.
struct TempUser(String);

const USER_HOSTS: [&str; 3] = ["%", "localhost", "127.0.0.1"];

impl Drop for TempUser {
    fn drop(&mut self) {
        let user = self.0.clone();
        let outcome = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                let mut admin = mysql().await;
                for host in USER_HOSTS {
                    admin
                        .query_drop(format!("DROP USER IF EXISTS '{user}'@'{host}'"))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            })
        })
        .join();
        if !matches!(outcome, Ok(Ok(()))) {
            eprintln!("cannot drop the test user: {outcome:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loader_takes_the_password_from_a_file() {
    use creditgate_datagen::load::{LoadError, LoadOptions, load_mysql, load_postgres};
    let user = unique("pw");
    let prefix = format!("{user}_");
    let _user = TempUser(user.clone());
    let args = BackendArgs { backend: DemoBackend::Mysql, db_schema_prefix: prefix.clone(), ..BackendArgs::default() };
    let _schemas = LoadedSchemas::new(&args, &["market".to_string()]);
    let mut admin = mysql().await;
    for host in USER_HOSTS {
        admin
            .query_drop(format!(
                "CREATE USER '{user}'@'{host}' IDENTIFIED BY 'file-s3cret';
                 GRANT ALL ON `{prefix}%`.* TO '{user}'@'{host}';
                 GRANT SELECT ON `test`.* TO '{user}'@'{host}';"
            ))
            .await
            .expect("test user");
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    creditgate_datagen::generate(&creditgate_datagen::GenOptions::new(&data, chrono::Local::now().date_naive()))
        .expect("data");
    let url = format!("mysql://{user}@127.0.0.1:3306/test");
    let right = tmp.path().join("right.pw");
    let wrong = tmp.path().join("wrong.pw");
    std::fs::write(&right, "file-s3cret\n").expect("password file");
    std::fs::write(&wrong, "not-the-s3cret\n").expect("password file");
    let options = |file: PathBuf| LoadOptions {
        schema_prefix: prefix.clone(),
        sources: Some(vec!["market".to_string()]),
        password_env: None,
        password_file: Some(file),
    };

    // Negative controls first: no password, the wrong one, no such file.
    let no_password =
        LoadOptions { password_file: None, password_env: Some(unique("UNSET")), ..options(right.clone()) };
    let error = load_mysql(&data, &url, &no_password).await.expect_err("no password").to_string();
    assert!(error.contains("Access denied"), "{error}");
    let error = load_mysql(&data, &url, &options(wrong)).await.expect_err("wrong password").to_string();
    assert!(error.contains("Access denied") && !error.contains("s3cret"), "{error}");
    let missing = tmp.path().join("missing.pw");
    for result in [
        load_mysql(&data, &url, &options(missing.clone())).await,
        load_postgres(&data, PG_URL, &options(missing.clone())).await,
    ] {
        match result {
            Err(LoadError::Invalid(message)) => assert!(message.contains("missing.pw"), "{message}"),
            other => panic!("a missing password file must be refused by name: {other:?}"),
        }
    }
    // The right password, from the file.
    let report = load_mysql(&data, &url, &options(right)).await.expect("load with the password file");
    assert!(report.rows > 0 && report.schemas == vec![("market".to_string(), format!("{prefix}market"))]);
    let loaded: Option<u64> =
        admin.query_first(format!("SELECT COUNT(*) FROM `{prefix}market`.enterprises")).await.expect("count");
    assert!(loaded.unwrap_or_default() > 0, "the data is there");
}

// ------------------------------------------------- the whole gateway over each storage

/// One request to a lab's gateway over HTTP.
struct Ask {
    label: &'static str,
    caller: &'static str,
    purpose: &'static str,
    path: &'static str,
    body: Value,
}

const CONSENTED: [&str; 2] = ["court.dishonest_debtors", "credit_platform.black_list"];

/// Lookups by every kind of caller (masks differ per caller), one with a
/// consent, masked SQL, a cross-source join and aggregates.
fn gateway_asks(lab: &Lab, consent: &Value) -> Vec<Ask> {
    let company = lab.manifest.featured.enterprise_credit_code.clone();
    let person = lab.manifest.featured.individual_resident_id.clone();
    let by_company = |purpose: &str| json!({"subject": {"type": "credit_code", "id": company}, "purpose": purpose});
    let lookup = |label, caller, purpose, body| Ask { label, caller, purpose, path: "/v1/lookup", body };
    let sql = |label, caller, purpose, sql: String| Ask {
        label,
        caller,
        purpose,
        path: "/v1/query",
        body: json!({"sql": sql}),
    };
    vec![
        lookup("agency looks up the company", "samr", "supervision", by_company("supervision")),
        lookup(
            "agency looks up the person",
            "samr",
            "supervision",
            json!({"subject": {"type": "resident_id", "id": person}, "purpose": "supervision"}),
        ),
        lookup("credit agency looks up the company", "credit_agency", "credit_report", by_company("credit_report")),
        lookup(
            "credit agency looks up the person with consent",
            "credit_agency",
            "credit_report",
            json!({
                "subject": {"type": "resident_id", "id": person},
                "purpose": "credit_report",
                "datasets": CONSENTED,
                "consent": consent,
            }),
        ),
        lookup("platform looks up the company", "platform_a", "merchant_onboarding", by_company("merchant_onboarding")),
        sql(
            "masked query",
            "credit_agency",
            "credit_report",
            format!(
                "SELECT e.name, e.legal_rep_name, e.legal_rep_id, e.phone, e.address, \
                        (SELECT COUNT(*) FROM market.penalties p WHERE p.credit_code = e.credit_code) AS penalties, \
                        (SELECT COUNT(*) FROM court.dishonest_debtors d WHERE d.credit_code = e.credit_code) AS cases \
                 FROM market.enterprises e WHERE e.credit_code = '{company}'"
            ),
        ),
        sql(
            "cross-source join",
            "platform_a",
            "merchant_onboarding",
            "SELECT s.shop_id, s.shop_name, e.name AS company, b.basis, b.listing_department, b.disputed \
             FROM platform_a.shops s \
             JOIN credit_platform.black_list b ON s.owner_credit_code = b.credit_code \
             JOIN market.enterprises e ON e.credit_code = s.owner_credit_code \
             ORDER BY s.shop_id LIMIT 10"
                .to_string(),
        ),
        sql(
            "aggregates",
            "samr",
            "supervision",
            "SELECT status, COUNT(*) AS n, MIN(established_date) AS first, MAX(registered_capital) AS largest \
             FROM market.enterprises GROUP BY status"
                .to_string(),
        ),
    ]
}

/// The answer to `ask`, without what differs between two runs of the same
/// request: the request id, and row order (the gateway does not sort).
async fn answer(lab: &Lab, ask: &Ask) -> Value {
    use creditgate_engine::PURPOSE_HEADER;
    let headers = [(PURPOSE_HEADER, ask.purpose), ("accept", "application/json")];
    let response = lab
        .http(ask.caller, "POST", ask.path, &headers, Some(ask.body.to_string()))
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", ask.label));
    let mut body: Value = serde_json::from_slice(&response.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&response.body).into_owned()));
    fn sort_rows(rows: Option<&mut Value>) {
        if let Some(Value::Array(rows)) = rows {
            rows.sort_by_cached_key(|row| row.to_string());
        }
    }
    if let Some(document) = body.as_object_mut() {
        document.remove("request_id");
        sort_rows(document.get_mut("rows"));
        if let Some(Value::Object(datasets)) = document.get_mut("datasets") {
            datasets.values_mut().for_each(|result| sort_rows(result.get_mut("rows")));
        }
    }
    json!({"status": response.status, "body": body})
}

/// Every cell where `got` differs from `want`, as `path: want ≠ got`.
fn differences(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for key in w.keys().chain(g.keys().filter(|k| !w.contains_key(*k))) {
                match (w.get(key), g.get(key)) {
                    (Some(a), Some(b)) => differences(&format!("{path}.{key}"), a, b, out),
                    (a, b) => out.push(format!("{path}.{key}: {a:?} ≠ {b:?}")),
                }
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            if w.len() != g.len() {
                out.push(format!("{path}: {} rows ≠ {} rows", w.len(), g.len()));
            }
            for (i, (a, b)) in w.iter().zip(g).enumerate() {
                differences(&format!("{path}[{i}]"), a, b, out);
            }
        }
        _ if want != got => out.push(format!("{path}: {want} ≠ {got}")),
        _ => {}
    }
}

/// Each table of `lab` is on the storage `backend` gives its source.
fn assert_placements(lab: &Lab, backend: DemoBackend) {
    for (source, config) in &lab.connector_configs {
        for table in &config.tables {
            let actual = match &table.format {
                TableFormat::Postgres(_) => Placement::Postgres,
                TableFormat::Mysql(_) => Placement::Mysql,
                _ => Placement::Parquet,
            };
            let wanted = creditgate_tooling::demo_backend::placement(backend, source);
            assert_eq!(actual, wanted, "{backend:?}: {source}.{}", table.name);
        }
    }
}

/// Starts the Parquet lab, records the gateway's answers to
/// [`gateway_asks`], then for each of `backends` starts a lab over the very
/// same data loaded into the databases and demands the same answers, cell
/// by cell.
async fn same_gateway_answers(backends: &[DemoBackend]) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let as_of = chrono::Local::now().date_naive();
    let prefix = format!("{}_", unique("gw"));
    let parquet_dir = tmp.path().join("parquet");
    let parquet = start_lab_on(&parquet_dir, BackendArgs::default(), as_of).await;
    let sources: Vec<String> = parquet.manifest.sources.iter().map(|s| s.name.clone()).collect();
    // One consent artefact for every lab: they share the issuer key.
    let subject = creditgate_consent::SubjectRef::parse(
        creditgate_ident::SubjectKind::ResidentId,
        &parquet.manifest.featured.individual_resident_id,
    )
    .expect("subject");
    let consent = parquet.consent(subject, "credit-agency", &["credit_report"], &CONSENTED, 5).expect("consent");
    let asks = gateway_asks(&parquet, &consent);
    let mut expected = Vec::new();
    for ask in &asks {
        expected.push(answer(&parquet, ask).await);
    }
    parquet.stop().await.expect("stop");

    // The baseline is worth comparing against: every request answered, every
    // dataset read, rows in most, masks applied.
    let mut datasets_with_rows = 0;
    for (ask, got) in asks.iter().zip(&expected) {
        assert_eq!(got["status"], 200, "{}: {got}", ask.label);
        if let Some(datasets) = got["body"]["datasets"].as_object() {
            for (name, result) in datasets {
                assert_eq!(result["status"], "ok", "{} {name}: {result}", ask.label);
                datasets_with_rows += usize::from(result["rows"].as_array().is_some_and(|r| !r.is_empty()));
            }
        } else {
            assert!(got["body"]["rows"].as_array().is_some_and(|r| !r.is_empty()), "{}: {got}", ask.label);
        }
    }
    assert!(datasets_with_rows >= 15, "the lookups find data ({datasets_with_rows} non-empty datasets)");
    let consented = &expected[3]["body"]["datasets"]["court.dishonest_debtors"];
    // The credit agency's own pseudonym (keyed hash) of the debtor's ID.
    assert_eq!(consented["masks"]["resident_id"], "keyed_hash", "{consented}");
    assert!(consented["rows"].as_array().is_some_and(|r| !r.is_empty()), "{consented}");
    let masked = expected[5]["body"]["rows"][0]["legal_rep_name"].as_str().unwrap_or_default().to_string();
    assert!(masked.contains('*'), "the credit agency sees a masked name: {masked}");

    for &backend in backends {
        let args = BackendArgs { backend, db_schema_prefix: prefix.clone(), ..BackendArgs::default() };
        let _schemas = LoadedSchemas::new(&args, &sources);
        let dir = tmp.path().join(format!("{backend:?}").to_lowercase());
        share_lab_data(&parquet_dir, &dir);
        let lab = start_lab_on(&dir, args, as_of).await;
        assert_placements(&lab, backend);
        for (ask, want) in asks.iter().zip(&expected) {
            let got = answer(&lab, ask).await;
            let mut diff = Vec::new();
            differences("", want, &got, &mut diff);
            assert!(
                diff.is_empty(),
                "{backend:?} differs from Parquet for `{}` in {} cells:\n{}",
                ask.label,
                diff.len(),
                diff.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
            );
        }
        lab.stop().await.expect("stop");
        eprintln!("{backend:?}: {} answers identical to Parquet", asks.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_lookups_are_identical_from_parquet_postgres_and_mariadb() {
    same_gateway_answers(&[DemoBackend::Postgres, DemoBackend::Mysql]).await;
}

/// `demo --backend mixed`: the demo's own layout (four departments on
/// PostgreSQL, platform A on MariaDB, the rest on Parquet), started the way
/// the demo starts it, answers like the Parquet federation — lookups across
/// every source and the tour's join of MariaDB and PostgreSQL tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_backend_lab_answers_like_the_parquet_lab() {
    for (backend, source) in [
        (Placement::Postgres, "market"),
        (Placement::Postgres, "credit_platform"),
        (Placement::Mysql, "platform_a"),
        (Placement::Parquet, "payment"),
    ] {
        assert_eq!(creditgate_tooling::demo_backend::placement(DemoBackend::Mixed, source), backend, "{source}");
    }
    same_gateway_answers(&[DemoBackend::Mixed]).await;
}
