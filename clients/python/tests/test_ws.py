"""The asyncio class (ccxt.pro): REST as coroutines, and watch_order_book /
watch_trades from the node's WebSocket feed while two nodes trade."""

from __future__ import annotations

import asyncio
import random
import urllib.request

import ccxt
import pytest

import peerbook
import peerbook.pro
from conftest import Node
from peerbook.pro import book_checksum

SYMBOL = "BTC/USD"
# How long one watch may wait for a message when none may come.
QUIET = 1.0
DEADLINE = 90.0


def run(coro):
    return asyncio.run(coro)


async def settled(watcher, rest):
    """Watch until the copy equals the REST book (the nodes have stopped
    changing it); the copy then. Fails after the deadline with both."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    book = None
    while True:
        try:
            book = await asyncio.wait_for(watcher.watch_order_book(SYMBOL), QUIET)
        except asyncio.TimeoutError:
            # Nothing new: the copy as it stands, if it is a whole one.
            if watcher.levels(SYMBOL) is not None:
                book = watcher.orderbooks.get(SYMBOL)
        want = await rest.fetch_order_book(SYMBOL)
        if book is not None and book["bids"] == want["bids"] and book["asks"] == want["asks"]:
            return book
        if loop.time() - started > DEADLINE:
            pytest.fail(f"the watched book never equalled the node's\nwatched: {book}\nnode: {want}")


async def watch_until(watch, done, what):
    """Call ``watch()`` until ``done()`` (which looks at the client's
    caches) says yes; its answer. A message that comes while no call waits
    is in the caches but wakes nobody, so each wait is short and the check
    runs again; fails after the deadline."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        value = done()
        if value:
            return value
        if loop.time() - started > DEADLINE:
            pytest.fail(f"timed out waiting for {what}")
        try:
            await asyncio.wait_for(watch(), QUIET)
        except asyncio.TimeoutError:
            pass


def cached(collection, id, **want):
    """The entry of ``collection`` (a ccxt cache, or None) with ``id`` and
    the ``want``ed values, if there is one."""
    for x in collection or []:
        if x["id"] == id and all(x[k] == v for k, v in want.items()):
            return x
    return None


def test_pro_rest_methods(nodes):
    a, _ = nodes

    async def go():
        ex = peerbook.pro.Peerbook({"url": a.url})
        try:
            markets = await ex.load_markets()
            assert SYMBOL in markets
            order = await ex.create_order(SYMBOL, "limit", "buy", 0.01, 7)
            assert (await ex.fetch_order(order["id"]))["status"] == "open"
            assert order["id"] in [o["id"] for o in await ex.fetch_open_orders(SYMBOL)]
            assert (await ex.cancel_order(order["id"]))["status"] == "canceled"
            with pytest.raises(ccxt.OrderNotFound):
                await ex.cancel_order(order["id"])
            with pytest.raises(ccxt.NotSupported):
                await ex.fetch_balance()
            assert (await ex.fetch_ticker(SYMBOL))["symbol"] == SYMBOL
        finally:
            await ex.close()

    run(go())


def test_watch_order_book_follows_two_trading_nodes(nodes):
    a, b = nodes

    async def go():
        ea = peerbook.pro.Peerbook({"url": a.url})
        eb = peerbook.pro.Peerbook({"url": b.url})
        watcher = peerbook.pro.Peerbook({"url": b.url})
        rng = random.Random(17)
        try:
            first = await watcher.watch_order_book(SYMBOL)
            assert first["symbol"] == SYMBOL and first["nonce"] is not None
            mine = {"a": [], "b": []}
            for round_ in range(6):
                # Orders, some crossing (trades between the nodes), some cancels.
                for _ in range(8):
                    who, ex = rng.choice((("a", ea), ("b", eb)))
                    side = rng.choice(("buy", "sell"))
                    price = round(rng.uniform(600, 610), 2)
                    qty = round(rng.uniform(0.01, 0.2), 4)
                    o = await ex.create_order(SYMBOL, "limit", side, qty, price)
                    if o["status"] == "open":
                        mine[who].append(o["id"])
                for who, ex in (("a", ea), ("b", eb)):
                    while len(mine[who]) > 3:
                        oid = mine[who].pop(rng.randrange(len(mine[who])))
                        try:
                            await ex.cancel_order(oid)
                        except ccxt.OrderNotFound:
                            pass  # filled meanwhile by the other node
                # A checkpoint: the copy equals the node's book, and its
                # checksum is the node's last one (checked on every message).
                book = await settled(watcher, eb)
                levels = watcher.levels(SYMBOL)
                assert book["nonce"] == levels["seq"]
                assert book_checksum(levels["bids"], levels["asks"]) == book_checksum(
                    {p: q for p, q in (b.get("/api/v1/book/BTC-USD") or {}).get("bids", [])},
                    {p: q for p, q in (b.get("/api/v1/book/BTC-USD") or {}).get("asks", [])},
                )
            for who, ex in (("a", ea), ("b", eb)):
                for oid in mine[who]:
                    try:
                        await ex.cancel_order(oid)
                    except ccxt.OrderNotFound:
                        pass
            await settled(watcher, eb)
        finally:
            for ex in (ea, eb, watcher):
                await ex.close()

    run(go())


