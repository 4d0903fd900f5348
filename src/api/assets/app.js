// peerbook's web page: loads the node's state over the JSON API, then
// keeps it live from the event stream (/api/v1/events).
//
// The stream is read with fetch() rather than EventSource, because
// EventSource cannot send an Authorization header and the node may require
// a bearer token; the token (typed in the page, kept in localStorage) goes
// in the header on every request, the stream included. Reconnects send
// Last-Event-ID so the node replays what was missed; a `reset` event (or
// the first `hello`) reloads everything. Everything from the node is put
// in the page as text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "peerbook.token";
const MARKET_KEY = "peerbook.market";
const BOOK_DEPTH = 15;
const CHART_DEPTH = 50;
const TRADES_SHOWN = 40;

const state = {
  token: localStorage.getItem(TOKEN_KEY) || "",
  market: localStorage.getItem(MARKET_KEY) || "",
  markets: [], // [{name, tick, lot}]
  side: "buy",
  lastId: null, // the last event id seen (for Last-Event-ID)
  loaded: false,
  orders: new Map(), // own orders of the chosen market, by id
  trades: [],
  stream: null, // AbortController of the open stream
};

// ---------------------------------------------------------------- helpers

/** An element with attributes and children (strings become text). */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/** Decimal places of a step such as "0.01". */
function places(step) {
  const s = String(step || "");
  const i = s.indexOf(".");
  return i < 0 ? 0 : s.replace(/0+$/, "").length - i - 1;
}

/** A decimal string padded to `n` places (never rounded: values are on the grid). */
function pad(value, n) {
  const s = String(value);
  if (n <= 0) return s;
  const [whole, frac = ""] = s.split(".");
  return frac.length >= n ? s : whole + "." + frac.padEnd(n, "0");
}

function spec() {
  return state.markets.find((m) => m.name === state.market) || { tick: "0.01", lot: "0.0001" };
}
const price = (v) => pad(v, places(spec().tick));
const qty = (v) => pad(v, places(spec().lot));
const shortId = (id) => {
  const [owner, seq] = String(id).split("/");
  return seq === undefined ? owner : "…" + owner.slice(-6) + "/" + seq;
};
const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });

/** Coalesce calls: at most one run in flight and one queued. */
function coalesce(fn) {
  let running = false;
  let again = false;
  return async function run() {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await fn();
      } while (again);
    } catch (e) {
      console.warn(e);
    } finally {
      running = false;
    }
  };
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra) {
  const h = Object.assign({ Accept: "application/json" }, extra || {});
  if (state.token) h.Authorization = "Bearer " + state.token;
  return h;
}

/** Call the JSON API; throws an ApiError with the node's code and message. */
async function api(method, path, body) {
  const init = { method, headers: headers(), cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "unreachable", "cannot reach the node: " + e.message);
  }
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch (_) {
    /* not JSON */
  }
  if (!res.ok) {
    const err = (json && json.error) || {};
    if (res.status === 401) locked();
    throw new ApiError(res.status, err.code || "http_" + res.status, err.message || text || res.statusText);
  }
  return json;
}

// ---------------------------------------------------------------- loading

async function loadStatus() {
  const s = await api("GET", "/api/v1/status");
  $("node").textContent = "node …" + s.peer_id.slice(-8);
  $("node").title = s.peer_id;
  showPeerCount(s.peer_count);
  showDegraded(s.degraded);
  state.markets = s.books.map((b) => ({ name: b.name, tick: b.tick, lot: b.lot }));
  if (!state.markets.some((m) => m.name === state.market)) {
    state.market = state.markets.length ? state.markets[0].name : "";
  }
  const select = $("market");
  select.replaceChildren(...state.markets.map((m) => el("option", { value: m.name }, m.name)));
  select.value = state.market;
  $("price").placeholder = price("0");
  $("quantity").placeholder = qty("0");
}

const refreshBook = coalesce(async () => {
  if (!state.market) return;
  const market = state.market;
  const b = await api("GET", `/api/v1/book/${encodeURIComponent(market)}?depth=${CHART_DEPTH}`);
  if (market === state.market) renderBook(b);
});

const refreshOrders = coalesce(async () => {
  if (!state.market) return;
  const market = state.market;
  const list = await api("GET", `/api/v1/orders?market=${encodeURIComponent(market)}&limit=200`);
  if (market !== state.market) return;
  state.orders = new Map(list.map((o) => [o.id, o]));
  renderOrders();
});

const refreshTrades = coalesce(async () => {
  if (!state.market) return;
  const market = state.market;
  const list = await api("GET", `/api/v1/trades?market=${encodeURIComponent(market)}&limit=${TRADES_SHOWN}`);
  if (market !== state.market) return;
  state.trades = list;
  renderTrades();
});

