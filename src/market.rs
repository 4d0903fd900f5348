//! Markets and their price/quantity grids.
//!
//! A market trades on a grid: prices are whole multiples of its tick size and
//! quantities whole multiples of its lot size. Everything inside the node (the
//! book, the engine, the wire) works in integer ticks and lots; `Decimal` only
//! appears at the edges (HTTP, CLI, config), and this module is the one place
//! where the two meet. A value off the grid, zero, negative or too large is an
//! error that names the problem, so a bad order never reaches the book.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Largest number of ticks a price may have, and of lots a quantity may have.
///
/// 2^53 keeps every value exactly representable as a JSON number and leaves
/// ample head room for sums of quantities in `u64`/`u128` arithmetic.
pub const MAX_UNITS: u64 = 1 << 53;

/// Which side of the book an order is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    /// The side an order of this side trades against.
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// Whether a taker on this side with limit `limit` may trade at `maker`.
    #[inline]
    pub fn crosses(self, limit: Price, maker: Price) -> bool {
        match self {
            Side::Buy => maker <= limit,
            Side::Sell => maker >= limit,
        }
    }

    /// Lower-case name as used on the API and CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Side {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "buy" | "bid" => Ok(Side::Buy),
            "sell" | "ask" => Ok(Side::Sell),
            other => Err(format!("side must be buy or sell, got {other:?}")),
        }
    }
}

/// A price in whole ticks of its market.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Price(pub u64);

/// A quantity in whole lots of its market.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Qty(pub u64);

impl Qty {
    pub const ZERO: Qty = Qty(0);

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn min(self, other: Qty) -> Qty {
        Qty(self.0.min(other.0))
    }

    pub fn saturating_sub(self, other: Qty) -> Qty {
        Qty(self.0.saturating_sub(other.0))
    }
}

impl std::ops::Add for Qty {
    type Output = Qty;
    fn add(self, rhs: Qty) -> Qty {
        Qty(self.0 + rhs.0)
    }
}

impl std::ops::AddAssign for Qty {
    fn add_assign(&mut self, rhs: Qty) {
        self.0 += rhs.0;
    }
}

impl std::ops::Sub for Qty {
    type Output = Qty;
    fn sub(self, rhs: Qty) -> Qty {
        Qty(self.0 - rhs.0)
    }
}

impl std::ops::SubAssign for Qty {
    fn sub_assign(&mut self, rhs: Qty) {
        self.0 -= rhs.0;
    }
}

/// Why a decimal price or quantity does not fit a market's grid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GridError {
    #[error("{what} must be greater than zero, got {value}")]
    NotPositive { what: &'static str, value: Decimal },
    #[error("price {price} is not a multiple of the tick size {tick}")]
    OffTick { price: Decimal, tick: Decimal },
    #[error("quantity {quantity} is not a multiple of the lot size {lot}")]
    OffLot { quantity: Decimal, lot: Decimal },
    #[error("{what} {value} is too large (at most {max})")]
    OutOfRange {
        what: &'static str,
        value: Decimal,
        max: Decimal,
    },
}

/// Why a market definition is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarketError {
    #[error("market name {0:?} must be 1 to 32 characters of A-Z, 0-9, '-', '_' or '.'")]
    BadName(String),
    #[error("market {market}: {what} must be greater than zero, got {value}")]
    NotPositive {
        market: String,
        what: &'static str,
        value: Decimal,
    },
}

/// A market's parameters: its name and its grid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketSpec {
    pub name: String,
    pub tick: Decimal,
    pub lot: Decimal,
}

impl MarketSpec {
    /// A checked market definition.
    pub fn new(name: &str, tick: Decimal, lot: Decimal) -> Result<Self, MarketError> {
        let ok_name = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if !ok_name {
            return Err(MarketError::BadName(name.to_string()));
        }
        for (what, value) in [("tick size", tick), ("lot size", lot)] {
            if value <= Decimal::ZERO {
                return Err(MarketError::NotPositive {
                    market: name.to_string(),
                    what,
                    value,
                });
            }
        }
        Ok(MarketSpec {
            name: name.to_string(),
            tick: tick.normalize(),
            lot: lot.normalize(),
        })
    }

    /// The price as a whole number of ticks.
    pub fn price_to_ticks(&self, price: Decimal) -> Result<Price, GridError> {
        units(price, self.tick, "price")
            .map(Price)
            .map_err(|e| match e {
                UnitError::NotPositive => GridError::NotPositive {
                    what: "price",
                    value: price,
                },
                UnitError::OffGrid => GridError::OffTick {
                    price,
                    tick: self.tick,
                },
                UnitError::TooLarge => GridError::OutOfRange {
                    what: "price",
                    value: price,
                    max: self.tick * Decimal::from(MAX_UNITS),
                },
            })
    }

