//! The network layer through its library API, several instances in one
//! process on loopback: gossip reaches every node once validated, rejected
//! gossip gets its sender graylisted, and requests get their responses.

mod common;

use std::time::Duration;

use common::{eventually, DEADLINE};
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use peerbook::net::{
    self, gossip, NetConfig, NetHandle, NetInput, Proto, RequestFailure, RequestTag, Verdict,
};
use peerbook::store::Store;
use prometheus_client::registry::Registry;
use tempfile::TempDir;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const TOPIC: &str = "peerbook/test/market/X";

struct Instance {
    handle: NetHandle,
    registry: Registry,
    events: Option<mpsc::Receiver<NetInput>>,
    task: JoinHandle<()>,
    addr: Multiaddr,
    _dir: TempDir,
}

impl Instance {
    fn id(&self) -> PeerId {
        self.handle.local_peer_id()
    }

    /// A counter or gauge of the instance's registry.
    fn metric(&self, name: &str) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("encode");
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    fn take_events(&mut self) -> mpsc::Receiver<NetInput> {
        self.events.take().expect("events taken once")
    }

    async fn stop(self) {
        self.handle.shutdown().await;
        let _ = self.task.await;
    }
}

async fn start(config: impl FnOnce(&mut NetConfig)) -> Instance {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let mut cfg = NetConfig::new(
        vec!["/ip4/127.0.0.1/tcp/0".parse().expect("addr")],
        vec![TOPIC.to_string()],
    );
    config(&mut cfg);
    let mut registry = Registry::default();
    let (handle, events, task) =
        net::spawn(cfg, Keypair::generate_ed25519(), store, &mut registry).expect("spawn");
    let mut addrs = handle.listen_addrs();
    let addr = eventually("a listen address", String::new, || {
        let first = addrs.borrow_and_update().first().cloned();
        async move { first }
    })
    .await;
    Instance {
        handle,
        registry,
        events: Some(events),
        task,
        addr,
        _dir: dir,
    }
}

async fn connect(from: &Instance, to: &Instance) {
    let target = to.addr.clone().with_p2p(to.id()).expect("p2p");
    from.handle.dial(target).await.expect("dial");
    let to_id = to.id();
    eventually("a connection", String::new, || async {
        from.handle
            .peers()
            .await
            .iter()
            .any(|p| p.peer_id == to_id && p.connected)
            .then_some(())
    })
    .await;
}

/// Report `verdict` for every gossip message and pass (source, data) on.
fn judge(
    mut events: mpsc::Receiver<NetInput>,
    handle: NetHandle,
    verdict: Verdict,
) -> mpsc::UnboundedReceiver<(PeerId, String, Vec<u8>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let NetInput::Gossip {
                propagation_source,
                source,
                message_id,
                topic,
                data,
            } = event
            {
                handle
                    .report_validation(message_id, propagation_source, verdict)
                    .await;
                let _ = tx.send((source, topic, data));
            }
        }
    });
    rx
}

#[tokio::test]
async fn gossip_published_on_one_node_reaches_every_other_node_with_its_author() {
    let mut a = start(|_| {}).await;
    let mut b = start(|_| {}).await;
    let mut c = start(|_| {}).await;
    // A line: A - B - C (discovery may add A - C; the message must arrive either way).
    connect(&b, &a).await;
    connect(&c, &b).await;

    let _a_gossip = judge(a.take_events(), a.handle.clone(), Verdict::Accept);
    let mut at_b = judge(b.take_events(), b.handle.clone(), Verdict::Accept);
    let mut at_c = judge(c.take_events(), c.handle.clone(), Verdict::Accept);

    // Publish until both have received something: the first publications may
    // go out before the subscriptions have been exchanged.
    let mut got_b = None;
    let mut got_c = None;
    let started = std::time::Instant::now();
    let mut n = 0;
    while got_b.is_none() || got_c.is_none() {
        assert!(
            started.elapsed() < DEADLINE,
            "gossip did not arrive: b={got_b:?} c={got_c:?}"
        );
        a.handle
            .publish(TOPIC.to_string(), format!("hello {n}").into_bytes())
            .await;
        n += 1;
        let wait = tokio::time::sleep(Duration::from_millis(300));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                Some(m) = at_b.recv(), if got_b.is_none() => got_b = Some(m),
                Some(m) = at_c.recv(), if got_c.is_none() => got_c = Some(m),
                _ = &mut wait => break,
            }
        }
    }
    for (node, (source, topic, data)) in [("B", got_b.unwrap()), ("C", got_c.unwrap())] {
        assert_eq!(source, a.id(), "{node} sees A as the signed author");
        assert_eq!(topic, TOPIC, "{node}");
        assert!(data.starts_with(b"hello "), "{node}: {data:?}");
    }
    for i in [a, b, c] {
        i.stop().await;
    }
}

