//! `creditgate bench`: side-by-side measurements on this machine, printed as
//! a table and written to BENCHMARKS.md. Every figure is a ratio of two runs
//! made in the same process, one after the other, so a noisy shared machine
//! affects both sides alike.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

mod points;
mod state;

use crate::client::{ClientIdentity, FlightClient};
use crate::demo::{DEMO_POLICY, Lab, LabOptions, SERVER_NAME};

/// Arguments of `creditgate bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Working directory (data, certificates, state).
    #[arg(long, default_value = "bench")]
    pub dir: PathBuf,
    /// Scale of the large federation (1000 ≈ 1M rows in the large tables).
    #[arg(long, default_value_t = 1000)]
    pub scale: u32,
    /// Scale of the small federation (10 ≈ 10k rows).
    #[arg(long, default_value_t = 10)]
    pub small_scale: u32,
    /// Lookups per latency measurement.
    #[arg(long, default_value_t = 300)]
    pub lookups: usize,
    /// Measure only the prepared-statement comparison (on the small
    /// federation) and write a report of its rows alone.
    #[arg(long)]
    pub prepared_only: bool,
    /// Stop after the small federation's prepared, plan-cache, relate-check
    /// and grading rows (no large federation).
    #[arg(long)]
    pub grades_only: bool,
    /// Executions per side of the prepared-statement comparison.
    #[arg(long, default_value_t = 1000)]
    pub executions: usize,
    /// Where to write the report.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
    /// The PostgreSQL of the shared-state rows (a scratch schema is made
    /// and dropped); the rows are skipped when nothing answers there.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub state: String,
    /// Measure only the shared-state rows (on the small federation).
    #[arg(long)]
    pub state_only: bool,
    /// Measure only the point reads straight at a connector (10k and 1M
    /// rows, prepared and as text) and from PostgreSQL, plus the lookup
    /// rows at 32 callers.
    #[arg(long)]
    pub points_only: bool,
}

/// The bench policy: the demo policy without rate limits or quotas (they
/// would throttle the load), and `samr` seeing `market.enterprises` unmasked
/// (the unmasked side of the policy-overhead comparison).
fn bench_policy() -> String {
    let mut text: String = DEMO_POLICY
        .lines()
        .filter(|l| !l.starts_with("rate_limit") && !l.starts_with("daily_quota"))
        .collect::<Vec<_>>()
        .join("\n");
    text.push_str(
        "\n[[rules]]\nprincipal = \"samr\"\ndataset = \"market.enterprises\"\n\
         masks = { legal_rep_name = \"none\", legal_rep_id = \"none\", address = \"none\", phone = \"none\" }\n",
    );
    text
}

struct Row {
    name: String,
    ours: String,
    baseline: String,
    ratio: String,
    note: String,
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index.min(samples.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The benchmark's baseline for the audit's cost: records go nowhere.
struct NullSink;

impl creditgate_engine::audit::AuditSink for NullSink {
    fn append(&self, _record: creditgate_audit::NewRecord) -> Result<u64, creditgate_audit::AuditError> {
        Ok(0)
    }
}

async fn start(dir: &Path, scale: u32, audit: bool) -> Result<Lab, String> {
    let mut options = LabOptions::new(dir);
    options.scale = scale;
    options.policy = Some(bench_policy());
    if !audit {
        options.audit_sink = Some(Arc::new(NullSink));
    }
    Lab::start(options).await
}

fn direct_client(lab: &Lab, source: &str) -> Result<FlightClient, String> {
    let addr = lab.connector_configs.get(source).ok_or("no such source")?.listen.to_string();
    let certs = lab.dir.join("certs");
    let (cert, key) = (certs.join("gateway-client.pem"), certs.join("gateway-client.key"));
    FlightClient::connect(&addr, SERVER_NAME, &ClientIdentity { ca: &lab.ca_file, cert: Some((&cert, &key)) })
}

async fn timed_stream(client: &mut FlightClient, sql: &str) -> Result<(u64, u64, Duration), String> {
    let started = Instant::now();
    let (rows, bytes) = client.query_count(sql).await.map_err(|e| crate::client::flight_error_text(&e))?;
    Ok((rows, bytes, started.elapsed()))
}

fn lookup_body(code: &str, datasets: Option<Vec<String>>) -> serde_json::Value {
    let mut body = serde_json::json!({"subject": {"type": "credit_code", "id": code}, "purpose": "supervision"});
    if let Some(d) = datasets {
        body["datasets"] = serde_json::json!(d);
    }
    body
}

async fn lookup_latencies(lab: &Lab, n: usize, datasets: Option<Vec<String>>) -> Result<Vec<Duration>, String> {
    let mut client = lab.flight_client("samr")?;
    client.set_header(creditgate_engine::PURPOSE_HEADER, "supervision");
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let body = lookup_body(&code, datasets);
    client.lookup(&body).await.map_err(|e| crate::client::flight_error_text(&e))?; // warm-up
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let doc = client.lookup(&body).await.map_err(|e| crate::client::flight_error_text(&e))?;
        samples.push(started.elapsed());
        if doc["incomplete"] == true {
            return Err(format!("incomplete lookup during the benchmark: {doc}"));
        }
    }
    Ok(samples)
}

/// `n` lookups on each of `a` and `b`, alternating (after one warm-up each).
async fn interleaved_latencies(a: &Lab, b: &Lab, n: usize) -> Result<(Vec<Duration>, Vec<Duration>), String> {
    let mut clients = Vec::new();
    for lab in [a, b] {
        let mut client = lab.flight_client("samr")?;
        client.set_header(creditgate_engine::PURPOSE_HEADER, "supervision");
        let body = lookup_body(&lab.manifest.featured.enterprise_credit_code, None);
        client.lookup(&body).await.map_err(|e| crate::client::flight_error_text(&e))?; // warm-up
        clients.push((client, body));
    }
    let mut samples = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        for (i, (client, body)) in clients.iter_mut().enumerate() {
            let started = Instant::now();
            let doc = client.lookup(body).await.map_err(|e| crate::client::flight_error_text(&e))?;
            let took = started.elapsed();
            if doc["incomplete"] == true {
                return Err(format!("incomplete lookup during the benchmark: {doc}"));
            }
            if i == 0 { samples.0.push(took) } else { samples.1.push(took) }
        }
    }
    Ok(samples)
}

