"""What the blocking and the asyncio exchange classes share.

Each unified method is written once, as a generator that yields the HTTP
requests it needs (``("GET", path, query)`` or ``("POST", path, body)``) and
receives their decoded answers; ``Peerbook`` (blocking, ``ccxt.Exchange``)
and ``peerbook.pro.Peerbook`` (asyncio, ``ccxt.pro.Exchange``) each drive
these generators with their own ``request``. Parsing, signing and the
mapping of the node's errors to ccxt's exceptions live here too.

The node's API is described in the project's README ("HTTP API") and
docs/market-data.md: decimals are strings, times are milliseconds, errors
are ``{"error": {"code", "message"}}`` with an HTTP status.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from ccxt.base.decimal_to_precision import TICK_SIZE
from ccxt.base.errors import (
    ArgumentsRequired,
    AuthenticationError,
    BadRequest,
    BadSymbol,
    ExchangeError,
    ExchangeNotAvailable,
    InvalidOrder,
    NotSupported,
    OrderNotFound,
    PermissionDenied,
    RateLimitExceeded,
)

# A marker the drivers understand: "load the markets first".
LOAD_MARKETS = object()

API_PREFIX = "/api/v1/"

# The node's order statuses and ccxt's.
STATUSES = {
    "taking": "open",  # its takes are in flight: not done yet
    "open": "open",
    "filled": "closed",
    "cancelled": "canceled",
    "expired": "expired",  # the rest of an IOC/FOK/market order was dropped, or good-till-date passed
    "rejected": "rejected",  # post-only that would take, fill-or-kill the book cannot fill whole
}

# The node's statuses of orders that are not done, and of those that are.
OPEN = ("taking", "open")
DONE = ("filled", "cancelled", "expired", "rejected")

TIME_IN_FORCE = {"gtc": "GTC", "ioc": "IOC", "fok": "FOK", "post-only": "PO"}

# Most items one page of /api/v1/trades or /api/v1/orders holds.
PAGE = 10_000

NO_FUNDS = (
    "peerbook is an order book, not a custodian: a node holds no funds, "
    "so there are no balances, deposits, withdrawals or transfers (the "
    "trading parties settle between themselves)"
)


# What this class does (ccxt's `has`); the rest stays as ccxt says.
HAS = {
    "CORS": None,
    "spot": True,
    "margin": False,
    "swap": False,
    "future": False,
    "option": False,
    "cancelOrder": True,
    "createOrder": True,
    "createMarketOrder": True,
    "createLimitOrder": True,
    "createPostOnlyOrder": True,
    "fetchMarkets": True,
    "fetchCurrencies": False,
    "fetchTicker": True,
    "fetchTickers": True,
    "fetchOrderBook": True,
    "fetchTrades": True,
    "fetchOHLCV": True,
    "fetchOrder": True,
    "fetchOrders": True,
    "fetchOpenOrders": True,
    "fetchClosedOrders": True,
    "fetchCanceledOrders": True,
    "fetchMyTrades": True,
    "fetchOrderTrades": True,
    "fetchStatus": True,
    "fetchTime": False,
    "fetchBalance": False,
    "fetchDeposits": False,
    "fetchWithdrawals": False,
    "fetchDepositAddress": False,
    "fetchLedger": False,
    "withdraw": False,
    "transfer": False,
    "editOrder": False,
    "fetchTradingFee": False,
    "fetchTradingFees": False,
    "ws": True,
    "watchOrderBook": True,
    "watchTrades": True,
    "watchTicker": True,
    "watchOrders": True,
    "watchMyTrades": True,
    "watchBalance": False,
}


def symbol_to_id(symbol: str) -> str:
    """``BTC/USD`` -> ``BTC-USD`` (the node's market names)."""
    return symbol.replace("/", "-")


class PeerbookMixin:
    """Description, signing, errors, parsing, and the unified methods as
    request generators (see the module's docstring)."""

    def describe(self):
        return self.deep_extend(
            super().describe(),
            {
                "id": "peerbook",
                "name": "peerbook",
                "countries": [],
                "version": "v1",
                "rateLimit": 0,
                "pro": True,
                "precisionMode": TICK_SIZE,
                "requiredCredentials": {"apiKey": False, "secret": False},
                "urls": {
                    "api": {
                        "rest": "http://127.0.0.1:8080",
                        "ws": "ws://127.0.0.1:8080/api/v1/ws",
                    },
                    "www": None,
                    "doc": "the project's README.md (HTTP API) and docs/market-data.md",
                },
                "timeframes": {"1m": "1m", "5m": "5m", "15m": "15m", "1h": "1h", "1d": "1d"},
                "fees": {"trading": {"maker": 0.0, "taker": 0.0, "percentage": True}},
                "has": HAS,
                "options": {
                    # The node's peer id, learned from /api/v1/status: which
                    # order ids are this node's (ids are <peer id>/<seq>).
                    "peerId": None,
                    # Most items asked of the node per page of trades or
                    # orders (the node serves at most 10,000).
                    "pageSize": PAGE,
                },
            },
        )

    def _set_node_url(self):
        """``Peerbook({"url": "http://127.0.0.1:8081"})``: the node's API
        (the WebSocket address follows from it)."""
        url = getattr(self, "url", None)
        if url:
            url = url.rstrip("/")
            ws = "ws" + url[len("http"):] if url.startswith("http") else url
            self.urls["api"] = {"rest": url, "ws": ws + "/api/v1/ws"}
        if self.apiKey:
            # The WebSocket takes the token in the handshake's header.
            # (ccxt's WebSocket client takes its settings from options.ws.options.)
            ws = self.options.setdefault("ws", {}).setdefault("options", {})
            ws["headers"] = {"Authorization": "Bearer " + self.apiKey}

    # ------------------------------------------------------------ transport

    def sign(self, path, api="public", method="GET", params={}, headers=None, body=None):
        url = self.urls["api"]["rest"] + API_PREFIX + path
        headers = {}
        body = None
        if method in ("GET", "DELETE"):
            query = {k: v for k, v in params.items() if v is not None}
            if query:
                url += "?" + urlencode(query)
        else:
            body = json.dumps(params)
            headers["Content-Type"] = "application/json"
        if self.apiKey:
            headers["Authorization"] = "Bearer " + self.apiKey
        return {"url": url, "method": method, "body": body, "headers": headers}

    def handle_errors(self, code, reason, url, method, headers, body, response, request_headers, request_body):
        if code is None or code < 400:
            return None
        error = response.get("error") if isinstance(response, dict) else None
        if isinstance(error, dict):
            node_code = error.get("code", "")
            message = error.get("message", "")
        else:
            node_code = ""
            message = body or reason or ""
        feedback = f"{self.id} {method} {url}: {code} {node_code}: {message}"
        path = url.split("?", 1)[0]
        path = path[path.find(API_PREFIX) + len(API_PREFIX):] if API_PREFIX in path else path
        if code == 401:
            raise AuthenticationError(feedback)
        if code == 403:
            raise PermissionDenied(feedback)
        if code == 404:
            if node_code == "not_found" and message.startswith("no route for"):
                raise NotSupported(f"{feedback} (this node's version does not serve it)")
            if path.startswith("orders"):
                raise OrderNotFound(feedback)
            if path.startswith(("book/", "candles/", "ticker")):
                raise BadSymbol(feedback)
            raise ExchangeError(feedback)
        if code == 409 and path.startswith("orders/"):
            # Cancelling an order that is already done.
            raise OrderNotFound(feedback)
        if code == 400:
            if node_code == "unknown_market":
                raise BadSymbol(feedback)
            if path == "orders" and method == "POST":
                raise InvalidOrder(feedback)
            raise BadRequest(feedback)
        if code in (405, 413, 415):
            raise BadRequest(feedback)
        if code == 503:
            if node_code.startswith("too_many"):
                raise RateLimitExceeded(feedback)
            raise ExchangeNotAvailable(feedback)
        raise ExchangeError(feedback)

    # ------------------------------------------------------------ parsing

    def parse_market(self, m):
        market_id = m["name"]
        base, _, quote = market_id.partition("-")
        tick = self.safe_number(m, "tick")
        lot = self.safe_number(m, "lot")
        return self.safe_market_structure(
            {
                "id": market_id,
                "symbol": base + "/" + quote,
                "base": base,
                "quote": quote,
                "baseId": base,
                "quoteId": quote,
                "settle": None,
                "settleId": None,
                "type": "spot",
                "spot": True,
                "margin": False,
                "swap": False,
                "future": False,
                "option": False,
                "contract": False,
                "active": m.get("status") == "open",
                "linear": None,
                "inverse": None,
                "contractSize": None,
                "expiry": None,
                "expiryDatetime": None,
                "strike": None,
                "optionType": None,
                "taker": 0.0,
                "maker": 0.0,
                "precision": {"price": tick, "amount": lot},
                "limits": {
                    "amount": {"min": self.safe_number(m, "min_size"), "max": None},
                    "price": {"min": tick, "max": None},
                    "cost": {"min": None, "max": None},
                    "leverage": {"min": None, "max": None},
                },
                "created": None,
                "info": m,
            }
        )

    def parse_ticker(self, t, market=None):
        market = self.safe_market(t.get("market"), market, "-")
        ts = self.safe_integer(t, "ts_ms")
        last = self.safe_string(t, "last")
        return self.safe_ticker(
            {
                "symbol": market["symbol"],
                "timestamp": ts,
                "datetime": self.iso8601(ts),
                "high": self.safe_string(t, "high_24h"),
                "low": self.safe_string(t, "low_24h"),
                "bid": self.safe_string(t, "bid"),
                "bidVolume": None,
                "ask": self.safe_string(t, "ask"),
                "askVolume": None,
                "vwap": None,
                "open": self.safe_string(t, "open_24h"),
                "close": last,
                "last": last,
                "previousClose": None,
                "change": self.safe_string(t, "change_24h"),
                "percentage": self.safe_string(t, "change_pct_24h"),
                "average": None,
                "baseVolume": self.safe_string(t, "volume_24h"),
                "quoteVolume": None,
                "info": t,
            },
            market,
        )

    def _own(self, order_id):
        peer = self.options.get("peerId")
        return peer is not None and isinstance(order_id, str) and order_id.split("/", 1)[0] == peer

    def parse_trade(self, t, market=None):
        """A trade as everyone sees it (/api/v1/trades): ``side`` is the
        taker's."""
        return self._parse_trade(t, market, mine=False)

    def parse_my_trade(self, t, market=None):
        """A trade of this node's (a fill of one of its orders): ``order``,
        ``side`` and ``takerOrMaker`` are this node's."""
        return self._parse_trade(t, market, mine=True)

    def _parse_trade(self, t, market, mine):
        market = self.safe_market(t.get("market"), market, "-")
        ts = self.safe_integer(t, "ts_ms")
        side = t.get("side")
        order = None
        role = None
        if mine and self._own(t.get("taker_order_id")):
            order, role = t["taker_order_id"], "taker"
        elif mine and self._own(t.get("maker_order_id")):
            order, role = t["maker_order_id"], "maker"
            side = "sell" if side == "buy" else "buy"
        return self.safe_trade(
            {
                "id": t.get("id"),
                "order": order,
                "timestamp": ts,
                "datetime": self.iso8601(ts),
                "symbol": market["symbol"],
                "type": None,
                "side": side,
                "takerOrMaker": role,
                "price": self.safe_string(t, "price"),
                "amount": self.safe_string(t, "quantity"),
                "cost": None,
                "fee": None,
                "info": t,
            },
            market,
        )

    def parse_order(self, o, market=None):
        market = self.safe_market(o.get("market"), market, "-")
        tif = o.get("time_in_force")
        fills = o.get("fills") or []
        trades = [self.parse_my_trade(f, market) for f in fills]
        created = self.safe_integer(o, "created_ms")
        return self.safe_order(
            {
                "id": o.get("id"),
                "clientOrderId": o.get("client_id"),
                "timestamp": created,
                "datetime": self.iso8601(created),
                "lastTradeTimestamp": trades[-1]["timestamp"] if trades else None,
                "lastUpdateTimestamp": self.safe_integer(o, "updated_ms"),
                "status": STATUSES.get(o.get("status"), o.get("status")),
                "symbol": market["symbol"],
                "type": o.get("type"),
                "timeInForce": TIME_IN_FORCE.get(tif, tif),
                "postOnly": tif == "post-only",
                "reduceOnly": None,
                "side": o.get("side"),
                "price": self.safe_string(o, "price"),
                "triggerPrice": None,
                "amount": self.safe_string(o, "quantity"),
                "filled": self.safe_string(o, "filled"),
                "remaining": self.safe_string(o, "remaining"),
                "cost": None,
                "average": None,
                "trades": trades,
                "fee": None,
                "info": o,
            },
            market,
        )

    def parse_ohlcv(self, c, market=None):
        return [
            self.safe_integer(c, "t"),
            self.safe_number(c, "open"),
            self.safe_number(c, "high"),
            self.safe_number(c, "low"),
            self.safe_number(c, "close"),
            self.safe_number(c, "volume"),
        ]

    # ------------------------------------------------------------ unified methods as generators

    def _g_fetch_markets(self, params):
        markets = yield ("GET", "markets", params)
        return [self.parse_market(m) for m in markets]

    def _g_fetch_status(self, params):
        s = yield ("GET", "status", params)
        self.options["peerId"] = s.get("peer_id")
        return {
            "status": "ok",
            "updated": None,
            "eta": None,
            "url": None,
            "info": s,
        }

    def _g_peer_id(self):
        if self.options.get("peerId") is None:
            s = yield ("GET", "status", {})
            self.options["peerId"] = s["peer_id"]
        return self.options["peerId"]

    def _g_fetch_ticker(self, symbol, params):
        yield LOAD_MARKETS
        market = self.market(symbol)
        t = yield ("GET", "ticker", self.extend({"market": market["id"]}, params))
        return self.parse_ticker(t, market)

    def _g_fetch_tickers(self, symbols, params):
        yield LOAD_MARKETS
        tickers = yield ("GET", "ticker", params)
        result = {}
        for t in tickers:
            ticker = self.parse_ticker(t)
            result[ticker["symbol"]] = ticker
        return self.filter_by_array_tickers(result, "symbol", symbols)

    def _g_fetch_order_book(self, symbol, limit, params):
        yield LOAD_MARKETS
        market = self.market(symbol)
        query = {"depth": limit} if limit is not None else {}
        book = yield ("GET", "book/" + market["id"], self.extend(query, params))
        result = self.parse_order_book(book, market["symbol"])
        result["info"] = book
        return result

    def _g_walk_trades(self, market, since, limit, params, mine_only):
        """Trades of /api/v1/trades (all of them, or only this node's: a
        fill of one of its orders), oldest first, as ccxt means ``since``
        and ``limit``: without ``since`` the newest ``limit``; with it the
        first ``limit`` at or after it. The node answers newest first, so
        this walks back in pages (``before``) until it has ``limit`` of
        them, or, with ``since``, reaches it."""
        peer = (yield from self._g_peer_id()) if mine_only else None
        found = {}
        seen = set()
        before = None
        # Only the newest `limit` of everyone's: one page of that size does.
        page_size = self.options.get("pageSize", PAGE)
        size = min(limit, page_size) if (since is None and limit is not None and not mine_only) else page_size
        while True:
            query = {"market": market["id"] if market else None, "limit": size, "before": before}
            if since is not None and since > 0:
                query["after"] = since - 1  # the node's `after` is strict
            page = yield ("GET", "trades", self.extend(query, params))
            fresh = [t for t in page if t["id"] not in seen]
            for t in fresh:
                seen.add(t["id"])
                owners = (t["maker_order_id"].split("/", 1)[0], t["taker_order_id"].split("/", 1)[0])
                if not mine_only or peer in owners:
                    found[t["id"]] = t
            if len(page) < size or not fresh:
                break
            if since is None and limit is not None and len(found) >= limit:
                break
            # Trades of the oldest millisecond may go on past the page: ask
            # again up to and including it (the ids already seen are skipped).
            before = min(t["ts_ms"] for t in page) + 1
        if not mine_only:
            return self.parse_trades(list(found.values()), market, since, limit)
        trades = self.sort_by([self.parse_my_trade(t, market) for t in found.values()], "timestamp")
        symbol = market["symbol"] if market else None
        return self.filter_by_symbol_since_limit(trades, symbol, since, limit, since is None)

    def _g_fetch_trades(self, symbol, since, limit, params):
        yield LOAD_MARKETS
        market = self.market(symbol)
        if limit is None and since is None:
            limit = 100
        return (yield from self._g_walk_trades(market, since, limit, params, False))

    def _g_fetch_my_trades(self, symbol, since, limit, params):
        yield LOAD_MARKETS
        market = self.market(symbol) if symbol is not None else None
        return (yield from self._g_walk_trades(market, since, limit, params, True))

    def _g_create_order(self, symbol, type, side, amount, price, params):
        yield LOAD_MARKETS
        market = self.market(symbol)
        if type not in ("limit", "market"):
            raise InvalidOrder(f"{self.id} createOrder() type must be 'limit' or 'market', not {type!r}")
        if side not in ("buy", "sell"):
            raise InvalidOrder(f"{self.id} createOrder() side must be 'buy' or 'sell', not {side!r}")
        params = dict(params)
        body = {
            "market": market["id"],
            "side": side,
            "type": type,
            "quantity": self.amount_to_precision(symbol, amount),
        }
        if type == "limit":
            if price is None:
                raise ArgumentsRequired(f"{self.id} createOrder() needs a price for a limit order")
            body["price"] = self.price_to_precision(symbol, price)
        tif = params.pop("timeInForce", None)
        post_only = params.pop("postOnly", False)
        if post_only or tif == "PO":
            if type != "limit":
                raise InvalidOrder(f"{self.id} createOrder() post-only needs a limit order")
            tif = "post-only"
        elif tif is not None:
            names = {v: k for k, v in TIME_IN_FORCE.items()}
            if tif not in names:
                raise InvalidOrder(
                    f"{self.id} createOrder() timeInForce must be one of GTC, IOC, FOK, PO, not {tif!r}"
                )
            tif = names[tif]
        if tif is not None:
            body["time_in_force"] = tif
        client_id = params.pop("clientOrderId", None)
        if client_id is not None:
            body["client_id"] = client_id
        expires = params.pop("expiresAt", None)
        if expires is not None:
            body["expires_at"] = expires
        body.update(params)
        yield from self._g_peer_id()
        order = yield ("POST", "orders", body)
        return self.parse_order(order, market)

    def _g_cancel_order(self, id, symbol, params):
        yield LOAD_MARKETS
        yield from self._g_peer_id()
        order = yield ("DELETE", "orders/" + id, params)
        return self.parse_order(order)

    def _g_fetch_order(self, id, symbol, params):
        yield LOAD_MARKETS
        yield from self._g_peer_id()
        order = yield ("GET", "orders/" + id, params)
        return self.parse_order(order)

    def _g_fetch_orders(self, symbol, since, limit, params, statuses=None):
        """This node's orders, oldest first, created at or after ``since``:
        all of them, or those of the node's ``statuses`` (each asked of the
        node, so an open-orders call reads only open orders)."""
        yield LOAD_MARKETS
        market = self.market(symbol) if symbol is not None else None
        yield from self._g_peer_id()
        found = {}
        size = self.options.get("pageSize", PAGE)
        for status in statuses or (None,):
            before = None
            while True:
                query = {
                    "market": market["id"] if market else None,
                    "status": status,
                    "limit": size,
                    "before": before,
                }
                page = yield ("GET", "orders", self.extend(query, params))
                for o in page:
                    found[o["id"]] = self.parse_order(o)
                if len(page) < size or (since is not None and page[-1]["created_ms"] < since):
                    break
                before = page[-1]["id"]
        orders = self.sort_by(list(found.values()), "timestamp")
        symbol = market["symbol"] if market else None
        return self.filter_by_symbol_since_limit(orders, symbol, since, limit, since is None)

    def _g_fetch_order_trades(self, id, symbol, since, limit, params):
        order = yield from self._g_fetch_order(id, symbol, params)
        return self.filter_by_since_limit(order["trades"], since, limit)

    def _g_fetch_ohlcv(self, symbol, timeframe, since, limit, params):
        yield LOAD_MARKETS
        market = self.market(symbol)
        if timeframe not in self.timeframes:
            raise BadRequest(
                f"{self.id} fetchOHLCV() timeframe must be one of {', '.join(self.timeframes)}, not {timeframe!r}"
            )
        query = {"interval": self.timeframes[timeframe], "limit": limit}
        if since is not None:
            query["start"] = since
            if limit is not None:
                query["end"] = since + limit * self.parse_timeframe(timeframe) * 1000
        answer = yield ("GET", "candles/" + market["id"], self.extend(query, params))
        return self.parse_ohlcvs(answer["candles"], market, timeframe, since, limit)

    # ------------------------------------------------------------ what does not apply

    def _no_funds(self, method):
        raise NotSupported(f"{self.id} {method}() does not apply: {NO_FUNDS}")
