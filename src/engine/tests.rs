//! Engine tests on the simulated network: the races and faults of
//! maker-authoritative trading, reproduced on purpose.

use std::str::FromStr;

use rust_decimal::Decimal;

use super::sim::{NetModel, Sim};
use super::*;
use crate::wire::{Refusal, TakeKind, TakeRequest, TakeResponse};

fn spec() -> MarketSpec {
    MarketSpec::new("SIM", Decimal::from_str("0.01").unwrap(), Decimal::ONE).unwrap()
}

fn sim(n: usize, seed: u64) -> Sim {
    let mut s = Sim::new(
        n,
        seed,
        vec![spec()],
        EngineConfig::default(),
        NetModel::calm(),
    );
    s.run_for(500);
    s
}

fn reply(s: &Sim, cmd: u64) -> OrderInfo {
    match s.replies.get(&cmd) {
        Some(Ok(o)) => o.clone(),
        other => panic!("command {cmd}: {other:?}"),
    }
}

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn digests_equal(s: &Sim) -> bool {
    let ds: Vec<_> = s
        .nodes
        .iter()
        .filter_map(|n| n.engine.as_ref())
        .map(|e| e.digest("SIM").unwrap())
        .collect();
    ds.windows(2).all(|w| w[0] == w[1])
}

#[test]
fn an_order_on_one_node_trades_with_an_order_on_another() {
    let mut s = sim(2, 1);
    let sell = s.command(0, s.order(Side::Sell, 10_000, 5, Tif::Gtc));
    s.run_for(200);
    assert_eq!(reply(&s, sell).status, OrderStatus::Open);
    let book = s.nodes[1].engine.as_ref().unwrap().book("SIM", 5).unwrap();
    assert_eq!(book.asks, vec![(d("100"), d("5"))]);

    let buy = s.command(1, s.order(Side::Buy, 10_100, 3, Tif::Gtc));
    s.run_for(200);
    let b = reply(&s, buy);
    assert_eq!(b.status, OrderStatus::Filled);
    assert_eq!(b.fills.len(), 1);
    assert_eq!(
        b.fills[0].price,
        d("100"),
        "a trade happens at the maker's price"
    );
    s.run_for(2_000);
    for n in &s.nodes {
        let e = n.engine.as_ref().unwrap();
        assert_eq!(e.book("SIM", 5).unwrap().asks, vec![(d("100"), d("2"))]);
        let trades = e.trades(Some("SIM"), 10).unwrap();
        assert_eq!(trades.len(), 1);
        // A window of the recent trades holds the trade only if its time
        // falls strictly inside.
        let ts = trades[0].ts_ms;
        let count = |before, after| e.trades_between(None, before, after, 10).unwrap().len();
        assert_eq!(count(Some(ts + 1), Some(ts - 1)), 1);
        assert_eq!(count(Some(ts), None), 0);
        assert_eq!(count(None, Some(ts)), 0);
        assert_eq!(
            e.trades_between(Some("SIM"), None, None, 0).unwrap().len(),
            0
        );
    }
    assert!(digests_equal(&s));
    s.check_no_overfill().unwrap();
    assert_eq!(s.rejected, 0);
}

#[test]
fn no_double_fill_when_two_takers_race_for_one_lot() {
    let mut s = sim(3, 2);
    let sell = s.command(0, s.order(Side::Sell, 10_000, 1, Tif::Gtc));
    s.run_for(200);
    assert_eq!(reply(&s, sell).status, OrderStatus::Open);
    // Both takers send their take before either hears of the other's fill.
    let a = s.command(1, s.order(Side::Buy, 10_000, 1, Tif::Ioc));
    let b = s.command(2, s.order(Side::Buy, 10_000, 1, Tif::Ioc));
    s.run_for(3_000);
    let (a, b) = (reply(&s, a), reply(&s, b));
    let filled: Decimal = a.filled + b.filled;
    assert_eq!(filled, Decimal::ONE, "exactly one unit fills: {a:?} {b:?}");
    for n in &s.nodes {
        let e = n.engine.as_ref().unwrap();
        assert_eq!(e.trades(Some("SIM"), 10).unwrap().len(), 1);
        assert!(e.book("SIM", 5).unwrap().asks.is_empty());
    }
    s.check_no_overfill().unwrap();
    s.check_converged().unwrap();
}

#[test]
fn crossing_makers_published_at_once_trade_exactly_once() {
    let mut s = sim(2, 3);
    // Placed within the same millisecond, each before the other is seen.
    let a = s.command(0, s.order(Side::Sell, 10_000, 4, Tif::Gtc));
    let b = s.command(1, s.order(Side::Buy, 10_100, 4, Tif::Gtc));
    s.run_for(3_000);
    assert_eq!(reply(&s, a).status, OrderStatus::Open);
    assert_eq!(reply(&s, b).status, OrderStatus::Open);
    for n in &s.nodes {
        let e = n.engine.as_ref().unwrap();
        let trades = e.trades(Some("SIM"), 10).unwrap();
        assert_eq!(trades.len(), 1, "exactly one trade");
        assert_eq!(trades[0].quantity, d("4"));
        let book = e.book("SIM", 5).unwrap();
        assert!(
            book.bids.is_empty() && book.asks.is_empty(),
            "book ends uncrossed: {book:?}"
        );
    }
    s.check_no_overfill().unwrap();
    s.check_converged().unwrap();
}

#[test]
fn a_taker_walks_down_the_book_across_makers() {
    let mut s = sim(4, 4);
    s.command(0, s.order(Side::Sell, 10_000, 2, Tif::Gtc));
    s.command(1, s.order(Side::Sell, 10_050, 2, Tif::Gtc));
    s.command(2, s.order(Side::Sell, 10_100, 2, Tif::Gtc));
    s.run_for(500);
    let buy = s.command(3, s.order(Side::Buy, 10_050, 5, Tif::Gtc));
    s.run_for(2_000);
    let b = reply(&s, buy);
    assert_eq!(b.filled, d("4"), "takes both levels within the limit");
    assert_eq!(b.status, OrderStatus::Open, "the rest rests");
    let book = s.nodes[0].engine.as_ref().unwrap().book("SIM", 5).unwrap();
    assert_eq!(book.bids, vec![(d("100.5"), d("1"))]);
    assert_eq!(book.asks, vec![(d("101"), d("2"))]);
    s.check_converged().unwrap();
}

