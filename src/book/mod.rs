//! The pure price-time-priority order book of one market.
//!
//! Integer ticks and lots inside (see [`crate::market`]); `Decimal` only at the
//! `*_decimal` edge methods. No I/O, no clocks, no async: the engine drives it
//! and the `matching` benchmark measures it.
//!
//! How it is built (measurements in `docs/book.md`):
//! - orders live in an arena (`Vec` of nodes plus a free list); the orders of
//!   one price level form an intrusive doubly-linked FIFO through the arena,
//!   so placing, cancelling and filling never allocate once the arena has
//!   grown to the book's working size;
//! - an id -> slot hash map (SwissTable with a one-multiply keyed hash) finds
//!   an order for cancel, amend and move;
//! - each side's price levels are indexed by [`ladder::Ladder`]: a direct
//!   ring of ticks around the best price with an occupancy bitmap, overflowing
//!   to an ordered map far from it, with the best level cached.
//!
//! Matching is strict price then time priority, always at the resting order's
//! price. Self-trade prevention defaults to [`StpPolicy::CancelTaker`].

mod error;
mod idmap;
mod ladder;
mod order;

#[cfg(test)]
mod tests;

pub use error::BookError;
pub use order::{
    CancelReason, Fill, NewOrder, OrderKey, OrderType, OrderView, OwnerKey, PlaceOutcome,
    RefuseReason, StpPolicy, TimeInForce,
};

use rust_decimal::Decimal;

use crate::market::{MarketSpec, Price, Qty, Side, MAX_UNITS};

use idmap::{new_id_map, IdMap};
use ladder::{Ladder, LadderIter, KEY_MAX, NIL};

/// Most orders one book can hold (arena slots are `u32`, `NIL` excluded).
const MAX_NODES: usize = NIL as usize - 1;

/// Tuning and policy of a [`Book`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookConfig {
    /// Self-trade prevention policy.
    pub stp: StpPolicy,
    /// Width in ticks of the directly indexed price window of each side
    /// (rounded up to a power of two, at least 64). Levels further from the
    /// best price than this live in an ordered map: still correct, a little
    /// slower. Tests use small windows to exercise the overflow.
    pub window_ticks: usize,
    /// Orders to make room for up front, so a book of about that size never
    /// allocates while trading (at most 2^22; the book still grows past it).
    pub capacity: usize,
}

impl Default for BookConfig {
    fn default() -> Self {
        BookConfig {
            stp: StpPolicy::CancelTaker,
            window_ticks: 4096,
            capacity: 1024,
        }
    }
}

/// One resting order in the arena, linked into its price level's FIFO.
#[derive(Clone, Copy, Debug)]
struct Node {
    id: OrderKey,
    remaining: u64,
    priority: u64,
    price: u64,
    owner: OwnerKey,
    prev: u32,
    /// Next in the level's FIFO; for a free slot, the next free slot.
    next: u32,
    level: u32,
    side: Side,
    post_only: bool,
}

/// One price level: its FIFO of orders and their total.
#[derive(Clone, Copy, Debug)]
struct Level {
    price: u64,
    total: u64,
    head: u32,
    tail: u32,
    count: u32,
}

/// The order book of one market.
#[derive(Clone, Debug)]
pub struct Book {
    spec: MarketSpec,
    stp: StpPolicy,
    nodes: Vec<Node>,
    free_node: u32,
    levels: Vec<Level>,
    free_level: u32,
    /// Price levels per side, indexed by `Side as usize`.
    ladders: [Ladder; 2],
    ids: IdMap,
    next_priority: u64,
    /// Resting orders cancelled by self-trade prevention in the last call.
    stp_cancels: Vec<(OrderKey, Qty)>,
}

/// Ladder key of a price on a side: the best level is the smallest key.
#[inline]
fn key_of(side: Side, price: u64) -> u64 {
    match side {
        Side::Sell => price,
        Side::Buy => KEY_MAX - price,
    }
}

/// Whether a taker on `side` with limit `limit` trades at `maker`.
#[inline]
fn crosses(side: Side, limit: u64, maker: u64) -> bool {
    match side {
        Side::Buy => maker <= limit,
        Side::Sell => maker >= limit,
    }
}

