//! Replays the fuzz corpus (fuzz/corpus/) through the same entry points the
//! `cargo fuzz` targets use, on stable Rust, so whatever the fuzzers found
//! stays fixed. The seed corpus is written by the ignored test below:
//! `cargo test --test fuzz_corpus -- --ignored write_seed_corpus`.

use std::path::{Path, PathBuf};

use libp2p::PeerId;
use peerbook::engine::fuzz::{self, step};
use peerbook::engine::sim::EPOCH_MS;
use peerbook::market::{Price, Qty, Side};
use peerbook::wire::proof::{BatchSig, Proof, Proven};
use peerbook::wire::{
    BookPage, FillMsg, Gossip, Heartbeat, Item, OrderState, OwnerOrders, OwnerPage, ProvenOrder,
    SyncRequest, SyncResponse, SyncWhat, TakeKind, TakeRequest, TakeResponse, WIRE_VERSION,
};

/// A wire message's bytes (the project's own messages always encode).
fn encode<T: serde::Serialize>(msg: &T) -> Vec<u8> {
    peerbook::wire::encode(msg).expect("a wire message encodes")
}

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn files(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir(corpus(target)) {
        for e in dir.flatten() {
            if let Ok(bytes) = std::fs::read(e.path()) {
                out.push((e.path(), bytes));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_wire_corpus_decodes_without_panics_and_round_trips() {
    let all = files("wire");
    assert!(!all.is_empty(), "fuzz/corpus/wire is empty");
    for (path, bytes) in all {
        let r = std::panic::catch_unwind(|| fuzz::wire(&bytes));
        assert!(r.is_ok(), "{} makes the wire decoder fail", path.display());
    }
}

#[test]
fn the_engine_corpus_never_breaks_the_engine() {
    let all = files("engine");
    assert!(!all.is_empty(), "fuzz/corpus/engine is empty");
    for (path, bytes) in all {
        let r = std::panic::catch_unwind(|| fuzz::engine(&bytes));
        assert!(r.is_ok(), "{} breaks the engine", path.display());
    }
}

#[test]
fn the_codec_corpus_frames_as_the_model_says() {
    let all = files("codec");
    assert!(!all.is_empty(), "fuzz/corpus/codec is empty");
    for (path, bytes) in all {
        let r = std::panic::catch_unwind(|| peerbook::net::fuzz::codec(&bytes));
        assert!(
            r.is_ok(),
            "{} breaks the request-response framing",
            path.display()
        );
    }
}

fn key(n: u8) -> libp2p::identity::Keypair {
    libp2p::identity::Keypair::ed25519_from_bytes([n; 32]).unwrap()
}

fn peer(n: u8) -> PeerId {
    key(n).public().to_peer_id()
}

/// A batch signed by the fuzz target's first peer (its key is `[2; 32]`).
fn gossip(items: Vec<Item>) -> Vec<u8> {
    encode(&Gossip::signed(&key(2), "FUZZ-USD", EPOCH_MS, items).0)
}

/// Records of `owner` as a sync page carries them: signed in one batch.
fn proven(owner: u8, items: Vec<Item>) -> (BatchSig, Vec<Proven<Item>>) {
    let (_, stored) = Gossip::signed(&key(owner), "FUZZ-USD", EPOCH_MS, items.clone());
    let batch = (*stored[0].batch).clone();
    let proofs = items
        .into_iter()
        .zip(stored)
        .map(|(item, s)| Proven {
            item,
            proof: Proof {
                batch: 0,
                index: s.index,
                path: s.path.to_vec(),
            },
        })
        .collect();
    (batch, proofs)
}

fn proven_order(p: &Proven<Item>) -> ProvenOrder {
    let Item::Order(o) = &p.item else {
        panic!("not an order")
    };
    ProvenOrder {
        order: Proven {
            item: o.clone(),
            proof: p.proof.clone(),
        },
        fill: None,
    }
}

fn order(seq: u64, side: Side, price: u64, qty: u64) -> OrderState {
    OrderState {
        seq,
        side,
        price: Price(price),
        qty: Qty(qty),
        remaining: Qty(qty),
        ver: 0,
        created_ms: EPOCH_MS - 10,
        expires_ms: None,
    }
}

fn take(maker_seq: u64, n: u32, kind: TakeKind) -> Vec<u8> {
    encode(&TakeRequest {
        v: WIRE_VERSION,
        market: "FUZZ-USD".into(),
        maker_seq,
        taker_seq: 7,
        take_n: n,
        kind,
        deadline_ms: None,
    })
}

fn sync(what: SyncWhat) -> Vec<u8> {
    encode(&SyncRequest {
        v: WIRE_VERSION,
        market: "FUZZ-USD".into(),
        what,
    })
}

/// Valid messages and scripts: the fuzzers mutate from here.
#[test]
#[ignore]
fn write_seed_corpus() {
    let me = peer(1);
    let fill = FillMsg {
        maker_seq: 1,
        fill_seq: 1,
        mseq: 1,
        maker_side: Side::Sell,
        price: Price(10_200),
        qty: Qty(3),
        maker_remaining: Qty(0),
        maker_ver: 1,
        taker: me,
        taker_seq: 3,
        take_n: 0,
        ts_ms: EPOCH_MS,
    };
    let crossing_buy = gossip(vec![
        Item::Order(order(1, Side::Sell, 10_000, 3)),
        Item::Order(order(2, Side::Buy, 10_200, 2)),
        Item::Heartbeat(Heartbeat {
            open: 2,
            digest: [0; 16],
            watermark: 2,
            fills: 0,
            served_ms: 0,
        }),
    ]);
    let (book_batch, book_records) = proven(
        3,
        vec![
            Item::Order(order(5, Side::Sell, 9_800, 4)),
            Item::Order(order(6, Side::Buy, 9_000, 1)),
            Item::Fill(fill.clone()),
        ],
    );
    let (owner_batch, owner_records) =
        proven(2, vec![Item::Order(order(4, Side::Sell, 10_050, 2))]);
    let wire_seeds: Vec<(&str, Vec<u8>)> = vec![
        ("gossip-orders", crossing_buy.clone()),
        (
            "gossip-cancel-fill",
            gossip(vec![Item::Cancel { seq: 2 }, Item::Fill(fill.clone())]),
        ),
        (
            "take-fill",
            take(
                1,
                0,
                TakeKind::Fill {
                    side: Side::Buy,
                    limit: Some(Price(10_200)),
                    qty: Qty(2),
                },
            ),
        ),
        ("take-status", take(1, 0, TakeKind::Status)),
        ("take-filled", encode(&TakeResponse::Filled(fill.clone()))),
        ("sync-book", sync(SyncWhat::Book { after: None })),
        (
            "sync-owner",
            sync(SyncWhat::Owner {
                owner: me,
                after: 0,
            }),
        ),
        ("sync-fills", sync(SyncWhat::Fills { owner: me, from: 1 })),
        (
            "sync-book-page",
            encode(&SyncResponse::Book(BookPage {
                batches: vec![book_batch.clone()],
                owners: vec![OwnerOrders {
                    owner: peer(3),
                    orders: book_records[..2].iter().map(proven_order).collect(),
                }],
                fills: vec![(
                    peer(3),
                    Proven {
                        item: fill.clone(),
                        proof: book_records[2].proof.clone(),
                    },
                )],
                next: Some((peer(3), 6)),
            })),
        ),
        (
            "sync-owner-page",
            encode(&SyncResponse::Owner(OwnerPage {
                owner: peer(2),
                after: 0,
                upto: 9,
                pending: vec![7],
                batches: vec![owner_batch.clone()],
                orders: owner_records.iter().map(proven_order).collect(),
                more: false,
            })),
        ),
    ];
    let dir = corpus("wire");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in &wire_seeds {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    // Engine scripts: op 0 gossip, 1 take, 2 sync, 3 answer to our request,
    // 4 tick, 5 place, 6 cancel, 7 connect/disconnect.
    let mut scripts: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut s = step(0, 0, &crossing_buy);
    s.extend(step(3, 0, &encode(&TakeResponse::Filled(fill.clone()))));
    s.extend(step(4, 30, &[]));
    scripts.push(("cross-and-take", s));
    let mut s = step(
        1,
        0,
        &take(
            1,
            0,
            TakeKind::Fill {
                side: Side::Buy,
                limit: Some(Price(10_200)),
                qty: Qty(2),
            },
        ),
    );
    s.extend(step(
        1,
        0,
        &take(
            1,
            0,
            TakeKind::Fill {
                side: Side::Buy,
                limit: Some(Price(10_200)),
                qty: Qty(2),
            },
        ),
    ));
    s.extend(step(1, 1, &take(1, 1, TakeKind::Status)));
    s.extend(step(
        1,
        1,
        &take(
            1,
            1,
            TakeKind::Fill {
                side: Side::Buy,
                limit: None,
                qty: Qty(9),
            },
        ),
    ));
    scripts.push(("serve-takes", s));
    let mut s = step(2, 0, &sync(SyncWhat::Book { after: None }));
    s.extend(step(
        2,
        1,
        &sync(SyncWhat::Owner {
            owner: me,
            after: 0,
        }),
    ));
    s.extend(step(2, 1, &sync(SyncWhat::Fills { owner: me, from: 1 })));
    scripts.push(("answer-syncs", s));
    let mut s = step(7, 0, &[]);
    s.extend(step(7, 2, &[]));
    s.extend(step(3, 0, &wire_seeds[8].1));
    s.extend(step(3, 0, &wire_seeds[9].1));
    s.extend(step(5, 0, &[1, 1, 40, 3, 0]));
    s.extend(step(3, 0, &[0]));
    s.extend(step(4, 200, &[0; 20]));
    s.extend(step(6, 0, &[]));
    scripts.push(("pull-and-place", s));
    let dir = corpus("engine");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in &scripts {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    // Codec streams: two bytes of limits (request: x4, response: x64), then
    // frames (4-byte big-endian length, then the bytes).
    let frame = |body: &[u8]| {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    };
    let mut two = vec![64, 16];
    two.extend(frame(&wire_seeds[2].1));
    two.extend(frame(b""));
    let mut over = vec![1, 1];
    over.extend(frame(&[7; 200]));
    let mut short = vec![255, 255];
    short.extend_from_slice(&[0, 0, 1, 0, 1, 2, 3]);
    let codec_seeds: Vec<(&str, Vec<u8>)> = vec![
        ("two-frames", two),
        ("over-the-limit", over),
        ("truncated", short),
        ("huge-claim", vec![255, 255, 0xff, 0xff, 0xff, 0xff, 1]),
    ];
    let dir = corpus("codec");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in &codec_seeds {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
