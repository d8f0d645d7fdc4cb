//! The Flight SQL adapter: the engine behind the shared Flight SQL front end
//! of `creditgate-flight`, and the one SQL path both front ends take.
//!
//! Per call: the caller comes from the verified certificate of the
//! connection, the purpose from the `x-creditgate-purpose` call header;
//! `GetFlightInfo` asks for a planning-only permit (its `DoGet` executes, is
//! counted and recorded), `DoGet` for a query permit, metadata calls for a
//! catalog permit (recorded like `GET /v1/catalog`), the lookup action goes
//! to the ops crate.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use creditgate_audit::RecordedQuery;
use creditgate_certs::revocation::CloseReason;
use creditgate_engine::error::PreparedRefusal;
use creditgate_engine::prepared::{Owner, PreparedKey, Statement};
use creditgate_engine::{
    Caller, Disclosure, Engine, Frontend, GatewayError, Intent, PURPOSE_HEADER, PreparedMode, PreparedOutput,
};
use creditgate_flight::{PreparedStatement, QueryBackend, RequestContext, TableEntry, TicketError};
use creditgate_policy::Operation;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use tracing::Instrument;

use crate::boundary::FlightError;

/// Reads `sql` into a query intent and runs it under a permit: planned
/// (`plan_only`: a planning-only permit, the output schema returned as an
/// empty stream's schema) or executed. The audit record keeps the statement
/// with its identifiers replaced by keyed hashes, or only its size when it
/// is over the limit.
pub async fn run_sql(
    engine: &Engine,
    caller: Caller,
    purpose: Option<String>,
    sql: &str,
    plan_only: bool,
) -> Result<SendableRecordBatchStream, GatewayError> {
    let (what, subjects) = recorded_sql(engine, sql);
    let mut intent = Intent::new(Operation::Query, purpose, RecordedQuery::Sql(what))
        .with_subjects(subjects)
        .naming(engine.referenced_datasets(sql));
    if plan_only {
        intent = intent.planning_only();
    }
    if sql.len() > creditgate_engine::sql_gate::MAX_SQL_BYTES {
        // Refused before anything else.
        let error = creditgate_engine::sql_gate::parse_query(sql)
            .err()
            .unwrap_or(GatewayError::InvalidQuery("the statement is too long".into()));
        return Err(engine.refuse(caller, intent, error).await);
    }
    let permit = engine.authorize(caller, intent).await?;
    if plan_only {
        let schema = engine.plan_only(permit, sql).await?;
        return Ok(Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
            schema,
            futures::stream::empty(),
        )));
    }
    engine.query(permit, sql).await
}

/// Prepares `sql` for `caller` with `purpose` (Flight SQL
/// `CreatePreparedStatement`): its `?` numbered, authorized like its
/// execution under a planning-only permit, planned once and kept. A
/// refusal is recorded with the statement as a text query's would be.
pub async fn prepare_sql(
    engine: &Engine,
    caller: Caller,
    purpose: Option<String>,
    sql: &str,
) -> Result<(PreparedKey, Arc<Statement>), GatewayError> {
    let owner = Owner::of(&caller, purpose.as_deref());
    let numbered = creditgate_engine::sql_gate::number_parameters(sql);
    let text = numbered.as_ref().map(|(text, _)| text.as_str()).unwrap_or(sql);
    let (what, subjects) = recorded_sql(engine, text);
    let intent = Intent::new(Operation::Query, purpose, RecordedQuery::Sql(what))
        .with_subjects(subjects)
        .naming(engine.referenced_datasets(text))
        .planning_only();
    let (text, written) = match numbered {
        Ok(numbered) if sql.len() <= creditgate_engine::sql_gate::MAX_SQL_BYTES => numbered,
        Ok(_) => {
            let error = creditgate_engine::sql_gate::parse_query(sql)
                .err()
                .unwrap_or(GatewayError::InvalidQuery("the statement is too long".into()));
            return Err(engine.refuse(caller, intent, error).await);
        }
        Err(error) => return Err(engine.refuse(caller, intent, error).await),
    };
    let permit = engine.authorize(caller, intent).await?;
    engine.prepare(permit, &text, written, owner).await
}

/// What the audit record keeps of `sql`, and the subjects it names.
fn recorded_sql(engine: &Engine, sql: &str) -> (String, Vec<String>) {
    if sql.len() > creditgate_engine::sql_gate::MAX_SQL_BYTES {
        return (format!("<{} bytes of SQL, over the limit>", sql.len()), Vec::new());
    }
    engine.auditor().redact_sql(sql)
}

/// The engine as a Flight SQL backend.
pub struct FlightBackend {
    engine: Arc<Engine>,
}

