//! The vocabulary of the book: what goes in (a new order), what comes out
//! (fills, the outcome of a placement) and how a resting order looks from
//! outside. Plain data, no behaviour beyond small helpers.

use crate::market::{Price, Qty, Side};

/// Caller-assigned order id, unique within one book.
///
/// The engine maps its global order ids (owner peer id + sequence) to these;
/// the book only needs them to be unique and stable.
pub type OrderKey = u64;

/// Caller-assigned owner (account) of an order, used only for self-trade
/// prevention: two orders of the same owner never trade with each other.
pub type OwnerKey = u32;

/// Whether an order has a limit price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderType {
    /// Trades at its price or better; may rest.
    Limit,
    /// Trades at any price against what is there; never rests.
    Market,
}

/// How long an order may live and how much of it must trade at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeInForce {
    /// Good till cancelled: what does not trade at once rests on the book.
    Gtc,
    /// Immediate or cancel: trades what it can at once, the rest is cancelled.
    Ioc,
    /// Fill or kill: trades its whole quantity at once, or is refused whole.
    Fok,
    /// Only adds liquidity: refused whole if any part of it would trade at once.
    PostOnly,
}

/// What happens when a taker would trade with a resting order of its own owner.
///
/// In every policy the trades made before that point stand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StpPolicy {
    /// The taker's remaining quantity is cancelled at that point; the resting
    /// order stays. The default: the newer instruction is the one that would
    /// have caused the wash trade, and the book a user sees does not change
    /// under them.
    #[default]
    CancelTaker,
    /// The resting order is cancelled and the taker goes on matching.
    CancelMaker,
    /// Both the resting order and the taker's remaining are cancelled.
    CancelBoth,
}

/// An order as submitted to [`Book::place`](super::Book::place).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewOrder {
    pub id: OrderKey,
    pub owner: OwnerKey,
    pub side: Side,
    pub kind: OrderType,
    /// Required for `Limit`; must be `None` for `Market`.
    pub price: Option<Price>,
    /// Quantity in lots, greater than zero.
    pub qty: Qty,
    pub tif: TimeInForce,
}

impl NewOrder {
    /// A good-till-cancelled limit order, the common case.
    pub fn limit(id: OrderKey, owner: OwnerKey, side: Side, price: Price, qty: Qty) -> Self {
        NewOrder {
            id,
            owner,
            side,
            kind: OrderType::Limit,
            price: Some(price),
            qty,
            tif: TimeInForce::Gtc,
        }
    }

    /// A market order (immediate; what cannot trade is cancelled).
    pub fn market(id: OrderKey, owner: OwnerKey, side: Side, qty: Qty) -> Self {
        NewOrder {
            id,
            owner,
            side,
            kind: OrderType::Market,
            price: None,
            qty,
            tif: TimeInForce::Ioc,
        }
    }

    /// The same order with another time in force.
    pub fn with_tif(mut self, tif: TimeInForce) -> Self {
        self.tif = tif;
        self
    }
}

/// One trade between a resting order (maker) and an incoming one (taker).
///
/// Always at the maker's price. The remaining quantities are after this fill,
/// so a consumer can tell that an order is done without asking the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fill {
    pub maker: OrderKey,
    pub maker_owner: OwnerKey,
    pub taker: OrderKey,
    pub price: Price,
    pub qty: Qty,
    pub maker_remaining: Qty,
    pub taker_remaining: Qty,
}

/// A resting order as seen from outside the book.
///
/// `priority` orders orders within a price level (smaller first): for orders
/// placed with [`Book::place`](super::Book::place) it is the book's arrival
/// counter; for replicas inserted with
/// [`Book::insert_resting`](super::Book::insert_resting) it is whatever the
/// caller gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OrderView {
    pub id: OrderKey,
    pub owner: OwnerKey,
    pub side: Side,
    pub price: Price,
    pub remaining: Qty,
    pub priority: u64,
}

/// Why the rest of an incoming order was cancelled instead of resting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// Immediate-or-cancel: what did not trade at once is dropped.
    ImmediateOrCancel,
    /// A market order found nothing (more) to trade with.
    NoLiquidity,
    /// Self-trade prevention stopped the taker (policy `CancelTaker` or
    /// `CancelBoth`).
    SelfTrade,
}

/// Why an incoming order was refused whole (nothing changed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefuseReason {
    /// Fill-or-kill that could not fill completely; `available` is what it
    /// could have traded.
    FokNotFillable { available: Qty },
    /// Post-only order that would have traded at once.
    PostOnlyWouldTake,
}

/// What happened to an incoming (or moved) order.
///
/// The fills themselves are appended to the caller's vector; this says where
/// the order ended up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlaceOutcome {
    /// Traded its whole quantity.
    Filled,
    /// Traded `filled` and rests on the book with `remaining`.
    Rested { filled: Qty, remaining: Qty },
    /// Traded `filled`; the rest, `cancelled`, was dropped for `reason`.
    Cancelled {
        filled: Qty,
        cancelled: Qty,
        reason: CancelReason,
    },
    /// Refused whole; the book did not change.
    Refused(RefuseReason),
}

impl PlaceOutcome {
    /// Quantity traded given the order's quantity when it was placed.
    pub fn filled(&self, qty: Qty) -> Qty {
        match *self {
            PlaceOutcome::Filled => qty,
            PlaceOutcome::Rested { filled, .. } | PlaceOutcome::Cancelled { filled, .. } => filled,
            PlaceOutcome::Refused(_) => Qty::ZERO,
        }
    }

    /// Whether the order now rests on the book.
    pub fn is_resting(&self) -> bool {
        matches!(self, PlaceOutcome::Rested { .. })
    }
}