/// CPU time used by this process so far (user + system; `/proc/self/stat`,
/// in the kernel's 100 Hz ticks). The bench runs the gateway and the
/// connectors in this process, so it covers client, gateway and sources.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// The prepared-statement rows of the report: the same point query of
/// `market.enterprises` by credit code, `n` times prepared and bound, `n`
/// times as text, interleaved in rounds of 50 so a noisy machine affects
/// both alike; wall time and process CPU per execution.
async fn prepared_vs_text(
    lab: &Lab,
    code: &str,
    n: usize,
    report: &mut dyn FnMut(&str, String, String, String, &str),
) -> Result<(), String> {
    use arrow::array::{RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    let error = |e: arrow_flight::error::FlightError| crate::client::flight_error_text(&e);
    let mut text_client = lab.flight_client("samr")?;
    let mut prepared_client = lab.flight_client("samr")?;
    let columns = "credit_code, name, status, registered_capital, phone";
    let mut statement = prepared_client
        .inner_mut()
        .prepare(format!("SELECT {columns} FROM market.enterprises WHERE credit_code = $1"), None)
        .await
        .map_err(error)?;
    let schema = Arc::new(Schema::new(vec![Field::new("0", DataType::Utf8, true)]));
    let binding =
        RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec![code]))]).map_err(|e| e.to_string())?;
    let text_sql = format!("SELECT {columns} FROM market.enterprises WHERE credit_code = '{code}'");
    let (mut text_time, mut prepared_time) = (Duration::ZERO, Duration::ZERO);
    let (mut text_cpu, mut prepared_cpu) = (Duration::ZERO, Duration::ZERO);
    let mut rows = (0usize, 0usize);
    let mut done = 0usize;
    while done < n {
        let round = 50.min(n - done);
        let (cpu, started) = (process_cpu(), Instant::now());
        for _ in 0..round {
            rows.0 += text_client.query(&text_sql).await.map_err(error)?.iter().map(|b| b.num_rows()).sum::<usize>();
        }
        text_time += started.elapsed();
        text_cpu += process_cpu().zip(cpu).map(|(b, a)| b.saturating_sub(a)).unwrap_or_default();
        let (cpu, started) = (process_cpu(), Instant::now());
        for _ in 0..round {
            statement.set_parameters(binding.clone()).map_err(error)?;
            let info = statement.execute().await.map_err(error)?;
            for endpoint in info.endpoint {
                let ticket = endpoint.ticket.ok_or("no ticket")?;
                let stream = prepared_client.inner_mut().do_get(ticket).await.map_err(error)?;
                let batches: Vec<RecordBatch> = futures::TryStreamExt::try_collect(stream).await.map_err(error)?;
                rows.1 += batches.iter().map(|b| b.num_rows()).sum::<usize>();
            }
        }
        prepared_time += started.elapsed();
        prepared_cpu += process_cpu().zip(cpu).map(|(b, a)| b.saturating_sub(a)).unwrap_or_default();
        done += round;
    }
    if rows.0 != rows.1 || rows.0 != n {
        return Err(format!("prepared and text answers differ: {} vs {} rows for {n} executions", rows.1, rows.0));
    }
    let per = |d: Duration| d / n.max(1) as u32;
    report(
        &format!("prepared query × {n} vs as text × {n}: wall"),
        format!("{} ms/exec", ms(per(prepared_time)).trim_end_matches(" ms")),
        format!("{} ms/exec", ms(per(text_time)).trim_end_matches(" ms")),
        format!("{:.2}×", prepared_time.as_secs_f64() / text_time.as_secs_f64()),
        "bound each time: DoPut + GetFlightInfo + DoGet vs GetFlightInfo + DoGet; interleaved rounds of 50",
    );
    report(
        &format!("prepared query × {n} vs as text × {n}: CPU"),
        format!("{} ms/exec", ms(per(prepared_cpu)).trim_end_matches(" ms")),
        format!("{} ms/exec", ms(per(text_cpu)).trim_end_matches(" ms")),
        format!("{:.2}×", prepared_cpu.as_secs_f64() / text_cpu.as_secs_f64().max(1e-9)),
        "process CPU (client, gateway and connectors share this process), 10 ms ticks",
    );
    Ok(())
}

