//! Callers, intents and permits: the one way a request reaches data.
//!
//! - A [`Caller`] is who is calling: made only by the engine from a verified
//!   TLS connection ([`Engine::authenticate`](crate::Engine::authenticate))
//!   or for the public listener ([`Engine::public_caller`](crate::Engine::public_caller)).
//!   Its fields are private and never change.
//! - An [`Intent`] is what the request asks for, read from the request
//!   *before* any decision: the operation, the purpose exactly as received,
//!   what the audit record will say it asked for, the subjects and datasets
//!   it names.
//! - A [`Permit`] is the answer: made only by
//!   [`Engine::authorize`](crate::Engine::authorize), after purpose,
//!   licence, role, legal basis, rate limit and quota, in that order. Every
//!   operation that touches data, consents or the audit log takes one. It
//!   holds the request's audit scope, which is closed exactly once: as
//!   allowed ([`Permit::allow`]) or refused ([`Permit::refuse`]); a permit
//!   dropped without either is recorded as failed.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use creditgate_audit::{NewRecord, Outcome, RecordedQuery, SourceStatus};
use creditgate_certs::identity::Identity;
use creditgate_certs::tls::ConnInfo;
use creditgate_policy::{LegalBasis, Operation, Principal, Purpose};

use crate::audit::{Auditor, ColumnAccess};
use crate::error::GatewayError;
use crate::metrics::Metrics;

/// Which front end a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frontend {
    /// Arrow Flight SQL (mTLS).
    Flight,
    /// HTTP/JSON (mTLS).
    Http,
    /// The public disclosure listener (server TLS only).
    Public,
}

impl Frontend {
    /// Label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Frontend::Flight => "flight",
            Frontend::Http => "http",
            Frontend::Public => "public",
        }
    }

    pub(crate) fn audit(self) -> creditgate_audit::Frontend {
        match self {
            Frontend::Flight => creditgate_audit::Frontend::Flight,
            Frontend::Http => creditgate_audit::Frontend::Http,
            Frontend::Public => creditgate_audit::Frontend::Public,
        }
    }
}

/// An authenticated caller, for one request.
#[derive(Debug, Clone)]
pub struct Caller {
    principal: Arc<Principal>,
    identity: Option<Arc<Identity>>,
    conn: Option<ConnInfo>,
    request_id: String,
    frontend: Frontend,
    started: Instant,
    /// The client's address, on the public listener (its per-address rate
    /// limit); never recorded.
    client: Option<IpAddr>,
}

impl Caller {
    pub(crate) fn new(
        principal: Principal,
        identity: Option<Arc<Identity>>,
        conn: Option<ConnInfo>,
        frontend: Frontend,
    ) -> Caller {
        Caller {
            principal: Arc::new(principal),
            identity,
            conn,
            request_id: crate::request_id(),
            frontend,
            started: Instant::now(),
            client: None,
        }
    }

    /// The same caller, coming from `client` (the public listener).
    pub(crate) fn coming_from(mut self, client: IpAddr) -> Caller {
        self.client = Some(client);
        self
    }

    /// The same caller for item `n` (from 1) of a batch: request id `<id>.<n>`.
    pub(crate) fn numbered(&self, n: usize) -> Caller {
        let mut item = self.clone();
        item.request_id = format!("{}.{n}", self.request_id);
        item
    }

    /// The client's address, when the listener limits per address.
    pub(crate) fn client(&self) -> Option<IpAddr> {
        self.client
    }

    /// The policy principal.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The principal's name.
    pub fn name(&self) -> &str {
        &self.principal.name
    }

    /// The verified certificate identity (none on the public listener).
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_deref()
    }

    /// The connection the request came on (none on the public listener).
    pub fn conn(&self) -> Option<&ConnInfo> {
        self.conn.as_ref()
    }

    /// The certificate fingerprint (empty on the public listener).
    pub fn fingerprint(&self) -> &str {
        self.identity.as_ref().map(|i| i.fingerprint.as_str()).unwrap_or("")
    }

    /// The request id (also in logs and the audit record).
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The front end.
    pub fn frontend(&self) -> Frontend {
        self.frontend
    }

    /// Milliseconds since the request arrived.
    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    pub(crate) fn audit_caller(&self) -> creditgate_audit::Caller {
        creditgate_audit::Caller {
            fingerprint: self.fingerprint().to_string(),
            name: self.principal.name.clone(),
            organization: self.principal.organization.clone(),
            role: self.principal.role.as_str().to_string(),
        }
    }

    /// The one span of this request: caller, request id and front end;
    /// sources, rows, duration and outcome are recorded as it runs. No
    /// personal data: SQL text and subjects stay at `debug`.
    pub fn span(&self) -> tracing::Span {
        tracing::info_span!(
            "request",
            request.id = %self.request_id,
            client.name = %self.name(),
            client.organization = %self.principal.organization,
            frontend = self.frontend.label(),
            sources = tracing::field::Empty,
            rows = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    }
}