const refreshPeers = coalesce(async () => {
  const peers = await api("GET", "/api/v1/peers");
  renderPeers(peers);
});

/** Everything, from scratch (first load, a `reset`, another market or token). */
async function loadAll() {
  try {
    await loadStatus();
    await Promise.all([refreshBook(), refreshOrders(), refreshTrades(), refreshPeers()]);
    state.loaded = true;
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) console.warn("loading failed", e);
  }
}

// ---------------------------------------------------------------- rendering

function renderBook(b) {
  // Quantity at each price whose owners this node cannot reach now.
  const unreachable = (kind) =>
    new Map(((b.unreachable || {})[kind === "ask" ? "asks" : "bids"] || []).map(([p, q]) => [Number(p), q]));
  const levels = (rows, kind) => {
    const cut = unreachable(kind);
    const shown = rows.slice(0, BOOK_DEPTH);
    let total = 0;
    const totals = shown.map(([, q]) => (total += Number(q)));
    const max = totals.length ? totals[totals.length - 1] : 0;
    return shown.map(([p, q], i) =>
      el(
        "tr",
        {
          class: cut.has(Number(p)) ? "level unreachable" : "level",
          "data-price": p,
          "data-side": kind,
          style: `--fill:${max ? ((100 * totals[i]) / max).toFixed(1) : 0}%`,
          title: cut.has(Number(p))
            ? `${qty(cut.get(Number(p)))} of it from owners this node cannot reach: not takeable for now`
            : "click: use this price",
          onclick: () => {
            $("price").value = p;
            $("price").focus();
          },
        },
        el("td", { class: "num" }, price(p)),
        el("td", { class: "num" }, qty(q)),
        el("td", { class: "num muted" }, qty(String(+totals[i].toFixed(12)))),
      ),
    );
  };
  // Asks from the highest down to the best, so the spread sits in the middle.
  $("book-asks").replaceChildren(...levels(b.asks, "ask").reverse());
  $("book-bids").replaceChildren(...levels(b.bids, "bid"));
  const bestAsk = b.asks.length ? Number(b.asks[0][0]) : null;
  const bestBid = b.bids.length ? Number(b.bids[0][0]) : null;
  $("spread").textContent =
    bestAsk !== null && bestBid !== null
      ? `spread ${price(String(+(bestAsk - bestBid).toFixed(places(spec().tick))))}` +
        `  ·  mid ${price(String(+((bestAsk + bestBid) / 2).toFixed(places(spec().tick) + 1)))}`
      : b.asks.length || b.bids.length
        ? "one-sided book"
        : "empty book";
  $("book-meta").textContent = `${b.orders} order${b.orders === 1 ? "" : "s"}`;
  $("digest").textContent = "digest " + b.digest;
  renderDepth(b);
}

/** The depth chart: cumulative quantity by price, bids left, asks right. */
function renderDepth(b) {
  const svg = $("depth");
  const W = 400;
  const H = 140;
  const cum = (rows) => {
    let t = 0;
    return rows.map(([p, q]) => [Number(p), (t += Number(q))]);
  };
  const bids = cum(b.bids);
  const asks = cum(b.asks);
  const ns = "http://www.w3.org/2000/svg";
  const node = (tag, attrs) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  };
  if (!bids.length && !asks.length) {
    svg.replaceChildren();
    return;
  }
  // The price range: around the mid, as far as the nearer side's deepest
  // level, so both sides share one scale and one far-off order cannot
  // squash the chart (levels beyond the range are clipped at its edge).
  let lo;
  let hi;
  if (bids.length && asks.length) {
    const mid = (bids[0][0] + asks[0][0]) / 2;
    const reach = Math.min(mid - bids[bids.length - 1][0], asks[asks.length - 1][0] - mid);
    const half = Math.max(reach, (asks[0][0] - bids[0][0]) / 2) * 1.05;
    lo = mid - half;
    hi = mid + half;
  } else {
    const prices = bids.map((p) => p[0]).concat(asks.map((p) => p[0]));
    lo = Math.min(...prices);
    hi = Math.max(...prices);
  }
  if (!(hi > lo)) {
    lo -= 1;
    hi += 1;
  }
  const inRange = (pts) => pts.filter(([p]) => p >= lo && p <= hi);
  const shownBids = inRange(bids);
  const shownAsks = inRange(asks);
  const deepest = (pts) => (pts.length ? pts[pts.length - 1][1] : 0);
  const top = Math.max(deepest(shownBids), deepest(shownAsks)) * 1.1 || 1;
  const x = (p) => ((p - lo) / (hi - lo)) * W;
  const y = (q) => H - (q / top) * H;
  // Steps outward from the best price, closed down to the axis.
  const area = (pts, outward) => {
    if (!pts.length) return "";
    let d = `M${x(pts[0][0])},${H}`;
    let prev = 0;
    for (const [p, q] of pts) {
      d += ` L${x(p)},${y(prev)} L${x(p)},${y(q)}`;
      prev = q;
    }
    d += ` L${outward},${y(prev)} L${outward},${H} Z`;
    return d;
  };
  const children = [];
  if (shownBids.length) children.push(node("path", { class: "bid", d: area(shownBids, 0) }));
  if (shownAsks.length) children.push(node("path", { class: "ask", d: area(shownAsks, W) }));
  if (bids.length && asks.length) {
    const mid = x((bids[0][0] + asks[0][0]) / 2);
    children.push(node("line", { class: "mid", x1: mid, x2: mid, y1: 0, y2: H }));
  }
  svg.replaceChildren(...children);
}

