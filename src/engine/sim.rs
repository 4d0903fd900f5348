//! A deterministic simulated network for engines.
//!
//! Many engines, one thread, one seeded random generator: gossip is
//! delivered with random delay (so reordered), dropped and duplicated, and
//! forwarded by the nodes that accept it, as gossipsub does; requests are
//! dropped or answered late, and time out like libp2p's request-response;
//! writes become durable after a random delay, in order, and a crash loses
//! the ones not yet durable. Links can be cut and healed and nodes crashed
//! and restarted from what they made durable. A failing seed replays exactly.
//!
//! The engine tests drive it with random orders and check, after every step,
//! that no order is filled past its quantity anywhere, and once the network
//! is quiet, that every node holds the same books and the same fills.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};

use libp2p::PeerId;
use rust_decimal::Decimal;

use super::*;

/// A small, portable random generator (splitmix64), so a seed means the
/// same run on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
}

/// How unkind the simulated network is.
#[derive(Clone, Debug)]
pub struct NetModel {
    pub gossip_drop: f64,
    pub gossip_dup: f64,
    pub request_drop: f64,
    pub min_delay: Millis,
    pub max_delay: Millis,
    pub max_commit: Millis,
    pub request_timeout: Millis,
    /// Chance that a request to a node it is not linked to fails before it
    /// is written (a full node closing the dialled connection at once):
    /// the network reports it as `NotSent`.
    pub dial_refuse: f64,
}

impl NetModel {
    /// A perfect network: nothing lost, short delays.
    pub fn calm() -> NetModel {
        NetModel {
            gossip_drop: 0.0,
            gossip_dup: 0.0,
            request_drop: 0.0,
            min_delay: 1,
            max_delay: 5,
            max_commit: 2,
            request_timeout: 3_000,
            dial_refuse: 0.0,
        }
    }
}

#[derive(Clone, Debug)]
enum Ev {
    Gossip {
        to: usize,
        from: usize,
        source: PeerId,
        msg_id: [u8; 32],
        topic: String,
        data: Vec<u8>,
    },
    Request {
        to: usize,
        to_epoch: u64,
        from: usize,
        from_epoch: u64,
        proto: Proto,
        tag: RequestTag,
        data: Vec<u8>,
    },
    Response {
        to: usize,
        epoch: u64,
        tag: RequestTag,
        result: Result<Vec<u8>, RequestFailure>,
    },
    Commit {
        node: usize,
        epoch: u64,
        ticket: u64,
        ops: Vec<Op>,
    },
    Tick {
        node: usize,
        epoch: u64,
    },
}

/// One simulated host.
pub struct SimNode {
    pub id: PeerId,
    pub key: libp2p::identity::Keypair,
    /// A hostile node runs no engine: it answers every sync request with
    /// pages it made up, and never gossips.
    pub hostile: bool,
    pub engine: Option<Engine>,
    /// What this node made durable: it survives crashes.
    pub durable: Snapshot,
    epoch: u64,
    last_commit: Millis,
    seen: HashSet<[u8; 32]>,
    validating: HashMap<Vec<u8>, (String, Vec<u8>, PeerId)>,
    inbound: HashMap<InboundId, (usize, u64, RequestTag)>,
    next_req: u64,
    open_tags: HashSet<RequestTag>,
    tick_at: Option<Millis>,
    /// How far this node's clock is ahead of the simulation's (behind when
    /// negative): the engine sees `now + skew`.
    pub skew: i64,
}

/// The simulated network and its nodes.
pub struct Sim {
    pub now: Millis,
    pub rng: Rng,
    pub net: NetModel,
    pub nodes: Vec<SimNode>,
    pub markets: Vec<MarketSpec>,
    pub cfg: EngineConfig,
    links: BTreeSet<(usize, usize)>,
    /// Pairs that cannot reach each other at all (a partition): no link,
    /// and no direct dial for a request either.
    cut: BTreeSet<(usize, usize)>,
    queue: BinaryHeap<Reverse<(Millis, u64)>>,
    events: HashMap<u64, Ev>,
    next_ev: u64,
    next_cmd: u64,
    /// Answers to commands, by command id.
    pub replies: HashMap<u64, Result<OrderInfo, EngineError>>,
    /// Gossip verdicts that were `Reject` (honest nodes never earn one).
    pub rejected: u64,
    /// Every ban a node asked for: who asked, whom.
    pub bans: Vec<(usize, PeerId)>,
    /// What hostile nodes planted: owner and sequence number of orders,
    /// and trade ids, none of which may ever show on an honest node.
    pub planted_orders: Vec<(PeerId, u64)>,
    pub planted_trades: Vec<String>,
    /// Forged pages hostile nodes served.
    pub forged_pages: u64,
    /// Chance that a sync request is lost on top of `net.request_drop`
    /// (never answered: its requester hears only the timeout).
    pub sync_drop: f64,
}

