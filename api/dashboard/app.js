"use strict";
// The operator dashboard. Everything the server sends is put into the page with textContent and
// DOM calls (never innerHTML), so a payload or an error message cannot add markup; the page's
// policy allows no inline script. Charts are SVG drawn here: nothing is loaded from elsewhere.
const API = "/api/offline";
const SVG = "http://www.w3.org/2000/svg";
const STATUSES = ["pending", "in_progress", "completed", "failed", "conflict"];
const $ = (id) => document.getElementById(id);
let key = sessionStorage.getItem("offlineq_key") || "";
let cursors = [null], page = 0, selected = null, pollTimer = null, refreshTimer = null;
// The detail panel shows the newest view asked for: each showDetail takes a number, and one
// that a newer call overtook renders nothing. opening: the operation a click asked for, until
// it is shown (the list's refreshes show that one, not the one it replaces).
let detailSeq = 0, opening = null;
let listSeq = 0; // the same for the operations list: a slower answer to an older filter is dropped

function banner(text) { const b = $("banner"); b.textContent = text || ""; b.style.display = text ? "block" : "none"; }
function notice(text) { $("notice").textContent = text || ""; }

// el("td", {className: "x", title: "t"}, "text", childNode, ...): text children become text nodes.
function el(tag, props, ...children) {
  const n = document.createElement(tag);
  Object.assign(n, props || {});
  for (const c of children) n.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return n;
}
function svg(tag, attrs) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
  return n;
}
function pill(cls, text) { return el("span", { className: "pill " + cls }, text); }
function fill(tbody, rows, cols, empty) {
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colSpan: cols, className: "muted" }, empty))]));
}

// api(path, {method, body, allow: [404]}): the parsed body; a status in allow comes back as
// {status} instead of a banner and a throw.
async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  if (key) headers["Authorization"] = "Bearer " + key;
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method: opts.method || "GET", headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  if (res.status === 401 || res.status === 403) {
    banner(res.status === 401 ? "This service needs an API key (401): enter one below." : "Your API key may not do this (403): it needs a stronger role.");
    $("keyform").style.display = res.status === 401 ? "block" : $("keyform").style.display;
    throw new Error("auth " + res.status);
  }
  if ((opts.allow || []).includes(res.status)) return { status: res.status };
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!res.ok && res.status !== 202) {
    banner((data && data.error && data.error.message) || ("HTTP " + res.status));
    throw new Error("HTTP " + res.status);
  }
  return data;
}

function fmt(ts) { return ts ? new Date(ts).toLocaleTimeString() : "—"; }
function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

// Attempts made: retry_count counts the attempts that did not succeed (the last one of a failed
// operation too); a completed or conflict operation also had the attempt that ended it.
// The detail panel counts the attempts on record instead (a resolved conflict is sent again
// without a retry counted): pass their number as used.
const FREE_OUTCOMES = new Set(["released_offline", "lease_expired", "interrupted"]); // cost no attempt
function attemptsText(o, used) {
  const done = used ?? o.retry_count + (o.status === "completed" || o.status === "conflict" ? 1 : 0);
  if (o.status === "in_progress") return `attempt ${(used ?? o.retry_count) + 1} of ${o.max_attempts}`;
  if (o.status === "pending") return done ? `${plural(done, "attempt")}, up to ${o.max_attempts}` : "not tried yet";
  return plural(done, "attempt");
}

async function loadNetwork() {
  const n = await api(API + "/network-status");
  $("net").className = n.status; $("net-text").textContent = n.status;
  $("endpoints").textContent = n.endpoints.map((e) => `${e.url} ${e.reachable ? e.latency_ms + " ms" : "✕"}`).join(" · ");
}