function renderOrders() {
  const open = [...state.orders.values()]
    .filter((o) => o.status === "open" || o.status === "taking")
    .sort((a, b) => b.created_ms - a.created_ms);
  $("orders").replaceChildren(
    ...open.map((o) =>
      el(
        "tr",
        { "data-id": o.id, title: o.id },
        el("td", { class: "side-" + o.side }, o.side),
        el("td", { class: "num" }, o.price === null || o.price === undefined ? "market" : price(o.price)),
        el("td", { class: "num" }, qty(o.quantity)),
        el("td", { class: "num" }, qty(o.filled)),
        el("td", {}, o.status),
        el(
          "td",
          {},
          el("button", { type: "button", class: "cancel", "data-id": o.id, onclick: (ev) => cancelOrder(o.id, ev.target) }, "cancel"),
        ),
      ),
    ),
  );
  $("orders-count").textContent = open.length ? `(${open.length})` : "";
  $("orders-empty").hidden = open.length > 0;
}

function renderTrades() {
  $("trades").replaceChildren(
    ...state.trades.map((t) =>
      el(
        "tr",
        { "data-id": t.id, title: t.id },
        el("td", { class: "muted" }, clock(t.ts_ms)),
        el("td", { class: "num " + t.side }, price(t.price)),
        el("td", { class: "num" }, qty(t.quantity)),
        el("td", { class: t.side }, t.side),
      ),
    ),
  );
  $("trades-empty").hidden = state.trades.length > 0;
}

function renderPeers(peers) {
  const connected = peers.filter((p) => p.connected);
  $("peers").replaceChildren(
    ...connected.map((p) =>
      el(
        "li",
        { "data-peer": p.peer_id },
        p.peer_id,
        p.addresses.length ? el("span", { class: "addr" }, p.addresses.join("  ")) : null,
      ),
    ),
  );
  $("peers-empty").hidden = connected.length > 0;
  showPeerCount(connected.length);
}

function showPeerCount(n) {
  $("peer-count").textContent = `${n} peer${n === 1 ? "" : "s"}`;
}

function showDegraded(why) {
  $("degraded").hidden = !why;
  $("degraded").textContent = why ? "This node refuses new orders: " + why : "";
}

function setConn(s, text) {
  $("conn").dataset.state = s;
  $("conn").textContent = text || s;
}

function locked() {
  setConn("locked", "token needed");
  $("token-form").hidden = false;
  $("token-note").textContent = state.token
    ? "The node refused this token. Enter the right one."
    : "This node needs its API token (PEERBOOK_API_TOKEN).";
  $("token").focus();
}

// ---------------------------------------------------------------- actions

function setSide(side) {
  state.side = side;
  for (const b of document.querySelectorAll(".side")) {
    b.setAttribute("aria-pressed", String(b.dataset.side === side));
  }
  const place = $("place");
  place.classList.toggle("buy", side === "buy");
  place.classList.toggle("sell", side === "sell");
  place.textContent = `Place ${side} order`;
}

function showFormError(message, field) {
  $("order-ok").hidden = true;
  $("order-error").textContent = message;
  $("order-error").hidden = false;
  for (const f of ["price", "quantity"]) {
    $(f).setAttribute("aria-invalid", String(field === f));
  }
}

async function placeOrder(ev) {
  ev.preventDefault();
  const kind = $("type").value;
  const body = {
    market: state.market,
    side: state.side,
    type: kind,
    quantity: $("quantity").value.trim(),
  };
  if (kind === "limit") body.price = $("price").value.trim();
  if ($("tif").value) body.time_in_force = $("tif").value;
  const button = $("place");
  button.disabled = true;
  try {
    const o = await api("POST", "/api/v1/orders", body);
    state.orders.set(o.id, o);
    renderOrders();
    $("order-error").hidden = true;
    for (const f of ["price", "quantity"]) $(f).setAttribute("aria-invalid", "false");
    const filled = Number(o.filled) > 0 ? `, filled ${qty(o.filled)}` : "";
    $("order-ok").textContent = `${o.side} ${qty(o.quantity)} @ ${o.price ? price(o.price) : "market"}: ${o.status}${filled} (${shortId(o.id)})${o.reason ? " — " + o.reason : ""}`;
    $("order-ok").hidden = false;
  } catch (e) {
    const msg = e.message || String(e);
    const field = /price/i.test(msg) ? "price" : /quantity/i.test(msg) ? "quantity" : null;
    showFormError(msg, field);
  } finally {
    button.disabled = false;
  }
}

