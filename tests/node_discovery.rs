//! Nodes find each other: through a bootstrap node and the DHT, and again
//! after a restart from the peers they saved. Real processes on loopback.

mod common;

use common::{eventually, Node, NodeOpts};
use tempfile::TempDir;

/// A, then B and C bootstrapping to A; C is given A's address without its
/// peer id and is never told about B. Returns the nodes and their peer ids.
async fn start_three(dirs: &[TempDir; 3]) -> ([Node; 3], [String; 3]) {
    let a = NodeOpts::new("A", dirs[0].path()).start();
    let a_id = a.ready().await.peer_id;
    let b = NodeOpts::new("B", dirs[1].path())
        .bootstrap(format!("{}/p2p/{a_id}", a.addr()))
        .start();
    let b_id = b.ready().await.peer_id;
    let c = NodeOpts::new("C", dirs[2].path())
        .bootstrap(a.addr())
        .start();
    let c_id = c.ready().await.peer_id;
    ([a, b, c], [a_id, b_id, c_id])
}

fn dirs() -> [TempDir; 3] {
    [0, 1, 2].map(|_| tempfile::tempdir().expect("tempdir"))
}

#[tokio::test]
async fn a_node_bootstrapped_without_peer_id_finds_an_untold_peer_through_the_dht() {
    let dirs = dirs();
    let ([a, b, c], [a_id, b_id, _]) = start_three(&dirs).await;
    b.connected_to(&a_id).await;
    c.connected_to(&a_id).await;
    // C learned A's peer id from the handshake; B it only knows from the DHT.
    c.connected_to(&b_id).await;
    let peers = c.peers().await.expect("peers of C");
    let b_entry = peers
        .iter()
        .find(|p| p.peer_id == b_id)
        .expect("B in C's peers");
    assert!(
        b_entry.addresses.contains(&b.addr()),
        "C knows B's listen address: {b_entry:?}"
    );
    assert!(a.status().await.is_some());
}

#[tokio::test]
async fn a_restarted_node_reconnects_from_its_saved_peers_with_the_same_identity() {
    let dirs = dirs();
    let ([a, b, mut c], [a_id, b_id, c_id]) = start_three(&dirs).await;
    c.connected_to(&a_id).await;
    c.connected_to(&b_id).await;

    let status = c.stop();
    assert!(
        status.success(),
        "C exits cleanly on SIGTERM: {status}\n{}",
        c.output()
    );
    assert!(
        c.stderr().contains("SIGTERM received"),
        "C says why it stops\n{}",
        c.output()
    );

    // No bootstrap, no mDNS, and new ports: A and B cannot reach C at its
    // old address, so only C dialling its saved peers can reconnect them.
    let c2 = NodeOpts::new("C again", dirs[2].path()).start();
    let again = c2.ready().await;
    assert_eq!(again.peer_id, c_id, "the identity is reused");
    c2.connected_to(&a_id).await;
    c2.connected_to(&b_id).await;
    let what = "A and B to see C again";
    eventually(
        what,
        || format!("{}{}", a.output(), b.output()),
        || async {
            let a_sees = a
                .peers()
                .await?
                .iter()
                .any(|p| p.peer_id == c_id && p.connected);
            let b_sees = b
                .peers()
                .await?
                .iter()
                .any(|p| p.peer_id == c_id && p.connected);
            (a_sees && b_sees).then_some(())
        },
    )
    .await;
}
