//! `creditgate grade`: grades a list of credit codes through a running
//! gateway (`POST /v1/grades` over mTLS), with a progress bar, and writes
//! the NDJSON answer (subjects with risk warnings first, the summary last).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// `creditgate grade …`.
#[derive(Debug, clap::Args)]
pub struct GradeArgs {
    /// File of credit codes, one per line (blank lines and `#` comments ignored).
    #[arg(long)]
    pub codes: PathBuf,
    /// The gateway's mTLS HTTP listener, `host:port`.
    #[arg(long)]
    pub gateway: String,
    /// The name the gateway's certificate is checked against.
    #[arg(long, default_value = "localhost")]
    pub server_name: String,
    /// CA certificate that signs the gateway (PEM).
    #[arg(long)]
    pub ca: PathBuf,
    /// The caller's certificate (PEM).
    #[arg(long)]
    pub cert: PathBuf,
    /// The caller's private key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// The purpose code of the grading.
    #[arg(long)]
    pub purpose: String,
    /// Write the NDJSON answer here (written whole when the batch is done); stdout when absent.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Reads the codes of `file`: one per line, trimmed; blank lines and `#` comments skipped.
pub fn read_codes(file: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect())
}

/// Runs `creditgate grade`.
pub async fn run(args: GradeArgs) -> Result<(), String> {
    let codes = read_codes(&args.codes)?;
    if codes.is_empty() {
        return Err(format!("{}: no credit codes in the file", args.codes.display()));
    }
    if codes.len() > creditgate_ops::grade::MAX_BATCH {
        return Err(format!(
            "{}: {} codes; a batch takes at most {} (split the file)",
            args.codes.display(),
            codes.len(),
            creditgate_ops::grade::MAX_BATCH
        ));
    }
    let distinct: std::collections::BTreeSet<&String> = codes.iter().collect();
    let who = crate::client::ClientIdentity { ca: &args.ca, cert: Some((&args.cert, &args.key)) };
    let mut sender = crate::client::http1_connect(&args.gateway, &args.server_name, &who).await?;
    let body = serde_json::json!({"credit_codes": codes, "purpose": args.purpose}).to_string();
    let request = http::Request::builder()
        .method("POST")
        .uri("/v1/grades")
        .header("host", args.server_name.as_str())
        .header("content-type", "application/json")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| format!("HTTP: {e}"))?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let text = body.collect().await.map_err(|e| format!("HTTP body: {e}"))?.to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&text).unwrap_or_default();
        let message = json["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&text).into_owned());
        return Err(format!("the gateway refused the batch ({status}): {message}"));
    }
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = ProgressBar::with_draw_target(Some(distinct.len() as u64), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}") {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut out = Vec::new();
    let mut pending = Vec::new();
    let mut summary = serde_json::Value::Null;
    let mut progress_trailer = None;
    let mut got = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("the batch stopped: {e}"))?;
        if let Some(trailers) = frame.trailers_ref() {
            progress_trailer = trailers.get("creditgate-progress").and_then(|v| v.to_str().ok()).map(str::to_string);
            continue;
        }
        let Some(data) = frame.data_ref() else { continue };
        pending.extend_from_slice(data);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let value: serde_json::Value =
                serde_json::from_slice(&line).map_err(|e| format!("a line of the answer is not JSON: {e}"))?;
            if value.get("summary").is_some() {
                summary = value;
            } else if let Some(progress) = value.get("progress") {
                // Where the batch is while lines without warnings are held back; not part of the answer.
                bar.set_position(progress["done"].as_u64().unwrap_or(0).max(bar.position()));
                continue;
            } else {
                got += 1;
                bar.set_position(got.max(bar.position()));
                if value["warnings"].as_array().is_some_and(|w| !w.is_empty()) {
                    bar.set_message(format!("warnings: {}", value["subject"]["id"].as_str().unwrap_or("")));
                }
            }
            out.extend_from_slice(&line);
        }
    }
    bar.finish_and_clear();
    if summary.is_null() {
        return Err("the batch ended without its summary: the answer is incomplete and was not written".to_string());
    }
    match &args.out {
        Some(path) => creditgate_files::write_atomic(
            path,
            &out,
            creditgate_files::Access::Private,
            creditgate_files::Existing::Replace,
        )
        .map_err(|e| format!("{}: {e}", path.display()))?,
        None => {
            use std::io::Write as _;
            let _ = std::io::stdout().lock().write_all(&out);
        }
    }
    let s = &summary["summary"];
    eprintln!(
        "graded {} of {} ({} complete, {} incomplete, {} refused; {} with risk warnings, listed first){}",
        s["done"],
        s["total"],
        s["complete"],
        s["incomplete"],
        s["refused"],
        s["with_warnings"],
        progress_trailer.map(|t| format!(" — {t}")).unwrap_or_default()
    );
    Ok(())
}