async function cancelOrder(id, button) {
  button.disabled = true;
  try {
    const o = await api("DELETE", "/api/v1/orders/" + id.split("/").map(encodeURIComponent).join("/"));
    state.orders.set(o.id, o);
    renderOrders();
  } catch (e) {
    button.disabled = false;
    showFormError(`cannot cancel ${shortId(id)}: ${e.message}`);
    if (e.status === 409 || e.status === 404) refreshOrders();
  }
}

// ---------------------------------------------------------------- events

function onEvent(type, data, id) {
  if (id) state.lastId = id;
  let d = null;
  try {
    d = data ? JSON.parse(data) : null;
  } catch (_) {
    return;
  }
  switch (type) {
    case "hello":
      if (!state.loaded) loadAll();
      break;
    case "reset":
      loadAll();
      break;
    case "order":
    case "cancel":
      if (d.market === state.market) {
        state.orders.set(d.id, d);
        renderOrders();
      }
      break;
    case "fill":
      if (d.market === state.market && !state.trades.some((t) => t.id === d.id)) {
        state.trades = [d, ...state.trades].sort((a, b) => b.ts_ms - a.ts_ms).slice(0, TRADES_SHOWN);
        renderTrades();
      }
      break;
    case "book":
      if (d.market === state.market) refreshBook();
      break;
    case "peer":
      refreshPeers();
      break;
    case "status":
      showPeerCount(d.peer_count);
      showDegraded(d.degraded);
      break;
  }
}

/** Parse a text/event-stream body, calling onEvent per event. */
async function readStream(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let type = "message";
  let data = [];
  let id = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, "");
      buf = buf.slice(nl + 1);
      if (line === "") {
        if (data.length || type !== "message") onEvent(type, data.join("\n"), id);
        type = "message";
        data = [];
        id = null;
        continue;
      }
      if (line.startsWith(":")) continue; // keep-alive comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? "" : line.slice(colon + 1);
      if (val.startsWith(" ")) val = val.slice(1);
      if (field === "event") type = val;
      else if (field === "data") data.push(val);
      else if (field === "id") id = val;
    }
  }
}

/** Keep one event stream open, reconnecting with backoff. */
async function streamForever() {
  let delay = 500;
  for (;;) {
    const ctrl = new AbortController();
    state.stream = ctrl;
    try {
      const extra = { Accept: "text/event-stream" };
      if (state.lastId) extra["Last-Event-ID"] = state.lastId;
      const res = await fetch("/api/v1/events", { headers: headers(extra), signal: ctrl.signal, cache: "no-store" });
      if (res.status === 401) {
        locked();
        await new Promise((resolve) => ctrl.signal.addEventListener("abort", resolve));
        continue;
      }
      if (!res.ok) throw new Error("HTTP " + res.status);
      setConn("live");
      delay = 500;
      await readStream(res.body);
    } catch (e) {
      if (ctrl.signal.aborted) continue; // restarted on purpose (new token)
    }
    setConn("reconnecting", "reconnecting…");
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10000);
  }
}

// ---------------------------------------------------------------- start

function start() {
  for (const b of document.querySelectorAll(".side")) {
    b.addEventListener("click", () => setSide(b.dataset.side));
  }
  $("type").addEventListener("change", () => {
    $("price").disabled = $("type").value === "market";
  });
  $("order-form").addEventListener("submit", placeOrder);
  $("market").addEventListener("change", () => {
    state.market = $("market").value;
    localStorage.setItem(MARKET_KEY, state.market);
    state.orders = new Map();
    state.trades = [];
    $("order-error").hidden = true;
    $("order-ok").hidden = true;
    loadAll();
  });
  $("token").value = state.token;
  $("token-toggle").addEventListener("click", () => {
    $("token-form").hidden = !$("token-form").hidden;
  });
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = $("token").value.trim();
    if (state.token) localStorage.setItem(TOKEN_KEY, state.token);
    else localStorage.removeItem(TOKEN_KEY);
    $("token-form").hidden = true;
    state.loaded = false;
    setConn("connecting", "connecting…");
    if (state.stream) state.stream.abort();
    loadAll();
  });
  setSide("buy");
  streamForever();
}

start();
