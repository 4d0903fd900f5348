//! Seeded, reproducible workloads for the matching benchmark.
//!
//! Every workload is generated once, message by message, against a *shadow*
//! peerbook `Book`, so the generator knows which orders are alive, how much
//! is left of them and what the book looks like; the resulting message list
//! is then replayed, untouched, against every engine. The shadow also gives
//! the expected trade count and final digest of the replay.
//!
//! Two generator families:
//! - `exchange-core-mix`, modelled on exchange-core's published throughput
//!   benchmark (its `TestOrdersGenerator`): ~1,000 resting orders over a few
//!   hundred price levels, then a stream of 9% GTC, 3% IOC, 6% cancel and 82%
//!   move (a price amendment toward the last trade price), order sizes
//!   `1 + a*b*c` with `a, b, c` uniform in `[0, 6)` as in exchange-core.
//! - `static`, `normal`, `wide-swings`, `flash-crash`, modelled on the public
//!   methodology of the flash1 matching-engine benchmark: a geometric random
//!   walk of the mid price, order distance from the mid drawn from a
//!   power-law depth profile with a hump near the touch, 15% IOC, 5% priced
//!   aggressively, 95% of the other orders cancelled after an exponential
//!   lifetime (longer the deeper they rest), 20% modified (quantity + 1, often
//!   a one-tick reprice), ~2% duplicate cancels and stale modifies; the
//!   flash-crash scenario adds a fast fall of the mid with panic selling that
//!   sweeps far through the bids, then a partial recovery.
//!
//! Fairness with matchcore 0.4.0: a marketable limit order there matches with
//! no price limit (it sweeps through its own limit). It still matches exactly
//! like a correct book when the order's quantity does not exceed what is
//! available within its limit, so every aggressive order (new, move or
//! modify) is kept within that: a new order's quantity is capped to it, and a
//! move or reprice that could not fill completely is turned into a passive
//! one at the touch. Orders therefore still walk several levels, but never
//! run out of liquidity inside their limit.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use peerbook::book::{Book, BookConfig, Fill, NewOrder, OrderType, TimeInForce};
use peerbook::market::{MarketSpec, Price, Qty, Side};

use super::rng::Rng;

/// One message of a workload. Ids are dense from 0; the owner of every order
/// is its id, so self-trade prevention never triggers.
#[derive(Clone, Copy, Debug)]
pub enum Msg {
    /// A new limit order, good-till-cancelled or immediate-or-cancel.
    New {
        id: u32,
        buy: bool,
        ioc: bool,
        price: u64,
        qty: u32,
    },
    /// Cancel; may name an order that is already gone (a late cancel).
    Cancel { id: u32 },
    /// Price change of a live order; `qty` is its remaining quantity, for
    /// engines that can only cancel and re-add.
    Move {
        id: u32,
        buy: bool,
        price: u64,
        qty: u32,
    },
    /// Quantity change (new remaining `qty`) and, if `reprice`, price change;
    /// may name an order that is already gone (a stale modify).
    Modify {
        id: u32,
        buy: bool,
        price: u64,
        qty: u32,
        reprice: bool,
    },
}

/// A generated workload: prefill (not timed) then the measured messages.
pub struct Workload {
    pub name: &'static str,
    pub prefill: Vec<Msg>,
    pub msgs: Vec<Msg>,
    /// Ids are `0..ids`.
    pub ids: usize,
    /// Trades (fills) the measured messages make, per the shadow book.
    pub trades: u64,
    /// Digest of the shadow book after the last message.
    pub digest: [u8; 32],
    /// One line of statistics for the report.
    pub stats: String,
}

/// The market every workload trades (tick 0.01, lot 1).
pub fn spec() -> MarketSpec {
    MarketSpec::new(
        "BENCH",
        rust_decimal::Decimal::new(1, 2),
        rust_decimal::Decimal::ONE,
    )
    .expect("a valid market")
}

