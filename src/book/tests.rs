//! Unit tests of the book: every order type and time in force, amend, move,
//! self-trade prevention, the replica methods, and every error (which must
//! leave the book unchanged).

use std::str::FromStr;

use rust_decimal::Decimal;

use super::*;
use crate::market::GridError;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn spec() -> MarketSpec {
    MarketSpec::new("TEST", d("0.01"), d("0.001")).unwrap()
}

fn book() -> Book {
    Book::new(spec())
}

const ALICE: OwnerKey = 1;
const BOB: OwnerKey = 2;
const CAROL: OwnerKey = 3;

fn buy(id: OrderKey, owner: OwnerKey, price: u64, qty: u64) -> NewOrder {
    NewOrder::limit(id, owner, Side::Buy, Price(price), Qty(qty))
}

fn sell(id: OrderKey, owner: OwnerKey, price: u64, qty: u64) -> NewOrder {
    NewOrder::limit(id, owner, Side::Sell, Price(price), Qty(qty))
}

/// Places and returns the outcome and the fills of this one call.
fn place(b: &mut Book, o: NewOrder) -> (PlaceOutcome, Vec<Fill>) {
    let mut fills = Vec::new();
    let out = b.place(o, &mut fills).unwrap();
    b.check_invariants().unwrap();
    (out, fills)
}

fn rest(b: &mut Book, o: NewOrder) {
    let (out, fills) = place(b, o);
    assert!(out.is_resting(), "{out:?}");
    assert!(fills.is_empty());
}

/// (maker, price, qty) of each fill.
fn trades(fills: &[Fill]) -> Vec<(OrderKey, u64, u64)> {
    fills
        .iter()
        .map(|f| (f.maker, f.price.0, f.qty.0))
        .collect()
}

fn ids(b: &Book, side: Side) -> Vec<OrderKey> {
    b.iter_side(side).map(|o| o.id).collect()
}

#[test]
fn gtc_limit_rests_when_nothing_crosses() {
    let mut b = book();
    let (out, fills) = place(&mut b, buy(1, ALICE, 100, 5));
    assert_eq!(
        out,
        PlaceOutcome::Rested {
            filled: Qty(0),
            remaining: Qty(5)
        }
    );
    assert!(fills.is_empty());
    rest(&mut b, sell(2, BOB, 101, 7));
    assert_eq!(b.best_bid(), Some((Price(100), Qty(5))));
    assert_eq!(b.best_ask(), Some((Price(101), Qty(7))));
    assert_eq!(b.len(), 2);
    let view = b.get(1).unwrap();
    assert_eq!(
        (view.owner, view.side, view.price, view.remaining),
        (ALICE, Side::Buy, Price(100), Qty(5))
    );
}

#[test]
fn crossing_limit_trades_at_the_resting_price_and_rests_the_remainder() {
    let mut b = book();
    rest(&mut b, sell(1, ALICE, 100, 3));
    let (out, fills) = place(&mut b, buy(2, BOB, 105, 10));
    assert_eq!(
        out,
        PlaceOutcome::Rested {
            filled: Qty(3),
            remaining: Qty(7)
        }
    );
    assert_eq!(
        fills,
        vec![Fill {
            maker: 1,
            maker_owner: ALICE,
            taker: 2,
            price: Price(100),
            qty: Qty(3),
            maker_remaining: Qty(0),
            taker_remaining: Qty(7),
        }]
    );
    assert_eq!(b.best_bid(), Some((Price(105), Qty(7))));
    assert_eq!(b.best_ask(), None);
    assert!(b.get(1).is_none());
}

#[test]
fn fills_walk_levels_in_price_then_time_priority_up_to_the_limit() {
    let mut b = book();
    rest(&mut b, sell(1, ALICE, 102, 2));
    rest(&mut b, sell(2, BOB, 101, 2));
    rest(&mut b, sell(3, CAROL, 101, 2));
    rest(&mut b, sell(4, ALICE, 103, 2));
    rest(&mut b, sell(5, BOB, 104, 2));
    let (out, fills) = place(&mut b, buy(9, 9, 103, 7));
    assert_eq!(
        trades(&fills),
        vec![(2, 101, 2), (3, 101, 2), (1, 102, 2), (4, 103, 1)]
    );
    assert_eq!(fills.last().unwrap().maker_remaining, Qty(1));
    assert_eq!(out, PlaceOutcome::Filled);
    assert_eq!(b.best_ask(), Some((Price(103), Qty(1))));
    assert_eq!(ids(&b, Side::Sell), vec![4, 5]);
}

