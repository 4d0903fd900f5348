//! Twenty and more simulated nodes in sparse random topologies: most takers
//! are not linked to the makers they take from (their takes go by a direct
//! dial, which a full maker sometimes refuses before the request is
//! written), gossip and sync travel through relays, nodes crash and
//! restart. No order is ever filled past its quantity; once the network is
//! quiet every node holds the same books and fills, and nothing is `taking`
//! or in doubt. And the bounds on `taking`: a take in doubt ends within
//! `MAX_DOUBT_BACKOFF` and one take timeout of its maker becoming reachable,
//! and, while no request reaches the maker but its gossip arrives through
//! others, within the take's deadline and a heartbeat.
//!
//! `PEERBOOK_SPARSE_SIM_SEEDS=n` runs more seeds; `PEERBOOK_SPARSE_SIM_SEED=s` one.

use std::collections::HashMap;
use std::str::FromStr;

use peerbook::engine::sim::{NetModel, Sim};
use peerbook::engine::{
    Command, EngineConfig, OrderKind, OrderStatus, PlaceOrder, Tif, MAX_DOUBT_BACKOFF,
};
use peerbook::market::{MarketSpec, Side};
use rust_decimal::Decimal;

fn market() -> MarketSpec {
    MarketSpec::new("SPARSE", Decimal::from_str("0.01").unwrap(), Decimal::ONE).unwrap()
}

fn cfg() -> EngineConfig {
    EngineConfig {
        heartbeat_ms: 500,
        stale_after_ms: 3_000,
        ..EngineConfig::default()
    }
}

fn order(side: Side, ticks: u64, lots: u64, tif: Tif) -> Command {
    let spec = market();
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

/// A random side, a price within 4 ticks of `mid` and 1 to 5 lots.
fn near(sim: &mut Sim, mid: i64) -> (Side, u64, u64) {
    let side = if sim.rng.chance(0.5) {
        Side::Buy
    } else {
        Side::Sell
    };
    let ticks = (mid + sim.rng.range(0, 8) as i64 - 4) as u64;
    (side, ticks, sim.rng.range(1, 5))
}

/// One seed; returns how many trades were between nodes not linked.
fn run_seed(seed: u64) -> Result<usize, String> {
    let net = NetModel {
        gossip_drop: 0.05,
        gossip_dup: 0.02,
        request_drop: 0.02,
        min_delay: 1,
        max_delay: 20,
        max_commit: 5,
        request_timeout: 3_000,
        dial_refuse: 0.25,
    };
    let n = 20 + (seed % 5) as usize;
    let mut sim = Sim::new(n, seed, vec![market()], cfg(), net);
    sim.sparse_topology(3);
    let topology = sim.links();
    let linked = |a: usize, b: usize| topology.contains(&(a.min(b), a.max(b)));
    sim.run_for(2_000);
    let mut mid: i64 = 10_000;
    let steps = 300;
    for step in 0..steps {
        let i = sim.rng.range(0, n as u64 - 1) as usize;
        match sim.rng.range(0, 99) {
            0..=79 => {
                mid = (mid + sim.rng.range(0, 4) as i64 - 2).clamp(100, 100_000);
                let (side, ticks, lots) = near(&mut sim, mid);
                let tif = if sim.rng.chance(0.8) {
                    Tif::Gtc
                } else {
                    Tif::Ioc
                };
                sim.command(i, order(side, ticks, lots, tif));
            }
            80..=89 => {
                let open = sim.nodes[i]
                    .engine
                    .as_ref()
                    .and_then(|e| e.orders(None, Some(OrderStatus::Open), usize::MAX).ok())
                    .unwrap_or_default();
                if !open.is_empty() {
                    let k = sim.rng.range(0, open.len() as u64 - 1) as usize;
                    let id = open[k].id.clone();
                    sim.command(i, Command::Cancel { id });
                }
            }
            90..=92 => sim.crash(i),
            _ => sim.start(i),
        }
        let pause = sim.rng.range(0, 40);
        sim.run_for(pause);
        sim.check_no_overfill()
            .map_err(|e| format!("step {step}: overfill: {e}"))?;
    }
    sim.net = NetModel::calm();
    for i in 0..n {
        sim.start(i);
    }
    sim.run_for(20_000);
    // Half the requests and answers are lost while orders cross, then no
    // request gets through at all, gossip still does: every take left in
    // doubt is settled by its maker's heartbeat or its fill in gossip,
    // whoever relays them, within the bound.
    sim.net.request_drop = 0.5;
    for _ in 0..40 {
        let i = sim.rng.range(0, n as u64 - 1) as usize;
        let (side, ticks, lots) = near(&mut sim, mid);
        sim.command(i, order(side, ticks, lots, Tif::Ioc));
        let pause = sim.rng.range(0, 100);
        sim.run_for(pause);
    }
    sim.net.request_drop = 1.0;
    let bound = heartbeat_bound();
    sim.run_for(bound);
    for (i, node) in sim.nodes.iter().enumerate() {
        let Some(e) = node.engine.as_ref() else {
            continue;
        };
        let stuck = e
            .orders(None, None, usize::MAX)
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|o| o.status == OrderStatus::Taking || !o.pending.is_zero());
        if let Some(o) = stuck {
            return Err(format!(
                "node {i}: order {} still {:?} with {} in doubt {bound} ms after the last take, though its makers' gossip arrives",
                o.id, o.status, o.pending
            ));
        }
    }
    sim.net = NetModel::calm();
    sim.run_for(60_000);
    sim.check_no_overfill()
        .map_err(|e| format!("after quiet: overfill: {e}"))?;
    sim.check_converged()
        .map_err(|e| format!("after quiet: not converged: {e}"))?;
    if sim.rejected > 0 {
        return Err(format!("{} honest gossip messages rejected", sim.rejected));
    }
    let index: HashMap<String, usize> = sim
        .nodes
        .iter()
        .enumerate()
        .map(|(i, nd)| (nd.id.to_string(), i))
        .collect();
    let owner = |order_id: &str| {
        order_id
            .split('/')
            .next()
            .and_then(|p| index.get(p).copied())
    };
    let trades = sim.nodes[0]
        .engine
        .as_ref()
        .ok_or("node 0 is down")?
        .trades(Some("SPARSE"), usize::MAX)
        .map_err(|e| e.to_string())?;
    let unlinked = trades
        .iter()
        .filter_map(|t| Some((owner(&t.maker_order_id)?, owner(&t.taker_order_id)?)))
        .filter(|(m, t)| !linked(*m, *t))
        .count();
    Ok(unlinked)
}

