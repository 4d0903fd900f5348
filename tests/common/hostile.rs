//! A hostile peer in the test process: a real libp2p swarm with its own
//! ed25519 key, TCP + noise + yamux, ping, gossipsub configured as honest
//! nodes configure it (but without a topic whitelist or scoring, so it can
//! subscribe and publish anything) and the take and sync request-response
//! protocols with the node's own codec. It signs whatever bytes the test
//! hands it, so it can publish malformed, oversized, forged, late and
//! replayed gossip and send any take request. It answers sync requests only
//! when the test gives it a page maker ([`Hostile::answer_sync`]), and keeps
//! what gossip it received ([`Hostile::gossip_of`]), so it can forge pages
//! from honest nodes' real records.
//!
//! A background task owns the swarm; the test drives it through
//! [`Hostile`]'s methods and reads what it saw (connections, subscriptions)
//! from shared state.

// Each test binary that includes this file uses a part of it.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, TopicHash};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{noise, ping, tcp, yamux, Multiaddr, PeerId, StreamProtocol, SwarmBuilder};
use peerbook::net::{gossip, BytesCodec, SYNC_PROTOCOL, TAKE_PROTOCOL};
use tokio::sync::{mpsc, oneshot};

/// Largest gossip message the hostile peer will send: four times what
/// honest nodes accept, so it can send oversized ones.
const MAX_SEND: usize = 4 << 20;

#[derive(NetworkBehaviour)]
struct Behaviour {
    ping: ping::Behaviour,
    gossipsub: gossipsub::Behaviour,
    take: request_response::Behaviour<BytesCodec>,
    sync: request_response::Behaviour<BytesCodec>,
}

/// Which request-response protocol a request goes out on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Take,
    Sync,
}

enum Cmd {
    Dial(Multiaddr, oneshot::Sender<Result<(), String>>),
    Publish {
        topic: String,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Request {
        peer: PeerId,
        proto: Proto,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, String>>,
    },
}

/// Builds the answer to a sync request (the request's bytes), if any.
pub type SyncAnswer = Box<dyn Fn(&[u8]) -> Option<Vec<u8>> + Send>;

/// What the hostile peer's swarm has seen.
#[derive(Default)]
struct Seen {
    connected: HashSet<PeerId>,
    subscriptions: HashMap<PeerId, HashSet<TopicHash>>,
    /// Gossip received: its signed source and data.
    gossip: Vec<(PeerId, Vec<u8>)>,
    /// Sync requests received, by peer.
    sync_requests: HashMap<PeerId, usize>,
    answer_sync: Option<SyncAnswer>,
}

/// A running hostile peer; its task stops when this is dropped.
pub struct Hostile {
    id: PeerId,
    key: Keypair,
    cmds: mpsc::Sender<Cmd>,
    seen: Arc<Mutex<Seen>>,
}

impl Hostile {
    /// Start a hostile peer subscribed to `topics`.
    pub fn start(topics: &[String]) -> Hostile {
        let key = Keypair::generate_ed25519();
        let id = key.public().to_peer_id();
        let config = gossip::config(MAX_SEND).expect("gossipsub config");
        let mut gossipsub =
            gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), config)
                .expect("gossipsub behaviour");
        for t in topics {
            gossipsub
                .subscribe(&IdentTopic::new(t.clone()))
                .expect("subscribe");
        }
        let rr = |protocol: StreamProtocol| {
            request_response::Behaviour::with_codec(
                BytesCodec::new(64 << 10, 8 << 20),
                [(protocol, ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(20))
                    .with_max_concurrent_streams(1_000),
            )
        };
        let behaviour = Behaviour {
            ping: ping::Behaviour::new(ping::Config::new()),
            gossipsub,
            take: rr(TAKE_PROTOCOL),
            sync: rr(SYNC_PROTOCOL),
        };
        let swarm = SwarmBuilder::with_existing_identity(key.clone())
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("transport")
            .with_behaviour(|_| behaviour)
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
            .build();
        let (tx, rx) = mpsc::channel(1024);
        let seen = Arc::new(Mutex::new(Seen::default()));
        tokio::spawn(run(swarm, rx, seen.clone()));
        Hostile {
            id,
            key,
            cmds: tx,
            seen,
        }
    }

    pub fn id(&self) -> PeerId {
        self.id
    }

    /// Its key: the records it publishes are signed with it.
    pub fn key(&self) -> &Keypair {
        &self.key
    }

