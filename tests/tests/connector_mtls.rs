//! The connector on its own: mTLS refusals, exposed columns, Parquet/CSV/SQLite
//! tables, read-only SQL, and filters/limits evaluated at the source.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use arrow::array::{Array, BinaryArray, StringArray};
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables, SqlInfo};
use creditgate_certs::ca::{DevCa, IssueRequest};
use creditgate_connector::{Connector, ConnectorConfig, RunningConnector, ServedLog, TableConfig, TableFormat};
use creditgate_tooling::client::{ClientIdentity, FlightClient, flight_error_text};
use futures::TryStreamExt;

const GATEWAY: &str = "spiffe://credit.example/org/creditgate-gateway";

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    ca_file: PathBuf,
    running: RunningConnector,
    log: PathBuf,
    certs: std::collections::BTreeMap<&'static str, (PathBuf, PathBuf)>,
    featured_code: String,
}

fn write_csv(path: &Path) {
    std::fs::write(
        path,
        "complaint_id,merchant_credit_code,category,complainant_mobile\n\
         C1,91350100M000100Y43,虚假宣传,13812345678\n\
         C2,91350100M000100Y43,质量问题,13912345678\n\
         C3,91370202MA3C4XYZ0K,退款纠纷,13712345678\n",
    )
    .expect("csv");
}

fn write_sqlite(path: &Path) {
    let db = rusqlite::Connection::open(path).expect("sqlite");
    db.execute_batch(
        "CREATE TABLE ratings (credit_code TEXT NOT NULL, year INTEGER NOT NULL, rating TEXT NOT NULL, inspector TEXT);
         INSERT INTO ratings VALUES ('91350100M000100Y43', 2024, 'A', '王五'), ('91350100M000100Y43', 2025, 'B', '赵六'),
                                    ('91370202MA3C4XYZ0K', 2025, 'D', '钱七');",
    )
    .expect("sqlite rows");
}

async fn fixture() -> Fixture {
    creditgate_certs::install_default_provider();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    let ca = DevCa::init(&dir.join("ca"), "test CA").expect("ca");
    let ca_file = dir.join("ca").join("ca.pem");
    let mut certs = std::collections::BTreeMap::new();
    let mut issue = |stem: &'static str, request: IssueRequest| -> String {
        let issued = ca.issue(&request).expect("issue");
        certs.insert(stem, issued.write(&dir, stem).expect("write"));
        issued.serial
    };
    issue(
        "server",
        IssueRequest::server("market-connector", vec!["localhost".into()], vec![Ipv4Addr::LOCALHOST.into()]),
    );
    issue("gateway", IssueRequest::client("creditgate-gateway", "creditgate gateway", "gateway"));
    issue("other_org", IssueRequest::client("samr", "市场监管局", "samr"));
    let now = SystemTime::now();
    issue(
        "expired",
        IssueRequest::client("creditgate-gateway", "creditgate gateway", "gateway")
            .valid_between(now - Duration::from_secs(30 * 86_400), now - Duration::from_secs(86_400)),
    );
    let revoked = issue("revoked", IssueRequest::client("creditgate-gateway", "creditgate gateway", "gateway"));
    let crl = dir.join("crl.pem");
    std::fs::write(&crl, ca.crl_pem(&[revoked], Duration::from_secs(86_400)).expect("crl")).expect("write crl");

    let mut generate = creditgate_datagen::GenOptions::new(dir.join("data"), chrono::Local::now().date_naive());
    generate.scale = 1;
    let manifest = creditgate_datagen::generate(&generate).expect("data");
    write_csv(&dir.join("complaints.csv"));
    write_sqlite(&dir.join("tax.db"));

    let (cert, key) = certs["server"].clone();
    let log = dir.join("served.jsonl");
    let config = ConnectorConfig {
        crl_check_interval_seconds: creditgate_certs::revocation::DEFAULT_CRL_CHECK_INTERVAL.as_secs(),
        max_connection_age_seconds: creditgate_certs::revocation::DEFAULT_MAX_CONNECTION_AGE.as_secs(),
        name: "market".into(),
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        cert,
        key,
        client_ca: ca_file.clone(),
        crls: vec![crl],
        enforce_crl_expiry: false,
        allowed_clients: vec![GATEWAY.into()],
        served_log: log.clone(),
        memory_limit_bytes: 256 * 1024 * 1024,
        handshake_timeout_ms: 5_000,
        tables: vec![
            TableConfig {
                name: "enterprises".into(),
                format: TableFormat::Parquet,
                path: dir.join("data/market/enterprises.parquet"),
                source_table: None,
                columns: vec!["credit_code".into(), "name".into(), "status".into()],
            },
            TableConfig {
                name: "complaints".into(),
                format: TableFormat::Csv,
                path: dir.join("complaints.csv"),
                source_table: None,
                columns: vec!["complaint_id".into(), "merchant_credit_code".into(), "category".into()],
            },
            TableConfig {
                name: "ratings".into(),
                format: TableFormat::Sqlite,
                path: dir.join("tax.db"),
                source_table: Some("ratings".into()),
                columns: vec!["credit_code".into(), "year".into(), "rating".into()],
            },
        ],
    };
    let running = Connector::open(config).await.expect("open").start().await.expect("start");
    Fixture { _tmp: tmp, dir, ca_file, running, log, certs, featured_code: manifest.featured.enterprise_credit_code }
}

