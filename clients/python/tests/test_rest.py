"""The blocking class against two real nodes: markets, two nodes trading
through ccxt calls, orders and trades as ccxt shows them, the book, the
ticker, candles, and the node's refusals as ccxt's exceptions."""

from __future__ import annotations

import uuid
from decimal import Decimal

import ccxt
import pytest

import peerbook
from conftest import eventually

SYMBOL = "BTC/USD"


def client(node, **extra):
    return peerbook.Peerbook({"url": node.url, **extra})


@pytest.fixture(scope="module")
def ex(nodes):
    a, b = nodes
    return client(a), client(b)


def wait_level(node, side, price, quantity):
    """Wait until ``node``'s book shows ``quantity`` at ``price``."""
    want = [str(Decimal(price).normalize()), str(Decimal(quantity).normalize())]

    def has():
        book = node.get("/api/v1/book/BTC-USD") or {}
        return want in [[str(Decimal(p).normalize()), str(Decimal(q).normalize())] for p, q in book.get(side, [])]

    eventually(f"{node.name} to show {side} {quantity} at {price}", has, node.output)


def test_markets_have_precision_from_tick_and_lot(ex, nodes):
    a_ex, _ = ex
    markets = a_ex.load_markets()
    node_markets = nodes[0].get("/api/v1/markets")
    assert node_markets, "the node lists no markets"
    assert sorted(markets) == sorted(m["name"].replace("-", "/") for m in node_markets)
    for m in node_markets:
        market = markets[m["name"].replace("-", "/")]
        assert market["id"] == m["name"]
        assert market["spot"] and market["type"] == "spot"
        assert market["active"] == (m["status"] == "open")
        assert market["precision"]["price"] == float(m["tick"])
        assert market["precision"]["amount"] == float(m["lot"])
        assert market["limits"]["amount"]["min"] == float(m["min_size"])
    assert a_ex.market_id(SYMBOL) == "BTC-USD"
    assert a_ex.amount_to_precision(SYMBOL, 0.123456789) == "0.1234"
    assert a_ex.price_to_precision(SYMBOL, 100.129) == "100.13"


def test_two_nodes_trade_through_ccxt(ex, nodes):
    a, b = nodes
    a_ex, b_ex = ex
    sell = a_ex.create_order(SYMBOL, "limit", "sell", 0.5, 1000.25, {"clientOrderId": "sell-" + uuid.uuid4().hex})
    assert sell["status"] == "open" and sell["side"] == "sell" and sell["type"] == "limit"
    assert sell["price"] == 1000.25 and sell["amount"] == 0.5 and sell["filled"] == 0
    assert sell["timeInForce"] == "GTC" and sell["postOnly"] is False
    assert sell["clientOrderId"].startswith("sell-")
    wait_level(b, "asks", "1000.25", "0.5")

    buy = b_ex.create_order(SYMBOL, "limit", "buy", 0.3, 1000.25, {"timeInForce": "IOC"})
    assert buy["status"] == "closed", buy
    assert buy["filled"] == 0.3 and buy["remaining"] == 0
    assert buy["timeInForce"] == "IOC"
    assert len(buy["trades"]) == 1
    fill = buy["trades"][0]
    assert fill["price"] == 1000.25 and fill["amount"] == 0.3
    assert fill["order"] == buy["id"] and fill["takerOrMaker"] == "taker" and fill["side"] == "buy"

    # The maker sees its order partly filled once the take reached it.
    sell_now = eventually(
        "the maker's order to show the fill",
        lambda: (o := a_ex.fetch_order(sell["id"])) and o["filled"] == 0.3 and o,
        a.output,
    )
    assert sell_now["status"] == "open" and sell_now["remaining"] == 0.2

    # Both nodes' fetch_my_trades show the trade, each from its own side.
    mine_b = b_ex.fetch_my_trades(SYMBOL)
    assert [t["id"] for t in mine_b if t["id"] == fill["id"]] == [fill["id"]]
    tb = next(t for t in mine_b if t["id"] == fill["id"])
    assert (tb["side"], tb["takerOrMaker"], tb["order"]) == ("buy", "taker", buy["id"])
    ta = eventually(
        "the trade among the maker's trades",
        lambda: next((t for t in a_ex.fetch_my_trades(SYMBOL) if t["id"] == fill["id"]), None),
        a.output,
    )
    assert (ta["side"], ta["takerOrMaker"], ta["order"]) == ("sell", "maker", sell["id"])
    assert ta["price"] == tb["price"] == 1000.25 and ta["amount"] == tb["amount"] == 0.3
    assert ta["cost"] == pytest.approx(300.075)

    # The public tape has it too, with the taker's side.
    for e in (a_ex, b_ex):
        public = next(t for t in e.fetch_trades(SYMBOL) if t["id"] == fill["id"])
        assert (public["side"], public["takerOrMaker"], public["order"]) == ("buy", None, None)
        assert public["price"] == 1000.25 and public["amount"] == 0.3

    # Fill the rest: the sell is closed, and listed as such.
    b_ex.create_order(SYMBOL, "market", "buy", 0.2)
    done = eventually(
        "the maker's order to be filled",
        lambda: (o := a_ex.fetch_order(sell["id"])) and o["status"] == "closed" and o,
        a.output,
    )
    assert done["filled"] == 0.5 and done["remaining"] == 0 and done["average"] == 1000.25
    assert sell["id"] in [o["id"] for o in a_ex.fetch_closed_orders(SYMBOL)]
    assert sell["id"] not in [o["id"] for o in a_ex.fetch_open_orders(SYMBOL)]


