// The live page: revenue and orders per minute from the hot tier's SSE
// stream (after one read of the last 30 minutes), and the lake's and
// ingest's state from GET /v1/status every 2 s. Plain script, no
// dependencies; every request goes to this origin with the session cookie.
"use strict";

const WINDOW_MIN = 30;          // minutes on the chart
const STATUS_EVERY_MS = 2000;   // GET /v1/status
const POLL_REVENUE_MS = 5000;   // when the process has no hot tier (no SSE)
const MIN_MS = 60000;

const minutes = new Map();      // "2026-12-01T20:13:00Z" -> {revenue: "12.50", orders: 3}
let touchedBySSE = null;        // minutes an SSE update set while a read was in flight

const $ = (id) => document.getElementById(id);
const nf0 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const nf1 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
const nf2 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

function minuteKey(ms) { return new Date(Math.floor(ms / MIN_MS) * MIN_MS).toISOString().replace(".000Z", "Z"); }
function hhmm(ms) { return new Date(ms).toISOString().slice(11, 16); }

// An answer that is not 2xx: a 401 means the session ended, and reloading
// shows the login hint.
async function getJSON(url) {
  const r = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (r.status === 401) { location.reload(); throw new Error("logged out"); }
  if (!r.ok) throw new Error(url + ": HTTP " + r.status);
  return r.json();
}

// ---- revenue: one read, then live updates ----

async function loadRevenue() {
  const now = Date.now();
  const from = minuteKey(now - (WINDOW_MIN - 1) * MIN_MS);
  const to = minuteKey(now + 2 * MIN_MS);
  touchedBySSE = new Set();
  try {
    const res = await getJSON("/v1/metrics/order_revenue_minute?from=" + from + "&to=" + to);
    for (const row of res.rows) {
      if (!touchedBySSE.has(row.minute)) minutes.set(row.minute, { revenue: row.revenue, orders: row.order_count });
    }
  } catch (e) {
    // Not ready yet (503 while the hot tier loads): try again shortly.
    setTimeout(loadRevenue, 2000);
  } finally {
    touchedBySSE = null;
  }
  draw();
}

function showStream(kind, text) {
  const el = $("stream-state");
  el.className = "pill pill-" + kind;
  el.textContent = text;
}

function connectStream() {
  const es = new EventSource("/v1/stream/order_revenue_minute");
  es.addEventListener("open", () => { showStream("ok", "● live"); });
  es.addEventListener("minute", (ev) => {
    const u = JSON.parse(ev.data);
    minutes.set(u.minute, { revenue: u.revenue, orders: u.order_count });
    if (touchedBySSE) touchedBySSE.add(u.minute);
    draw();
  });
  es.addEventListener("reset", () => { loadRevenue(); });
  es.addEventListener("error", () => {
    showStream("wait", "reconnecting…");
    if (es.readyState === EventSource.CLOSED) {
      // The browser gave up (the process restarted, the session ended):
      // read the figures again and open a new stream.
      setTimeout(() => { loadRevenue(); connectStream(); }, 2000);
    }
  });
}

// ---- the chart (SVG) ----

const SVG = "http://www.w3.org/2000/svg";
function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}

// niceMax rounds up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function compact(v) {
  if (v >= 1e9) return nf1.format(v / 1e9) + "G";
  if (v >= 1e6) return nf1.format(v / 1e6) + "M";
  if (v >= 1e3) return nf1.format(v / 1e3) + "k";
  return nf1.format(v);
}

let drawPending = false;
function draw() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => { drawPending = false; render(); });
}

