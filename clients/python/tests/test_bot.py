"""The README's ten-line bot, run as it is written against a real node."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import peerbook
from conftest import eventually

README = Path(__file__).resolve().parents[1] / "README.md"
PROJECT_README = Path(__file__).resolve().parents[3] / "README.md"


def python_block(path, heading):
    section = path.read_text().split(heading, 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_project_readme_shows_the_same_bot():
    assert python_block(PROJECT_README, "## Python and CCXT") == python_block(README, "## A ten-line bot")


def bot_source(url):
    code = python_block(README, "## A ten-line bot")
    assert len(code.strip().splitlines()) == 10, "the README's bot is not ten lines"
    assert '"http://127.0.0.1:8080"' in code
    return code.replace('"http://127.0.0.1:8080"', repr(url))


def test_the_readme_bot_quotes_around_the_middle(nodes):
    a, b = nodes
    other = peerbook.Peerbook({"url": b.url})
    bid = other.create_order("BTC/USD", "limit", "buy", 0.5, 50)
    ask = other.create_order("BTC/USD", "limit", "sell", 0.5, 52)
    mine = peerbook.Peerbook({"url": a.url})
    eventually(
        "node a to see node b's quotes",
        lambda: (book := mine.fetch_order_book("BTC/USD"))
        and [50.0, 0.5] in book["bids"]
        and [52.0, 0.5] in book["asks"],
        a.output,
    )
    bot = subprocess.Popen([sys.executable, "-c", bot_source(a.url)], stderr=subprocess.PIPE, text=True)
    try:

        def quotes():
            if bot.poll() is not None:
                pytest.fail(f"the bot exited with {bot.returncode}: {bot.stderr.read()}")
            orders = mine.fetch_open_orders("BTC/USD")
            return len(orders) == 2 and orders

        first = eventually("the bot's two quotes", quotes, a.output)
        by_side = {o["side"]: o for o in first}
        # mid 51: 51 * 0.999 and 51 * 1.001 on the tick, post-only.
        assert by_side["buy"]["price"] == 50.95 and by_side["sell"]["price"] == 51.05
        assert all(o["postOnly"] and o["amount"] == 0.01 for o in first)
        # Its next round replaces them.
        ids = {o["id"] for o in first}
        again = eventually(
            "the bot's next round",
            lambda: (o := quotes()) and not ids & {x["id"] for x in o} and o,
            a.output,
        )
        assert sorted(o["price"] for o in again) == [50.95, 51.05]
        assert all(mine.fetch_order(i)["status"] == "canceled" for i in ids)
    finally:
        bot.kill()
        bot.wait()
        for o in mine.fetch_open_orders("BTC/USD"):
            mine.cancel_order(o["id"])
        for o in (bid, ask):
            other.cancel_order(o["id"])
