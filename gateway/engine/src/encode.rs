//! Streaming encoders for HTTP results: JSON, CSV and Arrow IPC stream.
//!
//! Each batch is encoded as it arrives; nothing holds the whole result.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::StreamWriter;
use bytes::Bytes;

use crate::error::GatewayError;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `{"columns": [...], "rows": [{...}], "row_count": n}`.
    Json,
    /// CSV with a header row.
    Csv,
    /// Arrow IPC stream.
    Arrow,
}

/// Encodes one result, batch by batch.
pub struct Encoder {
    kind: Kind,
    schema: SchemaRef,
    rows: u64,
    failed: bool,
    arrow: Option<StreamWriter<Vec<u8>>>,
}

fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn csv_field(name: &str) -> String {
    if name.contains([',', '"', '\n', '\r']) { format!("\"{}\"", name.replace('"', "\"\"")) } else { name.to_string() }
}

/// A text cell of a CSV export meant for people (audit records, the public
/// window): quoted when needed, and a leading `=`, `+`, `-`, `@`, tab or
/// carriage return defused with `'` so a spreadsheet never runs it as a
/// formula. Numbers should not go through it (`-5` would gain the quote).
pub fn csv_text(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_owned() };
    csv_field(&text)
}

impl Encoder {
    /// An encoder for results of `schema`.
    pub fn new(kind: Kind, schema: SchemaRef) -> Result<Self, GatewayError> {
        let arrow = match kind {
            Kind::Arrow => Some(
                StreamWriter::try_new(Vec::new(), &schema)
                    .map_err(|e| GatewayError::internal(format!("arrow writer: {e}")))?,
            ),
            _ => None,
        };
        Ok(Self { kind, schema, rows: 0, failed: false, arrow })
    }

    fn take_arrow(&mut self) -> Bytes {
        match self.arrow.as_mut() {
            Some(w) => Bytes::from(std::mem::take(w.get_mut())),
            None => Bytes::new(),
        }
    }

    /// Bytes before the first row.
    pub fn head(&mut self) -> Bytes {
        match self.kind {
            Kind::Json => {
                let columns: Vec<serde_json::Value> = self
                    .schema
                    .fields()
                    .iter()
                    .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string()}))
                    .collect();
                Bytes::from(format!("{{\"columns\":{},\"rows\":[", serde_json::Value::Array(columns)))
            }
            Kind::Csv => {
                let names: Vec<String> = self.schema.fields().iter().map(|f| csv_field(f.name())).collect();
                Bytes::from(format!("{}\n", names.join(",")))
            }
            Kind::Arrow => self.take_arrow(),
        }
    }

    /// Bytes for one batch.
    pub fn batch(&mut self, batch: &RecordBatch) -> Result<Bytes, std::io::Error> {
        // After a failure the document is closed: later rows are not sent.
        if batch.num_rows() == 0 || self.failed {
            return Ok(Bytes::new());
        }
        let out = match self.kind {
            Kind::Json => {
                let mut writer = arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::JsonArray>(Vec::new());
                writer.write(batch).map_err(io_error)?;
                writer.finish().map_err(io_error)?;
                let text = writer.into_inner();
                // `[{..},{..}]` → `{..},{..}` joined to what came before.
                let inner = &text[1..text.len().saturating_sub(1)];
                let mut out = Vec::with_capacity(inner.len() + 1);
                if self.rows > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(inner);
                Bytes::from(out)
            }
            Kind::Csv => {
                let mut writer = arrow::csv::WriterBuilder::new().with_header(false).build(Vec::new());
                writer.write(batch).map_err(io_error)?;
                Bytes::from(writer.into_inner())
            }
            Kind::Arrow => {
                if let Some(w) = self.arrow.as_mut() {
                    w.write(batch).map_err(io_error)?;
                }
                self.take_arrow()
            }
        };
        self.rows += batch.num_rows() as u64;
        Ok(out)
    }

    /// Bytes that report a failure after rows were already sent. JSON closes
    /// the document with an `error` member; CSV and Arrow cannot carry one, so
    /// the body is aborted (the client sees a truncated transfer, never a
    /// silently short result).
    pub fn failure(&mut self, error: &GatewayError) -> Result<Bytes, std::io::Error> {
        // A stream may fail more than once (several sources of one query
        // timing out): the document is closed by the first failure only.
        if std::mem::replace(&mut self.failed, true) {
            return Ok(Bytes::new());
        }
        match self.kind {
            Kind::Json => {
                let code = error.code();
                let body = serde_json::json!({"code": code.code, "message": error.client_message(), "retryable": code.retryable});
                Ok(Bytes::from(format!("],\"incomplete\":true,\"error\":{body}}}")))
            }
            Kind::Csv | Kind::Arrow => Err(io_error(error.client_message())),
        }
    }

    /// Bytes after the last row.
    pub fn finish(&mut self) -> Bytes {
        if self.failed {
            return Bytes::new();
        }
        match self.kind {
            Kind::Json => Bytes::from(format!("],\"row_count\":{}}}", self.rows)),
            Kind::Csv => Bytes::new(),
            Kind::Arrow => {
                if let Some(w) = self.arrow.as_mut() {
                    let _ = w.finish();
                }
                self.take_arrow()
            }
        }
    }
}

