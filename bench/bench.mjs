// offlineq benchmark: starts a private PostgreSQL (default settings: fsync and synchronous_commit
// on), the C sink, the service, and drives the workloads of bench/README.md with wrk, pgbench and
// oq-bench-pace; then the peers (bench/peers). Prints one table and writes the results file.
//
//   node bench/bench.mjs --build DIR [--smoke] [--no-peers] [--out FILE] [--only burn,latency,...]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(here);
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);

const smoke = flag('--smoke');
const build = path.resolve(option('--build', path.join(root, 'build-bench')));
const out = option('--out', smoke ? path.join(build, 'bench-smoke.md') : path.join(here, 'RESULTS.md'));
const S0 = smoke
  ? { runs: 1, dur: 1, conns: [1, 16], burn: 2000, rate: 50, rateSecs: 2, statsRows: 20000, peers: 1000, send: 1,
      held: { rate: 200, hold: 4, edge: 2 }, waiting: 5000 }
  : { runs: 3, dur: 5, conns: [1, 16, 64], burn: 100000, rate: 200, rateSecs: 20, statsRows: 1000000, peers: 100000, send: 5,
      held: { rate: 2000, hold: 60, edge: 20 }, waiting: 1000000 };

// OQ_BENCH_SIZES='{"burn":20000}' overrides sizes while working on one workload
const S = { ...S0, ...JSON.parse(process.env.OQ_BENCH_SIZES || '{}') };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...m) => console.error('[bench]', ...m);
const children = [];
let tmp = null;
let pgDir = null;

// ---------- processes ----------
function run(cmd, argv, opts = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let so = '', se = '';
    p.stdout.on('data', (d) => (so += d));
    p.stderr.on('data', (d) => (se += d));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 || opts.anyExit ? resolve({ code, out: so, err: se })
      : reject(new Error(`${cmd} ${argv.join(' ')} exited ${code}: ${se.slice(-2000)}${so.slice(-500)}`))));
  });
}

function startChild(cmd, argv, env) {
  const p = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.push(p);
  p.stderr.on('data', (d) => { if (process.env.OQ_BENCH_VERBOSE) process.stderr.write(d); });
  return p;
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

async function cleanup() {
  for (const p of children) if (p.exitCode === null) p.kill('SIGTERM');
  await sleep(300);
  for (const p of children) if (p.exitCode === null) p.kill('SIGKILL');
  if (pgDir) await run(path.join(root, 'scripts/pg.sh'), ['stop', pgDir], { anyExit: true });
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => cleanup().then(() => process.exit(130)));

// ---------- PostgreSQL ----------
let pgPort, pgUrl;
const dbUrl = (db) => `postgresql:///${db}?host=${pgDir}/sock&port=${pgPort}&user=postgres`;
const psql = async (db, sql) => (await run('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', dbUrl(db), '-c', sql])).out.trim();

async function startPostgres() {
  pgDir = path.join(tmp, 'pg');
  pgPort = await freePort();
  const env = { ...process.env };
  delete env.OFFLINEQ_PG_NOSYNC; // durable, like production
  await run(path.join(root, 'scripts/pg.sh'), ['start', pgDir, String(pgPort)], { env });
  for (const db of ['offlineq', 'ceiling', 'pgboss', 'graphile']) await psql('postgres', `CREATE DATABASE ${db}`);
  pgUrl = dbUrl('offlineq');
  await run('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', dbUrl('ceiling'), '-f', path.join(here, 'sql/setup.sql')]);
}

async function pgbench(script, clients, argv) {
  const r = await run('pgbench', ['-n', '-c', String(clients), '-j', String(Math.min(clients, 2)),
    '-f', path.join(here, 'sql', script), ...argv, dbUrl('ceiling')]);
  const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(r.out);
  if (!m) throw new Error(`pgbench output not understood: ${r.out}`);
  return Number(m[1]);
}