def test_a_wrong_copy_is_caught_by_the_checksum_and_replaced(nodes):
    a, _ = nodes

    async def go():
        ex = peerbook.pro.Peerbook({"url": a.url})
        try:
            await ex.watch_order_book(SYMBOL)
            # Spoil the copy: the next message's checksum cannot match.
            ex.levels(SYMBOL)["bids"]["0.01"] = "123"
            order = await ex.create_order(SYMBOL, "limit", "buy", 0.01, 8)
            with pytest.raises(ccxt.ChecksumError):
                while True:
                    await asyncio.wait_for(ex.watch_order_book(SYMBOL), DEADLINE)
            # The client subscribed again: a fresh snapshot, a right copy.
            book = await settled(ex, ex)
            assert any(p == 8.0 for p, _ in book["bids"])
            assert "0.01" not in ex.levels(SYMBOL)["bids"]
            await ex.cancel_order(order["id"])
        finally:
            await ex.close()

    run(go())


def test_watch_trades_sees_a_trade_between_the_nodes(nodes):
    a, b = nodes

    async def go():
        ea = peerbook.pro.Peerbook({"url": a.url})
        eb = peerbook.pro.Peerbook({"url": b.url})
        try:
            watching = asyncio.ensure_future(eb.watch_trades(SYMBOL))
            # The node confirms the subscription before anyone trades.
            while "trades:BTC-USD" not in eb.subscribed:
                await asyncio.sleep(0.05)
            sell = await ea.create_order(SYMBOL, "limit", "sell", 0.02, 3000.5)
            while True:
                book = await eb.fetch_order_book(SYMBOL)
                if any(p == 3000.5 for p, _ in book["asks"]):
                    break
                await asyncio.sleep(0.15)
            buy = await eb.create_order(SYMBOL, "limit", "buy", 0.02, 3000.5, {"timeInForce": "FOK"})
            assert buy["status"] == "closed"
            fill_id = buy["trades"][0]["id"]
            await asyncio.wait_for(watching, DEADLINE)
            t = await watch_until(
                lambda: eb.watch_trades(SYMBOL), lambda: cached(eb.trades.get(SYMBOL), fill_id), "the trade"
            )
            assert t["symbol"] == SYMBOL and t["price"] == 3000.5 and t["amount"] == 0.02
            # Everyone's view: the taker's side, no order of ours.
            assert (t["side"], t["takerOrMaker"], t["order"]) == ("buy", None, None)
            assert (t["info"]["maker_order_id"], t["info"]["taker_order_id"]) == (sell["id"], buy["id"])
        finally:
            for ex in (ea, eb):
                await ex.close()

    run(go())