fn check_price(price: Price) -> Result<u64, BookError> {
    if price.0 == 0 || price.0 > MAX_UNITS {
        return Err(BookError::PriceOutOfRange(price));
    }
    Ok(price.0)
}

fn check_qty(qty: Qty) -> Result<u64, BookError> {
    if qty.0 == 0 {
        return Err(BookError::ZeroQuantity);
    }
    if qty.0 > MAX_UNITS {
        return Err(BookError::QuantityTooLarge(qty));
    }
    Ok(qty.0)
}

impl Book {
    /// An empty book for `spec` with the default self-trade policy
    /// ([`StpPolicy::CancelTaker`]).
    pub fn new(spec: MarketSpec) -> Self {
        Book::with_config(spec, BookConfig::default())
    }

    /// An empty book with another self-trade prevention policy.
    pub fn with_stp(spec: MarketSpec, stp: StpPolicy) -> Self {
        Book::with_config(
            spec,
            BookConfig {
                stp,
                ..BookConfig::default()
            },
        )
    }

    /// An empty book with explicit tuning.
    pub fn with_config(spec: MarketSpec, config: BookConfig) -> Self {
        let capacity = config.capacity.min(1 << 22);
        Book {
            spec,
            stp: config.stp,
            nodes: Vec::with_capacity(capacity),
            free_node: NIL,
            levels: Vec::with_capacity(capacity.min(1 << 16)),
            free_level: NIL,
            ladders: [
                Ladder::new(config.window_ticks),
                Ladder::new(config.window_ticks),
            ],
            ids: new_id_map(capacity),
            next_priority: 0,
            stp_cancels: Vec::new(),
        }
    }

    /// The market this book trades.
    pub fn spec(&self) -> &MarketSpec {
        &self.spec
    }

    /// The self-trade prevention policy.
    pub fn stp_policy(&self) -> StpPolicy {
        self.stp
    }

    // ----- placing and matching -------------------------------------------

    /// Places an incoming order: matches it against the other side in price
    /// then time priority at the resting orders' prices, appends every trade
    /// to `fills`, then rests, cancels or refuses what is left according to
    /// its type and time in force.
    ///
    /// `fills` is the caller's reusable buffer; the book only appends. An
    /// error or a [`PlaceOutcome::Refused`] leaves the book unchanged. Resting
    /// orders that self-trade prevention cancelled are listed by
    /// [`Book::stp_cancels`] until the next call.
    pub fn place(
        &mut self,
        order: NewOrder,
        fills: &mut Vec<Fill>,
    ) -> Result<PlaceOutcome, BookError> {
        self.stp_cancels.clear();
        let qty = check_qty(order.qty)?;
        let limit = match (order.kind, order.price) {
            (OrderType::Limit, Some(p)) => Some(check_price(p)?),
            (OrderType::Limit, None) => return Err(BookError::MissingPrice),
            (OrderType::Market, Some(_)) => return Err(BookError::MarketWithPrice),
            (OrderType::Market, None) if order.tif == TimeInForce::PostOnly => {
                return Err(BookError::MarketPostOnly)
            }
            (OrderType::Market, None) => None,
        };
        if self.ids.contains_key(&order.id) {
            return Err(BookError::DuplicateId(order.id));
        }
        let side = order.side;
        // Where the order would rest: looked up before matching (matching
        // only touches the other side) to refuse an overflowing level while
        // nothing has changed yet.
        let mut own_level = NIL;
        let may_rest = matches!(order.tif, TimeInForce::Gtc | TimeInForce::PostOnly);
        if let (Some(price), true) = (limit, may_rest) {
            own_level = self.ladders[side as usize].get(key_of(side, price));
            if own_level != NIL && self.levels[own_level as usize].total > u64::MAX - qty {
                return Err(BookError::LevelOverflow(Price(price)));
            }
            if self.free_node == NIL && self.nodes.len() >= MAX_NODES {
                return Err(BookError::Full);
            }
        }
        match order.tif {
            TimeInForce::PostOnly => {
                if let Some(price) = limit {
                    if self.would_take(side, price) {
                        return Ok(PlaceOutcome::Refused(RefuseReason::PostOnlyWouldTake));
                    }
                }
            }
            TimeInForce::Fok => {
                let available = self.fillable(side, order.owner, limit, qty);
                if available < qty {
                    return Ok(PlaceOutcome::Refused(RefuseReason::FokNotFillable {
                        available: Qty(available),
                    }));
                }
            }
            TimeInForce::Gtc | TimeInForce::Ioc => {}
        }

        let (remaining, stopped) =
            self.match_incoming(order.id, order.owner, side, limit, qty, fills);
        let filled = Qty(qty - remaining);
        if remaining == 0 {
            return Ok(PlaceOutcome::Filled);
        }
        let rest_price = match (stopped, limit) {
            (Some(reason), _) => {
                return Ok(PlaceOutcome::Cancelled {
                    filled,
                    cancelled: Qty(remaining),
                    reason,
                })
            }
            (None, None) => {
                return Ok(PlaceOutcome::Cancelled {
                    filled,
                    cancelled: Qty(remaining),
                    reason: CancelReason::NoLiquidity,
                })
            }
            (None, Some(_)) if !may_rest => {
                return Ok(PlaceOutcome::Cancelled {
                    filled,
                    cancelled: Qty(remaining),
                    reason: CancelReason::ImmediateOrCancel,
                })
            }
            (None, Some(price)) => price,
        };
        let priority = self.take_priority();
        let idx = self.alloc_node(Node {
            id: order.id,
            remaining,
            priority,
            price: rest_price,
            owner: order.owner,
            prev: NIL,
            next: NIL,
            level: NIL,
            side,
            post_only: order.tif == TimeInForce::PostOnly,
        });
        let level = if own_level == NIL {
            self.new_level(side, rest_price)
        } else {
            own_level
        };
        self.link_tail(idx, level);
        self.ids.insert(order.id, idx);
        Ok(PlaceOutcome::Rested {
            filled,
            remaining: Qty(remaining),
        })
    }

