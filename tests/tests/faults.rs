//! Faults and load, end to end: sustained mixed load on both front ends, a
//! connector answering with a schema the gateway does not expect, slow readers
//! (back-pressure, then cancellation reaching the connector), and a graceful
//! shutdown with requests in flight; and callers with different policies,
//! concurrently, each getting their own view.
//!
//! The lab's gateway and connectors run in this process, so memory is measured
//! as the process's resident set size. The tests of this file take a lock and
//! run one at a time: on a 2-core machine, and with RSS shared by every test of
//! the binary, parallel runs would only measure each other.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use creditgate_connector::{ConnectorConfig, ServedRecord};
use creditgate_engine::PURPOSE_HEADER;
use creditgate_tests::{
    HttpConn, audit_records, audit_records_in, request_records, restart_connector, rss_bytes, served, sorted_rows,
    start_lab, start_lab_with,
};
use creditgate_tooling::client::{FlightClient, flight_error_text};
use creditgate_tooling::demo::{DEMO_POLICY, Lab};
use futures::StreamExt;
use http_body_util::BodyExt;

/// One test at a time (see the module docs).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MIB: u64 = 1024 * 1024;

/// A request of the load test.
#[derive(Debug, Clone)]
enum Request {
    /// `POST /v1/lookup` / the `creditgate.lookup` Flight action.
    Lookup(serde_json::Value),
    /// `POST /v1/query` / a Flight SQL statement.
    Sql(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Front {
    Http,
    Flight,
}

/// Rows of a JSON array, each rendered and sorted (order-insensitive).
fn json_rows(rows: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = rows.as_array().map(|a| a.iter().map(|r| r.to_string()).collect()).unwrap_or_default();
    out.sort();
    out
}

/// What must not change between two answers to the same lookup: whether it is
/// complete, and each dataset's status and rows (not the request id).
fn lookup_answer(doc: &serde_json::Value) -> String {
    let datasets: BTreeMap<String, String> = doc["datasets"]
        .as_object()
        .map(|m| m.iter().map(|(k, d)| (k.clone(), format!("{} {:?}", d["status"], json_rows(&d["rows"])))).collect())
        .unwrap_or_default();
    format!("legal_basis={} incomplete={} datasets={datasets:?}", doc["legal_basis"], doc["incomplete"])
}

/// A demo caller of the load test, with the purpose it declares.
struct LoadCaller {
    name: &'static str,
    purpose: &'static str,
    requests: Vec<Request>,
}

fn load_callers(lab: &Lab) -> Vec<LoadCaller> {
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let person = lab.manifest.featured.individual_resident_id.clone();
    let lookup = |purpose: &str| {
        Request::Lookup(serde_json::json!({"subject": {"type": "credit_code", "id": code}, "purpose": purpose}))
    };
    let sql = |text: String| Request::Sql(text);
    vec![
        LoadCaller {
            name: "samr",
            purpose: "supervision",
            requests: vec![
                lookup("supervision"),
                sql(format!("SELECT credit_code, name, status FROM market.enterprises WHERE credit_code = '{code}'")),
                sql("SELECT district_code, COUNT(*) AS n FROM market.enterprises GROUP BY district_code".into()),
                sql(format!(
                    "SELECT case_no, court, amount FROM court.dishonest_debtors WHERE resident_id = '{person}'"
                )),
                sql(format!("SELECT decision_no, amount FROM market.penalties WHERE credit_code = '{code}'")),
                sql(format!("SELECT licence_no, licence_type FROM market.licences WHERE credit_code = '{code}'")),
                sql("SELECT COUNT(*) AS n FROM market.penalties".into()),
            ],
        },
        LoadCaller {
            name: "credit_agency",
            purpose: "credit_report",
            requests: vec![
                lookup("credit_report"),
                sql(format!("SELECT credit_code, year, rating FROM tax.credit_ratings WHERE credit_code = '{code}'")),
                sql("SELECT name, legal_rep_name, legal_rep_id FROM market.enterprises ORDER BY credit_code LIMIT 20"
                    .into()),
                sql("SELECT rating, COUNT(*) AS n FROM tax.credit_ratings GROUP BY rating".into()),
                sql(format!("SELECT violation_type, amount FROM tax.major_violations WHERE credit_code = '{code}'")),
                sql("SELECT COUNT(*) AS n FROM court.dishonest_debtors".into()),
            ],
        },
        LoadCaller {
            name: "platform_a",
            purpose: "merchant_onboarding",
            requests: vec![
                lookup("merchant_onboarding"),
                sql(format!(
                    "SELECT shop_id, shop_name, rating FROM platform_a.shops WHERE owner_credit_code = '{code}'"
                )),
                sql("SELECT s.shop_id, b.entry_id FROM platform_a.shops s \
                    JOIN credit_platform.black_list b ON s.owner_credit_code = b.credit_code"
                    .into()),
                sql("SELECT status, COUNT(*) AS n FROM market.enterprises GROUP BY status".into()),
                sql(format!("SELECT licence_no FROM market.licences WHERE credit_code = '{code}'")),
                sql("SELECT COUNT(*) AS n FROM platform_a.violations".into()),
            ],
        },
    ]
}

/// Sends one request and renders its answer for comparison; any failure
/// (transport, status other than 200, error inside a body) is an `Err`.
async fn perform(
    front: Front,
    http: &mut HttpConn,
    flight: &mut FlightClient,
    purpose: &str,
    request: &Request,
) -> Result<String, String> {
    match (front, request) {
        (Front::Http, Request::Lookup(body)) => {
            let reply =
                http.request("POST", "/v1/lookup", &[(PURPOSE_HEADER, purpose)], Some(body.to_string())).await?;
            if reply.status != 200 {
                return Err(format!("lookup: HTTP {} {}", reply.status, reply.text()));
            }
            Ok(lookup_answer(&reply.json()))
        }
        (Front::Http, Request::Sql(sql)) => {
            let body = serde_json::json!({ "sql": sql }).to_string();
            let reply = http
                .request("POST", "/v1/query", &[(PURPOSE_HEADER, purpose), ("accept", "application/json")], Some(body))
                .await?;
            let doc = reply.json();
            if reply.status != 200 || !doc["error"].is_null() {
                return Err(format!("query: HTTP {} {}", reply.status, reply.text()));
            }
            Ok(format!("{} rows {:?}", doc["row_count"], json_rows(&doc["rows"])))
        }
        (Front::Flight, Request::Lookup(body)) => {
            let doc = flight.lookup(body).await.map_err(|e| format!("lookup: {}", flight_error_text(&e)))?;
            Ok(lookup_answer(&doc))
        }
        (Front::Flight, Request::Sql(sql)) => {
            let batches = flight.query(sql).await.map_err(|e| format!("query: {}", flight_error_text(&e)))?;
            let rows = sorted_rows(&batches);
            Ok(format!("{} rows {rows:?}", rows.len()))
        }
    }
}

/// Request `i` of load task `t`: (caller index, front end, request index).
fn load_schedule(callers: &[LoadCaller], t: usize, i: usize) -> (usize, Front, usize) {
    let c = t % callers.len();
    let front = if (t + i).is_multiple_of(2) { Front::Http } else { Front::Flight };
    (c, front, (t * 7 + i) % callers[c].requests.len())
}

async fn open_pair(lab: &Lab, caller: &LoadCaller) -> (HttpConn, FlightClient) {
    let http = HttpConn::open(lab, caller.name).await.expect("HTTP connection");
    let mut flight = lab.flight_client(caller.name).expect("Flight client");
    flight.set_header(PURPOSE_HEADER, caller.purpose);
    (http, flight)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_mixed_load_on_both_front_ends_answers_every_request_like_a_single_caller() {
    let _serial = SERIAL.lock().await;
    const TASKS: usize = 24;
    const PER_TASK: usize = 8;
    let tmp = tempfile::tempdir().expect("tempdir");
    // The test measures errors and memory under load, not the rate limiter:
    // the two principals with the lowest limits get room for a fast machine.
    let policy = DEMO_POLICY
        .replace("rate_limit = { per_second = 20, burst = 40 }", "rate_limit = { per_second = 500, burst = 1000 }");
    assert_eq!(policy.matches("per_second = 500").count(), 2, "the demo policy's rate limits changed; adjust the test");
    let lab = start_lab_with(tmp.path(), |o| o.policy = Some(policy)).await;
    let callers = Arc::new(load_callers(&lab));

    // Reference answers: one caller at a time, one request at a time.
    let mut reference: HashMap<(Front, usize, usize), String> = HashMap::new();
    for (c, caller) in callers.iter().enumerate() {
        let (mut http, mut flight) = open_pair(&lab, caller).await;
        for front in [Front::Http, Front::Flight] {
            for (r, request) in caller.requests.iter().enumerate() {
                let answer = perform(front, &mut http, &mut flight, caller.purpose, request)
                    .await
                    .unwrap_or_else(|e| panic!("reference {} {front:?} {request:?}: {e}", caller.name));
                if let Request::Lookup(_) = request {
                    assert!(answer.contains("incomplete=false"), "reference lookup {}: {answer}", caller.name);
                }
                reference.insert((front, c, r), answer);
            }
        }
    }
    // The same lookup answers alike on both front ends.
    for (c, caller) in callers.iter().enumerate() {
        for (r, request) in caller.requests.iter().enumerate() {
            if let Request::Lookup(_) = request {
                assert_eq!(reference[&(Front::Http, c, r)], reference[&(Front::Flight, c, r)], "{}", caller.name);
            }
        }
    }
    let reference = Arc::new(reference);

    let planned: Vec<(usize, Front, usize)> = (0..TASKS)
        .flat_map(|t| (0..PER_TASK).map(move |i| (t, i)))
        .map(|(t, i)| load_schedule(&callers, t, i))
        .collect();
    let lookups = planned.iter().filter(|(c, _, r)| matches!(callers[*c].requests[*r], Request::Lookup(_))).count();
    let over_http = planned.iter().filter(|(_, f, _)| *f == Front::Http).count();

    let audit_before = request_records(&lab).len();
    let rss_before = rss_bytes();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let c = t % callers.len();
        let (mut http, mut flight) = open_pair(&lab, &callers[c]).await;
        let callers = Arc::clone(&callers);
        let reference = Arc::clone(&reference);
        tasks.push(tokio::spawn(async move {
            let caller = &callers[c];
            let mut errors = Vec::new();
            for i in 0..PER_TASK {
                let (_, front, r) = load_schedule(&callers, t, i);
                match perform(front, &mut http, &mut flight, caller.purpose, &caller.requests[r]).await {
                    Ok(answer) if answer == reference[&(front, c, r)] => {}
                    Ok(answer) => errors.push(format!(
                        "{} {front:?} request {r}: answer differs from the reference\n  got  {}\n  want {}",
                        caller.name,
                        &answer[..answer.len().min(300)],
                        &reference[&(front, c, r)][..reference[&(front, c, r)].len().min(300)]
                    )),
                    Err(e) => errors.push(format!("{} {front:?} request {r}: {e}", caller.name)),
                }
            }
            errors
        }));
    }
    let mut errors = Vec::new();
    for task in tasks {
        let result = tokio::time::timeout(Duration::from_secs(120), task).await.expect("the load finishes in time");
        errors.extend(result.expect("load task"));
    }
    let took = started.elapsed();
    let rss_after = rss_bytes();
    let total = TASKS * PER_TASK;
    eprintln!(
        "load: {total} requests ({lookups} lookups, {over_http} over HTTP) from {TASKS} tasks in {took:?}; \
         RSS {} -> {} MiB",
        rss_before / MIB,
        rss_after / MIB
    );
    assert!(errors.is_empty(), "{} of {total} requests failed:\n{}", errors.len(), errors.join("\n"));
    assert!(
        rss_after.saturating_sub(rss_before) < 256 * MIB,
        "RSS grew by {} MiB under load",
        (rss_after - rss_before) / MIB
    );

    // Exactly one audit record per request, all allowed, each its own request id, chain intact.
    let all = request_records(&lab);
    let new = &all[audit_before..];
    assert_eq!(new.len(), total, "one audit record per request");
    assert!(new.iter().all(|r| format!("{:?}", r.outcome) == "Allowed"), "every request was allowed");
    let ids: std::collections::BTreeSet<&str> = new.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids.len(), total, "request ids are unique");
    let per_caller: BTreeMap<&str, usize> = new.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.caller.name.as_str()).or_default() += 1;
        m
    });
    assert_eq!(per_caller.get("samr"), Some(&(TASKS / 3 * PER_TASK)), "{per_caller:?}");
    assert_eq!(per_caller.get("credit_agency"), Some(&(TASKS / 3 * PER_TASK)), "{per_caller:?}");
    assert_eq!(per_caller.get("platform_a"), Some(&(TASKS / 3 * PER_TASK)), "{per_caller:?}");
    let http_records = new.iter().filter(|r| format!("{:?}", r.frontend) == "Http").count();
    assert_eq!(http_records, over_http, "one record per HTTP request, the rest over Flight");
    let report = lab.gateway_handle.auditor().log().verify();
    assert!(report.is_ok(), "{}", report.message());
    lab.stop().await.expect("stop");
}

