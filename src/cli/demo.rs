//! `peerbook demo`: a trading bot for trying a network out (what the
//! predecessors' demo client did). Through one node's API it places and
//! cancels random orders around a mid price that drifts in a random walk,
//! at a steady rate, one printed line per action; Ctrl-C (or `--count`)
//! stops it, with a summary. Two demos on two nodes trade with each other.
//!
//! Most orders rest (good-till-cancelled, up to `--spread` percent away
//! from the mid); one in four crosses the mid as immediate-or-cancel and
//! takes what rests there. A node never trades with itself (self-trade
//! prevention cancels such an order), so a demo alone builds a book but
//! trades only with other nodes' orders. Prices and quantities follow the
//! market's tick and lot, read from the node. The same `--seed` makes the
//! same choices.

use std::time::{Duration, Instant};

use clap::Args;
use rust_decimal::Decimal;
use serde::Serialize;

use super::client::{ApiArgs, Client, ClientError};
use super::format::short_id;
use super::order::{cancel, place, PlaceArgs};
use crate::api::status::Status;
use crate::clock::now_ms;
use crate::engine::{OrderInfo, OrderKind, OrderStatus, Tif};
use crate::market::Side;
use crate::shutdown::{self, Shutdown};

/// Open orders the bot keeps at most; past this it cancels before it
/// places again.
const MAX_OPEN: usize = 12;

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Market to trade
    #[arg(long, default_value = "BTC-USD")]
    pub market: String,
    /// Actions per second (`2` or `2/s`)
    #[arg(long, default_value = "2", value_parser = parse_rate)]
    pub rate: f64,
    /// The mid price to start from
    #[arg(long, default_value = "100", value_parser = positive)]
    pub mid: Decimal,
    /// How far from the mid orders go, at most, in percent of the mid
    #[arg(long, default_value = "1", value_parser = positive)]
    pub spread: Decimal,
    /// The largest quantity of one order
    #[arg(long, default_value = "1", value_parser = positive)]
    pub size: Decimal,
    /// Seed of the random choices [default: from the clock]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop after this many actions [default: run until Ctrl-C]
    #[arg(long)]
    pub count: Option<u64>,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let n = s.trim().trim_end_matches("/s").trim();
    match n.parse::<f64>() {
        Ok(r) if r > 0.0 && r <= 1000.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a rate between 0 and 1000 actions per second (e.g. 2 or 2/s)"
        )),
    }
}

fn positive(s: &str) -> Result<Decimal, String> {
    match s.trim().parse::<Decimal>() {
        Ok(d) if d > Decimal::ZERO => Ok(d),
        _ => Err(format!("{s:?} is not a positive decimal number")),
    }
}

/// What the bot did, for the summary.
#[derive(Debug, Default, Serialize)]
struct Summary {
    actions: u64,
    placed: u64,
    cancelled: u64,
    refused: u64,
    fills: u64,
    filled_quantity: Decimal,
    open_orders: usize,
    start_mid: Decimal,
    end_mid: Decimal,
    seconds: f64,
    seed: u64,
}

/// One action's outcome, as `--json` prints it (one object per line).
#[derive(Serialize)]
struct Line<'a> {
    n: u64,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    order: Option<&'a OrderInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

struct Bot {
    client: Client,
    json: bool,
    rng: Rng,
    market: String,
    tick: Decimal,
    lot: Decimal,
    /// The mid price, in ticks.
    mid: u64,
    /// How far orders go from the mid, in ticks.
    band: u64,
    max_lots: u64,
    /// Ids of this bot's orders that were open when it last looked.
    open: Vec<String>,
    summary: Summary,
}

