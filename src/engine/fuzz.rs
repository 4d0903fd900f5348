//! Fuzzing entry points, shared by the `cargo fuzz` targets (fuzz/) and the
//! test that replays their corpus on stable Rust (tests/fuzz_corpus.rs).
//!
//! - [`wire`] decodes bytes as every wire message; whatever decodes must
//!   encode and decode back to the same value.
//! - [`engine`] reads bytes as a script of inputs from two hostile peers to
//!   one engine that holds orders of its own: gossip, take and sync requests,
//!   answers to its own requests, ticks and commands, each with arbitrary
//!   bytes. After every input the engine must not have panicked and no order
//!   of its own may be filled, with what it has asked and not heard back,
//!   past its quantity.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::*;
use crate::wire::{self, Gossip, SyncRequest, SyncResponse, TakeRequest, TakeResponse};

const LIMIT: usize = 1 << 20;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(v) = wire::decode::<T>(data, LIMIT) {
        let again = match wire::encode(&v) {
            Ok(b) => b,
            Err(e) => panic!("{v:?} decodes but does not encode: {e}"),
        };
        let back: T = match wire::decode(&again, LIMIT) {
            Ok(b) => b,
            Err(e) => panic!("{v:?} encodes to bytes that do not decode: {e}"),
        };
        assert_eq!(back, v, "round trip changed the value");
    }
}

/// Decode `data` as every wire message type.
pub fn wire(data: &[u8]) {
    round_trip::<Gossip>(data);
    round_trip::<TakeRequest>(data);
    round_trip::<TakeResponse>(data);
    round_trip::<SyncRequest>(data);
    round_trip::<SyncResponse>(data);
}

/// The engine under fuzz: one node with a resting sell and a resting buy,
/// and two peers it knows.
pub struct Target {
    pub engine: Engine,
    pub peers: [PeerId; 2],
    /// The peers' keys: gossip that decodes is signed by its peer, so the
    /// fuzzer reaches what lies past the signature check.
    keys: [libp2p::identity::Keypair; 2],
    pub now: Millis,
    next_cmd: u64,
    next_req: u64,
}

/// The fixed identities of a fuzz run (deterministic, so crashes replay).
fn key(n: u8) -> libp2p::identity::Keypair {
    libp2p::identity::Keypair::ed25519_from_bytes([n; 32])
        .unwrap_or_else(|_| libp2p::identity::Keypair::generate_ed25519())
}

impl Target {
    pub fn new() -> Target {
        let spec = MarketSpec::new(
            "FUZZ-USD",
            Decimal::from_str("0.01").unwrap_or(Decimal::ONE),
            Decimal::ONE,
        );
        let markets = spec.into_iter().collect();
        let now = sim::EPOCH_MS;
        let mut engine = Engine::new(
            key(1),
            EngineConfig::default(),
            markets,
            Snapshot::default(),
            now,
        );
        let keys = [key(2), key(3)];
        let peers = [keys[0].public().to_peer_id(), keys[1].public().to_peer_id()];
        for p in peers {
            engine.handle(NetInput::PeerConnected(p).into(), now);
        }
        let mut t = Target {
            engine,
            peers,
            keys,
            now,
            next_cmd: 1,
            next_req: 1,
        };
        for (side, price) in [(Side::Sell, "101"), (Side::Buy, "99")] {
            t.command(Command::Place(PlaceOrder {
                market: "FUZZ-USD".into(),
                side,
                kind: OrderKind::Limit,
                price: Decimal::from_str(price).ok(),
                quantity: Decimal::from(5),
                tif: Tif::Gtc,
                client_id: None,
                expires_ms: None,
            }));
        }
        t
    }

    fn command(&mut self, cmd: Command) {
        let id = CommandId(self.next_cmd);
        self.next_cmd += 1;
        self.input(Input::Command { id, cmd });
    }

    /// Feed one input and complete every write at once.
    pub fn input(&mut self, input: Input) {
        self.engine.handle(input, self.now);
        let mut guard = 0;
        while let Some(a) = self.engine.poll_action() {
            if let Action::Persist { ticket, .. } = a {
                self.engine.handle(Input::Persisted { ticket }, self.now);
            }
            guard += 1;
            if guard > 100_000 {
                panic!("the engine keeps producing actions");
            }
        }
        self.check();
    }

    /// No own order filled, with what is asked and unanswered, past its
    /// quantity; the replica's book keeps its invariants.
    pub fn check(&self) {
        if let Err(e) = self.engine.check_own_quantities() {
            panic!("own order {e}");
        }
        if let Err(e) = self.engine.check_books() {
            panic!("replica book broken: {e}");
        }
    }