#[test]
fn a_maker_order_refused_as_done_is_not_tried_again_by_the_next_order_of_the_node() {
    let mut s = sim(3, 21);
    let sell = s.command(0, s.order(Side::Sell, 10_000, 1, Tif::Gtc));
    s.run_for(500);
    assert_eq!(reply(&s, sell).status, OrderStatus::Open);
    // Node 2 hears nothing more by gossip (its takes still reach the
    // maker), so its replica keeps the sell after node 1 fills it.
    s.unlink(0, 2);
    s.unlink(1, 2);
    let first = s.command(1, s.order(Side::Buy, 10_000, 1, Tif::Ioc));
    s.run_for(500);
    assert_eq!(reply(&s, first).filled, Decimal::ONE);
    let counters = |s: &Sim| {
        let c = s.nodes[2].engine.as_ref().unwrap().counters();
        (c.takes_sent, c.takes_refused)
    };
    let a = s.command(2, s.order(Side::Buy, 10_000, 1, Tif::Ioc));
    s.run_for(200);
    assert_eq!(reply(&s, a).filled, Decimal::ZERO);
    assert_eq!(counters(&s), (1, 1), "the first order tried the sell");
    // The node's next orders, placed within the retry wait, skip it.
    for _ in 0..3 {
        let b = s.command(2, s.order(Side::Buy, 10_000, 1, Tif::Ioc));
        s.run_for(100);
        assert_eq!(reply(&s, b).status, OrderStatus::Expired);
    }
    assert_eq!(counters(&s), (1, 1), "no take went to the done order again");
    // Once the retry wait is over, a stale replica may try it again (the
    // maker's word is not a record others can check, so it only delays).
    s.run_for(2_500);
    let c = s.command(2, s.order(Side::Buy, 10_000, 1, Tif::Ioc));
    s.run_for(200);
    assert_eq!(reply(&s, c).filled, Decimal::ZERO);
    s.check_no_overfill().unwrap();
}

#[test]
fn a_sync_request_that_is_never_answered_does_not_hold_the_repair_for_its_timeout() {
    let mut s = Sim::new(
        3,
        22,
        vec![spec()],
        EngineConfig::default(),
        NetModel {
            request_timeout: 30_000,
            ..NetModel::calm()
        },
    );
    s.run_for(500);
    let sell = s.command(0, s.order(Side::Sell, 10_000, 1, Tif::Gtc));
    s.run_for(300);
    assert_eq!(reply(&s, sell).status, OrderStatus::Open);
    // Node 2 is cut off while node 0 cancels its order and places another.
    s.partition(0, 2);
    s.partition(1, 2);
    let id = reply(&s, sell).id;
    s.command(0, Command::Cancel { id });
    s.command(0, s.order(Side::Sell, 10_100, 2, Tif::Gtc));
    s.run_for(300);
    // Back, it pulls the book; the first sync requests it sends are lost
    // (a peer that never answers), the later ones are not.
    s.sync_drop = 1.0;
    s.heal(0, 2);
    s.heal(1, 2);
    s.run_for(200);
    s.sync_drop = 0.0;
    let healed = s.now;
    while s.check_converged().is_err() {
        assert!(
            s.now - healed < 10_000,
            "not converged {} ms after the partition healed, though the lost syncs time out only after 30 s: {:?}",
            s.now - healed,
            s.check_converged()
        );
        s.run_for(100);
    }
    s.check_no_overfill().unwrap();
}

#[test]
fn time_in_force_rules_hold_across_nodes() {
    let mut s = sim(2, 5);
    s.command(0, s.order(Side::Sell, 10_000, 2, Tif::Gtc));
    s.run_for(500);
    let post = s.command(1, s.order(Side::Buy, 10_000, 1, Tif::PostOnly));
    let fok = s.command(1, s.order(Side::Buy, 10_000, 3, Tif::Fok));
    s.run_for(500);
    assert_eq!(reply(&s, post).status, OrderStatus::Rejected);
    assert_eq!(reply(&s, fok).status, OrderStatus::Rejected);
    let ioc = s.command(1, s.order(Side::Buy, 10_000, 3, Tif::Ioc));
    s.run_for(500);
    let i = reply(&s, ioc);
    assert_eq!((i.status, i.filled), (OrderStatus::Expired, d("2")));
    s.run_for(2_000);
    s.check_converged().unwrap();
}

#[test]
fn own_orders_never_trade_with_each_other() {
    let mut s = sim(2, 6);
    s.command(0, s.order(Side::Sell, 10_000, 2, Tif::Gtc));
    s.run_for(200);
    let buy = s.command(0, s.order(Side::Buy, 10_100, 2, Tif::Gtc));
    s.run_for(500);
    let b = reply(&s, buy);
    assert_eq!(b.status, OrderStatus::Cancelled);
    assert!(b.reason.unwrap().contains("self-trade"));
    assert!(s.nodes[0]
        .engine
        .as_ref()
        .unwrap()
        .trades(None, 10)
        .unwrap()
        .is_empty());
}

#[test]
fn cancel_is_for_the_owner_only_and_only_once() {
    let mut s = sim(2, 7);
    let sell = s.command(0, s.order(Side::Sell, 10_000, 2, Tif::Gtc));
    s.run_for(500);
    let id = reply(&s, sell).id;
    let other = s.command(1, Command::Cancel { id: id.clone() });
    assert!(matches!(s.replies[&other], Err(EngineError::NotOwner(_))));
    let c = s.command(0, Command::Cancel { id: id.clone() });
    s.run_for(500);
    assert_eq!(reply(&s, c).status, OrderStatus::Cancelled);
    let again = s.command(0, Command::Cancel { id });
    assert!(matches!(
        s.replies[&again],
        Err(EngineError::AlreadyDone(_, "cancelled"))
    ));
    assert!(s.nodes[1]
        .engine
        .as_ref()
        .unwrap()
        .book("SIM", 5)
        .unwrap()
        .asks
        .is_empty());
}