    /// Places an order given in decimal price and quantity, converting them
    /// through the market's grid. A price off the tick grid, a quantity off
    /// the lot grid, zero, negative or too large is a [`BookError::Grid`] and
    /// changes nothing; otherwise this is [`Book::place`].
    #[allow(clippy::too_many_arguments)]
    pub fn place_decimal(
        &mut self,
        id: OrderKey,
        owner: OwnerKey,
        side: Side,
        kind: OrderType,
        price: Option<Decimal>,
        qty: Decimal,
        tif: TimeInForce,
        fills: &mut Vec<Fill>,
    ) -> Result<PlaceOutcome, BookError> {
        let price = match price {
            Some(p) => Some(self.spec.price_to_ticks(p)?),
            None => None,
        };
        let qty = self.spec.qty_to_lots(qty)?;
        self.place(
            NewOrder {
                id,
                owner,
                side,
                kind,
                price,
                qty,
                tif,
            },
            fills,
        )
    }

    /// Resting orders that self-trade prevention cancelled during the last
    /// [`Book::place`] or [`Book::move_order`], with the quantity each had
    /// left (policies `CancelMaker` and `CancelBoth` only).
    pub fn stp_cancels(&self) -> &[(OrderKey, Qty)] {
        &self.stp_cancels
    }