    /// Run a script: `[op][peer][len lo][len hi][payload]...`.
    pub fn run(&mut self, data: &[u8]) {
        let mut rest = data;
        while rest.len() >= 4 {
            let (op, who, len) = (
                rest[0],
                rest[1],
                usize::from(u16::from_le_bytes([rest[2], rest[3]])),
            );
            rest = &rest[4..];
            let n = len.min(rest.len());
            let (payload, tail) = rest.split_at(n);
            rest = tail;
            let from = self.peers[usize::from(who & 1)];
            let from_key = &self.keys[usize::from(who & 1)];
            let topic = self.engine.topic(0);
            match op % 8 {
                0 => {
                    // What decodes as gossip goes in signed by its peer (the
                    // signature check itself is fuzzed with the raw bytes).
                    let data = match wire::decode::<Gossip>(payload, LIMIT) {
                        Ok(g) if who & 4 == 0 => {
                            let (g, _) = Gossip::signed(from_key, &g.market, g.sent_ms, g.items);
                            wire::encode(&g).unwrap_or_default()
                        }
                        _ => payload.to_vec(),
                    };
                    self.input(
                        NetInput::Gossip {
                            source: from,
                            propagation_source: from,
                            message_id: libp2p::gossipsub::MessageId(
                                payload.iter().take(8).copied().collect(),
                            ),
                            topic,
                            data,
                        }
                        .into(),
                    )
                }
                1 | 2 => {
                    let id = InboundId(self.next_req);
                    self.next_req += 1;
                    let proto = if op % 8 == 1 {
                        Proto::Take
                    } else {
                        Proto::Sync
                    };
                    self.input(
                        NetInput::Request {
                            peer: from,
                            proto,
                            id,
                            data: payload.to_vec(),
                        }
                        .into(),
                    )
                }
                3 => {
                    // An answer (or a failure) to one of our own requests.
                    let tag = self.engine.pending_tags().nth(usize::from(who));
                    if let Some(tag) = tag {
                        let result = match payload.first() {
                            Some(0) => Err(RequestFailure::Timeout),
                            Some(1) => Err(RequestFailure::DialFailure),
                            _ => Ok(payload.to_vec()),
                        };
                        self.input(NetInput::Response { tag, result }.into());
                    }
                }
                4 => {
                    self.now += u64::from(who) * 50 + payload.len() as u64;
                    self.input(Input::Tick);
                }
                5 => {
                    let p = |i: usize| payload.get(i).copied().unwrap_or(0);
                    self.command(Command::Place(PlaceOrder {
                        market: "FUZZ-USD".into(),
                        side: if p(0) & 1 == 0 { Side::Buy } else { Side::Sell },
                        kind: if p(1) % 5 == 0 {
                            OrderKind::Market
                        } else {
                            OrderKind::Limit
                        },
                        price: Some(Decimal::new(9_500 + i64::from(p(2)) * 4, 2)),
                        quantity: Decimal::from(1 + i64::from(p(3) % 9)),
                        tif: match p(4) % 4 {
                            0 => Tif::Gtc,
                            1 => Tif::Ioc,
                            2 => Tif::Fok,
                            _ => Tif::PostOnly,
                        },
                        client_id: None,
                        // Sometimes good till a moment ahead (or already
                        // past, or on an order it does not apply to).
                        expires_ms: (p(5) % 3 == 0)
                            .then(|| (self.now + u64::from(p(6)) * 20).saturating_sub(100)),
                    }))
                }
                6 => {
                    let ids: Vec<u64> = self.engine.own_seqs();
                    if let Some(seq) = ids.get(usize::from(who) % ids.len().max(1)) {
                        let id = OrderId::new(self.engine.local_peer_id(), *seq).to_string();
                        self.command(Command::Cancel { id });
                    }
                }
                _ => {
                    let ev = if who & 2 == 0 {
                        NetInput::PeerDisconnected(from)
                    } else {
                        NetInput::PeerConnected(from)
                    };
                    self.input(ev.into())
                }
            }
        }
    }
}

impl Default for Target {
    fn default() -> Self {
        Target::new()
    }
}

/// Run one engine script.
pub fn engine(data: &[u8]) {
    Target::new().run(data);
}

/// Frame `payload` as one step of an engine script.
pub fn step(op: u8, who: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let mut out = vec![op, who];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&payload[..usize::from(len)]);
    out
}
