//! Gossipsub for the market topics: its parameters and its peer scoring, in
//! one place.
//!
//! What we want from it (DESIGN.md, Defences and "Gossip is best effort"):
//! every message naming its author, whose own signature over the batch
//! (`wire/proof.rs`) the engine checks before anything is forwarded, so
//! gossipsub does not sign or verify messages itself (see [`config`]), message ids that
//! are a hash of the author and the content (so the same payload relayed
//! twice is one message), nothing forwarded before the engine has judged it,
//! a penalty for peers whose messages the engine rejects that ends in a
//! graylist, a size limit, and only the topics of our markets. The mesh should form within a
//! fraction of a second of connecting rather than at the first 5 s heartbeat.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use libp2p::gossipsub::{
    self, IdentTopic, IdentityTransform, MessageAuthenticity, MessageId, PeerScoreParams,
    PeerScoreThresholds, TopicHash, TopicScoreParams, ValidationMode, WhitelistSubscriptionFilter,
};
use libp2p::identity::Keypair;

/// The gossipsub behaviour as we configure it.
pub type Gossipsub = gossipsub::Behaviour<IdentityTransform, WhitelistSubscriptionFilter>;

/// How long after start the first heartbeat runs: the mesh forms then, so
/// early messages are not left to the fanout.
pub const HEARTBEAT_INITIAL_DELAY: Duration = Duration::from_millis(200);

/// Mesh degree and its bounds (see [`config`]).
const MESH_N: usize = 4;
const MESH_N_LOW: usize = 3;
const MESH_N_HIGH: usize = 8;
const MESH_OUTBOUND_MIN: usize = 2;

/// The penalty per rejected message (squared by gossipsub, see P4).
const INVALID_MESSAGE_WEIGHT: f64 = -20.0;

/// Score thresholds. Positive contributions are capped at about 30 (see
/// [`topic_score_params`]), so two rejected messages (-80) stop gossip to
/// and from the peer, and three (-180) graylist it: everything it sends is
/// ignored until the penalty decays (about ten minutes).
pub fn thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: -20.0,
        publish_threshold: -40.0,
        graylist_threshold: -80.0,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 5.0,
    }
}

/// Scoring of one market topic.
///
/// Market topics are low traffic: a quiet market is normal, so the mesh
/// delivery penalties (P3, P3b), which punish peers for not relaying enough,
/// are off. What counts is being in the mesh (P1, small), delivering new
/// messages first (P2) and, above all, not sending messages the engine
/// rejects (P4).
pub fn topic_score_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.1,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: gossipsub::score_parameter_decay(Duration::from_secs(600)),
        first_message_deliveries_cap: 20.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: INVALID_MESSAGE_WEIGHT,
        invalid_message_deliveries_decay: gossipsub::score_parameter_decay(Duration::from_secs(
            600,
        )),
        ..TopicScoreParams::default()
    }
}

/// Peer score parameters for the given topics.
pub fn score_params(topics: &[TopicHash]) -> PeerScoreParams {
    let topics: HashMap<TopicHash, TopicScoreParams> = topics
        .iter()
        .map(|t| (t.clone(), topic_score_params()))
        .collect();
    PeerScoreParams {
        topics,
        topic_score_cap: 30.0,
        // No application score yet; the engine may feed one later.
        app_specific_weight: 0.0,
        // Several nodes on one host (tests, a demo cluster) are normal on loopback.
        ip_colocation_factor_whitelist: HashSet::from([
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]),
        behaviour_penalty_weight: -10.0,
        behaviour_penalty_threshold: 6.0,
        behaviour_penalty_decay: gossipsub::score_parameter_decay(Duration::from_secs(600)),
        ..PeerScoreParams::default()
    }
}

/// The message id: a hash of the signed author and the data.
///
/// The same payload from the same author, published or relayed twice, is one
/// message. The author is part of it because two nodes can publish
/// byte-identical payloads (two empty nodes' heartbeats in the same
/// millisecond), and those must not be dropped as duplicates of each other.
/// With strict signing the author is always known; without one, the data
/// alone is hashed.
pub fn message_id(message: &gossipsub::Message) -> MessageId {
    match &message.source {
        Some(source) => MessageId::from(crate::net_ids::message_id(source, &message.data).to_vec()),
        None => MessageId::from(blake3::hash(&message.data).as_bytes().to_vec()),
    }
}

