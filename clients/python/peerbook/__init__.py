"""peerbook for CCXT: a ccxt exchange class that trades through one
peerbook node's HTTP API.

    import peerbook
    ex = peerbook.Peerbook({"url": "http://127.0.0.1:8080", "apiKey": "<token>"})
    ex.load_markets()
    ex.create_order("BTC/USD", "limit", "buy", 0.5, 100)

``apiKey`` is the node's bearer token (leave it out when the node has
none). Symbols are ccxt's ``BTC/USD`` for the node's ``BTC-USD``. The
asyncio class with ``watch_order_book`` and ``watch_trades`` is
``peerbook.pro.Peerbook``.
"""

from __future__ import annotations

import ccxt

from ._common import DONE, LOAD_MARKETS, OPEN, PeerbookMixin, symbol_to_id

__all__ = ["Peerbook", "symbol_to_id"]
__version__ = "0.1.0"


class Peerbook(PeerbookMixin, ccxt.Exchange):
    """The blocking exchange class (``ccxt.Exchange``)."""

    def __init__(self, config={}):
        super().__init__(config)
        self._set_node_url()

    def _run(self, gen):
        """Drive one of the mixin's request generators."""
        answer = None
        try:
            while True:
                step = gen.send(answer)
                if step is LOAD_MARKETS:
                    self.load_markets()
                    answer = None
                else:
                    method, path, params = step
                    answer = self.request(path, "public", method, params)
        except StopIteration as done:
            return done.value

    def fetch_markets(self, params={}):
        return self._run(self._g_fetch_markets(params))

    def fetch_status(self, params={}):
        return self._run(self._g_fetch_status(params))

    def fetch_ticker(self, symbol, params={}):
        return self._run(self._g_fetch_ticker(symbol, params))

    def fetch_tickers(self, symbols=None, params={}):
        return self._run(self._g_fetch_tickers(symbols, params))

    def fetch_order_book(self, symbol, limit=None, params={}):
        return self._run(self._g_fetch_order_book(symbol, limit, params))

    def fetch_trades(self, symbol, since=None, limit=None, params={}):
        return self._run(self._g_fetch_trades(symbol, since, limit, params))

    def fetch_ohlcv(self, symbol, timeframe="1m", since=None, limit=None, params={}):
        return self._run(self._g_fetch_ohlcv(symbol, timeframe, since, limit, params))

    def create_order(self, symbol, type, side, amount, price=None, params={}):
        return self._run(self._g_create_order(symbol, type, side, amount, price, params))

    def cancel_order(self, id, symbol=None, params={}):
        return self._run(self._g_cancel_order(id, symbol, params))

    def fetch_order(self, id, symbol=None, params={}):
        return self._run(self._g_fetch_order(id, symbol, params))

    def fetch_orders(self, symbol=None, since=None, limit=None, params={}):
        return self._run(self._g_fetch_orders(symbol, since, limit, params))

    def fetch_open_orders(self, symbol=None, since=None, limit=None, params={}):
        return self._run(self._g_fetch_orders(symbol, since, limit, params, OPEN))

    def fetch_closed_orders(self, symbol=None, since=None, limit=None, params={}):
        """Orders that are done: filled, cancelled, expired or rejected."""
        return self._run(self._g_fetch_orders(symbol, since, limit, params, DONE))

    def fetch_canceled_orders(self, symbol=None, since=None, limit=None, params={}):
        return self._run(self._g_fetch_orders(symbol, since, limit, params, ("cancelled",)))

    def fetch_my_trades(self, symbol=None, since=None, limit=None, params={}):
        return self._run(self._g_fetch_my_trades(symbol, since, limit, params))

    def fetch_order_trades(self, id, symbol=None, since=None, limit=None, params={}):
        return self._run(self._g_fetch_order_trades(id, symbol, since, limit, params))

    def fetch_balance(self, params={}):
        self._no_funds("fetchBalance")

    def fetch_deposits(self, code=None, since=None, limit=None, params={}):
        self._no_funds("fetchDeposits")

    def fetch_withdrawals(self, code=None, since=None, limit=None, params={}):
        self._no_funds("fetchWithdrawals")

    def fetch_deposit_address(self, code, params={}):
        self._no_funds("fetchDepositAddress")

    def withdraw(self, code, amount, address, tag=None, params={}):
        self._no_funds("withdraw")

    def transfer(self, code, amount, fromAccount, toAccount, params={}):
        self._no_funds("transfer")
