//! Many simulated nodes, a hostile network, thousands of random orders.
//!
//! Each seed builds a cluster (sometimes a line, so some nodes hear others
//! only through a relay), then for a while places and cancels random orders
//! while the network delays, drops, duplicates and reorders messages, cuts
//! and heals links, and crashes and restarts nodes from their durable state.
//! After every step no order may be filled past its quantity on any node;
//! once the network is quiet, all nodes must hold equal digests and the same
//! fill log, with nothing left in doubt and no crossed book. In some seeds a
//! hostile node answers sync requests with forged pages: none of what it
//! planted may show anywhere, and no honest node may ban another. Clocks
//! run up to 20 s apart and some orders are good till a moment ahead: no
//! maker fills an order at or after its expiry by its own clock.
//!
//! `PEERBOOK_SIM_SEEDS=n` runs more seeds; `PEERBOOK_SIM_SEED=s` runs one.

use std::str::FromStr;

use peerbook::engine::sim::{NetModel, Rng, Sim};
use peerbook::engine::{Command, EngineConfig, OrderKind, OrderStatus, PlaceOrder, Tif};
use peerbook::market::{MarketSpec, Side};
use rust_decimal::Decimal;

fn markets() -> Vec<MarketSpec> {
    vec![
        MarketSpec::new("SIM-A", Decimal::from_str("0.01").unwrap(), Decimal::ONE).unwrap(),
        MarketSpec::new("SIM-B", Decimal::ONE, Decimal::from_str("0.1").unwrap()).unwrap(),
    ]
}

struct Scenario {
    nodes: usize,
    line: bool,
    steps: usize,
    net: NetModel,
    faults: bool,
    /// A hostile node that answers sync requests with forged pages.
    hostile: bool,
    /// Each node's clock ahead of the simulation's (ms): up to 20 s apart,
    /// within `max_clock_skew_ms`.
    skews: Vec<i64>,
}

fn scenario(seed: u64) -> Scenario {
    let mut r = Rng::new(seed.wrapping_mul(7919));
    let lossy = r.chance(0.7);
    Scenario {
        nodes: r.range(2, 5) as usize,
        line: r.chance(0.3),
        steps: r.range(150, 400) as usize,
        net: NetModel {
            gossip_drop: if lossy {
                r.range(0, 30) as f64 / 100.0
            } else {
                0.0
            },
            gossip_dup: if lossy {
                r.range(0, 10) as f64 / 100.0
            } else {
                0.0
            },
            request_drop: if lossy {
                r.range(0, 8) as f64 / 100.0
            } else {
                0.0
            },
            min_delay: 1,
            max_delay: r.range(2, 80),
            max_commit: r.range(0, 10),
            request_timeout: 3_000,
            dial_refuse: 0.0,
        },
        faults: r.chance(0.6),
        hostile: r.chance(0.3),
        skews: (0..5)
            .map(|_| {
                if r.chance(0.5) {
                    r.range(0, 20_000) as i64
                } else {
                    0
                }
            })
            .collect(),
    }
}

fn random_order(sim: &mut Sim, node: usize, mid: &mut [i64; 2]) -> Command {
    let m = sim.rng.range(0, 1) as usize;
    let spec = sim.markets[m].clone();
    mid[m] += sim.rng.range(0, 4) as i64 - 2;
    mid[m] = mid[m].clamp(100, 100_000);
    let side = if sim.rng.chance(0.5) {
        Side::Buy
    } else {
        Side::Sell
    };
    let off = sim.rng.range(0, 12) as i64 - 6;
    // Some resting orders are good till a moment from their node's clock.
    let lifetime = sim.rng.chance(0.25).then(|| sim.rng.range(50, 3_000));
    let ticks = (mid[m] + off).max(1) as u64;
    let lots = sim.rng.range(1, 8);
    let (kind, tif) = match sim.rng.range(0, 19) {
        0..=12 => (OrderKind::Limit, Tif::Gtc),
        13..=14 => (OrderKind::Limit, Tif::Ioc),
        15 => (OrderKind::Limit, Tif::Fok),
        16..=17 => (OrderKind::Limit, Tif::PostOnly),
        _ => (OrderKind::Market, Tif::Ioc),
    };
    Command::Place(PlaceOrder {
        market: spec.name.clone(),
        side,
        kind,
        price: (kind == OrderKind::Limit).then(|| spec.tick * Decimal::from(ticks)),
        quantity: spec.lot * Decimal::from(lots),
        tif,
        client_id: None,
        expires_ms: lifetime
            .filter(|_| kind == OrderKind::Limit && matches!(tif, Tif::Gtc | Tif::PostOnly))
            .map(|ms| sim.clock(node) + ms),
    })
}

