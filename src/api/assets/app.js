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
//
// Market data: the tickers (last price, 24 h change, high, low, volume)
// from /api/v1/ticker, candles from /api/v1/candles/{market} drawn on a
// canvas, both refreshed when a trade comes. The charts say what they drew
// in data- attributes (candles, labels), which the browser tests read.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "peerbook.token";
const MARKET_KEY = "peerbook.market";
const BOOK_DEPTH = 15;
const CHART_DEPTH = 50;
const TRADES_SHOWN = 40;
const CANDLES_SHOWN = 60;
const INTERVALS = { "1m": 60000, "5m": 300000, "1h": 3600000 };
const MINE_SHOWN = 30;

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
  me: "", // this node's peer id
  interval: "1m",
  candles: [],
  book: null, // the last book shown
  depth: null, // the depth chart's scale, for the hover readout
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
const two = (n) => String(n).padStart(2, "0");
const ymd = (d) => `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`;
/** A time as the lists show it: the time of day, with the date before it
 *  when it is not today. */
function timeText(ms) {
  const d = new Date(ms);
  const t = d.toLocaleTimeString([], { hour12: false });
  return ymd(d) === ymd(new Date()) ? t : `${ymd(d)} ${t}`;
}
const clock = timeText;

/** About `n` round values between lo and hi, for axis labels. */
function niceTicks(lo, hi, n) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) || 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(12));
  return out;
}
const axisPrice = (v) => Number(v).toFixed(places(spec().tick));
const axisQty = (v) => (v >= 1000 ? (v / 1000).toFixed(1) + "k" : String(+Number(v).toPrecision(3)));

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
  state.me = s.peer_id;
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

const refreshTickers = coalesce(async () => {
  const list = await api("GET", "/api/v1/ticker");
  renderTickers(Array.isArray(list) ? list : [list]);
});

const refreshCandles = coalesce(async () => {
  if (!state.market) return;
  const market = state.market;
  const interval = state.interval;
  const r = await api(
    "GET",
    `/api/v1/candles/${encodeURIComponent(market)}?interval=${interval}&limit=${CANDLES_SHOWN}`,
  );
  if (market !== state.market || interval !== state.interval) return;
  state.candles = r.candles || [];
  renderCandles();
});

const refreshPeers = coalesce(async () => {
  const peers = await api("GET", "/api/v1/peers");
  renderPeers(peers);
});

/** Everything, from scratch (first load, a `reset`, another market or token). */
async function loadAll() {
  try {
    await loadStatus();
    await Promise.all([
      refreshBook(),
      refreshOrders(),
      refreshTrades(),
      refreshPeers(),
      refreshTickers(),
      refreshCandles(),
    ]);
    state.loaded = true;
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) console.warn("loading failed", e);
  }
}

// ---------------------------------------------------------------- rendering

