//! Scratch: not committed.
#![allow(missing_docs, clippy::unwrap_used)]
use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let scale: u32 = args[2].parse().unwrap();
    let show: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(0);
    let mut o = creditgate_datagen::GenOptions::new(&dir, chrono::NaiveDate::from_ymd_opt(2026, 11, 28).unwrap());
    o.scale = scale;
    o.progress = args.get(4).is_some();
    let t = Instant::now();
    let m = creditgate_datagen::generate(&o).unwrap();
    eprintln!("generate scale {scale}: {:?}", t.elapsed());
    for s in &m.sources { for tm in &s.tables {
        println!("== {} rows={} cols={}", tm.file, tm.rows, tm.columns.join(","));
        if show > 0 {
            let f = std::fs::File::open(dir.join(&tm.file)).unwrap();
            let mut r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap().with_batch_size(show).build().unwrap();
            let b = r.next().unwrap().unwrap();
            println!("{}", arrow::util::pretty::pretty_format_batches(&[b]).unwrap());
        }
    }}
    println!("{}", serde_json::to_string_pretty(&m.featured).unwrap());
}
