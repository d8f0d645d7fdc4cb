//! Output schema normalisation for standard Flight SQL clients.
//!
//! DataFusion produces `Utf8View`/`BinaryView` and may produce dictionaries;
//! released JDBC drivers fail on view types and the Flight encoder hydrates
//! dictionaries, so a schema that advertises them would not match the stream.
//! Every result leaves with one normalised schema, used both in `FlightInfo`
//! and in the stream.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;

fn normalize_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::Dictionary(_, value) => normalize_type(value),
        DataType::List(field) => DataType::List(Arc::new(normalize_field(field))),
        DataType::LargeList(field) => DataType::LargeList(Arc::new(normalize_field(field))),
        DataType::ListView(field) => DataType::List(Arc::new(normalize_field(field))),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(|f| Arc::new(normalize_field(f))).collect()),
        other => other.clone(),
    }
}

fn normalize_field(field: &Field) -> Field {
    field.clone().with_data_type(normalize_type(field.data_type()))
}

/// The schema clients see for a result with schema `schema`.
pub fn normalize_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema.fields().iter().map(|f| normalize_field(f)).collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Casts `batch` to the normalised `target` schema (a no-op when it already matches).
pub fn normalize_batch(batch: RecordBatch, target: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.schema().fields() == target.fields() {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(target.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(Arc::clone(column))
            } else {
                cast(column, field.data_type())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::clone(target), columns)
}

/// `batch` as a batch of the `declared` schema: each column cast to the
/// declared type when it differs and labelled with the declared field
/// (name, nullability, metadata). A column with nulls under a field
/// declared non-nullable is an error, never a silently different schema.
pub fn conform_batch(batch: RecordBatch, declared: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.schema_ref() == declared {
        return Ok(batch);
    }
    if batch.num_columns() != declared.fields().len() {
        return Err(ArrowError::SchemaError(format!(
            "the result has {} columns where its plan declared {}",
            batch.num_columns(),
            declared.fields().len()
        )));
    }
    let columns = batch
        .columns()
        .iter()
        .zip(declared.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(Arc::clone(column))
            } else {
                cast(column, field.data_type())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(Arc::clone(declared), columns, &options)
}

/// `stream` with the `declared` schema (the one its plan announced, the
/// same that `FlightInfo` and a prepared statement's dataset schema carry):
/// its `schema()` is `declared` and every batch goes through
/// [`conform_batch`]. Physical planning may decide facts the logical plan
/// did not know (a constant expression is never null); the schema a client
/// was told stays the schema it reads.
pub fn conform_stream(
    stream: datafusion::execution::SendableRecordBatchStream,
    declared: SchemaRef,
) -> datafusion::execution::SendableRecordBatchStream {
    use futures::StreamExt;
    let target = Arc::clone(&declared);
    let batches = stream.map(move |item| {
        item.and_then(|batch| {
            conform_batch(batch, &target).map_err(|e| datafusion::error::DataFusionError::ArrowError(Box::new(e), None))
        })
    });
    Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(declared, batches))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{DictionaryArray, StringViewArray};
    use arrow::datatypes::Int32Type;

    #[test]
    fn views_and_dictionaries_become_plain() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Utf8View, true),
            Field::new("b", DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)), true),
        ]);
        let target = normalize_schema(&schema);
        assert_eq!(target.field(0).data_type(), &DataType::Utf8);
        assert_eq!(target.field(1).data_type(), &DataType::Utf8);

        let a = StringViewArray::from(vec![Some("张*"), None]);
        let b: DictionaryArray<Int32Type> = vec!["x", "y"].into_iter().collect();
        let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(a), Arc::new(b)]).expect("batch");
        let out = normalize_batch(batch, &target).expect("normalize");
        assert_eq!(out.schema(), target);
        assert_eq!(out.num_rows(), 2);
    }

    #[test]
    fn a_batch_takes_the_declared_fields_and_types() {
        use arrow::array::Int32Array;
        let physical = Arc::new(Schema::new(vec![
            Field::new("upper(Utf8(\"abc\"))", DataType::Utf8View, false),
            Field::new("n", DataType::Int32, false),
        ]));
        let declared = Arc::new(Schema::new(vec![
            Field::new("upper(Utf8(\"abc\"))", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let a = StringViewArray::from(vec!["ABC"]);
        let batch = RecordBatch::try_new(physical, vec![Arc::new(a), Arc::new(Int32Array::from(vec![7]))]).expect("b");
        let out = conform_batch(batch, &declared).expect("conform");
        assert_eq!(out.schema(), declared);
        // Declared non-nullable but holding a null: refused, not relabelled.
        let strict = Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, false)]));
        let nullable = Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, true)]));
        let with_null =
            RecordBatch::try_new(nullable, vec![Arc::new(arrow::array::StringArray::from(vec![None::<&str>]))])
                .expect("b");
        assert!(conform_batch(with_null, &strict).is_err());
    }
}
