//! Column specifications, the row sink the table generators append to, and
//! the Parquet writer (temp file, then rename).

use std::fmt::{self, Write as _};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::DatagenError;

/// Rows per record batch (and per Parquet row group at most).
pub(crate) const BATCH_ROWS: usize = 64 * 1024;

/// Rows per Parquet data page at most. With each row group sorted by its
/// subject key, the page index narrows a point lookup to one page per column.
pub(crate) const PAGE_ROWS: usize = 1024;

/// Columns holding subject keys (credit codes, resident IDs): written with bloom filters.
pub(crate) const SUBJECT_KEY_COLUMNS: &[&str] = &[
    "credit_code",
    "owner_credit_code",
    "merchant_credit_code",
    "producer_credit_code",
    "company_credit_code",
    "resident_id",
    "owner_resident_id",
    "merchant_resident_id",
    "legal_rep_id",
    "staff_resident_id",
];

/// The Arrow type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Plain `Utf8`.
    Text,
    /// `Date32`.
    Date,
    /// `Timestamp(Microsecond, None)`.
    Timestamp,
    /// `Float64`.
    Float,
    /// `Boolean`.
    Bool,
    /// `Int32`.
    Int,
}

/// One column of a table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Col {
    /// Column name.
    pub name: &'static str,
    /// Arrow type.
    pub kind: Kind,
    /// Whether nulls are allowed.
    pub nullable: bool,
}

/// A required column.
pub(crate) const fn req(name: &'static str, kind: Kind) -> Col {
    Col { name, kind, nullable: false }
}

/// A nullable column.
pub(crate) const fn opt(name: &'static str, kind: Kind) -> Col {
    Col { name, kind, nullable: true }
}