let completedCount = 0; // for the clear-completed confirmation
async function loadStats() {
  const s = await api(API + "/queue/stats");
  completedCount = s.completed;
  $("stats").replaceChildren(...STATUSES.concat(["total"]).map((k) => {
    const d = el("div", { className: "stat" }, el("b", {}, s[k]), el("span", {}, k.replace("_", " ")));
    d.dataset.k = k;
    return d;
  }));
  fill($("bytype"), Object.entries(s.by_type).map(([t, c]) =>
    el("tr", {}, el("td", {}, t), ...STATUSES.map((k) => el("td", {}, c[k] || 0)))), 6, "no operations");
  $("age").textContent = s.pending ? `oldest pending: ${s.oldest_pending_age_s} s · conflicts resolved: ${s.conflicts_resolved}` : `conflicts resolved: ${s.conflicts_resolved}`;
  const types = $("f-type"), have = new Set([...types.options].map((o) => o.value));
  Object.keys(s.by_type).forEach((t) => { if (!have.has(t)) types.add(new Option(t, t)); });
}

// One chart over the same buckets: series [{name, values, kind}] where kind "bar" stacks bars
// (in the order given) and "line"/"area" draws a polyline, all scaled to the largest total.
// Each series' group carries its values (data-values); a <title> per bucket gives them on hover.
function drawChart(node, points, series) {
  const w = node.viewBox.baseVal.width, h = node.viewBox.baseVal.height, pad = 14, n = points.length;
  const bars = series.filter((s) => s.kind === "bar");
  const totals = points.map((_, i) => bars.reduce((a, s) => a + (s.values[i] || 0), 0));
  const max = Math.max(1, ...totals, ...series.flatMap((s) => s.values.filter((v) => v !== null)));
  const step = w / n, x = (i) => i * step + step / 2, y = (v) => h - pad - ((h - 2 * pad) * v) / max;
  const kids = [svg("line", { class: "axis", x1: 0, y1: h - pad, x2: w, y2: h - pad }),
    svg("line", { class: "axis", x1: 0, y1: pad, x2: w, y2: pad })];
  const label = (text, lx, ly, anchor) => { const t = svg("text", { x: lx, y: ly, "text-anchor": anchor }); t.textContent = text; kids.push(t); };
  label(String(max), 2, pad - 3, "start");
  [[0, "−15 min"], [n / 3, "−10"], [(2 * n) / 3, "−5"], [n, "now"]].forEach(([i, t]) => label(t, Math.min(w - 2, Math.max(2, i * step)), h - 2, i === 0 ? "start" : i === n ? "end" : "middle"));
  const base = points.map(() => 0);
  for (const s of series) {
    const g = svg("g", { class: "s-" + s.name, "data-series": s.name, "data-values": s.values.map((v) => (v === null ? "" : v)).join(",") });
    if (s.kind === "bar") {
      s.values.forEach((v, i) => {
        if (!v) return;
        g.append(svg("rect", { class: "bar", x: (i * step + step * 0.15).toFixed(1), width: (step * 0.7).toFixed(1), y: y(base[i] + v).toFixed(1), height: (y(base[i]) - y(base[i] + v)).toFixed(1) }));
        base[i] += v;
      });
    } else {
      const pts = s.values.map((v, i) => (v === null ? null : [x(i), y(v)])).filter(Boolean);
      if (s.kind === "area" && pts.length)
        g.append(svg("polygon", { class: "area", points: [[pts[0][0], y(0)], ...pts, [pts[pts.length - 1][0], y(0)]].map((p) => p.map((c) => c.toFixed(1)).join(",")).join(" ") }));
      g.append(svg("polyline", { points: pts.map((p) => p.map((c) => c.toFixed(1)).join(",")).join(" ") }));
    }
    kids.push(g);
  }
  points.forEach((p, i) => {
    const r = svg("rect", { class: "hit", x: (i * step).toFixed(1), y: 0, width: step.toFixed(1), height: h });
    const t = svg("title"); t.textContent = `${fmt(p.at)}: ` + series.map((s) => `${s.name} ${s.values[i] === null ? "—" : s.values[i]}`).join(", ");
    r.append(t); kids.push(r);
  });
  node.replaceChildren(...kids);
  node.dataset.points = String(n);
}

