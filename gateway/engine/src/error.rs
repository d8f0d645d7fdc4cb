//! Gateway errors and their stable codes: the one table that gives each
//! error its code, HTTP status, gRPC code and retryability.
//!
//! Two kinds of error reach callers. **Refusals** (authentication, policy,
//! consent, limits, bad input) carry a message the caller can act on.
//! **Failures** (a source, the audit log, the gateway itself) carry a fixed
//! message: a source failure names the source and what kind of failure it
//! was, never the source's own text; an internal failure carries only a
//! reference id, and its details go to the log under that id.

use creditgate_remote::{SourceError, SourceErrorKind};

/// `Retry-After` of a request refused while the shared state is unreachable.
pub const STATE_RETRY_AFTER_SECS: u64 = 2;

/// Everything that can refuse or fail a gateway request.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Configuration is invalid (start-up only).
    #[error("gateway config: {0}")]
    Config(String),
    /// TLS set-up failed.
    #[error(transparent)]
    Tls(#[from] creditgate_certs::CertError),
    /// A listener could not start.
    #[error("gateway server: {0}")]
    Server(String),
    /// No verified client certificate.
    #[error("a client certificate is required")]
    Unauthenticated,
    /// The connection's certificate stopped being accepted after it was
    /// made (revoked, its CRL expired under enforcement): the request, or
    /// the rest of a stream, is refused as a new connection would be.
    #[error("{0}; a new connection with this certificate is refused too")]
    CertificateNoLongerAccepted(creditgate_certs::revocation::CloseReason),
    /// The certificate is valid but its identity is not a caller of this gateway.
    #[error("certificate identity `{0}` is not a known caller of this gateway")]
    UnknownCaller(String),
    /// The policy refuses the request (purpose, licence, role); the message says why.
    #[error("refused by policy: {0}")]
    PolicyRefused(String),
    /// The query uses a masked personal or sensitive column to relate
    /// records (join key, `GROUP BY`, comparison with another column, …).
    #[error("refused by policy: {0}")]
    MaskedRelation(creditgate_policy::relate::RelationRefused),
    /// A consent artefact was refused; the message names the failed check.
    #[error("consent refused ({code}): {message}")]
    ConsentRefused {
        /// Stable refusal code, e.g. `consent.expired`.
        code: &'static str,
        /// What failed, for the caller.
        message: String,
    },
    /// Over a rate limit or daily quota.
    #[error("over the {what}; retry after {retry_after_secs} s")]
    RateLimited {
        /// Which limit.
        what: String,
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
    },
    /// The request is malformed (bad body, missing field).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The SQL is not a single read-only query or does not plan.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// A source failed. The client sees the source's name and a fixed
    /// message for the kind of failure ([`source_message`]); the source's
    /// own text is only logged.
    #[error("{}", source_message(.0))]
    Source(SourceError),
    /// The query exceeded the gateway's memory limit.
    #[error("the query needs more memory than the gateway allows; select fewer rows or columns")]
    ResourcesExhausted,
    /// Anything else. Made only by [`GatewayError::internal`], which logs
    /// the details under the reference; the client sees the reference only.
    #[error("internal error (reference {reference}); the operator can find the details under this reference")]
    Internal {
        /// The reference id the details are logged under.
        reference: String,
    },
    /// Unknown HTTP route.
    #[error("no such endpoint: {0}")]
    NotFound(String),
    /// HTTP method not allowed on the route.
    #[error("method not allowed: {0}")]
    MethodNotAllowed(String),
    /// The shared state (PostgreSQL) cannot be reached, so what a request
    /// depends on (consents, quotas, the audit log) cannot be checked or
    /// recorded; the request is refused and may be retried.
    #[error(
        "the gateway's shared state store (PostgreSQL) is unreachable, so {what} cannot be checked or recorded; \
         nothing was released; retry in a few seconds"
    )]
    StateUnavailable {
        /// What could not be checked: `consents`, `the daily quota`, `the audit log`.
        what: &'static str,
    },
    /// The audit log cannot be written; requests fail closed.
    #[error("the audit log is unavailable, so no data can be released; try again later")]
    AuditUnavailable,
    /// A prepared-statement handle that cannot be used (made under an
    /// earlier policy, closed or forgotten, or issued to another caller).
    #[error("{0}")]
    Prepared(PreparedRefusal),
    /// The parameters bound to a statement do not fit it (count, type).
    #[error("invalid parameters: {0}")]
    InvalidParameters(String),
    /// Unsupported `Accept`: what was asked for, and what this route can produce.
    #[error("cannot produce {asked}; use {offered}")]
    NotAcceptable {
        /// The `Accept` header as received (shortened).
        asked: String,
        /// The media types the route produces, in words.
        offered: &'static str,
    },
}

/// Why a prepared-statement handle was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreparedRefusal {
    /// The policy was reloaded after the statement was prepared: what it
    /// was planned under may no longer hold.
    PolicyReloaded,
    /// The gateway does not know the handle (closed, forgotten to make room
    /// for newer ones, or made before a restart).
    Unknown,
    /// The handle was issued to another certificate or for another purpose,
    /// or was altered.
    OtherCaller,
}