/// The generator's view of the book while it writes the workload.
struct Shadow {
    book: Book,
    fills: Vec<Fill>,
    /// Live order ids, for picking one at random, and each id's index there.
    live: Vec<u32>,
    pos: Vec<u32>,
    last_trade: u64,
    out: Vec<Msg>,
    // statistics of the measured part
    kinds: [u64; 5],
    trades: u64,
    trading_msgs: u64,
    samples: u64,
    sum_orders: u64,
    sum_levels: u64,
    peak_orders: usize,
    peak_levels: usize,
    /// Orders changed to keep them within the liquidity inside their limit.
    adjusted: std::cell::Cell<u64>,
    /// Most fills and most price levels one message swept.
    max_fills: usize,
    max_sweep: u64,
    /// Lowest and highest best bid seen.
    bid_range: (u64, u64),
}

const GONE: u32 = u32::MAX;

impl Shadow {
    fn new(last_trade: u64) -> Self {
        Shadow {
            book: Book::with_config(
                spec(),
                BookConfig {
                    capacity: 1 << 16,
                    ..BookConfig::default()
                },
            ),
            fills: Vec::new(),
            live: Vec::new(),
            pos: Vec::new(),
            last_trade,
            out: Vec::new(),
            kinds: [0; 5],
            trades: 0,
            trading_msgs: 0,
            samples: 0,
            sum_orders: 0,
            sum_levels: 0,
            peak_orders: 0,
            peak_levels: 0,
            adjusted: std::cell::Cell::new(0),
            max_fills: 0,
            max_sweep: 0,
            bid_range: (u64::MAX, 0),
        }
    }

    /// Starts the measured part: what was emitted so far is the prefill.
    fn start_measuring(&mut self) -> Vec<Msg> {
        self.kinds = [0; 5];
        self.trades = 0;
        self.trading_msgs = 0;
        self.adjusted.set(0);
        self.max_fills = 0;
        self.max_sweep = 0;
        self.bid_range = (u64::MAX, 0);
        std::mem::take(&mut self.out)
    }

    fn add_live(&mut self, id: u32) {
        let i = id as usize;
        if self.pos.len() <= i {
            self.pos.resize(i + 1, GONE);
        }
        if self.pos[i] == GONE {
            self.pos[i] = self.live.len() as u32;
            self.live.push(id);
        }
    }

    fn remove_live(&mut self, id: u32) {
        let i = id as usize;
        if i >= self.pos.len() || self.pos[i] == GONE {
            return;
        }
        let at = self.pos[i] as usize;
        self.pos[i] = GONE;
        self.live.swap_remove(at);
        if let Some(&moved) = self.live.get(at) {
            self.pos[moved as usize] = at as u32;
        }
    }

    fn random_live(&self, rng: &mut Rng) -> Option<u32> {
        if self.live.is_empty() {
            return None;
        }
        Some(self.live[rng.below(self.live.len() as u64) as usize])
    }

    fn side(buy: bool) -> Side {
        if buy {
            Side::Buy
        } else {
            Side::Sell
        }
    }

    /// Whether an order on `buy`'s side at `price` would trade at once.
    fn crosses(&self, buy: bool, price: u64) -> bool {
        if buy {
            self.book.best_ask().is_some_and(|(p, _)| p.0 <= price)
        } else {
            self.book.best_bid().is_some_and(|(p, _)| p.0 >= price)
        }
    }

    /// What a taker could trade at once within `limit`, up to `want`.
    fn available(&self, buy: bool, limit: u64, want: u64) -> u64 {
        let mut got = 0;
        for o in self.book.iter_side(Self::side(!buy)) {
            let ok = if buy {
                o.price.0 <= limit
            } else {
                o.price.0 >= limit
            };
            if !ok {
                break;
            }
            got += o.remaining.0;
            if got >= want {
                return want;
            }
        }
        got
    }

    /// The best opposite price one tick on the passive side: where an order
    /// that must not trade can go to join the touch.
    fn passive_touch(&self, buy: bool) -> Option<u64> {
        if buy {
            self.book
                .best_ask()
                .map(|(p, _)| p.0.saturating_sub(1).max(1))
        } else {
            self.book.best_bid().map(|(p, _)| p.0 + 1)
        }
    }

