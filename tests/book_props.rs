//! Property tests of the order book over random operation sequences.
//!
//! Each sequence runs on the real book and on a deliberately naive reference
//! model (a flat list of orders sorted on every match), and on a second book
//! with a tiny price window so that far levels and window moves are exercised.
//! After every operation: same outcome, same fills, same resting orders in
//! the same queue order, invariants hold, the book is never crossed, the
//! digest changes exactly when the state does, and quantity is conserved per
//! order (placed = resting + filled + cancelled + reduced).

use std::collections::HashMap;
use std::str::FromStr;

use peerbook::book::{
    Book, BookConfig, BookError, CancelReason, Fill, NewOrder, OrderKey, OrderType, OrderView,
    OwnerKey, PlaceOutcome, RefuseReason, StpPolicy, TimeInForce,
};
use peerbook::market::{MarketSpec, Price, Qty, Side, MAX_UNITS};
use proptest::prelude::*;
use rust_decimal::Decimal;

fn spec() -> MarketSpec {
    MarketSpec::new(
        "PROP",
        Decimal::from_str("0.01").unwrap(),
        Decimal::from_str("1").unwrap(),
    )
    .unwrap()
}

// ----- the reference model ---------------------------------------------------

#[derive(Clone, Debug)]
struct MOrder {
    id: OrderKey,
    owner: OwnerKey,
    side: Side,
    price: u64,
    remaining: u64,
    seq: u64,
    post_only: bool,
}

/// A naive book: every match sorts the whole opposite side.
#[derive(Clone, Debug)]
struct Model {
    orders: Vec<MOrder>,
    seq: u64,
    stp: StpPolicy,
}

type Placed = (PlaceOutcome, Vec<Fill>, Vec<(OrderKey, Qty)>);

/// A taker's remaining, why it stopped, its fills and the STP-cancelled makers.
type Matched = (u64, Option<CancelReason>, Vec<Fill>, Vec<(OrderKey, Qty)>);

fn crosses(side: Side, limit: u64, maker: u64) -> bool {
    match side {
        Side::Buy => maker <= limit,
        Side::Sell => maker >= limit,
    }
}

impl Model {
    fn new(stp: StpPolicy) -> Self {
        Model {
            orders: Vec::new(),
            seq: 0,
            stp,
        }
    }

    fn find(&self, id: OrderKey) -> Option<usize> {
        self.orders.iter().position(|o| o.id == id)
    }

    /// Indexes of the orders a taker on `side` would meet, in priority order.
    fn queue(&self, side: Side, limit: Option<u64>) -> Vec<usize> {
        let mut q: Vec<usize> = (0..self.orders.len())
            .filter(|&i| {
                let o = &self.orders[i];
                o.side != side && limit.is_none_or(|l| crosses(side, l, o.price))
            })
            .collect();
        q.sort_by_key(|&i| {
            let o = &self.orders[i];
            let p = if side == Side::Buy {
                o.price
            } else {
                u64::MAX - o.price
            };
            (p, o.seq)
        });
        q
    }

    fn fillable(&self, side: Side, owner: OwnerKey, limit: Option<u64>) -> u64 {
        let mut got = 0;
        for i in self.queue(side, limit) {
            let o = &self.orders[i];
            if o.owner == owner {
                if self.stp != StpPolicy::CancelMaker {
                    break;
                }
            } else {
                got += o.remaining;
            }
        }
        got
    }