/// Lookups/s and process CPU per lookup at 32 concurrent callers, `n`
/// lookups with the lookup plan cache off (every read planned, as before the
/// fast path), then `n` with it on (after one warm-up lookup).
async fn lookup_cache_off_on(
    lab: &Lab,
    code: &str,
    n: usize,
    report: &mut dyn FnMut(&str, String, String, String, &str),
) -> Result<(), String> {
    const CALLERS: usize = 32;
    let per = (n / CALLERS).max(2);
    let mut clients = Vec::new();
    for _ in 0..CALLERS {
        let mut client = lab.flight_client("samr")?;
        client.set_header(creditgate_engine::PURPOSE_HEADER, "supervision");
        clients.push(client);
    }
    let body = lookup_body(code, None);
    let mut measured = Vec::new();
    for enabled in [false, true] {
        lab.gateway_handle.lookup_plans().set_enabled(enabled);
        clients[0].lookup(&body).await.map_err(|e| crate::client::flight_error_text(&e))?;
        let (cpu, started) = (process_cpu(), Instant::now());
        let runs = clients.iter_mut().map(|client| {
            let body = body.clone();
            async move {
                let mut errors = 0usize;
                for _ in 0..per {
                    match client.lookup(&body).await {
                        Ok(doc) if doc["incomplete"] != true => {}
                        _ => errors += 1,
                    }
                }
                errors
            }
        });
        let errors: usize = futures::future::join_all(runs).await.into_iter().sum();
        let wall = started.elapsed();
        let cpu = process_cpu().zip(cpu).map(|(b, a)| b.saturating_sub(a)).unwrap_or_default();
        measured.push((CALLERS * per, wall, cpu, errors));
    }
    let (total, off_wall, off_cpu, off_errors) = measured[0];
    let (_, on_wall, on_cpu, on_errors) = measured[1];
    let rate = |wall: Duration| total as f64 / wall.as_secs_f64();
    report(
        "lookups/s, 32 callers: plan cache on vs off",
        format!("{:.0}/s", rate(on_wall)),
        format!("{:.0}/s", rate(off_wall)),
        format!("{:.2}×", rate(on_wall) / rate(off_wall)),
        &format!("{total} lookups each; errors {on_errors} (on), {off_errors} (off)"),
    );
    let per_lookup = |cpu: Duration| cpu.as_secs_f64() * 1000.0 / total as f64;
    report(
        "CPU per lookup, 32 callers: plan cache on vs off",
        format!("{:.1} ms", per_lookup(on_cpu)),
        format!("{:.1} ms", per_lookup(off_cpu)),
        format!("{:.2}×", per_lookup(on_cpu) / per_lookup(off_cpu).max(1e-9)),
        "process CPU ÷ lookups (client, gateway and connectors share this process)",
    );
    Ok(())
}

/// The point-read rows: the market connector read one enterprise at a time
/// on the large table vs the small one (`small`, measured before), prepared
/// vs as text, and vs the same rows read from PostgreSQL through a prepared
/// statement on its indexed key.
async fn point_rows(
    args: &BenchArgs,
    big: &Lab,
    small: &points::ConnectorReads,
    report: &mut dyn FnMut(&str, String, String, String, &str),
) -> Result<(), String> {
    let large = points::connector_reads(big, args.lookups, 200).await?;
    let p50 = |samples: &[Duration]| percentile(&mut samples.to_vec(), 0.5);
    let rows = |lab: &Lab| lab.manifest.table("market", "enterprises").map(|t| t.rows).unwrap_or(0);
    let ratio = |a: Duration, b: Duration| format!("{:.2}×", a.as_secs_f64() / b.as_secs_f64().max(1e-9));
    let big_rows = rows(big);
    report(
        &format!("connector point read p50, {big_rows} rows vs small table"),
        ms(p50(&large.prepared)),
        ms(p50(&small.prepared)),
        ratio(p50(&large.prepared), p50(&small.prepared)),
        "market.enterprises by credit code, prepared; straight at the connector; aim ≤ 1.3×",
    );
    report(
        &format!("connector point read p50, prepared vs as text ({big_rows} rows)"),
        ms(p50(&large.prepared)),
        ms(p50(&large.text)),
        ratio(p50(&large.prepared), p50(&large.text)),
        "the same reads alternating: the statement planned once vs parsed and planned each time",
    );
    report(
        "… as text, large vs small table",
        ms(p50(&large.text)),
        ms(p50(&small.text)),
        ratio(p50(&large.text), p50(&small.text)),
        "",
    );
    match points::postgres_reads(big, &args.state, &large).await? {
        Some(mut pg) => {
            let pg50 = percentile(&mut pg, 0.5);
            report(
                &format!("connector point read p50 vs PostgreSQL prepared ({big_rows} rows)"),
                ms(p50(&large.prepared)),
                ms(pg50),
                ratio(p50(&large.prepared), pg50),
                "baseline: the same rows by a PostgreSQL prepared statement on the indexed key (tokio-postgres); aim ≤ 3×",
            );
        }
        None => eprintln!("the PostgreSQL point-read row was skipped"),
    }
    Ok(())
}