def test_open_orders_and_cancel(ex):
    a_ex, _ = ex
    order = a_ex.create_order(SYMBOL, "limit", "buy", 0.01, 5.5)
    assert order["id"] in [o["id"] for o in a_ex.fetch_open_orders(SYMBOL)]
    cancelled = a_ex.cancel_order(order["id"], SYMBOL)
    assert cancelled["id"] == order["id"] and cancelled["status"] == "canceled"
    assert a_ex.fetch_order(order["id"])["status"] == "canceled"
    assert order["id"] not in [o["id"] for o in a_ex.fetch_open_orders(SYMBOL)]
    assert order["id"] in [o["id"] for o in a_ex.fetch_closed_orders(SYMBOL)]
    assert order["id"] in [o["id"] for o in a_ex.fetch_canceled_orders(SYMBOL)]
    # A second cancel: the order is done.
    with pytest.raises(ccxt.OrderNotFound):
        a_ex.cancel_order(order["id"], SYMBOL)


def test_post_only_and_client_id(ex, nodes):
    a, b = nodes
    a_ex, b_ex = ex
    ask = a_ex.create_order(SYMBOL, "limit", "sell", 0.01, 2000)
    wait_level(b, "asks", "2000", "0.01")
    # Post-only that would take is rejected, never fills.
    po = b_ex.create_order(SYMBOL, "limit", "buy", 0.01, 2000, {"postOnly": True})
    assert po["status"] == "rejected" and po["filled"] == 0 and po["postOnly"] is True
    rests = b_ex.create_order(SYMBOL, "limit", "buy", 0.01, 1999, {"timeInForce": "PO"})
    assert rests["status"] == "open" and rests["timeInForce"] == "PO"
    # A repeated client id returns the first order.
    cid = "cid-" + uuid.uuid4().hex
    first = b_ex.create_order(SYMBOL, "limit", "buy", 0.01, 3.5, {"clientOrderId": cid})
    again = b_ex.create_order(SYMBOL, "limit", "buy", 0.01, 3.5, {"clientOrderId": cid})
    assert again["id"] == first["id"] and again["clientOrderId"] == cid
    for o, e in ((ask, a_ex), (rests, b_ex), (first, b_ex)):
        e.cancel_order(o["id"])


def test_order_book_equals_the_nodes(ex, nodes):
    a, b = nodes
    a_ex, b_ex = ex
    placed = [
        a_ex.create_order(SYMBOL, "limit", "buy", 0.1, 10),
        a_ex.create_order(SYMBOL, "limit", "buy", 0.2, 10),
        a_ex.create_order(SYMBOL, "limit", "buy", 0.3, 9.99),
        a_ex.create_order(SYMBOL, "limit", "sell", 0.4, 5000),
    ]
    wait_level(b, "bids", "10", "0.3")
    wait_level(b, "bids", "9.99", "0.3")
    wait_level(b, "asks", "5000", "0.4")
    for node, e in ((a, a_ex), (b, b_ex)):
        book = e.fetch_order_book(SYMBOL)
        raw = node.get("/api/v1/book/BTC-USD")
        assert book["symbol"] == SYMBOL
        assert book["bids"] == [[float(p), float(q)] for p, q in raw["bids"]]
        assert book["asks"] == [[float(p), float(q)] for p, q in raw["asks"]]
        assert [10.0, 0.3] in book["bids"] and [9.99, 0.3] in book["bids"]
        assert book["bids"] == sorted(book["bids"], reverse=True)
        assert book["asks"] == sorted(book["asks"])
        top = e.fetch_order_book(SYMBOL, 1)
        assert top["bids"] == book["bids"][:1] and top["asks"] == book["asks"][:1]
    for o in placed:
        a_ex.cancel_order(o["id"])