// ---------- the sink and the service ----------
let sinkUrl, sinkPid, base, service;
async function startSink() {
  const p = startChild(path.join(build, 'bench/oq-bench-sink'), ['0']);
  sinkPid = p.pid;
  const port = await new Promise((resolve) => p.stdout.once('data', (d) => resolve(Number(String(d).trim()))));
  sinkUrl = `http://127.0.0.1:${port}`;
}
const sink = async (what) => (await fetch(`${sinkUrl}/_${what}`, { method: what === 'reset' ? 'POST' : 'GET' }))
  .text().then((t) => (t ? JSON.parse(t) : null));

// One offlineq instance on the bench database and the sink; resolves to its base URL and process.
async function startInstance() {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const p = startChild(path.join(build, 'offlineq'), [], {
    OFFLINEQ_DATABASE_URL: pgUrl, OFFLINEQ_LISTEN: `127.0.0.1:${port}`,
    OFFLINEQ_UPSTREAMS: `default=${sinkUrl}`, OFFLINEQ_CHECK_URLS: `${sinkUrl}/`,
    OFFLINEQ_MAX_PENDING: '2000000000', OFFLINEQ_LOG_LEVEL: 'warn', OFFLINEQ_API_KEYS: '',
    ...(process.env.OQ_BENCH_SERVICE_ENV ? Object.fromEntries(process.env.OQ_BENCH_SERVICE_ENV.split(' ').map((kv) => kv.split('='))) : {}),
  });
  for (let i = 0; i < 200; i++) {
    try { if ((await fetch(`${url}/readyz`)).status === 200) return { base: url, p }; } catch { /* not yet */ }
    await sleep(100);
  }
  throw new Error('the service did not become ready');
}

async function startService() {
  ({ base, p: service } = await startInstance());
}

async function stopInstance(x) {
  const gone = new Promise((resolve) => (x.p.exitCode !== null ? resolve() : x.p.once('exit', resolve)));
  x.p.kill('SIGTERM');
  await gone;
}