#[test]
fn a_limit_order_stops_at_its_limit_and_rests_there() {
    let mut b = book();
    rest(&mut b, buy(1, ALICE, 100, 2));
    rest(&mut b, buy(2, ALICE, 99, 2));
    rest(&mut b, buy(3, ALICE, 98, 2));
    let (out, fills) = place(&mut b, sell(4, BOB, 99, 10));
    assert_eq!(trades(&fills), vec![(1, 100, 2), (2, 99, 2)]);
    assert_eq!(
        out,
        PlaceOutcome::Rested {
            filled: Qty(4),
            remaining: Qty(6)
        }
    );
    assert_eq!(b.best_ask(), Some((Price(99), Qty(6))));
    assert_eq!(b.best_bid(), Some((Price(98), Qty(2))));
}

#[test]
fn market_order_walks_the_book_and_never_rests() {
    let mut b = book();
    rest(&mut b, sell(1, ALICE, 100, 2));
    rest(&mut b, sell(2, ALICE, 150, 2));
    let (out, fills) = place(&mut b, NewOrder::market(3, BOB, Side::Buy, Qty(5)));
    assert_eq!(trades(&fills), vec![(1, 100, 2), (2, 150, 2)]);
    assert_eq!(
        out,
        PlaceOutcome::Cancelled {
            filled: Qty(4),
            cancelled: Qty(1),
            reason: CancelReason::NoLiquidity
        }
    );
    assert!(b.is_empty());
    // Even a GTC market order does not rest.
    let (out, _) = place(
        &mut b,
        NewOrder::market(4, BOB, Side::Sell, Qty(5)).with_tif(TimeInForce::Gtc),
    );
    assert_eq!(
        out,
        PlaceOutcome::Cancelled {
            filled: Qty(0),
            cancelled: Qty(5),
            reason: CancelReason::NoLiquidity
        }
    );
    assert!(b.is_empty());
}

#[test]
fn market_order_that_fills_completely_is_filled() {
    let mut b = book();
    rest(&mut b, buy(1, ALICE, 100, 10));
    let (out, fills) = place(&mut b, NewOrder::market(2, BOB, Side::Sell, Qty(4)));
    assert_eq!(out, PlaceOutcome::Filled);
    assert_eq!(trades(&fills), vec![(1, 100, 4)]);
    assert_eq!(b.best_bid(), Some((Price(100), Qty(6))));
}

#[test]
fn ioc_trades_what_it_can_and_cancels_the_rest() {
    let mut b = book();
    rest(&mut b, sell(1, ALICE, 100, 3));
    rest(&mut b, sell(2, ALICE, 102, 3));
    let (out, fills) = place(&mut b, buy(3, BOB, 101, 5).with_tif(TimeInForce::Ioc));
    assert_eq!(trades(&fills), vec![(1, 100, 3)]);
    assert_eq!(
        out,
        PlaceOutcome::Cancelled {
            filled: Qty(3),
            cancelled: Qty(2),
            reason: CancelReason::ImmediateOrCancel
        }
    );
    assert!(b.get(3).is_none());
    assert_eq!(b.best_bid(), None);
    // An IOC that crosses nothing is cancelled whole.
    let (out, _) = place(&mut b, buy(4, BOB, 101, 5).with_tif(TimeInForce::Ioc));
    assert_eq!(
        out,
        PlaceOutcome::Cancelled {
            filled: Qty(0),
            cancelled: Qty(5),
            reason: CancelReason::ImmediateOrCancel
        }
    );
    assert_eq!(b.len(), 1);
}

#[test]
fn fok_fills_completely_across_levels_when_it_can() {
    let mut b = book();
    rest(&mut b, sell(1, ALICE, 100, 3));
    rest(&mut b, sell(2, ALICE, 101, 3));
    let (out, fills) = place(&mut b, buy(3, BOB, 101, 6).with_tif(TimeInForce::Fok));
    assert_eq!(out, PlaceOutcome::Filled);
    assert_eq!(trades(&fills), vec![(1, 100, 3), (2, 101, 3)]);
    assert!(b.is_empty());
}

#[test]
fn fok_that_cannot_fill_completely_is_refused_and_changes_nothing() {
    let mut b = book();
    rest(&mut b, sell(1, ALICE, 100, 3));
    rest(&mut b, sell(2, ALICE, 101, 3));
    rest(&mut b, sell(5, ALICE, 102, 30));
    let before = b.digest();
    let (out, fills) = place(&mut b, buy(3, BOB, 101, 7).with_tif(TimeInForce::Fok));
    assert_eq!(
        out,
        PlaceOutcome::Refused(RefuseReason::FokNotFillable { available: Qty(6) })
    );
    assert!(fills.is_empty());
    assert_eq!(b.digest(), before);
    // A market FOK has no limit.
    let (out, _) = place(
        &mut b,
        NewOrder::market(4, BOB, Side::Buy, Qty(37)).with_tif(TimeInForce::Fok),
    );
    assert_eq!(
        out,
        PlaceOutcome::Refused(RefuseReason::FokNotFillable { available: Qty(36) })
    );
    assert_eq!(b.digest(), before);
}