def test_ticker(ex, nodes):
    a, b = nodes
    a_ex, b_ex = ex
    bid = a_ex.create_order(SYMBOL, "limit", "buy", 0.01, 20)
    ask = a_ex.create_order(SYMBOL, "limit", "sell", 0.01, 4000)
    t = a_ex.fetch_ticker(SYMBOL)
    raw = a.get("/api/v1/ticker?market=BTC-USD")
    assert t["symbol"] == SYMBOL
    assert t["bid"] == float(raw["bid"]) and t["ask"] == float(raw["ask"])
    assert t["bid"] >= 20 and t["ask"] <= 4000
    # The trades of the tests before: all within the 24 hours.
    trades = a_ex.fetch_trades(SYMBOL, since=0)
    assert trades, "no trades yet: the trading test runs first"
    assert t["last"] == trades[-1]["price"]
    assert t["baseVolume"] == pytest.approx(sum(x["amount"] for x in trades))
    assert t["high"] == max(x["price"] for x in trades)
    assert t["low"] == min(x["price"] for x in trades)
    assert t["open"] == trades[0]["price"]
    tickers = a_ex.fetch_tickers()
    assert set(tickers) == set(a_ex.symbols)
    assert tickers[SYMBOL]["bid"] == t["bid"]
    for o in (bid, ask):
        a_ex.cancel_order(o["id"])


def test_ohlcv_equals_candles_from_trades(ex, nodes):
    a, _ = nodes
    a_ex, b_ex = ex
    # A few trades of their own, so there is something to count.
    for price in ("1500", "1501.5", "1499"):
        sell = a_ex.create_order(SYMBOL, "limit", "sell", 0.01, price)
        wait_level(nodes[1], "asks", price, "0.01")
        assert b_ex.create_order(SYMBOL, "limit", "buy", 0.01, price, {"timeInForce": "FOK"})["status"] == "closed"
        eventually("the fill to reach the maker", lambda: a_ex.fetch_order(sell["id"])["status"] == "closed", a.output)
    for e in (a_ex, b_ex):
        trades = e.fetch_trades(SYMBOL, since=0)
        assert len(trades) >= 3
        for timeframe, ms in (("1m", 60_000), ("5m", 300_000), ("15m", 900_000), ("1h", 3_600_000), ("1d", 86_400_000)):
            expected = {}
            for t in trades:
                start = t["timestamp"] - t["timestamp"] % ms
                p, q = Decimal(t["info"]["price"]), Decimal(t["info"]["quantity"])
                c = expected.get(start)
                if c is None:
                    expected[start] = [start, p, p, p, p, q]
                else:
                    c[2] = max(c[2], p)
                    c[3] = min(c[3], p)
                    c[4] = p
                    c[5] += q
            want = [[c[0]] + [float(x) for x in c[1:]] for _, c in sorted(expected.items())]
            first = min(expected)
            assert e.fetch_ohlcv(SYMBOL, timeframe, since=first, limit=len(want) + 500) == want, timeframe
            # Without since: the last intervals up to now, which hold them all.
            assert e.fetch_ohlcv(SYMBOL, timeframe) == want, timeframe
            # limit: the first ones from since.
            assert e.fetch_ohlcv(SYMBOL, timeframe, since=first, limit=1) == want[:1], timeframe
    with pytest.raises(ccxt.BadRequest):
        a_ex.fetch_ohlcv(SYMBOL, "3m")