/// Builds the Arrow schema of a column list.
pub(crate) fn schema(cols: &[Col]) -> SchemaRef {
    let fields: Vec<Field> = cols
        .iter()
        .map(|c| {
            let dt = match c.kind {
                Kind::Text => DataType::Utf8,
                Kind::Date => DataType::Date32,
                Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
                Kind::Float => DataType::Float64,
                Kind::Bool => DataType::Boolean,
                Kind::Int => DataType::Int32,
            };
            Field::new(c.name, dt, c.nullable)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

enum Builder {
    Text(StringBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Int(Int32Builder),
}

impl Builder {
    fn new(kind: Kind) -> Builder {
        match kind {
            Kind::Text => Builder::Text(StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 16)),
            Kind::Date => Builder::Date(Date32Builder::with_capacity(BATCH_ROWS)),
            Kind::Timestamp => Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(BATCH_ROWS)),
            Kind::Float => Builder::Float(Float64Builder::with_capacity(BATCH_ROWS)),
            Kind::Bool => Builder::Bool(BooleanBuilder::with_capacity(BATCH_ROWS)),
            Kind::Int => Builder::Int(Int32Builder::with_capacity(BATCH_ROWS)),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
            Builder::Float(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Int(b) => Arc::new(b.finish()),
        }
    }
}

/// Collects rows column by column: each row appends one value to every
/// column, in column order, then calls [`RowSink::end_row`].
///
/// A value of the wrong type (a bug in a generator) is recorded and reported
/// as [`DatagenError::Internal`] when the batch is finished, rather than
/// panicking mid-write.
pub(crate) struct RowSink {
    table: &'static str,
    cols: &'static [Col],
    schema: SchemaRef,
    builders: Vec<Builder>,
    cursor: usize,
    rows: usize,
    fault: Option<String>,
}

impl RowSink {
    pub(crate) fn new(table: &'static str, cols: &'static [Col]) -> RowSink {
        RowSink {
            table,
            cols,
            schema: schema(cols),
            builders: cols.iter().map(|c| Builder::new(c.kind)).collect(),
            cursor: 0,
            rows: 0,
            fault: None,
        }
    }

    /// The table's Arrow schema.
    pub(crate) fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Rows appended since the last [`RowSink::finish_batch`].
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    fn mismatch(&mut self, what: &str) {
        if self.fault.is_none() {
            let col = self.cols.get(self.cursor).map_or("<past last column>", |c| c.name);
            self.fault = Some(format!("{}: {what} written to column {col}", self.table));
        }
    }

    fn next(&mut self) -> Option<&mut Builder> {
        let i = self.cursor;
        self.cursor += 1;
        self.builders.get_mut(i)
    }

    /// Appends a text value.
    pub(crate) fn text(&mut self, v: &str) {
        match self.next() {
            Some(Builder::Text(b)) => b.append_value(v),
            _ => self.back_mismatch("text"),
        }
    }

    /// Appends a text value formatted in place (no intermediate `String`).
    pub(crate) fn textf(&mut self, args: fmt::Arguments<'_>) {
        match self.next() {
            Some(Builder::Text(b)) => {
                // Writing to a StringBuilder cannot fail.
                let _ = b.write_fmt(args);
                b.append_value("");
            }
            _ => self.back_mismatch("text"),
        }
    }

    /// Appends an optional text value.
    pub(crate) fn text_opt(&mut self, v: Option<&str>) {
        match self.next() {
            Some(Builder::Text(b)) => b.append_option(v),
            _ => self.back_mismatch("text"),
        }
    }

    /// Appends a date (days since 1970-01-01).
    pub(crate) fn date(&mut self, days: i32) {
        self.date_opt(Some(days));
    }

    /// Appends an optional date.
    pub(crate) fn date_opt(&mut self, days: Option<i32>) {
        match self.next() {
            Some(Builder::Date(b)) => b.append_option(days),
            _ => self.back_mismatch("date"),
        }
    }

    /// Appends a timestamp (microseconds since the epoch, no time zone).
    pub(crate) fn timestamp(&mut self, micros: i64) {
        match self.next() {
            Some(Builder::Timestamp(b)) => b.append_value(micros),
            _ => self.back_mismatch("timestamp"),
        }
    }

    /// Appends a float.
    pub(crate) fn float(&mut self, v: f64) {
        match self.next() {
            Some(Builder::Float(b)) => b.append_value(v),
            _ => self.back_mismatch("float"),
        }
    }

    /// Appends a boolean.
    pub(crate) fn bool(&mut self, v: bool) {
        match self.next() {
            Some(Builder::Bool(b)) => b.append_value(v),
            _ => self.back_mismatch("boolean"),
        }
    }

    /// Appends a 32-bit integer.
    pub(crate) fn int(&mut self, v: i32) {
        match self.next() {
            Some(Builder::Int(b)) => b.append_value(v),
            _ => self.back_mismatch("integer"),
        }
    }

    fn back_mismatch(&mut self, what: &str) {
        self.cursor -= 1;
        self.mismatch(what);
        self.cursor += 1;
    }

    /// Closes a row; every column must have received exactly one value.
    pub(crate) fn end_row(&mut self) {
        if self.cursor != self.cols.len() && self.fault.is_none() {
            self.fault =
                Some(format!("{}: row has {} values for {} columns", self.table, self.cursor, self.cols.len()));
        }
        self.cursor = 0;
        self.rows += 1;
    }

    /// Turns the rows collected so far into a record batch.
    pub(crate) fn finish_batch(&mut self) -> Result<RecordBatch, DatagenError> {
        if let Some(fault) = self.fault.take() {
            return Err(DatagenError::Internal(fault));
        }
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        self.rows = 0;
        Ok(RecordBatch::try_new(self.schema(), arrays)?)
    }
}

/// Writes one table to `final_path` through a temporary file in the same
/// directory, renamed into place only once complete.
pub(crate) struct TableFile {
    tmp_path: PathBuf,
    final_path: PathBuf,
    writer: Option<ArrowWriter<File>>,
}

impl TableFile {
    pub(crate) fn create(final_path: &Path, schema: SchemaRef) -> Result<TableFile, DatagenError> {
        let dir = final_path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| DatagenError::io(dir, e))?;
        let mut name = final_path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".tmp-{}", std::process::id()));
        let tmp_path = dir.join(format!(".{}", name.to_string_lossy()));
        let file = File::create(&tmp_path).map_err(|e| DatagenError::io(&tmp_path, e))?;
        // Row groups of one batch, each sorted by its first subject key, with
        // bloom filters on the subject keys and small pages: a point lookup of
        // one company or person reads one row group (bloom filters) and in it
        // one page per column (page index), however large the table.
        let mut props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(BATCH_ROWS))
            .set_data_page_row_count_limit(PAGE_ROWS)
            .set_write_batch_size(PAGE_ROWS);
        for column in SUBJECT_KEY_COLUMNS {
            props = props.set_column_bloom_filter_enabled(parquet::schema::types::ColumnPath::from(*column), true);
        }
        let props = props.build();
        let writer = ArrowWriter::try_new(file, schema, Some(props))?;
        Ok(TableFile { tmp_path, final_path: final_path.to_path_buf(), writer: Some(writer) })
    }

    /// Writes one batch as (at most) one row group, sorted by its first subject key.
    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<(), DatagenError> {
        let sorted = sorted_by_subject_key(batch)?;
        match self.writer.as_mut() {
            Some(w) => Ok(w.write(&sorted)?),
            None => Err(DatagenError::Internal("write after close".into())),
        }
    }

    /// Flushes, closes and renames the file into place.
    pub(crate) fn commit(mut self) -> Result<(), DatagenError> {
        let writer = self.writer.take().ok_or_else(|| DatagenError::Internal("file closed twice".into()))?;
        let file = writer.into_inner()?;
        file.sync_all().map_err(|e| DatagenError::io(&self.tmp_path, e))?;
        drop(file);
        std::fs::rename(&self.tmp_path, &self.final_path).map_err(|e| DatagenError::io(&self.final_path, e))?;
        Ok(())
    }
}

/// `batch` sorted (deterministically) by the first of [`SUBJECT_KEY_COLUMNS`] it has, or unchanged.
fn sorted_by_subject_key(batch: &RecordBatch) -> Result<RecordBatch, DatagenError> {
    let schema = batch.schema();
    let Some(key) = SUBJECT_KEY_COLUMNS.iter().find_map(|name| schema.index_of(name).ok()) else {
        return Ok(batch.clone());
    };
    let order = arrow::compute::sort_to_indices(batch.column(key), None, None)?;
    Ok(arrow::compute::take_record_batch(batch, &order)?)
}

impl Drop for TableFile {
    fn drop(&mut self) {
        // Not committed: remove the partial file.
        if self.writer.is_some() {
            self.writer = None;
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}