// ---------------------------------------------------------------------------
// Schema mismatch

/// Copies the Parquet file `from` to `to` with column `column` cast to `to_type`.
fn rewrite_parquet_column(from: &Path, to: &Path, column: &str, to_type: &DataType) {
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(from).expect("open parquet"))
        .expect("parquet reader")
        .build()
        .expect("parquet reader");
    let mut writer: Option<ArrowWriter<std::fs::File>> = None;
    for batch in reader {
        let batch = batch.expect("batch");
        let index = batch.schema().index_of(column).expect("column");
        let fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| if i == index { Field::new(f.name(), to_type.clone(), true) } else { f.as_ref().clone() })
            .collect();
        let mut columns = batch.columns().to_vec();
        columns[index] = arrow::compute::cast(&columns[index], to_type).expect("cast");
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch");
        let writer = writer.get_or_insert_with(|| {
            ArrowWriter::try_new(std::fs::File::create(to).expect("create"), batch.schema(), None).expect("writer")
        });
        writer.write(&batch).expect("write");
    }
    writer.expect("at least one batch").close().expect("close");
}

/// The Arrow type of `column` in a Parquet file.
fn parquet_field_type(file: &Path, column: &str) -> DataType {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).expect("open parquet"))
        .expect("parquet reader");
    builder.schema().field_with_name(column).expect("column").data_type().clone()
}