/// What a request asks for, read from it before any decision.
#[derive(Debug, Clone)]
pub struct Intent {
    pub(crate) operation: Operation,
    pub(crate) purpose: Option<String>,
    pub(crate) what: RecordedQuery,
    pub(crate) subjects: Vec<String>,
    pub(crate) datasets: Vec<String>,
    pub(crate) plan_only: bool,
}

impl Intent {
    /// `operation` for `purpose` (exactly as received: header, body field
    /// or call metadata; nothing trimmed); `what` is how the audit record
    /// describes the request (normalized SQL, the lookup without its raw
    /// identifier, the path).
    pub fn new(operation: Operation, purpose: Option<String>, what: RecordedQuery) -> Intent {
        Intent { operation, purpose, what, subjects: Vec::new(), datasets: Vec::new(), plan_only: false }
    }

    /// The request only plans (Flight `GetFlightInfo`, creating a prepared
    /// statement): authorized like its execution, but not counted against
    /// limits, and its permit cannot execute. The execution is counted.
    pub fn planning_only(mut self) -> Intent {
        self.plan_only = true;
        self
    }

    /// The subjects the request names, as keyed hashes (recorded whether it
    /// is allowed or refused, so the subject's report lists the attempt).
    pub fn with_subjects(mut self, hashes: Vec<String>) -> Intent {
        self.subjects = hashes;
        self
    }

    /// The datasets the request names, whether they exist or not (so a probe
    /// of an ungranted dataset is searchable).
    pub fn naming(mut self, datasets: Vec<String>) -> Intent {
        self.datasets = datasets;
        self
    }

    /// The operation.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The purpose as received.
    pub fn purpose(&self) -> Option<&str> {
        self.purpose.as_deref()
    }
}

/// What an allowed request disclosed, for its audit record.
#[derive(Debug, Default, Clone)]
pub struct Disclosure {
    /// Datasets read.
    pub datasets: Vec<String>,
    /// Columns read, each with the mask applied.
    pub columns: Vec<ColumnAccess>,
    /// Subjects (keyed hashes) beyond those of the intent.
    pub subjects: Vec<String>,
    /// Rows released, when known at release.
    pub rows: Option<u64>,
    /// Each source's status.
    pub sources: Vec<SourceStatus>,
    /// A more precise legal basis found while running (a verified consent's
    /// id), replacing the permit's.
    pub legal_basis: Option<String>,
    /// A fuller description of the request than the intent's (e.g. the
    /// consent id of a lookup), replacing it.
    pub what: Option<RecordedQuery>,
}

/// Permission for one request, made only by [`Engine::authorize`](crate::Engine::authorize).
#[derive(Debug)]
pub struct Permit {
    operation: Operation,
    plan_only: bool,
    purpose: Option<Purpose>,
    basis: LegalBasis,
    generation: u64,
    scope: Scope,
}

impl Permit {
    pub(crate) fn new(
        operation: Operation,
        plan_only: bool,
        purpose: Option<Purpose>,
        basis: LegalBasis,
        generation: u64,
        scope: Scope,
    ) -> Permit {
        Permit { operation, plan_only, purpose, basis, generation, scope }
    }

    /// Who is calling.
    pub fn caller(&self) -> &Caller {
        &self.scope.caller
    }

    /// The principal.
    pub fn principal(&self) -> &Principal {
        &self.scope.caller.principal
    }

    /// The operation permitted.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// Whether this permit only allows planning.
    pub fn plan_only(&self) -> bool {
        self.plan_only
    }

    /// The purpose, validated (none for operations that need none and got none).
    pub fn purpose(&self) -> Option<&Purpose> {
        self.purpose.as_ref()
    }

    /// The legal basis decided by the policy.
    pub fn legal_basis(&self) -> &LegalBasis {
        &self.basis
    }

    /// The policy generation the permit was made under.
    pub fn policy_generation(&self) -> u64 {
        self.generation
    }

    /// The subjects (keyed hashes) the intent named.
    pub fn subjects(&self) -> &[String] {
        &self.scope.intent_subjects
    }

    /// Closes the request as allowed: writes its audit record (durable
    /// before this returns; fails closed) and its metric. Returns the
    /// record's sequence number.
    pub async fn allow(mut self, disclosure: Disclosure) -> Result<u64, GatewayError> {
        self.scope.allow(disclosure).await
    }

    /// Closes the request as refused or failed with `error`: writes its
    /// audit record and metric, and returns the error for the caller (or
    /// [`GatewayError::AuditUnavailable`] if the record cannot be written).
    pub async fn refuse(mut self, error: GatewayError) -> GatewayError {
        self.scope.refuse(error).await
    }