impl std::fmt::Display for PreparedRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PreparedRefusal::PolicyReloaded => {
                "the prepared statement was made under a policy that has since been reloaded; prepare it again"
            }
            PreparedRefusal::Unknown => {
                "the prepared statement is not known to the gateway (closed, expired or made before a restart); \
                 prepare it again"
            }
            PreparedRefusal::OtherCaller => {
                "the prepared statement or ticket was issued to another certificate or for another purpose, \
                 or was altered"
            }
        })
    }
}

/// A client-visible classification of a [`GatewayError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode {
    /// Stable code, e.g. `CG-AUTH-001`.
    pub code: &'static str,
    /// HTTP status.
    pub http: u16,
    /// gRPC status code.
    pub grpc: tonic::Code,
    /// Whether retrying may succeed.
    pub retryable: bool,
}

impl GatewayError {
    /// The stable code of this error. Exhaustive on purpose: a new variant must choose.
    pub fn code(&self) -> ErrorCode {
        use tonic::Code;
        let (code, http, grpc, retryable) = match self {
            GatewayError::Unauthenticated => ("CG-AUTH-001", 401, Code::Unauthenticated, false),
            GatewayError::CertificateNoLongerAccepted(_) => ("CG-AUTH-003", 401, Code::Unauthenticated, false),
            GatewayError::UnknownCaller(_) => ("CG-AUTH-002", 403, Code::PermissionDenied, false),
            GatewayError::PolicyRefused(_) => ("CG-POL-001", 403, Code::PermissionDenied, false),
            GatewayError::MaskedRelation(_) => ("CG-POL-002", 403, Code::PermissionDenied, false),
            GatewayError::ConsentRefused { .. } => ("CG-CON-001", 403, Code::PermissionDenied, false),
            GatewayError::RateLimited { .. } => ("CG-RATE-001", 429, Code::ResourceExhausted, true),
            GatewayError::BadRequest(_) => ("CG-REQ-001", 400, Code::InvalidArgument, false),
            GatewayError::InvalidQuery(_) => ("CG-REQ-002", 400, Code::InvalidArgument, false),
            GatewayError::NotFound(_) => ("CG-REQ-003", 404, Code::NotFound, false),
            GatewayError::MethodNotAllowed(_) => ("CG-REQ-004", 405, Code::Unimplemented, false),
            GatewayError::NotAcceptable { .. } => ("CG-REQ-005", 406, Code::InvalidArgument, false),
            GatewayError::InvalidParameters(_) => ("CG-REQ-006", 400, Code::InvalidArgument, false),
            GatewayError::Prepared(PreparedRefusal::PolicyReloaded) => {
                ("CG-PREP-001", 409, Code::FailedPrecondition, false)
            }
            GatewayError::Prepared(PreparedRefusal::Unknown) => ("CG-PREP-002", 404, Code::NotFound, false),
            GatewayError::Prepared(PreparedRefusal::OtherCaller) => ("CG-PREP-003", 403, Code::PermissionDenied, false),
            GatewayError::ResourcesExhausted => ("CG-RES-001", 507, Code::ResourceExhausted, false),
            GatewayError::Source(e) => match e.kind {
                SourceErrorKind::Timeout { .. } => ("CG-SRC-001", 504, Code::DeadlineExceeded, true),
                SourceErrorKind::Unavailable(_) => ("CG-SRC-002", 502, Code::Unavailable, true),
                SourceErrorKind::Refused(_) => ("CG-SRC-003", 502, Code::Unavailable, false),
                SourceErrorKind::Failed(_) | SourceErrorKind::SchemaMismatch(_) => {
                    ("CG-SRC-004", 502, Code::Unavailable, false)
                }
            },
            GatewayError::Internal { .. } => ("CG-INT-001", 500, Code::Internal, true),
            GatewayError::AuditUnavailable => ("CG-AUD-001", 503, Code::Unavailable, true),
            GatewayError::StateUnavailable { .. } => ("CG-STATE-001", 503, Code::Unavailable, true),
            GatewayError::Config(_) | GatewayError::Tls(_) | GatewayError::Server(_) => {
                ("CG-INT-002", 500, Code::Internal, false)
            }
        };
        ErrorCode { code, http, grpc, retryable }
    }