fn run_seed(seed: u64) -> Result<(), String> {
    let sc = scenario(seed);
    let cfg = EngineConfig {
        heartbeat_ms: 500,
        stale_after_ms: 3_000,
        ..EngineConfig::default()
    };
    let mut sim = Sim::new(sc.nodes, seed, markets(), cfg, sc.net.clone());
    // Clocks apart (set before any order: a clock never runs backwards).
    for i in 0..sc.nodes {
        sim.nodes[i].skew = sc.skews[i];
    }
    if sc.line {
        for a in 0..sc.nodes {
            for b in a + 2..sc.nodes {
                sim.unlink(a, b);
            }
        }
    }
    if sc.hostile {
        // It joins, and one node restarts beside it: that node pulls its
        // book from whichever peer it picks, the hostile one perhaps.
        sim.add_hostile();
        sim.crash(0);
        sim.start(0);
    }
    sim.run_for(300);
    let mut mid = [10_000i64, 5_000];
    for step in 0..sc.steps {
        let n = sim.rng.range(0, sc.nodes as u64 - 1) as usize;
        let roll = sim.rng.range(0, 99);
        match roll {
            0..=69 => {
                let cmd = random_order(&mut sim, n, &mut mid);
                sim.command(n, cmd);
            }
            70..=89 => {
                let open = sim.nodes[n]
                    .engine
                    .as_ref()
                    .and_then(|e| e.orders(None, Some(OrderStatus::Open), usize::MAX).ok())
                    .unwrap_or_default();
                if !open.is_empty() {
                    let k = sim.rng.range(0, open.len() as u64 - 1) as usize;
                    let id = open[k].id.clone();
                    sim.command(n, Command::Cancel { id });
                }
            }
            90..=92 if sc.faults => sim.crash(n),
            93..=95 if sc.faults => sim.start(n),
            96..=98 if sc.faults && sc.nodes > 1 => {
                let m = (n + 1 + sim.rng.range(0, sc.nodes as u64 - 2) as usize) % sc.nodes;
                if sim.is_cut(n, m) {
                    sim.heal(n, m);
                    if sc.line && n.abs_diff(m) != 1 {
                        sim.unlink(n, m);
                    }
                } else {
                    sim.partition(n, m);
                }
            }
            _ => {}
        }
        let pause = sim.rng.range(0, 60);
        sim.run_for(pause);
        sim.check_no_overfill()
            .map_err(|e| format!("step {step}: overfill: {e}"))?;
        sim.check_no_fill_after_expiry()
            .map_err(|e| format!("step {step}: {e}"))?;
    }
    // Quiet: every node up, every link of the topology back, nothing lost.
    sim.net = NetModel::calm();
    for i in 0..sc.nodes {
        sim.start(i);
    }
    for a in 0..sc.nodes {
        for b in a + 1..sc.nodes {
            sim.heal(a, b);
            if sc.line && b != a + 1 {
                sim.unlink(a, b);
            }
        }
    }
    sim.run_for(60_000);
    sim.check_no_overfill()
        .map_err(|e| format!("after quiet: overfill: {e}"))?;
    sim.check_converged().map_err(|e| {
        format!(
            "after quiet: not converged ({} rejected): {e}",
            sim.rejected
        )
    })?;
    sim.check_nothing_planted()
        .map_err(|e| format!("after quiet: {e}"))?;
    sim.check_no_fill_after_expiry()
        .map_err(|e| format!("after quiet: {e}"))?;

    if sim.rejected > 0 {
        return Err(format!(
            "{} honest gossip messages were rejected",
            sim.rejected
        ));
    }
    Ok(())
}

#[test]
fn no_overfill_and_convergence_under_loss_partitions_and_restarts() {
    if let Ok(s) = std::env::var("PEERBOOK_SIM_SEED") {
        let seed: u64 = s.parse().expect("PEERBOOK_SIM_SEED must be a number");
        if let Err(e) = run_seed(seed) {
            panic!("seed {seed}: {e}");
        }
        return;
    }
    let seeds: u64 = std::env::var("PEERBOOK_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let mut failures = Vec::new();
    for seed in 0..seeds {
        if let Err(e) = run_seed(seed) {
            failures.push(format!("seed {seed}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {seeds} seeds failed (reproduce one with PEERBOOK_SIM_SEED=<seed>):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
