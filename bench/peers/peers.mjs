// The peers' side of the benchmark, run by peers/run.sh under Node 22 with pg-boss and
// graphile-worker installed beside it. Same cluster, same sink, same sizes as offlineq.
// Prints one line: PEERS {"pgboss":{...},"graphile":{...},"versions":"..."}
import pg from 'pg';
import { PgBoss } from 'pg-boss';
import { run, makeWorkerUtils, Logger } from 'graphile-worker';

const quiet = new Logger(() => (level, message) => { if (level === 'error') console.error('[graphile]', message); });

const E = process.env;
const JOBS = Number(E.OQ_PEER_JOBS || 100000);
const RUNS = Number(E.OQ_PEER_RUNS || 3);
const SEND_SECS = Number(E.OQ_PEER_SEND_SECS || 5);
const SINK = E.OQ_PEER_SINK;
const url = (db) => `postgresql://postgres@localhost/${db}?host=${encodeURIComponent(E.OQ_PEER_PGHOST)}&port=${E.OQ_PEER_PGPORT}`;
const conn = (db) => ({ host: E.OQ_PEER_PGHOST, port: Number(E.OQ_PEER_PGPORT), user: 'postgres', database: db });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...m) => console.error('[peers]', ...m);
const stats = (xs) => { const s = [...xs].sort((a, b) => a - b); return { med: s[Math.floor(s.length / 2)], min: s[0], max: s.at(-1), runs: xs }; };
const payload = (i) => ({ endpoint: '/sink', data: { i, source: 'bench' } });

async function sql(db, text) {
  const c = new pg.Client(conn(db));
  await c.connect();
  try { return (await c.query(text)).rows; } finally { await c.end(); }
}

async function until(cond) { while (!(await cond())) await sleep(20); }

// Single enqueue with 32 in flight for SEND_SECS: ops/s.
async function sendRate(sendOne) {
  let n = 0; const end = Date.now() + SEND_SECS * 1000; const t0 = Date.now();
  await Promise.all(Array.from({ length: 32 }, async () => { while (Date.now() < end) { await sendOne(n); n++; } }));
  return n / ((Date.now() - t0) / 1000);
}

// Batches of 1,000 with 2 in flight for SEND_SECS: ops/s.
async function insertRate(insertMany) {
  let n = 0; const end = Date.now() + SEND_SECS * 1000; const t0 = Date.now();
  const batch = Array.from({ length: 1000 }, (_, i) => payload(i));
  await Promise.all([0, 1].map(async () => { while (Date.now() < end) { await insertMany(batch); n += 1000; } }));
  return n / ((Date.now() - t0) / 1000);
}

const post = (body) => fetch(SINK, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) })
  .then((r) => { if (r.status !== 201) throw new Error(`sink answered ${r.status}`); return r.arrayBuffer(); });

// ---------- pg-boss ----------
async function pgboss() {
  const boss = new PgBoss({ ...conn('pgboss'), max: 10 });
  boss.on('error', (e) => log('pg-boss error', e.message));
  await boss.start();
  const out = {};
  let q = 0;
  const fresh = async () => { const name = `bench${q++}`; await boss.createQueue(name); return name; };
  const fillQueue = async (name) => {
    for (let i = 0; i < JOBS; i += 1000) await boss.insert(name, Array.from({ length: Math.min(1000, JOBS - i) }, (_, j) => ({ data: payload(i + j) })));
    await sql('pgboss', 'VACUUM ANALYZE pgboss.job');
  };
  const open = async (name) => Number((await sql('pgboss', `SELECT count(*) AS n FROM pgboss.job WHERE name = '${name}' AND state IN ('created', 'retry', 'active')`))[0].n);
  const burn = async (handler) => {
    const xs = [];
    for (let r = 0; r < RUNS; r++) {
      const name = await fresh();
      await fillQueue(name);
      const t0 = Date.now();
      // pg-boss waits pollingIntervalSeconds between fetches unless told otherwise: a full
      // batch means more is waiting, so notifyWorker() (its documented bypass) fetches at once.
      for (let w = 0; w < 4; w++) {
        let id = null;
        id = await boss.work(name, { batchSize: 500, pollingIntervalSeconds: 0.5 }, async (jobs) => {
          await handler(jobs);
          if (jobs.length === 500 && id) boss.notifyWorker(id);
        });
      }
      await until(async () => (await open(name)) === 0);
      xs.push(JOBS / ((Date.now() - t0) / 1000));
      await boss.offWork(name);
    }
    return stats(xs);
  };
  const xs = [];
  for (let r = 0; r < RUNS; r++) { const name = await fresh(); xs.push(await sendRate((i) => boss.send(name, payload(i)))); }
  out.send = stats(xs);
  const ys = [];
  for (let r = 0; r < RUNS; r++) { const name = await fresh(); ys.push(await insertRate((b) => boss.insert(name, b.map((data) => ({ data }))))); }
  out.insert = stats(ys);
  out.burn_noop = await burn(async () => {});
  out.burn_http = await burn(async (jobs) => { await Promise.all(jobs.map((j) => post(j.data.data))); });
  await boss.stop({ graceful: false, wait: true });
  log('pg-boss', JSON.stringify(out));
  return out;
}

// ---------- graphile-worker ----------
async function graphile() {
  const utils = await makeWorkerUtils({ connectionString: url('graphile'), logger: quiet });
  await utils.migrate();
  const out = {};
  const preset = { worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } };
  const open = async () => Number((await sql('graphile', 'SELECT count(*) AS n FROM graphile_worker._private_jobs'))[0].n);
  const xs = [];
  for (let r = 0; r < RUNS; r++) xs.push(await sendRate((i) => utils.addJob('noop', payload(i))));
  out.send = stats(xs);
  await sql('graphile', 'DELETE FROM graphile_worker._private_jobs');
  const ys = [];
  for (let r = 0; r < RUNS; r++) ys.push(await insertRate((b) => utils.addJobs(b.map((p) => ({ identifier: 'noop', payload: p })))));
  out.insert = stats(ys);
  await sql('graphile', 'DELETE FROM graphile_worker._private_jobs');
  const burn = async (task) => {
    const zs = [];
    for (let r = 0; r < RUNS; r++) {
      for (let i = 0; i < JOBS; i += 1000) await utils.addJobs(Array.from({ length: Math.min(1000, JOBS - i) }, (_, j) => ({ identifier: 'job', payload: payload(i + j) })));
      await sql('graphile', 'VACUUM ANALYZE graphile_worker._private_jobs');
      const t0 = Date.now();
      const runner = await run({ connectionString: url('graphile'), concurrency: 32, noHandleSignals: true,
        pollInterval: 500, taskList: { job: task }, preset,
        logger: quiet });
      await until(async () => (await open()) === 0);
      zs.push(JOBS / ((Date.now() - t0) / 1000));
      await runner.stop();
    }
    return stats(zs);
  };
  out.burn_noop = await burn(async () => {});
  out.burn_http = await burn(async (p) => { await post(p.data); });
  await utils.release();
  log('graphile-worker', JSON.stringify(out));
  return out;
}

const result = { pgboss: await pgboss(), graphile: await graphile(), versions: E.OQ_PEER_VERSIONS || '' };
console.log(`PEERS ${JSON.stringify(result)}`);
process.exit(0);
