//! The connector stops serving a revoked gateway certificate while it runs:
//! a real Flight SQL client against a real connector; the CRL file changes,
//! the connector notices within its check interval, closes the revoked
//! certificate's open connection and refuses new ones; another gateway
//! certificate is served throughout.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{assert_refused_on_new_connection, assert_refused_with, lab, query, until_refused};
use creditgate_certs::revocation::ReloadTrigger;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_gateway_certificate_is_refused_within_the_check_interval() {
    let lab = lab(1).await;
    let revoked_config = lab.client_config(&lab.gateway_1);
    let mut revoked = lab.client_with(Arc::clone(&revoked_config));
    let mut other = lab.client(&lab.gateway_2);
    assert_eq!(query(&mut revoked).await.unwrap(), 3);
    assert_eq!(query(&mut other).await.unwrap(), 3);
    assert_eq!(lab.running.trust().counters().open_connections, 2);

    lab.revoke(std::slice::from_ref(&lab.gateway_1.serial));
    let (error, took) = until_refused(&mut revoked, Instant::now()).await;
    println!("connector: revocation to refusal on an open Flight connection (check interval 1 s): {took:?} ({error})");

    // The connector closed the open connection; the client's next attempts
    // are new connections, refused at the handshake (also when they try to
    // resume the first connection's TLS session), as is any other.
    query(&mut revoked).await.expect_err("still refused");
    assert_refused_with(&lab, revoked_config).await;
    assert_refused_on_new_connection(&lab, &lab.gateway_1).await;

    // Control: the other gateway certificate, same identity, is unaffected on
    // its open connection and on a new one.
    assert_eq!(query(&mut other).await.unwrap(), 3);
    assert_eq!(query(&mut lab.client(&lab.gateway_2)).await.unwrap(), 3);

    let trust = lab.running.trust();
    let report = trust.last_report().unwrap();
    assert_eq!(report.trigger, ReloadTrigger::FileChanged, "{report}");
    assert!(report.accepted(), "{report}");
    assert_eq!(report.revoked_serials(), 1);
    let counters = trust.counters();
    assert_eq!(counters.connections_closed_revoked, 1, "{counters:?}");
    assert!(counters.handshakes_refused_revoked >= 2, "{counters:?}");
    assert_eq!(counters.reloads_ok, 1, "{counters:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_crl_file_keeps_the_previous_crl_at_the_connector() {
    // Reloads on demand only (the watcher would race with them).
    let lab = lab(24 * 3600).await;
    lab.revoke(std::slice::from_ref(&lab.gateway_1.serial));
    let report = lab.running.trust().reload_async().await;
    assert!(report.accepted(), "{report}");
    assert_refused_on_new_connection(&lab, &lab.gateway_1).await;

    common::replace(&lab.crl, "not a CRL\n");
    let report = lab.running.trust().reload_async().await;
    assert!(!report.accepted(), "{report}");
    assert_eq!(lab.running.trust().counters().reloads_rejected, 1);
    assert_refused_on_new_connection(&lab, &lab.gateway_1).await;
    assert_eq!(query(&mut lab.client(&lab.gateway_2)).await.unwrap(), 3, "control");
}