#[test]
fn a_repeated_client_id_returns_the_first_order() {
    let mut s = sim(1, 8);
    let mut cmd = s.order(Side::Sell, 10_000, 2, Tif::Gtc);
    if let Command::Place(p) = &mut cmd {
        p.client_id = Some("abc".into());
    }
    let a = s.command(0, cmd.clone());
    s.run_for(100);
    let b = s.command(0, cmd);
    s.run_for(100);
    assert_eq!(reply(&s, a).id, reply(&s, b).id);
    assert_eq!(
        s.nodes[0]
            .engine
            .as_ref()
            .unwrap()
            .orders(None, None, 10)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn bad_orders_are_refused_with_the_reason_and_change_nothing() {
    let mut s = sim(1, 9);
    let mut bad = |f: &dyn Fn(&mut PlaceOrder)| {
        let mut cmd = s.order(Side::Sell, 10_000, 2, Tif::Gtc);
        if let Command::Place(p) = &mut cmd {
            f(p);
        }
        let id = s.command(0, cmd);
        match &s.replies[&id] {
            Err(e) => e.to_string(),
            Ok(o) => panic!("accepted {o:?}"),
        }
    };
    assert!(bad(&|p| p.price = Some(d("100.001"))).contains("tick"));
    assert!(bad(&|p| p.quantity = d("0.5")).contains("lot"));
    assert!(bad(&|p| p.quantity = d("-1")).contains("greater than zero"));
    assert!(bad(&|p| p.market = "NOPE".into()).contains("unknown market"));
    assert!(bad(&|p| p.price = None).contains("needs a price"));
    assert!(bad(&|p| p.kind = OrderKind::Market).contains("no price"));
    let e = s.nodes[0].engine.as_ref().unwrap();
    assert!(e.orders(None, None, 10).unwrap().is_empty());
}

#[test]
fn a_maker_restarted_after_a_crash_keeps_its_orders_and_fills() {
    let mut s = sim(2, 10);
    let sell = s.command(0, s.order(Side::Sell, 10_000, 5, Tif::Gtc));
    s.run_for(300);
    let buy = s.command(1, s.order(Side::Buy, 10_000, 2, Tif::Ioc));
    s.run_for(300);
    assert_eq!(reply(&s, buy).filled, d("2"));
    let id = reply(&s, sell).id;
    s.crash(0);
    s.run_for(1_000);
    s.start(0);
    s.run_for(3_000);
    let o = s.nodes[0].engine.as_ref().unwrap().order(&id).unwrap();
    assert_eq!((o.status, o.filled), (OrderStatus::Open, d("2")));
    // Ids are never reused after a restart.
    let next = s.command(0, s.order(Side::Sell, 10_200, 1, Tif::Gtc));
    s.run_for(300);
    assert_ne!(reply(&s, next).id, id);
    s.check_no_overfill().unwrap();
    s.check_converged().unwrap();
}

#[test]
fn a_take_whose_answer_is_lost_stays_reserved_until_the_maker_tells() {
    let mut s = sim(2, 11);
    s.command(0, s.order(Side::Sell, 10_000, 1, Tif::Gtc));
    s.run_for(300);
    // Every answer is lost for a while: the taker cannot know the outcome.
    s.net.request_drop = 1.0;
    let buy = s.command(1, s.order(Side::Buy, 10_000, 1, Tif::Gtc));
    s.run_for(4_000);
    let b = reply(&s, buy);
    assert_eq!(b.pending, d("1"), "the take is in doubt: {b:?}");
    s.check_no_overfill().unwrap();
    s.net.request_drop = 0.0;
    s.run_for(40_000);
    s.check_no_overfill().unwrap();
    s.check_converged().unwrap();
}

#[test]
fn a_take_in_doubt_across_a_restart_is_settled_by_the_makers_heartbeat_through_a_relay() {
    let mut s = sim(3, 23);
    s.command(0, s.order(Side::Sell, 10_000, 1, Tif::Gtc));
    s.run_for(300);
    // Node 2's take to node 0 is lost: in doubt.
    s.net.request_drop = 1.0;
    let buy = s.command(2, s.order(Side::Buy, 10_000, 1, Tif::Ioc));
    s.run_for(3_500);
    let id = reply(&s, buy).id;
    let taker = |s: &Sim| s.nodes[2].engine.as_ref().unwrap().order(&id).unwrap();
    assert_eq!(taker(&s).status, OrderStatus::Taking);
    assert_eq!(taker(&s).pending, d("1"), "the take is in doubt");
    // The taker restarts and can no longer reach the maker at all; the
    // maker's heartbeats reach it through node 1.
    s.crash(2);
    s.partition(0, 2);
    s.net.request_drop = 0.0;
    s.run_for(100);
    s.start(2);
    s.run_for(100);
    assert_eq!(taker(&s).status, OrderStatus::Taking, "restored in doubt");
    let restarted = s.now;
    while taker(&s).status == OrderStatus::Taking {
        assert!(
            s.now - restarted < 15_000,
            "still taking {} ms after the restart: {:?}",
            s.now - restarted,
            taker(&s)
        );
        s.run_for(100);
    }
    let o = taker(&s);
    assert_eq!((o.filled, o.pending), (Decimal::ZERO, Decimal::ZERO));
    let e = s.nodes[2].engine.as_ref().unwrap();
    assert_eq!(e.counters().doubts_settled_by_heartbeat, 1);
    s.check_no_overfill().unwrap();
}

#[test]
fn a_node_reached_only_through_another_gets_the_whole_book() {
    let mut s = sim(3, 12);
    s.unlink(0, 2);
    s.run_for(100);
    for i in 0..50 {
        s.command(0, s.order(Side::Sell, 10_000 + i, 1, Tif::Gtc));
    }
    s.net.gossip_drop = 0.5;
    s.run_for(2_000);
    s.net.gossip_drop = 0.0;
    s.run_for(10_000);
    let book = s.nodes[2]
        .engine
        .as_ref()
        .unwrap()
        .book("SIM", 100)
        .unwrap();
    assert_eq!(book.asks.len(), 50);
    s.check_converged().unwrap();
}

#[test]
fn fill_or_kill_fills_whole_across_makers_or_not_at_all() {
    // Enough liquidity over two makers: both hold, both commit.
    let mut s = sim(3, 13);
    s.command(0, s.order(Side::Sell, 10_000, 2, Tif::Gtc));
    s.command(1, s.order(Side::Sell, 10_100, 3, Tif::Gtc));
    s.run_for(500);
    let fok = s.command(2, s.order(Side::Buy, 10_100, 5, Tif::Fok));
    s.run_for(1_000);
    let f = reply(&s, fok);
    assert_eq!((f.status, f.filled), (OrderStatus::Filled, d("5")));
    s.run_for(2_000);
    s.check_converged().unwrap();

    // A racing taker empties one maker between the check and the holds:
    // the fill-or-kill order then fills nothing at all, never a part.
    let mut outcomes = std::collections::BTreeSet::new();
    for seed in 20..40 {
        let mut s = sim(4, seed);
        s.command(0, s.order(Side::Sell, 10_000, 3, Tif::Gtc));
        s.command(1, s.order(Side::Sell, 10_000, 2, Tif::Gtc));
        s.run_for(500);
        let fok = s.command(2, s.order(Side::Buy, 10_000, 5, Tif::Fok));
        let ioc = s.command(3, s.order(Side::Buy, 10_000, 2, Tif::Ioc));
        s.run_for(2_000);
        let (f, i) = (reply(&s, fok), reply(&s, ioc));
        assert!(
            (f.status == OrderStatus::Filled && f.filled == d("5") && i.filled.is_zero())
                || (f.status == OrderStatus::Rejected && f.filled.is_zero() && f.fills.is_empty()),
            "seed {seed}: fill-or-kill partly filled: {f:?} / {i:?}"
        );
        outcomes.insert(f.status);
        s.run_for(5_000);
        s.check_no_overfill().unwrap();
        s.check_converged().unwrap();
        // Nothing stays set aside once it is over.
        for n in &s.nodes {
            let e = n.engine.as_ref().unwrap();
            assert!(e.holds_nothing(), "seed {seed}: a hold was never let go");
        }
    }
    assert_eq!(
        outcomes.len(),
        2,
        "both outcomes of the race happen: {outcomes:?}"
    );
}

#[test]
fn a_hold_that_runs_out_frees_the_makers_quantity() {
    let mut s = sim(2, 14);
    s.command(0, s.order(Side::Sell, 10_000, 5, Tif::Gtc));
    s.run_for(300);
    // The taker's commit never arrives: every answer to node 1 is lost.
    s.net.request_drop = 1.0;
    let fok = s.command(1, s.order(Side::Buy, 10_000, 5, Tif::Fok));
    s.run_for(100);
    s.net.request_drop = 0.0;
    s.run_for(10_000);
    let f = reply(&s, fok);
    assert!(f.filled.is_zero() || f.filled == d("5"), "{f:?}");
    let maker = s.nodes[0].engine.as_ref().unwrap();
    assert!(maker.holds_nothing());
    s.check_no_overfill().unwrap();
    s.check_converged().unwrap();
}

/// Hand `input` to the engine; the verdicts it gives on gossip.
fn validate(e: &mut Engine, input: Input, now: Millis) -> Vec<Verdict> {
    e.handle(input, now);
    let mut verdicts = Vec::new();
    while let Some(a) = e.poll_action() {
        if let Action::Net(NetAction::Validate { verdict, .. }) = a {
            verdicts.push(verdict);
        }
    }
    verdicts
}

#[test]
fn late_gossip_is_ignored_but_replays_and_future_stamps_are_rejected() {
    let me = libp2p::identity::Keypair::generate_ed25519();
    let peer_key = libp2p::identity::Keypair::generate_ed25519();
    let peer = peer_key.public().to_peer_id();
    let now = sim::EPOCH_MS;
    let mut e = Engine::new(
        me,
        EngineConfig::default(),
        vec![spec()],
        Snapshot::default(),
        now,
    );
    let topic = e.topic(0);
    let mut verdict = |sent_ms: u64, seq: u64| {
        let (g, _) =
            crate::wire::Gossip::signed(&peer_key, "SIM", sent_ms, vec![Item::Cancel { seq }]);
        let input = NetInput::Gossip {
            source: peer,
            propagation_source: peer,
            message_id: libp2p::gossipsub::MessageId(vec![seq as u8]),
            topic: topic.clone(),
            data: crate::wire::encode(&g).unwrap(),
        };
        *validate(&mut e, input.into(), now).last().unwrap()
    };
    assert_eq!(verdict(now - 1_000, 1), Verdict::Accept);
    // Delivered late by TCP after a cut: not the relay's fault.
    assert_eq!(verdict(now - 3 * 60_000, 2), Verdict::Ignore);
    // Hours old: only a replay explains it.
    assert_eq!(verdict(now - 2 * 3_600_000, 3), Verdict::Reject);
    // From the future: a forged or broken clock.
    assert_eq!(verdict(now + 5 * 60_000, 4), Verdict::Reject);
}

/// The maker's ledger of served takes stays bounded however long the node
/// runs, and a take it forgot is never answered "not filled" (which would
/// make its taker drop a fill it got) nor filled twice.
#[test]
fn the_makers_ledger_forgets_old_fills_but_never_denies_them() {
    let me = libp2p::identity::Keypair::generate_ed25519();
    let taker = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let mut now = sim::EPOCH_MS;
    let cfg = EngineConfig {
        recent_orders: 2,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(me, cfg, vec![spec()], Snapshot::default(), now);
    // Run an input to the end; the answers to requests, decoded.
    let run = |e: &mut Engine, input: Input, now: Millis| -> Vec<TakeResponse> {
        e.handle(input, now);
        let mut answers = Vec::new();
        while let Some(a) = e.poll_action() {
            match a {
                Action::Persist { ticket, .. } => e.handle(Input::Persisted { ticket }, now),
                Action::Net(NetAction::Respond { data, .. }) => {
                    answers.push(crate::wire::decode(&data, 1 << 20).unwrap())
                }
                _ => {}
            }
        }
        answers
    };
    let take = |maker_seq: u64, n: u32, kind: TakeKind| TakeRequest {
        v: crate::wire::WIRE_VERSION,
        market: "SIM".into(),
        maker_seq,
        taker_seq: 7,
        take_n: n,
        kind,
        deadline_ms: None,
    };
    let request = |id: u64, req: &TakeRequest| -> Input {
        NetInput::Request {
            peer: taker,
            proto: Proto::Take,
            id: InboundId(id),
            data: crate::wire::encode(req).unwrap(),
        }
        .into()
    };
    let fill = TakeKind::Fill {
        side: Side::Buy,
        limit: None,
        qty: Qty(1),
    };
    // Six orders of one unit, each filled whole by its own take.
    for n in 1..=6u32 {
        now += 1_000;
        run(
            &mut e,
            Input::Command {
                id: CommandId(n as u64),
                cmd: Command::Place(PlaceOrder {
                    market: "SIM".into(),
                    side: Side::Sell,
                    kind: OrderKind::Limit,
                    price: Some(d("100")),
                    quantity: d("1"),
                    tif: Tif::Gtc,
                    client_id: None,
                    expires_ms: None,
                }),
            },
            now,
        );
        let seq = e.orders(None, None, 1).unwrap()[0]
            .id
            .rsplit('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let answer = run(&mut e, request(n as u64, &take(seq, n, fill.clone())), now);
        assert!(
            matches!(answer[..], [TakeResponse::Filled(_)]),
            "take {n}: {answer:?}"
        );
    }
    // Only the done orders kept in memory keep their fills in the ledger.
    assert_eq!(e.served.filled_len(), 2);
    now += 1_000;
    // The oldest take: forgotten, so neither "not filled" nor a new fill.
    let asked = run(&mut e, request(100, &take(1, 1, TakeKind::Status)), now);
    assert_eq!(asked, vec![TakeResponse::Refused(Refusal::Busy)]);
    let again = run(&mut e, request(101, &take(1, 1, fill.clone())), now);
    assert_eq!(again, vec![TakeResponse::Refused(Refusal::Busy)]);
    // The newest: still answered with its fill.
    let recent = run(&mut e, request(102, &take(6, 6, TakeKind::Status)), now);
    assert!(
        matches!(recent[..], [TakeResponse::Filled(_)]),
        "{recent:?}"
    );
}

/// Gossipsub no longer signs messages (`net/gossip.rs`): the only proof of
/// authorship is the batch signature, so a batch relayed under another
/// author's name must be refused, whoever made it.
#[test]
fn a_batch_relayed_under_another_authors_name_is_rejected_and_kept_nowhere() {
    let me = libp2p::identity::Keypair::generate_ed25519();
    let forger_key = libp2p::identity::Keypair::generate_ed25519();
    let forger = forger_key.public().to_peer_id();
    let victim = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let now = sim::EPOCH_MS;
    let mut e = Engine::new(
        me,
        EngineConfig::default(),
        vec![spec()],
        Snapshot::default(),
        now,
    );
    let topic = e.topic(0);
    let order = crate::wire::OrderState {
        seq: 1,
        side: Side::Sell,
        price: crate::market::Price(9_000),
        qty: Qty(5),
        remaining: Qty(5),
        ver: 0,
        created_ms: now,
        expires_ms: None,
    };
    let mut deliver = |source: PeerId, id: u8| {
        let (g, _) =
            crate::wire::Gossip::signed(&forger_key, "SIM", now, vec![Item::Order(order.clone())]);
        let input = NetInput::Gossip {
            source,
            propagation_source: forger,
            message_id: libp2p::gossipsub::MessageId(vec![id]),
            topic: topic.clone(),
            data: crate::wire::encode(&g).unwrap(),
        };
        let verdicts = validate(&mut e, input.into(), now);
        (verdicts, e.book("SIM", 10).unwrap().orders)
    };
    // Signed by the forger, named as the victim's: refused, nothing kept.
    assert_eq!(deliver(victim, 1), (vec![Verdict::Reject], 0));
    // The same batch under its real author's name is taken.
    assert_eq!(deliver(forger, 2), (vec![Verdict::Accept], 1));
}

#[test]
fn a_fill_naming_our_order_as_taker_that_we_never_took_is_not_recorded() {
    let me = libp2p::identity::Keypair::generate_ed25519();
    let maker_key = libp2p::identity::Keypair::generate_ed25519();
    let maker = maker_key.public().to_peer_id();
    let now = sim::EPOCH_MS;
    let mut e = Engine::new(
        me,
        EngineConfig::default(),
        vec![spec()],
        Snapshot::default(),
        now,
    );
    let feed = |e: &mut Engine, input: Input| {
        e.handle(input, now);
        let mut verdicts = Vec::new();
        while let Some(a) = e.poll_action() {
            match a {
                Action::Persist { ticket, .. } => e.handle(Input::Persisted { ticket }, now),
                Action::Net(NetAction::Validate { verdict, .. }) => verdicts.push(verdict),
                _ => {}
            }
        }
        verdicts
    };
    feed(
        &mut e,
        Input::Command {
            id: CommandId(1),
            cmd: Command::Place(PlaceOrder {
                market: "SIM".into(),
                side: Side::Buy,
                kind: OrderKind::Limit,
                price: Some(d("80")),
                quantity: d("4"),
                tif: Tif::Gtc,
                client_id: None,
                expires_ms: None,
            }),
        },
    );
    let mine = e.orders(None, None, 10).unwrap().remove(0);
    let my_seq: u64 = mine.id.rsplit('/').next().unwrap().parse().unwrap();
    let topic = e.topic(0);
    let gossip = |items: Vec<Item>| -> Input {
        NetInput::Gossip {
            source: maker,
            propagation_source: maker,
            message_id: libp2p::gossipsub::MessageId(vec![items.len() as u8]),
            topic: topic.clone(),
            data: crate::wire::encode(
                &crate::wire::Gossip::signed(&maker_key, "SIM", now, items).0,
            )
            .unwrap(),
        }
        .into()
    };
    let order = crate::wire::OrderState {
        seq: 5,
        side: Side::Sell,
        price: crate::market::Price(9_000),
        qty: Qty(5),
        remaining: Qty(5),
        ver: 0,
        created_ms: now,
        expires_ms: None,
    };
    assert_eq!(
        feed(&mut e, gossip(vec![Item::Order(order)])),
        [Verdict::Accept]
    );
    // The maker claims our order took 2 of its 5, which we never asked for.
    let forged = crate::wire::FillMsg {
        maker_seq: 5,
        fill_seq: 1,
        mseq: 1,
        maker_side: Side::Sell,
        price: crate::market::Price(9_000),
        qty: Qty(2),
        maker_remaining: Qty(3),
        maker_ver: 1,
        taker: e.local_peer_id(),
        taker_seq: my_seq,
        take_n: 0,
        ts_ms: now,
    };
    // Not penalised: a relay cannot tell.
    assert_eq!(
        feed(
            &mut e,
            gossip(vec![Item::Fill(forged), Item::Cancel { seq: 99 }])
        ),
        [Verdict::Accept]
    );
    assert!(
        e.trades(Some("SIM"), 10).unwrap().is_empty(),
        "a trade we never took part in was recorded"
    );
    let after = e.order(&mine.id).unwrap();
    assert_eq!((after.filled, after.status), (d("0"), OrderStatus::Open));
    // What the maker says of its own order stands, as on every replica.
    assert_eq!(e.book("SIM", 5).unwrap().asks, vec![(d("90"), d("3"))]);
}

#[test]
fn an_author_over_its_gossip_rate_is_dropped_and_counted_until_its_allowance_refills() {
    let me = libp2p::identity::Keypair::generate_ed25519();
    let peer_key = libp2p::identity::Keypair::generate_ed25519();
    let peer = peer_key.public().to_peer_id();
    let now = sim::EPOCH_MS;
    let cfg = EngineConfig {
        max_gossip_per_peer_per_sec: 10,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(me, cfg, vec![spec()], Snapshot::default(), now);
    let topic = e.topic(0);
    let mut verdict = |at: u64, seq: u64| {
        let (g, _) = crate::wire::Gossip::signed(&peer_key, "SIM", at, vec![Item::Cancel { seq }]);
        e.handle(
            NetInput::Gossip {
                source: peer,
                propagation_source: peer,
                message_id: libp2p::gossipsub::MessageId(seq.to_be_bytes().to_vec()),
                topic: topic.clone(),
                data: crate::wire::encode(&g).unwrap(),
            }
            .into(),
            at,
        );
        let mut v = None;
        while let Some(a) = e.poll_action() {
            if let Action::Net(NetAction::Validate { verdict, .. }) = a {
                v = Some(verdict);
            }
        }
        (v.unwrap(), e.counters().gossip_rate_limited)
    };
    // A burst of the allowance passes, the rest of the same instant does not:
    // dropped unforwarded (Ignore, no penalty for relays) and counted.
    let verdicts: Vec<Verdict> = (1..=15).map(|seq| verdict(now, seq).0).collect();
    assert_eq!(verdicts[..10], [Verdict::Accept; 10]);
    assert_eq!(verdicts[10..], [Verdict::Ignore; 5]);
    assert_eq!(verdict(now, 16), (Verdict::Ignore, 6));
    // A second later the allowance has refilled.
    assert_eq!(verdict(now + 1_000, 17), (Verdict::Accept, 6));
}

#[test]
fn memory_holds_what_is_live_and_a_window_of_what_is_done() {
    let cfg = EngineConfig {
        recent_orders: 10,
        ..EngineConfig::default()
    };
    let mut s = Sim::new(2, 7, vec![spec()], cfg, NetModel::calm());
    s.run_for(500);
    let keep = s.command(0, s.order(Side::Buy, 9_000, 1, Tif::Gtc));
    for i in 0..200 {
        let c = s.command(0, s.order(Side::Buy, 9_100 + i % 10, 1, Tif::Gtc));
        s.run_for(5);
        let id = reply(&s, c).id;
        s.command(0, Command::Cancel { id });
        s.run_for(5);
    }
    s.run_for(500);
    let e = s.nodes[0].engine.as_ref().unwrap();
    assert!(e.held_orders() <= 11, "{} held", e.held_orders());
    // What is live is whole, and a restart brings back exactly that.
    let open = |s: &Sim| {
        s.nodes[0]
            .engine
            .as_ref()
            .unwrap()
            .orders(None, Some(OrderStatus::Open), 100)
            .unwrap()
    };
    let before = open(&s);
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].id, reply(&s, keep).id);
    s.crash(0);
    s.start(0);
    s.run_for(500);
    assert_eq!(open(&s), before);
    assert!(digests_equal(&s));
}

// ---------------------------------------------------------------- forgeries

mod forged {
    //! A third party answers our sync requests with pages it made up: orders
    //! "of" an honest owner it never placed (plant), a fill that empties a
    //! real order (erase), a real order at a version the owner never signed
    //! (freeze), a trade that never was. None of it may reach the book or the
    //! trades; the page's genuine records still count; the server is counted
    //! and banned.

    use super::*;
    use crate::wire::proof::{PageBatches, Proof, Proven, Stored};
    use crate::wire::{
        BookPage, FillMsg, FillsPage, Gossip, OwnerOrders, OwnerPage, ProvenOrder, SyncResponse,
    };
    use libp2p::identity::Keypair;

    struct World {
        e: Engine,
        now: Millis,
        owner: Keypair,
        hostile: Keypair,
        /// The owner's genuine records, as signed in its one batch.
        genuine: Vec<(Item, Stored)>,
    }

    fn state(seq: u64, price: u64, qty: u64, ver: u64, now: Millis) -> OrderState {
        OrderState {
            seq,
            side: Side::Sell,
            price: crate::market::Price(price),
            qty: Qty(qty),
            remaining: Qty(qty),
            ver,
            created_ms: now,
            expires_ms: None,
        }
    }

    /// Our engine holds two genuine orders of `owner`, learnt by gossip.
    fn world() -> World {
        let now = sim::EPOCH_MS;
        let me = Keypair::generate_ed25519();
        let owner = Keypair::generate_ed25519();
        let hostile = Keypair::generate_ed25519();
        let mut e = Engine::new(
            me,
            EngineConfig::default(),
            vec![spec()],
            Snapshot::default(),
            now,
        );
        for k in [&owner, &hostile] {
            e.handle(NetInput::PeerConnected(k.public().to_peer_id()).into(), now);
        }
        let items = vec![
            Item::Order(state(1, 10_000, 5, 0, now)),
            Item::Order(state(2, 10_100, 3, 0, now)),
        ];
        let (g, stored) = Gossip::signed(&owner, "SIM", now, items.clone());
        e.handle(
            NetInput::Gossip {
                source: owner.public().to_peer_id(),
                propagation_source: owner.public().to_peer_id(),
                message_id: libp2p::gossipsub::MessageId(vec![1]),
                topic: e.topic(0),
                data: crate::wire::encode(&g).unwrap(),
            }
            .into(),
            now,
        );
        drain(&mut e, now);
        let genuine = items.into_iter().zip(stored).collect();
        World {
            e,
            now,
            owner,
            hostile,
            genuine,
        }
    }

    /// Carry out writes at once; the bans asked for.
    fn drain(e: &mut Engine, now: Millis) -> Vec<PeerId> {
        let mut bans = Vec::new();
        while let Some(a) = e.poll_action() {
            match a {
                Action::Persist { ticket, .. } => e.handle(Input::Persisted { ticket }, now),
                Action::Net(NetAction::Ban { peer, .. }) => bans.push(peer),
                _ => {}
            }
        }
        bans
    }

    /// Ask the hostile peer `what` and feed it `answer`; the bans asked for.
    fn ask_hostile(w: &mut World, what: SyncWhat, answer: SyncResponse) -> Vec<PeerId> {
        let hostile = w.hostile.public().to_peer_id();
        w.e.send_sync(0, hostile, what);
        let mut tag = None;
        let mut bans = Vec::new();
        while let Some(a) = w.e.poll_action() {
            match a {
                Action::Net(NetAction::Request { peer, tag: t, .. }) if peer == hostile => {
                    tag = Some(t)
                }
                Action::Net(NetAction::Ban { peer, .. }) => bans.push(peer),
                _ => {}
            }
        }
        let tag = tag.expect("the sync request went to the hostile peer");
        let result = Ok(crate::wire::encode(&answer).unwrap());
        w.e.handle(NetInput::Response { tag, result }.into(), w.now);
        bans.extend(drain(&mut w.e, w.now));
        bans
    }

    /// A record as a page carries it, with the proof `p`.
    fn carried(item: &OrderState, p: &Stored, page: &mut PageBatches) -> ProvenOrder {
        ProvenOrder {
            order: Proven {
                item: item.clone(),
                proof: page.proof(p),
            },
            fill: None,
        }
    }

    fn genuine_order(w: &World, i: usize) -> (OrderState, Stored) {
        match &w.genuine[i] {
            (Item::Order(o), p) => (o.clone(), p.clone()),
            _ => unreachable!(),
        }
    }

    fn asks(w: &World) -> Vec<(Decimal, Decimal)> {
        w.e.book("SIM", 10).unwrap().asks
    }

    fn refused(w: &World) -> u64 {
        let c = w.e.counters();
        c.records_refused_unsigned
            + c.records_refused_bad_proof
            + c.records_refused_bad_signature
            + c.records_refused_no_key
            + c.records_refused_inconsistent
    }

    #[test]
    fn a_forged_book_page_plants_erases_and_freezes_nothing_and_its_server_is_banned() {
        let mut w = world();
        let truth = asks(&w);
        let digest = w.e.digest("SIM").unwrap();
        let owner = w.owner.public().to_peer_id();
        let hostile = w.hostile.public().to_peer_id();
        let mut page = PageBatches::default();
        let (o1, p1) = genuine_order(&w, 0);
        let (o2, p2) = genuine_order(&w, 1);
        // Plant: seq 9 "of the owner", signed by the hostile peer.
        let (_, planted) = Gossip::signed(
            &w.hostile,
            "SIM",
            w.now,
            vec![Item::Order(state(9, 9_000, 50, 0, w.now))],
        );
        // Freeze: the owner's real order 2 at a version it never signed,
        // with the proof of the real one.
        let mut frozen = o2.clone();
        frozen.ver = u64::MAX;
        frozen.remaining = Qty(1);
        // Erase: a fill emptying order 1, signed by the hostile peer.
        let erase = FillMsg {
            maker_seq: 1,
            fill_seq: 1,
            mseq: 1,
            maker_side: Side::Sell,
            price: o1.price,
            qty: Qty(5),
            maker_remaining: Qty(0),
            maker_ver: 1,
            taker: hostile,
            taker_seq: 1,
            take_n: 0,
            ts_ms: w.now,
        };
        let (_, erase_proof) =
            Gossip::signed(&w.hostile, "SIM", w.now, vec![Item::Fill(erase.clone())]);
        let orders = vec![
            carried(&state(9, 9_000, 50, 0, w.now), &planted[0], &mut page),
            carried(&frozen, &p2, &mut page),
            // A proof that leads nowhere.
            ProvenOrder {
                order: Proven {
                    item: state(10, 9_100, 50, 0, w.now),
                    proof: Proof {
                        batch: 0,
                        index: 3,
                        path: vec![7; 16],
                    },
                },
                fill: None,
            },
            // The genuine order 1, which must still count.
            carried(&o1, &p1, &mut page),
        ];
        let fills = vec![(
            owner,
            Proven {
                item: erase,
                proof: page.proof(&erase_proof[0]),
            },
        )];
        let answer = SyncResponse::Book(BookPage {
            batches: page.into_list(),
            owners: vec![OwnerOrders { owner, orders }],
            fills,
            next: None,
        });
        let bans = ask_hostile(&mut w, SyncWhat::Book { after: None }, answer);
        assert_eq!(asks(&w), truth, "nothing forged reached the book");
        assert_eq!(w.e.digest("SIM").unwrap(), digest);
        assert!(w.e.trades(None, 10).unwrap().is_empty(), "no forged trade");
        assert!(w.e.order(&format!("{owner}/9")).is_err(), "nothing planted");
        assert_eq!(refused(&w), 4);
        assert!(w.e.counters().records_refused_bad_signature >= 3);
        assert_eq!(w.e.counters().records_refused_bad_proof, 1);
        assert_eq!(bans, vec![hostile]);
        assert_eq!(w.e.counters().peers_banned, 1);
    }

    #[test]
    fn a_third_partys_owner_and_fills_pages_cannot_speak_for_the_owner() {
        let mut w = world();
        let truth = asks(&w);
        let owner = w.owner.public().to_peer_id();
        let hostile = w.hostile.public().to_peer_id();
        let (o2, p2) = genuine_order(&w, 1);
        let mut page = PageBatches::default();
        let mut frozen = o2.clone();
        frozen.ver = 9;
        frozen.remaining = Qty(1);
        let answer = SyncResponse::Owner(OwnerPage {
            owner,
            after: 0,
            upto: 100,
            pending: vec![],
            orders: vec![carried(&frozen, &p2, &mut page)],
            batches: page.into_list(),
            more: false,
        });
        let bans = ask_hostile(&mut w, SyncWhat::Owner { owner, after: 0 }, answer);
        assert_eq!(bans, vec![hostile]);
        // A third party's owner page is never the owner's word: even had it
        // verified, what it leaves out is not gone.
        assert_eq!(asks(&w), truth);

        // A fills page "of the owner": a trade it never made.
        let fake = FillMsg {
            maker_seq: 2,
            fill_seq: 1,
            mseq: 1,
            maker_side: Side::Sell,
            price: o2.price,
            qty: Qty(3),
            maker_remaining: Qty(0),
            maker_ver: 1,
            taker: hostile,
            taker_seq: 4,
            take_n: 0,
            ts_ms: w.now,
        };
        let (_, fp) = Gossip::signed(&w.hostile, "SIM", w.now, vec![Item::Fill(fake.clone())]);
        let mut page = PageBatches::default();
        let proof = page.proof(&fp[0]);
        let answer = SyncResponse::Fills(FillsPage {
            owner,
            batches: page.into_list(),
            fills: vec![Proven { item: fake, proof }],
            oldest: 1,
            more: false,
        });
        // The engine never picks a banned peer to ask again; the request is
        // made by hand here to show that even its answer changes nothing.
        w.e.send_sync(0, hostile, SyncWhat::Fills { owner, from: 1 });
        let tag = std::iter::from_fn(|| w.e.poll_action())
            .find_map(|a| match a {
                Action::Net(NetAction::Request { tag, .. }) => Some(tag),
                _ => None,
            })
            .unwrap();
        w.e.handle(
            NetInput::Response {
                tag,
                result: Ok(crate::wire::encode(&answer).unwrap()),
            }
            .into(),
            w.now,
        );
        drain(&mut w.e, w.now);
        assert!(w.e.trades(None, 10).unwrap().is_empty(), "no forged trade");
        assert_eq!(asks(&w), truth, "the real order is still there, whole");
        assert_eq!(refused(&w), 2);
        // A banned peer's own sync requests are refused too.
        assert!(w.e.peers.is_banned(&hostile, w.now));
    }

    #[test]
    fn the_owners_own_page_replaces_everything_it_holds_for_that_owner() {
        let mut w = world();
        let owner = w.owner.public().to_peer_id();
        // The owner says: of every order up to 5, only order 1 is open
        // (order 2 was cancelled, and we missed the cancel).
        let (o1, p1) = genuine_order(&w, 0);
        let mut page = PageBatches::default();
        let answer = SyncResponse::Owner(OwnerPage {
            owner,
            after: 0,
            upto: 5,
            pending: vec![],
            orders: vec![carried(&o1, &p1, &mut page)],
            batches: page.into_list(),
            more: false,
        });
        w.e.send_sync(0, owner, SyncWhat::Owner { owner, after: 0 });
        let tag = std::iter::from_fn(|| w.e.poll_action())
            .find_map(|a| match a {
                Action::Net(NetAction::Request { tag, .. }) => Some(tag),
                _ => None,
            })
            .unwrap();
        w.e.handle(
            NetInput::Response {
                tag,
                result: Ok(crate::wire::encode(&answer).unwrap()),
            }
            .into(),
            w.now,
        );
        let bans = drain(&mut w.e, w.now);
        assert!(bans.is_empty());
        assert_eq!(asks(&w), vec![(d("100"), d("5"))]);
        assert_eq!(refused(&w), 0);
    }
}

/// A resting order on node `i` good till `ms` from its clock now.
fn expiring(s: &Sim, i: usize, side: Side, ticks: u64, lots: u64, ms: Millis) -> Command {
    let mut cmd = s.order(side, ticks, lots, Tif::Gtc);
    if let Command::Place(p) = &mut cmd {
        p.expires_ms = Some(s.clock(i) + ms);
    }
    cmd
}

fn asks(s: &Sim, i: usize) -> Vec<(Decimal, Decimal)> {
    s.nodes[i]
        .engine
        .as_ref()
        .unwrap()
        .book("SIM", 10)
        .unwrap()
        .asks
}

#[test]
fn an_order_with_an_expiry_ends_expired_on_time_everywhere() {
    let mut s = sim(3, 40);
    let sell = s.command(0, expiring(&s, 0, Side::Sell, 10_000, 2, 2_000));
    s.run_for(500);
    let o = reply(&s, sell);
    assert_eq!(o.status, OrderStatus::Open);
    assert_eq!(o.expires_at, Some(s.clock(0) - 500 + 2_000));
    for i in 0..3 {
        assert_eq!(asks(&s, i), vec![(d("100"), d("2"))], "node {i}");
    }
    s.run_for(1_700);
    let e = s.nodes[0].engine.as_ref().unwrap();
    let o = e.order(&o.id).unwrap();
    assert_eq!(o.status, OrderStatus::Expired, "{o:?}");
    assert!(o.reason.unwrap().contains("expires_at"));
    for i in 0..3 {
        assert!(asks(&s, i).is_empty(), "node {i}: {:?}", asks(&s, i));
    }
    s.run_for(2_000);
    assert!(digests_equal(&s));
    s.check_converged().unwrap();
}

#[test]
fn replicas_stop_counting_an_expired_order_though_its_owner_is_silent() {
    let mut s = sim(2, 41);
    let sell = s.command(0, expiring(&s, 0, Side::Sell, 10_000, 2, 1_000));
    s.run_for(300);
    let id = reply(&s, sell).id;
    // The owner's word that it ended will not come for a while.
    s.partition(0, 1);
    s.run_for(1_000);
    assert!(asks(&s, 1).is_empty(), "no liquidity past its expiry");
    let seen = s.nodes[1].engine.as_ref().unwrap().order(&id).unwrap();
    assert_eq!(seen.status, OrderStatus::Expired, "{seen:?}");
    // A crossing buy rests: it is not held back by, nor rests across, an
    // order that is gone.
    let buy = s.command(1, s.order(Side::Buy, 10_100, 1, Tif::Gtc));
    s.run_for(300);
    let b = reply(&s, buy);
    assert_eq!((b.status, b.filled), (OrderStatus::Open, d("0")));
    s.heal(0, 1);
    s.run_for(5_000);
    assert_eq!(
        s.nodes[0]
            .engine
            .as_ref()
            .unwrap()
            .order(&id)
            .unwrap()
            .status,
        OrderStatus::Expired
    );
    s.check_no_overfill().unwrap();
    s.check_converged().unwrap();
}

#[test]
fn a_maker_whose_clock_is_ahead_refuses_takes_after_its_expiry() {
    // The maker's clock runs 30 s ahead of the taker's (within
    // max_clock_skew_ms): by the taker's clock its order is still live
    // for 30 s after the maker ended it.
    let mut s = sim(2, 42);
    s.nodes[0].skew = 30_000;
    s.run_for(500);
    let sell = s.command(0, expiring(&s, 0, Side::Sell, 10_000, 3, 1_000));
    s.run_for(300);
    let id = reply(&s, sell).id;
    assert_eq!(asks(&s, 1), vec![(d("100"), d("3"))]);
    s.run_for(800);
    // The maker ended it; a take sent on the taker's stale view before the
    // owner's word lands is refused, never filled.
    let buy = s.command(1, s.order(Side::Buy, 10_000, 1, Tif::Ioc));
    s.run_for(3_000);
    let b = reply(&s, buy);
    assert_eq!(b.filled, d("0"), "{b:?}");
    let m = s.nodes[0].engine.as_ref().unwrap().order(&id).unwrap();
    assert_eq!((m.status, m.filled), (OrderStatus::Expired, d("0")));
    assert!(asks(&s, 1).is_empty());
    s.check_no_overfill().unwrap();
    s.check_converged().unwrap();
}

#[test]
fn a_maker_whose_clock_is_behind_is_not_taken_after_the_takers_clock_says_expired() {
    let mut s = sim(2, 43);
    s.nodes[1].skew = 20_000;
    s.run_for(500);
    let sell = s.command(0, expiring(&s, 0, Side::Sell, 10_000, 3, 5_000));
    s.run_for(300);
    let id = reply(&s, sell).id;
    // By the taker's clock (20 s ahead) the order is already past its
    // expiry: it is no liquidity there, though its owner still has it open.
    assert!(asks(&s, 1).is_empty(), "{:?}", asks(&s, 1));
    let buy = s.command(1, s.order(Side::Buy, 10_000, 1, Tif::Ioc));
    s.run_for(300);
    assert_eq!(reply(&s, buy).filled, d("0"));
    let m = s.nodes[0].engine.as_ref().unwrap().order(&id).unwrap();
    assert_eq!((m.status, m.filled), (OrderStatus::Open, d("0")));
    s.run_for(6_000);
    assert_eq!(
        s.nodes[0]
            .engine
            .as_ref()
            .unwrap()
            .order(&id)
            .unwrap()
            .status,
        OrderStatus::Expired
    );
    assert_eq!(
        s.nodes[1]
            .engine
            .as_ref()
            .unwrap()
            .counters()
            .gossip_rejected,
        0
    );
    s.check_converged().unwrap();
}

#[test]
fn an_order_that_expired_while_its_node_was_down_ends_expired_on_restart() {
    let mut s = sim(2, 44);
    let sell = s.command(0, expiring(&s, 0, Side::Sell, 10_000, 2, 1_000));
    s.run_for(300);
    let id = reply(&s, sell).id;
    s.crash(0);
    s.run_for(2_000);
    assert!(asks(&s, 1).is_empty(), "the replica lapsed it");
    s.start(0);
    s.run_for(3_000);
    let o = s.nodes[0].engine.as_ref().unwrap().order(&id).unwrap();
    assert_eq!(o.status, OrderStatus::Expired, "{o:?}");
    s.check_converged().unwrap();
}

#[test]
fn an_expiry_is_only_for_resting_limit_orders_in_the_future_within_a_year() {
    let mut s = sim(1, 45);
    let mut bad = |tif: Tif, ahead: i64| {
        let mut cmd = s.order(Side::Sell, 10_000, 2, tif);
        if let Command::Place(p) = &mut cmd {
            p.expires_ms = Some(s.clock(0).saturating_add_signed(ahead));
        }
        let id = s.command(0, cmd);
        match &s.replies[&id] {
            Err(e) => e.to_string(),
            Ok(o) => panic!("accepted {o:?}"),
        }
    };
    assert!(bad(Tif::Ioc, 1_000).contains("gtc or post-only"));
    assert!(bad(Tif::Fok, 1_000).contains("gtc or post-only"));
    assert!(bad(Tif::Gtc, 0).contains("not in the future"));
    assert!(bad(Tif::Gtc, -5).contains("not in the future"));
    assert!(bad(Tif::PostOnly, 366 * 86_400_000).contains("365 days"));
    let e = s.nodes[0].engine.as_ref().unwrap();
    assert!(e.orders(None, None, 10).unwrap().is_empty());
}