    /// Applies a message to the shadow book and records it.
    fn apply(&mut self, m: Msg) {
        self.fills.clear();
        let kind;
        match m {
            Msg::New {
                id,
                buy,
                ioc,
                price,
                qty,
            } => {
                kind = if ioc { 1 } else { 0 };
                let order = NewOrder {
                    id: id as u64,
                    owner: id,
                    side: Self::side(buy),
                    kind: OrderType::Limit,
                    price: Some(Price(price)),
                    qty: Qty(qty as u64),
                    tif: if ioc {
                        TimeInForce::Ioc
                    } else {
                        TimeInForce::Gtc
                    },
                };
                let out = self
                    .book
                    .place(order, &mut self.fills)
                    .expect("the generator makes valid orders");
                if out.is_resting() {
                    self.add_live(id);
                }
            }
            Msg::Cancel { id } => {
                kind = 2;
                if self.book.cancel(id as u64).is_ok() {
                    self.remove_live(id);
                }
            }
            Msg::Move { id, price, .. } => {
                kind = 3;
                if let Ok(out) = self
                    .book
                    .move_order(id as u64, Price(price), &mut self.fills)
                {
                    if !out.is_resting() {
                        self.remove_live(id);
                    }
                }
            }
            Msg::Modify {
                id,
                price,
                qty,
                reprice,
                ..
            } => {
                kind = 4;
                if self.book.amend(id as u64, Qty(qty as u64)).is_ok() && reprice {
                    let out = self
                        .book
                        .move_order(id as u64, Price(price), &mut self.fills)
                        .expect("a live order moves");
                    if !out.is_resting() {
                        self.remove_live(id);
                    }
                }
            }
        }
        for i in 0..self.fills.len() {
            let f = self.fills[i];
            if f.maker_remaining.0 == 0 {
                self.remove_live(f.maker as u32);
            }
            self.last_trade = f.price.0;
        }
        if let (Some(first), Some(last)) = (self.fills.first(), self.fills.last()) {
            self.max_fills = self.max_fills.max(self.fills.len());
            self.max_sweep = self.max_sweep.max(first.price.0.abs_diff(last.price.0));
        }
        if let Some((bid, _)) = self.book.best_bid() {
            self.bid_range = (self.bid_range.0.min(bid.0), self.bid_range.1.max(bid.0));
        }
        self.kinds[kind] += 1;
        self.trades += self.fills.len() as u64;
        self.trading_msgs += u64::from(!self.fills.is_empty());
        self.out.push(m);
        if self.out.len().is_multiple_of(512) {
            let (orders, levels) = (
                self.book.len(),
                self.book.level_count(Side::Buy) + self.book.level_count(Side::Sell),
            );
            self.samples += 1;
            self.sum_orders += orders as u64;
            self.sum_levels += levels as u64;
            self.peak_orders = self.peak_orders.max(orders);
            self.peak_levels = self.peak_levels.max(levels);
        }
    }

    /// Caps a new order's quantity so that it never needs liquidity beyond
    /// its limit (see the module documentation).
    fn cap_new(&self, buy: bool, price: u64, qty: u32) -> u32 {
        if self.crosses(buy, price) {
            let capped = self.available(buy, price, qty as u64).max(1) as u32;
            if capped < qty {
                self.adjusted.set(self.adjusted.get() + 1);
            }
            capped
        } else {
            qty
        }
    }

