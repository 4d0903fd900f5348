"""``has`` tells the truth: every method it claims is this class's own, and
every one it denies raises NotSupported (no node needed)."""

from __future__ import annotations

import asyncio
import re

import ccxt
import ccxt.async_support
import pytest

import peerbook
import peerbook.pro
from peerbook._common import HAS


def snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower().replace("o_h_l_c_v", "ohlcv")


def methods(has):
    for key, value in has.items():
        name = snake(key)
        if name.startswith(("fetch_", "create_", "cancel_", "watch_", "withdraw", "transfer", "edit_")):
            yield key, name, value


@pytest.mark.parametrize("cls, base", [(peerbook.Peerbook, ccxt.Exchange), (peerbook.pro.Peerbook, ccxt.async_support.Exchange)])
def test_has_matches_the_methods(cls, base):
    ex = cls()
    # What this class claims (ccxt emulates more on top, e.g. fetchL2OrderBook).
    claimed = [
        (k, n)
        for k, n, v in methods(HAS)
        if v is True and not k.startswith(("createMarket", "createLimit", "createPostOnly"))
    ]
    assert all(ex.has[k] is True for k, _ in claimed)
    assert claimed
    for key, name in claimed:
        if name.startswith("watch_") and cls is peerbook.Peerbook:
            continue  # the WebSocket is the asyncio class's
        assert getattr(cls, name) is not getattr(base, name, None), f"has[{key!r}] but {name} is ccxt's"
        assert getattr(ex, key), key  # ccxt's camelCase alias
    if cls is peerbook.Peerbook:
        return
    for key in ("fetchBalance", "fetchDeposits", "fetchWithdrawals", "fetchDepositAddress", "withdraw", "transfer"):
        assert ex.has[key] is False
    calls = {
        "fetch_balance": (),
        "fetch_deposits": (),
        "fetch_withdrawals": (),
        "fetch_deposit_address": ("USD",),
        "withdraw": ("USD", 1, "somewhere"),
        "transfer": ("USD", 1, "a", "b"),
    }

    async def go():
        try:
            for name, args in calls.items():
                with pytest.raises(ccxt.NotSupported, match="holds no funds"):
                    await getattr(ex, name)(*args)
        finally:
            await ex.close()

    asyncio.run(go())


def test_symbols_map_to_market_names():
    assert peerbook.symbol_to_id("BTC/USD") == "BTC-USD"