    /// Matches a taker; returns its remaining, the stop reason, fills and STP
    /// cancels. Removes exhausted and STP-cancelled makers.
    fn matching(
        &mut self,
        id: OrderKey,
        owner: OwnerKey,
        side: Side,
        limit: Option<u64>,
        mut remaining: u64,
    ) -> Matched {
        let mut fills = Vec::new();
        let mut stp = Vec::new();
        let mut gone = Vec::new();
        let mut stop = None;
        for i in self.queue(side, limit) {
            if remaining == 0 {
                break;
            }
            let o = &mut self.orders[i];
            if o.owner == owner {
                match self.stp {
                    StpPolicy::CancelTaker => {
                        stop = Some(CancelReason::SelfTrade);
                        break;
                    }
                    StpPolicy::CancelMaker => {
                        stp.push((o.id, Qty(o.remaining)));
                        gone.push(i);
                        continue;
                    }
                    StpPolicy::CancelBoth => {
                        stp.push((o.id, Qty(o.remaining)));
                        gone.push(i);
                        stop = Some(CancelReason::SelfTrade);
                        break;
                    }
                }
            }
            let q = remaining.min(o.remaining);
            o.remaining -= q;
            remaining -= q;
            fills.push(Fill {
                maker: o.id,
                maker_owner: o.owner,
                taker: id,
                price: Price(o.price),
                qty: Qty(q),
                maker_remaining: Qty(o.remaining),
                taker_remaining: Qty(remaining),
            });
            if o.remaining == 0 {
                gone.push(i);
            }
        }
        gone.sort_unstable();
        for i in gone.into_iter().rev() {
            self.orders.remove(i);
        }
        (remaining, stop, fills, stp)
    }

    fn push(&mut self, id: OrderKey, owner: OwnerKey, side: Side, price: u64, qty: u64, po: bool) {
        self.orders.push(MOrder {
            id,
            owner,
            side,
            price,
            remaining: qty,
            seq: self.seq,
            post_only: po,
        });
        self.seq += 1;
    }

    fn place(&mut self, o: NewOrder) -> Result<Placed, BookError> {
        if o.qty.0 == 0 {
            return Err(BookError::ZeroQuantity);
        }
        if o.qty.0 > MAX_UNITS {
            return Err(BookError::QuantityTooLarge(o.qty));
        }
        let limit = match (o.kind, o.price) {
            (OrderType::Limit, Some(p)) => {
                if p.0 == 0 || p.0 > MAX_UNITS {
                    return Err(BookError::PriceOutOfRange(p));
                }
                Some(p.0)
            }
            (OrderType::Limit, None) => return Err(BookError::MissingPrice),
            (OrderType::Market, Some(_)) => return Err(BookError::MarketWithPrice),
            (OrderType::Market, None) if o.tif == TimeInForce::PostOnly => {
                return Err(BookError::MarketPostOnly)
            }
            (OrderType::Market, None) => None,
        };
        if self.find(o.id).is_some() {
            return Err(BookError::DuplicateId(o.id));
        }
        if o.tif == TimeInForce::PostOnly && !self.queue(o.side, limit).is_empty() {
            return Ok((
                PlaceOutcome::Refused(RefuseReason::PostOnlyWouldTake),
                vec![],
                vec![],
            ));
        }
        if o.tif == TimeInForce::Fok {
            let available = self.fillable(o.side, o.owner, limit);
            if available < o.qty.0 {
                return Ok((
                    PlaceOutcome::Refused(RefuseReason::FokNotFillable {
                        available: Qty(available),
                    }),
                    vec![],
                    vec![],
                ));
            }
        }
        let (remaining, stop, fills, stp) = self.matching(o.id, o.owner, o.side, limit, o.qty.0);
        let filled = Qty(o.qty.0 - remaining);
        let cancelled = |reason| PlaceOutcome::Cancelled {
            filled,
            cancelled: Qty(remaining),
            reason,
        };
        let outcome = if remaining == 0 {
            PlaceOutcome::Filled
        } else if let Some(reason) = stop {
            cancelled(reason)
        } else if o.kind == OrderType::Market {
            cancelled(CancelReason::NoLiquidity)
        } else if matches!(o.tif, TimeInForce::Ioc | TimeInForce::Fok) {
            cancelled(CancelReason::ImmediateOrCancel)
        } else {
            let price = limit.unwrap_or_default();
            self.push(
                o.id,
                o.owner,
                o.side,
                price,
                remaining,
                o.tif == TimeInForce::PostOnly,
            );
            PlaceOutcome::Rested {
                filled,
                remaining: Qty(remaining),
            }
        };
        Ok((outcome, fills, stp))
    }

    fn cancel(&mut self, id: OrderKey) -> Result<Qty, BookError> {
        let i = self.find(id).ok_or(BookError::UnknownOrder(id))?;
        Ok(Qty(self.orders.remove(i).remaining))
    }