    fn finish(self, name: &'static str, prefill: Vec<Msg>, ids: usize) -> Workload {
        let n = self.out.len().max(1) as f64;
        let pct = |k: u64| 100.0 * k as f64 / n;
        let samples = self.samples.max(1);
        let stats = format!(
            "workload {name} msgs={} prefill={} new_gtc={:.1}% new_ioc={:.1}% cancel={:.1}% \
             move={:.1}% modify={:.1}% trading_msgs={:.1}% trades={} ({:.1}% of msgs) resting_avg={} \
             resting_peak={} levels_avg={} levels_peak={} kept_within_limit={:.2}% \
             best_bid_range={}..{} max_fills_per_msg={} max_sweep_ticks={}",
            self.out.len(),
            prefill.len(),
            pct(self.kinds[0]),
            pct(self.kinds[1]),
            pct(self.kinds[2]),
            pct(self.kinds[3]),
            pct(self.kinds[4]),
            pct(self.trading_msgs),
            self.trades,
            pct(self.trades),
            self.sum_orders / samples,
            self.peak_orders,
            self.sum_levels / samples,
            self.peak_levels,
            pct(self.adjusted.get()),
            self.bid_range.0,
            self.bid_range.1,
            self.max_fills,
            self.max_sweep,
        );
        Workload {
            name,
            prefill,
            digest: self.book.digest(),
            msgs: self.out,
            ids,
            trades: self.trades,
            stats,
        }
    }
}

/// exchange-core's order size: `1 + a*b*c`, each uniform in `[0, 6)`.
fn ec_size(rng: &mut Rng) -> u32 {
    1 + (rng.below(6) * rng.below(6) * rng.below(6)) as u32
}

/// The exchange-core-like mix: about `3M * scale` measured messages.
pub fn exchange_core_mix(scale: f64, seed: u64) -> Workload {
    const TARGET: usize = 1000;
    const P0: u64 = 100_000;
    const DEVIATION: f64 = 6_000.0;
    const RANGE: u64 = 4_000;
    let n = ((3_000_000.0 * scale) as usize).max(2_000);
    let mut rng = Rng::new(seed);
    let mut sh = Shadow::new(P0);
    let mut next_id = 0u32;
    let mut direction: i64 = 0;

    // A passive GTC order around the last trade price, as exchange-core
    // prices its limit orders: bids below it, asks above it.
    let gtc = |sh: &mut Shadow, rng: &mut Rng, id: u32, buy: bool| {
        let dev = 1 + (rng.unit().powi(2) * DEVIATION) as u64;
        let sum: u64 = (0..4).map(|_| rng.below(dev)).sum();
        let offset = (sum / 4 * 2).abs_diff(dev);
        let price = if buy {
            sh.last_trade.saturating_sub(offset).max(1)
        } else {
            sh.last_trade + offset
        };
        let qty = sh.cap_new(buy, price, ec_size(rng));
        sh.apply(Msg::New {
            id,
            buy,
            ioc: false,
            price,
            qty,
        });
    };

    while sh.book.len() < TARGET {
        let buy = sh.book.level_count(Side::Buy) <= sh.book.level_count(Side::Sell);
        gtc(&mut sh, &mut rng, next_id, buy);
        next_id += 1;
    }
    let prefill = sh.start_measuring();

    for _ in 0..n {
        // The side leans with the price direction, which flips at the ends
        // of a band around the start price (as in exchange-core).
        if sh.last_trade <= P0 - RANGE {
            direction = 1;
        } else if sh.last_trade >= P0 + RANGE {
            direction = -1;
        }
        let buy = rng.below(4) as i64 + direction >= 2;
        let mut r = rng.below(100);
        let len = sh.book.len();
        if r < 9 && len > TARGET * 11 / 10 {
            r = 15; // too many orders: cancel instead
        } else if (12..18).contains(&r) && len < TARGET * 9 / 10 {
            r = 0; // too few: place instead
        }
        if r < 9 {
            gtc(&mut sh, &mut rng, next_id, buy);
            next_id += 1;
        } else if r < 12 {
            // IOC through the whole book (limit far beyond it).
            let price = if buy { 2 * P0 } else { 1 };
            let qty = sh.cap_new(buy, price, ec_size(&mut rng));
            sh.apply(Msg::New {
                id: next_id,
                buy,
                ioc: true,
                price,
                qty,
            });
            next_id += 1;
        } else {
            let Some(id) = sh.random_live(&mut rng) else {
                continue;
            };
            if r < 18 {
                sh.apply(Msg::Cancel { id });
                continue;
            }
            let o = sh.book.get(id as u64).expect("live orders are in the book");
            let buy = o.side == Side::Buy;
            let prev = o.price.0;
            let last = sh.last_trade;
            // Move 1% of the way to the last trade price, at least a tick.
            let delta = (last as f64 - prev as f64) * 0.01;
            let step = if prev > last {
                delta.floor() as i64
            } else if prev < last {
                delta.ceil() as i64
            } else if rng.below(2) == 0 {
                -1
            } else {
                1
            };
            let mut price = prev.saturating_add_signed(step).max(1);
            let qty = o.remaining.0;
            if sh.crosses(buy, price) && sh.available(buy, price, qty) < qty {
                price = sh.passive_touch(buy).unwrap_or(price);
                sh.adjusted.set(sh.adjusted.get() + 1);
            }
            if price == prev {
                price = if buy {
                    prev.saturating_sub(1).max(1)
                } else {
                    prev + 1
                };
                if price == prev {
                    continue;
                }
            }
            sh.apply(Msg::Move {
                id,
                buy,
                price,
                qty: qty as u32,
            });
        }
    }
    sh.finish("exchange-core-mix", prefill, next_id as usize)
}