def test_watch_orders_my_trades_and_ticker(nodes):
    a, b = nodes

    async def go():
        ea = peerbook.pro.Peerbook({"url": a.url})
        eb = peerbook.pro.Peerbook({"url": b.url})
        try:
            orders_a = asyncio.ensure_future(ea.watch_orders(SYMBOL))
            fills_a = asyncio.ensure_future(ea.watch_my_trades(SYMBOL))
            fills_b = asyncio.ensure_future(eb.watch_my_trades(SYMBOL))
            while not {"orders", "fills"} <= ea.subscribed or "fills" not in eb.subscribed:
                await asyncio.sleep(0.05)
            sell = await ea.create_order(SYMBOL, "limit", "sell", 0.03, 2500.75)
            await asyncio.wait_for(orders_a, DEADLINE)
            seen = await watch_until(
                lambda: ea.watch_orders(SYMBOL), lambda: cached(ea.orders, sell["id"]), "the order"
            )
            assert seen["status"] == "open" and seen["price"] == 2500.75 and seen["amount"] == 0.03
            while True:
                book = await eb.fetch_order_book(SYMBOL)
                if any(p == 2500.75 for p, _ in book["asks"]):
                    break
                await asyncio.sleep(0.15)
            buy = await eb.create_order(SYMBOL, "market", "buy", 0.03)
            assert buy["status"] == "closed"
            fill_id = buy["trades"][0]["id"]

            async def my_trade(ex, future):
                await asyncio.wait_for(future, DEADLINE)
                return await watch_until(
                    lambda: ex.watch_my_trades(SYMBOL), lambda: cached(ex.myTrades, fill_id), "the fill"
                )

            ta = await my_trade(ea, fills_a)
            tb = await my_trade(eb, fills_b)
            assert (ta["side"], ta["takerOrMaker"], ta["order"]) == ("sell", "maker", sell["id"])
            assert (tb["side"], tb["takerOrMaker"], tb["order"]) == ("buy", "taker", buy["id"])
            # The maker's order channel shows it filled (perhaps already:
            # the cache keeps each order's latest).
            await watch_until(
                lambda: ea.watch_orders(SYMBOL),
                lambda: cached(ea.orders, sell["id"], status="closed"),
                "the order filled",
            )
            done = [o for o in ea.orders if o["id"] == sell["id"]]
            assert len(done) == 1 and done[0]["filled"] == 0.03 and done[0]["remaining"] == 0
        finally:
            for ex in (ea, eb):
                await ex.close()

    run(go())


TICKER_FIELDS = ("last", "bid", "ask", "open", "high", "low", "baseVolume", "change")


def test_watch_ticker_starts_with_the_nodes(nodes):
    a, _ = nodes

    async def go():
        ex = peerbook.pro.Peerbook({"url": a.url})
        try:
            bid = await ex.create_order(SYMBOL, "limit", "buy", 0.01, 30)
            ticker = await ex.watch_ticker(SYMBOL)
            rest = await ex.fetch_ticker(SYMBOL)
            assert ticker["symbol"] == SYMBOL and ticker["bid"] == rest["bid"] >= 30
            for key in TICKER_FIELDS:
                assert ticker[key] == rest[key], key
            await ex.cancel_order(bid["id"])
        finally:
            await ex.close()

    run(go())


def test_a_client_that_falls_behind_is_resynced_and_keeps_a_right_copy(tmp_path):
    # A node with a tiny WebSocket budget: a client that stops reading (and
    # answering pings) for a few dozen deltas falls behind.
    node = Node("lag", tmp_path / "lag", env={"PEERBOOK_API_WS_BUFFER_BYTES": "2048"})
    try:
        node.ready()

        async def go():
            ex = peerbook.pro.Peerbook({"url": node.url})
            trader = peerbook.Peerbook({"url": node.url})
            try:
                await ex.watch_order_book(SYMBOL)
                # Blocking calls in the event loop: the watcher reads nothing
                # while the book changes under it.
                placed = [trader.create_order(SYMBOL, "limit", "buy", 0.01, 100 + i) for i in range(60)]
                for o in placed[::2]:
                    trader.cancel_order(o["id"])
                book = await settled(ex, ex)
                assert ex.resyncs.get("book:BTC-USD", 0) >= 1, "the node never resynced the client"
                assert len(book["bids"]) == 30
                for o in placed[1::2]:
                    trader.cancel_order(o["id"])
                book = await settled(ex, ex)
                assert book["bids"] == []
            finally:
                await ex.close()

        run(go())
        metrics = urllib.request.urlopen(node.url + "/metrics", timeout=10).read().decode()
        resynced = [line for line in metrics.splitlines() if line.startswith("peerbook_api_ws_resyncs")]
        assert resynced and float(resynced[0].split()[-1]) >= 1, resynced
    finally:
        node.stop()