impl FlightBackend {
    /// The backend over `engine`.
    pub fn new(engine: Arc<Engine>) -> FlightBackend {
        FlightBackend { engine }
    }
}

impl FlightBackend {
    async fn run_prepared(
        &self,
        caller: &FlightCaller,
        key: &str,
        mode: PreparedMode,
    ) -> Result<PreparedOutput, FlightError> {
        let run = self.engine.run_prepared(caller.caller.clone(), caller.purpose.clone(), key, mode);
        Ok(run.instrument(caller.span.clone()).await?)
    }
}

/// What the Flight front end keeps per call: the caller, its purpose as
/// received, and its span.
pub struct FlightCaller {
    caller: Caller,
    purpose: Option<String>,
    span: tracing::Span,
}

#[tonic::async_trait]
impl QueryBackend for FlightBackend {
    type Caller = FlightCaller;
    type Error = FlightError;

    async fn authenticate(&self, ctx: &RequestContext) -> Result<FlightCaller, FlightError> {
        let purpose = ctx.metadata.get(PURPOSE_HEADER).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let caller = self.engine.authenticate(ctx.conn.as_ref(), Frontend::Flight).await?;
        let span = caller.span();
        Ok(FlightCaller { caller, purpose, span })
    }

    fn binding(&self, caller: &FlightCaller) -> Vec<u8> {
        // A ticket works only for the same certificate and the same purpose.
        format!("{}\n{}", caller.caller.fingerprint(), caller.purpose.as_deref().unwrap_or("")).into_bytes()
    }

    async fn plan(&self, caller: &FlightCaller, sql: &str) -> Result<SchemaRef, FlightError> {
        let run = run_sql(&self.engine, caller.caller.clone(), caller.purpose.clone(), sql, true);
        Ok(run.instrument(caller.span.clone()).await?.schema())
    }

    async fn execute(&self, caller: &FlightCaller, sql: &str) -> Result<SendableRecordBatchStream, FlightError> {
        let run = run_sql(&self.engine, caller.caller.clone(), caller.purpose.clone(), sql, false);
        Ok(run.instrument(caller.span.clone()).await?)
    }

    async fn prepare(&self, caller: &FlightCaller, sql: &str) -> Result<PreparedStatement, FlightError> {
        let run = prepare_sql(&self.engine, caller.caller.clone(), caller.purpose.clone(), sql);
        let (key, statement) = run.instrument(caller.span.clone()).await?;
        Ok(PreparedStatement {
            key: key.to_key(),
            dataset_schema: Arc::clone(statement.schema()),
            parameter_schema: statement.parameter_schema(),
        })
    }

    async fn bind(
        &self,
        caller: &FlightCaller,
        key: &str,
        batches: Vec<arrow::array::RecordBatch>,
    ) -> Option<Result<String, FlightError>> {
        let run = self.engine.bind_prepared(caller.caller.clone(), caller.purpose.clone(), key, &batches);
        Some(run.instrument(caller.span.clone()).await.map_err(FlightError))
    }

    async fn plan_prepared(&self, caller: &FlightCaller, key: &str) -> Result<SchemaRef, FlightError> {
        match self.run_prepared(caller, key, PreparedMode::Plan).await? {
            PreparedOutput::Schema(schema) => Ok(schema),
            _ => Err(FlightError(GatewayError::internal("planning a prepared statement returned no schema"))),
        }
    }

    async fn execute_prepared(
        &self,
        caller: &FlightCaller,
        key: &str,
    ) -> Result<SendableRecordBatchStream, FlightError> {
        match self.run_prepared(caller, key, PreparedMode::Stream).await? {
            PreparedOutput::Stream(stream) => Ok(stream),
            _ => Err(FlightError(GatewayError::internal("executing a prepared statement returned no stream"))),
        }
    }

    async fn execute_prepared_counting(&self, caller: &FlightCaller, key: &str) -> Option<Result<i64, FlightError>> {
        Some(match self.run_prepared(caller, key, PreparedMode::Count).await {
            Ok(PreparedOutput::Rows(rows)) => Ok(i64::try_from(rows).unwrap_or(i64::MAX)),
            Ok(_) => Err(FlightError(GatewayError::internal("counting a prepared statement returned no count"))),
            Err(error) => Err(error),
        })
    }

    async fn close_prepared(&self, caller: &FlightCaller, key: &str) {
        self.engine.close_prepared(&caller.caller, caller.purpose.as_deref(), key);
    }