function renderBook(b) {
  state.book = b;
  // Quantity at each price whose owners this node cannot reach now.
  const unreachable = (kind) =>
    new Map(((b.unreachable || {})[kind === "ask" ? "asks" : "bids"] || []).map(([p, q]) => [Number(p), q]));
  const at = (rows, p) => {
    const hit = (rows || []).find(([lp]) => lp === p);
    return hit ? hit[1] : null;
  };
  const levels = (rows, kind, own, stale) => {
    const cut = unreachable(kind);
    const shown = rows.slice(0, BOOK_DEPTH);
    let total = 0;
    const totals = shown.map(([, q]) => (total += Number(q)));
    const max = totals.length ? totals[totals.length - 1] : 0;
    return shown.map(([p, q], i) => {
      const mine = at(own, p);
      const old = at(stale, p);
      const notes = [];
      if (mine !== null) notes.push(`mine ${qty(mine)}`);
      if (old !== null) notes.push(`stale ${qty(old)}`);
      const title = [
        "click: use this price",
        mine !== null ? `${qty(mine)} of it is this node's` : null,
        old !== null ? `${qty(old)} of it is of owners not heard from lately: shown, not taken` : null,
      ]
        .filter(Boolean)
        .join("\n");
      return el(
        "tr",
        {
          class:
            "level" +
            (mine !== null ? " own" : "") +
            (old !== null ? " stale" : "") +
            (cut.has(Number(p)) ? " unreachable" : ""),
          "data-price": p,
          "data-side": kind,
          style: `--fill:${max ? ((100 * totals[i]) / max).toFixed(1) : 0}%`,
          title: cut.has(Number(p))
            ? `${title}\n${qty(cut.get(Number(p)))} of it from owners this node cannot reach: not takeable for now`
            : title,
          onclick: () => {
            $("price").value = p;
            $("price").focus();
          },
        },
        el("td", { class: "num" }, price(p)),
        el("td", { class: "num" }, qty(q)),
        el("td", { class: "num muted" }, qty(String(+totals[i].toFixed(12)))),
        el("td", { class: "note small" }, notes.join(" · ")),
      );
    });
  };
  // Asks from the highest down to the best, so the spread sits in the middle.
  $("book-asks").replaceChildren(...levels(b.asks, "ask", b.own_asks, b.stale_asks).reverse());
  $("book-bids").replaceChildren(...levels(b.bids, "bid", b.own_bids, b.stale_bids));
  const stale = b.stale_orders || 0;
  $("stale-note").hidden = stale === 0;
  $("stale-note").textContent = stale
    ? `${stale} order${stale === 1 ? "" : "s"} of owners not heard from lately (stale): shown dimmed, not taken until they are heard again.`
    : "";
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

/** The depth chart: cumulative quantity by price, bids left, asks right,
 *  with a price axis below, a quantity axis on the left, and a readout of
 *  the depth at the pointer. Drawn in the SVG's own pixels, so labels keep
 *  their shape. */
function renderDepth(b) {
  const svg = $("depth");
  const W = Math.max(200, Math.round(svg.getBoundingClientRect().width) || 400);
  const H = 170;
  const M = { left: 44, right: 8, top: 8, bottom: 20 };
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("height", H);
  const cum = (rows) => {
    let t = 0;
    return rows.map(([p, q]) => [Number(p), (t += Number(q))]);
  };
  const bids = cum(b.bids);
  const asks = cum(b.asks);
  const ns = "http://www.w3.org/2000/svg";
  const node = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  if (!bids.length && !asks.length) {
    state.depth = null;
    svg.replaceChildren(node("text", { class: "empty", x: W / 2, y: H / 2, "text-anchor": "middle" }, "no orders"));
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
  const x0 = M.left;
  const x1 = W - M.right;
  const y0 = H - M.bottom;
  const x = (p) => x0 + ((p - lo) / (hi - lo)) * (x1 - x0);
  const y = (q) => y0 - (q / top) * (y0 - M.top);
  // Steps outward from the best price, closed down to the axis.
  const area = (pts, outward) => {
    if (!pts.length) return "";
    let d = `M${x(pts[0][0])},${y0}`;
    let prev = 0;
    for (const [p, q] of pts) {
      d += ` L${x(p)},${y(prev)} L${x(p)},${y(q)}`;
      prev = q;
    }
    d += ` L${outward},${y(prev)} L${outward},${y0} Z`;
    return d;
  };
  const children = [];
  const xs = niceTicks(lo, hi, Math.max(3, Math.floor((x1 - x0) / 45)));
  const ys = niceTicks(0, top, 3).filter((q) => q > 0);
  for (const q of ys) {
    children.push(node("line", { class: "grid", x1: x0, x2: x1, y1: y(q), y2: y(q) }));
    children.push(node("text", { class: "axis-label y", x: x0 - 4, y: y(q) + 4, "text-anchor": "end" }, axisQty(q)));
  }
  // Labels keep clear of the edges, where they would be cut.
  for (const p of xs.filter((v) => x(v) >= x0 + 16 && x(v) <= x1 - 16)) {
    children.push(node("line", { class: "tick", x1: x(p), x2: x(p), y1: y0, y2: y0 + 4 }));
    children.push(node("text", { class: "axis-label x", x: x(p), y: H - 4, "text-anchor": "middle" }, axisPrice(p)));
  }
  children.push(node("line", { class: "axis", x1: x0, x2: x1, y1: y0, y2: y0 }));
  children.push(node("line", { class: "axis", x1: x0, x2: x0, y1: M.top, y2: y0 }));
  if (shownBids.length) children.push(node("path", { class: "bid", d: area(shownBids, x0) }));
  if (shownAsks.length) children.push(node("path", { class: "ask", d: area(shownAsks, x1) }));
  if (bids.length && asks.length) {
    const mid = x((bids[0][0] + asks[0][0]) / 2);
    children.push(node("line", { class: "mid", x1: mid, x2: mid, y1: M.top, y2: y0 }));
  }
  children.push(node("line", { id: "depth-hover", class: "hover", x1: 0, x2: 0, y1: M.top, y2: y0, visibility: "hidden" }));
  svg.replaceChildren(...children);
  state.depth = { lo, hi, x0, x1, bids, asks };
}

/** The depth at the pointer: what could be bought up to that price, or
 *  sold down to it. */
function depthHover(ev) {
  const d = state.depth;
  const out = $("depth-readout");
  const line = $("depth-hover");
  if (!d || !line) return;
  const svg = $("depth");
  const r = svg.getBoundingClientRect();
  const vb = svg.viewBox.baseVal;
  const px = ((ev.clientX - r.left) / r.width) * (vb && vb.width ? vb.width : r.width);
  if (px < d.x0 || px > d.x1) {
    depthLeave();
    return;
  }
  const p = d.lo + ((px - d.x0) / (d.x1 - d.x0)) * (d.hi - d.lo);
  line.setAttribute("x1", px);
  line.setAttribute("x2", px);
  line.setAttribute("visibility", "visible");
  const bestBid = d.bids.length ? d.bids[0][0] : -Infinity;
  const bestAsk = d.asks.length ? d.asks[0][0] : Infinity;
  const levels = (n) => `${n} level${n === 1 ? "" : "s"}`;
  let text;
  if (p <= bestBid) {
    const hit = d.bids.filter(([lp]) => lp >= p);
    const q = hit.length ? hit[hit.length - 1][1] : 0;
    text = `price ${axisPrice(p)} · bids at or above: ${qty(String(+q.toFixed(12)))} (${levels(hit.length)})`;
  } else if (p >= bestAsk) {
    const hit = d.asks.filter(([lp]) => lp <= p);
    const q = hit.length ? hit[hit.length - 1][1] : 0;
    text = `price ${axisPrice(p)} · asks at or below: ${qty(String(+q.toFixed(12)))} (${levels(hit.length)})`;
  } else {
    text = `price ${axisPrice(p)} · inside the spread`;
  }
  out.textContent = text;
  out.hidden = false;
}

function depthLeave() {
  $("depth-readout").hidden = true;
  const line = $("depth-hover");
  if (line) line.setAttribute("visibility", "hidden");
}

/** The candle chart on its canvas: the last CANDLES_SHOWN intervals up to
 *  now, prices on the right, times below, volume at the foot. */
function renderCandles() {
  const canvas = $("candles");
  const ms = INTERVALS[state.interval];
  const cssW = Math.max(200, Math.round(canvas.getBoundingClientRect().width) || 600);
  const cssH = 220;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(cssW * ratio);
  canvas.height = Math.round(cssH * ratio);
  canvas.style.height = cssH + "px";
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, cssW, cssH);
  const css = getComputedStyle(document.documentElement);
  const color = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  const M = { left: 6, right: 62, top: 8, bottom: 20 };
  const end = Math.floor(Date.now() / ms) * ms;
  const start = end - (CANDLES_SHOWN - 1) * ms;
  const shown = state.candles.filter((c) => c.t >= start && c.t <= end);
  canvas.dataset.interval = state.interval;
  canvas.dataset.candles = String(shown.length);
  $("candles-empty").hidden = shown.length > 0;
  const last = shown.length ? shown[shown.length - 1] : null;
  $("chart-meta").textContent = last ? `last ${price(last.close)} · ${state.interval} candles` : `${state.interval} candles`;
  const x0 = M.left;
  const x1 = cssW - M.right;
  const y0 = cssH - M.bottom;
  const slot = (x1 - x0) / CANDLES_SHOWN;
  const xOf = (t) => x0 + ((t - start) / ms + 0.5) * slot;
  // Time labels: a few round slots.
  g.font = "11px ui-monospace, Menlo, Consolas, monospace";
  g.fillStyle = color("--muted", "#7d8a9c");
  g.strokeStyle = color("--line", "#253040");
  g.lineWidth = 1;
  const timeLabels = [];
  const every = Math.ceil(CANDLES_SHOWN / Math.max(2, Math.floor((x1 - x0) / 80)));
  for (let i = Math.floor(every / 2); i < CANDLES_SHOWN; i += every) {
    const t = start + i * ms;
    const d = new Date(t);
    const label = ms >= 3600000 && d.getHours() === 0 ? ymd(d) : `${two(d.getHours())}:${two(d.getMinutes())}`;
    g.textAlign = "center";
    g.fillText(label, xOf(t), cssH - 5);
    timeLabels.push(label);
  }
  canvas.dataset.timeLabels = timeLabels.join(",");
  g.beginPath();
  g.moveTo(x0, y0 + 0.5);
  g.lineTo(x1, y0 + 0.5);
  g.stroke();
  if (!shown.length) {
    canvas.dataset.priceLabels = "";
    state.candleScale = null;
    return;
  }
  let lo = Math.min(...shown.map((c) => Number(c.low)));
  let hi = Math.max(...shown.map((c) => Number(c.high)));
  if (!(hi > lo)) {
    const pad = Math.max(Number(spec().tick) * 5, Math.abs(hi) * 0.001);
    lo -= pad;
    hi += pad;
  }
  const padY = (hi - lo) * 0.08;
  lo -= padY;
  hi += padY;
  const volTop = Math.max(...shown.map((c) => Number(c.volume))) || 1;
  const volH = (y0 - M.top) * 0.18;
  const priceBottom = y0 - volH - 4;
  const yOf = (p) => priceBottom - ((p - lo) / (hi - lo)) * (priceBottom - M.top);
  const priceLabels = [];
  g.textAlign = "left";
  for (const p of niceTicks(lo, hi, 4)) {
    const yy = Math.round(yOf(p)) + 0.5;
    if (yy < M.top || yy > priceBottom) continue;
    g.strokeStyle = "rgba(255,255,255,.06)";
    g.beginPath();
    g.moveTo(x0, yy);
    g.lineTo(x1, yy);
    g.stroke();
    const label = axisPrice(p);
    g.fillText(label, x1 + 6, yy + 4);
    priceLabels.push(label);
  }
  canvas.dataset.priceLabels = priceLabels.join(",");
  const buy = color("--buy", "#2fbf71");
  const sell = color("--sell", "#ef5b5b");
  const w = Math.max(1, Math.min(12, slot * 0.7));
  for (const c of shown) {
    const up = Number(c.close) >= Number(c.open);
    const cx = Math.round(xOf(c.t)) + 0.5;
    g.strokeStyle = g.fillStyle = up ? buy : sell;
    g.beginPath();
    g.moveTo(cx, yOf(Number(c.high)));
    g.lineTo(cx, yOf(Number(c.low)));
    g.stroke();
    const top = yOf(Math.max(Number(c.open), Number(c.close)));
    const bottom = yOf(Math.min(Number(c.open), Number(c.close)));
    g.fillRect(cx - w / 2, top, w, Math.max(1, bottom - top));
    g.globalAlpha = 0.35;
    const vh = (Number(c.volume) / volTop) * volH;
    g.fillRect(cx - w / 2, y0 - vh, w, vh);
    g.globalAlpha = 1;
  }
  // The last price, marked on the axis.
  const ly = Math.round(yOf(Number(last.close))) + 0.5;
  g.fillStyle = Number(last.close) >= Number(last.open) ? buy : sell;
  g.fillRect(x1 + 2, ly - 8, M.right - 2, 16);
  g.fillStyle = "#0f1419";
  g.fillText(price(last.close), x1 + 6, ly + 4);
  state.candleScale = { start, ms, x0, slot, shown };
}

/** The candle under the pointer, in words. */
function candleHover(ev) {
  const s = state.candleScale;
  const out = $("candle-readout");
  if (!s) return;
  const r = $("candles").getBoundingClientRect();
  const i = Math.floor((ev.clientX - r.left - s.x0) / s.slot);
  const t = s.start + i * s.ms;
  const c = s.shown.find((k) => k.t === t);
  if (!c) {
    out.hidden = true;
    return;
  }
  out.textContent =
    `${timeText(c.t)} · O ${price(c.open)} H ${price(c.high)} L ${price(c.low)} C ${price(c.close)}` +
    ` · vol ${qty(c.volume)} · ${c.trades} trade${c.trades === 1 ? "" : "s"}`;
  out.hidden = false;
}

/** The tickers bar: per market, last price, 24 h change, high, low, volume. */
function renderTickers(list) {
  const none = (v) => v === null || v === undefined;
  $("tickers").replaceChildren(
    ...list.map((t) => {
      const m = state.markets.find((x) => x.name === t.market) || spec();
      const p = (v) => (none(v) ? "—" : pad(v, places(m.tick)));
      const pct = t.change_pct_24h;
      const dir = none(pct) ? "flat" : Number(pct) > 0 ? "up" : Number(pct) < 0 ? "down" : "flat";
      const signed = (v) => (none(v) ? "—" : (Number(v) > 0 ? "+" : "") + v);
      return el(
        "button",
        {
          type: "button",
          class: "ticker" + (t.market === state.market ? " current" : ""),
          "data-market": t.market,
          title: `${t.market}: the last trade and the 24 h figures of the trades this node knows`,
          onclick: () => chooseMarket(t.market),
        },
        el("span", { class: "name" }, t.market),
        el("span", { class: "last mono" }, p(t.last)),
        el("span", { class: "change mono " + dir }, none(pct) ? "—" : `${signed(t.change_24h)} (${signed(pct)}%)`),
        el("span", { class: "stat" }, "H ", el("span", { class: "high mono" }, p(t.high_24h))),
        el("span", { class: "stat" }, "L ", el("span", { class: "low mono" }, p(t.low_24h))),
        el("span", { class: "stat" }, "24h vol ", el("span", { class: "volume mono" }, none(t.volume_24h) ? "—" : t.volume_24h)),
      );
    }),
  );
}

/** This node's fills (from its orders, each with its role) and its done
 *  orders, newest first. */
function renderMine() {
  const orders = [...state.orders.values()];
  const fills = [];
  const seen = new Set();
  for (const o of orders) {
    for (const f of o.fills || []) {
      const role = f.maker_order_id === o.id ? "maker" : f.taker_order_id === o.id ? "taker" : null;
      if (!role || seen.has(f.id + role)) continue;
      seen.add(f.id + role);
      // The taker's side is the trade's; the maker was on the other side.
      const side = role === "taker" ? f.side : f.side === "buy" ? "sell" : "buy";
      fills.push({ f, role, side });
    }
  }
  fills.sort((a, b) => b.f.ts_ms - a.f.ts_ms);
  $("fills").replaceChildren(
    ...fills.slice(0, MINE_SHOWN).map(({ f, role, side }) =>
      el(
        "tr",
        { "data-id": f.id, "data-role": role, title: f.id },
        el("td", { class: "muted" }, timeText(f.ts_ms)),
        el("td", { class: "side-" + side }, side),
        el("td", { class: "num" }, price(f.price)),
        el("td", { class: "num" }, qty(f.quantity)),
        el("td", {}, role),
      ),
    ),
  );
  $("fills-count").textContent = fills.length ? `(${fills.length})` : "";
  $("fills-empty").hidden = fills.length > 0;
  const done = orders
    .filter((o) => !(o.status === "open" || o.status === "taking"))
    .sort((a, b) => b.updated_ms - a.updated_ms);
  $("done").replaceChildren(
    ...done.slice(0, MINE_SHOWN).map((o) =>
      el(
        "tr",
        { "data-id": o.id, title: o.reason ? `${o.id}: ${o.reason}` : o.id },
        el("td", { class: "muted" }, timeText(o.updated_ms)),
        el("td", { class: "side-" + o.side }, o.side),
        el("td", { class: "num" }, o.price === null || o.price === undefined ? "market" : price(o.price)),
        el("td", { class: "num" }, qty(o.quantity)),
        el("td", { class: "num" }, qty(o.filled)),
        el("td", {}, o.status),
      ),
    ),
  );
  $("done-count").textContent = done.length ? `(${done.length})` : "";
  $("done-empty").hidden = done.length > 0;
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
        el(
          "td",
          o.expires_at ? { title: `good till ${new Date(o.expires_at).toLocaleString()}` } : {},
          o.expires_at ? `${o.status} · till ${clock(o.expires_at)}` : o.status,
        ),
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
  renderMine();
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
  if ($("expires").value) body.expires_at = Date.now() + Number($("expires").value);
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
      refreshTickers();
      if (d.market === state.market) refreshCandles();
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
      // An owner gone stale or back: its orders' marks in the book change.
      if (d && (d.change === "stale" || d.change === "active")) refreshBook();
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

/** Show another market (the select, or a ticker clicked). */
function chooseMarket(name) {
  state.market = name;
  $("market").value = name;
  localStorage.setItem(MARKET_KEY, state.market);
  state.orders = new Map();
  state.trades = [];
  state.candles = [];
  $("order-error").hidden = true;
  $("order-ok").hidden = true;
  loadAll();
}

function start() {
  for (const b of document.querySelectorAll(".side")) {
    b.addEventListener("click", () => setSide(b.dataset.side));
  }
  $("type").addEventListener("change", () => {
    $("price").disabled = $("type").value === "market";
  });
  $("order-form").addEventListener("submit", placeOrder);
  $("market").addEventListener("change", () => chooseMarket($("market").value));
  for (const b of document.querySelectorAll(".interval")) {
    b.addEventListener("click", () => {
      state.interval = b.dataset.interval;
      for (const o of document.querySelectorAll(".interval")) {
        o.setAttribute("aria-pressed", String(o === b));
      }
      state.candles = [];
      renderCandles();
      refreshCandles();
    });
  }
  $("depth").addEventListener("mousemove", depthHover);
  $("depth").addEventListener("mouseleave", depthLeave);
  $("candles").addEventListener("mousemove", candleHover);
  $("candles").addEventListener("mouseleave", () => {
    $("candle-readout").hidden = true;
  });
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => {
      if (state.book) renderDepth(state.book);
      renderCandles();
    }, 100);
  });
  // Candles move on with the clock even without trades.
  setInterval(() => {
    if (state.loaded) refreshCandles();
  }, 15000);
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
