//! Why the book refused a request. Every error leaves the book unchanged, so
//! the caller can report it and carry on.

use crate::market::{GridError, Price, Qty, MAX_UNITS};

use super::order::OrderKey;

/// A request the book could not carry out; the book is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    #[error("order {0} is already in the book")]
    DuplicateId(OrderKey),
    #[error("order {0} is not in the book")]
    UnknownOrder(OrderKey),
    #[error("a limit order needs a price")]
    MissingPrice,
    #[error("a market order must not have a price")]
    MarketWithPrice,
    #[error("a market order cannot be post-only")]
    MarketPostOnly,
    #[error("quantity must be greater than zero")]
    ZeroQuantity,
    #[error("quantity {} lots is too large (at most {MAX_UNITS})", .0.0)]
    QuantityTooLarge(Qty),
    #[error("price {} ticks is out of range (1 to {MAX_UNITS})", .0.0)]
    PriceOutOfRange(Price),
    #[error("the price level at {} ticks would hold more than 2^64 lots", .0.0)]
    LevelOverflow(Price),
    #[error("the book holds as many orders as it can")]
    Full,
    #[error(transparent)]
    Grid(#[from] GridError),
}