function render() {
  const now = Date.now();
  const cur = minuteKey(now);
  const c = minutes.get(cur);
  const rev = $("cur-revenue");
  rev.dataset.minute = cur;
  rev.textContent = c ? nf2.format(Number(c.revenue)) : "0.00";
  rev.dataset.revenue = c ? c.revenue : "0.00";
  $("cur-orders").textContent = c ? nf0.format(c.orders) : "0";
  $("cur-minute-label").textContent = "amount, minute " + hhmm(now) + " UTC";

  const svg = $("chart");
  const W = 1000, H = 300, L = 70, R = 62, T = 14, B = 44;
  const pw = W - L - R, ph = H - T - B;
  svg.replaceChildren();
  const first = Math.floor(now / MIN_MS) - (WINDOW_MIN - 1);
  const slots = [];
  let maxRev = 0, maxOrd = 0;
  for (let i = 0; i < WINDOW_MIN; i++) {
    const ms = (first + i) * MIN_MS;
    const m = minutes.get(minuteKey(ms));
    const r = m ? Number(m.revenue) : 0, o = m ? m.orders : 0;
    slots.push({ ms, r, o, has: !!m });
    maxRev = Math.max(maxRev, r); maxOrd = Math.max(maxOrd, o);
  }
  const yr = niceMax(maxRev), yo = niceMax(maxOrd);
  const slot = pw / WINDOW_MIN;
  const grid = el("g", { class: "grid" }), axis = el("g", { class: "axis" });
  for (let i = 0; i <= 4; i++) {
    const y = T + ph - (ph * i) / 4;
    grid.appendChild(el("line", { x1: L, x2: L + pw, y1: y, y2: y }));
    axis.appendChild(el("text", { x: L - 8, y: y + 4, "text-anchor": "end" }, compact((yr * i) / 4)));
    axis.appendChild(el("text", { x: L + pw + 8, y: y + 4, "text-anchor": "start" }, compact((yo * i) / 4)));
  }
  slots.forEach((s, i) => {
    if ((first + i) % 5 === 0) {
      axis.appendChild(el("text", { x: L + slot * i + slot / 2, y: T + ph + 18, "text-anchor": "middle" }, hhmm(s.ms)));
    }
  });
  axis.appendChild(el("text", { class: "axis-title", x: 14, y: T + ph / 2, transform: "rotate(-90 14 " + (T + ph / 2) + ")", "text-anchor": "middle" }, "revenue (amount / min)"));
  axis.appendChild(el("text", { class: "axis-title", x: W - 10, y: T + ph / 2, transform: "rotate(90 " + (W - 10) + " " + (T + ph / 2) + ")", "text-anchor": "middle" }, "orders / min"));
  axis.appendChild(el("text", { class: "axis-title", x: L + pw / 2, y: H - 6, "text-anchor": "middle" }, "event time, minute (UTC)"));
  svg.appendChild(grid);
  svg.appendChild(axis);

  const bars = el("g", {});
  const pts = el("g", {});
  let path = "";
  slots.forEach((s, i) => {
    const x = L + slot * i;
    if (s.has) {
      const h = (ph * s.r) / yr;
      const b = el("rect", { class: "bar" + (i === WINDOW_MIN - 1 ? " now" : ""), x: x + 2, y: T + ph - h, width: Math.max(1, slot - 4), height: h });
      b.appendChild(el("title", {}, hhmm(s.ms) + " UTC: revenue " + nf2.format(s.r) + ", " + nf0.format(s.o) + " orders"));
      bars.appendChild(b);
      const cx = x + slot / 2, cy = T + ph - (ph * s.o) / yo;
      path += (path ? " L " : "M ") + cx.toFixed(1) + " " + cy.toFixed(1);
      pts.appendChild(el("circle", { class: "pt", cx, cy, r: 3 }));
    }
  });
  svg.appendChild(bars);
  if (path) svg.appendChild(el("path", { class: "line", id: "orders-line", d: path }));
  svg.appendChild(pts);
  if (!path) svg.appendChild(el("text", { class: "empty", x: L + pw / 2, y: T + ph / 2, "text-anchor": "middle" }, "no orders in the last " + WINDOW_MIN + " minutes yet"));
}

// ---- status ----

function na(v, fmt) { return v === null || v === undefined ? "n/a" : fmt(v); }
function secs(v) { return v < 10 ? nf1.format(v) + " s" : v < 3600 ? nf0.format(v) + " s" : nf1.format(v / 3600) + " h"; }
function ago(v) { return v === null || v === undefined ? "never" : secs(v) + " ago"; }
function td(text, cls, title) {
  const e = document.createElement("td");
  e.textContent = text;
  if (cls) e.className = cls;
  if (title) e.title = title;
  return e;
}
function li(left, right, dot, why) {
  const e = document.createElement("li");
  const a = document.createElement("span");
  if (dot) { const d = document.createElement("span"); d.className = "dot " + dot; a.appendChild(d); }
  a.appendChild(document.createTextNode(left));
  if (why) { const w = document.createElement("div"); w.className = "why"; w.textContent = why; a.appendChild(w); }
  const b = document.createElement("span");
  b.className = "mono";
  b.textContent = right;
  e.append(a, b);
  return e;
}
function emptyItem(text) { const e = document.createElement("li"); e.className = "muted"; e.textContent = text; return e; }