const api = async (method, p, body) => {
  const r = await fetch(`${base}${p}`, { method, headers: { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  if (r.status >= 300) throw new Error(`${method} ${p}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
};
const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${service.pid}/status`, 'utf8'))[1]) / 1024;

async function emptyQueue() {
  await psql('offlineq', 'TRUNCATE offlineq.offline_operations, offlineq.offlineq_op_counts, offlineq.offlineq_events, offlineq.offlineq_files, offlineq.offlineq_file_chunks');
}

// Enqueues n operations through the batch endpoint, 4 requests in flight.
async function fill(n) {
  const item = (i) => ({ operation_type: 'api_call', payload: { endpoint: '/sink', data: { i, source: 'bench' } } });
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const from = next; const k = Math.min(1000, n - from); next += k;
      await api('POST', '/api/offline/queue/batch', { operations: Array.from({ length: k }, (_, j) => item(from + j)) });
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  await psql('offlineq', 'VACUUM ANALYZE offlineq.offline_operations');
}

async function wrk(script, clients, urlPath, env = {}, at = base) {
  const r = await run('wrk', ['-t', String(Math.min(clients, 2)), '-c', String(clients), '-d', `${S.dur}s`,
    '--timeout', '10s', '-s', path.join(here, 'wrk', script), `${at}${urlPath}`],
    { env: { ...process.env, OQ_WRK_DIR: path.join(here, 'wrk'), ...env } });
  const line = r.out.split('\n').find((l) => l.startsWith('RESULT '));
  const j = JSON.parse(line.slice(7));
  if (j.non2xx || j.socket_errors) throw new Error(`wrk ${script}: ${j.non2xx} non-2xx answers, ${j.socket_errors} socket errors`);
  return { rate: j.requests / (j.duration_us / 1e6), requests: j.requests, p50: j.p50_us / 1000, p99: j.p99_us / 1000 };
}

// ---------- statistics ----------
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function summary(xs) { return { med: median(xs), min: Math.min(...xs), max: Math.max(...xs), runs: xs }; }
async function repeat(fn) { const xs = []; for (let i = 0; i < S.runs; i++) xs.push(await fn(i)); return xs; }
const pick = (rs, k) => summary(rs.map((r) => r[k]));

// ---------- workloads ----------
const R = {};

async function singleEnqueue() {
  await api('POST', '/api/offline/sync/stop-auto');
  for (const c of S.conns) {
    const rs = await repeat(async () => { await emptyQueue(); return wrk('enqueue.lua', c, '/api/offline/queue'); });
    const pg = await repeat(async () => {
      await psql('ceiling', 'TRUNCATE bench_ops');
      return pgbench('insert.pgbench', c, ['-T', String(S.dur)]);
    });
    R[`enqueue_c${c}`] = { rate: pick(rs, 'rate'), p50: pick(rs, 'p50'), p99: pick(rs, 'p99'), pg: summary(pg) };
    log(`single enqueue c=${c}: ${R[`enqueue_c${c}`].rate.med.toFixed(0)}/s, pgbench ${median(pg).toFixed(0)}/s`);
  }
}

async function batchEnqueue() {
  await api('POST', '/api/offline/sync/stop-auto');
  const rs = await repeat(async () => { await emptyQueue(); return wrk('batch.lua', 4, '/api/offline/queue/batch'); });
  R.batch = { rate: summary(rs.map((r) => r.rate * 1000)) };
  const ms = await repeat(async () => {
    await emptyQueue();
    const c0 = clusterTicks(), s0 = procTicks(service.pid);
    const r = await wrk('batch.lua', 4, '/api/offline/queue/batch', { OQ_PREFER: 'return=minimal' });
    const ops = r.requests * 1000;
    return { ...r, pg_us: ((clusterTicks() - c0) * TICK_US) / ops, service_us: ((procTicks(service.pid) - s0) * TICK_US) / ops };
  });
  R.batch_min = { rate: summary(ms.map((r) => r.rate * 1000)), pg_us: pick(ms, 'pg_us'), service_us: pick(ms, 'service_us') };
  log(`batch enqueue: ${R.batch.rate.med.toFixed(0)} ops/s full, ${R.batch_min.rate.med.toFixed(0)} ops/s return=minimal `
    + `(per operation: PostgreSQL ${R.batch_min.pg_us.med.toFixed(1)} µs, the service ${R.batch_min.service_us.med.toFixed(1)} µs)`);
}

const procStat = (pid) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
// CPU time (clock ticks) of one process so far: all its threads, user and system.
const procTicks = (pid) => { const f = procStat(pid); return Number(f[11]) + Number(f[12]); };
// CPU time (clock ticks) of every process of the cluster so far: the living ones and the
// backends that have exited (the postmaster's reaped children).
function clusterTicks() {
  const pm = Number(readFileSync(path.join(pgDir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  let t = 0;
  const kids = readFileSync(`/proc/${pm}/task/${pm}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  for (const pid of [pm, ...kids]) {
    try { const f = procStat(pid); t += Number(f[11]) + Number(f[12]) + (pid === pm ? Number(f[13]) + Number(f[14]) : 0); } catch { /* gone */ }
  }
  return t;
}
const TICK_US = 10000; // CLK_TCK 100

async function waitFor(cond, timeoutMs, what) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// One burn-down of S.burn operations to the sink, by every instance running; pushes the
// cluster's CPU per delivered operation (µs) onto cpu (and, given svc, the first instance's and
// the sink's: {service, sink}) and resolves to operations per second.
async function burnOnce(cpu, svc) {
  await api('POST', '/api/offline/sync/stop-auto');
  await emptyQueue();
  await fill(S.burn);
  await sink('reset');
  const t0 = Date.now();
  const c0 = clusterTicks(), s0 = procTicks(service.pid), k0 = procTicks(sinkPid);
  await api('POST', '/api/offline/sync/start-auto');
  await waitFor(async () => (await api('GET', '/api/offline/queue/stats')).completed >= S.burn, 600000, 'the burn-down');
  const secs = (Date.now() - t0) / 1000;
  cpu.push(((clusterTicks() - c0) * TICK_US) / S.burn);
  svc?.service.push(((procTicks(service.pid) - s0) * TICK_US) / S.burn);
  svc?.sink.push(((procTicks(sinkPid) - k0) * TICK_US) / S.burn);
  const got = (await sink('stats')).operations;
  if (got < S.burn) throw new Error(`the sink saw ${got} of ${S.burn} operations`);
  return S.burn / secs;
}

const burnCpu = [];
async function burnDown() {
  const svc = { service: [], sink: [] };
  const rs = await repeat(() => burnOnce(burnCpu, svc));
  R.burn_pg_us = summary(burnCpu.splice(0));
  R.burn_service_us = summary(svc.service);
  R.burn_sink_us = summary(svc.sink);
  R.rss_after_burn = rssMiB();
  await sleep(11000); // past the service's next two trims (every 5 s: idle connections, heap)
  R.rss_after_burn_settled = rssMiB();
  log(`RSS after the burn-down ${R.rss_after_burn.toFixed(2)} MiB, 11 s later ${R.rss_after_burn_settled.toFixed(2)} MiB`);
  const pg = await repeat(async () => {
    await run('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-v', `n=${S.burn}`, '-d', dbUrl('ceiling'), '-f', path.join(here, 'sql/fill_jobs.sql')]);
    return pgbench('claim.pgbench', 4, ['-t', String(S.burn / 4)]);
  });
  R.burn = { rate: summary(rs), pg: summary(pg) };
  log(`burn-down: ${R.burn.rate.med.toFixed(0)} ops/s, pgbench naive ${median(pg).toFixed(0)}/s`);
}

// Scale-out (issue 15): 1, 2 and 3 instances on the one PostgreSQL, all on these two cores, so
// this measures what coordination costs, not how far it scales. Burn-down: every instance
// claims from the same queue. Single enqueue: 64 connections split across the instances.
async function scaleOut() {
  R.scale = {};
  const extra = [];
  try {
    for (const n of [1, 2, 3]) {
      while (extra.length < n - 1) extra.push(await startInstance());
      const bases = [base, ...extra.map((x) => x.base)];
      const cpu = [];
      const burn = await repeat(() => burnOnce(cpu));
      await api('POST', '/api/offline/sync/stop-auto');
      const enq = await repeat(async () => {
        await emptyQueue();
        const rs = await Promise.all(bases.map((b, i) => wrk('enqueue.lua', Math.floor(64 / n) + (i < 64 % n ? 1 : 0), '/api/offline/queue', {}, b)));
        return { rate: rs.reduce((a, r) => a + r.rate, 0), p99: Math.max(...rs.map((r) => r.p99)) };
      });
      R.scale[n] = { burn: summary(burn), burn_pg_us: summary(cpu), enqueue: pick(enq, 'rate'), enqueue_p99: pick(enq, 'p99') };
      log(`${n} instance(s): burn-down ${median(burn).toFixed(0)}/s, single enqueue ${R.scale[n].enqueue.med.toFixed(0)}/s`);
    }
  } finally {
    for (const x of extra) await stopInstance(x);
  }
}

async function latency() {
  await emptyQueue();
  await api('POST', '/api/offline/sync/start-auto');
  const rs = await repeat(async () => {
    await sink('reset');
    const r = await run(path.join(build, 'bench/oq-bench-pace'), [base, String(S.rate), String(S.rateSecs)]);
    const sent = JSON.parse(r.out).sent;
    const st = await waitFor(async () => { const s = await sink('stats'); return s.latency_ms.samples >= sent && s; }, 60000, 'arrivals');
    return st.latency_ms;
  });
  R.latency = { p50: pick(rs, 'p50'), p99: pick(rs, 'p99'), max: pick(rs, 'max') };
  log(`latency at ${S.rate}/s: p50 ${R.latency.p50.med.toFixed(2)} ms, p99 ${R.latency.p99.med.toFixed(2)} ms`);
}

// A steady enqueue-and-deliver run at S.held.rate/s; a REPEATABLE READ transaction holds its
// snapshot for S.held.hold s in the middle (PgQue's method). Each phase: deliveries/s at the sink
// and enqueue→arrival p99; dead tuples of the operations table at the end.
async function heldSnapshot() {
  await emptyQueue();
  await api('POST', '/api/offline/sync/start-auto');
  const phase = async (secs, name) => {
    await sink('reset');
    const t0 = Date.now();
    const r = await run(path.join(build, 'bench/oq-bench-pace'), [base, String(S.held.rate), String(secs)]);
    const { sent, late } = JSON.parse(r.out);
    const st = await waitFor(async () => { const x = await sink('stats'); return x.latency_ms.samples >= sent && x; }, 600000, `arrivals (${name})`);
    // delivered per second over the time it took (the pacer falls behind when enqueues slow down)
    return { rate: sent / ((Date.now() - t0) / 1000), p99: st.latency_ms.p99, sent, late };
  };
  const before = await phase(S.held.edge, 'before');
  const holder = run('psql', ['-X', '-q', '-d', pgUrl, '-c',
    `BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM offlineq.offline_operations; SELECT pg_sleep(${S.held.hold}); COMMIT;`]);
  await sleep(500);
  const during = await phase(S.held.hold - 2, 'during');
  await holder;
  const after = await phase(S.held.edge, 'after');
  const dead = Number(await psql('offlineq', "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'offline_operations'"));
  R.held = { before, during, after, dead };
  log(`held snapshot: ${before.rate.toFixed(0)} → ${during.rate.toFixed(0)} → ${after.rate.toFixed(0)} ops/s, p99 ${before.p99.toFixed(1)} / ${during.p99.toFixed(1)} / ${after.p99.toFixed(1)} ms, ${dead} dead tuples`);
}

// Claims among many waiting operations: S.waiting operations wait (a delay: due in an hour; or
// queued behind the busy head of one group), while single operations are enqueued at 50/s: their
// enqueue→arrival time is what a claim costs with that much waiting work.
async function claimAmongWaiting() {
  R.waiting = {};
  for (const kind of ['delayed', 'group']) {
    await api('POST', '/api/offline/sync/stop-auto');
    await emptyQueue();
    const item = kind === 'delayed'
      ? (i) => ({ operation_type: 'api_call', payload: { endpoint: '/sink', data: { i } }, delay_s: 3600 })
      : (i) => ({ operation_type: 'api_call', payload: { endpoint: '/sink', data: { i } }, group_key: 'busy' });
    let next = 0;
    const worker = async () => {
      while (next < S.waiting) {
        const k = Math.min(1000, S.waiting - next); const from = next; next += k;
        await api('POST', '/api/offline/queue/batch', { operations: Array.from({ length: k }, (_, j) => item(from + j)) });
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    if (kind === 'group') // the group's head waits for an operator: the group is held
      await psql('offlineq', "UPDATE offlineq.offline_operations SET status = 'conflict' WHERE seq = (SELECT min(seq) FROM offlineq.offline_operations)");
    await psql('offlineq', 'VACUUM ANALYZE offlineq.offline_operations');
    await api('POST', '/api/offline/sync/start-auto');
    await sink('reset');
    const r = await run(path.join(build, 'bench/oq-bench-pace'), [base, '50', String(S.dur * 2)]);
    const sent = JSON.parse(r.out).sent;
    const st = await waitFor(async () => { const x = await sink('stats'); return x.latency_ms.samples >= sent && x; }, 120000, `arrivals (${kind})`);
    R.waiting[kind] = st.latency_ms;
    log(`claim among ${S.waiting} ${kind}: p50 ${st.latency_ms.p50.toFixed(2)} ms, p99 ${st.latency_ms.p99.toFixed(2)} ms`);
  }
}

async function statsAtScale() {
  await api('POST', '/api/offline/sync/stop-auto');
  await emptyQueue();
  await fill(S.statsRows);
  R.rss_after_fill = rssMiB();
  await sleep(11000);
  R.rss_after_fill_settled = rssMiB();
  const rs = await repeat(() => wrk('get.lua', 1, '/api/offline/queue/stats'));
  R.stats = { p50: pick(rs, 'p50'), p99: pick(rs, 'p99') };
  log(`stats at ${S.statsRows} rows: p99 ${R.stats.p99.med.toFixed(2)} ms`);
}

async function peers() {
  const r = await run('bash', [path.join(here, 'peers/run.sh')], {
    env: { ...process.env, OQ_PEER_PGHOST: `${pgDir}/sock`, OQ_PEER_PGPORT: String(pgPort),
      OQ_PEER_SINK: `${sinkUrl}/sink`, OQ_PEER_JOBS: String(S.peers), OQ_PEER_RUNS: String(S.runs),
      OQ_PEER_SEND_SECS: String(S.send) },
  });
  const line = r.out.split('\n').find((l) => l.startsWith('PEERS '));
  R.peers = JSON.parse(line.slice(6));
  log('peers done');
}

// ---------- the report ----------
const f0 = (x) => (x === undefined ? '–' : Math.round(x).toLocaleString('en-US'));
const f1 = (x) => (x === undefined ? '–' : x.toFixed(1));
const f2 = (x) => (x === undefined ? '–' : x.toFixed(2));
const span = (s, f) => `${f(s.med)} (${f(s.min)}–${f(s.max)})`;
const ratio = (a, b) => (a && b ? `${(a / b).toFixed(2)}×` : '–');
const verdict = (ok) => (ok ? 'met' : 'MISSED');

function table() {
  const rows = [];
  const row = (...c) => rows.push(`| ${c.join(' | ')} |`);
  rows.push('| Workload | offlineq, median (min–max) | Reference | Ratio | Target | |');
  rows.push('|---|---|---|---|---|---|');
  for (const c of S.conns) {
    const e = R[`enqueue_c${c}`];
    const target = c === 64 ? '≥ 1.0× pgbench, p99 ≤ 10 ms' : '';
    const ok = c === 64 ? e.rate.med >= e.pg.med && e.p99.med <= 10 : null;
    row(`single enqueue, ${c} conn: ops/s`, span(e.rate, f0), `pgbench insert ${span(e.pg, f0)}`, ratio(e.rate.med, e.pg.med), target, ok === null ? '' : verdict(ok));
    row(`single enqueue, ${c} conn: p50 / p99 ms`, `${f2(e.p50.med)} / ${span(e.p99, f2)}`, '', '', '', '');
  }
  const P = R.peers || {};
  const best = (k) => Math.max(P.pgboss?.[k]?.med || 0, P.graphile?.[k]?.med || 0) || undefined;
  row('batch enqueue of 1,000 (full answers): ops/s', span(R.batch.rate, f0), peerCell('insert'), ratio(R.batch.rate.med, best('insert')), '', '');
  row('batch enqueue of 1,000, `Prefer: return=minimal`: ops/s', span(R.batch_min.rate, f0), peerCell('insert'), ratio(R.batch_min.rate.med, best('insert')), '≥ 1.2× best peer', P.pgboss ? verdict(R.batch_min.rate.med >= 1.2 * best('insert')) : '');
  row('batch enqueue, return=minimal: PostgreSQL\'s and the service\'s CPU per operation, µs', `${span(R.batch_min.pg_us, f1)}; service ${span(R.batch_min.service_us, f1)}`, '', '', '', '');
  row(`burn-down of ${f0(S.burn)} to the sink: ops/s`, span(R.burn.rate, f0), `pgbench naive claim+complete ${span(R.burn.pg, f0)}`, ratio(R.burn.rate.med, R.burn.pg.med), '≥ 25,000 (stretch 40,000)', verdict(R.burn.rate.med >= 25000));
  row('burn-down: PostgreSQL CPU per delivered operation, µs', span(R.burn_pg_us, f0), '', '', '≤ 60', verdict(R.burn_pg_us.med <= 60));
  row('burn-down: the service\'s and the sink\'s CPU per delivered operation, µs', `${span(R.burn_service_us, f0)}; sink ${span(R.burn_sink_us, f0)}`, '', '', '', '');
  row('burn-down, peers POSTing to the sink', '', peerCell('burn_http'), ratio(R.burn.rate.med, best('burn_http')), '≥ 1.2× best peer', P.pgboss ? verdict(R.burn.rate.med >= 1.2 * best('burn_http')) : '');
  row('burn-down, peers no-op jobs', '', peerCell('burn_noop'), ratio(R.burn.rate.med, P.graphile?.burn_noop?.med), '≥ 0.8× graphile-worker', P.graphile ? verdict(R.burn.rate.med >= 0.8 * P.graphile.burn_noop.med) : '');
  row('single enqueue, 32 in flight (peers) / 64 conn (offlineq)', '', peerCell('send'), ratio(R.enqueue_c64?.rate.med ?? R[`enqueue_c${S.conns.at(-1)}`].rate.med, best('send')), '', '');
  if (R.scale) for (const n of [1, 2, 3]) {
    const x = R.scale[n];
    const one = R.scale[1];
    row(`${n} instance${n > 1 ? 's' : ''} on one PostgreSQL (2 cores shared): burn-down ops/s; PostgreSQL µs per op`, `${span(x.burn, f0)}; ${f0(x.burn_pg_us.med)}`, n > 1 ? `1 instance ${f0(one.burn.med)}` : '', n > 1 ? ratio(x.burn.med, one.burn.med) : '', '', '');
    row(`${n} instance${n > 1 ? 's' : ''}: single enqueue, 64 conn split across them: ops/s; p99 ms`, `${span(x.enqueue, f0)}; ${f2(x.enqueue_p99.med)}`, n > 1 ? `1 instance ${f0(one.enqueue.med)}` : '', n > 1 ? ratio(x.enqueue.med, one.enqueue.med) : '', '', '');
  }
  row(`enqueue→arrival at ${S.rate}/s: p50 ms`, span(R.latency.p50, f2), '', '', '≤ 5', verdict(R.latency.p50.med <= 5));
  row(`enqueue→arrival at ${S.rate}/s: p99 / max ms`, `${span(R.latency.p99, f2)} / ${f2(R.latency.max.med)}`, '', '', 'p99 ≤ 25', verdict(R.latency.p99.med <= 25));
  if (R.held) {
    const h = R.held;
    row(`held snapshot (${S.held.hold} s REPEATABLE READ) at ${f0(S.held.rate)}/s: delivered ops/s before / during / after`,
      `${f0(h.before.rate)} / ${f0(h.during.rate)} / ${f0(h.after.rate)}`, '', ratio(h.during.rate, h.before.rate), 'during ≥ 0.7× before', verdict(h.during.rate >= 0.7 * h.before.rate));
    row('held snapshot: enqueue→arrival p99 ms before / during / after; dead tuples at the end',
      `${f2(h.before.p99)} / ${f2(h.during.p99)} / ${f2(h.after.p99)}; ${f0(h.dead)}`, '', '', '', '');
  }
  if (R.waiting) for (const k of ['delayed', 'group']) {
    const w = R.waiting[k];
    row(`claim among ${f0(S.waiting)} waiting (${k === 'delayed' ? 'due in an hour' : 'behind a busy group'}): enqueue→arrival p50 / p99 ms at 50/s`,
      `${f2(w.p50)} / ${f2(w.p99)}`, `empty queue p50 ${f2(R.latency.p50.med)} (200/s)`, '', 'claim ≤ 2 ms (p50 − empty p50)', verdict(w.p50 - R.latency.p50.med <= 2));
  }
  row(`GET /queue/stats at ${f0(S.statsRows)} rows: p99 ms`, span(R.stats.p99, f2), '', '', '≤ 10', verdict(R.stats.p99.med <= 10));
  row(`RSS MiB: idle / after the burn-down (at once → 11 s later) / after ${f0(S.statsRows)} enqueues (at once → 11 s later)`,
    `${f2(R.rss_idle)} / ${f2(R.rss_after_burn)} → ${f2(R.rss_after_burn_settled)} / ${f2(R.rss_after_fill)} → ${f2(R.rss_after_fill_settled)}`,
    '', '', 'idle ≤ 20, flat (settled within 10 of idle)', verdict(R.rss_idle <= 20 && R.rss_after_fill_settled - R.rss_idle <= 10));
  return rows.join('\n');
}

function peerCell(k) {
  const P = R.peers;
  if (!P) return 'peers not run';
  return ['pgboss', 'graphile'].map((n) => `${n === 'pgboss' ? 'pg-boss' : 'graphile-worker'} ${P[n]?.[k] ? span(P[n][k], f0) : '–'}`).join('; ');
}

async function machine() {
  const v = async (cmd, a) => { try { return (await run(cmd, a)).out.split('\n')[0].trim(); } catch { return 'unknown'; } };
  return [
    `- Date: ${new Date().toISOString()}`,
    `- CPU: ${os.cpus().length} × ${os.cpus()[0].model}; memory ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB; ${os.type()} ${os.release()}`,
    `- PostgreSQL: ${await v('pgbench', ['--version'])} against ${await psql('postgres', 'SHOW server_version')} (default settings: fsync ${await psql('postgres', 'SHOW fsync')}, synchronous_commit ${await psql('postgres', 'SHOW synchronous_commit')})`,
    `- Load: ${(await run('wrk', ['-v'], { anyExit: true })).out.split('\n')[0].trim()}; Node ${process.version}; peers: ${R.peers ? `${R.peers.versions}` : 'not run'}`,
    `- offlineq: Release build, ${process.env.OQ_BENCH_SERVICE_ENV || 'default settings'}; sizes: ${smoke ? 'SMOKE (tiny, not comparable)' : 'full'}, ${S.runs} run(s) each`,
  ].join('\n');
}

async function main() {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'offlineq-bench.'));
  await startPostgres();
  await startSink();
  await startService();
  await sleep(1000);
  R.rss_idle = rssMiB();
  const only = option('--only', null)?.split(','); // for working on one workload
  if (only) {
    const steps = { enqueue: singleEnqueue, batch: batchEnqueue, burn: burnDown, scale: scaleOut, latency, held: heldSnapshot, waiting: claimAmongWaiting, stats: statsAtScale, peers };
    if (process.env.OQ_BENCH_PGSS) await psql('offlineq', 'CREATE EXTENSION pg_stat_statements');
    for (const k of only) await steps[k]();
    if (process.env.OQ_BENCH_PGSS) { // needs OFFLINEQ_PG_EXTRA='-c shared_preload_libraries=pg_stat_statements'
      console.log(await psql('offlineq', "SELECT round(total_exec_time) || ' ms, ' || calls || ' calls, ' || plans || ' plans (' || round(total_plan_time) || ' ms), ' || rows || ' rows, ' || round(shared_blks_hit::numeric / greatest(rows, 1), 1) || ' buffer hits a row: ' || left(regexp_replace(query, '\\s+', ' ', 'g'), 150) FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25"));
    }
    console.log(JSON.stringify(R, null, 1));
    return;
  }
  await singleEnqueue();
  await batchEnqueue();
  await burnDown();
  await scaleOut();
  await latency();
  await heldSnapshot();
  await claimAmongWaiting();
  await statsAtScale();
  if (!flag('--no-peers')) await peers();
  const text = `# offlineq benchmark results\n\n${await machine()}\n\n${table()}\n`;
  console.log(text);
  const analysis = path.join(here, 'ANALYSIS.md');
  writeFileSync(out, text + (existsSync(analysis) && !smoke ? `\n${readFileSync(analysis, 'utf8')}` : ''));
  log(`written ${out}`);
}

main().then(cleanup, async (e) => { console.error(e); await cleanup(); process.exit(1); });
