//! The shared-state rows of `creditgate bench`: a lookup with the audit,
//! consents and quotas in PostgreSQL against the same lookup with them in
//! the state directory (interleaved, one run), and audit appends per second
//! into PostgreSQL with group commit against the file log under the same
//! load. Runs in a scratch schema, dropped at the end; skipped with a note
//! when no PostgreSQL answers at the URL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use creditgate_audit::AuditStore as _;
use creditgate_engine::Engine;

use super::{lookup_body, ms, percentile};
use crate::client::{ClientIdentity, FlightClient};
use crate::demo::{Lab, SERVER_NAME};

/// Concurrent appenders of the audit-append comparison.
const APPENDERS: usize = 32;

/// A schema for this run, dropped when it goes.
struct Scratch {
    url: String,
    schema: String,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let (url, sql) = (self.url.clone(), format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async move {
                if let Ok((client, connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                    tokio::spawn(connection);
                    let _ = client.batch_execute(&sql).await;
                }
            });
        })
        .join();
    }
}

/// Adds the shared-state rows, or one row saying why they were skipped.
pub(super) async fn rows(
    lab: &Lab,
    url: &str,
    lookups: usize,
    appends: usize,
    report: &mut dyn FnMut(&str, String, String, String, &str),
) -> Result<(), String> {
    let scratch = Scratch { url: url.to_string(), schema: format!("creditgate_bench_{}", std::process::id()) };
    let mut settings = creditgate_state::PgSettings::new(url, "bench-1");
    settings.schema = scratch.schema.clone();
    if let Err(e) = creditgate_state::PgState::connect_reader(settings.clone()).await
        && e.is_unavailable()
    {
        report(
            "shared state (PostgreSQL)",
            "skipped".into(),
            "".into(),
            "".into(),
            &format!("no PostgreSQL at {url}: {e}"),
        );
        return Ok(());
    }

    // A second gateway on the same sources, its state in PostgreSQL.
    let mut config = lab.gateway_config.clone();
    config.state.dir = lab.dir.join("state-postgres");
    config.state.secret_file = Some(lab.gateway_config.state.secret_path());
    config.state.backend = creditgate_engine::config::StateBackend::Postgres;
    config.state.url = Some(url.to_string());
    config.state.schema = Some(scratch.schema.clone());
    config.state.replica_id = Some("bench-gw".to_string());
    config.server.public_listen = None;
    let engine = Engine::new(config).await.map_err(|e| e.to_string())?;
    let running = creditgate_server::start(Arc::clone(&engine)).await.map_err(|e| e.to_string())?;
    let samr = lab.caller("samr").ok_or("no samr")?;
    let who = ClientIdentity { ca: &lab.ca_file, cert: Some((&samr.cert, &samr.key)) };
    let mut shared = FlightClient::connect(&running.flight_addr.to_string(), SERVER_NAME, &who)?;
    shared.set_header(creditgate_engine::PURPOSE_HEADER, "supervision");
    let mut local = lab.flight_client("samr")?;
    local.set_header(creditgate_engine::PURPOSE_HEADER, "supervision");
    let body = lookup_body(&lab.manifest.featured.enterprise_credit_code, None);
    let flight = |e: arrow_flight::error::FlightError| crate::client::flight_error_text(&e);
    for client in [&mut shared, &mut local] {
        client.lookup(&body).await.map_err(flight)?; // warm-up
    }
    let (mut on_pg, mut on_files) = (Vec::with_capacity(lookups), Vec::with_capacity(lookups));
    for _ in 0..lookups {
        for (client, samples) in [(&mut shared, &mut on_pg), (&mut local, &mut on_files)] {
            let started = Instant::now();
            let doc = client.lookup(&body).await.map_err(flight)?;
            samples.push(started.elapsed());
            if doc["incomplete"] == true {
                return Err(format!("incomplete lookup during the benchmark: {doc}"));
            }
        }
    }
    let (pg50, local50) = (percentile(&mut on_pg, 0.5), percentile(&mut on_files, 0.5));
    report(
        "lookup p50, state in PostgreSQL",
        ms(pg50),
        ms(local50),
        format!("{:.2}×", pg50.as_secs_f64() / local50.as_secs_f64()),
        "baseline: the same lookup, state in the state directory (interleaved); aim ≤ 1.3×",
    );
    running.stop().await.map_err(|e| e.to_string())?;
    drop(engine);

    // Audit appends: APPENDERS threads at once, into PostgreSQL and into files.
    settings.replica = "bench-appends".to_string();
    let state = creditgate_state::PgState::connect(settings).await.map_err(|e| e.to_string())?;
    let options = creditgate_state::PgAuditOptions {
        signing_key_file: lab.dir.join("bench-appends.key"),
        checkpoint_every_records: creditgate_audit::DEFAULT_CHECKPOINT_EVERY_RECORDS,
        checkpoint_every: creditgate_audit::DEFAULT_CHECKPOINT_EVERY,
        retention_days: creditgate_audit::DEFAULT_RETENTION_DAYS,
    };
    let pg = Arc::new(creditgate_state::PgAuditLog::open(state, options).await.map_err(|e| e.to_string())?);
    let files_dir = lab.dir.join("bench-appends-audit");
    let _ = std::fs::remove_dir_all(&files_dir);
    let files = Arc::new(
        creditgate_audit::AuditLog::open(
            &files_dir,
            creditgate_audit::AuditOptions::new(lab.dir.join("bench-appends-files.key")),
        )
        .map_err(|e| e.to_string())?,
    );
    let per_thread = (appends / APPENDERS).max(1);
    let (pg_log, files_log) = (Arc::clone(&pg), Arc::clone(&files));
    let (pg_time, files_time) = tokio::task::spawn_blocking(move || {
        let pg_time = hammer(&*pg_log, per_thread)?;
        let files_time = hammer(&*files_log, per_thread)?;
        Ok::<_, String>((pg_time, files_time))
    })
    .await
    .map_err(|e| e.to_string())??;
    let total = (per_thread * APPENDERS) as f64;
    let (pg_rate, files_rate) = (total / pg_time.as_secs_f64(), total / files_time.as_secs_f64());
    let per_commit = total / pg.commit_count().max(1) as f64;
    report(
        &format!("audit appends/s, {APPENDERS} appenders, PostgreSQL"),
        format!("{pg_rate:.0}/s"),
        format!("{files_rate:.0}/s"),
        format!("{:.2}×", pg_rate / files_rate),
        &format!(
            "baseline: the file log (fsync, group commit) under the same load; {per_commit:.1} records per \
             PostgreSQL transaction ({} commits)",
            pg.commit_count()
        ),
    );
    pg.close().map_err(|e| e.to_string())?;
    files.close().map_err(|e| e.to_string())?;
    drop(scratch);
    Ok(())
}