/// Graded supervision: one grade (Flight action) vs one lookup of the same
/// enterprise, alternating, `n` each (p50 ratio; aim ≤ 1.5×); then a batch
/// of up to 1,000 enterprises (`POST /v1/grades`, the configured bounded
/// concurrency) vs the same enterprises looked up by 8 concurrent callers.
async fn grades_vs_lookups(
    lab: &Lab,
    code: &str,
    n: usize,
    report: &mut dyn FnMut(&str, String, String, String, &str),
) -> Result<(), String> {
    let mut client = lab.flight_client("samr")?;
    client.set_header(creditgate_engine::PURPOSE_HEADER, "supervision");
    let lookup = lookup_body(code, None);
    let grade = serde_json::json!({"credit_code": code, "purpose": "supervision"});
    let flight = |e: arrow_flight::error::FlightError| crate::client::flight_error_text(&e);
    client.lookup(&lookup).await.map_err(flight)?;
    client.grade(&grade).await.map_err(flight)?;
    let (mut grades, mut lookups) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let started = Instant::now();
        let doc = client.grade(&grade).await.map_err(flight)?;
        grades.push(started.elapsed());
        if doc["complete"] != true {
            return Err(format!("incomplete grade during the benchmark: {doc}"));
        }
        let started = Instant::now();
        client.lookup(&lookup).await.map_err(flight)?;
        lookups.push(started.elapsed());
    }
    let (g50, l50) = (percentile(&mut grades, 0.5), percentile(&mut lookups, 0.5));
    report(
        "grade vs lookup, one enterprise: p50",
        ms(g50),
        ms(l50),
        format!("{:.2}×", g50.as_secs_f64() / l50.as_secs_f64()),
        &format!("{n} each, alternating; the grade reads only its rules' columns; aim ≤ 1.5×"),
    );

    let batches = client
        .query("SELECT credit_code FROM market.enterprises ORDER BY credit_code LIMIT 1000")
        .await
        .map_err(flight)?;
    let mut codes: Vec<String> = Vec::new();
    for batch in &batches {
        let column =
            arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8).map_err(|e| e.to_string())?;
        if let Some(strings) = column.as_any().downcast_ref::<arrow::array::StringArray>() {
            codes.extend(strings.iter().flatten().map(str::to_string));
        }
    }
    let body = serde_json::json!({"credit_codes": codes, "purpose": "supervision"}).to_string();
    let started = Instant::now();
    let answer = lab.http("samr", "POST", "/v1/grades", &[], Some(body)).await?;
    let batch_wall = started.elapsed();
    let text = String::from_utf8_lossy(&answer.body);
    let summary: serde_json::Value =
        text.lines().last().and_then(|l| serde_json::from_str(l).ok()).unwrap_or(serde_json::Value::Null);
    if answer.status != 200 || summary["summary"]["done"] != serde_json::json!(codes.len()) {
        return Err(format!("the batch of grades failed ({}): {}", answer.status, &text[..text.len().min(300)]));
    }
    const CALLERS: usize = 8;
    let mut clients = Vec::new();
    for _ in 0..CALLERS {
        let mut c = lab.flight_client("samr")?;
        c.set_header(creditgate_engine::PURPOSE_HEADER, "supervision");
        clients.push(c);
    }
    let started = Instant::now();
    let runs = clients.iter_mut().enumerate().map(|(i, c)| {
        let mine: Vec<serde_json::Value> =
            codes.iter().skip(i).step_by(CALLERS).map(|code| lookup_body(code, None)).collect();
        async move {
            for body in &mine {
                c.lookup(body).await.map_err(|e| crate::client::flight_error_text(&e))?;
            }
            Ok::<_, String>(())
        }
    });
    for run in futures::future::join_all(runs).await {
        run?;
    }
    let lookup_wall = started.elapsed();
    let rate = |wall: Duration| codes.len() as f64 / wall.as_secs_f64();
    report(
        &format!("grades/s, batch of {}", codes.len()),
        format!("{:.0}/s", rate(batch_wall)),
        format!("{:.0}/s", rate(lookup_wall)),
        format!("{:.2}×", rate(batch_wall) / rate(lookup_wall)),
        &format!(
            "POST /v1/grades (NDJSON, {} at once) vs the same enterprises looked up by {CALLERS} callers; {} complete, {} with warnings",
            lab.gateway_config.grading.as_ref().map_or(0, |g| g.batch_concurrency),
            summary["summary"]["complete"],
            summary["summary"]["with_warnings"]
        ),
    );
    Ok(())
}