async function loadHistory() {
  const h = await api(API + "/queue/stats/history");
  const pts = h.points, col = (k) => pts.map((p) => p[k]);
  drawChart($("chart-flow"), pts, [{ name: "completed", values: col("completed"), kind: "bar" },
    { name: "failed", values: col("failed"), kind: "bar" }, { name: "enqueued", values: col("enqueued"), kind: "line" }]);
  drawChart($("chart-depth"), pts, [{ name: "depth", values: col("depth"), kind: "area" }]);
  for (const k of ["enqueued", "completed", "failed"]) $("t-" + k).textContent = String(col(k).reduce((a, b) => a + b, 0));
  const last = pts.length ? pts[pts.length - 1].depth : null;
  $("t-depth").textContent = last === null ? "—" : String(last);
  $("h-range").textContent = pts.length ? `${fmt(pts[0].at)} – now, ${h.bucket_s} s buckets` : "";
}

function upstreamState(u) {
  if (u.paused) return pill("state-paused", "paused");
  const b = u.breaker || { state: "closed" };
  return pill("state-" + b.state, b.state.replace("_", " ") + (b.until ? ` until ${fmt(b.until)}` : ""));
}
function ms(v) { return v === null || v === undefined ? "—" : `${Math.round(v)}`; }
// eta_s as a frontend would say it: 0 is drained, null is unknown (paused, breaker, nothing
// delivered in the last minute, offline).
function etaText(eta) {
  if (eta === 0) return "drained";
  if (eta === null || eta === undefined) return "time left unknown";
  if (eta < 90) return `about ${eta} s left`;
  if (eta < 5400) return `about ${Math.round(eta / 60)} min left`;
  return `about ${Math.round(eta / 3600)} h left`;
}

async function loadUpstreams() {
  const res = await api(API + "/upstreams", { allow: [404] });
  if (res && res.status === 404) {
    fill($("upstreams"), [], 8, "—");
    $("up-note").textContent = "This service has no upstreams endpoint (GET /api/offline/upstreams answered 404).";
    return;
  }
  $("up-note").textContent = "";
  $("up-window").textContent = res.window_s ? `(last ${res.window_s} s)` : "";
  fill($("upstreams"), res.upstreams.map((u) => {
    const btn = el("button", { type: "button", className: u.paused ? "primary" : "" }, u.paused ? "Resume" : "Pause");
    btn.dataset.name = u.name; btn.dataset.action = u.paused ? "resume" : "pause";
    const tr = el("tr", { title: u.base_url || "" }, el("td", {}, u.name), el("td", {}, upstreamState(u)),
      el("td", {}, u.max_concurrency ? `${u.in_flight}/${u.max_concurrency}` : u.in_flight), el("td", {}, u.pending),
      el("td", { className: "eta" }, etaText(u.eta_s)),
      el("td", {}, u.success_ratio === null || u.success_ratio === undefined ? "—" : `${Math.round(u.success_ratio * 100)}% of ${u.attempts}`),
      el("td", {}, `${ms(u.latency_p50_ms)} / ${ms(u.latency_p95_ms)} ms`), el("td", {}, btn));
    tr.dataset.name = u.name;
    return tr;
  }), 8, "no upstreams configured");
}

async function loadSync() {
  const s = await api(API + "/sync/status");
  $("auto").textContent = s.auto_sync ? "on" : "off";
  $("auto-toggle").textContent = s.auto_sync ? "Stop auto-sync" : "Start auto-sync";
  $("interval").textContent = s.interval_s ? `(pass every ${s.interval_s} s)` : "";
  if (document.activeElement !== $("strategy")) $("strategy").value = s.conflict_strategy;
  const p = s.progress;
  $("progress").style.width = p && p.total ? (100 * p.done / p.total) + "%" : (s.last_result ? "100%" : "0");
  $("progress-text").textContent = p ? `syncing: ${p.done} of ${p.total}` : "";
  $("eta").textContent = s.pending === null ? "" : `${s.pending} pending: ${etaText(s.eta_s)}`;
  const r = s.last_result;
  $("last-sync").textContent = r ? `Last pass ${fmt(s.last_sync_at)}: ${r.processed} processed, ${r.succeeded} succeeded, ${r.failed} failed, ${r.conflicts} conflicts, ${r.retried} retried (${r.duration_ms} ms)` : "No sync pass yet.";
}