/// `per_thread` appends from each of [`APPENDERS`] threads at once; the wall time.
fn hammer(log: &dyn creditgate_audit::AuditStore, per_thread: usize) -> Result<Duration, String> {
    let started = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..APPENDERS)
            .map(|t| {
                s.spawn(move || {
                    for i in 0..per_thread {
                        log.append_many(vec![sample(t, i)]).map_err(|e| e.to_string())?;
                    }
                    Ok::<_, String>(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().map_err(|_| "an appender panicked".to_string())?)
    })?;
    Ok(started.elapsed())
}

fn sample(t: usize, i: usize) -> creditgate_audit::NewRecord {
    use creditgate_audit::{Caller, Frontend, NewRecord, Outcome, RecordedQuery};
    NewRecord {
        request_id: format!("bench-{t}-{i}"),
        caller: Caller {
            fingerprint: format!("{t:064x}"),
            name: "bench".into(),
            organization: "bench".into(),
            role: "agency".into(),
        },
        frontend: Frontend::Flight,
        purpose: Some("supervision".into()),
        legal_basis: Some("duty:supervision".into()),
        query: RecordedQuery::Sql("SELECT name FROM market.enterprises WHERE credit_code = :p1".into()),
        datasets: vec!["market.enterprises".into()],
        columns: Vec::new(),
        subject_hashes: Vec::new(),
        row_count: Some(1),
        sources: Vec::new(),
        outcome: Outcome::Allowed,
        refusal_reason: None,
        duration_ms: 1,
    }
}