    /// Dial `addr` (with `/p2p/<id>`).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Dial(addr, reply)).await;
        rx.await
            .map_err(|_| "the hostile peer stopped".to_string())?
    }

    /// Whether a connection to `peer` is open.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.seen.lock().unwrap().connected.contains(peer)
    }

    /// Whether `peer` told us it is subscribed to `topic`.
    pub fn peer_subscribed(&self, peer: &PeerId, topic: &str) -> bool {
        let hash = IdentTopic::new(topic.to_string()).hash();
        self.seen
            .lock()
            .unwrap()
            .subscriptions
            .get(peer)
            .is_some_and(|t| t.contains(&hash))
    }

    /// Answer sync requests with what `f` makes of them from now on.
    pub fn answer_sync(&self, f: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + 'static) {
        self.seen.lock().unwrap().answer_sync = Some(Box::new(f));
    }

    /// The data of every gossip message from `source` received so far.
    pub fn gossip_of(&self, source: &PeerId) -> Vec<Vec<u8>> {
        self.seen
            .lock()
            .unwrap()
            .gossip
            .iter()
            .filter(|(s, _)| s == source)
            .map(|(_, d)| d.clone())
            .collect()
    }

    /// How many sync requests `peer` sent us.
    pub fn sync_requests_from(&self, peer: &PeerId) -> usize {
        self.seen
            .lock()
            .unwrap()
            .sync_requests
            .get(peer)
            .copied()
            .unwrap_or(0)
    }

    /// Sign and publish `data` on `topic`.
    pub async fn publish(&self, topic: &str, data: Vec<u8>) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Publish {
            topic: topic.to_string(),
            data,
            reply,
        })
        .await;
        rx.await
            .map_err(|_| "the hostile peer stopped".to_string())?
    }

    /// Send a request and wait for its response (or failure).
    pub async fn request(
        &self,
        peer: PeerId,
        proto: Proto,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Request {
            peer,
            proto,
            data,
            reply,
        })
        .await;
        rx.await
            .map_err(|_| "the hostile peer stopped".to_string())?
    }

    async fn send(&self, cmd: Cmd) {
        if self.cmds.send(cmd).await.is_err() {
            panic!("the hostile peer's task has stopped");
        }
    }
}

async fn run(
    mut swarm: libp2p::Swarm<Behaviour>,
    mut cmds: mpsc::Receiver<Cmd>,
    seen: Arc<Mutex<Seen>>,
) {
    let mut pending = Pending::new();
    loop {
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    seen.lock().unwrap().connected.insert(peer_id);
                }
                SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                    let mut s = seen.lock().unwrap();
                    s.connected.remove(&peer_id);
                    s.subscriptions.remove(&peer_id);
                }
                SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => match e {
                    gossipsub::Event::Subscribed { peer_id, topic } => {
                        seen.lock().unwrap().subscriptions.entry(peer_id).or_default().insert(topic);
                    }
                    gossipsub::Event::Unsubscribed { peer_id, topic } => {
                        if let Some(t) = seen.lock().unwrap().subscriptions.get_mut(&peer_id) {
                            t.remove(&topic);
                        }
                    }
                    gossipsub::Event::Message { message, .. } => {
                        if let Some(source) = message.source {
                            seen.lock().unwrap().gossip.push((source, message.data));
                        }
                    }
                    _ => {}
                },
                SwarmEvent::Behaviour(BehaviourEvent::Take(e)) => on_rr(Proto::Take, e, &mut pending),
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                    peer,
                    message: request_response::Message::Request { request, channel, .. },
                    ..
                })) => {
                    let answer = {
                        let mut s = seen.lock().unwrap();
                        *s.sync_requests.entry(peer).or_default() += 1;
                        s.answer_sync.as_ref().and_then(|f| f(&request))
                    };
                    if let Some(data) = answer {
                        let _ = swarm.behaviour_mut().sync.send_response(channel, data);
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Sync(e)) => on_rr(Proto::Sync, e, &mut pending),
                _ => {}
            },
            cmd = cmds.recv() => match cmd {
                None => break,
                Some(Cmd::Dial(addr, reply)) => {
                    let _ = reply.send(swarm.dial(addr).map_err(|e| e.to_string()));
                }
                Some(Cmd::Publish { topic, data, reply }) => {
                    let r = swarm
                        .behaviour_mut()
                        .gossipsub
                        .publish(IdentTopic::new(topic), data)
                        .map(|_| ())
                        .map_err(|e| e.to_string());
                    let _ = reply.send(r);
                }
                Some(Cmd::Request { peer, proto, data, reply }) => {
                    let b = swarm.behaviour_mut();
                    let rr = match proto {
                        Proto::Take => &mut b.take,
                        Proto::Sync => &mut b.sync,
                    };
                    let id = rr.send_request(&peer, data);
                    pending.insert((proto, id), reply);
                }
            },
        }
    }
}

type Pending = HashMap<(Proto, OutboundRequestId), oneshot::Sender<Result<Vec<u8>, String>>>;

fn on_rr(proto: Proto, event: request_response::Event<Vec<u8>, Vec<u8>>, pending: &mut Pending) {
    match event {
        request_response::Event::Message {
            message:
                request_response::Message::Response {
                    request_id,
                    response,
                },
            ..
        } => {
            if let Some(reply) = pending.remove(&(proto, request_id)) {
                let _ = reply.send(Ok(response));
            }
        }
        // Requests from honest nodes (a sync pulling the book) are never
        // answered: dropping the channel fails them at once.
        request_response::Event::Message { .. } => {}
        request_response::Event::OutboundFailure {
            request_id, error, ..
        } => {
            if let Some(reply) = pending.remove(&(proto, request_id)) {
                let _ = reply.send(Err(error.to_string()));
            }
        }
        _ => {}
    }
}
