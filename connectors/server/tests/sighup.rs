//! SIGHUP makes the connector read its CRLs again (a test binary of its own:
//! the signal goes to the whole process).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use common::{assert_refused_on_new_connection, lab, query, until_refused};
use creditgate_certs::revocation::ReloadTrigger;

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_crls() {
    // An interval the test never reaches: only the signal can reload.
    let lab = lab(24 * 3600).await;
    let mut revoked = lab.client(&lab.gateway_1);
    let mut other = lab.client(&lab.gateway_2);
    assert_eq!(query(&mut revoked).await.unwrap(), 3);
    assert_eq!(query(&mut other).await.unwrap(), 3);

    lab.revoke(std::slice::from_ref(&lab.gateway_1.serial));
    // Negative control: a changed file alone does nothing before the interval.
    assert_eq!(query(&mut revoked).await.unwrap(), 3);

    let sent = Instant::now();
    let status = std::process::Command::new("kill").args(["-HUP", &std::process::id().to_string()]).status().unwrap();
    assert!(status.success());
    let (error, took) = until_refused(&mut revoked, sent).await;
    println!("connector: SIGHUP to refusal on an open Flight connection: {took:?} ({error})");
    assert_refused_on_new_connection(&lab, &lab.gateway_1).await;
    assert_eq!(query(&mut other).await.unwrap(), 3, "the other certificate is still served");
    let report = lab.running.trust().last_report().unwrap();
    assert_eq!(report.trigger, ReloadTrigger::OnDemand, "{report}");
    assert_eq!(report.connections_closed(), 1, "{report}");
}
