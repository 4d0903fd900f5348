"""The asyncio exchange class, on ccxt's WebSocket base (``ccxt.pro``):
every REST method of ``peerbook.Peerbook`` as a coroutine, plus
``watch_order_book`` and ``watch_trades`` from the node's WebSocket feed
(``GET /api/v1/ws``, docs/market-data.md).

    import asyncio, peerbook.pro
    async def main():
        ex = peerbook.pro.Peerbook({"url": "http://127.0.0.1:8080"})
        while True:
            book = await ex.watch_order_book("BTC/USD")
            print(book["bids"][:1], book["asks"][:1])
    asyncio.run(main())

The book is the node's snapshot with its deltas applied; every message's
sequence number must follow the last one and its CRC-32 checksum of the top
25 levels must match the copy, or the copy is thrown away and the channel
subscribed again (a fresh snapshot), and the waiting call raises
``InvalidNonce`` or ``ChecksumError``. A ``resync`` from the node (the
client fell behind) is followed by a fresh snapshot by the node itself.
"""

from __future__ import annotations

import zlib
from decimal import Decimal

import ccxt.pro
from ccxt.async_support.base.ws.cache import ArrayCache, ArrayCacheBySymbolById
from ccxt.base.errors import AuthenticationError, ChecksumError, ExchangeError, InvalidNonce

from ._common import DONE, LOAD_MARKETS, OPEN, PeerbookMixin

__all__ = ["Peerbook", "book_checksum"]

# Levels of each side the checksum covers.
CHECKSUM_LEVELS = 25


def book_checksum(bids, asks):
    """The feed's checksum of a book given as ``{price: quantity}`` of the
    node's decimal strings: CRC-32 of ``p:q,p:q|p:q,...`` over the best 25
    levels of each side, bids first."""

    def side(levels, best_first_reverse):
        top = sorted(levels.items(), key=lambda kv: Decimal(kv[0]), reverse=best_first_reverse)
        return ",".join(f"{p}:{q}" for p, q in top[:CHECKSUM_LEVELS])

    text = side(bids, True) + "|" + side(asks, False)
    return zlib.crc32(text.encode("utf-8"))