def test_errors_map_to_ccxt_exceptions(ex):
    a_ex, _ = ex
    with pytest.raises(ccxt.OrderNotFound):
        a_ex.fetch_order("12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/999999")
    with pytest.raises(ccxt.OrderNotFound):
        a_ex.cancel_order("12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/999999")
    with pytest.raises(ccxt.BadSymbol):
        a_ex.fetch_order_book("NOPE/USD")
    with pytest.raises(ccxt.BadSymbol):
        a_ex.create_order("NOPE/USD", "limit", "buy", 1, 1)
    with pytest.raises(ccxt.InvalidOrder):
        a_ex.create_order(SYMBOL, "limit", "buy", 1, 0)
    with pytest.raises(ccxt.InvalidOrder):
        a_ex.create_order(SYMBOL, "limit", "buy", 0.00001, 10)
    with pytest.raises(ccxt.InvalidOrder):
        a_ex.create_order(SYMBOL, "stop", "buy", 1, 10)
    with pytest.raises(ccxt.InvalidOrder):
        a_ex.create_order(SYMBOL, "limit", "buy", 1, 10, {"timeInForce": "GTX"})
    with pytest.raises(ccxt.ArgumentsRequired):
        a_ex.create_order(SYMBOL, "limit", "buy", 1)
    assert a_ex.has["fetchBalance"] is False and a_ex.has["fetchDeposits"] is False
    with pytest.raises(ccxt.NotSupported, match="holds no funds"):
        a_ex.fetch_balance()
    with pytest.raises(ccxt.NotSupported, match="holds no funds"):
        a_ex.fetch_deposits()
    with pytest.raises(ccxt.NotSupported, match="holds no funds"):
        a_ex.withdraw("USD", 1, "somewhere")


def test_token_node(token_node):
    no_token = client(token_node)
    with pytest.raises(ccxt.AuthenticationError):
        no_token.load_markets()
    wrong = client(token_node, apiKey="wrong")
    with pytest.raises(ccxt.AuthenticationError):
        wrong.fetch_markets()
    right = client(token_node, apiKey=token_node.token)
    assert SYMBOL in right.load_markets()
    order = right.create_order(SYMBOL, "limit", "buy", 0.01, 1)
    assert right.fetch_order(order["id"])["status"] == "open"
    assert right.cancel_order(order["id"])["status"] == "canceled"


def test_good_till_date_orders_expire(ex, nodes):
    a, b = nodes
    a_ex, b_ex = ex
    expires = a_ex.milliseconds() + 3_000
    order = a_ex.create_order(SYMBOL, "limit", "sell", 0.01, 7777, {"expiresAt": expires})
    assert order["status"] == "open" and order["info"]["expires_at"] == expires
    wait_level(b, "asks", "7777", "0.01")
    done = eventually(
        "the order to expire",
        lambda: (o := a_ex.fetch_order(order["id"])) and o["status"] == "expired" and o,
        a.output,
    )
    assert done["filled"] == 0 and done["lastUpdateTimestamp"] >= expires
    assert order["id"] in [o["id"] for o in a_ex.fetch_closed_orders(SYMBOL)]
    eventually(
        "the replica to drop the expired order",
        lambda: all(p != 7777 for p, _ in b_ex.fetch_order_book(SYMBOL)["asks"]),
        b.output,
    )
    # In the past: the node refuses it.
    with pytest.raises(ccxt.InvalidOrder):
        a_ex.create_order(SYMBOL, "limit", "sell", 0.01, 7777, {"expiresAt": a_ex.milliseconds() - 1_000})


def test_small_pages_walk_the_same_history(ex, nodes):
    a, b = nodes
    for node, whole in zip(nodes, ex):
        paged = client(node, options={"pageSize": 2})
        assert paged.fetch_my_trades(SYMBOL) == whole.fetch_my_trades(SYMBOL)
        assert len(whole.fetch_my_trades(SYMBOL)) > 2
        assert paged.fetch_trades(SYMBOL, since=0) == whole.fetch_trades(SYMBOL, since=0)
        assert paged.fetch_trades(SYMBOL, limit=3) == whole.fetch_trades(SYMBOL, limit=3)
        assert paged.fetch_orders(SYMBOL) == whole.fetch_orders(SYMBOL)
        assert paged.fetch_closed_orders(SYMBOL) == whole.fetch_closed_orders(SYMBOL)
        assert len(whole.fetch_closed_orders(SYMBOL)) > 2
        since = whole.fetch_my_trades(SYMBOL)[1]["timestamp"]
        assert paged.fetch_my_trades(SYMBOL, since=since, limit=2) == whole.fetch_my_trades(SYMBOL, since=since, limit=2)