/// The gossipsub config.
pub fn config(max_message_bytes: usize) -> Result<gossipsub::Config, String> {
    gossipsub::ConfigBuilder::default()
        // Gossipsub's own signature is not checked: every batch carries its
        // author's signature over the author, the market and the items
        // (`wire/proof.rs`), which the engine checks once per message before
        // anything is forwarded, and which a relay cannot make for another
        // source. Gossipsub's, on top of it, cost one more signing per
        // batch and one verification per *copy* received (a node gets each
        // batch about once per mesh peer, before duplicates are dropped):
        // at 20 sparse nodes it was most of the third of all CPU that went
        // to ed25519. Permissive still checks a signature that is present
        // (older nodes' messages), and a message without a source is
        // rejected by the event loop.
        .validation_mode(ValidationMode::Permissive)
        .validate_messages()
        .message_id_fn(message_id)
        .max_transmit_size(max_message_bytes)
        .heartbeat_initial_delay(HEARTBEAT_INITIAL_DELAY)
        .heartbeat_interval(Duration::from_secs(1))
        // Our own messages go to every subscribed peer with a decent score,
        // not only to the mesh: in the small networks peerbook runs in, that
        // is one hop to everyone, and a publisher's orders do not depend on
        // relays whose send queues may drop them under load. The peer
        // manager caps the peers (`net.max_established_total`), so this
        // fan-out stays bounded in a large network.
        .flood_publish(true)
        // Mesh degree: a message reaches a node about once per mesh peer,
        // so every extra mesh peer is another copy of all the traffic.
        // Sparse nodes keep 4 to 6 peers (the target and the ceiling), so
        // a mesh of 4 (3 to 8) uses them all without asking for more than
        // they hold; gossipsub's 6 (5 to 12) made every node of a large
        // full mesh forward each batch to six or more peers.
        .mesh_n(MESH_N)
        .mesh_n_low(MESH_N_LOW)
        .mesh_n_high(MESH_N_HIGH)
        .mesh_outbound_min(MESH_OUTBOUND_MIN)
        .gossip_lazy(MESH_N)
        // A publisher tells each peer it sends a batch to (over 1 kB) not to
        // send it back: with flood publish every peer would otherwise echo
        // it to the publisher through the mesh.
        .idontwant_on_publish(true)
        .build()
        .map_err(|e| e.to_string())
}

/// Build the behaviour: messages named as `keypair`'s (unsigned by
/// gossipsub, see [`config`]), scored, and allowed only `topics`.
pub fn build(
    keypair: &Keypair,
    topics: &[String],
    max_message_bytes: usize,
    registry: &mut prometheus_client::registry::Registry,
) -> Result<Gossipsub, String> {
    let hashes: Vec<TopicHash> = topics
        .iter()
        .map(|t| IdentTopic::new(t.clone()).hash())
        .collect();
    let filter = WhitelistSubscriptionFilter(hashes.iter().cloned().collect());
    let mut behaviour = Gossipsub::new_with_subscription_filter(
        MessageAuthenticity::Author(keypair.public().to_peer_id()),
        config(max_message_bytes)?,
        filter,
    )?
    .with_metrics(
        registry.sub_registry_with_prefix("gossipsub"),
        gossipsub::MetricsConfig::default(),
    );
    behaviour.with_peer_score(score_params(&hashes), thresholds())?;
    for topic in topics {
        behaviour
            .subscribe(&IdentTopic::new(topic.clone()))
            .map_err(|e| format!("cannot subscribe to {topic}: {e}"))?;
    }
    Ok(behaviour)
}

impl From<super::Verdict> for gossipsub::MessageAcceptance {
    fn from(v: super::Verdict) -> Self {
        match v {
            super::Verdict::Accept => gossipsub::MessageAcceptance::Accept,
            super::Verdict::Reject => gossipsub::MessageAcceptance::Reject,
            super::Verdict::Ignore => gossipsub::MessageAcceptance::Ignore,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_parameters_and_thresholds_are_valid() {
        let topics = vec![IdentTopic::new("peerbook/1/market/X/abc").hash()];
        score_params(&topics).validate().unwrap();
        thresholds().validate().unwrap();
        config(1024).unwrap();
    }

    #[test]
    fn three_rejected_messages_graylist_a_peer_with_the_best_positive_score() {
        let p = topic_score_params();
        let best_positive = 30.0;
        let penalty = |n: f64| n * n * p.invalid_message_deliveries_weight * p.topic_weight;
        assert!(best_positive + penalty(3.0) < thresholds().graylist_threshold);
        assert!(penalty(1.0) > thresholds().graylist_threshold);
    }

    #[test]
    fn message_ids_depend_on_author_and_data_not_on_sequence_number() {
        let (x, y) = (libp2p::PeerId::random(), libp2p::PeerId::random());
        let msg = |source: Option<libp2p::PeerId>, data: &[u8], seq: u64| gossipsub::Message {
            source,
            data: data.to_vec(),
            sequence_number: Some(seq),
            topic: IdentTopic::new("t").hash(),
        };
        let id = |m| message_id(&m);
        assert_eq!(id(msg(Some(x), b"a", 1)), id(msg(Some(x), b"a", 2)));
        assert_ne!(id(msg(Some(x), b"a", 1)), id(msg(Some(x), b"b", 1)));
        assert_ne!(id(msg(Some(x), b"a", 1)), id(msg(Some(y), b"a", 1)));
        let mut expected = x.to_bytes();
        expected.extend_from_slice(b"a");
        assert_eq!(
            id(msg(Some(x), b"a", 1)).0,
            blake3::hash(&expected).as_bytes().to_vec()
        );
        assert_eq!(
            id(msg(None, b"a", 1)).0,
            blake3::hash(b"a").as_bytes().to_vec()
        );
    }

    #[test]
    fn only_configured_topics_can_be_subscribed() {
        let key = Keypair::generate_ed25519();
        let mut registry = prometheus_client::registry::Registry::default();
        let mut g = build(&key, &["a".to_string()], 1024, &mut registry).unwrap();
        assert!(g.subscribe(&IdentTopic::new("b")).is_err());
        assert_eq!(g.topics().count(), 1);
    }
}