#[test]
fn post_only_that_would_take_is_refused_and_changes_nothing() {
    let mut b = book();
    rest(&mut b, sell(1, ALICE, 100, 3));
    let before = b.digest();
    let (out, fills) = place(&mut b, buy(2, BOB, 100, 1).with_tif(TimeInForce::PostOnly));
    assert_eq!(out, PlaceOutcome::Refused(RefuseReason::PostOnlyWouldTake));
    assert!(fills.is_empty());
    assert_eq!(b.digest(), before);
    assert!(b.get(2).is_none());
}

#[test]
fn post_only_that_does_not_cross_rests() {
    let mut b = book();
    rest(&mut b, sell(1, ALICE, 100, 3));
    rest(&mut b, buy(2, BOB, 99, 1).with_tif(TimeInForce::PostOnly));
    assert_eq!(b.best_bid(), Some((Price(99), Qty(1))));
}

#[test]
fn cancel_of_a_partly_filled_order_returns_only_what_was_left() {
    let mut b = book();
    rest(&mut b, sell(1, ALICE, 100, 10));
    place(&mut b, buy(2, BOB, 100, 4));
    assert_eq!(b.cancel(1), Ok(Qty(6)));
    b.check_invariants().unwrap();
    assert!(b.is_empty());
    assert_eq!(b.cancel(1), Err(BookError::UnknownOrder(1)));
}

#[test]
fn cancel_in_the_middle_of_a_level_keeps_the_others_in_order() {
    let mut b = book();
    for id in 1..=4 {
        rest(&mut b, buy(id, ALICE, 100, id));
    }
    assert_eq!(b.cancel(2), Ok(Qty(2)));
    assert_eq!(b.cancel(4), Ok(Qty(4)));
    b.check_invariants().unwrap();
    assert_eq!(ids(&b, Side::Buy), vec![1, 3]);
    assert_eq!(b.best_bid(), Some((Price(100), Qty(4))));
}

#[test]
fn amend_down_keeps_time_priority() {
    let mut b = book();
    rest(&mut b, buy(1, ALICE, 100, 5));
    rest(&mut b, buy(2, BOB, 100, 5));
    let prio = b.get(1).unwrap().priority;
    assert_eq!(b.amend(1, Qty(2)), Ok(Qty(5)));
    b.check_invariants().unwrap();
    assert_eq!(b.get(1).unwrap().priority, prio);
    assert_eq!(ids(&b, Side::Buy), vec![1, 2]);
    assert_eq!(b.best_bid(), Some((Price(100), Qty(7))));
    let (_, fills) = place(&mut b, sell(3, CAROL, 100, 3));
    assert_eq!(trades(&fills), vec![(1, 100, 2), (2, 100, 1)]);
}

#[test]
fn amend_up_loses_time_priority() {
    let mut b = book();
    rest(&mut b, buy(1, ALICE, 100, 5));
    rest(&mut b, buy(2, BOB, 100, 5));
    rest(&mut b, buy(3, BOB, 100, 5));
    assert_eq!(b.amend(1, Qty(6)), Ok(Qty(5)));
    b.check_invariants().unwrap();
    assert_eq!(ids(&b, Side::Buy), vec![2, 3, 1]);
    assert_eq!(b.best_bid(), Some((Price(100), Qty(16))));
    // The last order of a level amended up stays last.
    assert_eq!(b.amend(1, Qty(7)), Ok(Qty(6)));
    assert_eq!(ids(&b, Side::Buy), vec![2, 3, 1]);
    let (_, fills) = place(&mut b, sell(4, CAROL, 100, 11));
    assert_eq!(trades(&fills), vec![(2, 100, 5), (3, 100, 5), (1, 100, 1)]);
}

#[test]
fn amend_to_the_same_quantity_changes_nothing() {
    let mut b = book();
    rest(&mut b, buy(1, ALICE, 100, 5));
    rest(&mut b, buy(2, BOB, 100, 5));
    let before = b.digest();
    assert_eq!(b.amend(1, Qty(5)), Ok(Qty(5)));
    assert_eq!(b.digest(), before);
}

#[test]
fn amend_to_zero_cancels() {
    let mut b = book();
    rest(&mut b, buy(1, ALICE, 100, 5));
    assert_eq!(b.amend(1, Qty(0)), Ok(Qty(5)));
    assert!(b.is_empty());
    b.check_invariants().unwrap();
}