/// A Flight server that answers every DoGet with `messages` and records the tickets.
#[derive(Clone)]
struct FakeConnector {
    messages: Vec<arrow_flight::FlightData>,
    tickets: Arc<Mutex<Vec<String>>>,
}

type FakeStream<T> = futures::stream::BoxStream<'static, Result<T, tonic::Status>>;

#[tonic::async_trait]
impl FlightService for FakeConnector {
    type HandshakeStream = FakeStream<arrow_flight::HandshakeResponse>;
    type ListFlightsStream = FakeStream<arrow_flight::FlightInfo>;
    type DoGetStream = FakeStream<arrow_flight::FlightData>;
    type DoPutStream = FakeStream<arrow_flight::PutResult>;
    type DoExchangeStream = FakeStream<arrow_flight::FlightData>;
    type DoActionStream = FakeStream<arrow_flight::Result>;
    type ListActionsStream = FakeStream<arrow_flight::ActionType>;

    async fn handshake(
        &self,
        _: tonic::Request<tonic::Streaming<arrow_flight::HandshakeRequest>>,
    ) -> Result<tonic::Response<Self::HandshakeStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }
    async fn list_flights(
        &self,
        _: tonic::Request<arrow_flight::Criteria>,
    ) -> Result<tonic::Response<Self::ListFlightsStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }
    async fn get_flight_info(
        &self,
        _: tonic::Request<arrow_flight::FlightDescriptor>,
    ) -> Result<tonic::Response<arrow_flight::FlightInfo>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }
    async fn poll_flight_info(
        &self,
        _: tonic::Request<arrow_flight::FlightDescriptor>,
    ) -> Result<tonic::Response<arrow_flight::PollInfo>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }
    async fn get_schema(
        &self,
        _: tonic::Request<arrow_flight::FlightDescriptor>,
    ) -> Result<tonic::Response<arrow_flight::SchemaResult>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }
    async fn do_get(
        &self,
        request: tonic::Request<arrow_flight::Ticket>,
    ) -> Result<tonic::Response<Self::DoGetStream>, tonic::Status> {
        let ticket = String::from_utf8_lossy(&request.get_ref().ticket).into_owned();
        self.tickets.lock().unwrap_or_else(|p| p.into_inner()).push(ticket);
        Ok(tonic::Response::new(futures::stream::iter(self.messages.clone().into_iter().map(Ok)).boxed()))
    }
    async fn do_put(
        &self,
        _: tonic::Request<tonic::Streaming<arrow_flight::FlightData>>,
    ) -> Result<tonic::Response<Self::DoPutStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }
    async fn do_exchange(
        &self,
        _: tonic::Request<tonic::Streaming<arrow_flight::FlightData>>,
    ) -> Result<tonic::Response<Self::DoExchangeStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }
    async fn do_action(
        &self,
        _: tonic::Request<arrow_flight::Action>,
    ) -> Result<tonic::Response<Self::DoActionStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }
    async fn list_actions(
        &self,
        _: tonic::Request<arrow_flight::Empty>,
    ) -> Result<tonic::Response<Self::ListActionsStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }
}

/// Serves `fake` with the connector's certificate on `listener` until the sender is dropped or fired.
fn serve_fake(
    fake: FakeConnector,
    listener: tokio::net::TcpListener,
    config: &ConnectorConfig,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let tls = creditgate_certs::tls::server_config(&config.cert, &config.key, None, &[b"h2"]).expect("fake TLS");
    let incoming = creditgate_certs::tls::incoming(listener, tls, Duration::from_secs(5));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(FlightServiceServer::new(fake))
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stopped.await;
            })
            .await;
    });
    (stop, handle)
}

async fn http_query(lab: &Lab, caller: &str, sql: &str) -> (u16, serde_json::Value) {
    let response = lab
        .http(
            caller,
            "POST",
            "/v1/query",
            &[("accept", "application/json")],
            Some(serde_json::json!({ "sql": sql }).to_string()),
        )
        .await
        .expect("http");
    (response.status, serde_json::from_slice(&response.body).unwrap_or(serde_json::Value::Null))
}

async fn http_lookup(lab: &Lab, caller: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let response = lab.http(caller, "POST", "/v1/lookup", &[], Some(body.to_string())).await.expect("http");
    (response.status, serde_json::from_slice(&response.body).unwrap_or(serde_json::Value::Null))
}

/// Runs `work` under a generous deadline: "answers promptly", not a timing claim.
async fn promptly<T>(what: &str, work: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), work)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 30 s"))
}