/// Planning with the masked-relation check (`policy::relate`) on vs off:
/// GetFlightInfo (plan only, nothing executed) of a query that reads masked
/// columns across a join, `n` times per side, in alternating rounds so the
/// machine's noise falls on both; the policy is reloaded between rounds with
/// `[masking] relate_masked_values` switched, and the reload is not timed.
async fn relate_check_overhead(
    lab: &Lab,
    n: usize,
    report: &mut dyn FnMut(&str, String, String, String, &str),
) -> Result<(), String> {
    const SQL: &str = "SELECT c.complainant_mobile, c.complainant_name, e.name FROM complaints.complaints c \
        JOIN market.enterprises e ON c.merchant_credit_code = e.credit_code \
        WHERE c.complainant_mobile LIKE '13%' ORDER BY c.complaint_id LIMIT 10";
    const ROUNDS: usize = 4;
    let policy_file = lab.dir.join("policy.toml");
    let on_text = std::fs::read_to_string(&policy_file).map_err(|e| format!("{}: {e}", policy_file.display()))?;
    let off_text = format!("{on_text}\n[masking]\nrelate_masked_values = true\n");
    let mut client = lab.flight_client("samr")?;
    client.set_header(creditgate_engine::PURPOSE_HEADER, "supervision");
    let per_round = (n / ROUNDS).max(10);
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS * 2 {
        let check_on = round % 2 == 0;
        std::fs::write(&policy_file, if check_on { &on_text } else { &off_text }).map_err(|e| e.to_string())?;
        lab.gateway_handle.reload_policy().map_err(|e| e.to_string())?;
        let samples = if check_on { &mut on } else { &mut off };
        for _ in 0..per_round {
            let started = Instant::now();
            let request = client.inner_mut().execute(SQL.to_string(), None).await;
            request.map_err(|e| format!("GetFlightInfo: {e}"))?;
            samples.push(started.elapsed());
        }
    }
    std::fs::write(&policy_file, &on_text).map_err(|e| e.to_string())?;
    lab.gateway_handle.reload_policy().map_err(|e| e.to_string())?;
    let (p_on, p_off) = (percentile(&mut on, 0.5), percentile(&mut off, 0.5));
    report(
        "plan (GetFlightInfo) p50: relation check on vs off",
        ms(p_on),
        ms(p_off),
        format!("{:.2}×", p_on.as_secs_f64() / p_off.as_secs_f64()),
        &format!("{} plans each, alternating rounds; aim ≤ 1.1×", on.len()),
    );
    Ok(())
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<u64>().ok()))
        .map(|kib| format!("{:.0} GiB", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    format!(
        "{cores} cores ({cpu}), {mem} RAM, {}",
        if cfg!(debug_assertions) { "DEBUG build (numbers not representative)" } else { "release build" }
    )
}

/// Runs every benchmark and writes the report.
pub async fn run(args: BenchArgs) -> Result<(), String> {
    let mut rows: Vec<Row> = Vec::new();
    let report = |rows: &mut Vec<Row>, name: &str, ours: String, baseline: String, ratio: String, note: &str| {
        println!("{name:<48} {ours:>22} {baseline:>22} {ratio:>10}  {note}");
        rows.push(Row { name: name.into(), ours, baseline, ratio, note: note.into() });
    };
    println!("{:<48} {:>22} {:>22} {:>10}", "benchmark", "creditgate", "baseline", "ratio");

    // ---- Small federation: lookups, concurrency, handshakes, audit on/off, source scaling.
    let small = start(&args.dir.join("small"), args.small_scale, true).await?;
    let code = small.manifest.featured.enterprise_credit_code.clone();

    // 1a. Shared state in PostgreSQL vs the state directory.
    state::rows(&small, &args.state, args.lookups, args.executions * 20, &mut |name, ours, baseline, ratio, note| {
        report(&mut rows, name, ours, baseline, ratio, note)
    })
    .await?;
    if args.state_only {
        small.stop().await?;
        return write_report(&args, &rows);
    }

    // 1b. A parameterized query prepared once and executed N times (a new
    // value bound each time: DoPut, GetFlightInfo, DoGet) vs the same query
    // sent as text with the literal N times (GetFlightInfo, DoGet).
    prepared_vs_text(&small, &code, args.executions, &mut |name, ours, baseline, ratio, note| {
        report(&mut rows, name, ours, baseline, ratio, note)
    })
    .await?;
    // 1c. Lookups at 32 concurrent callers with the lookup plan cache off, then on.
    lookup_cache_off_on(&small, &code, args.lookups, &mut |name, ours, baseline, ratio, note| {
        report(&mut rows, name, ours, baseline, ratio, note)
    })
    .await?;
    if args.prepared_only {
        small.stop().await?;
        return write_report(&args, &rows);
    }
    // 1c'. Point reads straight at the market connector, on the small table
    // (compared with the large one below).
    let small_reads = points::connector_reads(&small, args.lookups, 200).await?;
    if args.points_only {
        small.stop().await?;
        let big = start(&args.dir.join("large"), args.scale, true).await?;
        point_rows(&args, &big, &small_reads, &mut |name, ours, baseline, ratio, note| {
            report(&mut rows, name, ours, baseline, ratio, note)
        })
        .await?;
        big.stop().await?;
        return write_report(&args, &rows);
    }
    // 1d. Planning overhead of the masked-relation check.
    relate_check_overhead(&small, args.executions, &mut |name, ours, baseline, ratio, note| {
        report(&mut rows, name, ours, baseline, ratio, note)
    })
    .await?;

    // 1e. Graded supervision: a grade vs a lookup; a batch of grades.
    grades_vs_lookups(&small, &code, (args.lookups / 3).max(20), &mut |name, ours, baseline, ratio, note| {
        report(&mut rows, name, ours, baseline, ratio, note)
    })
    .await?;
    if args.grades_only {
        small.stop().await?;
        return write_report(&args, &rows);
    }

    // 2. Fan-out lookup vs the slowest single source queried directly.
    let mut through = lookup_latencies(&small, args.lookups, None).await?;
    let mut slowest: Option<(String, Vec<Duration>)> = None;
    for source in small.manifest.sources.iter().map(|s| s.name.clone()) {
        let mut client = direct_client(&small, &source)?;
        let table = match source.as_str() {
            "market" => "enterprises WHERE credit_code",
            "court" => "dishonest_debtors WHERE credit_code",
            "tax" => "credit_ratings WHERE credit_code",
            "courier" => "companies WHERE credit_code",
            "complaints" => "complaints WHERE merchant_credit_code",
            "credit_platform" => "black_list WHERE credit_code",
            "traceability" => "products WHERE producer_credit_code",
            "payment" => "fraud_reports WHERE merchant_credit_code",
            _ => "shops WHERE owner_credit_code",
        };
        let sql = format!("SELECT * FROM {table} = '{code}'");
        let mut samples = Vec::with_capacity(args.lookups / 3);
        for _ in 0..(args.lookups / 3).max(20) {
            let started = Instant::now();
            client.query_direct(&sql).await.map_err(|e| crate::client::flight_error_text(&e))?;
            samples.push(started.elapsed());
        }
        let p50 = percentile(&mut samples, 0.5);
        if slowest.as_ref().is_none_or(|(_, s)| percentile(&mut s.clone(), 0.5) < p50) {
            slowest = Some((source, samples));
        }
    }
    let (slow_name, mut slow) = slowest.ok_or("no sources")?;
    let (p50, p99) = (percentile(&mut through, 0.5), percentile(&mut through, 0.99));
    let (s50, s99) = (percentile(&mut slow, 0.5), percentile(&mut slow, 0.99));
    report(
        &mut rows,
        "lookup, all sources: p50",
        ms(p50),
        ms(s50),
        format!("{:.2}×", p50.as_secs_f64() / s50.as_secs_f64()),
        &format!("baseline: slowest source ({slow_name}) queried directly; aim ≤ 2×"),
    );
    report(
        &mut rows,
        "lookup, all sources: p99",
        ms(p99),
        ms(s99),
        format!("{:.2}×", p99.as_secs_f64() / s99.as_secs_f64()),
        "",
    );

    // 2b. The same fan-out sent straight to the connectors, concurrently, with
    // no gateway: what the sources themselves cost on this machine (they share
    // its cores with the gateway), so the gateway's own share can be read off.
    {
        let policy = creditgate_policy::Policy::parse(&bench_policy(), "bench").map_err(|e| e.to_string())?;
        let principal = policy.principal("samr").ok_or("no samr")?.clone();
        let mut clients = Vec::new();
        for grant in policy.grants_for(&principal) {
            let Some(key) = grant.subject_keys.credit_code.clone() else { continue };
            let (source, table) = (grant.dataset.source(), grant.dataset.table());
            let columns: Vec<&str> = grant.columns.iter().map(|c| c.name.as_str()).collect();
            let sql = format!("SELECT {} FROM {table} WHERE {key} = '{code}'", columns.join(", "));
            clients.push((direct_client(&small, source)?, sql));
        }
        let mut samples = Vec::with_capacity(args.lookups);
        for round in 0..=args.lookups {
            let started = Instant::now();
            let results =
                futures::future::join_all(clients.iter_mut().map(|(client, sql)| client.query_direct(sql))).await;
            if let Some(e) = results.into_iter().find_map(Result::err) {
                return Err(crate::client::flight_error_text(&e));
            }
            if round > 0 {
                samples.push(started.elapsed()); // round 0 warms up
            }
        }
        let (d50, d99) = (percentile(&mut samples, 0.5), percentile(&mut samples.clone(), 0.99));
        report(
            &mut rows,
            &format!("lookup p50 vs the same {} reads sent directly", clients.len()),
            ms(p50),
            ms(d50),
            format!("{:.2}×", p50.as_secs_f64() / d50.as_secs_f64()),
            "baseline: every source read of the lookup sent straight to the connectors, concurrently",
        );
        report(&mut rows, "… p99", ms(p99), ms(d99), format!("{:.2}×", p99.as_secs_f64() / d99.as_secs_f64()), "");
    }

    // 3. Concurrency over kept-alive mTLS connections.
    for callers in [1usize, 8, 32, 128] {
        let per = (args.lookups * 2 / callers).max(4);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..callers {
            let mut client = small.flight_client("samr")?;
            client.set_header(creditgate_engine::PURPOSE_HEADER, "supervision");
            let body = lookup_body(&code, None);
            tasks.push(tokio::spawn(async move {
                let mut errors = 0usize;
                let mut first: Option<String> = None;
                for _ in 0..per {
                    match client.lookup(&body).await {
                        Ok(doc) if doc["incomplete"] != true => {}
                        Ok(doc) => {
                            errors += 1;
                            first.get_or_insert_with(|| format!("incomplete: {}", doc["datasets"]));
                        }
                        Err(e) => {
                            errors += 1;
                            first.get_or_insert_with(|| crate::client::flight_error_text(&e));
                        }
                    }
                }
                (errors, first)
            }));
        }
        let mut errors = 0;
        for t in tasks {
            let (n, first) = t.await.map_err(|e| e.to_string())?;
            if let Some(first) = first.filter(|_| errors == 0) {
                eprintln!("first error at {callers} callers: {}", first.chars().take(600).collect::<String>());
            }
            errors += n;
        }
        let total = callers * per;
        let rate = total as f64 / started.elapsed().as_secs_f64();
        report(
            &mut rows,
            &format!("lookups/s, {callers} concurrent callers"),
            format!("{rate:.0}/s"),
            "-".into(),
            "-".into(),
            &format!("{total} lookups, {errors} errors"),
        );
    }

    // 4. New mTLS handshakes per second on the HTTP listener.
    {
        let samr = small.caller("samr").ok_or("no samr")?;
        let config =
            creditgate_certs::tls::client_config(&small.ca_file, Some((&samr.cert, &samr.key)), &[b"http/1.1"])
                .map_err(|e| e.to_string())?;
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&config));
        let addr = small.gateway.http_addr;
        let n = 300;
        let started = Instant::now();
        for _ in 0..n {
            let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let name = rustls::pki_types::ServerName::try_from(SERVER_NAME).map_err(|e| e.to_string())?;
            let _tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
        }
        let rate = n as f64 / started.elapsed().as_secs_f64();
        report(
            &mut rows,
            "new mTLS handshakes/s (sequential client)",
            format!("{rate:.0}/s"),
            "-".into(),
            "-".into(),
            "ECDSA P-256 certificates, TLS 1.3, ring",
        );
    }

    // 6a. Federation size: lookup over the first k sources.
    let names: Vec<String> = small.manifest.sources.iter().map(|s| s.name.clone()).collect();
    let policy = creditgate_policy::Policy::parse(&bench_policy(), "bench").map_err(|e| e.to_string())?;
    let principal = policy.principal("samr").ok_or("no samr")?.clone();
    let grants = policy.grants_for(&principal);
    let mut one_source = Duration::ZERO;
    for k in [1usize, 2, 4, 8] {
        let chosen: Vec<String> = grants
            .iter()
            .filter(|g| g.subject_keys.credit_code.is_some())
            .filter(|g| names.iter().take(k).any(|s| g.dataset.source() == s))
            .map(|g| g.dataset.to_string())
            .collect();
        let mut samples = lookup_latencies(&small, args.lookups / 2, Some(chosen.clone())).await?;
        let p50 = percentile(&mut samples, 0.5);
        if k == 1 {
            one_source = p50;
        }
        report(
            &mut rows,
            &format!("lookup p50, {k} source(s), {} datasets", chosen.len()),
            ms(p50),
            ms(one_source),
            format!("{:.2}×", p50.as_secs_f64() / one_source.as_secs_f64()),
            "baseline: 1 source",
        );
    }

    // 5. Audit: lookup p99 with the audit log on vs off; raw append throughput.
    let quiet = start(&args.dir.join("small-noaudit"), args.small_scale, false).await?;
    // Interleaved (one lookup on each in turn), so both see the same machine noise.
    let (mut on, mut off) = interleaved_latencies(&small, &quiet, 2 * args.lookups).await?;
    let (on50, off50) = (percentile(&mut on, 0.5), percentile(&mut off, 0.5));
    let (on99, off99) = (percentile(&mut on, 0.99), percentile(&mut off, 0.99));
    report(
        &mut rows,
        "lookup p99, audit log on vs off",
        ms(on99),
        ms(off99),
        format!("{:.2}×", on99.as_secs_f64() / off99.as_secs_f64()),
        "aim ≤ 1.2×; lookups alternate between the two gateways",
    );
    report(&mut rows, "… p50", ms(on50), ms(off50), format!("{:.2}×", on50.as_secs_f64() / off50.as_secs_f64()), "");
    quiet.stop().await?;
    {
        let dir = args.dir.join("audit-bench");
        let _ = std::fs::remove_dir_all(&dir);
        let log = Arc::new(
            creditgate_audit::AuditLog::open(&dir, creditgate_audit::AuditOptions::new(dir.join("key.pem")))
                .map_err(|e| e.to_string())?,
        );
        let threads = 32;
        let per = 200;
        let started = Instant::now();
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    for i in 0..per {
                        let record = creditgate_audit::NewRecord {
                            request_id: format!("{t}-{i}"),
                            caller: creditgate_audit::Caller {
                                fingerprint: "f".into(),
                                name: "bench".into(),
                                organization: "bench".into(),
                                role: "agency".into(),
                            },
                            frontend: creditgate_audit::Frontend::Http,
                            purpose: Some("supervision".into()),
                            legal_basis: Some("duty:supervision".into()),
                            query: creditgate_audit::RecordedQuery::Sql("SELECT 1".into()),
                            datasets: vec!["market.enterprises".into()],
                            columns: Vec::new(),
                            subject_hashes: Vec::new(),
                            row_count: Some(1),
                            sources: Vec::new(),
                            outcome: creditgate_audit::Outcome::Allowed,
                            refusal_reason: None,
                            duration_ms: 1,
                        };
                        let _ = log.append(record);
                    }
                })
            })
            .collect();
        for h in handles {
            let _ = h.join();
        }
        let elapsed = started.elapsed();
        let records = threads * per;
        report(
            &mut rows,
            "audit appends/s, 32 writers, group commit",
            format!("{:.0}/s", records as f64 / elapsed.as_secs_f64()),
            format!("{} fsyncs", log.fsync_count()),
            format!("{:.1} rec/fsync", records as f64 / log.fsync_count().max(1) as f64),
            "every append durable before it returns",
        );
        let _ = log.close();
    }
    let mut small_point = lookup_latencies(&small, args.lookups, Some(vec!["market.enterprises".into()])).await?;
    let small_p50 = percentile(&mut small_point, 0.5);

    // Revocation: the CA rewrites the CRL (`certs revoke`), the gateway
    // reloads it (what SIGHUP does; a file change is noticed within
    // `crl_check_interval_seconds`, 30 s by default): time until the caller's
    // open Flight channel and a new connection are both refused. Last, as it
    // revokes a caller of this federation.
    {
        let victim = "platform_a";
        let mut open = small.flight_client(victim)?;
        let probe = "SELECT name FROM market.enterprises LIMIT 1";
        open.query(probe).await.map_err(|e| crate::client::flight_error_text(&e))?;
        let cert = small.caller(victim).ok_or("no victim caller")?.cert.clone();
        creditgate_certs::cli::run(creditgate_certs::cli::CertsCommand::Revoke(creditgate_certs::cli::RevokeArgs {
            dir: small.dir.join("certs"),
            serial: Vec::new(),
            cert: vec![cert],
            crl_days: 30,
        }))
        .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let reload = small.gateway.reload_crls().await;
        let reloaded = started.elapsed();
        let mut old_refused = None;
        let mut new_refused = None;
        while (old_refused.is_none() || new_refused.is_none()) && started.elapsed() < Duration::from_secs(30) {
            if old_refused.is_none() && open.query(probe).await.is_err() {
                old_refused = Some(started.elapsed());
            }
            if new_refused.is_none() && small.http(victim, "GET", "/healthz", &[], None).await.is_err() {
                new_refused = Some(started.elapsed());
            }
        }
        let (Some(old), Some(new)) = (old_refused, new_refused) else {
            return Err("the revoked caller was still served 30 s after the CRL reload".to_string());
        };
        report(
            &mut rows,
            "revocation → refusal (CRL reload)",
            format!("{} / {}", ms(old), ms(new)),
            ms(reloaded),
            format!("{} closed", reload.connections_closed()),
            "open channel / new connection refused after the reload starts; baseline: the reload itself",
        );
    }
    small.stop().await?;

    // ---- Large federation: bulk streaming, policy overhead, table-size scaling.
    let big = start(&args.dir.join("large"), args.scale, true).await?;
    point_rows(&args, &big, &small_reads, &mut |name, ours, baseline, ratio, note| {
        report(&mut rows, name, ours, baseline, ratio, note)
    })
    .await?;
    let table_rows = big.manifest.table("market", "enterprises").map(|t| t.rows).unwrap_or(0);
    let mut agency = big.flight_client("credit_agency")?;
    let mut unmasked = big.flight_client("samr")?;
    let mut direct = direct_client(&big, "market")?;
    let (r1, b1, through) = timed_stream(&mut agency, "SELECT * FROM market.enterprises").await?;
    let (r2, _, direct_t) = timed_stream(&mut direct, "SELECT * FROM enterprises").await?;
    if r1 != r2 || r1 != table_rows {
        return Err(format!("row counts differ: gateway {r1}, direct {r2}, table {table_rows}"));
    }
    let through_rate = r1 as f64 / through.as_secs_f64();
    let direct_rate = r2 as f64 / direct_t.as_secs_f64();
    report(
        &mut rows,
        &format!("bulk masked SELECT *, {r1} rows"),
        format!("{:.0} rows/s", through_rate),
        format!("{:.0} rows/s", direct_rate),
        format!("{:.2}", through_rate / direct_rate),
        &format!("{:.0} MiB through the gateway; baseline: connector directly; aim ≥ 0.8", b1 as f64 / 1048576.0),
    );
    let (_, _, masked_t) = timed_stream(&mut agency, "SELECT * FROM market.enterprises").await?;
    let (_, _, plain_t) = timed_stream(&mut unmasked, "SELECT * FROM market.enterprises").await?;
    report(
        &mut rows,
        "policy overhead: masked vs unmasked SELECT *",
        format!("{:.2} s", masked_t.as_secs_f64()),
        format!("{:.2} s", plain_t.as_secs_f64()),
        format!("{:.2}×", masked_t.as_secs_f64() / plain_t.as_secs_f64()),
        "4 masked columns (name hidden, resident ID and address withheld, phone prefix); aim ≤ 1.15×",
    );
    let mut big_point = lookup_latencies(&big, args.lookups, Some(vec!["market.enterprises".into()])).await?;
    let big_p50 = percentile(&mut big_point, 0.5);
    report(
        &mut rows,
        &format!("point lookup p50, {table_rows} vs small table"),
        ms(big_p50),
        ms(small_p50),
        format!("{:.2}×", big_p50.as_secs_f64() / small_p50.as_secs_f64()),
        "pushdown: should not grow with table size",
    );

    // Peak memory of a gateway process streaming the whole table.
    {
        let mut config = big.gateway_config.clone();
        config.state.dir = args.dir.join("large-process-state");
        config.server.public_listen = None;
        let path = args.dir.join("large-process-gateway.toml");
        std::fs::write(&path, toml::to_string(&config).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let log_path = args.dir.join("large-process-gateway.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut child = std::process::Command::new(exe)
            .args(["gateway", "--config"])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let flight = std::io::BufRead::lines(std::io::BufReader::new(stdout))
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("flight sql:").map(|a| a.trim().to_string()))
            .ok_or("the gateway did not start")?;
        let before = peak_rss_kib(child.id()).unwrap_or(0);
        let who = big.caller("credit_agency").ok_or("no caller")?;
        let mut client = FlightClient::connect(&flight, SERVER_NAME, &big.identity_of(who))?;
        client.set_header(creditgate_engine::PURPOSE_HEADER, "credit_report");
        let streamed = timed_stream(&mut client, "SELECT * FROM market.enterprises").await;
        let peak = peak_rss_kib(child.id()).unwrap_or(0);
        let exited = child.try_wait().ok().flatten();
        let _ = child.kill();
        let _ = child.wait();
        let (_, bytes, _) = streamed.map_err(|e| {
            format!(
                "{e} (gateway process {}; its log: {})",
                exited.map_or("running".to_string(), |s| s.to_string()),
                log_path.display()
            )
        })?;
        report(
            &mut rows,
            "gateway peak RSS while streaming the table",
            format!("{:.0} MiB", peak as f64 / 1024.0),
            format!("{:.0} MiB result", bytes as f64 / 1048576.0),
            format!("{:.2}", peak as f64 * 1024.0 / bytes.max(1) as f64),
            &format!("RSS before the query: {:.0} MiB; aim < 256 MiB for 1 GB", before as f64 / 1024.0),
        );
    }
    big.stop().await?;

    write_report(&args, &rows)
}

fn write_report(args: &BenchArgs, rows: &[Row]) -> Result<(), String> {
    let mut text = format!(
        "# creditgate benchmarks\n\nMeasured by `creditgate bench` ({}{}, scale {} and {}), {}.\n\
         Machine: {}.\nEvery ratio compares two measurements made one after the other in the same run.\n\n\
         | benchmark | creditgate | baseline | ratio | note |\n|---|---:|---:|---:|---|\n",
        env!("CARGO_PKG_VERSION"),
        match (args.prepared_only, args.state_only, args.points_only) {
            (true, _, _) => ", --prepared-only: the prepared-statement rows alone",
            (false, true, _) => ", --state-only: the shared-state rows alone",
            (false, false, true) => ", --points-only: the shared-state, prepared, lookup and point-read rows",
            (false, false, false) => "",
        },
        args.small_scale,
        args.scale,
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine()
    );
    for r in rows {
        text.push_str(&format!("| {} | {} | {} | {} | {} |\n", r.name, r.ours, r.baseline, r.ratio, r.note));
    }
    std::fs::write(&args.out, text).map_err(|e| format!("{}: {e}", args.out.display()))?;
    println!("\nwritten to {}", args.out.display());
    Ok(())
}