/// One of the flash1-like scenarios.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    pub name: &'static str,
    /// Typical relative excursion of the mid over the whole run.
    swing: f64,
    /// A crash: (start, length) as fractions of the run, the fall and the
    /// recovery as fractions of the mid.
    crash: Option<(f64, f64, f64, f64)>,
}

/// The four flash1-like scenarios, in report order.
pub const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "static",
        swing: 0.0,
        crash: None,
    },
    Scenario {
        name: "normal",
        swing: 0.02,
        crash: None,
    },
    Scenario {
        name: "wide-swings",
        swing: 0.25,
        crash: None,
    },
    Scenario {
        name: "flash-crash",
        swing: 0.02,
        crash: Some((0.4, 0.003, 0.2, 0.1)),
    },
];

/// Power-law depth profile with a hump near the touch: distance in ticks
/// from the mid, `P(d) ~ (d + 1)^-2.23 + hump(d)`, `d` in `[0, 4000]`.
struct Depth {
    cdf: Vec<f64>,
}

impl Depth {
    fn new() -> Self {
        const ALPHA: f64 = 2.23;
        let mut cdf = Vec::with_capacity(4001);
        let mut acc = 0.0;
        for d in 0..=4000 {
            let x = d as f64;
            let hump = 0.5 * (-((x - 8.0) / 3.0).powi(2) / 2.0).exp();
            acc += (x + 1.0).powf(-ALPHA) + hump;
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Depth { cdf }
    }

    fn sample(&self, rng: &mut Rng) -> u64 {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u) as u64
    }
}

/// A lifecycle event scheduled for later.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Cancel(u32),
    Modify(u32),
}