/// Stops the tax connector and starts it again on the same address with
/// `credit_ratings` read from a copy of its file where `year` is text.
async fn restart_tax_with_year_as_text(lab: &mut Lab, dir: &Path) -> creditgate_connector::RunningConnector {
    let mut mismatched = lab.connector_configs.get("tax").expect("tax config").clone();
    let table = mismatched.tables.iter_mut().find(|t| t.name == "credit_ratings").expect("credit_ratings");
    let bad_file = dir.join("credit_ratings_year_as_text.parquet");
    rewrite_parquet_column(&table.path, &bad_file, "year", &DataType::Utf8);
    table.path = bad_file;
    lab.connectors.remove("tax").expect("tax").stop().await.expect("stop tax");
    restart_connector(&mismatched).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_answering_with_another_schema_is_named_and_the_gateway_recovers() {
    let _serial = SERIAL.lock().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut lab = start_lab(tmp.path()).await;
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let ratings = format!("SELECT credit_code, year, rating FROM tax.credit_ratings WHERE credit_code = '{code}'");
    let violations = format!("SELECT case_id, amount FROM tax.major_violations WHERE credit_code = '{code}'");
    let lookup = serde_json::json!({"subject": {"type": "credit_code", "id": code}, "purpose": "supervision"});
    let mut flight = lab.flight_client("samr").expect("client");

    // Reference, with the right connector.
    let (status, good) = http_query(&lab, "samr", &ratings).await;
    assert_eq!(status, 200, "{good}");
    let good_rows = json_rows(&good["rows"]);
    assert!(!good_rows.is_empty(), "the featured company has credit ratings");
    let (status, doc) = http_lookup(&lab, "samr", &lookup).await;
    assert_eq!((status, doc["incomplete"].clone()), (200, serde_json::json!(false)), "{doc}");
    assert_eq!(doc["datasets"]["tax.credit_ratings"]["status"], "ok");
    let good_lookup = lookup_answer(&doc);

    // The tax connector comes back serving `credit_ratings` from another file,
    // where `year` is text instead of an integer.
    let original = lab.connector_configs.get("tax").expect("tax config").clone();
    let wrong = restart_tax_with_year_as_text(&mut lab, tmp.path()).await;
    let served_before = served(&lab, "tax").len();

    // HTTP: a stable code, the source named, promptly.
    let started = Instant::now();
    let (status, doc) = promptly("HTTP query", http_query(&lab, "samr", &ratings)).await;
    eprintln!("schema mismatch: HTTP answered {status} in {:?}", started.elapsed());
    assert_eq!(status, 502, "{doc}");
    assert_eq!(doc["error"]["code"], "CG-SRC-004", "{doc}");
    let message = doc["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("source `tax`") && message.contains("unexpected schema"), "{message}");
    assert!(message.contains("year"), "the message names the column: {message}");
    assert!(!message.contains(tmp.path().to_str().unwrap_or("/")), "no path leaks: {message}");
    // The connector did answer (with rows): the gateway's own check refused them.
    let log = served(&lab, "tax");
    let record =
        log[served_before..].iter().find(|r| r.sql.contains("credit_ratings")).expect("the connector was asked");
    assert_eq!((record.outcome.as_str(), record.rows as usize), ("ok", good_rows.len()), "{record:?}");

    // A whole-table scan and Flight say the same.
    let (status, doc) = promptly("HTTP scan", http_query(&lab, "samr", "SELECT * FROM tax.credit_ratings")).await;
    assert_eq!((status, doc["error"]["code"].clone()), (502, serde_json::json!("CG-SRC-004")), "{doc}");
    let error = promptly("Flight query", flight.query(&ratings)).await.expect_err("mismatch over Flight");
    let text = flight_error_text(&error);
    assert!(
        text.contains("Unavailable") && text.contains("source `tax`") && text.contains("unexpected schema"),
        "{text}"
    );

    // The lookup: that dataset is an error naming the source, the answer is
    // incomplete, every other dataset (the same connector's other table too) is ok.
    let (status, doc) = promptly("lookup", http_lookup(&lab, "samr", &lookup)).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["incomplete"], true, "{doc}");
    let bad = &doc["datasets"]["tax.credit_ratings"];
    assert_eq!(bad["status"], "error", "{doc}");
    assert!(bad["error"].as_str().unwrap_or_default().contains("source `tax`"), "{bad}");
    assert_eq!(bad["rows"].as_array().map(Vec::len), Some(0), "no rows of the wrong shape");
    let datasets = doc["datasets"].as_object().expect("datasets");
    assert!(datasets.len() > 5, "{doc}");
    for (name, result) in datasets.iter().filter(|(name, _)| name.as_str() != "tax.credit_ratings") {
        assert_eq!(result["status"], "ok", "{name}: {result}");
    }
    assert_eq!(doc["datasets"]["market.enterprises"]["rows"].as_array().map(Vec::len), Some(1));

    // The gateway keeps serving, the same source's other table included; a
    // schema mismatch is not an outage, so repeating it does not open the circuit.
    for _ in 0..creditgate_remote::CIRCUIT_FAILURE_THRESHOLD + 1 {
        let (status, _) = http_query(&lab, "samr", &ratings).await;
        assert_eq!(status, 502);
    }
    let (status, doc) = http_query(&lab, "samr", &violations).await;
    assert_eq!(status, 200, "control on the same source: {doc}");
    let (status, doc) =
        http_query(&lab, "samr", &format!("SELECT name FROM market.enterprises WHERE credit_code = '{code}'")).await;
    assert_eq!((status, doc["row_count"].clone()), (200, serde_json::json!(1)), "control on another source: {doc}");
    wrong.stop().await.expect("stop the mismatched connector");

    // A connector whose first batch matches and whose stream then changes
    // shape (a second schema message): the rest of the stream is checked too
    // (a Flight stream has one schema, so here the Flight decoder is what
    // refuses it), and what was already sent ends with an error naming the
    // source, never with rows of another shape.
    let original_file = &original.tables.iter().find(|t| t.name == "credit_ratings").expect("credit_ratings").path;
    let year_type = parquet_field_type(original_file, "year");
    let right = Arc::new(Schema::new(vec![Field::new("year", year_type.clone(), true)]));
    let years: arrow::array::ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![2021, 2022]));
    let right_batch =
        RecordBatch::try_new(Arc::clone(&right), vec![arrow::compute::cast(&years, &year_type).expect("cast")])
            .expect("batch");
    let other = Arc::new(Schema::new(vec![Field::new("year", DataType::Utf8, true)]));
    let other_batch =
        RecordBatch::try_new(Arc::clone(&other), vec![Arc::new(arrow::array::StringArray::from(vec!["MMXXIII"]))])
            .expect("batch");
    let mut messages = arrow_flight::utils::batches_to_flight_data(&right, vec![right_batch]).expect("encode");
    messages.extend(arrow_flight::utils::batches_to_flight_data(&other, vec![other_batch]).expect("encode"));
    let fake = FakeConnector { messages, tickets: Arc::default() };
    let tickets = Arc::clone(&fake.tickets);
    let (stop_fake, fake_done) = serve_fake(fake, creditgate_tests::rebind(original.listen).await, &original);
    let year_only = "SELECT year FROM tax.credit_ratings";
    let (status, doc) = promptly("HTTP query (fake)", http_query(&lab, "samr", year_only)).await;
    // The first batch passed the check, so the status (200) and its rows are
    // out; the document then ends as incomplete, with an error naming the source.
    assert_eq!(status, 200, "{doc}");
    assert_eq!(json_rows(&doc["rows"]), ["{\"year\":2021}", "{\"year\":2022}"], "{doc}");
    assert_eq!(doc["incomplete"], true, "{doc}");
    assert!(doc["row_count"].is_null(), "no row count for a failed result: {doc}");
    assert!(!doc.to_string().contains("MMXXIII"), "rows of the other shape never reach the client: {doc}");
    assert_eq!(doc["error"]["code"], "CG-SRC-004", "{doc}");
    assert!(doc["error"]["message"].as_str().unwrap_or_default().contains("source `tax`"), "{doc}");
    let error = promptly("Flight query (fake)", flight.query(year_only)).await.expect_err("shape change over Flight");
    let text = flight_error_text(&error);
    assert!(text.contains("source `tax`"), "{text}");
    let asked = tickets.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(asked.len(), 2, "the gateway asked the fake: {asked:?}");
    assert!(asked.iter().all(|t| t.contains("credit_ratings")), "{asked:?}");
    let _ = stop_fake.send(());
    promptly("fake stops", fake_done).await.expect("fake server");

    // The right connector returns: the same answers as before.
    let running = restart_connector(&original).await;
    lab.connectors.insert("tax".to_string(), running);
    let (status, doc) = promptly("HTTP query (recovered)", http_query(&lab, "samr", &ratings)).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(json_rows(&doc["rows"]), good_rows);
    let rows = sorted_rows(&flight.query(&ratings).await.expect("Flight recovered"));
    assert_eq!(rows.len(), good_rows.len());
    let (status, doc) = http_lookup(&lab, "samr", &lookup).await;
    assert_eq!(status, 200);
    assert_eq!(lookup_answer(&doc), good_lookup);
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_answering_with_another_schema_is_caught_even_without_rows() {
    let _serial = SERIAL.lock().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut lab = start_lab(tmp.path()).await;
    // A company with no credit rating at all.
    let reference = creditgate_tests::reference_session(&lab).await;
    let unrated = reference
        .sql("SELECT credit_code FROM market.enterprises WHERE credit_code NOT IN (SELECT credit_code FROM tax.credit_ratings) ORDER BY 1 LIMIT 1")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("reference");
    let unrated = sorted_rows(&unrated).pop().expect("an unrated company");
    let lookup = serde_json::json!({"subject": {"type": "credit_code", "id": unrated}, "purpose": "supervision"});
    let (status, doc) = http_lookup(&lab, "samr", &lookup).await;
    assert_eq!((status, doc["incomplete"].clone()), (200, serde_json::json!(false)), "{}", doc["error"]);
    assert_eq!(doc["datasets"]["tax.credit_ratings"]["status"], "ok");
    assert_eq!(doc["datasets"]["tax.credit_ratings"]["rows"].as_array().map(Vec::len), Some(0));

    let wrong = restart_tax_with_year_as_text(&mut lab, tmp.path()).await;
    let (status, doc) = promptly("lookup", http_lookup(&lab, "samr", &lookup)).await;
    assert_eq!(status, 200, "{doc}");
    let ratings = &doc["datasets"]["tax.credit_ratings"];
    assert_eq!(ratings["status"], "error", "a mismatched source answered `ok` for an empty result: {ratings}");
    assert_eq!(doc["incomplete"], true);
    let sql = format!("SELECT credit_code, year, rating FROM tax.credit_ratings WHERE credit_code = '{unrated}'");
    let (status, doc) = promptly("query", http_query(&lab, "samr", &sql)).await;
    assert_eq!((status, doc["error"]["code"].clone()), (502, serde_json::json!("CG-SRC-004")), "{doc}");
    wrong.stop().await.expect("stop");
    lab.stop().await.expect("stop");
}

