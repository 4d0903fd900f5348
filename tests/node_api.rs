//! The node's HTTP API as clients see it: JSON status and peers, JSON errors
//! for unknown paths, Prometheus metrics, and the bearer token when the API
//! listens beyond loopback. Real processes on loopback.

mod common;

use common::NodeOpts;
use serde_json::Value;

#[tokio::test]
async fn status_and_peers_are_json_and_unknown_paths_get_a_json_404() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeOpts::new("api", dir.path())
        .arg("--market")
        .arg("ETH-USD")
        .start();
    let status = node.ready().await;
    assert!(status.peer_id.starts_with("12D3Koo"));
    assert_eq!(
        status.listen_addrs,
        vec![format!("{}/p2p/{}", node.addr(), status.peer_id)]
    );
    assert_eq!(status.markets, vec!["ETH-USD".to_string()]);
    assert_eq!(status.peer_count, 0);
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(node.peers().await, Some(Vec::new()));

    let response = node
        .http()
        .get(node.url("/api/v1/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/api/v1/nothing"));

    let response = node
        .http()
        .delete(node.url("/api/v1/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");

    let stdout = node.stdout();
    for line in [
        "peer id:",
        "data dir:",
        "api:       http://",
        "listening: /ip4/127.0.0.1",
    ] {
        assert!(stdout.contains(line), "stdout lacks {line:?}:\n{stdout}");
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_libp2p_and_node_counters() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeOpts::new("metrics", dir.path()).start();
    node.ready().await;
    let response = node.http().get(node.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for metric in [
        "libp2p_swarm_",
        "gossipsub_",
        "peerbook_net_connected_peers",
    ] {
        assert!(text.contains(metric), "no {metric} in\n{text}");
    }
    assert!(text.trim_end().ends_with("# EOF"));
}

#[tokio::test]
async fn a_token_guards_the_api_beyond_loopback_but_not_the_page_or_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = NodeOpts::new("guarded", dir.path()).env("PEERBOOK_API_TOKEN", "s3cret");
    opts.api_host = "0.0.0.0".into();
    let node = opts.start();
    let http = node.http();

    let ready = common::eventually(
        "the API to answer",
        || node.output(),
        || async {
            http.get(node.url("/metrics"))
                .send()
                .await
                .ok()
                .filter(|r| r.status() == 200)
        },
    );
    ready.await;

    let response = http.get(node.url("/api/v1/status")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    let response = http
        .get(node.url("/api/v1/peers"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let response = http
        .get(node.url("/api/v1/status"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    assert_eq!(http.get(node.url("/")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn sigint_stops_the_node_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeOpts::new("interrupted", dir.path()).start();
    node.ready().await;
    let status = node.stop_with(libc::SIGINT);
    assert!(status.success(), "{status}\n{}", node.output());
    assert!(node.stderr().contains("SIGINT received; shutting down"));
    assert!(node.stderr().contains("saved the known peers"));
}
