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
}
