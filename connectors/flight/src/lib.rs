//! A Flight SQL front end over any query backend, shared by the creditgate
//! connector (one department's data) and the gateway (the federation).
//!
//! The front end owns the protocol: statement queries, prepared statements,
//! the metadata calls standard clients use (`GetCatalogs`, `GetDbSchemas`,
//! `GetTables`, `GetTableTypes`, `GetSqlInfo`), signed tickets bound to the
//! caller, schema normalisation for JDBC/ADBC, and streaming. The backend owns
//! everything about *who* may see *what*: it authenticates the caller from the
//! verified connection and plans and executes SQL for it.
//!
//! Refusals of the protocol layer itself (a ticket issued to somebody else, a
//! malformed handle) are produced here; everything else comes from the backend's
//! own error type through its `Into<tonic::Status>` conversion, so each backend
//! maps its errors to gRPC codes in exactly one place.

mod direct;
pub mod engine;
mod normalize;
mod observe;
mod service;
mod ticket;

pub use direct::{
    DirectPreparedQuery, MAX_PARAMETER_BYTES, ParameterError, UNKNOWN_HANDLE, decode_parameters, encode_parameters,
};
pub use normalize::{conform_batch, conform_stream, normalize_batch, normalize_schema};
pub use observe::{ObservedStream, StreamOutcome, StreamReport, batch_data_bytes};
pub use service::{
    DEFAULT_MAX_MESSAGE_BYTES, FlightSqlFront, FrontConfig, MAX_BOUND_ROWS, PreparedStatement, QueryBackend,
    RequestContext, ServeError, TableEntry, serve,
};
pub use ticket::{TicketError, TicketSigner};

/// Caps a message sent to a client at a readable length.
pub fn cap_message(message: &str) -> String {
    const MAX: usize = 512;
    if message.len() <= MAX {
        return message.to_string();
    }
    let mut end = MAX;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}