    async fn ticket_refused(&self, caller: &FlightCaller, error: TicketError) -> tonic::Status {
        let error = match error {
            TicketError::Malformed => {
                GatewayError::BadRequest("the ticket or prepared statement handle is malformed".into())
            }
            TicketError::WrongCaller => GatewayError::Prepared(PreparedRefusal::OtherCaller),
        };
        // Recorded: a replayed or forged handle is an attempt an officer must see.
        let what = RecordedQuery::Request("Flight SQL ticket or prepared statement handle".to_string());
        let intent = Intent::new(Operation::Query, caller.purpose.clone(), what).planning_only();
        let refuse = self.engine.refuse(caller.caller.clone(), intent, error);
        crate::boundary::status(refuse.instrument(caller.span.clone()).await)
    }

    fn stream_error(&self, _caller: &FlightCaller, error: DataFusionError) -> FlightError {
        FlightError(GatewayError::from_datafusion(error, false))
    }

    fn connection_refused(&self, _caller: &FlightCaller, reason: CloseReason) -> FlightError {
        FlightError(GatewayError::CertificateNoLongerAccepted(reason))
    }

    async fn tables(&self, caller: &FlightCaller) -> Result<Vec<TableEntry>, FlightError> {
        let what = RecordedQuery::Request("Flight SQL metadata (catalogs, schemas, tables)".to_string());
        let intent = Intent::new(Operation::Catalog, caller.purpose.clone(), what);
        let run = async {
            let permit = self.engine.authorize(caller.caller.clone(), intent).await?;
            let tables = self.engine.tables_for(&permit).await;
            permit.allow(Disclosure::default()).await?;
            Ok::<_, GatewayError>(tables)
        };
        Ok(run.instrument(caller.span.clone()).await?)
    }

    fn custom_actions(&self) -> Vec<(String, String)> {
        vec![
            (
                creditgate_ops::lookup::LOOKUP_ACTION.to_string(),
                "Subject lookup: body is the JSON of POST /v1/lookup; the result is the JSON lookup document"
                    .to_string(),
            ),
            (
                creditgate_ops::grade::GRADE_ACTION.to_string(),
                "Credit grade: body is {\"credit_code\": \"…\", \"purpose\"?, \"consent\"?}; the result is the JSON \
                 of GET /v1/grades/{credit_code}"
                    .to_string(),
            ),
        ]
    }

    async fn custom_action(
        &self,
        caller: &FlightCaller,
        action_type: &str,
        body: &[u8],
    ) -> Option<Result<Vec<u8>, FlightError>> {
        if action_type == creditgate_ops::grade::GRADE_ACTION {
            return Some(self.grade_action(caller, body).await);
        }
        if action_type != creditgate_ops::lookup::LOOKUP_ACTION {
            return None;
        }
        let engine = &self.engine;
        let run = async {
            let request: creditgate_ops::lookup::LookupRequest = match serde_json::from_slice(body) {
                Ok(request) => request,
                Err(e) => {
                    let what = RecordedQuery::Request(format!("DoAction {action_type}"));
                    let intent = Intent::new(Operation::Unroutable, caller.purpose.clone(), what);
                    let error = GatewayError::BadRequest(format!("lookup body: {e}"));
                    return Err(engine.refuse(caller.caller.clone(), intent, error).await);
                }
            };
            let document =
                creditgate_ops::lookup::lookup(engine, caller.caller.clone(), caller.purpose.clone(), request).await?;
            serde_json::to_vec(&document).map_err(|e| GatewayError::internal(format!("encoding the lookup: {e}")))
        };
        Some(run.instrument(caller.span.clone()).await.map_err(FlightError))
    }
}

impl FlightBackend {
    /// The Flight action `creditgate.grade`: one grade, the JSON of `GET /v1/grades/{credit_code}`.
    async fn grade_action(&self, caller: &FlightCaller, body: &[u8]) -> Result<Vec<u8>, FlightError> {
        let engine = &self.engine;
        let run = async {
            let request: creditgate_ops::grade::GradeRequest = match serde_json::from_slice(body) {
                Ok(request) => request,
                Err(e) => {
                    let what = RecordedQuery::Request(format!("DoAction {}", creditgate_ops::grade::GRADE_ACTION));
                    let intent = Intent::new(Operation::Unroutable, caller.purpose.clone(), what);
                    let error = GatewayError::BadRequest(format!("grade body: {e}"));
                    return Err(engine.refuse(caller.caller.clone(), intent, error).await);
                }
            };
            let document =
                creditgate_ops::grade::grade(engine, caller.caller.clone(), caller.purpose.clone(), request).await?;
            serde_json::to_vec(&document).map_err(|e| GatewayError::internal(format!("encoding the grade: {e}")))
        };
        run.instrument(caller.span.clone()).await.map_err(FlightError)
    }
}