/// Rows of `batches` as JSON objects (small results: lookups, disclosure).
pub fn batches_to_json(batches: &[RecordBatch]) -> Result<Vec<serde_json::Value>, GatewayError> {
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::JsonArray>(Vec::new());
    for batch in batches {
        let target = creditgate_flight::normalize_schema(&batch.schema());
        let batch = creditgate_flight::normalize_batch(batch.clone(), &target)
            .map_err(|e| GatewayError::internal(format!("normalising a result: {e}")))?;
        writer.write(&batch).map_err(|e| GatewayError::internal(format!("encoding a result: {e}")))?;
    }
    writer.finish().map_err(|e| GatewayError::internal(format!("encoding a result: {e}")))?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&bytes).map_err(|e| GatewayError::internal(format!("encoding a result: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(StringArray::from(vec![Some("张*"), None])), Arc::new(Int64Array::from(vec![1, 2]))],
        )
        .expect("batch")
    }

    #[test]
    fn json_document_is_valid_across_batches() {
        let b = batch();
        let mut e = Encoder::new(Kind::Json, b.schema()).expect("encoder");
        let mut out = Vec::new();
        out.extend_from_slice(&e.head());
        out.extend_from_slice(&e.batch(&b).expect("batch"));
        out.extend_from_slice(&e.batch(&b).expect("batch"));
        out.extend_from_slice(&e.finish());
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid json");
        assert_eq!(v["row_count"], 4);
        assert_eq!(v["rows"][0]["name"], "张*");
        assert!(v["rows"][1]["name"].is_null());
        assert_eq!(v["columns"][1]["name"], "n");
    }

    #[test]
    fn json_failure_is_reported_in_the_document() {
        let b = batch();
        let mut e = Encoder::new(Kind::Json, b.schema()).expect("encoder");
        let mut out = Vec::new();
        out.extend_from_slice(&e.head());
        out.extend_from_slice(&e.batch(&b).expect("batch"));
        out.extend_from_slice(&e.failure(&GatewayError::ResourcesExhausted).expect("json"));
        // A second failure and rows after the first (other sources of the
        // same query) leave the closed document as it is.
        out.extend_from_slice(&e.failure(&GatewayError::AuditUnavailable).expect("json"));
        out.extend_from_slice(&e.batch(&b).expect("batch"));
        out.extend_from_slice(&e.finish());
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid json");
        assert_eq!(v["incomplete"], true);
        assert_eq!(v["rows"].as_array().map(Vec::len), Some(b.num_rows()));
        assert_eq!(v["error"]["code"], "CG-RES-001");
    }

    #[test]
    fn csv_text_is_quoted_and_formulas_defused() {
        assert_eq!(csv_text("plain"), "plain");
        assert_eq!(csv_text("a,b"), "\"a,b\"");
        assert_eq!(csv_text("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_text("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_text("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_text("line\nbreak"), "\"line\nbreak\"");
    }

    #[test]
    fn csv_and_arrow() {
        let b = batch();
        let mut e = Encoder::new(Kind::Csv, b.schema()).expect("encoder");
        let text = [e.head(), e.batch(&b).expect("batch"), e.finish()].concat();
        assert_eq!(String::from_utf8(text).expect("utf8"), "name,n\n张*,1\n,2\n");

        let mut e = Encoder::new(Kind::Arrow, b.schema()).expect("encoder");
        let bytes = [e.head(), e.batch(&b).expect("batch"), e.finish()].concat();
        let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).expect("reader");
        let rows: usize = reader.map(|r| r.expect("batch").num_rows()).sum();
        assert_eq!(rows, 2);
    }
}