/// Simulated time starts here (a realistic wall clock, for skew checks).
pub const EPOCH_MS: Millis = 1_700_000_000_000;

impl Sim {
    /// `n` fresh nodes, all linked to each other.
    pub fn new(
        n: usize,
        seed: u64,
        markets: Vec<MarketSpec>,
        cfg: EngineConfig,
        net: NetModel,
    ) -> Sim {
        let mut rng = Rng::new(seed);
        let mut nodes = Vec::new();
        for _ in 0..n {
            let mut bytes = [0u8; 32];
            for chunk in bytes.chunks_mut(8) {
                chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
            }
            let key = libp2p::identity::Keypair::ed25519_from_bytes(bytes)
                .unwrap_or_else(|_| libp2p::identity::Keypair::generate_ed25519());
            nodes.push(SimNode {
                id: key.public().to_peer_id(),
                key,
                hostile: false,
                engine: None,
                durable: Snapshot::default(),
                epoch: 0,
                last_commit: 0,
                seen: HashSet::new(),
                validating: HashMap::new(),
                inbound: HashMap::new(),
                next_req: 1,
                open_tags: HashSet::new(),
                tick_at: None,
                skew: 0,
            });
        }
        let mut sim = Sim {
            now: EPOCH_MS,
            rng,
            net,
            nodes,
            markets,
            cfg,
            links: BTreeSet::new(),
            cut: BTreeSet::new(),
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            next_ev: 0,
            next_cmd: 1,
            replies: HashMap::new(),
            rejected: 0,
            bans: Vec::new(),
            planted_orders: Vec::new(),
            planted_trades: Vec::new(),
            forged_pages: 0,
            sync_drop: 0.0,
        };
        for i in 0..n {
            sim.start(i);
        }
        for a in 0..n {
            for b in a + 1..n {
                sim.link(a, b);
            }
        }
        sim
    }

    fn key(a: usize, b: usize) -> (usize, usize) {
        (a.min(b), a.max(b))
    }

