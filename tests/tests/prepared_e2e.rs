//! Prepared statements with parameters, end to end over mTLS: the Flight SQL
//! calls a standard client makes (CreatePreparedStatement, DoPut with the
//! parameter rows, GetFlightInfo, DoGet, DoPut update for `executemany`,
//! ClosePreparedStatement), spoken here at the protocol level so each handle
//! can also be replayed by another certificate or for another purpose; and
//! HTTP `{"sql", "params"}`.
//!
//! Each check compares with the same query written as text with literals:
//! a parameter is a value, never SQL, and is compared as a literal is (with
//! a masked column, with the masked value).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult,
    Any, CommandPreparedStatementQuery, CommandPreparedStatementUpdate, DoPutPreparedStatementResult,
    DoPutUpdateResult, ProstMessageExt,
};
use arrow_flight::{Action, FlightDescriptor, IpcMessage};
use bytes::Bytes;
use creditgate_audit::{Outcome, RecordedQuery};
use creditgate_engine::PURPOSE_HEADER;
use creditgate_tests::{reference_session, request_records, sorted_rows, start_lab};
use creditgate_tooling::demo::{DEMO_POLICY, Lab};
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// A Flight client speaking the prepared-statement calls one by one.
struct Raw {
    client: FlightServiceClient<Channel>,
    purpose: String,
}

fn request<T>(message: T, purpose: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(PURPOSE_HEADER, purpose.parse().expect("purpose header"));
    request
}

impl Raw {
    fn new(lab: &Lab, caller: &str, purpose: &str) -> Raw {
        let mut sql = lab.flight_client(caller).expect("client");
        Raw { client: sql.inner_mut().inner().clone(), purpose: purpose.to_string() }
    }

    async fn prepare(&mut self, sql: &str) -> Result<(Bytes, Schema, Schema), Status> {
        let body = ActionCreatePreparedStatementRequest { query: sql.to_string(), transaction_id: None };
        let action = Action { r#type: "CreatePreparedStatement".into(), body: body.as_any().encode_to_vec().into() };
        let mut results = self.client.do_action(request(action, &self.purpose)).await?.into_inner();
        let result = results.message().await?.ok_or_else(|| Status::internal("no result"))?;
        let any = Any::decode(&*result.body).expect("any");
        let created: ActionCreatePreparedStatementResult = any.unpack().expect("unpack").expect("result");
        let schema = |bytes: Bytes| {
            if bytes.is_empty() { Schema::empty() } else { Schema::try_from(IpcMessage(bytes)).expect("schema") }
        };
        Ok((created.prepared_statement_handle, schema(created.dataset_schema), schema(created.parameter_schema)))
    }

    async fn put(&mut self, descriptor: FlightDescriptor, batch: Option<RecordBatch>) -> Result<Bytes, Status> {
        let data: Vec<_> = match batch {
            Some(batch) => FlightDataEncoderBuilder::new()
                .with_flight_descriptor(Some(descriptor))
                .with_schema(batch.schema())
                .build(futures::stream::iter([Ok(batch)]))
                .try_collect()
                .await
                .expect("encode"),
            None => vec![arrow_flight::FlightData { flight_descriptor: Some(descriptor), ..Default::default() }],
        };
        let mut results = self.client.do_put(request(futures::stream::iter(data), &self.purpose)).await?.into_inner();
        let result = results.message().await?.ok_or_else(|| Status::internal("no put result"))?;
        Ok(result.app_metadata)
    }

    /// DoPut of the parameter rows; the handle of the bound statement.
    async fn bind(&mut self, handle: &Bytes, batch: RecordBatch) -> Result<Bytes, Status> {
        let command = CommandPreparedStatementQuery { prepared_statement_handle: handle.clone() };
        let metadata = self.put(FlightDescriptor::new_cmd(command.as_any().encode_to_vec()), Some(batch)).await?;
        let result = DoPutPreparedStatementResult::decode(&*metadata).expect("put result");
        Ok(result.prepared_statement_handle.expect("a bound handle"))
    }

    /// GetFlightInfo + DoGet: the FlightInfo schema, the stream schema and the batches.
    async fn run(&mut self, handle: &Bytes) -> Result<(Schema, Schema, Vec<RecordBatch>), Status> {
        let command = CommandPreparedStatementQuery { prepared_statement_handle: handle.clone() };
        let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
        let info = self.client.get_flight_info(request(descriptor, &self.purpose)).await?.into_inner();
        let info_schema = info.clone().try_decode_schema().expect("info schema");
        let ticket = info.endpoint[0].ticket.clone().expect("ticket");
        let stream = self.client.do_get(request(ticket, &self.purpose)).await?.into_inner();
        let mut decoded = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(
            stream.map_err(arrow_flight::error::FlightError::from),
        );
        let mut batches = Vec::new();
        while let Some(batch) = decoded.next().await {
            batches.push(batch.map_err(|e| match e {
                arrow_flight::error::FlightError::Tonic(status) => *status,
                other => Status::internal(other.to_string()),
            })?);
        }
        let stream_schema = decoded.schema().map(|s| s.as_ref().clone()).expect("stream schema");
        Ok((info_schema, stream_schema, batches))
    }

    /// DoPut update (what ADBC's executemany sends): the row count.
    async fn count(&mut self, handle: &Bytes) -> Result<i64, Status> {
        let command = CommandPreparedStatementUpdate { prepared_statement_handle: handle.clone() };
        let metadata = self.put(FlightDescriptor::new_cmd(command.as_any().encode_to_vec()), None).await?;
        Ok(DoPutUpdateResult::decode(&*metadata).expect("update result").record_count)
    }

    async fn close(&mut self, handle: &Bytes) -> Result<(), Status> {
        let body = ActionClosePreparedStatementRequest { prepared_statement_handle: handle.clone() };
        let action = Action { r#type: "ClosePreparedStatement".into(), body: body.as_any().encode_to_vec().into() };
        let mut results = self.client.do_action(request(action, &self.purpose)).await?.into_inner();
        while results.message().await?.is_some() {}
        Ok(())
    }
}

fn strings(values: &[Option<&str>]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("0", DataType::Utf8, true)]));
    RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(values.to_vec())) as ArrayRef]).expect("batch")
}

