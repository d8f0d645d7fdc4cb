//! The gateway checks each connector's own identity, not only its host name:
//! every demo connector is `localhost`, signed by the same CA, so a gateway
//! told to expect the court's connector at the market's address must refuse
//! what the market's connector answers.

use creditgate_engine::Engine as Gateway;
use creditgate_tests::start_lab;
use creditgate_tooling::client::{FlightClient, flight_error_text};
use creditgate_tooling::demo::{SERVER_NAME, connector_identity};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_presenting_another_identity_is_refused_and_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let sql = "SELECT name FROM market.enterprises LIMIT 1";
    // Positive control: the lab's gateway expects each connector's own identity and is served.
    let mut samr = lab.flight_client("samr").expect("client");
    assert_eq!(samr.query(sql).await.expect("served").iter().map(|b| b.num_rows()).sum::<usize>(), 1);

    // A second gateway over the same connectors, expecting the court's identity at the market's address.
    let mut config = lab.gateway_config.clone();
    let market = config.connectors.iter_mut().find(|c| c.name == "market").expect("market connector");
    assert_eq!(market.identity.as_deref(), Some(connector_identity("market").as_str()));
    market.identity = Some(connector_identity("court"));
    config.state.dir = tmp.path().join("second-state");
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
    config.server.flight_listen = any;
    config.server.http_listen = any;
    config.server.public_listen = None;
    let gateway = Gateway::new(config).await.expect("second gateway");
    let running = creditgate_server::start(gateway).await.expect("start");

    let caller = lab.caller("samr").expect("samr");
    let mut client =
        FlightClient::connect(&running.flight_addr.to_string(), SERVER_NAME, &lab.identity_of(caller)).expect("client");
    client.set_header(creditgate_engine::PURPOSE_HEADER, &caller.purposes[0]);
    let error = client.query(sql).await.expect_err("the market's connector is not the court's");
    let text = flight_error_text(&error);
    assert!(text.contains("market"), "the failing source is named: {text}");
    // The other sources are unaffected by the mismatch.
    let rows = client.query("SELECT case_no FROM court.dishonest_debtors LIMIT 1").await.expect("court still served");
    assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 1);

    running.stop().await.expect("stop second gateway");
    lab.stop().await.expect("stop");
}