#[test]
fn move_to_a_crossing_price_trades_and_rests_the_rest() {
    let mut b = book();
    rest(&mut b, sell(1, ALICE, 101, 2));
    rest(&mut b, buy(2, BOB, 99, 5));
    let mut fills = Vec::new();
    let out = b.move_order(2, Price(101), &mut fills).unwrap();
    b.check_invariants().unwrap();
    assert_eq!(trades(&fills), vec![(1, 101, 2)]);
    assert_eq!(fills[0].taker, 2);
    assert_eq!(
        out,
        PlaceOutcome::Rested {
            filled: Qty(2),
            remaining: Qty(3)
        }
    );
    assert_eq!(b.best_bid(), Some((Price(101), Qty(3))));
    assert_eq!(b.get(2).unwrap().price, Price(101));
}

#[test]
fn move_that_fills_completely_removes_the_order() {
    let mut b = book();
    rest(&mut b, sell(1, ALICE, 101, 9));
    rest(&mut b, buy(2, BOB, 99, 5));
    let mut fills = Vec::new();
    assert_eq!(
        b.move_order(2, Price(102), &mut fills),
        Ok(PlaceOutcome::Filled)
    );
    b.check_invariants().unwrap();
    assert!(b.get(2).is_none());
    assert_eq!(b.best_ask(), Some((Price(101), Qty(4))));
}

#[test]
fn move_loses_priority_at_the_new_price() {
    let mut b = book();
    rest(&mut b, buy(1, ALICE, 99, 5));
    rest(&mut b, buy(2, BOB, 100, 5));
    let mut fills = Vec::new();
    b.move_order(1, Price(100), &mut fills).unwrap();
    b.move_order(1, Price(100), &mut fills).unwrap();
    assert!(fills.is_empty());
    b.check_invariants().unwrap();
    assert_eq!(ids(&b, Side::Buy), vec![2, 1]);
    assert_eq!(b.level_count(Side::Buy), 1);
}

#[test]
fn move_to_its_own_price_keeps_priority() {
    let mut b = book();
    rest(&mut b, buy(1, ALICE, 100, 5));
    rest(&mut b, buy(2, BOB, 100, 5));
    let before = b.digest();
    let mut fills = Vec::new();
    assert_eq!(
        b.move_order(1, Price(100), &mut fills),
        Ok(PlaceOutcome::Rested {
            filled: Qty(0),
            remaining: Qty(5)
        })
    );
    assert_eq!(b.digest(), before);
}

#[test]
fn moving_a_post_only_order_across_the_book_is_refused_and_it_stays() {
    let mut b = book();
    rest(&mut b, sell(1, ALICE, 101, 2));
    rest(&mut b, buy(2, BOB, 99, 5).with_tif(TimeInForce::PostOnly));
    let before = b.digest();
    let mut fills = Vec::new();
    assert_eq!(
        b.move_order(2, Price(101), &mut fills),
        Ok(PlaceOutcome::Refused(RefuseReason::PostOnlyWouldTake))
    );
    assert_eq!(b.digest(), before);
    assert!(fills.is_empty());
    assert!(b
        .move_order(2, Price(100), &mut fills)
        .unwrap()
        .is_resting());
    assert_eq!(b.best_bid(), Some((Price(100), Qty(5))));
}

#[test]
fn stp_cancel_taker_is_the_default_and_keeps_the_earlier_trades() {
    let mut b = book();
    assert_eq!(b.stp_policy(), StpPolicy::CancelTaker);
    rest(&mut b, sell(1, BOB, 100, 2));
    rest(&mut b, sell(2, ALICE, 100, 2));
    rest(&mut b, sell(3, BOB, 100, 2));
    let (out, fills) = place(&mut b, buy(4, ALICE, 100, 5));
    assert_eq!(trades(&fills), vec![(1, 100, 2)]);
    assert_eq!(
        out,
        PlaceOutcome::Cancelled {
            filled: Qty(2),
            cancelled: Qty(3),
            reason: CancelReason::SelfTrade
        }
    );
    assert!(b.stp_cancels().is_empty());
    assert_eq!(ids(&b, Side::Sell), vec![2, 3]);
    assert!(b.get(4).is_none());
}

#[test]
fn stp_cancel_maker_removes_own_resting_orders_and_goes_on() {
    let mut b = Book::with_stp(spec(), StpPolicy::CancelMaker);
    rest(&mut b, sell(1, BOB, 100, 2));
    rest(&mut b, sell(2, ALICE, 100, 2));
    rest(&mut b, sell(3, ALICE, 101, 2));
    rest(&mut b, sell(4, BOB, 102, 2));
    let (out, fills) = place(&mut b, buy(5, ALICE, 102, 3));
    assert_eq!(trades(&fills), vec![(1, 100, 2), (4, 102, 1)]);
    assert_eq!(out, PlaceOutcome::Filled);
    assert_eq!(b.stp_cancels(), &[(2, Qty(2)), (3, Qty(2))]);
    assert_eq!(ids(&b, Side::Sell), vec![4]);
}

