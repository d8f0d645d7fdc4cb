//! Crash safety of the audit log: kill -9 the gateway process during a burst,
//! restart it on the same state directory, verify the chain, and find a record
//! for every request whose response was received.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use creditgate_tooling::demo::{Lab, LabOptions, SERVER_NAME};

fn start_gateway(config: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_creditgate"))
        .args(["gateway", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gateway");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut http = None;
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(addr) = line.strip_prefix("http:") {
            http = Some(addr.trim().to_string());
            break;
        }
    }
    (child, http.expect("the gateway printed its HTTP address"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_burst_loses_no_released_record() {
    creditgate_certs::install_default_provider();
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = Lab::start(LabOptions::new(tmp.path())).await.expect("lab");
    // A second gateway, as a process, on its own state directory.
    let mut config = lab.gateway_config.clone();
    config.state.dir = tmp.path().join("crash-state");
    config.server.public_listen = None;
    let config_path = tmp.path().join("crash-gateway.toml");
    std::fs::write(&config_path, toml::to_string(&config).expect("toml")).expect("write config");
    let (mut child, http) = start_gateway(&config_path);

    let samr = lab.caller("samr").expect("samr").clone();
    let ca = lab.ca_file.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
    for i in 0..60u32 {
        let tx = tx.clone();
        let (http, ca, cert, key) = (http.clone(), ca.clone(), samr.cert.clone(), samr.key.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(u64::from(i) * 10)).await;
            let who = creditgate_tooling::client::ClientIdentity { ca: &ca, cert: Some((&cert, &key)) };
            let body =
                serde_json::json!({"sql": format!("SELECT name FROM market.enterprises LIMIT {}", i + 1)}).to_string();
            let response = creditgate_tooling::client::http_request(
                &http,
                SERVER_NAME,
                &who,
                "POST",
                "/v1/query",
                &[("x-creditgate-purpose", "supervision")],
                Some(body),
            )
            .await;
            // A request id comes back only with a released response.
            let id = response.ok().filter(|r| r.status == 200).and_then(|r| r.request_id);
            let _ = tx.send(id);
        });
    }
    drop(tx);
    // Kill -9 in the middle of the burst: after a few responses, before the rest.
    let mut released = Vec::new();
    let mut finished = 0;
    while released.len() < 8 {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(id)) => {
                finished += 1;
                released.extend(id);
            }
            _ => break,
        }
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    while let Some(id) = rx.recv().await {
        finished += 1;
        released.extend(id);
    }
    assert!(finished == 60 && released.len() < 60, "the kill happened mid-burst ({} of 60 answered)", released.len());

    // Restart on the same state: a torn tail is repaired, the chain verifies.
    let (mut child, _) = start_gateway(&config_path);
    child.kill().expect("stop the restarted gateway");
    let _ = child.wait();
    let audit_dir = tmp.path().join("crash-state").join("audit");
    let report = creditgate_audit::verify(&audit_dir, None);
    assert!(report.is_ok(), "{}", report.message());
    let ids: Vec<String> = std::fs::read_dir(&audit_dir)
        .expect("audit dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("audit-"))
        .flat_map(|e| {
            std::fs::read_to_string(e.path()).expect("segment").lines().map(str::to_string).collect::<Vec<_>>()
        })
        .map(|line| creditgate_audit::AuditRecord::from_line(line.as_bytes()).expect("record").request_id)
        .collect();
    assert!(!released.is_empty(), "some responses were released before the kill");
    for id in &released {
        assert!(ids.contains(id), "request {id} was answered but has no audit record");
    }
    lab.stop().await.expect("stop");
}