#[test]
fn twenty_nodes_in_sparse_topologies_trade_across_unlinked_pairs_and_converge() {
    let seeds: Vec<u64> = match std::env::var("PEERBOOK_SPARSE_SIM_SEED") {
        Ok(s) => vec![s
            .parse()
            .expect("PEERBOOK_SPARSE_SIM_SEED must be a number")],
        Err(_) => (0..std::env::var("PEERBOOK_SPARSE_SIM_SEEDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(4))
            .collect(),
    };
    let mut failures = Vec::new();
    let mut unlinked = 0;
    for &seed in &seeds {
        match run_seed(seed) {
            Ok(u) => unlinked += u,
            Err(e) => failures.push(format!("seed {seed}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed (reproduce one with PEERBOOK_SPARSE_SIM_SEED=<seed>):\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n")
    );
    assert!(
        unlinked > 0,
        "no trade between a taker and a maker that were not linked: the test exercised nothing"
    );
}

/// How long after its last take an order may stay `taking` when its
/// maker cannot be reached but its gossip arrives: the take's deadline,
/// the heartbeat that passes it, and the gossip's way (a few hops).
fn heartbeat_bound() -> u64 {
    let c = cfg();
    c.take_deadline_ms + c.heartbeat_ms + 500
}

/// Three nodes: the taker (2) linked only to a relay (1), not to the maker
/// (0), which rests a sell of 3 lots at 10,000.
fn relayed_maker() -> Sim {
    let mut sim = Sim::new(3, 7, vec![market()], cfg(), NetModel::calm());
    sim.unlink(0, 2);
    sim.run_for(1_000);
    let sell = sim.command(0, order(Side::Sell, 10_000, 3, Tif::Gtc));
    sim.run_for(1_000);
    assert!(matches!(sim.replies.get(&sell), Some(Ok(o)) if o.status == OrderStatus::Open));
    sim
}

#[test]
fn a_take_in_doubt_is_settled_by_its_makers_heartbeat_through_a_relay() {
    let mut sim = relayed_maker();
    // No request reaches the maker from now on, not the take, not a status
    // request; its gossip comes through the relay.
    sim.net.request_drop = 1.0;
    let sent = sim.now;
    let buy = sim.command(2, order(Side::Buy, 10_000, 2, Tif::Ioc));
    sim.run_for(sim.net.request_timeout + 100);
    let taker = sim.nodes[2].engine.as_ref().unwrap();
    let taking = taker.orders(None, Some(OrderStatus::Taking), 10).unwrap();
    assert_eq!(taking.len(), 1, "the take is in doubt");
    let id = taking[0].id.clone();
    sim.run_until(sent + heartbeat_bound());
    let taker = sim.nodes[2].engine.as_ref().unwrap();
    let b = taker.order(&id).unwrap();
    assert_eq!(b.status, OrderStatus::Expired, "{b:?}");
    assert!(b.pending.is_zero() && b.filled.is_zero(), "{b:?}");
    assert_eq!(taker.counters().doubts_settled_by_heartbeat, 1);
    assert!(matches!(sim.replies.get(&buy), Some(Ok(o)) if o.id == id));
    // The maker's sell is whole, and a take that comes now is refused as
    // late, never filled.
    sim.net.request_drop = 0.0;
    sim.run_for(2_000);
    let maker = sim.nodes[0].engine.as_ref().unwrap();
    assert_eq!(maker.counters().fills_maker, 0);
    sim.check_no_overfill().unwrap();
    sim.check_converged().unwrap();
}

#[test]
fn a_take_whose_answer_is_lost_is_filled_from_gossip_not_settled_empty() {
    let mut sim = relayed_maker();
    // Longer writes, so the fill is made before its answer leaves.
    sim.net.max_commit = 200;
    let buy = sim.command(2, order(Side::Buy, 10_000, 2, Tif::Ioc));
    let maker_filled = |sim: &Sim| sim.nodes[0].engine.as_ref().unwrap().counters().fills_maker;
    while maker_filled(&sim) == 0 {
        sim.run_for(1);
    }
    // The fill is made, its answer not sent yet: every answer is lost now.
    sim.net.request_drop = 1.0;
    let taker = sim.nodes[2].engine.as_ref().unwrap();
    assert_eq!(taker.counters().fills_taker, 0, "the answer came too soon");
    sim.run_for(heartbeat_bound() + 1_000);
    let taker = sim.nodes[2].engine.as_ref().unwrap();
    let Some(Ok(placed)) = sim.replies.get(&buy) else {
        panic!("the placement was not answered");
    };
    let b = taker.order(&placed.id).unwrap();
    assert_eq!(b.status, OrderStatus::Filled, "{b:?}");
    assert!(b.pending.is_zero(), "{b:?}");
    assert_eq!(taker.counters().doubts_settled_by_heartbeat, 0);
    sim.net.request_drop = 0.0;
    sim.run_for(2_000);
    sim.check_no_overfill().unwrap();
    sim.check_converged().unwrap();
}

#[test]
fn a_take_in_doubt_ends_within_the_bound_once_its_maker_is_reachable() {
    let mut sim = relayed_maker();
    let timeout = sim.net.request_timeout;
    // Every request is lost for half a minute, and the maker's gossip too:
    // the take, then every status request about it, time out, and no
    // heartbeat settles it; the IOC order stays `taking`.
    sim.net.request_drop = 1.0;
    sim.net.gossip_drop = 1.0;
    let buy = sim.command(2, order(Side::Buy, 10_000, 2, Tif::Ioc));
    sim.run_for(30_000);
    let taker = sim.nodes[2].engine.as_ref().unwrap();
    let taking = taker.orders(None, Some(OrderStatus::Taking), 10).unwrap();
    assert_eq!(taking.len(), 1, "the order waits for its take in doubt");
    let id = taking[0].id.clone();
    assert!(!taking[0].pending.is_zero(), "{:?}", taking[0]);
    // The maker is reachable again: the order ends within the bound.
    sim.net.request_drop = 0.0;
    sim.net.gossip_drop = 0.0;
    let bound = MAX_DOUBT_BACKOFF + timeout + 100;
    sim.run_for(bound);
    let b = sim.nodes[2].engine.as_ref().unwrap().order(&id).unwrap();
    assert_ne!(
        b.status,
        OrderStatus::Taking,
        "still taking {bound} ms after the maker became reachable: {b:?}"
    );
    assert!(b.pending.is_zero(), "{b:?}");
    assert!(
        matches!(sim.replies.get(&buy), Some(Ok(o)) if o.id == id),
        "the placement was answered"
    );
    sim.check_no_overfill().unwrap();
    sim.run_for(5_000);
    sim.check_converged().unwrap();
}