    /// Closes a request that only planned (Flight `GetFlightInfo`, a
    /// prepared statement): its execution writes the record, so this writes
    /// none; the metric is counted.
    pub fn planned(mut self) {
        self.scope.close_unrecorded("planned");
    }
}

/// The audit scope of one request: opened at authorization, closed once.
#[derive(Debug)]
pub(crate) struct Scope {
    caller: Caller,
    auditor: Auditor,
    metrics: Arc<Metrics>,
    purpose: Option<String>,
    basis: Option<String>,
    what: RecordedQuery,
    intent_subjects: Vec<String>,
    intent_datasets: Vec<String>,
    closed: bool,
}

impl Scope {
    pub(crate) fn open(caller: Caller, auditor: Auditor, metrics: Arc<Metrics>, intent: &Intent) -> Scope {
        Scope {
            purpose: intent.purpose.as_deref().map(|p| auditor.redact_text(&crate::audit::recorded_purpose(p))),
            basis: None,
            what: intent.what.clone(),
            intent_subjects: intent.subjects.clone(),
            intent_datasets: intent.datasets.clone(),
            closed: false,
            caller,
            auditor,
            metrics,
        }
    }

    pub(crate) fn caller(&self) -> &Caller {
        &self.caller
    }

    pub(crate) fn set_basis(&mut self, basis: &LegalBasis) {
        self.basis = Some(basis.label());
    }

    fn record(&self, outcome: Outcome) -> NewRecord {
        let caller = &self.caller;
        NewRecord {
            request_id: caller.request_id.clone(),
            caller: caller.audit_caller(),
            frontend: caller.frontend.audit(),
            purpose: self.purpose.clone(),
            legal_basis: self.basis.clone(),
            query: self.what.clone(),
            datasets: self.intent_datasets.clone(),
            columns: Vec::new(),
            subject_hashes: self.intent_subjects.clone(),
            row_count: None,
            sources: Vec::new(),
            outcome,
            refusal_reason: None,
            duration_ms: caller.elapsed_ms(),
        }
    }

    fn finish_metrics(&self, code: &'static str, denial: bool) {
        let caller = &self.caller;
        let frontend = caller.frontend.label();
        self.metrics.request(frontend, code, caller.started.elapsed());
        if denial {
            self.metrics.denial(frontend, code);
        }
        let span = tracing::Span::current();
        span.record("duration_ms", caller.elapsed_ms());
        span.record("outcome", code);
    }

    pub(crate) async fn allow(&mut self, disclosure: Disclosure) -> Result<u64, GatewayError> {
        self.closed = true;
        let mut record = self.record(Outcome::Allowed);
        let Disclosure { datasets, columns, subjects, rows, sources, legal_basis, what } = disclosure;
        for dataset in datasets {
            if !record.datasets.contains(&dataset) {
                record.datasets.push(dataset);
            }
        }
        record.columns = columns;
        for subject in subjects {
            if !record.subject_hashes.contains(&subject) {
                record.subject_hashes.push(subject);
            }
        }
        record.row_count = rows;
        record.sources = sources;
        if legal_basis.is_some() {
            record.legal_basis = legal_basis;
        }
        if let Some(what) = what {
            record.query = what;
        }
        match self.auditor.append(record).await {
            Ok(seq) => {
                self.finish_metrics("ok", false);
                Ok(seq)
            }
            Err(error) => {
                self.finish_metrics(error.code().code, false);
                Err(error)
            }
        }
    }

    pub(crate) async fn refuse(&mut self, error: GatewayError) -> GatewayError {
        self.closed = true;
        let code = error.code();
        let mut record = self.record(if code.http < 500 { Outcome::Refused } else { Outcome::Failed });
        record.refusal_reason = Some(format!("{}: {}", code.code, error.client_message()));
        if let GatewayError::Source(e) = &error {
            record.sources =
                vec![SourceStatus { source: e.source_name.to_string(), status: e.status_label().to_string() }];
        }
        self.finish_metrics(code.code, matches!(code.http, 401 | 403 | 429));
        match self.auditor.append(record).await {
            Ok(_) => error,
            Err(audit) => audit,
        }
    }

    fn close_unrecorded(&mut self, label: &'static str) {
        self.closed = true;
        self.finish_metrics(label, false);
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // A request dropped without an outcome (its future cancelled by a
        // client that went away): recorded in the background, and counted.
        let mut record = self.record(Outcome::Cancelled);
        record.refusal_reason = Some("the request ended before an outcome (the caller went away)".to_string());
        self.finish_metrics("cancelled", false);
        self.auditor.append_detached(record);
    }
}
