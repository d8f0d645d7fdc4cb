//! Errors that name the source they came from.

use std::time::Duration;

use creditgate_ident::SourceName;

/// What went wrong with a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceErrorKind {
    /// No connection could be made (refused, TLS failure, DNS).
    Unavailable(String),
    /// The source did not answer within a deadline.
    Timeout {
        /// `first batch` or `total`.
        phase: &'static str,
        /// The deadline that passed.
        after: Duration,
    },
    /// The source refused the gateway (its certificate or identity).
    Refused(String),
    /// The source rejected or failed the query.
    Failed(String),
    /// The source answered with data that does not match its advertised schema.
    SchemaMismatch(String),
}

/// A failure of one source, carrying its name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("source `{source_name}` {kind}")]
pub struct SourceError {
    /// The source (connector) name.
    pub source_name: SourceName,
    /// What happened.
    pub kind: SourceErrorKind,
}

impl std::fmt::Display for SourceErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceErrorKind::Unavailable(m) => write!(f, "is unavailable: {m}"),
            SourceErrorKind::Timeout { phase, after } => {
                write!(f, "timed out waiting for the {phase} after {} ms", after.as_millis())
            }
            SourceErrorKind::Refused(m) => write!(f, "refused the gateway: {m}"),
            SourceErrorKind::Failed(m) => write!(f, "failed the query: {m}"),
            SourceErrorKind::SchemaMismatch(m) => write!(f, "answered with an unexpected schema: {m}"),
        }
    }
}

impl SourceError {
    /// A short status label: `timeout`, `unavailable`, `refused`, `error`.
    pub fn status_label(&self) -> &'static str {
        match self.kind {
            SourceErrorKind::Timeout { .. } => "timeout",
            SourceErrorKind::Unavailable(_) => "unavailable",
            SourceErrorKind::Refused(_) => "refused",
            SourceErrorKind::Failed(_) | SourceErrorKind::SchemaMismatch(_) => "error",
        }
    }

    /// Finds a `SourceError` inside a DataFusion error chain.
    pub fn find(error: &datafusion::error::DataFusionError) -> Option<&SourceError> {
        use datafusion::error::DataFusionError as E;
        let mut current = error;
        loop {
            match current {
                E::External(inner) => return inner.downcast_ref::<SourceError>(),
                E::Context(_, inner) => current = inner,
                E::Shared(inner) => current = inner,
                E::ArrowError(inner, _) => {
                    if let arrow::error::ArrowError::ExternalError(e) = inner.as_ref() {
                        return e.downcast_ref::<SourceError>();
                    }
                    return None;
                }
                _ => return None,
            }
        }
    }

    pub(crate) fn from_status(source_name: &SourceName, status: &tonic::Status) -> SourceError {
        use tonic::Code;
        // The connector's own text is kept only where it is the failure's
        // detail for the operator (`Failed`); the kinds whose text is shown
        // to callers get a fixed one.
        let message = status.message().to_string();
        let kind = match status.code() {
            Code::Unavailable => {
                tracing::warn!(source = %source_name, detail = %message, "source answered UNAVAILABLE");
                SourceErrorKind::Unavailable("the connector reported it cannot serve now".to_string())
            }
            Code::Unauthenticated | Code::PermissionDenied => {
                tracing::warn!(source = %source_name, detail = %message, "source refused the gateway");
                SourceErrorKind::Refused("the connector did not accept the gateway's certificate".to_string())
            }
            Code::DeadlineExceeded => SourceErrorKind::Failed(format!("deadline exceeded: {message}")),
            _ => SourceErrorKind::Failed(message),
        };
        SourceError { source_name: source_name.clone(), kind }
    }

    pub(crate) fn into_datafusion(self) -> datafusion::error::DataFusionError {
        datafusion::error::DataFusionError::External(Box::new(self))
    }
}