#[test]
fn stp_cancel_both_removes_the_maker_and_stops_the_taker() {
    let mut b = Book::with_stp(spec(), StpPolicy::CancelBoth);
    rest(&mut b, sell(1, BOB, 100, 2));
    rest(&mut b, sell(2, ALICE, 100, 2));
    rest(&mut b, sell(3, BOB, 100, 2));
    let (out, fills) = place(&mut b, buy(4, ALICE, 100, 5));
    assert_eq!(trades(&fills), vec![(1, 100, 2)]);
    assert_eq!(
        out,
        PlaceOutcome::Cancelled {
            filled: Qty(2),
            cancelled: Qty(3),
            reason: CancelReason::SelfTrade
        }
    );
    assert_eq!(b.stp_cancels(), &[(2, Qty(2))]);
    assert_eq!(ids(&b, Side::Sell), vec![3]);
}

#[test]
fn fok_counts_self_trade_prevention_as_matching_would() {
    let mut b = book();
    rest(&mut b, sell(1, BOB, 100, 2));
    rest(&mut b, sell(2, ALICE, 100, 2));
    rest(&mut b, sell(3, BOB, 100, 2));
    let before = b.digest();
    let (out, _) = place(&mut b, buy(4, ALICE, 100, 3).with_tif(TimeInForce::Fok));
    assert_eq!(
        out,
        PlaceOutcome::Refused(RefuseReason::FokNotFillable { available: Qty(2) })
    );
    assert_eq!(b.digest(), before);

    let mut m = Book::with_stp(spec(), StpPolicy::CancelMaker);
    rest(&mut m, sell(1, BOB, 100, 2));
    rest(&mut m, sell(2, ALICE, 100, 2));
    rest(&mut m, sell(3, BOB, 100, 2));
    let (out, fills) = place(&mut m, buy(4, ALICE, 100, 4).with_tif(TimeInForce::Fok));
    assert_eq!(out, PlaceOutcome::Filled);
    assert_eq!(trades(&fills), vec![(1, 100, 2), (3, 100, 2)]);
}

#[test]
fn stp_applies_to_a_moved_order_too() {
    let mut b = book();
    rest(&mut b, sell(1, ALICE, 101, 2));
    rest(&mut b, buy(2, ALICE, 99, 5));
    let mut fills = Vec::new();
    let out = b.move_order(2, Price(101), &mut fills).unwrap();
    assert_eq!(
        out,
        PlaceOutcome::Cancelled {
            filled: Qty(0),
            cancelled: Qty(5),
            reason: CancelReason::SelfTrade
        }
    );
    b.check_invariants().unwrap();
    assert!(b.get(2).is_none());
    assert_eq!(ids(&b, Side::Sell), vec![1]);
}

fn view(id: OrderKey, side: Side, price: u64, remaining: u64, priority: u64) -> OrderView {
    OrderView {
        id,
        owner: id as OwnerKey,
        side,
        price: Price(price),
        remaining: Qty(remaining),
        priority,
    }
}

#[test]
fn insert_resting_places_by_priority_with_ties_after_existing() {
    let mut b = book();
    for (id, prio) in [(1, 50), (2, 10), (3, 30), (4, 30), (5, 5), (6, 99)] {
        b.insert_resting(view(id, Side::Sell, 100, 1, prio))
            .unwrap();
        b.check_invariants().unwrap();
    }
    assert_eq!(ids(&b, Side::Sell), vec![5, 2, 3, 4, 1, 6]);
    // A placed order queues behind every replica.
    rest(&mut b, sell(7, ALICE, 100, 1));
    assert_eq!(b.get(7).unwrap().priority, 100);
    let (_, fills) = place(&mut b, buy(8, 100, 100, 3));
    assert_eq!(trades(&fills), vec![(5, 100, 1), (2, 100, 1), (3, 100, 1)]);
}

#[test]
fn insert_resting_does_not_match_and_may_cross_the_book() {
    let mut b = book();
    b.insert_resting(view(1, Side::Buy, 105, 3, 1)).unwrap();
    b.insert_resting(view(2, Side::Sell, 100, 3, 2)).unwrap();
    b.check_invariants().unwrap();
    assert!(b.is_crossed());
    assert_eq!(b.len(), 2);
}