    pub fn linked(&self, a: usize, b: usize) -> bool {
        self.links.contains(&Self::key(a, b))
    }

    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].engine.is_some() || self.nodes[i].hostile
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        a != b && self.linked(a, b) && self.is_up(a) && self.is_up(b)
    }

    /// Whether a request from `a` reaches `b`: over a link, or by dialling
    /// it directly as request-response does, unless the two are cut apart.
    fn reachable(&self, a: usize, b: usize) -> bool {
        a != b && self.is_up(a) && self.is_up(b) && !self.cut.contains(&Self::key(a, b))
    }

    /// Cut two nodes apart: no gossip link, no requests.
    pub fn partition(&mut self, a: usize, b: usize) {
        self.cut.insert(Self::key(a, b));
        self.unlink(a, b);
    }

    /// Undo a partition and link the two again.
    pub fn heal(&mut self, a: usize, b: usize) {
        self.cut.remove(&Self::key(a, b));
        self.link(a, b);
    }

    pub fn is_cut(&self, a: usize, b: usize) -> bool {
        self.cut.contains(&Self::key(a, b))
    }

    fn neighbours(&self, a: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|b| self.connected(a, *b))
            .collect()
    }

    /// Join two nodes (both learn of the connection if they are up).
    pub fn link(&mut self, a: usize, b: usize) {
        if a == b || !self.links.insert(Self::key(a, b)) {
            return;
        }
        if self.is_up(a) && self.is_up(b) {
            let (pa, pb) = (self.nodes[a].id, self.nodes[b].id);
            self.input(a, NetInput::PeerConnected(pb).into());
            self.input(b, NetInput::PeerConnected(pa).into());
        }
    }

    /// Replace every link by a sparse random topology that keeps the nodes
    /// connected: each node after the first links to one random earlier
    /// node (a random tree), then random extra links until the nodes have
    /// `degree` links on average. Most pairs, takers and makers among them,
    /// are then not linked: their takes go by direct dial, and gossip and
    /// sync travel through relays.
    pub fn sparse_topology(&mut self, degree: usize) {
        let n = self.nodes.len();
        let links: Vec<(usize, usize)> = self.links.iter().copied().collect();
        for (a, b) in links {
            self.unlink(a, b);
        }
        for b in 1..n {
            let a = self.rng.range(0, b as u64 - 1) as usize;
            self.link(a, b);
        }
        let wanted = (n * degree / 2).min(n * n.saturating_sub(1) / 2);
        let mut tries = 0;
        while self.links.len() < wanted && tries < 100 * n {
            tries += 1;
            let a = self.rng.range(0, n as u64 - 1) as usize;
            let b = self.rng.range(0, n as u64 - 1) as usize;
            self.link(a, b);
        }
    }

    /// The links, as pairs of node indices.
    pub fn links(&self) -> Vec<(usize, usize)> {
        self.links.iter().copied().collect()
    }

    /// Cut two nodes apart.
    pub fn unlink(&mut self, a: usize, b: usize) {
        if !self.links.remove(&Self::key(a, b)) {
            return;
        }
        if self.is_up(a) && self.is_up(b) {
            let (pa, pb) = (self.nodes[a].id, self.nodes[b].id);
            self.input(a, NetInput::PeerDisconnected(pb).into());
            self.input(b, NetInput::PeerDisconnected(pa).into());
        }
    }

    /// Kill a node: what it had not made durable is lost.
    pub fn crash(&mut self, i: usize) {
        if self.nodes[i].engine.take().is_none() {
            return;
        }
        let n = &mut self.nodes[i];
        n.epoch += 1;
        n.seen.clear();
        n.validating.clear();
        n.inbound.clear();
        n.open_tags.clear();
        n.tick_at = None;
        let pid = n.id;
        for b in 0..self.nodes.len() {
            if b != i && self.linked(i, b) && self.is_up(b) {
                self.input(b, NetInput::PeerDisconnected(pid).into());
            }
        }
    }

    /// Start (or restart) a node from its durable state.
    pub fn start(&mut self, i: usize) {
        if self.is_up(i) {
            return;
        }
        let n = &mut self.nodes[i];
        let e = Engine::new(
            n.key.clone(),
            self.cfg.clone(),
            self.markets.clone(),
            n.durable.clone(),
            self.now.saturating_add_signed(n.skew),
        );
        n.engine = Some(e);
        n.last_commit = self.now;
        self.drain(i);
        for b in 0..self.nodes.len() {
            if b != i && self.linked(i, b) && self.is_up(b) {
                let (pa, pb) = (self.nodes[i].id, self.nodes[b].id);
                self.input(i, NetInput::PeerConnected(pb).into());
                self.input(b, NetInput::PeerConnected(pa).into());
            }
        }
    }

    /// Node `i`'s clock: the simulation's time and its skew.
    pub fn clock(&self, i: usize) -> Millis {
        self.now.saturating_add_signed(self.nodes[i].skew)
    }

    /// Place an order on node `i`; the reply lands in `replies`.
    pub fn command(&mut self, i: usize, cmd: Command) -> u64 {
        let id = self.next_cmd;
        self.next_cmd += 1;
        self.input(
            i,
            Input::Command {
                id: CommandId(id),
                cmd,
            },
        );
        id
    }

    fn schedule(&mut self, at: Millis, ev: Ev) {
        let id = self.next_ev;
        self.next_ev += 1;
        self.events.insert(id, ev);
        self.queue.push(Reverse((at, id)));
    }

    fn delay(&mut self) -> Millis {
        self.rng.range(self.net.min_delay, self.net.max_delay)
    }

    /// Feed one input to a node and carry out what it asks for.
    pub fn input(&mut self, i: usize, input: Input) {
        let now = self.clock(i);
        let Some(e) = self.nodes[i].engine.as_mut() else {
            return;
        };
        e.handle(input, now);
        self.drain(i);
    }

    fn drain(&mut self, i: usize) {
        while let Some(a) = self.nodes[i].engine.as_mut().and_then(|e| e.poll_action()) {
            self.act(i, a);
        }
        let Some(e) = self.nodes[i].engine.as_ref() else {
            return;
        };
        let at = e
            .poll_timeout()
            .saturating_add_signed(-self.nodes[i].skew)
            .max(self.now + 1);
        if self.nodes[i].tick_at.is_none_or(|t| at < t) {
            self.nodes[i].tick_at = Some(at);
            let epoch = self.nodes[i].epoch;
            self.schedule(at, Ev::Tick { node: i, epoch });
        }
    }

    fn act(&mut self, i: usize, a: Action) {
        match a {
            Action::Net(n) => self.act_net(i, n),
            Action::Persist { ticket, ops } => {
                // Group commit, as the driver's store writer does: a batch
                // issued while a commit is pending completes with it.
                let d = self.rng.range(0, self.net.max_commit);
                let at = self.nodes[i].last_commit.max(self.now + d);
                self.nodes[i].last_commit = at;
                let epoch = self.nodes[i].epoch;
                self.schedule(
                    at,
                    Ev::Commit {
                        node: i,
                        epoch,
                        ticket,
                        ops,
                    },
                );
            }
            Action::Reply { id, result } => {
                self.replies.insert(id.0, result);
            }
            Action::Event(_) => {}
        }
    }

    fn act_net(&mut self, i: usize, a: NetAction) {
        match a {
            NetAction::Publish { topic, data } => {
                // Like the node's gossipsub: the id hashes the signed source
                // and the data, so equal bytes from two publishers differ.
                let source = self.nodes[i].id;
                let msg_id = crate::net_ids::message_id(&source, &data);
                self.nodes[i].seen.insert(msg_id);
                self.send_gossip(i, source, msg_id, topic, data, None);
            }
            NetAction::Validate {
                message_id,
                verdict,
                ..
            } => {
                let message_id = message_id.0;
                let Some((topic, data, source)) = self.nodes[i].validating.remove(&message_id)
                else {
                    return;
                };
                match verdict {
                    Verdict::Accept => {
                        let mut id = [0u8; 32];
                        id.copy_from_slice(&message_id[..32.min(message_id.len())]);
                        self.send_gossip(i, source, id, topic, data, None);
                    }
                    Verdict::Reject => self.rejected += 1,
                    Verdict::Ignore => {}
                }
            }
            NetAction::Request {
                peer,
                proto,
                tag,
                data,
            } => {
                self.nodes[i].open_tags.insert(tag);
                let epoch = self.nodes[i].epoch;
                let to = self.nodes.iter().position(|n| n.id == peer);
                let d = self.delay();
                match to {
                    Some(to)
                        if self.reachable(i, to)
                            && !self.linked(i, to)
                            && self.rng.chance(self.net.dial_refuse) =>
                    {
                        self.schedule(
                            self.now + d,
                            Ev::Response {
                                to: i,
                                epoch,
                                tag,
                                result: Err(RequestFailure::NotSent),
                            },
                        );
                    }
                    Some(to) if self.reachable(i, to) => {
                        let lost = self.rng.chance(self.net.request_drop)
                            || (proto == Proto::Sync
                                && self.sync_drop > 0.0
                                && self.rng.chance(self.sync_drop));
                        if !lost {
                            let to_epoch = self.nodes[to].epoch;
                            self.schedule(
                                self.now + d,
                                Ev::Request {
                                    to,
                                    to_epoch,
                                    from: i,
                                    from_epoch: epoch,
                                    proto,
                                    tag,
                                    data,
                                },
                            );
                        }
                        let t = self.now + self.net.request_timeout;
                        self.schedule(
                            t,
                            Ev::Response {
                                to: i,
                                epoch,
                                tag,
                                result: Err(RequestFailure::Timeout),
                            },
                        );
                    }
                    _ => self.schedule(
                        self.now + d,
                        Ev::Response {
                            to: i,
                            epoch,
                            tag,
                            result: Err(RequestFailure::DialFailure),
                        },
                    ),
                }
            }
            NetAction::Ban { peer, .. } => self.bans.push((i, peer)),
            NetAction::Respond { id, data } => {
                let Some((from, from_epoch, tag)) = self.nodes[i].inbound.remove(&id) else {
                    return;
                };
                if self.reachable(i, from)
                    && self.nodes[from].epoch == from_epoch
                    && !self.rng.chance(self.net.request_drop)
                {
                    let d = self.delay();
                    self.schedule(
                        self.now + d,
                        Ev::Response {
                            to: from,
                            epoch: from_epoch,
                            tag,
                            result: Ok(data),
                        },
                    );
                }
            }
        }
    }

    fn send_gossip(
        &mut self,
        from: usize,
        source: PeerId,
        msg_id: [u8; 32],
        topic: String,
        data: Vec<u8>,
        _only: Option<usize>,
    ) {
        for to in self.neighbours(from) {
            if self.nodes[to].id == source || self.rng.chance(self.net.gossip_drop) {
                continue;
            }
            let copies = if self.rng.chance(self.net.gossip_dup) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let d = self.delay();
                self.schedule(
                    self.now + d,
                    Ev::Gossip {
                        to,
                        from,
                        source,
                        msg_id,
                        topic: topic.clone(),
                        data: data.clone(),
                    },
                );
            }
        }
    }

    /// Run every event up to time `until`.
    pub fn run_until(&mut self, until: Millis) {
        while let Some(Reverse((at, id))) = self.queue.peek().copied() {
            if at > until {
                break;
            }
            self.queue.pop();
            self.now = self.now.max(at);
            if let Some(ev) = self.events.remove(&id) {
                self.deliver(ev);
            }
        }
        self.now = self.now.max(until);
    }

    /// Run for `ms` more milliseconds.
    pub fn run_for(&mut self, ms: Millis) {
        let t = self.now + ms;
        self.run_until(t);
    }

    fn deliver(&mut self, ev: Ev) {
        match ev {
            Ev::Gossip {
                to,
                from,
                source,
                msg_id,
                topic,
                data,
            } => {
                if !self.connected(from, to) || !self.nodes[to].seen.insert(msg_id) {
                    return;
                }
                let mid = msg_id.to_vec();
                self.nodes[to]
                    .validating
                    .insert(mid.clone(), (topic.clone(), data.clone(), source));
                let prop = self.nodes[from].id;
                self.input(
                    to,
                    NetInput::Gossip {
                        source,
                        propagation_source: prop,
                        message_id: libp2p::gossipsub::MessageId(mid),
                        topic,
                        data,
                    }
                    .into(),
                );
            }
            Ev::Request {
                to,
                to_epoch,
                from,
                from_epoch,
                proto,
                tag,
                data,
            } => {
                if self.nodes[to].epoch != to_epoch
                    || self.nodes[from].epoch != from_epoch
                    || !self.reachable(from, to)
                {
                    return;
                }
                if self.nodes[to].hostile {
                    let forged = self.forge(to, proto, &data);
                    let d = self.delay();
                    self.schedule(
                        self.now + d,
                        Ev::Response {
                            to: from,
                            epoch: from_epoch,
                            tag,
                            result: Ok(forged),
                        },
                    );
                    return;
                }
                let id = InboundId(self.nodes[to].next_req);
                self.nodes[to].next_req += 1;
                self.nodes[to].inbound.insert(id, (from, from_epoch, tag));
                let peer = self.nodes[from].id;
                self.input(
                    to,
                    NetInput::Request {
                        peer,
                        proto,
                        id,
                        data,
                    }
                    .into(),
                );
            }
            Ev::Response {
                to,
                epoch,
                tag,
                result,
            } => {
                if self.nodes[to].epoch != epoch || !self.nodes[to].open_tags.remove(&tag) {
                    return;
                }
                self.input(to, NetInput::Response { tag, result }.into());
            }
            Ev::Commit {
                node,
                epoch,
                ticket,
                ops,
            } => {
                if self.nodes[node].epoch != epoch {
                    return;
                }
                self.nodes[node].durable.apply(&ops);
                self.input(node, Input::Persisted { ticket });
            }
            Ev::Tick { node, epoch } => {
                if self.nodes[node].epoch != epoch {
                    return;
                }
                if self.nodes[node].tick_at.is_some_and(|t| t <= self.now) {
                    self.nodes[node].tick_at = None;
                }
                self.input(node, Input::Tick);
            }
        }
    }

    /// Add a hostile node, linked to every other node; its index.
    pub fn add_hostile(&mut self) -> usize {
        let mut bytes = [0u8; 32];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&self.rng.next_u64().to_le_bytes());
        }
        let key = libp2p::identity::Keypair::ed25519_from_bytes(bytes)
            .unwrap_or_else(|_| libp2p::identity::Keypair::generate_ed25519());
        let i = self.nodes.len();
        self.nodes.push(SimNode {
            id: key.public().to_peer_id(),
            key,
            hostile: true,
            engine: None,
            durable: Snapshot::default(),
            epoch: 0,
            last_commit: 0,
            seen: HashSet::new(),
            validating: HashMap::new(),
            inbound: HashMap::new(),
            next_req: 1,
            open_tags: HashSet::new(),
            tick_at: None,
            skew: 0,
        });
        for b in 0..i {
            self.link(i, b);
        }
        i
    }

    /// A hostile node's answer to a request: for a sync request, a page of
    /// records "of" honest owners that it signed itself, or that carry
    /// proofs leading nowhere (plants, erasing fills, frozen versions).
    fn forge(&mut self, at: usize, proto: Proto, data: &[u8]) -> Vec<u8> {
        use crate::wire::proof::{PageBatches, Proof, Proven};
        use crate::wire::{
            BookPage, FillsPage, Gossip, OwnerOrders, OwnerPage, ProvenOrder, SyncRequest,
            SyncResponse, SyncWhat, TakeResponse,
        };
        let refuse = || crate::wire::encode(&TakeResponse::Refused(crate::wire::Refusal::Busy));
        let Ok(req) = crate::wire::decode::<SyncRequest>(data, 1 << 20) else {
            return refuse().unwrap_or_default();
        };
        if proto != Proto::Sync {
            return refuse().unwrap_or_default();
        }
        let honest: Vec<PeerId> = self
            .nodes
            .iter()
            .filter(|n| !n.hostile)
            .map(|n| n.id)
            .collect();
        let owner = match &req.what {
            SyncWhat::Owner { owner, .. } | SyncWhat::Fills { owner, .. } => *owner,
            SyncWhat::Book { .. } => honest[self.rng.range(0, honest.len() as u64 - 1) as usize],
        };
        let seq = 1_000_000 + self.rng.range(0, 1_000_000);
        let real_seq = self.rng.range(1, 40);
        let now = self.now;
        let plant = OrderState {
            seq,
            side: if self.rng.chance(0.5) {
                Side::Buy
            } else {
                Side::Sell
            },
            price: crate::market::Price(self.rng.range(1, 20_000)),
            qty: Qty(50),
            remaining: Qty(50),
            ver: 0,
            created_ms: now,
            expires_ms: None,
        };
        let frozen = OrderState {
            seq: real_seq,
            remaining: Qty(1),
            ver: u64::MAX,
            ..plant.clone()
        };
        let fill_seq = 1_000_000 + self.rng.range(0, 1_000_000);
        let erase = crate::wire::FillMsg {
            maker_seq: real_seq,
            fill_seq,
            mseq: 1 + self.rng.range(0, 50),
            maker_side: plant.side,
            price: plant.price,
            qty: Qty(1),
            maker_remaining: Qty(0),
            maker_ver: u64::MAX,
            taker: self.nodes[at].id,
            taker_seq: 1,
            take_n: 0,
            ts_ms: now,
        };
        self.forged_pages += 1;
        self.planted_orders.push((owner, seq));
        self.planted_trades
            .push(format!("{owner}/{real_seq}/{fill_seq}"));
        let key = self.nodes[at].key.clone();
        let market = req.market.clone();
        let (_, signed) = Gossip::signed(
            &key,
            &market,
            now,
            vec![Item::Order(plant.clone()), Item::Fill(erase.clone())],
        );
        let mut page = PageBatches::default();
        let planted = ProvenOrder {
            order: Proven {
                item: plant,
                proof: page.proof(&signed[0]),
            },
            fill: None,
        };
        let nowhere = ProvenOrder {
            order: Proven {
                item: frozen,
                proof: Proof {
                    batch: 0,
                    index: 1,
                    path: vec![self.rng.next_u64() as u8; 16],
                },
            },
            fill: None,
        };
        let fill = Proven {
            item: erase,
            proof: page.proof(&signed[1]),
        };
        let batches = page.into_list();
        let resp = match req.what {
            SyncWhat::Book { .. } => SyncResponse::Book(BookPage {
                batches,
                owners: vec![OwnerOrders {
                    owner,
                    orders: vec![planted, nowhere],
                }],
                fills: vec![(owner, fill)],
                next: None,
            }),
            SyncWhat::Owner { after, .. } => SyncResponse::Owner(OwnerPage {
                owner,
                after,
                upto: u64::MAX,
                pending: Vec::new(),
                batches,
                orders: vec![planted, nowhere],
                more: false,
            }),
            SyncWhat::Fills { .. } => SyncResponse::Fills(FillsPage {
                owner,
                batches,
                fills: vec![fill],
                oldest: 1,
                more: false,
            }),
        };
        crate::wire::encode(&resp).unwrap_or_default()
    }

    /// None of what hostile nodes planted shows on any honest node, no
    /// honest node banned another honest one, and a hostile node that
    /// served forgeries was banned.
    pub fn check_nothing_planted(&self) -> Result<(), String> {
        if self.forged_pages > 0 && self.bans.is_empty() {
            return Err(format!(
                "{} forged pages were served and nobody banned their server",
                self.forged_pages
            ));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let Some(e) = &n.engine else { continue };
            for (owner, seq) in &self.planted_orders {
                if e.order(&format!("{owner}/{seq}")).is_ok() {
                    return Err(format!("node {i} holds the planted order {owner}/{seq}"));
                }
            }
            for m in &self.markets {
                let trades = e
                    .trades(Some(&m.name), usize::MAX)
                    .map_err(|e| e.to_string())?;
                if let Some(t) = trades.iter().find(|t| self.planted_trades.contains(&t.id)) {
                    return Err(format!("node {i} shows the forged trade {}", t.id));
                }
            }
        }
        for (by, peer) in &self.bans {
            if self.nodes.iter().any(|n| n.id == *peer && !n.hostile) {
                return Err(format!("node {by} banned the honest peer {peer}"));
            }
        }
        Ok(())
    }

    /// An order for node `i` at `ticks`/`lots` on market 0.
    pub fn order(&self, side: Side, ticks: u64, lots: u64, tif: Tif) -> Command {
        let spec = &self.markets[0];
        Command::Place(PlaceOrder {
            market: spec.name.clone(),
            side,
            kind: OrderKind::Limit,
            price: Some(spec.tick * Decimal::from(ticks)),
            quantity: spec.lot * Decimal::from(lots),
            tif,
            client_id: None,
            expires_ms: None,
        })
    }

    /// No maker filled an order at or after its expiry by the maker's own
    /// clock (a trade's time is the maker's).
    pub fn check_no_fill_after_expiry(&self) -> Result<(), String> {
        for n in &self.nodes {
            for t in n.durable.trades.values() {
                if t.id.maker.owner != n.id {
                    continue;
                }
                let Some(o) = n.durable.orders.get(&t.id.maker.seq) else {
                    continue;
                };
                if let Some(at) = o.expires_ms {
                    if t.ts_ms >= at {
                        return Err(format!(
                            "trade {} at {} filled {}/{} which expired at {at}",
                            t.id, t.ts_ms, n.id, o.seq
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// No order filled past its quantity, by any node's durable records or
    /// in any running engine; every durable order's fills add up.
    pub fn check_no_overfill(&self) -> Result<(), String> {
        let mut qty: HashMap<OrderId, Qty> = HashMap::new();
        let mut trades: BTreeMap<TradeId, Trade> = BTreeMap::new();
        for n in &self.nodes {
            let mut own_fills: HashMap<u64, u64> = HashMap::new();
            for t in n.durable.trades.values() {
                if t.id.maker.owner == n.id {
                    *own_fills.entry(t.id.maker.seq).or_default() += t.qty.0;
                }
                if t.taker.owner == n.id {
                    *own_fills.entry(t.taker.seq).or_default() += t.qty.0;
                }
            }
            for o in n.durable.orders.values() {
                if o.filled > o.qty {
                    return Err(format!(
                        "{}/{} durable filled {:?} > qty {:?}",
                        n.id, o.seq, o.filled, o.qty
                    ));
                }
                qty.insert(OrderId::new(n.id, o.seq), o.qty);
                let own = own_fills.get(&o.seq).copied().unwrap_or(0);
                if own != o.filled.0 {
                    return Err(format!(
                        "{}/{} durable filled {} but its durable trades add up to {own}",
                        n.id, o.seq, o.filled.0
                    ));
                }
            }
            for t in n.durable.trades.values() {
                if let Some(prev) = trades.get(&t.id) {
                    if prev.qty != t.qty || prev.taker != t.taker || prev.price != t.price {
                        return Err(format!(
                            "trade {} recorded differently: {prev:?} vs {t:?}",
                            t.id
                        ));
                    }
                }
                trades.insert(t.id, t.clone());
            }
            if let Some(e) = &n.engine {
                // Filled plus what is asked and unanswered never passes the
                // quantity: the taker side can never overfill.
                e.check_own_quantities()
                    .map_err(|why| format!("{}/{why}", n.id))?;
            }
        }
        let mut per_order: HashMap<OrderId, u64> = HashMap::new();
        for t in trades.values() {
            *per_order.entry(t.id.maker).or_default() += t.qty.0;
            *per_order.entry(t.taker).or_default() += t.qty.0;
        }
        for (id, filled) in per_order {
            if let Some(q) = qty.get(&id) {
                if filled > q.0 {
                    return Err(format!(
                        "order {id} has trades for {filled} lots but quantity {}",
                        q.0
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every fill a maker made durable that names a running node's order as
    /// taker is among that node's durable trades: no take that filled was
    /// taken by its taker for one that did not (a take in doubt settled
    /// wrongly).
    pub fn check_takers_hold_their_fills(&self) -> Result<(), String> {
        for maker in &self.nodes {
            for t in maker.durable.trades.values() {
                if t.id.maker.owner != maker.id {
                    continue;
                }
                let Some(taker) = self.nodes.iter().find(|n| n.id == t.taker.owner) else {
                    continue;
                };
                if taker.engine.is_some() && !taker.durable.trades.contains_key(&t.id) {
                    return Err(format!(
                        "trade {} fills {}/{} as taker, but the taker does not hold it",
                        t.id, t.taker.owner, t.taker.seq
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every running node holds the same book digest and the same trades
    /// on every market, nothing is left in doubt, no book is crossed, and
    /// every taker holds the fills of its takes.
    pub fn check_converged(&self) -> Result<(), String> {
        self.check_takers_hold_their_fills()?;
        let up: Vec<&Engine> = self
            .nodes
            .iter()
            .filter_map(|n| n.engine.as_ref())
            .collect();
        let Some(first) = up.first() else {
            return Ok(());
        };
        for spec in &self.markets {
            let m = spec.name.as_str();
            let d0 = first.digest(m).map_err(|e| e.to_string())?;
            let t0: BTreeSet<String> = first
                .trades(Some(m), usize::MAX)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|t| t.id)
                .collect();
            for (i, e) in up.iter().enumerate() {
                let d = e.digest(m).map_err(|e| e.to_string())?;
                if d != d0 {
                    let b0 = first.book(m, 50).map_err(|e| e.to_string())?;
                    let b = e.book(m, 50).map_err(|e| e.to_string())?;
                    return Err(format!(
                        "{m}: node {i} digest {} differs from {}\n  first: {} orders {:?} / {:?}\n  this:  {} orders {:?} / {:?}",
                        d.to_hex(), d0.to_hex(), b0.orders, b0.bids, b0.asks, b.orders, b.bids, b.asks
                    ));
                }
                let t: BTreeSet<String> = e
                    .trades(Some(m), usize::MAX)
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .map(|t| t.id)
                    .collect();
                if t != t0 {
                    let missing: Vec<_> = t0.difference(&t).take(5).collect();
                    let extra: Vec<_> = t.difference(&t0).take(5).collect();
                    let fills: Vec<String> = self
                        .nodes
                        .iter()
                        .filter_map(|n| n.engine.as_ref())
                        .map(|e| e.explain_fills(m))
                        .collect();
                    return Err(format!(
                        "{m}: node {i} trade log differs: missing {missing:?}, extra {extra:?}\n{}",
                        fills.join("\n")
                    ));
                }
                let b = e.book(m, 1).map_err(|e| e.to_string())?;
                if let (Some(bid), Some(ask)) = (b.bids.first(), b.asks.first()) {
                    if bid.0 >= ask.0 {
                        return Err(format!(
                            "{m}: node {i} book is crossed: bid {} ask {}\n{}",
                            bid.0,
                            ask.0,
                            self.nodes
                                .iter()
                                .filter_map(|n| n.engine.as_ref())
                                .map(|e| format!("{}:\n{}", e.local_peer_id(), e.explain_top(m)))
                                .collect::<String>()
                        ));
                    }
                }
                let taking = e
                    .orders(Some(m), Some(OrderStatus::Taking), usize::MAX)
                    .map_err(|e| e.to_string())?;
                if let Some(o) = taking.first() {
                    return Err(format!("{m}: node {i} order {} is still taking", o.id));
                }
                let doubt = e
                    .orders(Some(m), None, usize::MAX)
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .find(|o| !o.pending.is_zero());
                if let Some(o) = doubt {
                    return Err(format!(
                        "{m}: node {i} order {} has {} in doubt",
                        o.id, o.pending
                    ));
                }
            }
        }
        Ok(())
    }
}