class Peerbook(PeerbookMixin, ccxt.pro.Exchange):
    """The asyncio exchange class (``ccxt.pro.Exchange``)."""

    def __init__(self, config={}):
        super().__init__(config)
        self._set_node_url()
        # Per book channel: the node's levels as decimal strings (what the
        # checksum is computed from) and the last sequence number.
        self._levels = {}
        # The channels the node confirmed (its "subscribed" answers).
        self.subscribed = set()
        # Per book channel, how often the copy was replaced by a fresh
        # snapshot: the node's resync (this client fell behind) or a wrong
        # copy caught here.
        self.resyncs = {}

    async def _run(self, gen):
        answer = None
        try:
            while True:
                step = gen.send(answer)
                if step is LOAD_MARKETS:
                    await self.load_markets()
                    answer = None
                else:
                    method, path, params = step
                    answer = await self.request(path, "public", method, params)
        except StopIteration as done:
            return done.value

    async def fetch_markets(self, params={}):
        return await self._run(self._g_fetch_markets(params))

    async def fetch_status(self, params={}):
        return await self._run(self._g_fetch_status(params))

    async def fetch_ticker(self, symbol, params={}):
        return await self._run(self._g_fetch_ticker(symbol, params))

    async def fetch_tickers(self, symbols=None, params={}):
        return await self._run(self._g_fetch_tickers(symbols, params))

    async def fetch_order_book(self, symbol, limit=None, params={}):
        return await self._run(self._g_fetch_order_book(symbol, limit, params))

    async def fetch_trades(self, symbol, since=None, limit=None, params={}):
        return await self._run(self._g_fetch_trades(symbol, since, limit, params))

    async def fetch_ohlcv(self, symbol, timeframe="1m", since=None, limit=None, params={}):
        return await self._run(self._g_fetch_ohlcv(symbol, timeframe, since, limit, params))

    async def create_order(self, symbol, type, side, amount, price=None, params={}):
        return await self._run(self._g_create_order(symbol, type, side, amount, price, params))

    async def cancel_order(self, id, symbol=None, params={}):
        return await self._run(self._g_cancel_order(id, symbol, params))

    async def fetch_order(self, id, symbol=None, params={}):
        return await self._run(self._g_fetch_order(id, symbol, params))

    async def fetch_orders(self, symbol=None, since=None, limit=None, params={}):
        return await self._run(self._g_fetch_orders(symbol, since, limit, params))

    async def fetch_open_orders(self, symbol=None, since=None, limit=None, params={}):
        return await self._run(self._g_fetch_orders(symbol, since, limit, params, OPEN))

    async def fetch_closed_orders(self, symbol=None, since=None, limit=None, params={}):
        return await self._run(self._g_fetch_orders(symbol, since, limit, params, DONE))

    async def fetch_canceled_orders(self, symbol=None, since=None, limit=None, params={}):
        return await self._run(self._g_fetch_orders(symbol, since, limit, params, ("cancelled",)))

    async def fetch_my_trades(self, symbol=None, since=None, limit=None, params={}):
        return await self._run(self._g_fetch_my_trades(symbol, since, limit, params))

    async def fetch_order_trades(self, id, symbol=None, since=None, limit=None, params={}):
        return await self._run(self._g_fetch_order_trades(id, symbol, since, limit, params))

    async def fetch_balance(self, params={}):
        self._no_funds("fetchBalance")

    async def fetch_deposits(self, code=None, since=None, limit=None, params={}):
        self._no_funds("fetchDeposits")

    async def fetch_withdrawals(self, code=None, since=None, limit=None, params={}):
        self._no_funds("fetchWithdrawals")

    async def fetch_deposit_address(self, code, params={}):
        self._no_funds("fetchDepositAddress")

    async def withdraw(self, code, amount, address, tag=None, params={}):
        self._no_funds("withdraw")

    async def transfer(self, code, amount, fromAccount, toAccount, params={}):
        self._no_funds("transfer")

    # ------------------------------------------------------------ WebSocket

    async def _ready(self, private=False):
        """Markets (and for private channels this node's peer id) loaded.
        Awaits nothing once they are, so a watch call registers its wait
        before any message can be handled in between."""
        if not self.markets:
            await self.load_markets()
        if private and self.options.get("peerId") is None:
            await self._run(self._g_peer_id())

    async def _subscribe(self, channel):
        url = self.urls["api"]["ws"]
        request = {"op": "subscribe", "channel": channel}
        try:
            return await self.watch(url, channel, request, channel)
        except Exception:
            # A rejection kept for a later call stays in the client's
            # futures once raised; drop it so the next call waits anew.
            client = self.client(url)
            future = client.futures.get(channel)
            if future is not None and future.done():
                del client.futures[channel]
            raise

    async def watch_order_book(self, symbol, limit=None, params={}):
        """The node's whole book, kept by the feed; each call returns once
        the next snapshot or delta is applied (``limit`` cuts the copy)."""
        await self._ready()
        market = self.market(symbol)
        book = await self._subscribe("book:" + market["id"])
        return book.limit()

    async def watch_trades(self, symbol, since=None, limit=None, params={}):
        """Trades as the node learns them (every owner's), oldest first."""
        await self._ready()
        market = self.market(symbol)
        trades = await self._subscribe("trades:" + market["id"])
        if self.newUpdates:
            limit = trades.getLimit(market["symbol"], limit)
        return self.filter_by_since_limit(trades, since, limit, "timestamp", True)

    async def watch_ticker(self, symbol, params={}):
        """The ticker: the node's at subscribing, then after every trade."""
        await self._ready()
        market = self.market(symbol)
        return await self._subscribe("ticker:" + market["id"])

    async def watch_orders(self, symbol=None, since=None, limit=None, params={}):
        """This node's orders as they are placed and change (the private
        ``orders`` channel), oldest first."""
        await self._ready(private=True)
        orders = await self._subscribe("orders")
        if self.newUpdates:
            limit = orders.getLimit(symbol, limit)
        return self.filter_by_symbol_since_limit(orders, symbol, since, limit, True)

    async def watch_my_trades(self, symbol=None, since=None, limit=None, params={}):
        """This node's trades as they happen (the private ``fills``
        channel), oldest first, each from this node's side."""
        await self._ready(private=True)
        trades = await self._subscribe("fills")
        if self.newUpdates:
            limit = trades.getLimit(symbol, limit)
        return self.filter_by_symbol_since_limit(trades, symbol, since, limit, True)

    def handle_message(self, client, message):
        kind = message.get("type") if isinstance(message, dict) else None
        channel = message.get("channel") if isinstance(message, dict) else None
        if kind == "snapshot":
            self._handle_snapshot(client, message)
        elif kind == "delta":
            self._handle_delta(client, message)
        elif kind == "trade":
            self._handle_trade(client, message)
        elif kind == "ticker":
            ticker = self.parse_ticker(message["data"])
            self.tickers[ticker["symbol"]] = ticker
            client.resolve(ticker, channel)
        elif kind == "order":
            if self.orders is None:
                self.orders = ArrayCacheBySymbolById(self.safe_integer(self.options, "ordersLimit", 1000))
            self.orders.append(self.parse_order(message["data"]))
            client.resolve(self.orders, channel)
        elif kind == "fill":
            if self.myTrades is None:
                self.myTrades = ArrayCacheBySymbolById(self.safe_integer(self.options, "tradesLimit", 1000))
            self.myTrades.append(self.parse_my_trade(message["data"]))
            client.resolve(self.myTrades, channel)
        elif kind == "resync":
            # A fresh snapshot follows from the node: forget the copy.
            self._levels.pop(channel, None)
            self.resyncs[channel] = self.resyncs.get(channel, 0) + 1
        elif kind == "error":
            text = str(message.get("message"))
            # The feed's refusals have no code; those about the token are
            # the only ones that name it.
            cls = AuthenticationError if "token" in text else ExchangeError
            error = cls(f"{self.id} WebSocket {channel or ''}: {text}")
            if channel is not None:
                client.subscriptions.pop(channel, None)
                client.reject(error, channel)
            else:
                client.reject(error)
        elif kind == "subscribed":
            self.subscribed.add(channel)
        elif kind == "unsubscribed":
            self.subscribed.discard(channel)
        # "authenticated": nothing to do.

    def _book_symbol(self, channel):
        market_id = channel.split(":", 1)[1]
        return self.safe_market(market_id, None, "-")["symbol"]

    def _handle_snapshot(self, client, message):
        channel = message["channel"]
        symbol = self._book_symbol(channel)
        levels = {
            "bids": {p: q for p, q in message["bids"]},
            "asks": {p: q for p, q in message["asks"]},
            "seq": message["seq"],
        }
        self._levels[channel] = levels
        book = self.orderbooks.get(symbol)
        if book is None:
            book = self.order_book({})
            self.orderbooks[symbol] = book
        book.reset(
            {
                "bids": [[float(p), float(q)] for p, q in message["bids"]],
                "asks": [[float(p), float(q)] for p, q in message["asks"]],
                "nonce": message["seq"],
                "symbol": symbol,
            }
        )
        self._check_and_resolve(client, channel, book, message)

    def _handle_delta(self, client, message):
        channel = message["channel"]
        levels = self._levels.get(channel)
        if levels is None:
            return  # a delta before the snapshot that follows a resync
        symbol = self._book_symbol(channel)
        book = self.orderbooks[symbol]
        if message["seq"] != levels["seq"] + 1:
            self._resubscribe(
                client,
                channel,
                InvalidNonce(
                    f"{self.id} {channel}: delta {message['seq']} does not follow {levels['seq']}"
                ),
            )
            return
        levels["seq"] = message["seq"]
        for side, price, quantity in message["changes"]:
            name = "bids" if side == "buy" else "asks"
            if Decimal(quantity) == 0:
                levels[name].pop(price, None)
            else:
                levels[name][price] = quantity
            book[name].store(float(price), float(quantity))
        book["nonce"] = message["seq"]
        self._check_and_resolve(client, channel, book, message)

    def _check_and_resolve(self, client, channel, book, message):
        levels = self._levels[channel]
        mine = book_checksum(levels["bids"], levels["asks"])
        if mine != message["checksum"]:
            self._resubscribe(
                client,
                channel,
                ChecksumError(
                    f"{self.id} {channel}: the copy's checksum {mine} is not the node's "
                    f"{message['checksum']} at seq {message['seq']}"
                ),
            )
            return
        client.resolve(book, channel)

    def _resubscribe(self, client, channel, error):
        """Throw the copy away, tell the waiting caller, and ask for a fresh
        snapshot."""
        self._levels.pop(channel, None)
        self.resyncs[channel] = self.resyncs.get(channel, 0) + 1
        client.reject(error, channel)
        self.spawn(client.send, {"op": "subscribe", "channel": channel})

    def _handle_trade(self, client, message):
        channel = message["channel"]
        trade = self.parse_trade(message["data"])
        symbol = trade["symbol"]
        trades = self.trades.get(symbol) if isinstance(self.trades, dict) else None
        if trades is None:
            trades = ArrayCache(self.safe_integer(self.options, "tradesLimit", 1000))
            self.trades[symbol] = trades
        trades.append(trade)
        client.resolve(trades, channel)

    def levels(self, symbol):
        """The watched book of ``symbol`` as the node's decimal strings
        (``{"bids": {price: quantity}, "asks": ..., "seq": n}``), or None."""
        market = self.market(symbol)
        return self._levels.get("book:" + market["id"])