    /// Seconds a client should wait before retrying, when the error says
    /// (`Retry-After`): the rest of a rate limit or quota period, or a
    /// short pause while the shared state is unreachable.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            GatewayError::RateLimited { retry_after_secs, .. } => Some(*retry_after_secs),
            GatewayError::StateUnavailable { .. } => Some(STATE_RETRY_AFTER_SECS),
            _ => None,
        }
    }

    /// The message a client sees (capped; internal details never included).
    pub fn client_message(&self) -> String {
        match self {
            // Start-up errors carry paths and reasons for the operator.
            GatewayError::Config(_) | GatewayError::Tls(_) | GatewayError::Server(_) => {
                "the gateway is not set up correctly; the operator has the details in the gateway's log".to_string()
            }
            _ => creditgate_flight::cap_message(&self.to_string()),
        }
    }

    /// Logs the error at the level its class deserves.
    pub fn log(&self) {
        let code = self.code();
        match self {
            GatewayError::Unauthenticated
            | GatewayError::CertificateNoLongerAccepted(_)
            | GatewayError::UnknownCaller(_)
            | GatewayError::PolicyRefused(_)
            | GatewayError::MaskedRelation(_)
            | GatewayError::ConsentRefused { .. }
            | GatewayError::RateLimited { .. }
            | GatewayError::Prepared(PreparedRefusal::OtherCaller) => {
                tracing::info!(error.code = code.code, reason = %self, "request refused");
            }
            GatewayError::BadRequest(_)
            | GatewayError::InvalidQuery(_)
            | GatewayError::NotFound(_)
            | GatewayError::MethodNotAllowed(_)
            | GatewayError::NotAcceptable { .. }
            | GatewayError::InvalidParameters(_)
            | GatewayError::Prepared(PreparedRefusal::PolicyReloaded | PreparedRefusal::Unknown) => {
                tracing::debug!(error.code = code.code, reason = %self, "bad request");
            }
            GatewayError::Source(source) => {
                // The source's own text, for the operator only.
                tracing::warn!(error.code = code.code, source = %source.source_name, detail = %source, "source failed");
            }
            GatewayError::ResourcesExhausted => {
                tracing::warn!(error.code = code.code, error = %self, "request failed");
            }
            GatewayError::Internal { .. }
            | GatewayError::AuditUnavailable
            | GatewayError::StateUnavailable { .. }
            | GatewayError::Config(_)
            | GatewayError::Tls(_)
            | GatewayError::Server(_) => {
                tracing::error!(error.code = code.code, error = %self, "request failed");
            }
        }
    }

    /// An internal failure: `detail` is logged under a fresh reference id,
    /// which is all the caller gets.
    pub fn internal(detail: impl std::fmt::Display) -> GatewayError {
        let reference = crate::request_id();
        tracing::error!(reference = %reference, detail = %detail, "internal failure");
        GatewayError::Internal { reference }
    }

    /// Classifies a DataFusion error raised for a caller's query.
    pub fn from_datafusion(error: datafusion::error::DataFusionError, planning: bool) -> GatewayError {
        use datafusion::error::DataFusionError as E;
        if let Some(source) = SourceError::find(&error) {
            return GatewayError::Source(source.clone());
        }
        if let Some(message) = runtime_value_error(&error) {
            return GatewayError::InvalidQuery(message.to_string());
        }
        match error.find_root() {
            E::ResourcesExhausted(_) => GatewayError::ResourcesExhausted,
            E::SQL(..) | E::Plan(..) | E::SchemaError(..) | E::NotImplemented(..) => {
                GatewayError::InvalidQuery(error.strip_backtrace())
            }
            _ if planning => GatewayError::InvalidQuery(error.strip_backtrace()),
            _ => GatewayError::internal(format!("query execution failed: {error}")),
        }
    }
}

/// Errors raised while evaluating an expression on a row carry that row's
/// values in their text (e.g. "Cannot cast string '…'"); callers get a fixed
/// message instead, never the value.
fn runtime_value_error(error: &datafusion::error::DataFusionError) -> Option<&'static str> {
    use arrow::error::ArrowError as A;
    use datafusion::error::DataFusionError as E;
    let mut current = error;
    loop {
        match current {
            E::ArrowError(inner, _) => {
                return match inner.as_ref() {
                    A::CastError(_) | A::ParseError(_) => {
                        Some("a value could not be converted to the requested type; use TRY_CAST or check the CAST")
                    }
                    A::DivideByZero => Some("division by zero"),
                    A::ArithmeticOverflow(_) => Some("arithmetic overflow"),
                    A::InvalidArgumentError(_) | A::ComputeError(_) => Some("a function received an invalid value"),
                    _ => None,
                };
            }
            E::Context(_, inner) => current = inner,
            E::Shared(inner) => current = inner,
            E::Execution(message) if message.contains("Cast") || message.contains("cast") => {
                return Some("a value could not be converted to the requested type; use TRY_CAST or check the CAST");
            }
            _ => return None,
        }
    }
}

/// The fixed message a caller gets for a source failure: the source's name
/// and the kind of failure, never what the source said (its text can name
/// columns the caller is not granted, or echo values).
pub fn source_message(error: &SourceError) -> String {
    match &error.kind {
        // Made by the gateway itself (deadlines, connection attempts, the
        // circuit breaker, the schema check): shown as they are.
        SourceErrorKind::Unavailable(_)
        | SourceErrorKind::Timeout { .. }
        | SourceErrorKind::Refused(_)
        | SourceErrorKind::SchemaMismatch(_) => error.to_string(),
        // The connector's own answer: never shown.
        SourceErrorKind::Failed(_) => format!("source `{}` could not answer this query", error.source_name),
    }
}

impl From<SourceError> for GatewayError {
    fn from(error: SourceError) -> GatewayError {
        GatewayError::Source(error)
    }
}
