//! What signed records cost: `cargo bench --bench records`.
//!
//! Each gossip batch is signed once by its author over a Merkle root of its
//! items; a node keeps each item's proof and checks pages of records from
//! third parties against their owners' signatures (src/wire/proof.rs). This
//! measures, on one core, the parts of that: a leaf hash, signing and
//! opening a batch (the publisher's and every receiver's cost per gossip
//! message), and checking a sync page of records whose batches are of a
//! given size (the cost per record and per page a joining node pays).
//! Prints one line per measurement:
//!
//! ```text
//! records <what> per_item_us=<n> per_batch_us=<n>
//! ```
//!
//! `PEERBOOK_BENCH_SCALE` (default 1) scales the repetitions.

use std::hint::black_box;
use std::time::Instant;

use libp2p::identity::Keypair;
use peerbook::market::{Price, Qty, Side};
use peerbook::wire::proof::{self, PageBatches, PageVerifier, Proof};
use peerbook::wire::{Gossip, Item, OrderState};

fn order(seq: u64) -> Item {
    Item::Order(OrderState {
        seq,
        side: if seq.is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        },
        price: Price(10_000 + seq % 500),
        qty: Qty(1 + seq % 100),
        remaining: Qty(1 + seq % 100),
        ver: 0,
        created_ms: 1_765_000_000_000,
        expires_ms: None,
    })
}

fn time<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / reps as f64
}

fn main() {
    let scale: f64 = std::env::var("PEERBOOK_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let reps = |n: usize| ((n as f64 * scale) as usize).max(1);
    let key = Keypair::ed25519_from_bytes([5; 32]).expect("a key");
    let me = key.public().to_peer_id();

    let item = order(7);
    let us = time(reps(200_000), || {
        black_box(proof::leaf(black_box(&item)));
    });
    println!("records leaf_hash per_item_us={us:.3}");

    for n in [1usize, 16, 256] {
        let items: Vec<Item> = (0..n as u64).map(order).collect();
        let sign = time(reps(2_000), || {
            black_box(Gossip::signed(&key, "BTC-USD", 1, items.clone()));
        });
        let (g, _) = Gossip::signed(&key, "BTC-USD", 1, items.clone());
        let open = time(reps(2_000), || {
            black_box(proof::open_batch(&me, "BTC-USD", 1, &g.items, &g.sig).expect("opens"));
        });
        println!(
            "records sign_batch items={n} per_batch_us={sign:.1} per_item_us={:.2}",
            sign / n as f64
        );
        println!(
            "records open_batch items={n} per_batch_us={open:.1} per_item_us={:.2}",
            open / n as f64
        );
    }

    // A sync page of 4,096 records, from batches of `n` records each: every
    // record's path is walked, every distinct batch's signature checked once.
    for n in [16usize, 256] {
        let total = 4_096usize;
        let mut page = PageBatches::default();
        let mut records: Vec<(Item, Proof)> = Vec::new();
        for b in 0..total / n {
            let items: Vec<Item> = (0..n as u64).map(|i| order((b * n) as u64 + i)).collect();
            let (_, stored) = Gossip::signed(&key, "BTC-USD", b as u64, items.clone());
            for (item, s) in items.into_iter().zip(stored) {
                let p = page.proof(&s);
                records.push((item, p));
            }
        }
        let batches = page.into_list();
        let us = time(reps(20), || {
            let mut v = PageVerifier::new("BTC-USD", &batches);
            for (item, p) in &records {
                black_box(v.check(&me, item, p).expect("verifies"));
            }
        });
        println!(
            "records verify_page records={total} batch_items={n} per_page_us={us:.0} per_item_us={:.2}",
            us / total as f64
        );
    }
}