async function loadOps() {
  const q = new URLSearchParams({ status: $("f-status").value, limit: "25" });
  if ($("f-type").value) q.set("operation_type", $("f-type").value);
  if (cursors[page]) q.set("cursor", cursors[page]);
  const seq = ++listSeq;
  const res = await api(API + "/queue?" + q);
  if (seq !== listSeq) return;
  cursors[page + 1] = res.next_cursor;
  $("next").disabled = !res.next_cursor; $("prev").disabled = page === 0;
  fill($("ops"), res.operations.map((o) => {
    const tr = el("tr", {}, el("td", { title: o.id }, "…" + o.id.slice(-8)), el("td", {}, o.operation_type),
      el("td", {}, pill(o.status, o.status)), el("td", {}, o.priority), el("td", { className: "attempts" }, attemptsText(o)),
      el("td", {}, fmt(o.updated_at)));
    tr.dataset.id = o.id;
    return tr;
  }), 6, "no operations match the filter");
  bulkButtons();
  if (opening || selected) showDetail(opening || selected, true);
}

function attemptRow(a) {
  const answer = a.error || (a.response_excerpt || "").slice(0, 80) || "—";
  return el("tr", {}, el("td", {}, a.n), el("td", {}, fmt(a.started_at)), el("td", {}, a.duration_ms), el("td", {}, a.outcome),
    el("td", {}, a.status_code ?? "—"), el("td", { title: a.response_excerpt || "" }, answer), el("td", {}, a.instance));
}

