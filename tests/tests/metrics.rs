//! `/metrics` counts policy refusals as denials, not only refused
//! certificates. (Remote reads stopped early are counted as `cancelled`;
//! `faults.rs` checks that with paused readers.)

use creditgate_tests::start_lab;
use creditgate_tooling::demo::Lab;

/// The value of the Prometheus sample `name{labels}` (0 when absent).
async fn sample(lab: &Lab, name_and_labels: &str) -> f64 {
    let response = lab.http("samr", "GET", "/metrics", &[], None).await.expect("metrics");
    assert_eq!(response.status, 200);
    String::from_utf8_lossy(&response.body)
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels).and_then(|rest| rest.trim().parse::<f64>().ok()))
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_refusals_count_as_denials() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;

    // A purpose the credit agency does not hold: a policy refusal, counted as a denial.
    let denials = "creditgate_denials_total{frontend=\"http\",code=\"CG-POL-001\"}";
    let before = sample(&lab, denials).await;
    let refused = lab
        .http(
            "credit_agency",
            "POST",
            "/v1/query",
            &[("x-creditgate-purpose", "marketing")],
            Some(serde_json::json!({"sql": "SELECT name FROM market.enterprises"}).to_string()),
        )
        .await
        .expect("http");
    assert_eq!(refused.status, 403);
    let body: serde_json::Value = serde_json::from_slice(&refused.body).expect("json");
    assert_eq!(body["error"]["code"], "CG-POL-001", "{body}");
    assert_eq!(sample(&lab, denials).await, before + 1.0, "{denials}");

    lab.stop().await.expect("stop");
}