    /// The quantity as a whole number of lots.
    pub fn qty_to_lots(&self, quantity: Decimal) -> Result<Qty, GridError> {
        units(quantity, self.lot, "quantity")
            .map(Qty)
            .map_err(|e| match e {
                UnitError::NotPositive => GridError::NotPositive {
                    what: "quantity",
                    value: quantity,
                },
                UnitError::OffGrid => GridError::OffLot {
                    quantity,
                    lot: self.lot,
                },
                UnitError::TooLarge => GridError::OutOfRange {
                    what: "quantity",
                    value: quantity,
                    max: self.lot * Decimal::from(MAX_UNITS),
                },
            })
    }

    /// The decimal price of a number of ticks.
    pub fn ticks_to_price(&self, price: Price) -> Decimal {
        (self.tick * Decimal::from(price.0)).normalize()
    }

    /// The decimal quantity of a number of lots.
    pub fn lots_to_qty(&self, qty: Qty) -> Decimal {
        (self.lot * Decimal::from(qty.0)).normalize()
    }

    /// A short, stable hash of the market's parameters.
    ///
    /// It is part of the market's gossip topic, so that nodes configured with
    /// different tick or lot sizes for the same name never mix their books.
    pub fn params_hash(&self) -> String {
        let canonical = format!(
            "{}|{}|{}",
            self.name,
            self.tick.normalize(),
            self.lot.normalize()
        );
        let hash = blake3::hash(canonical.as_bytes());
        hash.to_hex()[..12].to_string()
    }

    /// The gossipsub topic of this market.
    pub fn topic(&self) -> String {
        format!("peerbook/1/market/{}/{}", self.name, self.params_hash())
    }
}

enum UnitError {
    NotPositive,
    OffGrid,
    TooLarge,
}

fn units(value: Decimal, step: Decimal, _what: &str) -> Result<u64, UnitError> {
    if value <= Decimal::ZERO {
        return Err(UnitError::NotPositive);
    }
    let n = value.checked_div(step).ok_or(UnitError::TooLarge)?;
    if n.fract() != Decimal::ZERO {
        return Err(UnitError::OffGrid);
    }
    if n > Decimal::from(MAX_UNITS) {
        return Err(UnitError::TooLarge);
    }
    u64::try_from(n).map_err(|_| UnitError::TooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn btc() -> MarketSpec {
        MarketSpec::new("BTC-USD", d("0.01"), d("0.0001")).unwrap()
    }

    #[test]
    fn prices_and_quantities_round_trip_through_the_grid() {
        let m = btc();
        assert_eq!(m.price_to_ticks(d("100.25")).unwrap(), Price(10025));
        assert_eq!(m.ticks_to_price(Price(10025)), d("100.25"));
        assert_eq!(m.qty_to_lots(d("1.5")).unwrap(), Qty(15000));
        assert_eq!(m.lots_to_qty(Qty(15000)), d("1.5"));
    }

    #[test]
    fn off_grid_zero_negative_and_huge_values_are_named_errors() {
        let m = btc();
        assert!(matches!(
            m.price_to_ticks(d("100.001")),
            Err(GridError::OffTick { .. })
        ));
        assert!(matches!(
            m.qty_to_lots(d("0.00001")),
            Err(GridError::OffLot { .. })
        ));
        assert!(matches!(
            m.price_to_ticks(d("0")),
            Err(GridError::NotPositive { what: "price", .. })
        ));
        assert!(matches!(
            m.qty_to_lots(d("-1")),
            Err(GridError::NotPositive {
                what: "quantity",
                ..
            })
        ));
        assert!(matches!(
            m.price_to_ticks(d("1000000000000000000")),
            Err(GridError::OutOfRange { .. })
        ));
        let msg = m.price_to_ticks(d("1.005")).unwrap_err().to_string();
        assert!(msg.contains("1.005") && msg.contains("0.01"), "{msg}");
    }

    #[test]
    fn topic_depends_on_grid_parameters() {
        let a = btc();
        let b = MarketSpec::new("BTC-USD", d("0.1"), d("0.0001")).unwrap();
        assert_ne!(a.topic(), b.topic());
        let a2 = MarketSpec::new("BTC-USD", d("0.010"), d("0.00010")).unwrap();
        assert_eq!(a.topic(), a2.topic());
    }

    #[test]
    fn bad_market_definitions_are_refused() {
        assert!(MarketSpec::new("btc usd", d("1"), d("1")).is_err());
        assert!(MarketSpec::new("X", d("0"), d("1")).is_err());
    }
}
