//! The error boundary: how a [`GatewayError`] leaves the gateway, on gRPC
//! and on HTTP. The code, status and retryability come from the one table in
//! [`GatewayError::code`]; the message from [`GatewayError::client_message`]
//! (refusals say why; failures carry a fixed text or a reference id). Each
//! error is logged here, at the level its class deserves.

use http::{HeaderValue, StatusCode, header};
use tonic::Status;

use creditgate_engine::GatewayError;

use crate::http::{Body, json_response};

/// The gRPC status of `error` (Flight SQL): `<code>: <message>`, with the
/// code also in `x-creditgate-error-code` and the wait in `retry-after`.
pub fn status(error: GatewayError) -> Status {
    error.log();
    let code = error.code();
    let mut status = Status::new(code.grpc, format!("{}: {}", code.code, error.client_message()));
    if let Ok(value) = code.code.parse() {
        status.metadata_mut().insert("x-creditgate-error-code", value);
    }
    if let GatewayError::RateLimited { retry_after_secs, .. } = &error
        && let Ok(value) = retry_after_secs.to_string().parse()
    {
        status.metadata_mut().insert("retry-after", value);
    }
    status
}

/// The HTTP response of `error`: `{"error": {"code", "message", "retryable"}}`
/// with the table's status, and `Retry-After` when it applies.
pub fn error_response(error: &GatewayError) -> http::Response<Body> {
    error.log();
    let code = error.code();
    let status = StatusCode::from_u16(code.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(
        status,
        serde_json::json!({"error": {"code": code.code, "message": error.client_message(), "retryable": code.retryable}}),
    );
    if let GatewayError::RateLimited { retry_after_secs, .. } = error
        && let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The error type the Flight front end speaks: a [`GatewayError`] whose
/// conversion to [`Status`] is [`status`].
#[derive(Debug)]
pub struct FlightError(pub GatewayError);

impl From<GatewayError> for FlightError {
    fn from(error: GatewayError) -> FlightError {
        FlightError(error)
    }
}

impl From<FlightError> for Status {
    fn from(error: FlightError) -> Status {
        status(error.0)
    }
}