#[tokio::test]
async fn a_peer_whose_gossip_keeps_being_rejected_is_graylisted() {
    let mut a = start(|_| {}).await;
    let mut b = start(|_| {}).await;
    connect(&b, &a).await;
    let _a_gossip = judge(a.take_events(), a.handle.clone(), Verdict::Accept);
    let mut rejected = judge(b.take_events(), b.handle.clone(), Verdict::Reject);

    let a_id = a.id();
    let graylist = gossip::thresholds().graylist_threshold;
    let started = std::time::Instant::now();
    let mut received = 0;
    for n in 0.. {
        let score = b
            .handle
            .peers()
            .await
            .into_iter()
            .find(|p| p.peer_id == a_id)
            .and_then(|p| p.score);
        if score.is_some_and(|s| s < graylist) {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "A not graylisted after {n} messages ({received} rejected); score {score:?}"
        );
        a.handle
            .publish(TOPIC.to_string(), format!("bad {n}").into_bytes())
            .await;
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), rejected.recv()).await
        {
            received += 1;
        }
    }
    assert!(
        received >= 3,
        "graylisting took rejected messages ({received})"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_request_gets_its_response_under_the_requesters_tag() {
    let mut a = start(|_| {}).await;
    let mut b = start(|cfg| cfg.tuning.request_max_bytes = 1024).await;
    connect(&a, &b).await;

    // B answers every request with its payload reversed.
    let mut b_events = b.take_events();
    let b_handle = b.handle.clone();
    let a_id = a.id();
    tokio::spawn(async move {
        while let Some(event) = b_events.recv().await {
            if let NetInput::Request {
                peer,
                proto,
                id,
                mut data,
            } = event
            {
                assert_eq!(peer, a_id);
                data.reverse();
                data.extend_from_slice(if proto == Proto::Take {
                    b"/take"
                } else {
                    b"/sync"
                });
                b_handle.respond(id, data).await;
            }
        }
    });

    let mut a_events = a.take_events();
    a.handle
        .request(b.id(), Proto::Take, RequestTag(7), b"abc".to_vec())
        .await;
    a.handle
        .request(b.id(), Proto::Sync, RequestTag(8), b"xyz".to_vec())
        .await;
    // Larger than B accepts: B refuses it before reading it.
    a.handle
        .request(b.id(), Proto::Take, RequestTag(9), vec![0; 4096])
        .await;
    // Larger than A may send at all: refused at once.
    a.handle
        .request(b.id(), Proto::Take, RequestTag(10), vec![0; 100 * 1024])
        .await;

    let mut responses = std::collections::BTreeMap::new();
    let started = std::time::Instant::now();
    while responses.len() < 4 {
        assert!(
            started.elapsed() < DEADLINE,
            "responses so far: {responses:?}"
        );
        let event = tokio::time::timeout(Duration::from_secs(1), a_events.recv()).await;
        if let Ok(Some(NetInput::Response { tag, result })) = event {
            responses.insert(tag, result);
        }
    }
    assert_eq!(responses[&RequestTag(7)], Ok(b"cba/take".to_vec()));
    assert_eq!(responses[&RequestTag(8)], Ok(b"zyx/sync".to_vec()));
    assert!(
        responses[&RequestTag(9)].is_err(),
        "{:?}",
        responses[&RequestTag(9)]
    );
    assert_eq!(responses[&RequestTag(10)], Err(RequestFailure::TooLarge));
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn an_engine_that_does_not_read_never_blocks_the_network_and_excess_gossip_is_shed() {
    let mut a = start(|_| {}).await;
    let mut b = start(|cfg| {
        cfg.tuning.event_channel_capacity = 1;
        cfg.tuning.event_buffer_max = 4;
    })
    .await;
    connect(&a, &b).await;
    let _a_gossip = judge(a.take_events(), a.handle.clone(), Verdict::Accept);
    // B's engine is stuck: it holds the receiver and never reads it.
    let mut b_events = b.take_events();

    let started = std::time::Instant::now();
    let mut n = 0;
    while b.metric("peerbook_net_events_shed_total") < 1.0 {
        assert!(
            started.elapsed() < DEADLINE,
            "nothing shed after {n} messages"
        );
        for _ in 0..10 {
            a.handle
                .publish(TOPIC.to_string(), format!("flood {n}").into_bytes())
                .await;
            n += 1;
        }
        // The network still answers while its engine is stuck.
        let status = tokio::time::timeout(DEADLINE, b.handle.status())
            .await
            .expect("B's network answers");
        assert_eq!(status.connected_peers, 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(b.metric("peerbook_net_event_backlog") <= 4.0);

    // What was kept arrives in order once the engine reads again.
    let mut kept = 0;
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(500), b_events.recv()).await
    {
        if let NetInput::Gossip { data, .. } = event {
            assert!(data.starts_with(b"flood "));
            kept += 1;
        }
    }
    assert!((1..=5).contains(&kept), "kept {kept}");
    a.stop().await;
    b.stop().await;
}
