//! Connector errors and their single mapping to gRPC status codes.

use tonic::Status;

use crate::database::{SourceError, SourceErrorKind};

/// Everything that can go wrong in a connector.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The configuration file is invalid.
    #[error("connector config: {0}")]
    Config(String),
    /// A configured table could not be opened.
    #[error("table `{table}`: {message}")]
    Table {
        /// The table name.
        table: String,
        /// What went wrong.
        message: String,
    },
    /// TLS set-up failed (certificates, keys, trust).
    #[error(transparent)]
    Tls(#[from] creditgate_certs::CertError),
    /// Binding or serving failed.
    #[error("connector server: {0}")]
    Server(String),
    /// The request came without a verified client certificate.
    #[error("a client certificate is required")]
    Unauthenticated,
    /// The connection's certificate was accepted at its handshake but is no
    /// longer (revoked since, or its CRL expired under enforcement): the
    /// reason is what a client may read.
    #[error("{0}")]
    CertificateNoLongerAccepted(creditgate_certs::revocation::CloseReason),
    /// The caller's certificate is valid but its identity is not allowed here.
    #[error("identity `{0}` is not allowed to query this connector")]
    NotAllowed(String),
    /// The SQL is not a single read-only query, or does not plan.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// The parameters bound to a prepared statement do not fit it.
    #[error("bad parameters: {0}")]
    BadParameters(String),
    /// Execution failed.
    #[error("query failed: {0}")]
    Execution(String),
    /// A database behind a table is down, or the table could not be opened.
    #[error("source unavailable: {0}")]
    SourceUnavailable(String),
    /// A database behind a table did not answer within the table's timeout.
    #[error("source timed out: {0}")]
    SourceTimeout(String),
    /// The query exceeded the memory limit.
    #[error("query exceeded the connector's memory limit: {0}")]
    ResourcesExhausted(String),
}

impl From<ConnectorError> for Status {
    fn from(error: ConnectorError) -> Status {
        let message = creditgate_flight::cap_message(&error.to_string());
        match error {
            ConnectorError::Unauthenticated | ConnectorError::CertificateNoLongerAccepted(_) => {
                tracing::info!(reason = %message, "request refused");
                Status::unauthenticated(message)
            }
            ConnectorError::NotAllowed(_) => {
                tracing::info!(reason = %message, "request refused");
                Status::permission_denied(message)
            }
            ConnectorError::InvalidQuery(_) | ConnectorError::BadParameters(_) => Status::invalid_argument(message),
            ConnectorError::ResourcesExhausted(_) => Status::resource_exhausted(message),
            ConnectorError::SourceUnavailable(_) => {
                tracing::warn!(error = %message, "source unavailable");
                Status::unavailable(message)
            }
            ConnectorError::SourceTimeout(_) => {
                tracing::warn!(error = %message, "source timed out");
                Status::deadline_exceeded(message)
            }
            ConnectorError::Execution(_) => {
                tracing::warn!(error = %message, "query failed");
                Status::internal(message)
            }
            ConnectorError::Config(_)
            | ConnectorError::Table { .. }
            | ConnectorError::Tls(_)
            | ConnectorError::Server(_) => {
                tracing::error!(error = %message, "connector failure");
                Status::internal(message)
            }
        }
    }
}

/// Classifies a DataFusion error raised while planning or running a query.
pub(crate) fn from_datafusion(error: datafusion::error::DataFusionError, planning: bool) -> ConnectorError {
    use datafusion::error::DataFusionError as E;
    let root = error.find_root();
    if let E::External(inner) = root
        && let Some(source) = inner.downcast_ref::<SourceError>()
    {
        return match source.kind {
            SourceErrorKind::Unavailable => ConnectorError::SourceUnavailable(source.to_string()),
            SourceErrorKind::Timeout => ConnectorError::SourceTimeout(source.to_string()),
            SourceErrorKind::Failed => ConnectorError::Execution(source.to_string()),
        };
    }
    match root {
        E::ResourcesExhausted(message) => ConnectorError::ResourcesExhausted(message.clone()),
        E::SQL(..) | E::Plan(..) | E::SchemaError(..) | E::NotImplemented(..) if planning => {
            ConnectorError::InvalidQuery(error.strip_backtrace())
        }
        _ if planning => ConnectorError::InvalidQuery(error.strip_backtrace()),
        _ => ConnectorError::Execution(error.strip_backtrace()),
    }
}