class Recording(peerbook.pro.Peerbook):
    """Keeps every ticker message the node sends."""

    def __init__(self, config={}):
        super().__init__(config)
        self.ticker_messages = []

    def handle_message(self, client, message):
        if isinstance(message, dict) and message.get("type") == "ticker":
            self.ticker_messages.append(message["data"])
        super().handle_message(client, message)


def test_watch_ticker_shows_the_trade(nodes):
    a, b = nodes

    async def go():
        ea = peerbook.pro.Peerbook({"url": a.url})
        eb = Recording({"url": b.url})
        try:
            await eb.watch_ticker(SYMBOL)
            assert len(eb.ticker_messages) == 1
            price = 2222.22
            await ea.create_order(SYMBOL, "limit", "sell", 0.01, price)
            while not any(p == price for p, _ in (await eb.fetch_order_book(SYMBOL))["asks"]):
                await asyncio.sleep(0.15)
            buy = await eb.create_order(SYMBOL, "market", "buy", 0.01)
            assert buy["status"] == "closed" and buy["trades"][0]["price"] == price
            # One ticker per trade the node learns of: the second message is
            # the one sent for this trade (it may have come already).
            await watch_until(
                lambda: eb.watch_ticker(SYMBOL), lambda: len(eb.ticker_messages) >= 2, "the trade's ticker"
            )
            before, after = eb.ticker_messages[0], eb.ticker_messages[1]
            assert after["trades_24h"] == before["trades_24h"] + 1, (before, after)
            assert after["last"] == "2222.22", (before, after)
            ticker = eb.tickers[SYMBOL]
            rest = await eb.fetch_ticker(SYMBOL)
            for key in TICKER_FIELDS:
                assert ticker[key] == rest[key], key
        finally:
            for ex in (ea, eb):
                await ex.close()

    run(go())


def test_the_feed_with_a_token(token_node):
    async def go():
        right = peerbook.pro.Peerbook({"url": token_node.url, "apiKey": token_node.token})
        wrong = peerbook.pro.Peerbook({"url": token_node.url, "apiKey": "wrong"})
        try:
            # The token goes in the handshake's header: the node lets it in.
            order = await right.create_order(SYMBOL, "limit", "buy", 0.01, 2)
            book = await right.watch_order_book(SYMBOL)
            assert [2.0, 0.01] in book["bids"]
            await right.cancel_order(order["id"])
            with pytest.raises(ccxt.AuthenticationError):
                await wrong.fetch_order_book(SYMBOL)
            with pytest.raises(ccxt.AuthenticationError):
                await asyncio.wait_for(wrong.watch_order_book(SYMBOL), DEADLINE)
        finally:
            for ex in (right, wrong):
                await ex.close()

    run(go())


def test_the_watcher_comes_back_after_the_node_restarts(tmp_path):
    started = [Node("r", tmp_path / "r")]
    try:
        first = started[0]
        first.ready()

        async def go():
            ex = peerbook.pro.Peerbook({"url": first.url})
            try:
                order = await ex.create_order(SYMBOL, "limit", "buy", 0.01, 11)
                book = await settled(ex, ex)
                assert [11.0, 0.01] in book["bids"]
                first.proc.terminate()
                first.proc.wait()
                # The connection is gone: the waiting call says so.
                with pytest.raises(ccxt.NetworkError):
                    while True:
                        await asyncio.wait_for(ex.watch_order_book(SYMBOL), DEADLINE)
                # The same node again (its data, its ports): the same client
                # connects anew, subscribes again and follows the book, where
                # the open order is back.
                again = Node("r-again", tmp_path / "r", ports=(first.p2p_port, first.api_port))
                started.append(again)
                again.ready()
                book = await settled(ex, ex)
                assert [11.0, 0.01] in book["bids"]
                await ex.cancel_order(order["id"])
                book = await settled(ex, ex)
                assert book["bids"] == []
            finally:
                await ex.close()

        run(go())
    finally:
        for n in started:
            n.stop()
