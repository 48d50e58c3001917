"use strict";
const API = "/api/offline";
const $ = (id) => document.getElementById(id);
let key = sessionStorage.getItem("offlineq_key") || "";
let cursors = [null], page = 0, selected = null, pollTimer = null, refreshTimer = null;

function banner(text) { const b = $("banner"); b.textContent = text || ""; b.style.display = text ? "block" : "none"; }

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
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok && res.status !== 202) {
    banner((data && data.error && data.error.message) || ("HTTP " + res.status));
    throw new Error("HTTP " + res.status);
  }
  return data;
}

function fmt(ts) { return ts ? new Date(ts).toLocaleTimeString() : "—"; }
function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c])); }

async function loadNetwork() {
  const n = await api(API + "/network-status");
  $("net").className = n.status; $("net-text").textContent = n.status;
  $("endpoints").textContent = n.endpoints.map((e) => `${e.url} ${e.reachable ? e.latency_ms + " ms" : "✕"}`).join(" · ");
}

async function loadStats() {
  const s = await api(API + "/queue/stats");
  const keys = ["pending", "in_progress", "completed", "failed", "conflict", "total"];
  $("stats").innerHTML = keys.map((k) => `<div class="stat" data-k="${k}"><b>${s[k]}</b><span>${k.replace("_", " ")}</span></div>`).join("");
  $("bytype").innerHTML = Object.entries(s.by_type).map(([t, c]) =>
    `<tr><td>${esc(t)}</td>${["pending", "in_progress", "completed", "failed", "conflict"].map((k) => `<td>${c[k] || 0}</td>`).join("")}</tr>`).join("");
  $("age").textContent = s.pending ? `oldest pending: ${s.oldest_pending_age_s} s · conflicts resolved: ${s.conflicts_resolved}` : `conflicts resolved: ${s.conflicts_resolved}`;
  const types = $("f-type"), have = new Set([...types.options].map((o) => o.value));
  Object.keys(s.by_type).forEach((t) => { if (!have.has(t)) types.add(new Option(t, t)); });
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
  const r = s.last_result;
  $("last-sync").textContent = r ? `Last pass ${fmt(s.last_sync_at)}: ${r.processed} processed, ${r.succeeded} succeeded, ${r.failed} failed, ${r.conflicts} conflicts, ${r.retried} retried (${r.duration_ms} ms)` : "No sync pass yet.";
}

async function loadOps() {
  const q = new URLSearchParams({ status: $("f-status").value, limit: "25" });
  if ($("f-type").value) q.set("operation_type", $("f-type").value);
  if (cursors[page]) q.set("cursor", cursors[page]);
  const res = await api(API + "/queue?" + q);
  cursors[page + 1] = res.next_cursor;
  $("next").disabled = !res.next_cursor; $("prev").disabled = page === 0;
  $("ops").innerHTML = res.operations.map((o) =>
    `<tr data-id="${o.id}"><td title="${o.id}">${o.id.slice(0, 8)}</td><td>${esc(o.operation_type)}</td><td><span class="pill ${o.status}">${o.status}</span></td><td>${o.priority}</td><td>${o.retry_count}/${o.max_attempts}</td><td>${fmt(o.updated_at)}</td></tr>`).join("");
  if (selected) showDetail(selected, true);
}

async function showDetail(id, quiet) {
  let o;
  try { o = await api(API + "/queue/" + id); } catch (e) { if (quiet) { $("detail-card").style.display = "none"; selected = null; } return; }
  selected = id;
  $("detail-card").style.display = "block";
  $("d-id").textContent = o.id;
  $("d-meta").innerHTML = [["status", `<span class="pill ${o.status}">${o.status}</span>`], ["type", esc(o.operation_type)],
    ["attempts", `${o.retry_count} of ${o.max_attempts}`], ["priority", o.priority], ["created", fmt(o.created_at)],
    ["updated", fmt(o.updated_at)], ["next attempt", fmt(o.next_attempt_at)], ["completed", fmt(o.completed_at)],
    ["group", esc(o.group_key || "—")], ["dedup key", esc(o.dedup_key || "—")]].map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("");
  $("d-payload").textContent = JSON.stringify(o.payload, null, 2);
  $("d-result").textContent = o.result ? JSON.stringify(o.result, null, 2) : "—";
  $("d-error").textContent = o.error_message || "—";
  let tries = [];
  try { tries = (await api(API + "/queue/" + id + "/attempts")).attempts; } catch (e) { /* shown in the banner */ }
  $("d-attempts").innerHTML = tries.length ? tries.map((a) =>
    `<tr><td>${a.n}</td><td>${fmt(a.started_at)}</td><td>${a.duration_ms}</td><td>${esc(a.outcome)}</td><td>${a.status_code ?? "—"}</td><td title="${esc(a.response_excerpt || "")}">${esc(a.error || (a.response_excerpt || "").slice(0, 80) || "—")}</td><td>${esc(a.instance)}</td></tr>`).join("")
    : `<tr><td colspan="7" class="muted">none yet</td></tr>`;
  const conflict = o.status === "conflict";
  $("d-resolve").style.display = conflict ? "block" : "none";
  if (conflict && !quiet) $("d-merged").value = JSON.stringify((o.result && o.result.remote) || o.payload.data || {}, null, 2);
}

async function refresh() {
  try { await Promise.all([loadNetwork(), loadStats(), loadSync(), loadOps()]); banner(""); } catch (e) { /* shown in the banner */ }
}
function soon() { clearTimeout(refreshTimer); refreshTimer = setTimeout(refresh, 150); }

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

async function act(fn) { try { await fn(); } catch (e) { return; } refresh(); }
$("sync-now").onclick = () => act(() => api(API + "/sync?timeout_s=0", { method: "POST" }));
$("auto-toggle").onclick = () => act(() => api(API + ($("auto").textContent === "on" ? "/sync/stop-auto" : "/sync/start-auto"), { method: "POST" }));
$("strategy-set").onclick = () => act(() => api(API + "/sync/conflict-strategy", { method: "POST", body: { strategy: $("strategy").value } }));
$("clear").onclick = () => act(() => api(API + "/queue/clear-completed", { method: "POST" }));
$("d-retry").onclick = () => act(() => api(`${API}/queue/${selected}/retry`, { method: "POST" }));
$("d-delete").onclick = () => act(async () => { await api(`${API}/queue/${selected}`, { method: "DELETE" }); selected = null; $("detail-card").style.display = "none"; });
const resolve = (body) => act(() => api(`${API}/queue/${selected}/resolve`, { method: "POST", body }));
$("r-local").onclick = () => resolve({ resolution: "local" });
$("r-remote").onclick = () => resolve({ resolution: "remote" });
$("r-merged").onclick = () => { let data; try { data = JSON.parse($("d-merged").value); } catch (e) { banner("The merged document is not valid JSON."); return; } resolve({ resolution: "merged", data }); };
$("ops").onclick = (ev) => { const tr = ev.target.closest("tr"); if (tr) showDetail(tr.dataset.id); };
$("f-status").onchange = $("f-type").onchange = () => { cursors = [null]; page = 0; loadOps(); };
$("next").onclick = () => { page++; loadOps(); };
$("prev").onclick = () => { if (page > 0) { page--; loadOps(); } };
$("keyform").onsubmit = (ev) => { ev.preventDefault(); key = $("key").value.trim(); sessionStorage.setItem("offlineq_key", key); $("keyform").style.display = "none"; banner(""); refresh(); };

refresh();
live();
