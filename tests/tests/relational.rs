//! Connectors in front of PostgreSQL and MariaDB/MySQL (the servers on
//! 127.0.0.1:5432 and :3306, database `test`): type mapping over mTLS,
//! projection/filter/limit pushdown seen from the database's side, failures
//! that name the table while the other tables keep serving, and identical
//! lookups whether a source is served from Parquet, PostgreSQL or MariaDB.
//!
//! Every test works in its own uniquely named schema/database and drops it
//! at the end, so tests run in parallel and rerun cleanly.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, TimeUnit};
use creditgate_certs::ca::{DevCa, IssueRequest};
use creditgate_connector::{Connector, ConnectorConfig, DatabaseSource, RunningConnector, TableConfig, TableFormat};
use creditgate_gateway::client::{ClientIdentity, FlightClient, flight_error_text};
use creditgate_gateway::demo_backend::{BackendArgs, DemoBackend, Placement, source_tables};
use mysql_async::prelude::Queryable;

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
    admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.expect("drop schema");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_types_nulls_and_chinese_over_mtls() {
    let schema = unique("mytypes");
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
    admin.query_drop(format!("DROP DATABASE {schema}")).await.expect("drop database");
}

/// Generates scale-1 data in `dir` and loads `sources` into both databases
/// under a unique prefix; returns the backend arguments that point at them.
async fn load_demo(dir: &Path, sources: &[&str]) -> (creditgate_datagen::Manifest, BackendArgs) {
    let mut generate = creditgate_datagen::GenOptions::new(dir, chrono::Local::now().date_naive());
    generate.scale = 1;
    let manifest = creditgate_datagen::generate(&generate).expect("data");
    let args = BackendArgs { db_schema_prefix: format!("{}_", unique("demo")), ..BackendArgs::default() };
    let options = creditgate_datagen::load::LoadOptions {
        schema_prefix: args.db_schema_prefix.clone(),
        sources: Some(sources.iter().map(|s| s.to_string()).collect()),
        password_env: None,
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
    (manifest, args)
}

async fn drop_demo(args: &BackendArgs, sources: &[&str]) {
    let admin = pg().await;
    let mut my = mysql().await;
    for source in sources {
        let schema = format!("{}{source}", args.db_schema_prefix);
        admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await.expect("drop schema");
        my.query_drop(format!("DROP DATABASE IF EXISTS {schema}")).await.expect("drop database");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_lookups_from_parquet_postgres_and_mariadb() {
    let sources = ["market", "platform_a", "traceability"];
    let pki = pki();
    let data = pki.dir.join("data");
    let (manifest, args) = load_demo(&data, &sources).await;
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
    assert_eq!(creditgate_gateway::demo_backend::placement(DemoBackend::Mixed, "platform_a"), Placement::Mysql);
    drop_demo(&args, &sources).await;
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
    let (manifest, args) = load_demo(&data, &sources).await;
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

    drop_demo(&args, &sources).await;
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
    admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.expect("drop schema");
}
