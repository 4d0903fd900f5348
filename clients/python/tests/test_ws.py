"""The asyncio class (ccxt.pro): REST as coroutines, and watch_order_book /
watch_trades from the node's WebSocket feed while two nodes trade."""

from __future__ import annotations

import asyncio
import random

import ccxt
import pytest

import peerbook.pro
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
            trades = await asyncio.wait_for(watching, DEADLINE)
            while fill_id not in [t["id"] for t in trades]:
                trades = await asyncio.wait_for(eb.watch_trades(SYMBOL), DEADLINE)
            t = next(t for t in trades if t["id"] == fill_id)
            assert t["symbol"] == SYMBOL and t["price"] == 3000.5 and t["amount"] == 0.02
            assert (t["side"], t["takerOrMaker"], t["order"]) == ("buy", "taker", buy["id"])
            assert sell["id"] == t["info"]["maker_order_id"]
        finally:
            for ex in (ea, eb):
                await ex.close()

    run(go())