    fn amend(&mut self, id: OrderKey, qty: Qty) -> Result<Qty, BookError> {
        if qty.0 == 0 {
            return self.cancel(id);
        }
        if qty.0 > MAX_UNITS {
            return Err(BookError::QuantityTooLarge(qty));
        }
        let i = self.find(id).ok_or(BookError::UnknownOrder(id))?;
        let old = self.orders[i].remaining;
        self.orders[i].remaining = qty.0;
        if qty.0 > old {
            self.orders[i].seq = self.seq;
            self.seq += 1;
        }
        Ok(Qty(old))
    }

    fn move_order(&mut self, id: OrderKey, price: Price) -> Result<Placed, BookError> {
        if price.0 == 0 || price.0 > MAX_UNITS {
            return Err(BookError::PriceOutOfRange(price));
        }
        let i = self.find(id).ok_or(BookError::UnknownOrder(id))?;
        let o = self.orders[i].clone();
        if o.price == price.0 {
            let out = PlaceOutcome::Rested {
                filled: Qty(0),
                remaining: Qty(o.remaining),
            };
            return Ok((out, vec![], vec![]));
        }
        if o.post_only && !self.queue(o.side, Some(price.0)).is_empty() {
            return Ok((
                PlaceOutcome::Refused(RefuseReason::PostOnlyWouldTake),
                vec![],
                vec![],
            ));
        }
        self.orders.remove(i);
        let (remaining, stop, fills, stp) =
            self.matching(id, o.owner, o.side, Some(price.0), o.remaining);
        let filled = Qty(o.remaining - remaining);
        let outcome = if remaining == 0 {
            PlaceOutcome::Filled
        } else if let Some(reason) = stop {
            PlaceOutcome::Cancelled {
                filled,
                cancelled: Qty(remaining),
                reason,
            }
        } else {
            self.push(id, o.owner, o.side, price.0, remaining, o.post_only);
            PlaceOutcome::Rested {
                filled,
                remaining: Qty(remaining),
            }
        };
        Ok((outcome, fills, stp))
    }

    /// (id, owner, side, price, remaining) best first, then by time.
    fn snapshot(&self) -> Vec<(OrderKey, OwnerKey, Side, u64, u64)> {
        let mut v: Vec<&MOrder> = self.orders.iter().collect();
        v.sort_by_key(|o| {
            let p = if o.side == Side::Buy {
                u64::MAX - o.price
            } else {
                o.price
            };
            (o.side == Side::Sell, p, o.seq)
        });
        v.iter()
            .map(|o| (o.id, o.owner, o.side, o.price, o.remaining))
            .collect()
    }
}

fn snapshot(b: &Book) -> Vec<(OrderKey, OwnerKey, Side, u64, u64)> {
    b.iter_side(Side::Buy)
        .chain(b.iter_side(Side::Sell))
        .map(|o| (o.id, o.owner, o.side, o.price.0, o.remaining.0))
        .collect()
}

// ----- operations ------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Place(NewOrder),
    Cancel(OrderKey),
    Amend(OrderKey, Qty),
    Move(OrderKey, Price),
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

/// Mostly a narrow band (many crossings), sometimes far away (window moves),
/// rarely out of range.
fn price() -> impl Strategy<Value = u64> {
    prop_oneof![
        20 => 990u64..1010,
        3 => 1u64..30_000,
        1 => prop_oneof![Just(0u64), Just(MAX_UNITS), Just(MAX_UNITS + 1)],
    ]
}

fn qty() -> impl Strategy<Value = u64> {
    prop_oneof![20 => 1u64..20, 1 => Just(0u64), 1 => Just(MAX_UNITS + 1)]
}

fn tif() -> impl Strategy<Value = TimeInForce> {
    prop_oneof![
        6 => Just(TimeInForce::Gtc),
        2 => Just(TimeInForce::Ioc),
        1 => Just(TimeInForce::Fok),
        2 => Just(TimeInForce::PostOnly),
    ]
}

