//! Adapters that replay workload messages on each engine: peerbook itself,
//! matchcore 0.4.0 and rust_ob 2.5.3. Each returns the number of trades a
//! message made, so the benchmark can check that the engines did the same
//! work.
//!
//! Id translation, where an engine needs it, is a flat vector indexed by the
//! workload's dense ids (no hash map), as the flash1 harness does for its
//! baseline adapters, so that no engine pays for its adapter's bookkeeping.

use matchcore as mc;
use peerbook::book::{Book, BookConfig, Fill, NewOrder, OrderType, TimeInForce};
use peerbook::market::{Price, Qty, Side};
use rust_decimal::Decimal;

use super::workload::{spec, Msg};

/// An engine under test.
pub trait Engine {
    const NAME: &'static str;
    /// A fresh engine for a workload with ids `0..ids`.
    fn new(ids: usize) -> Self;
    /// Applies one message; returns the number of trades it made.
    fn apply(&mut self, m: &Msg) -> u32;
}

/// peerbook's `Book`, used as the engine's node will use it.
pub struct Peerbook {
    pub book: Book,
    fills: Vec<Fill>,
}

impl Engine for Peerbook {
    const NAME: &'static str = "peerbook";

    fn new(ids: usize) -> Self {
        Peerbook {
            book: Book::with_config(
                spec(),
                BookConfig {
                    capacity: ids.min(1 << 16),
                    ..BookConfig::default()
                },
            ),
            fills: Vec::with_capacity(1024),
        }
    }

    #[inline]
    fn apply(&mut self, m: &Msg) -> u32 {
        self.fills.clear();
        match *m {
            Msg::New {
                id,
                buy,
                ioc,
                price,
                qty,
            } => {
                let order = NewOrder {
                    id: id as u64,
                    owner: id,
                    side: if buy { Side::Buy } else { Side::Sell },
                    kind: OrderType::Limit,
                    price: Some(Price(price)),
                    qty: Qty(qty as u64),
                    tif: if ioc {
                        TimeInForce::Ioc
                    } else {
                        TimeInForce::Gtc
                    },
                };
                let _ = self.book.place(order, &mut self.fills);
            }
            Msg::Cancel { id } => {
                let _ = self.book.cancel(id as u64);
            }
            Msg::Move { id, price, .. } => {
                let _ = self
                    .book
                    .move_order(id as u64, Price(price), &mut self.fills);
            }
            Msg::Modify {
                id,
                price,
                qty,
                reprice,
                ..
            } => {
                if self.book.amend(id as u64, Qty(qty as u64)).is_ok() && reprice {
                    let _ = self
                        .book
                        .move_order(id as u64, Price(price), &mut self.fills);
                }
            }
        }
        self.fills.len() as u32
    }
}

/// matchcore 0.4.0. Its order ids are the sequence numbers of the submit
/// commands, and every command must carry the next sequence number.
pub struct Matchcore {
    book: mc::OrderBook,
    seq: u64,
    ids: Vec<mc::OrderId>,
}

impl Matchcore {
    #[inline]
    fn run(&mut self, kind: mc::CommandKind) -> mc::CommandOutcome {
        let cmd = mc::Command {
            meta: mc::CommandMeta {
                sequence_number: mc::SequenceNumber(self.seq),
                timestamp: mc::Timestamp(0),
            },
            kind,
        };
        self.seq += 1;
        self.book.execute(&cmd)
    }

    fn trades(outcome: &mc::CommandOutcome) -> u32 {
        match outcome {
            mc::CommandOutcome::Applied(
                mc::CommandReport::Submit(effects) | mc::CommandReport::Amend(effects),
            ) => {
                let target = effects
                    .target_order()
                    .match_result()
                    .map_or(0, |r| r.trades().len());
                let triggered: usize = effects
                    .triggered_orders()
                    .iter()
                    .map(|o| o.match_result().map_or(0, |r| r.trades().len()))
                    .sum();
                (target + triggered) as u32
            }
            _ => 0,
        }
    }