/// A flash1-like workload: `1M * scale` new orders, about twice as many
/// messages.
pub fn flash(scenario: Scenario, scale: f64, seed: u64) -> Workload {
    const MID0: f64 = 30_000.0;
    const MEDIAN_LIFE: f64 = 431.0;
    let n = ((1_000_000.0 * scale) as u64).max(2_000);
    let mut rng = Rng::new(seed);
    let depth = Depth::new();
    let mut sh = Shadow::new(MID0 as u64);
    let mut events: BinaryHeap<Reverse<(u64, u64, Event)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut sides: Vec<bool> = Vec::with_capacity(n as usize);
    // The swing is the typical excursion over a full-size run of 1M orders,
    // so a scaled-down run is a shorter session of the same market.
    let step = scenario.swing / 1_000_000f64.sqrt();
    let mut log_walk = 0.0f64;

    let mut schedule = |events: &mut BinaryHeap<_>, at: u64, e: Event| {
        events.push(Reverse((at, seq, e)));
        seq += 1;
    };

    for t in 0..n {
        // Lifecycle events due now, in time order.
        while let Some(&Reverse((at, _, e))) = events.peek() {
            if at > t {
                break;
            }
            events.pop();
            match e {
                Event::Cancel(id) => sh.apply(Msg::Cancel { id }),
                Event::Modify(id) => {
                    let buy = sides[id as usize];
                    let m = match sh.book.get(id as u64) {
                        Some(o) => {
                            let qty = o.remaining.0 + 1;
                            let mut reprice = rng.chance(0.8);
                            // One tick toward the other side.
                            let price = if buy {
                                o.price.0 + 1
                            } else {
                                o.price.0.saturating_sub(1).max(1)
                            };
                            if reprice
                                && (price == o.price.0
                                    || sh.crosses(buy, price)
                                        && sh.available(buy, price, qty) < qty)
                            {
                                reprice = false;
                                sh.adjusted.set(sh.adjusted.get() + 1);
                            }
                            Msg::Modify {
                                id,
                                buy,
                                price: if reprice { price } else { o.price.0 },
                                qty: qty as u32,
                                reprice,
                            }
                        }
                        // Stale: the order is gone; every engine rejects it.
                        None => Msg::Modify {
                            id,
                            buy,
                            price: 1,
                            qty: 1,
                            reprice: true,
                        },
                    };
                    sh.apply(m);
                }
            }
        }

        // The mid: a geometric random walk, times the crash profile.
        log_walk += step * rng.normal() - step * step / 2.0;
        let mut log_mid = log_walk;
        let mut crashing = false;
        if let Some((start, len, fall, recover)) = scenario.crash {
            let x = t as f64 / n as f64;
            let fall_log = (1.0 - fall).ln();
            let back_log = (1.0 - fall + recover).ln();
            if x >= start && x < start + len {
                log_mid += fall_log * (x - start) / len;
                crashing = true;
            } else if x >= start + len {
                let y = ((x - start - len) / (5.0 * len)).min(1.0);
                log_mid += fall_log + (back_log - fall_log) * y;
            }
        }
        let mid = (MID0 * log_mid.exp()).round().max(10.0) as u64;

        let id = t as u32;
        let panic_sell = crashing && rng.chance(0.05);
        let buy = if crashing {
            rng.chance(0.3)
        } else {
            rng.chance(0.5)
        } && !panic_sell;
        sides.push(buy);
        let ioc = panic_sell || rng.chance(0.15);
        let aggressive = rng.chance(0.02);
        let d = depth.sample(&mut rng);
        let (price, qty) = if panic_sell {
            // Dump a large quantity far through the bids.
            (
                mid.saturating_sub(3_000).max(1),
                500 + rng.below(2_000) as u32,
            )
        } else {
            // Passive buys and aggressive sells go below the mid.
            let below = buy != aggressive;
            // Passive orders rest at least a tick away from the mid.
            let d = if aggressive { d } else { d + 1 };
            let price = if below {
                mid.saturating_sub(d).max(1)
            } else {
                mid + d
            };
            (price, 1 + rng.below(100) as u32)
        };
        let qty = sh.cap_new(buy, price, qty);
        sh.apply(Msg::New {
            id,
            buy,
            ioc,
            price,
            qty,
        });
        if ioc {
            continue;
        }
        // Lifecycle: most orders are cancelled, deeper ones live longer;
        // some are modified first; a few cancels and modifies are repeated.
        let life = rng.exp_median(MEDIAN_LIFE * (1.0 + d as f64 / 16.0)) as u64 + 1;
        let cancels = rng.chance(0.95);
        if cancels {
            schedule(&mut events, t + life, Event::Cancel(id));
            if rng.chance(0.02) {
                schedule(&mut events, t + life + 1 + rng.below(50), Event::Cancel(id));
            }
        }
        if rng.chance(0.2) {
            let at = if cancels {
                t + (life as f64 * rng.unit()) as u64
            } else {
                t + rng.exp_median(MEDIAN_LIFE) as u64
            };
            schedule(&mut events, at.max(t + 1), Event::Modify(id));
            if cancels && rng.chance(0.02) {
                schedule(&mut events, t + life + 1 + rng.below(50), Event::Modify(id));
            }
        }
    }
    let prefill = Vec::new();
    sh.finish(scenario.name, prefill, n as usize)
}