fn new_order() -> impl Strategy<Value = NewOrder> {
    (
        0u64..48,
        0u32..4,
        side(),
        prop_oneof![8 => Just(OrderType::Limit), 1 => Just(OrderType::Market)],
        price(),
        qty(),
        tif(),
        prop_oneof![30 => Just(false), 1 => Just(true)],
    )
        .prop_map(|(id, owner, side, kind, price, qty, tif, odd_price)| {
            // Market orders have no price, limit orders have one; `odd_price`
            // swaps that to provoke the errors.
            let price = match kind {
                OrderType::Limit => Some(Price(price)),
                OrderType::Market => None,
            };
            let price = if odd_price {
                price.xor(Some(Price(1000)))
            } else {
                price
            };
            NewOrder {
                id,
                owner,
                side,
                kind,
                price,
                qty: Qty(qty),
                tif,
            }
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => new_order().prop_map(Op::Place),
        2 => (0u64..48).prop_map(Op::Cancel),
        2 => (0u64..48, qty()).prop_map(|(id, q)| Op::Amend(id, Qty(q))),
        4 => (0u64..48, price()).prop_map(|(id, p)| Op::Move(id, Price(p))),
    ]
}

fn stp() -> impl Strategy<Value = StpPolicy> {
    prop_oneof![
        Just(StpPolicy::CancelTaker),
        Just(StpPolicy::CancelMaker),
        Just(StpPolicy::CancelBoth),
    ]
}

/// Per-order quantity accounting from the book's own outputs.
#[derive(Default, Debug)]
struct Ledger {
    placed: HashMap<OrderKey, u64>,
    filled: HashMap<OrderKey, u64>,
    cancelled: HashMap<OrderKey, u64>,
    reduced: HashMap<OrderKey, u64>,
}

impl Ledger {
    fn add(map: &mut HashMap<OrderKey, u64>, id: OrderKey, q: u64) {
        *map.entry(id).or_default() += q;
    }

    fn outcome(
        &mut self,
        id: OrderKey,
        out: &PlaceOutcome,
        fills: &[Fill],
        stp: &[(OrderKey, Qty)],
    ) {
        for f in fills {
            Self::add(&mut self.filled, f.maker, f.qty.0);
            Self::add(&mut self.filled, f.taker, f.qty.0);
        }
        for (maker, q) in stp {
            Self::add(&mut self.cancelled, *maker, q.0);
        }
        if let PlaceOutcome::Cancelled { cancelled, .. } = out {
            Self::add(&mut self.cancelled, id, cancelled.0);
        }
    }

    fn check(&self, book: &Book) -> Result<(), TestCaseError> {
        let get = |m: &HashMap<OrderKey, u64>, id| m.get(&id).copied().unwrap_or(0);
        let (mut placed, mut accounted) = (0u64, 0u64);
        for &id in self.placed.keys() {
            let resting = book.get(id).map_or(0, |o| o.remaining.0);
            let out =
                resting + get(&self.filled, id) + get(&self.cancelled, id) + get(&self.reduced, id);
            prop_assert_eq!(get(&self.placed, id), out, "order {} not conserved", id);
            placed += get(&self.placed, id);
            accounted += out;
        }
        prop_assert_eq!(placed, accounted);
        Ok(())
    }
}

fn run_matching(stp: StpPolicy, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut book = Book::with_stp(spec(), stp);
    let mut small = Book::with_config(
        spec(),
        BookConfig {
            stp,
            window_ticks: 64,
            capacity: 0,
        },
    );
    let mut model = Model::new(stp);
    let mut ledger = Ledger::default();
    let mut fills = Vec::new();
    let mut small_fills = Vec::new();
    for op in ops {
        let before = book.digest();
        let before_state = model.snapshot();
        fills.clear();
        small_fills.clear();
        match *op {
            Op::Place(o) => {
                let got = book.place(o, &mut fills);
                let got_small = small.place(o, &mut small_fills);
                prop_assert_eq!(&got, &got_small);
                let want = model.place(o);
                match (got, want) {
                    (Ok(out), Ok((want_out, want_fills, want_stp))) => {
                        prop_assert_eq!(out, want_out, "{:?}", o);
                        prop_assert_eq!(&fills, &want_fills, "{:?}", o);
                        prop_assert_eq!(book.stp_cancels(), &want_stp[..]);
                        if !matches!(out, PlaceOutcome::Refused(_)) {
                            Ledger::add(&mut ledger.placed, o.id, o.qty.0);
                        }
                        ledger.outcome(o.id, &out, &fills, book.stp_cancels());
                    }
                    (got, want) => prop_assert_eq!(got, want.map(|w| w.0)),
                }
            }
            Op::Cancel(id) => {
                let got = book.cancel(id);
                prop_assert_eq!(&got, &small.cancel(id));
                prop_assert_eq!(&got, &model.cancel(id));
                if let Ok(q) = got {
                    Ledger::add(&mut ledger.cancelled, id, q.0);
                }
            }
            Op::Amend(id, q) => {
                let got = book.amend(id, q);
                prop_assert_eq!(&got, &small.amend(id, q));
                prop_assert_eq!(&got, &model.amend(id, q));
                if let Ok(old) = got {
                    if q.0 == 0 {
                        Ledger::add(&mut ledger.cancelled, id, old.0);
                    } else if q.0 < old.0 {
                        Ledger::add(&mut ledger.reduced, id, old.0 - q.0);
                    } else {
                        Ledger::add(&mut ledger.placed, id, q.0 - old.0);
                    }
                }
            }
            Op::Move(id, p) => {
                let got = book.move_order(id, p, &mut fills);
                let got_small = small.move_order(id, p, &mut small_fills);
                prop_assert_eq!(&got, &got_small);
                match (got, model.move_order(id, p)) {
                    (Ok(out), Ok((want_out, want_fills, want_stp))) => {
                        prop_assert_eq!(out, want_out);
                        prop_assert_eq!(&fills, &want_fills);
                        prop_assert_eq!(book.stp_cancels(), &want_stp[..]);
                        ledger.outcome(id, &out, &fills, book.stp_cancels());
                    }
                    (got, want) => prop_assert_eq!(got, want.map(|w| w.0)),
                }
            }
        }
        prop_assert_eq!(&fills, &small_fills);
        // Within one price level, fills follow arrival order.
        for w in fills.windows(2) {
            if w[0].price == w[1].price {
                prop_assert!(w[0].maker_remaining.0 == 0 || w[0].maker == w[1].maker);
            }
        }
        if let Err(e) = book.check_invariants() {
            return Err(TestCaseError::fail(format!("after {op:?}: {e}")));
        }
        if let Err(e) = small.check_invariants() {
            return Err(TestCaseError::fail(format!(
                "small window, after {op:?}: {e}"
            )));
        }
        prop_assert!(!book.is_crossed(), "crossed after {:?}", op);
        let state = model.snapshot();
        prop_assert_eq!(&snapshot(&book), &state, "after {:?}", op);
        prop_assert_eq!(book.digest(), small.digest());
        prop_assert_eq!(book.best_bid(), small.best_bid());
        prop_assert_eq!(book.best_ask(), small.best_ask());
        prop_assert_eq!(book.depth(Side::Buy, 5), small.depth(Side::Buy, 5));
        prop_assert_eq!(book.depth(Side::Sell, 5), small.depth(Side::Sell, 5));
        let after = book.digest();
        prop_assert_eq!(
            state != before_state,
            after != before,
            "digest change does not match state change after {:?}",
            op
        );
        ledger.check(&book)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn matching_agrees_with_a_naive_model_and_keeps_every_invariant(
        stp in stp(),
        ops in prop::collection::vec(op(), 1..160),
    ) {
        run_matching(stp, &ops)?;
    }

    #[test]
    fn books_built_by_the_same_operations_have_equal_digests(
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let mut a = Book::new(spec());
        let mut b = Book::with_config(spec(), BookConfig { window_ticks: 128, ..BookConfig::default() });
        let mut fills = Vec::new();
        for op in &ops {
            match *op {
                Op::Place(o) => { let _ = a.place(o, &mut fills); let _ = b.place(o, &mut fills); }
                Op::Cancel(id) => { let _ = a.cancel(id); let _ = b.cancel(id); }
                Op::Amend(id, q) => { let _ = a.amend(id, q); let _ = b.amend(id, q); }
                Op::Move(id, p) => {
                    let _ = a.move_order(id, p, &mut fills);
                    let _ = b.move_order(id, p, &mut fills);
                }
            }
            prop_assert_eq!(a.digest(), b.digest());
        }
    }
}

// ----- replicas ----------------------------------------------------------------

#[derive(Clone, Debug)]
enum ReplicaOp {
    Insert(OrderView),
    SetRemaining(OrderKey, Qty),
    Cancel(OrderKey),
}

fn replica_op() -> impl Strategy<Value = ReplicaOp> {
    prop_oneof![
        6 => (0u64..40, 0u32..4, side(), price(), qty(), 0u64..30).prop_map(
            |(id, owner, side, price, remaining, priority)| ReplicaOp::Insert(OrderView {
                id,
                owner,
                side,
                price: Price(price),
                remaining: Qty(remaining),
                priority,
            })
        ),
        3 => (0u64..40, qty()).prop_map(|(id, q)| ReplicaOp::SetRemaining(id, Qty(q))),
        2 => (0u64..40).prop_map(ReplicaOp::Cancel),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn replicas_keep_priority_order_and_agree_across_window_sizes(
        ops in prop::collection::vec(replica_op(), 1..160),
    ) {
        let mut book = Book::new(spec());
        let mut small = Book::with_config(spec(), BookConfig { window_ticks: 64, ..BookConfig::default() });
        // Model: (view, insertion counter); order = price, priority, insertion.
        let mut model: Vec<(OrderView, u64)> = Vec::new();
        let mut counter = 0u64;
        let project = |b: &Book| -> Vec<(OrderKey, Side, Price, Qty)> {
            b.iter_side(Side::Buy)
                .chain(b.iter_side(Side::Sell))
                .map(|o| (o.id, o.side, o.price, o.remaining))
                .collect()
        };
        for op in &ops {
            let before = book.digest();
            let before_state = project(&book);
            let (got, got_small, want) = match *op {
                ReplicaOp::Insert(v) => {
                    let want = if v.remaining.0 == 0 {
                        Err(BookError::ZeroQuantity)
                    } else if v.remaining.0 > MAX_UNITS {
                        Err(BookError::QuantityTooLarge(v.remaining))
                    } else if v.price.0 == 0 || v.price.0 > MAX_UNITS {
                        Err(BookError::PriceOutOfRange(v.price))
                    } else if model.iter().any(|(m, _)| m.id == v.id) {
                        Err(BookError::DuplicateId(v.id))
                    } else {
                        model.push((v, counter));
                        counter += 1;
                        Ok(())
                    };
                    (book.insert_resting(v), small.insert_resting(v), want)
                }
                ReplicaOp::SetRemaining(id, q) => {
                    let pos = model.iter().position(|(m, _)| m.id == id);
                    let want = match pos {
                        _ if q.0 > MAX_UNITS => Err(BookError::QuantityTooLarge(q)),
                        None => Err(BookError::UnknownOrder(id)),
                        Some(i) if q.0 == 0 => { model.remove(i); Ok(()) }
                        Some(i) => { model[i].0.remaining = q; Ok(()) }
                    };
                    (book.set_remaining(id, q), small.set_remaining(id, q), want)
                }
                ReplicaOp::Cancel(id) => {
                    let want = match model.iter().position(|(m, _)| m.id == id) {
                        None => Err(BookError::UnknownOrder(id)),
                        Some(i) => { model.remove(i); Ok(()) }
                    };
                    (book.cancel(id).map(|_| ()), small.cancel(id).map(|_| ()), want)
                }
            };
            prop_assert_eq!(&got, &want, "{:?}", op);
            prop_assert_eq!(&got_small, &want);
            book.check_invariants().map_err(TestCaseError::fail)?;
            small.check_invariants().map_err(TestCaseError::fail)?;
            let mut expect = model.clone();
            expect.sort_by_key(|(v, n)| {
                let p = if v.side == Side::Buy { u64::MAX - v.price.0 } else { v.price.0 };
                (v.side == Side::Sell, p, v.priority, *n)
            });
            let expect: Vec<OrderView> = expect.into_iter().map(|(v, _)| v).collect();
            let have: Vec<OrderView> = book.iter_side(Side::Buy).chain(book.iter_side(Side::Sell)).collect();
            prop_assert_eq!(&have, &expect);
            prop_assert_eq!(book.digest(), small.digest());
            prop_assert_eq!(
                project(&book) != before_state,
                book.digest() != before,
                "digest vs change after {:?}",
                op
            );
        }
    }
}