    fn amend(&mut self, id: u32, patch: mc::LimitOrderPatch) -> u32 {
        let outcome = self.run(mc::CommandKind::Amend(mc::AmendCmd {
            order_id: self.ids[id as usize],
            patch: mc::AmendPatch::Limit(patch),
        }));
        Self::trades(&outcome)
    }
}

impl Engine for Matchcore {
    const NAME: &'static str = "matchcore";

    fn new(ids: usize) -> Self {
        Matchcore {
            book: mc::OrderBook::new("BENCH"),
            seq: 0,
            ids: vec![mc::OrderId(u64::MAX); ids],
        }
    }

    #[inline]
    fn apply(&mut self, m: &Msg) -> u32 {
        match *m {
            Msg::New {
                id,
                buy,
                ioc,
                price,
                qty,
            } => {
                self.ids[id as usize] = mc::OrderId(self.seq);
                let side = if buy { mc::Side::Buy } else { mc::Side::Sell };
                let tif = if ioc {
                    mc::TimeInForce::Ioc
                } else {
                    mc::TimeInForce::Gtc
                };
                let outcome = self.run(mc::CommandKind::Submit(mc::SubmitCmd {
                    order: mc::NewOrder::Limit(mc::LimitOrder::new(
                        mc::Price(price),
                        mc::QuantityPolicy::Standard {
                            quantity: mc::Quantity(qty as u64),
                        },
                        mc::OrderFlags::new(side, false, tif),
                    )),
                }));
                Self::trades(&outcome)
            }
            Msg::Cancel { id } => {
                self.run(mc::CommandKind::Cancel(mc::CancelCmd {
                    order_id: self.ids[id as usize],
                    order_kind: mc::OrderKind::Limit,
                }));
                0
            }
            Msg::Move { id, price, .. } => {
                self.amend(id, mc::LimitOrderPatch::new().with_price(mc::Price(price)))
            }
            Msg::Modify {
                id,
                price,
                qty,
                reprice,
                ..
            } => {
                let mut patch =
                    mc::LimitOrderPatch::new().with_quantity_policy(mc::QuantityPolicy::Standard {
                        quantity: mc::Quantity(qty as u64),
                    });
                if reprice {
                    patch = patch.with_price(mc::Price(price));
                }
                self.amend(id, patch)
            }
        }
    }
}

/// rust_ob 2.5.3: decimal prices and quantities, limit orders and cancels
/// only. IOC is a limit order whose rest is cancelled; move and modify are
/// cancel + re-add (which is what they mean: the order loses priority).
pub struct RustOb {
    book: rust_ob::OrderBook<u32>,
}

impl RustOb {
    fn add(&mut self, id: u32, buy: bool, price: u64, qty: u32) -> (u32, bool) {
        let side = if buy {
            rust_ob::Side::Buy
        } else {
            rust_ob::Side::Sell
        };
        let qty = Decimal::from(qty);
        match self
            .book
            .process_limit_order(id, side, Decimal::from(price), qty)
        {
            // The last match, when there is any, is the new order's own.
            Ok(matches) => match matches.last() {
                Some(own) => ((matches.len() - 1) as u32, own.quantity == qty),
                None => (0, false),
            },
            Err(_) => (0, false),
        }
    }
}

impl Engine for RustOb {
    const NAME: &'static str = "rust_ob";

    fn new(_ids: usize) -> Self {
        RustOb {
            book: rust_ob::OrderBook::new(),
        }
    }

    #[inline]
    fn apply(&mut self, m: &Msg) -> u32 {
        match *m {
            Msg::New {
                id,
                buy,
                ioc,
                price,
                qty,
            } => {
                let (trades, filled) = self.add(id, buy, price, qty);
                if ioc && !filled {
                    let _ = self.book.cancel_order(id);
                }
                trades
            }
            Msg::Cancel { id } => {
                let _ = self.book.cancel_order(id);
                0
            }
            Msg::Move {
                id,
                buy,
                price,
                qty,
            }
            | Msg::Modify {
                id,
                buy,
                price,
                qty,
                ..
            } => {
                if self.book.cancel_order(id).is_ok() {
                    self.add(id, buy, price, qty).0
                } else {
                    0
                }
            }
        }
    }
}
