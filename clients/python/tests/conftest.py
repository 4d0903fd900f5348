"""Real peerbook nodes on loopback for the client's tests.

``PEERBOOK_BIN`` names the binary (scripts/test sets it to
target/debug/peerbook); each node gets its own data directory and free
ports, and is killed when the test session ends, also when a test fails.
Nothing waits a fixed time: every wait polls a condition with a generous
deadline (the machine may be busy) and a timeout fails with the node's
output.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

DEADLINE = 90.0
POLL = 0.15

ROOT = Path(__file__).resolve().parents[3]


def binary() -> str:
    path = os.environ.get("PEERBOOK_BIN") or str(ROOT / "target" / "debug" / "peerbook")
    if not os.path.isabs(path):
        path = str(ROOT / path)
    if not os.access(path, os.X_OK):
        pytest.fail(f"no peerbook binary at {path}: build it (cargo build) or set PEERBOOK_BIN")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eventually(what, check, context=lambda: ""):
    """Poll ``check`` until it returns something truthy; fail after the
    deadline saying what was awaited."""
    started = time.monotonic()
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() - started > DEADLINE:
            pytest.fail(f"timed out waiting for {what}\n{context()}")
        time.sleep(POLL)


class Node:
    """A running ``peerbook node``."""

    def __init__(self, name, data_dir: Path, bootstrap=None, token=None, env=None, ports=None):
        self.name = name
        self.p2p_port, self.api_port = ports or (free_port(), free_port())
        self.token = token
        self.log_path = data_dir.parent / f"{name}.log"
        extra_env = env
        env = {k: v for k, v in os.environ.items() if not k.startswith("PEERBOOK_")}
        env["RUST_LOG"] = "info"
        if token:
            env["PEERBOOK_API_TOKEN"] = token
        env.update(extra_env or {})
        args = [
            binary(),
            "node",
            "--data-dir",
            str(data_dir),
            "--listen",
            f"/ip4/127.0.0.1/tcp/{self.p2p_port}",
            "--api",
            f"127.0.0.1:{self.api_port}",
            "--no-mdns",
        ]
        if bootstrap:
            args += ["--bootstrap", bootstrap]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def addr(self) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.p2p_port}"

    def output(self) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace")
        return f"--- {self.name} ---\n{text[-6000:]}"

    def get(self, path):
        """GET a route of the node's API: its decoded JSON, or None when it
        does not answer 200."""
        req = urllib.request.Request(self.url + path)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def ready(self):
        if self.proc.poll() is not None:
            pytest.fail(f"{self.name} exited with {self.proc.returncode}\n{self.output()}")
        status = eventually(
            f"{self.name} to be up",
            lambda: (s := self.get("/api/v1/status")) and s.get("listen_addrs") and s,
            self.output,
        )
        self.peer_id = status["peer_id"]
        return status

    def connected_to(self, peer_id):
        eventually(
            f"{self.name} to be connected to {peer_id}",
            lambda: any(p["peer_id"] == peer_id and p["connected"] for p in (self.get("/api/v1/peers") or [])),
            self.output,
        )

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture(scope="session")
def nodes(tmp_path_factory):
    """Two nodes, B bootstrapped to A, connected and with each other's
    markets synced."""
    base = tmp_path_factory.mktemp("nodes")
    started = []
    try:
        a = Node("a", base / "a")
        started.append(a)
        a.ready()
        b = Node("b", base / "b", bootstrap=a.addr)
        started.append(b)
        b.ready()
        a.connected_to(b.peer_id)
        b.connected_to(a.peer_id)
        yield a, b
    finally:
        for n in started:
            n.stop()


@pytest.fixture(scope="session")
def token_node(tmp_path_factory):
    """A node that requires a bearer token."""
    base = tmp_path_factory.mktemp("token")
    node = Node("t", base / "t", token="s3cret-token-for-tests")
    try:
        node.ready()
        yield node
    finally:
        node.stop()


@pytest.fixture(autouse=True)
def clean_books(request):
    """After each test on the two nodes: cancel what either left open and
    wait until both books are empty, so no test trades with another's
    leftovers."""
    yield
    if "nodes" not in request.fixturenames:
        return
    for node in request.getfixturevalue("nodes"):
        for order in node.get("/api/v1/orders?status=open") or []:
            req = urllib.request.Request(node.url + "/api/v1/orders/" + order["id"], method="DELETE")
            try:
                urllib.request.urlopen(req, timeout=10).close()
            except urllib.error.HTTPError as e:
                if e.code != 409:  # filled or cancelled meanwhile
                    raise
    for node in request.getfixturevalue("nodes"):
        for market in ("BTC-USD", "ETH-USD"):
            eventually(
                f"{node.name}'s {market} book to be empty",
                lambda: (book := node.get(f"/api/v1/book/{market}")) is not None
                and not book["bids"]
                and not book["asks"],
                node.output,
            )