async function showDetail(id, quiet) {
  const seq = ++detailSeq;
  if (!quiet) opening = id;
  const o = await api(API + "/queue/" + encodeURIComponent(id), { allow: [404] }).catch(() => null);
  const found = o && !(o.status === 404 && !o.id);
  let tries = [];
  if (found)
    try { tries = (await api(API + "/queue/" + o.id + "/attempts")).attempts; } catch (e) { /* shown in the banner */ }
  if (!quiet && opening === id) opening = null;
  if (seq !== detailSeq) return !!found; // overtaken: the newer call renders
  if (!found) {
    if (quiet && id === selected) { $("detail-card").style.display = "none"; selected = null; }
    return false;
  }
  // Rendered at once, after both answers: the panel never shows a half-updated operation.
  selected = o.id;
  $("detail-card").style.display = "block";
  $("d-id").textContent = o.id;
  const used = tries.length ? tries.filter((a) => !FREE_OUTCOMES.has(a.outcome)).length : undefined;
  $("d-meta").replaceChildren(...[["status", pill(o.status, o.status)], ["type", o.operation_type],
    ["attempts", attemptsText(o, used)], ["max attempts", o.max_attempts], ["priority", o.priority], ["created", fmt(o.created_at)],
    ["updated", fmt(o.updated_at)], ["next attempt", fmt(o.next_attempt_at)], ["completed", fmt(o.completed_at)],
    ["group", o.group_key || "—"], ["dedup key", o.dedup_key || "—"]].flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  $("d-payload").textContent = JSON.stringify(o.payload, null, 2);
  $("d-result").textContent = o.result ? JSON.stringify(o.result, null, 2) : "—";
  $("d-error").textContent = o.error_message || "—";
  fill($("d-attempts"), tries.map(attemptRow), 7, "none yet");
  const conflict = o.status === "conflict";
  $("d-resolve").style.display = conflict ? "block" : "none";
  if (conflict && !quiet) $("d-merged").value = JSON.stringify((o.result && o.result.remote) || o.payload.data || {}, null, 2);
  return true;
}

// The filter the operations list shows, as the bulk endpoints take it, and in words.
function shownFilter() {
  const f = {}, words = [];
  const st = $("f-status").value;
  if (!st.includes(",")) { f.status = st; words.push(`status ${st.replace("_", " ")}`); }
  if ($("f-type").value) { f.operation_type = $("f-type").value; words.push(`type ${f.operation_type}`); }
  return { f, words: words.length ? words.join(", ") : "every status and type" };
}
const BULK = {
  retry: { path: "/queue/retry-failed", verb: "Retry", done: "retried", ok: (f) => f.status === "failed" || f.status === "conflict",
           why: "Retry needs the status filter failed or conflict." },
  delete: { path: "/queue/delete", verb: "Delete", done: "deleted", ok: (f) => f.status !== "in_progress",
            why: "Operations in progress cannot be deleted." },
};
function bulkButtons() {
  const { f } = shownFilter();
  for (const [name, b] of Object.entries(BULK)) {
    const btn = $("bulk-" + name);
    btn.disabled = !b.ok(f); btn.title = btn.disabled ? b.why : `${b.verb} every operation matching the filter`;
  }
}

// Resolves true when the operator confirms.
function confirmDialog(title, text, canGo) {
  $("modal-title").textContent = title; $("modal-text").textContent = text;
  $("modal-ok").style.display = canGo ? "" : "none";
  $("modal-cancel").textContent = canGo ? "Cancel" : "Close";
  $("modal").style.display = "flex";
  return new Promise((resolve) => {
    const done = (v) => { $("modal").style.display = "none"; $("modal-ok").onclick = $("modal-cancel").onclick = document.onkeydown = null; resolve(v); };
    $("modal-ok").onclick = () => done(true);
    $("modal-cancel").onclick = () => done(false);
    document.onkeydown = (ev) => { if (ev.key === "Escape") done(false); };
    $("modal-cancel").focus(); // Enter does not confirm by accident
  });
}

// A dry run names the count in the confirmation; the action runs only after it, on the same
// operations: both are bounded by created_before, the moment of the dry run, so what was
// enqueued while the dialog was open is not touched.
async function bulk(name) {
  const b = BULK[name], { f, words } = shownFilter();
  const everything = name === "delete" && !Object.keys(f).length;
  const body = Object.assign({}, f, { created_before: new Date().toISOString() });
  let dry;
  try { dry = await api(API + b.path, { method: "POST", body: Object.assign({}, body, { dry_run: true }) }); } catch (e) { return; }
  const n = dry.matched;
  const go = await confirmDialog(`${b.verb} operations`, n
    ? `${b.verb} ${plural(n, "operation")} matching ${words}?` + (everything ? " That is every operation not in progress." : "")
    : `No operation matches ${words}.`, n > 0);
  if (!go) return;
  try {
    const res = await api(API + b.path, { method: "POST", body });
    notice(`${plural(res[b.done], "operation")} ${b.done} (${words}).`);
  } catch (e) { return; }
  refresh(true);
}

async function search(ev) {
  ev.preventDefault();
  const id = $("search-id").value.trim();
  if (!id) return;
  notice(await showDetail(id, false) ? "" : `No operation with id ${id}.`);
}

// Reads that scan the database run at most every 5 s however many events arrive (a timer
// looks every 5 s too), and at once after an action: the history scans the event log (up to
// ~80 ms for 200,000 events in 15 minutes), the upstreams' pending counts every pending row.
const SCAN_EVERY_MS = 5000;
function throttled(load) {
  let at = 0;
  return (force) => {
    if (!force && Date.now() - at < SCAN_EVERY_MS) return Promise.resolve();
    at = Date.now();
    return load();
  };
}
const maybeHistory = throttled(loadHistory), maybeUpstreams = throttled(loadUpstreams);

// One refresh at a time, at most one a second however many events arrive, and one more after
// a burst (a busy queue keeps the page current instead of starving it).
const REFRESH_GAP_MS = 1000;
let refreshing = false, refreshAgain = false, forceAgain = false, refreshedAt = 0;
async function refresh(force) {
  if (refreshing) { refreshAgain = true; forceAgain = forceAgain || force === true; return; }
  refreshing = true; refreshedAt = Date.now();
  try { await Promise.all([loadNetwork(), loadStats(), loadSync(), loadOps(), maybeHistory(force === true), maybeUpstreams(force === true)]); banner(""); } catch (e) { /* shown in the banner */ }
  refreshing = false;
  if (forceAgain) { refreshAgain = forceAgain = false; refresh(true); }
  else if (refreshAgain) { refreshAgain = false; soon(); }
}
function soon() {
  if (refreshTimer) return; // one is due already
  const wait = Math.max(150, refreshedAt + REFRESH_GAP_MS - Date.now());
  refreshTimer = setTimeout(() => { refreshTimer = null; refresh(); }, wait);
}

/* Live updates: the event stream, read with fetch so the API key can go in a header;
   polling every 3 s when the stream is unavailable. */
async function live() {
  let last = null;
  for (;;) {
    try {
      const headers = key ? { Authorization: "Bearer " + key } : {};
      if (last) headers["Last-Event-ID"] = last;
      const res = await fetch(API + "/events", { headers });
      if (!res.ok || !res.body) throw new Error("HTTP " + res.status);
      $("live").textContent = "● live"; clearInterval(pollTimer); pollTimer = null;
      const reader = res.body.getReader(), dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, i); buf = buf.slice(i + 2);
          const id = /^id: (.*)$/m.exec(frame);
          if (id) { last = id[1]; soon(); }
        }
      }
    } catch (e) { /* fall through to polling */ }
    $("live").textContent = "polling";
    if (!pollTimer) pollTimer = setInterval(refresh, 3000);
    await new Promise((r) => setTimeout(r, 3000));
  }
}