async fn text_rows(lab: &Lab, caller: &str, sql: &str) -> Vec<String> {
    let mut client = lab.flight_client(caller).expect("client");
    sorted_rows(&client.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")))
}

fn code_of(status: &Status) -> &str {
    status.message().split(':').next().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_are_values_bound_into_one_plan_and_every_execution_is_recorded() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let mut samr = Raw::new(&lab, "samr", "supervision");

    // Prepare: the parameter schema says what to bind; the dataset schema is the result's.
    let sql = "SELECT credit_code, name, status FROM market.enterprises WHERE credit_code = ?";
    let (handle, dataset_schema, parameter_schema) = samr.prepare(sql).await.expect("prepared");
    assert_eq!(parameter_schema.fields().len(), 1);
    assert_eq!(parameter_schema.field(0).data_type(), &DataType::Utf8);
    let names: Vec<&str> = dataset_schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["credit_code", "name", "status"]);

    // Unbound, it cannot run.
    let unbound = samr.run(&handle).await.expect_err("no parameters bound");
    assert_eq!(code_of(&unbound), "CG-REQ-006", "{unbound:?}");

    // One row: exactly the text query's rows; one schema in FlightInfo, prepare and stream.
    let bound = samr.bind(&handle, strings(&[Some(&code)])).await.expect("bound");
    let (info_schema, stream_schema, batches) = samr.run(&bound).await.expect("ran");
    let expected = text_rows(
        &lab,
        "samr",
        &format!("SELECT credit_code, name, status FROM market.enterprises WHERE credit_code = '{code}'"),
    )
    .await;
    assert_eq!(expected.len(), 1);
    assert_eq!(sorted_rows(&batches), expected);
    assert_eq!(info_schema, dataset_schema);
    assert_eq!(stream_schema, dataset_schema);
    assert!(batches.iter().all(|b| b.schema().as_ref() == &dataset_schema));

    // Many rows: the results of every row, one after the other; NULL matches nothing.
    let other: String =
        text_rows(&lab, "samr", "SELECT credit_code FROM market.enterprises ORDER BY credit_code LIMIT 1")
            .await
            .remove(0);
    let bound =
        samr.bind(&handle, strings(&[Some(&code), None, Some(&other), Some("no such code")])).await.expect("bound");
    let (_, _, batches) = samr.run(&bound).await.expect("ran");
    let expected = text_rows(
        &lab,
        "samr",
        &format!("SELECT credit_code, name, status FROM market.enterprises WHERE credit_code IN ('{code}', '{other}')"),
    )
    .await;
    assert_eq!(sorted_rows(&batches), expected);
    assert_eq!(expected.len(), if code == other { 1 } else { 2 });
    // executemany: every row executed, the rows counted, none returned.
    assert_eq!(samr.count(&bound).await.expect("counted"), expected.len() as i64);

    // Injection-shaped values stay values: nothing matches them.
    let all = text_rows(&lab, "samr", "SELECT credit_code, name, status FROM market.enterprises").await.len();
    assert!(all > 1);
    for hostile in ["' OR '1'='1", "x' OR 1=1 --", "'; DROP TABLE market.enterprises; --", "$1", "?"] {
        let bound = samr.bind(&handle, strings(&[Some(hostile)])).await.expect("bound");
        let (_, _, batches) = samr.run(&bound).await.expect("ran");
        assert!(sorted_rows(&batches).is_empty(), "{hostile} matched rows");
    }

    // A masked column compared with a parameter is compared with the masked
    // value, as the same literal would be: the masked value finds the row,
    // the raw value finds nothing.
    let masked =
        text_rows(&lab, "samr", &format!("SELECT phone FROM market.enterprises WHERE credit_code = '{code}'")).await;
    let masked_phone = masked[0].clone();
    let reference = reference_session(&lab).await;
    let raw = reference
        .sql(&format!("SELECT phone FROM market.enterprises WHERE credit_code = '{code}'"))
        .await
        .expect("plan")
        .collect()
        .await
        .expect("raw");
    let raw_phone = sorted_rows(&raw).remove(0);
    assert_ne!(raw_phone, masked_phone, "samr sees the phone masked");
    let (by_phone, _, _) =
        samr.prepare("SELECT credit_code FROM market.enterprises WHERE phone = $1").await.expect("prepared");
    for value in [&masked_phone, &raw_phone] {
        let literal =
            text_rows(&lab, "samr", &format!("SELECT credit_code FROM market.enterprises WHERE phone = '{value}'"))
                .await;
        let bound = samr.bind(&by_phone, strings(&[Some(value)])).await.expect("bound");
        let (_, _, batches) = samr.run(&bound).await.expect("ran");
        assert_eq!(sorted_rows(&batches), literal, "parameter {value} vs the same literal");
    }
    let bound = samr.bind(&by_phone, strings(&[Some(&raw_phone)])).await.expect("bound");
    assert!(sorted_rows(&samr.run(&bound).await.expect("ran").2).is_empty(), "the raw phone matches nothing");

    // The audit: each execution its own record, the statement with its
    // placeholder, the values as digests, the subject hashed as a literal is.
    let records = request_records(&lab);
    let text_record = records
        .iter()
        .rev()
        .find(|r| matches!(&r.query, RecordedQuery::Sql(s) if s.contains("credit_code = :p1") && s.contains("status")))
        .expect("the text query's record");
    let prepared: Vec<_> = records
        .iter()
        .filter(
            |r| matches!(&r.query, RecordedQuery::Prepared { statement, .. } if statement.contains("credit_code = $1")),
        )
        .collect();
    // Runs: unbound (refused), one row, four rows, the count, five hostile values.
    assert_eq!(prepared.len(), 9, "{prepared:#?}");
    assert_eq!(prepared[0].outcome, Outcome::Refused);
    let RecordedQuery::Prepared { parameters, .. } = &prepared[1].query else { unreachable!() };
    assert_eq!(parameters.len(), 1);
    assert!(parameters[0][0].as_ref().is_some_and(|d| d.len() >= 16 && !d.contains(&code)));
    assert_eq!(prepared[1].outcome, Outcome::Allowed);
    assert_eq!(prepared[1].subject_hashes, text_record.subject_hashes, "the code is hashed as its literal is");
    let RecordedQuery::Prepared { parameters, .. } = &prepared[2].query else { unreachable!() };
    assert_eq!(parameters.len(), 4);
    assert_eq!(parameters[0][0], prepared_digest(prepared[1]), "same value, same digest");
    assert_eq!(parameters[1][0], None, "NULL is recorded as null");
    for record in &records {
        let line = serde_json::to_string(record).expect("json");
        assert!(!line.contains(&raw_phone) && !line.contains(&masked_phone), "a value reached the log: {line}");
    }
    for record in &prepared {
        let line = serde_json::to_string(record).expect("json");
        assert!(!line.contains(&code), "the code reached the log: {line}");
    }

    // Closing forgets the statement.
    samr.close(&handle).await.expect("closed");
    let closed = samr.run(&handle).await.expect_err("closed");
    assert_eq!(code_of(&closed), "CG-PREP-002", "{closed:?}");
    lab.stop().await.expect("stop");
}