    /// Matches a taker against the other side until it is filled, its limit
    /// is reached, the other side is empty, or self-trade prevention stops
    /// it. Returns the taker's remaining quantity and why it was stopped.
    #[inline]
    fn match_incoming(
        &mut self,
        taker: OrderKey,
        owner: OwnerKey,
        side: Side,
        limit: Option<u64>,
        mut remaining: u64,
        fills: &mut Vec<Fill>,
    ) -> (u64, Option<CancelReason>) {
        let opp = side.opposite();
        while remaining > 0 {
            let lh = self.ladders[opp as usize].best_handle();
            if lh == NIL {
                break;
            }
            let price = self.levels[lh as usize].price;
            if let Some(limit) = limit {
                if !crosses(side, limit, price) {
                    break;
                }
            }
            loop {
                let idx = self.levels[lh as usize].head;
                let node = &mut self.nodes[idx as usize];
                if node.owner == owner {
                    let policy = self.stp;
                    if policy == StpPolicy::CancelTaker {
                        return (remaining, Some(CancelReason::SelfTrade));
                    }
                    let (maker, left) = (node.id, node.remaining);
                    self.stp_cancels.push((maker, Qty(left)));
                    self.ids.remove(&maker);
                    let level_gone = self.unlink(idx);
                    self.free_node(idx);
                    if policy == StpPolicy::CancelBoth {
                        return (remaining, Some(CancelReason::SelfTrade));
                    }
                    if level_gone {
                        break;
                    }
                    continue;
                }
                let q = remaining.min(node.remaining);
                node.remaining -= q;
                remaining -= q;
                let maker_left = node.remaining;
                let maker = node.id;
                fills.push(Fill {
                    maker,
                    maker_owner: node.owner,
                    taker,
                    price: Price(price),
                    qty: Qty(q),
                    maker_remaining: Qty(maker_left),
                    taker_remaining: Qty(remaining),
                });
                let next = node.next;
                let level = &mut self.levels[lh as usize];
                level.total -= q;
                if maker_left == 0 {
                    // The head is done: pop it.
                    level.head = next;
                    level.count -= 1;
                    if next == NIL {
                        level.tail = NIL;
                    } else {
                        self.nodes[next as usize].prev = NIL;
                    }
                    let empty = level.count == 0;
                    self.ids.remove(&maker);
                    self.free_node(idx);
                    if empty {
                        self.ladders[opp as usize].remove(key_of(opp, price));
                        self.free_level(lh);
                        break;
                    }
                }
                if remaining == 0 {
                    break;
                }
            }
        }
        (remaining, None)
    }

    /// Whether a limit order on `side` at `limit` would trade at once.
    #[inline]
    fn would_take(&self, side: Side, limit: u64) -> bool {
        let lh = self.ladders[side.opposite() as usize].best_handle();
        lh != NIL && crosses(side, limit, self.levels[lh as usize].price)
    }

    /// How much a taker could trade at once, up to `want`, honouring
    /// self-trade prevention as matching would (for fill-or-kill).
    fn fillable(&self, side: Side, owner: OwnerKey, limit: Option<u64>, want: u64) -> u64 {
        let opp = side.opposite();
        let mut got = 0u64;
        for (_, lh) in self.ladders[opp as usize].iter() {
            let level = &self.levels[lh as usize];
            if let Some(limit) = limit {
                if !crosses(side, limit, level.price) {
                    break;
                }
            }
            let mut idx = level.head;
            while idx != NIL {
                let node = &self.nodes[idx as usize];
                if node.owner == owner {
                    if self.stp != StpPolicy::CancelMaker {
                        return got;
                    }
                } else {
                    got = got.saturating_add(node.remaining);
                    if got >= want {
                        return want;
                    }
                }
                idx = node.next;
            }
        }
        got
    }

    // ----- cancel, amend, move --------------------------------------------

    /// Cancels a resting order; returns the quantity it had left.
    pub fn cancel(&mut self, id: OrderKey) -> Result<Qty, BookError> {
        let idx = self.ids.remove(&id).ok_or(BookError::UnknownOrder(id))?;
        let left = self.nodes[idx as usize].remaining;
        self.unlink(idx);
        self.free_node(idx);
        Ok(Qty(left))
    }

    /// Sets a resting order's remaining quantity; returns what it had before.
    ///
    /// A reduction keeps the order's time priority; an increase loses it (the
    /// order moves to the back of its level, as if placed now); zero cancels.
    pub fn amend(&mut self, id: OrderKey, new_qty: Qty) -> Result<Qty, BookError> {
        if new_qty.0 == 0 {
            return self.cancel(id);
        }
        check_qty(new_qty)?;
        let idx = *self.ids.get(&id).ok_or(BookError::UnknownOrder(id))?;
        let node = self.nodes[idx as usize];
        let old = node.remaining;
        let new = new_qty.0;
        let level = &mut self.levels[node.level as usize];
        if new <= old {
            level.total -= old - new;
            self.nodes[idx as usize].remaining = new;
            return Ok(Qty(old));
        }
        if level.total > u64::MAX - (new - old) {
            return Err(BookError::LevelOverflow(Price(node.price)));
        }
        level.total += new - old;
        let priority = self.take_priority();
        let n = &mut self.nodes[idx as usize];
        n.remaining = new;
        n.priority = priority;
        if node.next != NIL {
            // Move to the back of the level (it stays in the same level).
            self.detach(idx);
            self.append(idx, node.level);
        }
        Ok(Qty(old))
    }

