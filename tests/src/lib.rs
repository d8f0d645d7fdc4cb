//! Fixtures for creditgate's end-to-end tests: a whole federation on loopback
//! ports with certificates made at test time, plus helpers to read the
//! connectors' served-query logs, compute expected results straight from the
//! Parquet files, and simulate stalled sources.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use creditgate_connector::{ServedLog, ServedRecord};
use creditgate_gateway::demo::{Lab, LabOptions};
use datafusion::prelude::{ParquetReadOptions, SessionContext};

/// Deadlines used by the tests (connect, first batch, total), in ms: short, so
/// failure tests finish quickly, but far above what a healthy loopback query needs.
pub const TEST_DEADLINES_MS: (u64, u64, u64) = (2_000, 5_000, 60_000);

/// Starts a federation in `dir` (scale 1).
pub async fn start_lab(dir: &Path) -> Lab {
    start_lab_with(dir, |_| {}).await
}

/// Starts a federation in `dir` after `adjust` changes the options.
pub async fn start_lab_with(dir: &Path, adjust: impl FnOnce(&mut LabOptions)) -> Lab {
    creditgate_certs::install_default_provider();
    let mut options = LabOptions::new(dir);
    options.deadlines_ms = TEST_DEADLINES_MS;
    adjust(&mut options);
    match Lab::start(options).await {
        Ok(lab) => lab,
        Err(e) => panic!("cannot start the test federation: {e}"),
    }
}

/// The served-query records of a connector so far.
pub fn served(lab: &Lab, source: &str) -> Vec<ServedRecord> {
    let config = lab.connector_configs.get(source).unwrap_or_else(|| panic!("no connector {source}"));
    ServedLog::read_all(&config.served_log).unwrap_or_default()
}

/// A local DataFusion session over the federation's raw Parquet files, with
/// the same `schema.table` names and the demo policy's retention rule applied
/// to negative records (no masks): the expected result for a caller whose
/// policy leaves the queried columns unmasked.
pub async fn reference_session(lab: &Lab) -> SessionContext {
    let policy = creditgate_policy::Policy::parse(creditgate_gateway::demo::DEMO_POLICY, "demo-policy.toml")
        .expect("demo policy");
    let today = chrono::Local::now().date_naive();
    let ctx = SessionContext::new();
    let catalog = ctx.catalog("datafusion").expect("default catalog");
    catalog.register_schema("raw", Arc::new(datafusion::catalog::MemorySchemaProvider::new())).expect("schema");
    for source in &lab.manifest.sources {
        catalog
            .register_schema(&source.name, Arc::new(datafusion::catalog::MemorySchemaProvider::new()))
            .expect("schema");
        for table in &source.tables {
            let path = lab.dir.join("data").join(&table.file);
            let raw = format!("raw.{}_{}", source.name, table.name);
            ctx.register_parquet(raw.as_str(), path.to_str().expect("utf8 path"), ParquetReadOptions::default())
                .await
                .expect("register parquet");
            let name = format!("{}.{}", source.name, table.name);
            let filter = match policy.dataset(&name).and_then(|d| d.negative.as_ref()) {
                Some(negative) => {
                    let cutoff =
                        today.checked_sub_months(chrono::Months::new(12 * negative.retention_years)).expect("cutoff");
                    format!(" WHERE {c} IS NULL OR {c} >= DATE '{cutoff}'", c = negative.end_date)
                }
                None => String::new(),
            };
            ctx.sql(&format!("CREATE VIEW {name} AS SELECT * FROM {raw}{filter}"))
                .await
                .expect("reference view")
                .collect()
                .await
                .expect("create view");
        }
    }
    ctx
}

/// Rows of `batches` rendered as sorted strings (order-insensitive comparison).
pub fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &Default::default()).expect("formatter"))
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters.iter().map(|f| f.value(row).to_string()).collect();
            rows.push(cells.join("|"));
        }
    }
    rows.sort();
    rows
}

/// A server that completes TLS handshakes with `cert`/`key` and then never
/// says anything: a stalled source.
pub async fn stall_server(listener: tokio::net::TcpListener, cert: &Path, key: &Path) -> tokio::task::JoinHandle<()> {
    use futures::StreamExt;
    let config = creditgate_certs::tls::server_config(cert, key, None, &[b"h2"]).expect("stall server TLS");
    let mut incoming = Box::pin(creditgate_certs::tls::incoming(listener, config, Duration::from_secs(5)));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(Ok(conn)) = incoming.next().await {
            held.push(conn);
        }
    })
}

/// Binds `addr` again after its server stopped. The old listener is released
/// by a background task, so the first attempts may still find it in use.
pub async fn rebind(addr: std::net::SocketAddr) -> tokio::net::TcpListener {
    let mut last = None;
    for _ in 0..100 {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot rebind {addr}: {last:?}");
}
