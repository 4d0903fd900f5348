//! Makers this node could not reach.
//!
//! A take that cannot even be dialled to its maker (the maker is behind a
//! NAT with no relay we share, or gone) marks the maker unreachable for a
//! while: 10 s after the first failure, doubling with each failure that
//! follows up to 5 minutes. While marked, its orders are not takeable
//! liquidity here: the taker does not send them takes (no retry loop), a
//! fill-or-kill does not count them, a crossing limit order does not rest
//! across them, and the API marks them `"reachable": false`. Any answer
//! from the maker, or a connection to it, clears the mark.

use std::collections::HashMap;

use libp2p::PeerId;

use super::Millis;

/// The first wait after a maker could not be reached.
pub const FIRST_BACKOFF_MS: Millis = 10_000;
/// The longest wait.
pub const MAX_BACKOFF_MS: Millis = 300_000;

#[derive(Clone, Copy, Debug)]
struct Mark {
    until: Millis,
    backoff: Millis,
}

/// The makers marked unreachable, and until when.
#[derive(Debug, Default)]
pub(super) struct Unreachable {
    marks: HashMap<PeerId, Mark>,
}

impl Unreachable {
    /// A take could not be dialled to `peer`: mark it, for longer each time.
    /// Returns how long the mark lasts.
    pub fn failed(&mut self, peer: PeerId, now: Millis) -> Millis {
        let backoff = match self.marks.get(&peer) {
            Some(m) => m.backoff.saturating_mul(2).min(MAX_BACKOFF_MS),
            None => FIRST_BACKOFF_MS,
        };
        self.marks.insert(
            peer,
            Mark {
                until: now.saturating_add(backoff),
                backoff,
            },
        );
        backoff
    }

    /// The peer answered or connected: it is reachable. Returns whether it
    /// was marked.
    pub fn reached(&mut self, peer: &PeerId) -> bool {
        self.marks.remove(peer).is_some()
    }

    /// Whether `peer` is marked unreachable now.
    pub fn is_unreachable(&self, peer: &PeerId, now: Millis) -> bool {
        self.marks.get(peer).is_some_and(|m| m.until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_lasts_longer_after_each_failure_up_to_the_bound() {
        let mut u = Unreachable::default();
        let p = PeerId::random();
        assert!(!u.is_unreachable(&p, 0));
        assert_eq!(u.failed(p, 0), FIRST_BACKOFF_MS);
        assert!(u.is_unreachable(&p, FIRST_BACKOFF_MS - 1));
        assert!(!u.is_unreachable(&p, FIRST_BACKOFF_MS));
        assert_eq!(u.failed(p, FIRST_BACKOFF_MS), 2 * FIRST_BACKOFF_MS);
        for _ in 0..10 {
            u.failed(p, 0);
        }
        assert_eq!(u.failed(p, 0), MAX_BACKOFF_MS);
    }

    #[test]
    fn an_answer_clears_the_mark_and_the_backoff() {
        let mut u = Unreachable::default();
        let p = PeerId::random();
        u.failed(p, 0);
        u.failed(p, 0);
        assert!(u.reached(&p));
        assert!(!u.is_unreachable(&p, 1));
        assert!(!u.reached(&p));
        assert_eq!(u.failed(p, 0), FIRST_BACKOFF_MS);
    }
}

/// The marking at work in the simulated network: a maker the taker cannot
/// dial (cut apart, its orders still gossiped through a third node).
#[cfg(test)]
mod sim_tests {
    use std::str::FromStr;

    use rust_decimal::Decimal;

    use super::super::sim::{NetModel, Sim};
    use super::super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn sim() -> Sim {
        let spec = MarketSpec::new("SIM", d("0.01"), Decimal::ONE).unwrap();
        let mut s = Sim::new(3, 7, vec![spec], EngineConfig::default(), NetModel::calm());
        s.run_for(500);
        s
    }

    #[test]
    fn an_unreachable_maker_is_marked_not_retried_and_not_rested_across() {
        let mut s = sim();
        let sell = s.command(0, s.order(Side::Sell, 10_000, 5, Tif::Gtc));
        s.run_for(300);
        assert!(matches!(&s.replies[&sell], Ok(o) if o.status == OrderStatus::Open));
        // Node 1 cannot reach node 0, but still hears of its orders via node 2.
        s.partition(0, 1);
        s.run_for(300);

        let buy = s.command(1, s.order(Side::Buy, 10_100, 3, Tif::Gtc));
        s.run_for(500);
        let b = s.replies[&buy].as_ref().unwrap().clone();
        assert_eq!(b.status, OrderStatus::Cancelled, "{b:?}");
        assert_eq!(
            b.reason.as_deref(),
            Some(super::super::taker::CROSSES_UNREACHABLE)
        );
        let e1 = s.nodes[1].engine.as_ref().unwrap();
        let book = e1.book("SIM", 5).unwrap();
        assert_eq!(book.asks, vec![(d("100"), d("5"))]);
        assert_eq!(book.unreachable.asks, vec![(d("100"), d("5"))]);
        assert!(book.bids.is_empty(), "nothing rests across the ask");
        let owner = e1
            .owners()
            .into_iter()
            .find(|o| o.peer_id == s.nodes[0].id.to_string())
            .unwrap();
        assert!(!owner.reachable);
        let sent = e1.counters().takes_sent;

        // An IOC while the mark lasts sends nothing: no retry loop.
        let ioc = s.command(1, s.order(Side::Buy, 10_100, 1, Tif::Ioc));
        s.run_for(3_000);
        let e1 = s.nodes[1].engine.as_ref().unwrap();
        assert_eq!(e1.counters().takes_sent, sent);
        assert_eq!(
            s.replies[&ioc].as_ref().unwrap().status,
            OrderStatus::Expired
        );

        // Reachable again: it trades.
        s.heal(0, 1);
        s.run_for(300);
        let again = s.command(1, s.order(Side::Buy, 10_100, 2, Tif::Gtc));
        s.run_for(500);
        assert_eq!(
            s.replies[&again].as_ref().unwrap().status,
            OrderStatus::Filled
        );
        let e1 = s.nodes[1].engine.as_ref().unwrap();
        assert!(e1.book("SIM", 5).unwrap().unreachable.asks.is_empty());
    }
}