// ---------------------------------------------------------------------------
// Slow readers

/// Stops `source`'s connector and starts it again with `table` served from a
/// directory of `copies` copies of its Parquet file: the same schema, `copies`
/// times the rows. Returns the new row count.
async fn enlarge(lab: &mut Lab, dir: &Path, source: &str, table: &str, copies: usize) -> usize {
    let mut config = lab.connector_configs.get(source).expect("config").clone();
    let entry = config.tables.iter_mut().find(|t| t.name == table).expect("table");
    let big = dir.join(format!("big-{source}-{table}"));
    std::fs::create_dir_all(&big).expect("mkdir");
    for i in 0..copies {
        let to = big.join(format!("part-{i:04}.parquet"));
        if std::fs::hard_link(&entry.path, &to).is_err() {
            std::fs::copy(&entry.path, &to).expect("copy");
        }
    }
    entry.path = big;
    lab.connectors.remove(source).expect("connector").stop().await.expect("stop");
    let running = restart_connector(&config).await;
    lab.connectors.insert(source.to_string(), running);
    let rows = lab
        .manifest
        .sources
        .iter()
        .find(|s| s.name == source)
        .and_then(|s| s.tables.iter().find(|t| t.name == table))
        .expect("manifest table")
        .rows as usize;
    rows * copies
}

/// The highest RSS seen over `period`.
async fn peak_rss_over(period: Duration) -> u64 {
    let end = Instant::now() + period;
    let mut peak = rss_bytes();
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(rss_bytes());
    }
    peak
}

