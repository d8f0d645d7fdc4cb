//! What the connector keeps between queries of a Parquet table: its file
//! metadata (footers and page indexes, bounded by DataFusion's runtime
//! cache) and its prepared plans. Both must follow the file: a table
//! rewritten in place (or a file added to a table's directory) is read anew
//! at the next query, never through what was kept of the old one.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use creditgate_connector::{TableConfig, TableFormat};
use futures::StreamExt;

/// Writes `rows` (id, name) to `path` as Parquet, through a temporary file
/// renamed over it (how a department replaces an export).
fn write_parquet(path: &Path, rows: &[(i64, &str)]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
            Arc::new(StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
        ],
    )
    .unwrap();
    let tmp = path.with_extension("tmp");
    let file = std::fs::File::create(&tmp).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The rows of `sql`, each as `id|name`, sorted.
async fn rows(lab: &common::Lab, sql: &str) -> Vec<String> {
    let mut client = lab.client(&lab.gateway_1);
    let info = client.execute(sql.to_owned(), None).await.unwrap();
    let mut out = Vec::new();
    for endpoint in info.endpoint {
        let mut stream = client.do_get(endpoint.ticket.unwrap()).await.unwrap();
        while let Some(batch) = stream.next().await {
            let batch = batch.unwrap();
            let ids = arrow::compute::cast(batch.column(0), &DataType::Int64).unwrap();
            let names = arrow::compute::cast(batch.column(1), &DataType::Utf8).unwrap();
            let ids = ids.as_any().downcast_ref::<Int64Array>().unwrap();
            let names = names.as_any().downcast_ref::<StringArray>().unwrap();
            out.extend((0..batch.num_rows()).map(|i| format!("{}|{}", ids.value(i), names.value(i))));
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parquet_table_rewritten_in_place_is_read_anew() {
    let lab = common::lab_with(24 * 3600, |dir| {
        let table = dir.join("data");
        std::fs::create_dir_all(&table).unwrap();
        write_parquet(&table.join("part-0.parquet"), &[(1, "one"), (2, "two")]);
        vec![TableConfig {
            name: "items".into(),
            format: TableFormat::Parquet,
            path: table,
            source_table: None,
            columns: vec!["id".into(), "name".into()],
        }]
    })
    .await;
    let dir = lab._tmp.path().join("data");
    let point = "SELECT id, name FROM items WHERE id = 2";
    assert_eq!(rows(&lab, point).await, ["2|two"]);
    assert_eq!(rows(&lab, "SELECT id, name FROM items").await, ["1|one", "2|two"]);
    let kept = lab.connector.cached_file_metadata();
    assert!(kept >= 1, "the footer is kept after a query: {kept} entries");
    // The same query again reads through what was kept.
    assert_eq!(rows(&lab, point).await, ["2|two"]);

    // Rewritten in place: other rows, another size.
    write_parquet(&dir.join("part-0.parquet"), &[(2, "TWO, rewritten"), (3, "three"), (4, "four")]);
    assert_eq!(rows(&lab, point).await, ["2|TWO, rewritten"], "the new file is read, not the kept footer");
    assert_eq!(
        rows(&lab, "SELECT id, name FROM items").await,
        ["2|TWO, rewritten", "3|three", "4|four"],
        "every row of the new file, none of the old"
    );
    // A file added to the table's directory is part of the next query.
    write_parquet(&dir.join("part-1.parquet"), &[(5, "five")]);
    assert_eq!(rows(&lab, "SELECT id, name FROM items WHERE id > 3").await, ["4|four", "5|five"]);
    // A file removed is gone.
    std::fs::remove_file(dir.join("part-1.parquet")).unwrap();
    assert_eq!(rows(&lab, "SELECT id, name FROM items WHERE id > 3").await, ["4|four"]);
}