impl Fixture {
    fn client(&self, stem: &str) -> FlightClient {
        let (cert, key) = &self.certs[stem];
        let who = ClientIdentity { ca: &self.ca_file, cert: Some((cert, key)) };
        FlightClient::connect(&self.running.addr.to_string(), "localhost", &who).expect("client")
    }
}

async fn rows(client: &mut FlightClient, sql: &str) -> Result<Vec<String>, String> {
    client.query(sql).await.map(|b| creditgate_tests::sorted_rows(&b)).map_err(|e| flight_error_text(&e))
}

/// Checks that `cert` is refused at the TLS handshake with `alert`: a query
/// through `client` (holding the same certificate) fails as a broken
/// connection, a bare TLS probe reads that alert, and the served log did not
/// grow.
async fn assert_refused_at_handshake(
    f: &Fixture,
    mut client: FlightClient,
    cert: Option<(&Path, &Path)>,
    case: &str,
    alert: &str,
) {
    let served_before = ServedLog::read_all(&f.log).expect("log").len();
    let error = client.query("SELECT name FROM enterprises LIMIT 1").await.expect_err(case);
    creditgate_tests::assert_transport_refusal(&error, alert, case);
    let refusal = creditgate_tests::tls_refusal(f.running.addr, &f.ca_file, cert, b"h2").await;
    let refusal = refusal.unwrap_or_else(|| panic!("{case}: the TLS probe was accepted"));
    assert!(refusal.contains(&format!("received fatal alert: {alert}")), "{case}: {refusal}");
    assert_eq!(ServedLog::read_all(&f.log).expect("log").len(), served_before, "{case}: nothing served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_allowed_identity_and_refuses_everyone_else() {
    let f = fixture().await;
    let sql = "SELECT name FROM enterprises LIMIT 1";
    let mut gateway = f.client("gateway");
    assert_eq!(rows(&mut gateway, sql).await.expect("allowed identity served").len(), 1);

    // Refused at the TLS handshake, each with the alert that names the reason;
    // the refusal is a transport failure (never a policy answer), and nothing
    // reaches the served log.
    let anonymous = ClientIdentity { ca: &f.ca_file, cert: None };
    let client = FlightClient::connect(&f.running.addr.to_string(), "localhost", &anonymous).expect("client");
    assert_refused_at_handshake(&f, client, None, "no certificate", "CertificateRequired").await;
    for (stem, alert) in [("expired", "CertificateExpired"), ("revoked", "CertificateRevoked")] {
        let (cert, key) = &f.certs[stem];
        assert_refused_at_handshake(&f, f.client(stem), Some((cert, key)), stem, alert).await;
    }

    let other = DevCa::generate("other CA").expect("ca");
    let (cert, key) = other
        .issue(&IssueRequest::client("creditgate-gateway", "creditgate gateway", "gateway"))
        .expect("issue")
        .write(&f.dir, "other-ca")
        .expect("write");
    let impostor = ClientIdentity { ca: &f.ca_file, cert: Some((&cert, &key)) };
    let client = FlightClient::connect(&f.running.addr.to_string(), "localhost", &impostor).expect("client");
    assert_refused_at_handshake(&f, client, Some((&cert, &key)), "another CA", "UnknownCA").await;
    // Positive control of the probe: the allowed certificate is accepted.
    let (cert, key) = &f.certs["gateway"];
    let probe = creditgate_tests::tls_refusal(f.running.addr, &f.ca_file, Some((cert, key)), b"h2").await;
    assert_eq!(probe, None, "the allowed certificate passes the handshake");

    let error = rows(&mut f.client("other_org"), sql).await.expect_err("identity not allowed");
    assert!(error.contains("PermissionDenied") && error.contains("spiffe://credit.example/org/samr"), "{error}");

    // A direct statement ticket (one round trip, as the gateway sends) is
    // authenticated exactly like GetFlightInfo: refused for an unlisted identity…
    let error = f.client("other_org").query_direct(sql).await.map_err(|e| flight_error_text(&e));
    let error = error.expect_err("direct ticket from an identity not allowed");
    assert!(error.contains("PermissionDenied"), "{error}");
    let error = f.client("revoked").query_direct(sql).await.expect_err("direct ticket with a revoked certificate");
    creditgate_tests::assert_transport_refusal(&error, "CertificateRevoked", "direct ticket, revoked certificate");

    // Nothing was served to any refused caller.
    let log = ServedLog::read_all(&f.log).expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].caller, GATEWAY);
    // …and served, and logged, for the allowed one.
    let direct = gateway.query_direct(sql).await.map_err(|e| flight_error_text(&e)).expect("direct ticket served");
    assert_eq!(creditgate_tests::sorted_rows(&direct).len(), 1);
    let log = ServedLog::read_all(&f.log).expect("log");
    assert_eq!(log.len(), 2, "the direct statement is in the served log");
    assert_eq!(log[1].sql, sql);
    // And the allowed caller is still served after all that.
    assert_eq!(rows(&mut gateway, sql).await.expect("still served").len(), 1);
    // A ticket of a kind the service does not issue is refused by name.
    let bogus = arrow_flight::Ticket::new(b"not a ticket".to_vec());
    let error = gateway.inner_mut().do_get(bogus).await.map(|_| ()).map_err(|e| flight_error_text(&e));
    assert!(error.is_err(), "a malformed ticket must be refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_configured_columns_exist_and_only_queries_run() {
    let f = fixture().await;
    let mut client = f.client("gateway");
    let error = rows(&mut client, "SELECT legal_rep_id FROM enterprises").await.expect_err("hidden column");
    assert!(error.contains("InvalidArgument"), "{error}");
    let all = rows(&mut client, "SELECT * FROM enterprises LIMIT 1").await.expect("select *");
    assert_eq!(all[0].split('|').count(), 3, "SELECT * shows the three exposed columns only");
    let error = rows(&mut client, "SELECT complainant_mobile FROM complaints").await.expect_err("hidden csv column");
    assert!(error.contains("InvalidArgument"), "{error}");
    let error = rows(&mut client, "SELECT inspector FROM ratings").await.expect_err("hidden sqlite column");
    assert!(error.contains("InvalidArgument"), "{error}");
    for sql in [
        "CREATE TABLE x AS SELECT 1",
        "INSERT INTO ratings VALUES ('x', 1, 'A')",
        "DROP TABLE ratings",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let error = rows(&mut client, sql).await.expect_err(sql);
        assert!(error.contains("InvalidArgument"), "{sql}: {error}");
    }
    let error = rows(&mut client, "SELECT * FROM information_schema.tables").await.expect_err("no information_schema");
    assert!(error.contains("InvalidArgument"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_csv_and_sqlite_tables_filter_at_the_source() {
    let f = fixture().await;
    let mut client = f.client("gateway");
    let code = &f.featured_code;
    let got = rows(&mut client, &format!("SELECT credit_code FROM enterprises WHERE credit_code = '{code}'"))
        .await
        .expect("parquet");
    assert_eq!(got, vec![code.clone()]);

    let got = rows(
        &mut client,
        "SELECT complaint_id, category FROM complaints WHERE merchant_credit_code = '91350100M000100Y43' LIMIT 5",
    )
    .await
    .expect("csv");
    assert_eq!(got, vec!["C1|虚假宣传".to_string(), "C2|质量问题".to_string()]);

    let got =
        rows(&mut client, "SELECT year, rating FROM ratings WHERE credit_code = '91350100M000100Y43' AND year >= 2025")
            .await
            .expect("sqlite");
    assert_eq!(got, vec!["2025|B".to_string()]);

    let got = rows(&mut client, "SELECT name FROM enterprises LIMIT 7").await.expect("limit");
    assert_eq!(got.len(), 7);

    let log = ServedLog::read_all(&f.log).expect("log");
    assert_eq!(log.len(), 4);
    assert_eq!(log[0].rows, 1, "only the matching enterprise left the source");
    assert_eq!(log[1].rows, 2);
    assert_eq!(log[2].rows, 1);
    assert_eq!(log[3].rows, 7);
    assert!(log.iter().all(|r| r.outcome == "ok" && r.bytes > 0));
    assert!(log[2].sql.contains("year >= 2025"));
}

/// Collects every endpoint of a metadata call's `FlightInfo`.
async fn fetch(client: &mut FlightClient, info: arrow_flight::FlightInfo) -> Vec<arrow::array::RecordBatch> {
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("ticket");
        let stream = client.inner_mut().do_get(ticket).await.expect("do_get");
        batches.extend(stream.try_collect::<Vec<_>>().await.expect("batches"));
    }
    batches
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_calls_answer_with_the_configured_catalog_schema_and_tables() {
    let f = fixture().await;
    let mut client = f.client("gateway");

    let info = client.inner_mut().get_catalogs().await.expect("GetCatalogs");
    let catalogs = creditgate_tests::sorted_rows(&fetch(&mut client, info).await);
    assert_eq!(catalogs, ["creditgate"]);

    let info = client.inner_mut().get_db_schemas(CommandGetDbSchemas::default()).await.expect("GetDbSchemas");
    let schemas = creditgate_tests::sorted_rows(&fetch(&mut client, info).await);
    assert_eq!(schemas, ["creditgate|market"], "one schema, named after the connector");

    // The schema filter is applied: a pattern matching nothing lists nothing.
    let request = CommandGetDbSchemas { catalog: None, db_schema_filter_pattern: Some("court%".into()) };
    let info = client.inner_mut().get_db_schemas(request).await.expect("GetDbSchemas filtered");
    assert!(creditgate_tests::sorted_rows(&fetch(&mut client, info).await).is_empty());

    let request = CommandGetTables { include_schema: true, ..Default::default() };
    let info = client.inner_mut().get_tables(request).await.expect("GetTables");
    let batches = fetch(&mut client, info).await;
    let names = creditgate_tests::sorted_rows(
        &batches.iter().map(|b| b.project(&[0, 1, 2, 3]).expect("project")).collect::<Vec<_>>(),
    );
    assert_eq!(
        names,
        [
            "creditgate|market|complaints|TABLE",
            "creditgate|market|enterprises|TABLE",
            "creditgate|market|ratings|TABLE"
        ]
    );
    // Each table's schema lists the exposed columns only.
    for batch in &batches {
        let tables = batch.column(2).as_any().downcast_ref::<StringArray>().expect("table_name");
        let encoded = batch.column(4).as_any().downcast_ref::<BinaryArray>().expect("table_schema");
        for row in 0..batch.num_rows() {
            let schema =
                arrow::datatypes::Schema::try_from(arrow_flight::IpcMessage(encoded.value(row).to_vec().into()))
                    .expect("table schema");
            let columns: Vec<&str> = schema.fields().iter().map(|c| c.name().as_str()).collect();
            let expected: &[&str] = match tables.value(row) {
                "enterprises" => &["credit_code", "name", "status"],
                "complaints" => &["complaint_id", "merchant_credit_code", "category"],
                "ratings" => &["credit_code", "year", "rating"],
                other => panic!("unexpected table {other}"),
            };
            assert_eq!(columns, expected, "{}", tables.value(row));
        }
    }

    let info = client.inner_mut().get_sql_info(vec![]).await.expect("GetSqlInfo");
    let info_rows = creditgate_tests::sorted_rows(&fetch(&mut client, info).await);
    let value_of = |id: SqlInfo| {
        let prefix = format!("{}|", id as u32);
        info_rows.iter().find_map(|row| row.strip_prefix(&prefix)).map(str::to_string)
    };
    assert!(
        value_of(SqlInfo::FlightSqlServerName).is_some_and(|v| v.contains("creditgate connector market")),
        "{info_rows:?}"
    );
    assert!(value_of(SqlInfo::FlightSqlServerReadOnly).is_some_and(|v| v.contains("true")), "{info_rows:?}");
    // Asking for one id answers that id only.
    let info = client.inner_mut().get_sql_info(vec![SqlInfo::FlightSqlServerName]).await.expect("GetSqlInfo one");
    let one = creditgate_tests::sorted_rows(&fetch(&mut client, info).await);
    assert_eq!(one.len(), 1, "{one:?}");
    assert!(one[0].starts_with(&format!("{}|", SqlInfo::FlightSqlServerName as u32)), "{one:?}");

    // Negative control: the metadata calls are authenticated like queries.
    let mut stranger = f.client("other_org");
    let error = stranger.inner_mut().get_catalogs().await.expect_err("metadata for an identity not allowed");
    assert!(flight_error_text(&error).contains("PermissionDenied"), "{}", flight_error_text(&error));
    let error = stranger.inner_mut().get_sql_info(vec![]).await.expect_err("sql info for an identity not allowed");
    assert!(flight_error_text(&error).contains("PermissionDenied"), "{}", flight_error_text(&error));
    // Metadata calls are not queries: nothing in the served log.
    assert!(ServedLog::read_all(&f.log).expect("log").is_empty());
}