/// Waits for the connector's record of the query whose SQL is exactly `sql`,
/// logged after the first `after` records (a stream is logged when it ends).
async fn served_record(lab: &Lab, source: &str, after: usize, sql: &str) -> ServedRecord {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(record) = served(lab, source).into_iter().skip(after).find(|r| r.sql == sql) {
            return record;
        }
        assert!(Instant::now() < deadline, "the connector never logged the end of `{sql}`");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_are_back_pressured_and_their_streams_cancelled_at_the_connector() {
    let _serial = SERIAL.lock().await;
    // 400 000 rows: several times what the pipeline between connector and
    // client holds (kernel socket buffers, HTTP/2 windows, a dozen batches).
    const COPIES: usize = 400;
    const PAUSE: Duration = Duration::from_secs(3);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut lab = start_lab(tmp.path()).await;
    let total = enlarge(&mut lab, tmp.path(), "market", "enterprises", COPIES).await;
    // Byte-heavy text columns plus one the agency sees masked (phone), so the
    // result goes through the masking projection like real queries do.
    let sql = "SELECT credit_code, phone, address, business_scope FROM market.enterprises";
    let body = serde_json::json!({ "sql": sql }).to_string();
    let wire_sql = {
        // Learn the SQL the connector receives for this scan.
        let (status, doc) = http_query(&lab, "samr", &format!("{sql} LIMIT 1")).await;
        assert_eq!(status, 200, "{doc}");
        let record = served(&lab, "market").into_iter().rev().find(|r| r.sql.contains("enterprises")).expect("served");
        assert!(record.sql.ends_with(" LIMIT 1"), "{}", record.sql);
        record.sql.trim_end_matches(" LIMIT 1").to_string()
    };

    // Control, which also warms up every cache on the way (so the paused runs
    // below measure what a reader in flight costs, not first-use costs): a
    // Flight reader that reads everything, and what the connector logs for it.
    let before = served(&lab, "market").len();
    let mut client = lab.flight_client("samr").expect("client");
    let started = Instant::now();
    let (rows, _) = promptly("full Flight read", client.query_count(sql)).await.expect("full Flight read");
    let flight_took = started.elapsed();
    assert_eq!(rows as usize, total);
    let full = served_record(&lab, "market", before, &wire_sql).await;
    assert_eq!((full.outcome.as_str(), full.rows as usize), ("ok", total), "{full:?}");
    drop(client);

    // HTTP: read the first frame, then stop reading.
    let before = served(&lab, "market").len();
    let rss_before_http = rss_bytes();
    let mut conn = HttpConn::open(&lab, "samr").await.expect("connect");
    let response = promptly(
        "HTTP first batch",
        conn.send("POST", "/v1/query", &[("accept", "application/json")], Some(body.clone())),
    )
    .await
    .expect("send");
    assert_eq!(response.status(), 200);
    let mut body_stream = response.into_body();
    let first = promptly("first frame", body_stream.frame()).await.expect("a frame").expect("frame");
    assert!(first.data_ref().is_some_and(|d| !d.is_empty()));
    let http_peak = peak_rss_over(PAUSE).await;
    drop(body_stream);
    conn.abort();
    let http_record = served_record(&lab, "market", before, &wire_sql).await;

    // Flight: one batch, then a pause.
    let before = served(&lab, "market").len();
    let rss_before_flight = rss_bytes();
    let mut client = lab.flight_client("samr").expect("client");
    let info = promptly("GetFlightInfo", client.inner_mut().execute(sql.to_string(), None)).await.expect("execute");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let mut stream = promptly("DoGet", client.inner_mut().do_get(ticket)).await.expect("do_get");
    let first = promptly("first batch", stream.next()).await.expect("a batch").expect("batch");
    assert!(first.num_rows() > 0);
    let flight_peak = peak_rss_over(PAUSE).await;
    drop(stream);
    drop(client);
    let flight_record = served_record(&lab, "market", before, &wire_sql).await;

    // The gateway still serves, and an HTTP reader that reads everything gets
    // the whole result (the full size, in the Arrow format the gateway holds).
    let (status, doc) =
        promptly("control", http_query(&lab, "samr", "SELECT COUNT(*) AS n FROM market.licences")).await;
    assert_eq!((status, doc["rows"][0]["n"].clone()), (200, serde_json::json!(1200)), "{doc}");
    let before = served(&lab, "market").len();
    let mut conn = HttpConn::open(&lab, "samr").await.expect("connect");
    let started = Instant::now();
    let arrow = promptly(
        "full HTTP read",
        conn.request("POST", "/v1/query", &[("accept", "application/vnd.apache.arrow.stream")], Some(body)),
    )
    .await
    .expect("arrow");
    let arrow_took = started.elapsed();
    assert_eq!(arrow.status, 200);
    let arrow_bytes = arrow.body.len() as u64;
    drop(arrow);
    let full = served_record(&lab, "market", before, &wire_sql).await;
    assert_eq!((full.outcome.as_str(), full.rows as usize), ("ok", total), "{full:?}");

    let http_growth = http_peak.saturating_sub(rss_before_http);
    let flight_growth = flight_peak.saturating_sub(rss_before_flight);
    eprintln!(
        "slow readers: {total} rows, {} MiB as Arrow IPC; full reads: Flight {flight_took:?}, HTTP {arrow_took:?}; \
         RSS growth while paused: HTTP {} MiB, Flight {} MiB; the connector sent {} rows ({}) to the paused HTTP \
         reader, {} rows ({}) to the paused Flight reader",
        arrow_bytes / MIB,
        http_growth / MIB,
        flight_growth / MIB,
        http_record.rows,
        http_record.outcome,
        flight_record.rows,
        flight_record.outcome
    );
    // Back-pressure: a paused reader makes the gateway hold far less than the
    // result (buffering it would take at least its Arrow size).
    let bound = arrow_bytes / 3;
    for (front, growth) in [("HTTP", http_growth), ("Flight", flight_growth)] {
        assert!(
            growth < bound,
            "{front}: RSS grew {} MiB for a paused reader (bound {} MiB)",
            growth / MIB,
            bound / MIB
        );
    }
    // Cancellation reached the connector: it stopped early, and says so.
    for (front, record) in [("HTTP", &http_record), ("Flight", &flight_record)] {
        assert!((record.rows as usize) < total / 2, "{front}: the connector kept sending to a gone reader: {record:?}");
        assert_eq!(record.outcome, "cancelled", "{front}: {record:?}");
    }
    // The gateway saw the same: both remote reads count as cancelled in its
    // metrics, and both requests' stream-end audit records say so.
    let metrics = lab.http("samr", "GET", "/metrics", &[], None).await.expect("metrics");
    let cancelled_reads = String::from_utf8_lossy(&metrics.body)
        .lines()
        .find_map(|l| l.strip_prefix("creditgate_source_queries_total{source=\"market\",status=\"cancelled\"}"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(cancelled_reads >= 2, "cancelled market reads in /metrics: {cancelled_reads}");
    let mut cancelled_ends = 0;
    for _ in 0..300 {
        cancelled_ends = audit_records(&lab)
            .iter()
            .filter(|r| r.is_stream_end() && r.outcome == creditgate_audit::Outcome::Cancelled)
            .count();
        if cancelled_ends >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cancelled_ends >= 2, "stream-end records of the two paused readers: {cancelled_ends}");
    lab.stop().await.expect("stop");
}

// ---------------------------------------------------------------------------
// Graceful shutdown

/// The signed checkpoints of the audit log in `dir`, oldest first.
fn checkpoints(dir: &Path) -> Vec<creditgate_audit::Checkpoint> {
    std::fs::read_to_string(dir.join(creditgate_audit::CHECKPOINTS_FILE))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("checkpoint"))
        .collect()
}

/// When the connector's stream of `record` ended.
fn served_end(record: &ServedRecord) -> chrono::DateTime<chrono::Utc> {
    let start = chrono::DateTime::parse_from_rfc3339(&record.time).expect("served time").with_timezone(&chrono::Utc);
    start + chrono::Duration::milliseconds(record.duration_ms as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_streams_in_flight_finish_and_signs_a_final_checkpoint_over_every_record() {
    let _serial = SERIAL.lock().await;
    // Larger than what the sockets and windows between connector and client
    // hold, so the gateway is still streaming when it is told to stop.
    const COPIES: usize = 200;
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut lab = start_lab(tmp.path()).await;
    let total = enlarge(&mut lab, tmp.path(), "market", "enterprises", COPIES).await;
    let sql = "SELECT credit_code, phone, address, business_scope FROM market.enterprises";
    let audit_dir = lab.dir.join("state").join("audit");
    let (status, _) = http_query(&lab, "samr", "SELECT name FROM market.enterprises LIMIT 1").await;
    assert_eq!(status, 200);
    assert!(
        checkpoints(&audit_dir).iter().all(|c| c.kind != creditgate_audit::CheckpointKind::Close),
        "no closing checkpoint before the stop"
    );
    let served_before = served(&lab, "market").len();

    // An HTTP reader and a Flight reader, each with its first part in hand.
    let mut conn = HttpConn::open(&lab, "samr").await.expect("connect");
    let body = serde_json::json!({ "sql": sql }).to_string();
    let response = conn.send("POST", "/v1/query", &[("accept", "application/json")], Some(body)).await.expect("send");
    assert_eq!(response.status(), 200);
    let http_request_id = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut body_stream = response.into_body();
    let first = body_stream.frame().await.expect("frame").expect("frame").into_data().expect("data");
    let mut client = lab.flight_client("samr").expect("client");
    let info = client.inner_mut().execute(sql.to_string(), None).await.expect("execute");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let mut stream = client.inner_mut().do_get(ticket).await.expect("do_get");
    let first_batch = stream.next().await.expect("batch").expect("batch");

    // Stop the gateway, and only then read the rest.
    let addr = lab.gateway.http_addr;
    let ca = lab.ca_file.clone();
    let samr = lab.caller("samr").expect("samr").clone();
    let market_log = lab.connector_configs.get("market").expect("market").served_log.clone();
    let stop_requested = chrono::Utc::now();
    let started = Instant::now();
    let stop = tokio::spawn(lab.gateway.stop());
    let http_reader = tokio::spawn(async move {
        let _conn = conn;
        let mut text = first.to_vec();
        while let Some(frame) = body_stream.frame().await {
            match frame {
                Ok(frame) => text.extend_from_slice(&frame.into_data().unwrap_or_default()),
                Err(e) => return Err(format!("body ended with an error after {} bytes: {e}", text.len())),
            }
        }
        Ok(text)
    });
    let flight_reader = tokio::spawn(async move {
        let _client = client;
        let mut rows = first_batch.num_rows();
        while let Some(batch) = stream.next().await {
            rows += batch.map_err(|e| format!("stream ended with an error after {rows} rows: {e}"))?.num_rows();
        }
        Ok::<usize, String>(rows)
    });
    let http = tokio::time::timeout(Duration::from_secs(60), http_reader).await.expect("the HTTP reader ends in 60 s");
    let flight =
        tokio::time::timeout(Duration::from_secs(60), flight_reader).await.expect("the Flight reader ends in 60 s");
    tokio::time::timeout(Duration::from_secs(60), stop)
        .await
        .expect("the gateway stops in 60 s")
        .expect("stop task")
        .expect("stop");
    let stop_took = started.elapsed();
    eprintln!("shutdown: the stop took {stop_took:?} with two readers of {total} rows in flight");

    // Both requests were in flight when the stop began, and both finished with every row.
    let text = http.expect("task").expect("the HTTP stream completes");
    let doc: serde_json::Value = serde_json::from_slice(&text).expect("a complete JSON document");
    assert_eq!(doc["row_count"], total, "{}", String::from_utf8_lossy(&text[text.len().saturating_sub(200)..]));
    assert_eq!(flight.expect("task").expect("the Flight stream completes"), total);
    let streams: Vec<ServedRecord> = creditgate_connector::ServedLog::read_all(&market_log)
        .expect("served log")
        .into_iter()
        .skip(served_before)
        .filter(|r| r.sql.contains("business_scope"))
        .collect();
    assert_eq!(streams.len(), 2, "{streams:?}");
    for record in &streams {
        assert_eq!((record.outcome.as_str(), record.rows as usize), ("ok", total), "{record:?}");
    }
    assert!(
        streams.iter().any(|r| served_end(r) > stop_requested),
        "a stream was still running at the connector when the stop began: {streams:?}"
    );
    // Nothing new is accepted.
    let who = creditgate_tooling::client::ClientIdentity { ca: &ca, cert: Some((&samr.cert, &samr.key)) };
    let refused = creditgate_tooling::client::http_request(
        &addr.to_string(),
        creditgate_tooling::demo::SERVER_NAME,
        &who,
        "GET",
        "/healthz",
        &[],
        None,
    )
    .await;
    assert!(refused.is_err(), "a stopped gateway accepted a connection: {refused:?}");
    for (_, connector) in std::mem::take(&mut lab.connectors) {
        connector.stop().await.expect("stop connector");
    }

    // The final checkpoint is signed and covers every record, the in-flight ones included.
    let records = audit_records_in(&audit_dir);
    let requests = records.iter().filter(|r| !r.is_stream_end()).count();
    assert_eq!(requests, 3, "warm-up, HTTP and Flight requests: {records:#?}");
    let id = http_request_id.expect("x-request-id");
    assert!(records.iter().any(|r| r.request_id == id), "the in-flight HTTP request is recorded");
    let head = records.last().expect("records");
    let last = checkpoints(&audit_dir).pop().expect("a checkpoint");
    assert_eq!(last.kind, creditgate_audit::CheckpointKind::Close);
    assert_eq!((last.head_seq, last.record_count, last.head_hash.as_str()), (head.seq, head.seq, head.hash.as_str()));
    let report = creditgate_audit::verify(&audit_dir, None);
    assert!(report.is_ok(), "{}", report.message());
    assert!(report.checkpoints_verified >= 1 && report.head_seq == Some(head.seq), "{}", report.message());
    // Negative control: the verifier notices a record changed after the fact.
    let copy = tmp.path().join("audit-copy");
    std::fs::create_dir_all(&copy).expect("mkdir");
    for entry in std::fs::read_dir(&audit_dir).expect("audit dir").filter_map(|e| e.ok()) {
        if entry.path().is_file() && entry.file_name() != "audit.lock" {
            std::fs::copy(entry.path(), copy.join(entry.file_name())).expect("copy");
        }
    }
    let segment = std::fs::read_dir(&copy)
        .expect("copy")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("audit-")))
        .expect("segment");
    let text = std::fs::read_to_string(&segment).expect("segment");
    let tampered = text.replacen("\"samr\"", "\"SAMR\"", 1);
    assert_ne!(tampered, text);
    std::fs::write(&segment, tampered).expect("write");
    assert!(!creditgate_audit::verify(&copy, None).is_ok(), "a changed record must fail verification");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_not_held_up_by_a_reader_that_stopped_reading() {
    let _serial = SERIAL.lock().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut lab = start_lab(tmp.path()).await;
    enlarge(&mut lab, tmp.path(), "market", "enterprises", 200).await;
    let sql = "SELECT credit_code, phone, address, business_scope FROM market.enterprises";
    // One reader per front end takes the first part of a large result and then reads nothing.
    let mut conn = HttpConn::open(&lab, "samr").await.expect("connect");
    let body = serde_json::json!({ "sql": sql }).to_string();
    let response = conn.send("POST", "/v1/query", &[], Some(body)).await.expect("send");
    let mut body_stream = response.into_body();
    body_stream.frame().await.expect("frame").expect("frame");
    let mut client = lab.flight_client("samr").expect("client");
    let info = client.inner_mut().execute(sql.to_string(), None).await.expect("execute");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let mut stream = client.inner_mut().do_get(ticket).await.expect("do_get");
    stream.next().await.expect("batch").expect("batch");

    let audit_dir = lab.dir.join("state").join("audit");
    tokio::time::timeout(Duration::from_secs(45), lab.gateway.stop())
        .await
        .expect("the gateway stops within 45 s although two readers stalled")
        .expect("stop");
    let head = audit_records_in(&audit_dir).last().expect("records").seq;
    let last = checkpoints(&audit_dir).pop().expect("a checkpoint");
    assert_eq!((last.kind, last.head_seq), (creditgate_audit::CheckpointKind::Close, head));
    drop((body_stream, conn, stream, client));
    for (_, connector) in std::mem::take(&mut lab.connectors) {
        connector.stop().await.expect("stop connector");
    }
}

// ---------------------------------------------------------------------------
// Isolation between callers under concurrency

/// A query permit for demo caller `name`, authenticated by the gateway from
/// its certificate as if it had connected over Flight, and authorized.
async fn in_process_caller(lab: &Lab, name: &str, purpose: &str) -> creditgate_engine::Permit {
    let who = lab.caller(name).expect("demo caller");
    let der = creditgate_certs::load::certs_from_pem_file(&who.cert).expect("certificate").remove(0);
    let identity = creditgate_certs::identity::Identity::from_der(&der).expect("identity");
    let conn =
        creditgate_certs::tls::ConnInfo::new(std::net::SocketAddr::from(([127, 0, 0, 1], 9)), Some(Arc::new(identity)));
    let caller =
        lab.gateway_handle.authenticate(Some(&conn), creditgate_engine::Frontend::Flight).await.expect("authenticated");
    let what = creditgate_audit::RecordedQuery::Sql("in-process test".to_string());
    let intent = creditgate_engine::Intent::new(creditgate_policy::Operation::Query, Some(purpose.to_string()), what);
    lab.gateway_handle.authorize(caller, intent).await.expect("authorized")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_with_different_policies_never_see_each_others_views() {
    let _serial = SERIAL.lock().await;
    const TASKS: usize = 10;
    const PER_TASK: usize = 20;
    let tmp = tempfile::tempdir().expect("tempdir");
    // Rate limits high enough for 100 queries per caller in a burst: this test
    // is about isolation, and a fast machine would otherwise meet the limit.
    let limit = "rate_limit = { per_second = 20, burst = 40 }";
    assert!(DEMO_POLICY.contains(limit), "the demo policy's rate limit changed; update this test");
    let policy = DEMO_POLICY.replace(limit, "rate_limit = { per_second = 1000, burst = 1000 }");
    let lab = start_lab_with(tmp.path(), |options| options.policy = Some(policy)).await;
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let sql = format!("SELECT legal_rep_name FROM market.enterprises WHERE credit_code = '{code}'");
    // Positive and negative control, one at a time: the agency sees the legal
    // representative's name, the credit agency only a masked form (`*`).
    let raw = sorted_rows(&lab.flight_client("samr").expect("client").query(&sql).await.expect("samr"));
    let masked = sorted_rows(&lab.flight_client("credit_agency").expect("client").query(&sql).await.expect("agency"));
    assert_eq!((raw.len(), masked.len()), (1, 1));
    assert!(masked[0].contains('*') && !raw[0].contains('*') && masked[0] != raw[0], "{raw:?} {masked:?}");

    // In process, deterministically: a session built for one caller keeps
    // planning against that caller's views after a session is built for another.
    let gateway = &lab.gateway_handle;
    let samr = in_process_caller(&lab, "samr", "supervision").await;
    let agency = in_process_caller(&lab, "credit_agency", "credit_report").await;
    let (agency_session, _) = gateway.session_for(&agency).expect("agency session");
    let (samr_session, _) = gateway.session_for(&samr).expect("samr session");
    for (who, session, expected) in [("credit_agency", &agency_session, &masked), ("samr", &samr_session, &raw)] {
        let batches = session.sql(&sql).await.expect("plan").collect().await.expect("run");
        assert_eq!(
            &sorted_rows(&batches),
            expected,
            "{who}'s session planned against the views of the caller whose session was built last"
        );
    }

    // The same, concurrently: every answer must be the caller's own.
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (caller, expected) = if t % 2 == 0 { ("samr", raw.clone()) } else { ("credit_agency", masked.clone()) };
        let mut client = lab.flight_client(caller).expect("client");
        let sql = sql.clone();
        tasks.push(tokio::spawn(async move {
            let mut wrong = Vec::new();
            for _ in 0..PER_TASK {
                match client.query(&sql).await {
                    Ok(batches) if sorted_rows(&batches) == expected => {}
                    Ok(batches) => wrong.push(format!("{caller} got {:?}", sorted_rows(&batches))),
                    Err(e) => wrong.push(format!("{caller}: {}", flight_error_text(&e))),
                }
            }
            wrong
        }));
    }
    let mut wrong = Vec::new();
    for task in tasks {
        wrong.extend(tokio::time::timeout(Duration::from_secs(60), task).await.expect("in time").expect("task"));
    }
    let leaked = wrong.iter().filter(|w| w.starts_with("credit_agency got") && w.contains(&raw[0])).count();
    assert!(
        wrong.is_empty(),
        "{} of {} answers were not the caller's own ({leaked} gave the credit agency the unmasked resident ID):\n{}",
        wrong.len(),
        TASKS * PER_TASK,
        wrong.join("\n")
    );
    lab.stop().await.expect("stop");
}
