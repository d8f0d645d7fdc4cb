//! Direct prepared tickets: a prepared statement's handle and one row of
//! parameter values packed into the `DoGet` ticket itself.
//!
//! Standard Flight SQL binds parameters with a `DoPut` and then runs the
//! bound statement with `GetFlightInfo` + `DoGet`: three round trips per
//! execution. The gateway executes the same few statements on its connectors
//! with a new subject key thousands of times a second, so it prepares each
//! statement once (`CreatePreparedStatement`, the standard action) and then
//! sends [`DirectPreparedQuery`] tickets: one round trip, no SQL text, the
//! connector's plan reused.
//!
//! A direct prepared ticket grants nothing more than the standard calls
//! would: the handle is the signed one the server issued to this caller, and
//! the parameters are Arrow values, never SQL. A handle that does not open
//! (the server restarted with a new key, or it was issued to someone else)
//! is answered with `NOT_FOUND`, so the client prepares again.

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow_flight::sql::{Any, ProstMessageExt};
use prost::Message;

/// A prepared statement's handle and one row of parameters, sent as a `DoGet` ticket.
#[derive(Clone, PartialEq, Message)]
pub struct DirectPreparedQuery {
    /// The handle `CreatePreparedStatement` returned.
    #[prost(bytes = "bytes", tag = "1")]
    pub prepared_statement_handle: bytes::Bytes,
    /// One row of parameter values, as an Arrow IPC stream (schema and one batch).
    #[prost(bytes = "bytes", tag = "2")]
    pub parameters: bytes::Bytes,
}

impl ProstMessageExt for DirectPreparedQuery {
    fn type_url() -> &'static str {
        "type.googleapis.com/creditgate.DirectPreparedQuery"
    }

    fn as_any(&self) -> Any {
        Any { type_url: Self::type_url().to_string(), value: self.encode_to_vec().into() }
    }
}

/// The status message of a direct prepared ticket whose handle does not open here.
pub const UNKNOWN_HANDLE: &str = "the prepared statement handle was not issued by this server to this caller (the server may have restarted); \
     prepare the statement again";

/// Most bytes of parameters one direct prepared ticket may carry.
pub const MAX_PARAMETER_BYTES: usize = 64 * 1024;

/// Why the parameters of a direct prepared ticket cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParameterError {
    /// More than [`MAX_PARAMETER_BYTES`].
    #[error("the parameters take more than {MAX_PARAMETER_BYTES} bytes")]
    TooLarge,
    /// Not one Arrow IPC stream.
    #[error("the parameters are not an Arrow IPC stream")]
    Unreadable,
    /// Not exactly one row.
    #[error("a direct prepared ticket carries exactly one row of parameters, not {0}")]
    Rows(usize),
}

/// Encodes one row of parameters for [`DirectPreparedQuery::parameters`].
pub fn encode_parameters(row: &RecordBatch) -> Result<bytes::Bytes, arrow::error::ArrowError> {
    let mut out = Vec::new();
    {
        let mut writer = StreamWriter::try_new(&mut out, &row.schema())?;
        writer.write(row)?;
        writer.finish()?;
    }
    Ok(out.into())
}

/// Decodes the one row of parameters of a direct prepared ticket.
pub fn decode_parameters(bytes: &[u8]) -> Result<RecordBatch, ParameterError> {
    if bytes.len() > MAX_PARAMETER_BYTES {
        return Err(ParameterError::TooLarge);
    }
    let reader = StreamReader::try_new(bytes, None).map_err(|_| ParameterError::Unreadable)?;
    let schema = reader.schema();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().map_err(|_| ParameterError::Unreadable)?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows != 1 {
        return Err(ParameterError::Rows(rows));
    }
    let batch = arrow::compute::concat_batches(&schema, &batches).map_err(|_| ParameterError::Unreadable)?;
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn row(values: &[Option<&str>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("$1", DataType::Utf8, true),
            Field::new("$2", DataType::Int64, true),
        ]));
        let n = values.len();
        RecordBatch::try_new(
            schema,
            vec![Arc::new(StringArray::from(values.to_vec())), Arc::new(Int64Array::from(vec![Some(7); n]))],
        )
        .expect("batch")
    }

    #[test]
    fn one_row_round_trips_and_anything_else_is_refused() {
        let one = row(&[Some("91310000MA1FL0XX0X' OR '1'='1")]);
        let decoded = decode_parameters(&encode_parameters(&one).expect("encode")).expect("decode");
        assert_eq!(decoded, one);
        let none = row(&[]);
        assert_eq!(decode_parameters(&encode_parameters(&none).expect("encode")), Err(ParameterError::Rows(0)));
        let two = row(&[Some("a"), None]);
        assert_eq!(decode_parameters(&encode_parameters(&two).expect("encode")), Err(ParameterError::Rows(2)));
        assert_eq!(decode_parameters(b"SELECT 1"), Err(ParameterError::Unreadable));
        assert_eq!(decode_parameters(&vec![0u8; MAX_PARAMETER_BYTES + 1]), Err(ParameterError::TooLarge));
    }

    #[test]
    fn the_ticket_is_recognised_by_its_type() {
        let query = DirectPreparedQuery {
            prepared_statement_handle: bytes::Bytes::from_static(b"handle"),
            parameters: bytes::Bytes::new(),
        };
        let any = query.as_any();
        assert!(any.is::<DirectPreparedQuery>());
        assert!(!any.is::<arrow_flight::sql::CommandStatementQuery>());
        assert_eq!(any.unpack::<DirectPreparedQuery>().expect("unpack"), Some(query));
    }
}