#[test]
fn set_remaining_keeps_priority_and_zero_removes() {
    let mut b = book();
    b.insert_resting(view(1, Side::Buy, 100, 3, 1)).unwrap();
    b.insert_resting(view(2, Side::Buy, 100, 3, 2)).unwrap();
    b.set_remaining(1, Qty(10)).unwrap();
    b.check_invariants().unwrap();
    assert_eq!(ids(&b, Side::Buy), vec![1, 2]);
    assert_eq!(b.best_bid(), Some((Price(100), Qty(13))));
    b.set_remaining(1, Qty(1)).unwrap();
    assert_eq!(b.best_bid(), Some((Price(100), Qty(4))));
    b.set_remaining(1, Qty(0)).unwrap();
    b.check_invariants().unwrap();
    assert_eq!(ids(&b, Side::Buy), vec![2]);
    assert_eq!(b.set_remaining(1, Qty(1)), Err(BookError::UnknownOrder(1)));
}

#[test]
fn depth_aggregates_levels_best_first() {
    let mut b = book();
    rest(&mut b, buy(1, ALICE, 100, 1));
    rest(&mut b, buy(2, ALICE, 100, 2));
    rest(&mut b, buy(3, ALICE, 98, 4));
    rest(&mut b, buy(4, ALICE, 99, 8));
    rest(&mut b, sell(5, ALICE, 103, 1));
    rest(&mut b, sell(6, ALICE, 101, 2));
    assert_eq!(
        b.depth(Side::Buy, 10),
        vec![
            (Price(100), Qty(3)),
            (Price(99), Qty(8)),
            (Price(98), Qty(4))
        ]
    );
    assert_eq!(b.depth(Side::Buy, 2).len(), 2);
    let mut buf = vec![(Price(1), Qty(1)); 5];
    b.depth_into(Side::Sell, 10, &mut buf);
    assert_eq!(buf, vec![(Price(101), Qty(2)), (Price(103), Qty(1))]);
    assert_eq!(ids(&b, Side::Buy), vec![1, 2, 4, 3]);
}

#[test]
fn digest_is_equal_for_equal_states_and_changes_with_any_change() {
    let mut a = book();
    let mut b = book();
    for o in [
        buy(1, ALICE, 100, 5),
        sell(2, BOB, 101, 5),
        buy(3, BOB, 100, 2),
    ] {
        rest(&mut a, o);
        rest(&mut b, o);
    }
    assert_eq!(a.digest(), b.digest());
    let base = a.digest();
    let mut seen = vec![base];
    let mut fills = Vec::new();
    a.amend(1, Qty(4)).unwrap();
    seen.push(a.digest());
    a.move_order(3, Price(99), &mut fills).unwrap();
    seen.push(a.digest());
    a.amend(1, Qty(5)).unwrap();
    seen.push(a.digest());
    a.cancel(2).unwrap();
    seen.push(a.digest());
    for (i, x) in seen.iter().enumerate() {
        for y in &seen[i + 1..] {
            assert_ne!(x, y);
        }
    }
    assert_ne!(book().digest(), base);
}

#[test]
fn digest_ignores_internal_priority_numbers_but_not_queue_order() {
    let mut a = book();
    rest(&mut a, buy(1, ALICE, 100, 5));
    rest(&mut a, buy(2, BOB, 100, 5));
    let mut r = book();
    r.insert_resting(view(1, Side::Buy, 100, 5, 1000)).unwrap();
    r.insert_resting(view(2, Side::Buy, 100, 5, 2000)).unwrap();
    assert_eq!(a.digest(), r.digest());
    let mut s = book();
    s.insert_resting(view(2, Side::Buy, 100, 5, 1)).unwrap();
    s.insert_resting(view(1, Side::Buy, 100, 5, 2)).unwrap();
    assert_ne!(a.digest(), s.digest());
}

#[test]
fn a_crash_sweeping_far_beyond_a_small_window_stays_correct() {
    let mut b = Book::with_config(
        spec(),
        BookConfig {
            window_ticks: 64,
            ..BookConfig::default()
        },
    );
    // Bids every 37 ticks over ~37,000 ticks: most of them far from the window.
    for i in 0..1000u64 {
        rest(&mut b, buy(i, ALICE, 50_000 - 37 * i, 1 + i % 3));
    }
    let size = |i: u64| 1 + i % 3;
    let total: u64 = (0..1000u64).map(size).sum();
    // Sweep all but the last two levels with one market sell.
    let last_two = size(998) + size(999);
    let (out, fills) = place(
        &mut b,
        NewOrder::market(5000, BOB, Side::Sell, Qty(total - last_two)),
    );
    assert_eq!(out, PlaceOutcome::Filled);
    assert_eq!(fills.len(), 998);
    assert!(fills.windows(2).all(|w| w[0].price > w[1].price));
    assert_eq!(
        b.best_bid(),
        Some((Price(50_000 - 37 * 998), Qty(size(998))))
    );
    // Then the price comes back up: new best bids far above the window.
    rest(&mut b, buy(6000, ALICE, 60_000, 1));
    rest(&mut b, buy(6001, ALICE, 59_990, 1));
    assert_eq!(ids(&b, Side::Buy), vec![6000, 6001, 998, 999]);
    let (out, fills) = place(&mut b, sell(6002, BOB, 1, 5));
    assert_eq!(out, PlaceOutcome::Filled);
    assert_eq!(
        trades(&fills),
        vec![
            (6000, 60_000, 1),
            (6001, 59_990, 1),
            (998, 50_000 - 37 * 998, 3)
        ]
    );
    assert_eq!(ids(&b, Side::Buy), vec![999]);
}

