//! Point reads straight at a connector, as the gateway makes them, and the
//! same row read from PostgreSQL through a prepared statement on an indexed
//! column (the floor of a well-indexed source on this machine).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use creditgate_remote::{Deadlines, RemoteSource, Statement};
use futures::TryStreamExt;

use crate::demo::{Lab, SERVER_NAME};

/// The table read, and its key column.
const TABLE: &str = "enterprises";
const KEY: &str = "credit_code";

/// Latencies of one key read at a time, prepared and as text, alternating.
pub(super) struct ConnectorReads {
    /// The statement prepared once, the key bound per read (what lookups send).
    pub prepared: Vec<Duration>,
    /// The key written into the SQL text each time.
    pub text: Vec<Duration>,
    /// The keys read (spread over the table).
    pub codes: Vec<String>,
    /// The columns read, in order.
    pub columns: Vec<String>,
}

/// A source to `lab`'s market connector, reached as the gateway reaches it
/// (its client certificate, HTTP/2 kept alive).
fn market(lab: &Lab) -> Result<Arc<RemoteSource>, String> {
    let addr = lab.connector_configs.get("market").ok_or("no market connector")?.listen.to_string();
    let certs = lab.dir.join("certs");
    let (cert, key) = (certs.join("gateway-client.pem"), certs.join("gateway-client.key"));
    let client =
        creditgate_certs::tls::client_config(&lab.ca_file, Some((&cert, &key)), &[b"h2"]).map_err(|e| e.to_string())?;
    let channel = creditgate_certs::tls::channel(&addr, SERVER_NAME, client, Duration::from_secs(3))
        .map_err(|e| e.to_string())?;
    let name = creditgate_ident::SourceName::parse("market").map_err(|e| e.to_string())?;
    Ok(Arc::new(RemoteSource::new(name, channel, Deadlines::default())))
}

async fn run(source: &Arc<RemoteSource>, statement: Statement, schema: &Arc<Schema>) -> Result<usize, String> {
    let batches: Vec<RecordBatch> =
        source.query(statement, Arc::clone(schema)).try_collect().await.map_err(|e| e.to_string())?;
    Ok(batches.iter().map(RecordBatch::num_rows).sum())
}

/// `n` reads of one enterprise each on the market connector, prepared and
/// as text in turn, over `samples` keys spread over the table.
pub(super) async fn connector_reads(lab: &Lab, n: usize, samples: usize) -> Result<ConnectorReads, String> {
    let source = market(lab)?;
    let info = source
        .tables()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|t| t.table == TABLE)
        .ok_or("the market connector does not serve enterprises")?;
    let columns: Vec<String> = info.schema.fields().iter().map(|f| f.name().clone()).collect();
    let key_only = Arc::new(Schema::new(vec![info.schema.field_with_name(KEY).map_err(|e| e.to_string())?.clone()]));
    let keys: Vec<RecordBatch> = source
        .query(Statement::Text(format!("SELECT \"{KEY}\" FROM \"{TABLE}\"")), Arc::clone(&key_only))
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    for batch in &keys {
        let column = arrow::compute::cast(batch.column(0), &DataType::Utf8).map_err(|e| e.to_string())?;
        let strings = column.as_any().downcast_ref::<StringArray>().ok_or("credit codes are not text")?;
        all.extend((0..strings.len()).filter(|i| strings.is_valid(*i)).map(|i| strings.value(i).to_string()));
    }
    if all.is_empty() {
        return Err("enterprises is empty".to_string());
    }
    let step = (all.len() / samples.max(1)).max(1);
    let codes: Vec<String> = all.into_iter().step_by(step).take(samples.max(1)).collect();

    let list = columns.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
    let prepared_sql = format!("SELECT {list} FROM \"{TABLE}\" WHERE \"{KEY}\" = $1");
    let parameter = Arc::new(Schema::new(vec![Field::new("$1", DataType::Utf8, false)]));
    let bind = |code: &str| {
        RecordBatch::try_new(Arc::clone(&parameter), vec![Arc::new(StringArray::from(vec![code.to_string()]))])
            .map_err(|e| e.to_string())
    };
    let mut reads = ConnectorReads { prepared: Vec::new(), text: Vec::new(), codes: codes.clone(), columns };
    for round in 0..=n {
        let code = &codes[round % codes.len()];
        let started = Instant::now();
        let prepared =
            run(&source, Statement::Prepared { sql: prepared_sql.clone(), parameters: bind(code)? }, &info.schema)
                .await?;
        let prepared_took = started.elapsed();
        let started = Instant::now();
        let text = run(
            &source,
            Statement::Text(format!("SELECT {list} FROM \"{TABLE}\" WHERE \"{KEY}\" = '{code}'")),
            &info.schema,
        )
        .await?;
        let text_took = started.elapsed();
        if prepared != 1 || text != 1 {
            return Err(format!("reading {code}: {prepared} rows prepared, {text} as text (one expected)"));
        }
        // Round 0 prepares the statement and warms both paths.
        if round > 0 {
            reads.prepared.push(prepared_took);
            reads.text.push(text_took);
        }
    }
    Ok(reads)
}

/// The same reads from PostgreSQL: the market source loaded into a scratch
/// schema (the loader indexes `credit_code`), one prepared statement, each
/// key bound in turn. `None` when nothing answers at `url`.
pub(super) async fn postgres_reads(
    lab: &Lab,
    url: &str,
    reads: &ConnectorReads,
) -> Result<Option<Vec<Duration>>, String> {
    let prefix = format!("cg_bench_points_{}_", std::process::id());
    let options = creditgate_datagen::load::LoadOptions {
        schema_prefix: prefix.clone(),
        sources: Some(vec!["market".to_string()]),
        ..creditgate_datagen::load::LoadOptions::default()
    };
    let Ok((client, connection)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else {
        eprintln!("no PostgreSQL at {url}: the PostgreSQL point-read row is skipped");
        return Ok(None);
    };
    let connection = tokio::spawn(connection);
    let loaded = creditgate_datagen::load::load_postgres(&lab.dir.join("data"), url, &options).await;
    let measured = async {
        loaded.map_err(|e| e.to_string())?;
        let schema = creditgate_datagen::load::schema_name(&prefix, "market");
        let list = reads.columns.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
        let statement = client
            .prepare(&format!("SELECT {list} FROM \"{schema}\".\"{TABLE}\" WHERE \"{KEY}\" = $1"))
            .await
            .map_err(|e| e.to_string())?;
        let mut samples = Vec::with_capacity(reads.prepared.len());
        for round in 0..=reads.prepared.len() {
            let code = &reads.codes[round % reads.codes.len()];
            let started = Instant::now();
            let rows = client.query(&statement, &[code]).await.map_err(|e| e.to_string())?;
            if rows.len() != 1 {
                return Err(format!("PostgreSQL returned {} rows for {code}", rows.len()));
            }
            if round > 0 {
                samples.push(started.elapsed());
            }
        }
        Ok(samples)
    }
    .await;
    let dropped = creditgate_datagen::load::drop_postgres(url, &["market".to_string()], &options).await;
    drop(client);
    connection.abort();
    dropped.map_err(|e| e.to_string())?;
    measured.map(Some)
}