impl DemoArgs {
    pub async fn run(self) -> Result<(), ClientError> {
        let client = Client::new(&self.api)?;
        let status: Status = client.get("/api/v1/status").await?;
        let Some(market) = status.books.iter().find(|b| b.name == self.market) else {
            let names: Vec<&str> = status.books.iter().map(|b| b.name.as_str()).collect();
            return Err(ClientError::Usage(format!(
                "the node does not trade {}; it trades {}",
                self.market,
                names.join(", ")
            )));
        };
        let (tick, lot) = (market.tick, market.lot);
        let Some(mid) = to_units(self.mid, tick) else {
            return Err(ClientError::Usage(format!(
                "--mid {} is too large for {}'s tick of {tick}",
                self.mid, self.market
            )));
        };
        let mid = mid.max(2);
        let band = self
            .mid
            .checked_mul(self.spread)
            .and_then(|v| to_units(v / Decimal::ONE_HUNDRED, tick))
            .unwrap_or(u64::MAX)
            .clamp(1, mid - 1);
        let seed = self.seed.unwrap_or_else(now_ms);
        let mut bot = Bot {
            client,
            json: self.api.json,
            rng: Rng::new(seed),
            market: self.market.clone(),
            tick,
            lot,
            mid,
            band,
            max_lots: to_units(self.size, lot).unwrap_or(MAX_UNITS).max(1),
            open: Vec::new(),
            summary: Summary {
                seed,
                start_mid: units(mid, tick),
                ..Summary::default()
            },
        };
        if !bot.json {
            println!(
                "demo on {} at {}: {} around {} (±{}%), {}/s, seed {seed}{}; Ctrl-C stops",
                status.peer_id,
                bot.client.base(),
                bot.market,
                bot.summary.start_mid,
                self.spread,
                self.rate,
                self.count
                    .map_or_else(String::new, |n| format!(", {n} actions"))
            );
        }

        let stop = Shutdown::new();
        let watcher = {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    got = shutdown::signal() => {
                        if let Err(e) = got {
                            tracing::warn!(error = %e, "cannot watch for Ctrl-C");
                            return;
                        }
                        stop.trigger();
                    }
                    _ = stop.wait() => {}
                }
            })
        };
        let started = Instant::now();
        let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / self.rate));
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut outcome = Ok(());
        while self.count.is_none_or(|n| bot.summary.actions < n) {
            tokio::select! {
                _ = pace.tick() => {}
                _ = stop.wait() => break,
            }
            if let Err(e) = bot.act().await {
                outcome = Err(e);
                break;
            }
        }
        stop.trigger();
        let _ = watcher.await;

        bot.summary.seconds = started.elapsed().as_secs_f64();
        bot.summary.end_mid = units(bot.mid, bot.tick);
        bot.summary.open_orders = bot.open.len();
        let s = &bot.summary;
        if bot.json {
            // One line, like every action before it (JSON lines).
            match serde_json::to_string(&serde_json::json!({ "summary": s })) {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("error: cannot print JSON: {e}"),
            }
        } else {
            println!(
                "demo: {} actions in {:.1} s: {} placed, {} cancelled, {} refused; \
                 {} fills for {}; mid {} -> {}; {} of its orders open; seed {}",
                s.actions,
                s.seconds,
                s.placed,
                s.cancelled,
                s.refused,
                s.fills,
                s.filled_quantity.normalize(),
                s.start_mid,
                s.end_mid,
                s.open_orders,
                s.seed
            );
        }
        outcome
    }
}

/// The most ticks or lots the bot works with: far beyond any real price
/// or size, and far from overflowing its arithmetic.
const MAX_UNITS: u64 = 1 << 50;

/// `value` in whole `step`s, rounded; `None` beyond [`MAX_UNITS`].
fn to_units(value: Decimal, step: Decimal) -> Option<u64> {
    use rust_decimal::prelude::ToPrimitive;
    value
        .checked_div(step)
        .and_then(|u| u.round().to_u64())
        .filter(|u| *u <= MAX_UNITS)
}

fn units(n: u64, step: Decimal) -> Decimal {
    Decimal::from(n)
        .checked_mul(step)
        .unwrap_or(Decimal::MAX)
        .normalize()
}