    /// Moves a resting order to another price: the same as cancelling it and
    /// placing it again with the same id, owner, side and remaining quantity,
    /// so it may trade (fills appended to `fills`) and loses time priority.
    ///
    /// Moving to the price it already has changes nothing and keeps priority.
    /// A post-only order that would trade at the new price is refused and
    /// stays where it was.
    pub fn move_order(
        &mut self,
        id: OrderKey,
        new_price: Price,
        fills: &mut Vec<Fill>,
    ) -> Result<PlaceOutcome, BookError> {
        self.stp_cancels.clear();
        let price = check_price(new_price)?;
        let idx = *self.ids.get(&id).ok_or(BookError::UnknownOrder(id))?;
        let node = self.nodes[idx as usize];
        if node.price == price {
            return Ok(PlaceOutcome::Rested {
                filled: Qty::ZERO,
                remaining: Qty(node.remaining),
            });
        }
        let side = node.side;
        if node.post_only && self.would_take(side, price) {
            return Ok(PlaceOutcome::Refused(RefuseReason::PostOnlyWouldTake));
        }
        let key = key_of(side, price);
        let target = self.ladders[side as usize].get(key);
        if target != NIL && self.levels[target as usize].total > u64::MAX - node.remaining {
            return Err(BookError::LevelOverflow(new_price));
        }
        // Take it out of its level but keep its slot and id while it matches.
        self.unlink(idx);
        let (remaining, stopped) =
            self.match_incoming(id, node.owner, side, Some(price), node.remaining, fills);
        let filled = Qty(node.remaining - remaining);
        if remaining == 0 || stopped.is_some() {
            self.ids.remove(&id);
            self.free_node(idx);
            return Ok(match stopped {
                None => PlaceOutcome::Filled,
                Some(reason) => PlaceOutcome::Cancelled {
                    filled,
                    cancelled: Qty(remaining),
                    reason,
                },
            });
        }
        let priority = self.take_priority();
        let n = &mut self.nodes[idx as usize];
        n.price = price;
        n.remaining = remaining;
        n.priority = priority;
        let level = if target == NIL {
            self.new_level(side, price)
        } else {
            target
        };
        self.link_tail(idx, level);
        Ok(PlaceOutcome::Rested {
            filled,
            remaining: Qty(remaining),
        })
    }

    // ----- replica ----------------------------------------------------------

    /// Inserts a resting order as it is on another node, without matching.
    ///
    /// It goes into its price level by ascending `priority`, after any order
    /// with the same priority. The book may be crossed afterwards; that is
    /// expected of a replica, which is read, not matched. Orders placed later
    /// with [`Book::place`] queue behind it.
    pub fn insert_resting(&mut self, view: OrderView) -> Result<(), BookError> {
        let remaining = check_qty(view.remaining)?;
        let price = check_price(view.price)?;
        if self.ids.contains_key(&view.id) {
            return Err(BookError::DuplicateId(view.id));
        }
        let side = view.side;
        let mut level = self.ladders[side as usize].get(key_of(side, price));
        if level != NIL && self.levels[level as usize].total > u64::MAX - remaining {
            return Err(BookError::LevelOverflow(view.price));
        }
        if self.free_node == NIL && self.nodes.len() >= MAX_NODES {
            return Err(BookError::Full);
        }
        if level == NIL {
            level = self.new_level(side, price);
        }
        let idx = self.alloc_node(Node {
            id: view.id,
            remaining,
            priority: view.priority,
            price,
            owner: view.owner,
            prev: NIL,
            next: NIL,
            level,
            side,
            post_only: false,
        });
        // Walk back from the tail to the last order with priority <= ours.
        let mut after = self.levels[level as usize].tail;
        while after != NIL && self.nodes[after as usize].priority > view.priority {
            after = self.nodes[after as usize].prev;
        }
        self.insert_after(idx, level, after);
        let lvl = &mut self.levels[level as usize];
        lvl.total += remaining;
        lvl.count += 1;
        self.ids.insert(view.id, idx);
        self.next_priority = self.next_priority.max(view.priority.saturating_add(1));
        Ok(())
    }