fn prepared_digest(record: &creditgate_audit::AuditRecord) -> Option<String> {
    match &record.query {
        RecordedQuery::Prepared { parameters, .. } => parameters[0][0].clone(),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_serves_only_its_certificate_and_purpose_and_not_past_a_policy_reload() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let mut samr = Raw::new(&lab, "samr", "supervision");
    let (handle, _, _) = samr
        .prepare("SELECT credit_code, name FROM market.enterprises WHERE credit_code = $1")
        .await
        .expect("prepared");
    let bound = samr.bind(&handle, strings(&[Some(&code)])).await.expect("bound");
    assert_eq!(sorted_rows(&samr.run(&bound).await.expect("ran").2).len(), 1);

    // Another certificate, or the same one for another purpose: refused, whichever handle.
    let mut agency = Raw::new(&lab, "credit_agency", "credit_report");
    let mut other_purpose = Raw::new(&lab, "samr", "joint_punishment");
    for (client, who) in [(&mut agency, "another certificate"), (&mut other_purpose, "another purpose")] {
        for h in [&handle, &bound] {
            let refused = client.run(h).await.expect_err(who);
            assert_eq!(code_of(&refused), "CG-PREP-003", "{who}: {refused:?}");
            assert_eq!(refused.code(), tonic::Code::PermissionDenied);
            let refused = client.bind(h, strings(&[Some(&code)])).await.expect_err(who);
            assert_eq!(code_of(&refused), "CG-PREP-003", "{who}: {refused:?}");
        }
    }
    // The owner still can.
    assert_eq!(sorted_rows(&samr.run(&bound).await.expect("ran").2).len(), 1);

    // A policy reload (here one that changes nothing the statement reads)
    // makes every earlier handle refused with its own code; a new one works.
    std::fs::write(lab.dir.join("policy.toml"), format!("{DEMO_POLICY}\n# reloaded\n")).expect("write");
    lab.gateway_handle.reload_policy().expect("reload");
    for h in [&handle, &bound] {
        let stale = samr.run(h).await.expect_err("stale");
        assert_eq!(code_of(&stale), "CG-PREP-001", "{stale:?}");
        assert_eq!(stale.code(), tonic::Code::FailedPrecondition);
        assert!(stale.message().contains("prepare it again"), "{stale:?}");
    }
    let stale = samr.bind(&handle, strings(&[Some(&code)])).await.expect_err("stale");
    assert_eq!(code_of(&stale), "CG-PREP-001", "{stale:?}");
    let (fresh, _, _) = samr
        .prepare("SELECT credit_code, name FROM market.enterprises WHERE credit_code = $1")
        .await
        .expect("prepared");
    let bound = samr.bind(&fresh, strings(&[Some(&code)])).await.expect("bound");
    assert_eq!(sorted_rows(&samr.run(&bound).await.expect("ran").2).len(), 1);

    // The refusals are in the audit log with their codes.
    let refusals: Vec<String> = request_records(&lab)
        .into_iter()
        .filter(|r| r.outcome == Outcome::Refused)
        .filter_map(|r| r.refusal_reason)
        .collect();
    assert!(refusals.iter().any(|r| r.starts_with("CG-PREP-001")), "{refusals:?}");
    assert!(refusals.iter().any(|r| r.starts_with("CG-PREP-003")), "{refusals:?}");
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_params_bind_like_flight_and_constants_keep_one_schema() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let query = |body: serde_json::Value| {
        let lab = &lab;
        async move {
            let reply = lab.http("samr", "POST", "/v1/query", &[], Some(body.to_string())).await.expect("http");
            (reply.status, serde_json::from_slice::<serde_json::Value>(&reply.body).expect("json"))
        }
    };
    let (status, with_param) = query(serde_json::json!({
        "sql": "SELECT credit_code, name FROM market.enterprises WHERE credit_code = $1", "params": [code]
    }))
    .await;
    assert_eq!(status, 200, "{with_param}");
    let (_, literal) = query(serde_json::json!({
        "sql": format!("SELECT credit_code, name FROM market.enterprises WHERE credit_code = '{code}'")
    }))
    .await;
    assert_eq!(with_param["rows"], literal["rows"]);
    assert_eq!(with_param["rows"].as_array().map(Vec::len), Some(1));
    // The second request with the same text reuses the plan.
    let (_, again) = query(serde_json::json!({
        "sql": "SELECT credit_code, name FROM market.enterprises WHERE credit_code = $1", "params": ["' OR '1'='1"]
    }))
    .await;
    assert_eq!(again["rows"].as_array().map(Vec::len), Some(0), "{again}");
    let metrics = lab.http("samr", "GET", "/metrics", &[], None).await.expect("metrics");
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(text.contains("creditgate_plan_cache_total{cache=\"prepared\",result=\"hit\"} 1"), "{text}");
    assert!(text.contains("creditgate_plan_cache_total{cache=\"prepared\",result=\"miss\"} 1"), "{text}");

    // Wrong count or type: a typed refusal that does not echo the value.
    let (status, wrong) = query(serde_json::json!({
        "sql": "SELECT name FROM market.enterprises WHERE registered_capital > $1", "params": ["lots-of-money"]
    }))
    .await;
    assert_eq!(status, 400, "{wrong}");
    assert_eq!(wrong["error"]["code"], "CG-REQ-006", "{wrong}");
    assert!(!wrong.to_string().contains("lots-of-money"), "{wrong}");
    let (status, missing) = query(serde_json::json!({
        "sql": "SELECT name FROM market.enterprises WHERE credit_code = ? AND status = ?", "params": [code]
    }))
    .await;
    assert_eq!((status, &missing["error"]["code"]), (400, &serde_json::json!("CG-REQ-006")), "{missing}");

    // One schema per statement: constants and functions announce what they stream.
    let mut samr = Raw::new(&lab, "samr", "supervision");
    for sql in [
        "SELECT upper('abc')",
        "SELECT current_date",
        "SELECT now() AS t",
        "SELECT 1 AS one, 'x' AS x, NULL AS nothing, 1.5 AS f, true AS b",
        "SELECT concat('a', 'b'), length('abc'), abs(-1), coalesce(NULL, 2)",
        "SELECT CAST('2024-01-02' AS DATE) AS d, to_timestamp('2024-01-02T00:00:00') AS ts",
        "SELECT upper(name), COUNT(*) FROM market.enterprises GROUP BY upper(name) LIMIT 3",
        "SELECT credit_code, 'constant' AS c FROM market.enterprises LIMIT 2",
    ] {
        let (handle, dataset_schema, _) = samr.prepare(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        let (info_schema, stream_schema, batches) = samr.run(&handle).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        assert_eq!(info_schema, dataset_schema, "{sql}");
        assert_eq!(stream_schema, dataset_schema, "{sql}");
        assert!(batches.iter().all(|b| b.schema().as_ref() == &dataset_schema), "{sql}");
        // The statement as text: the same schema in FlightInfo and in the stream.
        let mut client = lab.flight_client("samr").expect("client");
        let info = client.inner_mut().execute(sql.to_string(), None).await.expect("info");
        let info_schema = info.clone().try_decode_schema().expect("schema");
        let ticket = info.endpoint[0].ticket.clone().expect("ticket");
        let mut stream = client.inner_mut().do_get(ticket).await.expect("do_get");
        while let Some(batch) = stream.next().await {
            let batch = batch.expect("batch");
            assert_eq!(batch.schema().as_ref(), &info_schema, "{sql}");
        }
        assert_eq!(stream.schema().map(|s| s.as_ref().clone()), Some(info_schema.clone()), "{sql}");
        assert_eq!(info_schema, dataset_schema, "{sql}: text and prepared announce the same schema");
        let _ = batches.first().map(|b| b.column(0).len());
    }
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_plans_are_reused_with_the_key_bound_and_a_reload_applies_at_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let other: String =
        text_rows(&lab, "samr", "SELECT credit_code FROM market.enterprises ORDER BY credit_code LIMIT 1")
            .await
            .remove(0);
    assert_ne!(code, other);
    let lookup = |id: String| {
        let lab = &lab;
        async move {
            let body = serde_json::json!({"subject": {"type": "credit_code", "id": id}});
            let reply = lab.http("samr", "POST", "/v1/lookup", &[], Some(body.to_string())).await.expect("http");
            assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
            let doc: serde_json::Value = serde_json::from_slice(&reply.body).expect("json");
            doc["datasets"].clone()
        }
    };
    let counter = |text: &str, result: &str| -> u64 {
        let name = format!("creditgate_plan_cache_total{{cache=\"lookup\",result=\"{result}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(name.as_str())).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    let metrics = || async {
        let reply = lab.http("samr", "GET", "/metrics", &[], None).await.expect("metrics");
        String::from_utf8_lossy(&reply.body).to_string()
    };

    let first = lookup(code.clone()).await;
    let after_first = metrics().await;
    let misses = counter(&after_first, "miss");
    assert!(misses >= 5, "one plan per dataset read: {after_first}");
    assert_eq!(counter(&after_first, "hit"), 0);
    // The same lookup again: every plan reused, the same cells.
    let second = lookup(code.clone()).await;
    assert_eq!(first, second);
    let after_second = metrics().await;
    assert_eq!(counter(&after_second, "hit"), misses, "{after_second}");
    assert_eq!(counter(&after_second, "miss"), misses);
    // Another subject through the same plans: its own rows, not the first subject's.
    let third = lookup(other.clone()).await;
    let enterprises = third["market.enterprises"]["rows"].as_array().expect("rows").clone();
    assert_eq!(enterprises.len(), 1, "{third}");
    assert_eq!(enterprises[0]["credit_code"], serde_json::json!(other));
    assert_ne!(third, first);

    // A reload that masks the legal representative's ID for agencies: the
    // next lookup, through the plans cached before, shows it masked at once.
    let raw = first["market.enterprises"]["rows"][0]["legal_rep_id"].as_str().expect("id").to_string();
    assert!(raw.len() == 18 && !raw.contains('*'), "{raw}");
    let masking_policy = DEMO_POLICY.replace(
        "masks = { legal_rep_name = \"none\", legal_rep_id = \"none\", address = \"none\", phone = \"mobile_prefix\" }",
        "masks = { legal_rep_name = \"none\", legal_rep_id = \"resident_id\", address = \"none\", phone = \"mobile_prefix\" }",
    );
    assert_ne!(masking_policy, DEMO_POLICY, "the rule to change is in the demo policy");
    std::fs::write(lab.dir.join("policy.toml"), masking_policy).expect("write");
    lab.gateway_handle.reload_policy().expect("reload");
    let after = lookup(code.clone()).await;
    let id = after["market.enterprises"]["rows"][0]["legal_rep_id"].as_str().expect("id").to_string();
    assert!(id.contains('*') && id.starts_with(&raw[..6]) && id.ends_with(&raw[14..]), "{id}");
    assert_eq!(after["market.enterprises"]["masks"]["legal_rep_id"], "resident_id");
    lab.stop().await.expect("stop");
}