impl Bot {
    /// One action: move the mid, then cancel or place. Only an unreachable
    /// node stops the bot; a refusal is printed and the bot goes on.
    async fn act(&mut self) -> Result<(), ClientError> {
        self.summary.actions += 1;
        let n = self.summary.actions;
        let step = (self.band / 8).max(1);
        let moved = self.mid + self.rng.range(0, 2 * step);
        self.mid = moved.saturating_sub(step).max(self.band + 1);

        let cancel_one =
            !self.open.is_empty() && (self.open.len() >= MAX_OPEN || self.rng.chance(0.3));
        if cancel_one {
            let i = self.rng.range(0, self.open.len() as u64 - 1) as usize;
            let id = self.open.swap_remove(i);
            match cancel(&self.client, &id).await {
                Ok(o) => {
                    self.summary.cancelled += 1;
                    self.say(n, "cancel", Some(&o), Some(&id), None, || {
                        format!("cancel {}  -> {}", short_id(&id), o.status)
                    });
                }
                Err(ClientError::Api { message, .. }) => {
                    // Filled or gone meanwhile: nothing left to cancel.
                    self.say(n, "cancel", None, Some(&id), Some(message.clone()), || {
                        format!("cancel {}  -> {message}", short_id(&id))
                    });
                }
                Err(e) => return Err(e),
            }
            return Ok(());
        }

        let buy = self.rng.chance(0.5);
        let cross = self.rng.chance(0.25);
        let price = if cross {
            let off = self.rng.range(0, self.band / 2);
            if buy {
                self.mid + off
            } else {
                self.mid - off
            }
        } else {
            let off = self.rng.range(1, self.band);
            if buy {
                self.mid - off
            } else {
                self.mid + off
            }
        };
        let args = PlaceArgs {
            market: self.market.clone(),
            side: if buy { Side::Buy } else { Side::Sell },
            price: Some(units(price, self.tick)),
            quantity: units(self.rng.range(1, self.max_lots), self.lot),
            kind: OrderKind::Limit,
            tif: Some(if cross { Tif::Ioc } else { Tif::Gtc }),
            client_id: None,
            expires_at: None,
            expires_in: None,
        };
        let what = format!(
            "place  {:<4} {} @ {} {}",
            args.side.as_str(),
            args.quantity,
            units(price, self.tick),
            args.tif.map(|t| t.to_string()).unwrap_or_default()
        );
        match place(&self.client, &args).await {
            Ok(o) => {
                self.summary.placed += 1;
                self.summary.fills += o.fills.len() as u64;
                self.summary.filled_quantity += o.filled;
                if matches!(o.status, OrderStatus::Open | OrderStatus::Taking) {
                    self.open.push(o.id.clone());
                }
                self.say(n, "place", Some(&o), None, None, || {
                    let mut line = format!("{what}  -> {} {}", short_id(&o.id), o.status);
                    if !o.fills.is_empty() {
                        let n = o.fills.len();
                        line.push_str(&format!(
                            " ({} in {n} fill{})",
                            o.filled,
                            if n == 1 { "" } else { "s" }
                        ));
                    }
                    if let Some(r) = &o.reason {
                        line.push_str(&format!(" ({r})"));
                    }
                    line
                });
            }
            Err(ClientError::Api { message, .. }) => {
                self.summary.refused += 1;
                self.say(n, "place", None, None, Some(message.clone()), || {
                    format!("{what}  -> refused: {message}")
                });
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn say(
        &self,
        n: u64,
        action: &'static str,
        order: Option<&OrderInfo>,
        id: Option<&str>,
        error: Option<String>,
        human: impl FnOnce() -> String,
    ) {
        if self.json {
            match serde_json::to_string(&Line {
                n,
                action,
                order,
                id,
                error,
            }) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("error: cannot print JSON: {e}"),
            }
        } else {
            println!("#{n:<4} {}", human());
        }
    }
}

/// The bot's random choices: splitmix64, small and seedable, so the same
/// `--seed` makes the same choices on every machine and every version.
/// (The engine's simulator uses the same generator; the demo keeps its own
/// so the binary needs none of the test kit.)
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_take_a_plain_number_or_a_per_second_suffix() {
        assert_eq!(parse_rate("5"), Ok(5.0));
        assert_eq!(parse_rate("0.5/s"), Ok(0.5));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn prices_and_quantities_land_on_the_grid() {
        let tick = Decimal::new(1, 2);
        assert_eq!(to_units(Decimal::new(100_004, 3), tick), Some(10_000));
        assert_eq!(to_units(Decimal::MAX, tick), None);
        assert_eq!(units(10_001, tick), Decimal::new(10_001, 2));
        assert_eq!(units(100, tick).to_string(), "1");
    }

    #[test]
    fn a_seed_makes_the_same_choices_it_always_made() {
        // splitmix64 from seed 42, as the demo has drawn it from the start.
        let mut r = Rng::new(42);
        let raw: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert_eq!(
            raw,
            [
                2949826092126892291,
                5139283748462763858,
                6349198060258255764,
                701532786141963250
            ]
        );
        let mut r = Rng::new(42);
        let picks: Vec<u64> = (0..8).map(|_| r.range(1, 100)).collect();
        assert_eq!(picks, [92, 59, 65, 51, 63, 26, 9, 6]);
        let mut r = Rng::new(42);
        let coins: Vec<bool> = (0..8).map(|_| r.chance(0.25)).collect();
        assert_eq!(coins, [true, false, false, true, false, true, false, false]);
    }
}