#[test]
fn place_decimal_converts_through_the_grid() {
    let mut b = book();
    let mut fills = Vec::new();
    let out = b
        .place_decimal(
            1,
            ALICE,
            Side::Buy,
            OrderType::Limit,
            Some(d("100.25")),
            d("1.5"),
            TimeInForce::Gtc,
            &mut fills,
        )
        .unwrap();
    assert!(out.is_resting());
    assert_eq!(b.best_bid(), Some((Price(10025), Qty(1500))));
    let out = b
        .place_decimal(
            2,
            BOB,
            Side::Sell,
            OrderType::Market,
            None,
            d("0.5"),
            TimeInForce::Ioc,
            &mut fills,
        )
        .unwrap();
    assert_eq!(out, PlaceOutcome::Filled);
    assert_eq!(fills[0].qty, Qty(500));
}

/// Asserts that `f` fails with `want` and leaves the book as it was.
fn refused(b: &mut Book, want: BookError, f: impl FnOnce(&mut Book) -> Result<(), BookError>) {
    let before = b.digest();
    let len = b.len();
    assert_eq!(f(b), Err(want));
    assert_eq!(b.digest(), before);
    assert_eq!(b.len(), len);
    b.check_invariants().unwrap();
}

fn try_place(b: &mut Book, o: NewOrder) -> Result<(), BookError> {
    let mut fills = Vec::new();
    let r = b.place(o, &mut fills).map(|_| ());
    assert!(fills.is_empty());
    r
}

#[test]
fn invalid_orders_are_named_errors_and_change_nothing() {
    let mut b = book();
    rest(&mut b, buy(1, ALICE, 100, 5));
    rest(&mut b, sell(2, BOB, 101, 5));
    refused(&mut b, BookError::DuplicateId(1), |b| {
        try_place(b, sell(1, BOB, 100, 1))
    });
    refused(&mut b, BookError::MissingPrice, |b| {
        let mut o = buy(3, ALICE, 100, 1);
        o.price = None;
        try_place(b, o)
    });
    refused(&mut b, BookError::MarketWithPrice, |b| {
        let mut o = NewOrder::market(3, ALICE, Side::Buy, Qty(1));
        o.price = Some(Price(100));
        try_place(b, o)
    });
    refused(&mut b, BookError::MarketPostOnly, |b| {
        try_place(
            b,
            NewOrder::market(3, ALICE, Side::Buy, Qty(1)).with_tif(TimeInForce::PostOnly),
        )
    });
    refused(&mut b, BookError::ZeroQuantity, |b| {
        try_place(b, sell(3, BOB, 100, 0))
    });
    refused(
        &mut b,
        BookError::QuantityTooLarge(Qty(MAX_UNITS + 1)),
        |b| try_place(b, sell(3, BOB, 100, MAX_UNITS + 1)),
    );
    refused(&mut b, BookError::PriceOutOfRange(Price(0)), |b| {
        try_place(b, sell(3, BOB, 0, 1))
    });
    refused(
        &mut b,
        BookError::PriceOutOfRange(Price(MAX_UNITS + 1)),
        |b| try_place(b, buy(3, BOB, MAX_UNITS + 1, 1)),
    );
}

#[test]
fn requests_on_unknown_orders_are_named_errors_and_change_nothing() {
    let mut b = book();
    rest(&mut b, buy(1, ALICE, 100, 5));
    refused(&mut b, BookError::UnknownOrder(9), |b| {
        b.cancel(9).map(|_| ())
    });
    refused(&mut b, BookError::UnknownOrder(9), |b| {
        b.amend(9, Qty(1)).map(|_| ())
    });
    refused(&mut b, BookError::UnknownOrder(9), |b| {
        b.amend(9, Qty(0)).map(|_| ())
    });
    refused(&mut b, BookError::UnknownOrder(9), |b| {
        b.move_order(9, Price(99), &mut Vec::new()).map(|_| ())
    });
    refused(&mut b, BookError::UnknownOrder(9), |b| {
        b.set_remaining(9, Qty(1))
    });
    refused(&mut b, BookError::PriceOutOfRange(Price(0)), |b| {
        b.move_order(1, Price(0), &mut Vec::new()).map(|_| ())
    });
    refused(
        &mut b,
        BookError::QuantityTooLarge(Qty(MAX_UNITS + 1)),
        |b| b.amend(1, Qty(MAX_UNITS + 1)).map(|_| ()),
    );
    refused(&mut b, BookError::DuplicateId(1), |b| {
        b.insert_resting(view(1, Side::Sell, 100, 1, 0))
    });
    refused(&mut b, BookError::ZeroQuantity, |b| {
        b.insert_resting(view(2, Side::Sell, 100, 0, 0))
    });
}