    /// Sets a resting order's remaining quantity as reported by its owner,
    /// keeping its priority whatever the change; zero removes it.
    pub fn set_remaining(&mut self, id: OrderKey, qty: Qty) -> Result<(), BookError> {
        if qty.0 == 0 {
            return self.cancel(id).map(|_| ());
        }
        check_qty(qty)?;
        let idx = *self.ids.get(&id).ok_or(BookError::UnknownOrder(id))?;
        let node = &mut self.nodes[idx as usize];
        let level = &mut self.levels[node.level as usize];
        if qty.0 > node.remaining && level.total > u64::MAX - (qty.0 - node.remaining) {
            return Err(BookError::LevelOverflow(Price(node.price)));
        }
        level.total = level.total - node.remaining + qty.0;
        node.remaining = qty.0;
        Ok(())
    }

    // ----- queries ----------------------------------------------------------

    /// Best bid price and the total quantity at it.
    pub fn best_bid(&self) -> Option<(Price, Qty)> {
        self.best(Side::Buy)
    }

    /// Best ask price and the total quantity at it.
    pub fn best_ask(&self) -> Option<(Price, Qty)> {
        self.best(Side::Sell)
    }

    /// Best price of a side and the total quantity at it.
    pub fn best(&self, side: Side) -> Option<(Price, Qty)> {
        let lh = self.ladders[side as usize].best_handle();
        if lh == NIL {
            return None;
        }
        let level = &self.levels[lh as usize];
        Some((Price(level.price), Qty(level.total)))
    }

    /// The total quantity resting at one price of a side (zero when no
    /// level is there).
    pub fn level_qty(&self, side: Side, price: Price) -> Qty {
        let lh = self.ladders[side as usize].get(key_of(side, price.0));
        if lh == NIL {
            return Qty::ZERO;
        }
        Qty(self.levels[lh as usize].total)
    }

    /// The best `levels` price levels of a side, aggregated, best first.
    pub fn depth(&self, side: Side, levels: usize) -> Vec<(Price, Qty)> {
        let mut out = Vec::with_capacity(levels.min(self.ladders[side as usize].count()));
        self.depth_into(side, levels, &mut out);
        out
    }

    /// Like [`Book::depth`] into a caller's buffer (cleared first), so a
    /// publisher can reuse one allocation.
    pub fn depth_into(&self, side: Side, levels: usize, out: &mut Vec<(Price, Qty)>) {
        out.clear();
        for (_, lh) in self.ladders[side as usize].iter().take(levels) {
            let level = &self.levels[lh as usize];
            out.push((Price(level.price), Qty(level.total)));
        }
    }

    /// A resting order by id.
    pub fn get(&self, id: OrderKey) -> Option<OrderView> {
        let idx = *self.ids.get(&id)?;
        Some(self.view(idx))
    }

