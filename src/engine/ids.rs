//! Order, trade and take ids.
//!
//! An order id is `<owner peer id>/<owner sequence number>`, so it names the
//! only node that may fill or cancel the order; a trade id is
//! `<maker order id>/<maker fill sequence>`. Sequence numbers are durable, so
//! ids are never reused, also across restarts.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::str::FromStr;

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

/// The id of an order: its owner and the owner's sequence number for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OrderId {
    pub owner: PeerId,
    pub seq: u64,
}

impl OrderId {
    pub fn new(owner: PeerId, seq: u64) -> Self {
        OrderId { owner, seq }
    }
}

/// How many peer ids' text forms each thread keeps.
const PEER_TEXTS: usize = 16;

thread_local! {
    /// Recently written peer ids and their base58 text, newest last: a
    /// node writes the ids of its own orders, and of a few peers', over and
    /// over (every order it reports), and base58 is slow to encode.
    static PEER_TEXT: RefCell<Vec<(PeerId, Rc<str>)>> = const { RefCell::new(Vec::new()) };
}

/// The text form of `peer`, from the cache when it is there.
fn peer_text(peer: &PeerId) -> Rc<str> {
    PEER_TEXT.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(i) = cache.iter().rposition(|(p, _)| p == peer) {
            return cache[i].1.clone();
        }
        let text: Rc<str> = peer.to_base58().into();
        if cache.len() >= PEER_TEXTS {
            cache.remove(0);
        }
        cache.push((*peer, text.clone()));
        text
    })
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", peer_text(&self.owner), self.seq)
    }
}

/// Why a string is not an order or trade id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid id (expected <peer id>/<sequence number>)")]
pub struct BadId(pub String);

impl FromStr for OrderId {
    type Err = BadId;
    fn from_str(s: &str) -> Result<Self, BadId> {
        let bad = || BadId(s.to_string());
        let (owner, seq) = s.split_once('/').ok_or_else(bad)?;
        Ok(OrderId {
            owner: owner.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

/// The id of a trade: the maker order and the maker's fill sequence on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TradeId {
    pub maker: OrderId,
    pub fill_seq: u64,
}

impl fmt::Display for TradeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.maker, self.fill_seq)
    }
}

impl FromStr for TradeId {
    type Err = BadId;
    fn from_str(s: &str) -> Result<Self, BadId> {
        let (order, fill) = s.rsplit_once('/').ok_or_else(|| BadId(s.to_string()))?;
        Ok(TradeId {
            maker: order.parse()?,
            fill_seq: fill.parse().map_err(|_| BadId(s.to_string()))?,
        })
    }
}

/// The id of one take: the taker order and the number of the take among its
/// takes. Makers remember the ids they filled so a repeated take gets the
/// first answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TakeId {
    pub taker: OrderId,
    pub n: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_and_parse_back() {
        let id = OrderId::new(PeerId::random(), 42);
        assert_eq!(id.to_string().parse::<OrderId>().unwrap(), id);
        let t = TradeId {
            maker: id,
            fill_seq: 3,
        };
        assert_eq!(t.to_string().parse::<TradeId>().unwrap(), t);
        assert!("nonsense".parse::<OrderId>().is_err());
        assert!("12D3KooWxyz/1".parse::<OrderId>().is_err());
        assert!(format!("{}/x", id.owner).parse::<OrderId>().is_err());
    }
}