async function act(fn) { try { await fn(); } catch (e) { return; } refresh(true); }
$("sync-now").onclick = () => act(() => api(API + "/sync?timeout_s=0", { method: "POST" }));
$("auto-toggle").onclick = () => act(() => api(API + ($("auto").textContent === "on" ? "/sync/stop-auto" : "/sync/start-auto"), { method: "POST" }));
$("strategy-set").onclick = () => act(() => api(API + "/sync/conflict-strategy", { method: "POST", body: { strategy: $("strategy").value } }));
$("clear").onclick = async () => {
  const n = completedCount;
  if (await confirmDialog("Clear completed", n ? `Delete ${plural(n, "completed operation")}?` : "No completed operation to delete.", n > 0))
    act(() => api(API + "/queue/clear-completed", { method: "POST" }));
};
$("d-retry").onclick = () => act(() => api(`${API}/queue/${selected}/retry`, { method: "POST" }));
$("d-delete").onclick = () => act(async () => { await api(`${API}/queue/${selected}`, { method: "DELETE" }); selected = null; $("detail-card").style.display = "none"; });
const resolve = (body) => act(() => api(`${API}/queue/${selected}/resolve`, { method: "POST", body }));
$("r-local").onclick = () => resolve({ resolution: "local" });
$("r-remote").onclick = () => resolve({ resolution: "remote" });
$("r-merged").onclick = () => { let data; try { data = JSON.parse($("d-merged").value); } catch (e) { banner("The merged document is not valid JSON."); return; } resolve({ resolution: "merged", data }); };
$("ops").onclick = (ev) => { const tr = ev.target.closest("tr"); if (tr && tr.dataset.id) showDetail(tr.dataset.id); };
$("upstreams").onclick = (ev) => {
  const btn = ev.target.closest("button");
  if (btn) act(() => api(`${API}/upstreams/${encodeURIComponent(btn.dataset.name)}/${btn.dataset.action}`, { method: "POST" }));
};
$("bulk-retry").onclick = () => bulk("retry");
$("bulk-delete").onclick = () => bulk("delete");
$("search").onsubmit = search;
$("f-status").onchange = $("f-type").onchange = () => { cursors = [null]; page = 0; loadOps(); };
$("next").onclick = () => { page++; loadOps(); };
$("prev").onclick = () => { if (page > 0) { page--; loadOps(); } };
$("keyform").onsubmit = (ev) => { ev.preventDefault(); key = $("key").value.trim(); sessionStorage.setItem("offlineq_key", key); $("keyform").style.display = "none"; banner(""); refresh(true); };

refresh();
live();
setInterval(() => { maybeHistory(false).catch(() => {}); maybeUpstreams(false).catch(() => {}); }, SCAN_EVERY_MS); // they move on without events too