    /// Every resting order of a side: best price first, then in priority
    /// order within each level.
    pub fn iter_side(&self, side: Side) -> impl Iterator<Item = OrderView> + '_ {
        SideIter {
            book: self,
            levels: self.ladders[side as usize].iter(),
            node: NIL,
        }
    }

    /// Number of resting orders.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no order rests.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Number of price levels on a side.
    pub fn level_count(&self, side: Side) -> usize {
        self.ladders[side as usize].count()
    }

    /// Whether the best bid is at or above the best ask (only a replica built
    /// with [`Book::insert_resting`] can be).
    pub fn is_crossed(&self) -> bool {
        match (self.best_bid(), self.best_ask()) {
            (Some((bid, _)), Some((ask, _))) => bid >= ask,
            _ => false,
        }
    }

    /// A blake3 digest of every resting order (id, side, price, remaining),
    /// bids then asks, each in priority order (best price first, then time).
    ///
    /// Two books have equal digests exactly when they hold the same orders in
    /// the same queue positions, whatever their internal priority numbers,
    /// so nodes can compare replicas cheaply.
    pub fn digest(&self) -> [u8; 32] {
        const REC: usize = 25;
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"peerbook/book/v1");
        hasher.update(&(self.len() as u64).to_le_bytes());
        let mut buf = [0u8; REC * 64];
        let mut used = 0;
        for side in [Side::Buy, Side::Sell] {
            for o in self.iter_side(side) {
                let rec = &mut buf[used..used + REC];
                rec[..8].copy_from_slice(&o.id.to_le_bytes());
                rec[8] = side as u8;
                rec[9..17].copy_from_slice(&o.price.0.to_le_bytes());
                rec[17..25].copy_from_slice(&o.remaining.0.to_le_bytes());
                used += REC;
                if used == buf.len() {
                    hasher.update(&buf);
                    used = 0;
                }
            }
        }
        hasher.update(&buf[..used]);
        *hasher.finalize().as_bytes()
    }

    /// Checks every internal invariant: id map, arena, level FIFOs (linked
    /// both ways, sorted by priority, totals and counts right), and both
    /// ladders. Costs O(orders + window); meant for tests and debugging.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut linked = 0usize;
        for side in [Side::Buy, Side::Sell] {
            let ladder = &self.ladders[side as usize];
            ladder.check()?;
            let mut last_key = None;
            for (key, lh) in ladder.iter() {
                if last_key.is_some_and(|k| k >= key) {
                    return Err(format!("{side} ladder keys not increasing at {key}"));
                }
                last_key = Some(key);
                let level = self
                    .levels
                    .get(lh as usize)
                    .ok_or_else(|| format!("{side} level handle {lh} out of range"))?;
                if key_of(side, level.price) != key {
                    return Err(format!(
                        "{side} level {lh} at key {key} has price {}",
                        level.price
                    ));
                }
                let (mut count, mut total, mut prev, mut prio) = (0u32, 0u64, NIL, 0u64);
                let mut idx = level.head;
                while idx != NIL {
                    let n = self
                        .nodes
                        .get(idx as usize)
                        .ok_or_else(|| format!("node {idx} out of range"))?;
                    if n.prev != prev || n.level != lh || n.side != side || n.price != level.price {
                        return Err(format!(
                            "order {} badly linked in level {}",
                            n.id, level.price
                        ));
                    }
                    if n.remaining == 0 {
                        return Err(format!("order {} rests with nothing left", n.id));
                    }
                    if count > 0 && n.priority < prio {
                        return Err(format!("order {} out of priority order", n.id));
                    }
                    if self.ids.get(&n.id) != Some(&idx) {
                        return Err(format!("order {} not in the id map", n.id));
                    }
                    prio = n.priority;
                    count += 1;
                    total += n.remaining;
                    prev = idx;
                    idx = n.next;
                    if count as usize > self.nodes.len() {
                        return Err(format!("cycle in level {}", level.price));
                    }
                }
                if level.tail != prev || level.count != count || level.total != total {
                    return Err(format!(
                        "level {}: tail/count/total {}/{}/{} but holds {}/{}/{}",
                        level.price, level.tail, level.count, level.total, prev, count, total
                    ));
                }
                if count == 0 {
                    return Err(format!("empty level {} kept", level.price));
                }
                linked += count as usize;
            }
        }
        if linked != self.ids.len() {
            return Err(format!(
                "{linked} orders linked, {} in the id map",
                self.ids.len()
            ));
        }
        let mut free = 0usize;
        let mut idx = self.free_node;
        while idx != NIL {
            free += 1;
            if free > self.nodes.len() {
                return Err("cycle in the free list".into());
            }
            idx = self.nodes[idx as usize].next;
        }
        if free + linked != self.nodes.len() {
            return Err(format!(
                "{} arena slots but {linked} linked and {free} free",
                self.nodes.len()
            ));
        }
        if self.next_priority < self.iter_all_max_priority() {
            return Err("arrival counter behind a resting order".into());
        }
        Ok(())
    }

    fn iter_all_max_priority(&self) -> u64 {
        self.iter_side(Side::Buy)
            .chain(self.iter_side(Side::Sell))
            .map(|o| o.priority.saturating_add(1))
            .max()
            .unwrap_or(0)
    }

    // ----- arena and level plumbing -----------------------------------------

    #[inline]
    fn take_priority(&mut self) -> u64 {
        let p = self.next_priority;
        self.next_priority = p.saturating_add(1);
        p
    }

    fn view(&self, idx: u32) -> OrderView {
        let n = &self.nodes[idx as usize];
        OrderView {
            id: n.id,
            owner: n.owner,
            side: n.side,
            price: Price(n.price),
            remaining: Qty(n.remaining),
            priority: n.priority,
        }
    }

    /// A slot for `node`; callers have checked capacity.
    #[inline]
    fn alloc_node(&mut self, node: Node) -> u32 {
        if self.free_node != NIL {
            let idx = self.free_node;
            self.free_node = self.nodes[idx as usize].next;
            self.nodes[idx as usize] = node;
            idx
        } else {
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        }
    }

    #[inline]
    fn free_node(&mut self, idx: u32) {
        let n = &mut self.nodes[idx as usize];
        n.remaining = 0;
        n.prev = NIL;
        n.level = NIL;
        n.next = self.free_node;
        self.free_node = idx;
    }

    /// Creates an empty level at `price` and indexes it.
    fn new_level(&mut self, side: Side, price: u64) -> u32 {
        let level = Level {
            price,
            total: 0,
            head: NIL,
            tail: NIL,
            count: 0,
        };
        let lh = if self.free_level != NIL {
            let lh = self.free_level;
            self.free_level = self.levels[lh as usize].head;
            self.levels[lh as usize] = level;
            lh
        } else {
            self.levels.push(level);
            (self.levels.len() - 1) as u32
        };
        self.ladders[side as usize].insert(key_of(side, price), lh);
        lh
    }

    #[inline]
    fn free_level(&mut self, lh: u32) {
        self.levels[lh as usize].head = self.free_level;
        self.free_level = lh;
    }

    /// Appends a detached node at the back of `level`, counting it in.
    #[inline]
    fn link_tail(&mut self, idx: u32, level: u32) {
        self.append(idx, level);
        let remaining = self.nodes[idx as usize].remaining;
        let lvl = &mut self.levels[level as usize];
        lvl.count += 1;
        lvl.total += remaining;
    }

    /// Appends a detached node to the back of `level`'s list (no counting).
    #[inline]
    fn append(&mut self, idx: u32, level: u32) {
        let lvl = &mut self.levels[level as usize];
        let tail = lvl.tail;
        lvl.tail = idx;
        if tail == NIL {
            lvl.head = idx;
        } else {
            self.nodes[tail as usize].next = idx;
        }
        let n = &mut self.nodes[idx as usize];
        n.prev = tail;
        n.next = NIL;
        n.level = level;
    }

    /// Links a detached node after `after` (`NIL`: at the front), no counting.
    fn insert_after(&mut self, idx: u32, level: u32, after: u32) {
        let lvl = &mut self.levels[level as usize];
        let next = if after == NIL {
            let head = lvl.head;
            lvl.head = idx;
            head
        } else {
            let next = self.nodes[after as usize].next;
            self.nodes[after as usize].next = idx;
            next
        };
        if next == NIL {
            lvl.tail = idx;
        } else {
            self.nodes[next as usize].prev = idx;
        }
        let n = &mut self.nodes[idx as usize];
        n.prev = after;
        n.next = next;
        n.level = level;
    }

    /// Takes a node out of its level's list (no counting).
    #[inline]
    fn detach(&mut self, idx: u32) {
        let n = self.nodes[idx as usize];
        let lvl = &mut self.levels[n.level as usize];
        if n.prev == NIL {
            lvl.head = n.next;
        } else {
            self.nodes[n.prev as usize].next = n.next;
        }
        if n.next == NIL {
            lvl.tail = n.prev;
        } else {
            self.nodes[n.next as usize].prev = n.prev;
        }
    }

    /// Takes a node out of its level, counting it out; removes the level when
    /// it becomes empty. Returns whether the level was removed.
    #[inline]
    fn unlink(&mut self, idx: u32) -> bool {
        self.detach(idx);
        let n = self.nodes[idx as usize];
        let lvl = &mut self.levels[n.level as usize];
        lvl.count -= 1;
        lvl.total -= n.remaining;
        if lvl.count == 0 {
            self.ladders[n.side as usize].remove(key_of(n.side, n.price));
            self.free_level(n.level);
            return true;
        }
        false
    }
}

/// Iterator behind [`Book::iter_side`].
struct SideIter<'a> {
    book: &'a Book,
    levels: LadderIter<'a>,
    node: u32,
}

impl Iterator for SideIter<'_> {
    type Item = OrderView;

    fn next(&mut self) -> Option<OrderView> {
        if self.node == NIL {
            let (_, lh) = self.levels.next()?;
            self.node = self.book.levels[lh as usize].head;
        }
        let idx = self.node;
        self.node = self.book.nodes[idx as usize].next;
        Some(self.book.view(idx))
    }
}