function renderStatus(s) {
  $("server-time").textContent = s.time.slice(11, 19) + " UTC";
  const ing = s.ingest;
  $("ingest-rate").textContent = na(ing.records_per_second, nf1.format);
  $("lag").textContent = na(ing.lag_records, nf0.format) + " rec";
  $("lag-note").textContent = "oldest waiting " + na(ing.lag_seconds, secs);
  let p95 = null;
  for (const t of s.tables) if (t.freshness_seconds && t.kind === "raw") p95 = Math.max(p95 ?? 0, t.freshness_seconds.p95);
  $("freshness").textContent = na(p95, secs);
  $("dlq-total").textContent = na(s.dlq.total, nf0.format);

  const ready = s.readiness;
  const rs = $("ready-state");
  if (!ready) { rs.className = "pill pill-wait"; rs.textContent = "no checks"; }
  else if (ready.status === "ready") { rs.className = "pill pill-ok"; rs.textContent = "ready"; }
  else { rs.className = "pill pill-bad"; rs.textContent = "not ready"; }
  const rl = $("readiness");
  rl.replaceChildren(...(ready && ready.components.length ? ready.components.map((c) => li(c.component, c.ready ? "ready" : "not ready", c.ready ? "ok" : "bad", c.reason)) : [emptyItem("no component checks in this process")]));

  const body = document.querySelector("#tables tbody");
  body.replaceChildren(...s.tables.map((t) => {
    const tr = document.createElement("tr");
    const kind = document.createElement("td");
    const k = document.createElement("span"); k.className = "kind"; k.textContent = t.kind.replace("_", " "); kind.appendChild(k);
    const snap = t.snapshot_id ? "…" + t.snapshot_id.slice(-8) : "none";
    const fresh = t.freshness_seconds ? secs(t.freshness_seconds.p50) + " / " + secs(t.freshness_seconds.p95) : "n/a";
    tr.append(td(t.name, "name", t.refused || t.topic || ""), kind, td(snap, "mono", t.snapshot_id || "no snapshot yet"),
      td(nf0.format(t.data_files), "num"), td(nf0.format(t.rows), "num"), td(na(t.rows_per_second, nf1.format), "num"),
      td(fresh, "num"), td(ago(t.last_commit_age_seconds), "num", t.last_commit || ""));
    return tr;
  }));

  const tb = document.querySelector("#topics tbody");
  tb.replaceChildren(...s.topics.map((t) => {
    const tr = document.createElement("tr");
    tr.append(td(t.topic, "name"), td(na(t.records_per_second, nf1.format), "num"), td(na(t.lag_records, nf0.format), "num"), td(na(t.lag_seconds, secs), "num"));
    return tr;
  }));
  if (!s.topics.length) { const tr = document.createElement("tr"); tr.append(td("n/a: no ingest in this process", "muted")); tb.appendChild(tr); }

  const reasons = s.dlq.by_reason ? Object.entries(s.dlq.by_reason).sort((a, b) => b[1] - a[1]) : null;
  $("dlq").replaceChildren(...(reasons === null ? [emptyItem("n/a: no ingest in this process")] : reasons.length ? reasons.map(([r, n]) => li(r, nf0.format(n), "bad")) : [emptyItem("none")]));
  $("models").replaceChildren(...(s.read_models.length ? s.read_models.map((m) => li(m.name, m.state, m.state === "serving" ? "ok" : m.state === "empty" ? "wait" : "bad", m.reason)) : [emptyItem("none")]));
  $("gen").textContent = "generation " + s.generation;
  $("refreshed").textContent = "updated " + s.time.slice(11, 19) + " UTC";
}

async function pollStatus() {
  try {
    renderStatus(await getJSON("/v1/status"));
  } catch (e) {
    const rs = $("ready-state");
    rs.className = "pill pill-bad";
    rs.textContent = "status unavailable";
  }
  setTimeout(pollStatus, STATUS_EVERY_MS);
}

if (document.body.dataset.stream) {
  connectStream();
} else {
  // A query process without the hot tier: the lake's figures, read again
  // every few seconds.
  showStream("wait", "polling the lake");
  setInterval(loadRevenue, POLL_REVENUE_MS);
}
loadRevenue();
pollStatus();
setInterval(draw, 1000); // the current minute moves on even without updates