#[test]
fn decimal_input_off_the_grid_is_a_named_error_and_changes_nothing() {
    let mut b = book();
    rest(&mut b, buy(1, ALICE, 100, 5));
    let mut call = |price: Option<&str>, qty: &str, kind: OrderType| {
        let before = b.digest();
        let r = b.place_decimal(
            7,
            BOB,
            Side::Sell,
            kind,
            price.map(d),
            d(qty),
            TimeInForce::Gtc,
            &mut Vec::new(),
        );
        assert_eq!(b.digest(), before);
        r
    };
    assert!(matches!(
        call(Some("1.005"), "1", OrderType::Limit),
        Err(BookError::Grid(GridError::OffTick { .. }))
    ));
    assert!(matches!(
        call(Some("1.00"), "0.0001", OrderType::Limit),
        Err(BookError::Grid(GridError::OffLot { .. }))
    ));
    assert!(matches!(
        call(Some("-1"), "1", OrderType::Limit),
        Err(BookError::Grid(GridError::NotPositive {
            what: "price",
            ..
        }))
    ));
    assert!(matches!(
        call(Some("1"), "0", OrderType::Limit),
        Err(BookError::Grid(GridError::NotPositive {
            what: "quantity",
            ..
        }))
    ));
    assert!(matches!(
        call(Some("1000000000000000000"), "1", OrderType::Limit),
        Err(BookError::Grid(GridError::OutOfRange { .. }))
    ));
    assert!(matches!(
        call(None, "1", OrderType::Limit),
        Err(BookError::MissingPrice)
    ));
    assert!(matches!(
        call(Some("1"), "1", OrderType::Market),
        Err(BookError::MarketWithPrice)
    ));
    let msg = call(Some("1.005"), "1", OrderType::Limit)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("1.005") && msg.contains("0.01"), "{msg}");
}

#[test]
fn a_level_that_would_overflow_is_refused_and_changes_nothing() {
    let mut b = book();
    let big = MAX_UNITS;
    // 2047 orders of 2^53 lots fit in a u64 total; the 2048th does not.
    for id in 0..2047u64 {
        b.insert_resting(view(id, Side::Buy, 100, big, id)).unwrap();
    }
    refused(&mut b, BookError::LevelOverflow(Price(100)), |b| {
        b.insert_resting(view(5000, Side::Buy, 100, big, 0))
    });
    refused(&mut b, BookError::LevelOverflow(Price(100)), |b| {
        try_place(b, buy(5000, ALICE, 100, big))
    });
    rest(&mut b, buy(5001, ALICE, 99, big));
    refused(&mut b, BookError::LevelOverflow(Price(100)), |b| {
        b.move_order(5001, Price(100), &mut Vec::new()).map(|_| ())
    });
    // Make room by shrinking one order, fill it again, then grow it back.
    b.amend(0, Qty(1)).unwrap();
    b.insert_resting(view(5002, Side::Buy, 100, big, 9999))
        .unwrap();
    refused(&mut b, BookError::LevelOverflow(Price(100)), |b| {
        b.amend(0, Qty(big)).map(|_| ())
    });
    refused(&mut b, BookError::LevelOverflow(Price(100)), |b| {
        b.set_remaining(0, Qty(big))
    });
}

#[test]
fn orders_reuse_arena_slots_after_they_leave() {
    let mut b = book();
    for round in 0..10u64 {
        for i in 0..100u64 {
            rest(&mut b, buy(round * 1000 + i, ALICE, 100 + i % 7, 1));
        }
        let (_, fills) = place(
            &mut b,
            NewOrder::market(round * 1000 + 999, BOB, Side::Sell, Qty(100)),
        );
        assert_eq!(fills.len(), 100);
        assert!(b.is_empty());
    }
    assert!(b.nodes.len() <= 100);
    assert!(b.levels.len() <= 7);
}

#[test]
fn debug_output_of_a_book_stays_short() {
    let mut b = book();
    rest(&mut b, buy(1, ALICE, 100, 5));
    let text = format!("{b:?}");
    assert!(text.len() < 4000, "{} bytes", text.len());
}
