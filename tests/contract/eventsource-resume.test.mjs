// Issue 11, point 20, with the WHATWG EventSource client (npm `eventsource`): connect, read,
// close; enqueue N operations; reconnect with the Last-Event-ID of the last event read. The
// stream must send every operation.enqueued event after it, exactly once and in order (the
// table's order), for several gap sizes.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { EventSource } from 'eventsource';

const env = Object.fromEntries(fs.readFileSync(process.env.OFFLINEQ_TEST_PGENV, 'utf8')
  .split('\n').filter(Boolean).map((l) => l.split('=')));
const DB = 'contract_eventsource_resume';

function psql(db, sql) {
  return execFileSync('psql', ['-q', '-X', '-A', '-t', '-h', env.OQT_PG_HOST, '-p', env.OQT_PG_PORT, '-U', 'postgres',
    '-d', db, '-c', sql], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

function startService() {
  return new Promise((resolve, reject) => {
    const url = `postgresql:///${DB}?host=${env.OQT_PG_HOST}&port=${env.OQT_PG_PORT}&user=postgres`;
    const child = spawn(process.env.OFFLINEQ_BIN, [], {
      env: { ...process.env, OFFLINEQ_DATABASE_URL: url, OFFLINEQ_LISTEN: '127.0.0.1:0', OFFLINEQ_WORKERS: '0',
             OFFLINEQ_UPSTREAMS: 'default=http://127.0.0.1:9' },
      stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr.on('data', (d) => {
      log += d;
      const m = /"msg":"listening".*?"port":(\d+)/.exec(log);
      if (m) resolve({ child, base: `http://127.0.0.1:${m[1]}` });
    });
    child.on('exit', (code) => reject(new Error(`service exited ${code}: ${log}`)));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function enqueue(base, n) {
  for (let i = 0; i < n; i++) {
    const r = await fetch(`${base}/api/offline/queue`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ operation_type: 'api_call', payload: { endpoint: `/es/${i}` } }) });
    if (r.status !== 201) throw new Error(`enqueue answered ${r.status}`);
  }
}

// Opens a stream (resuming after lastId when given) and collects operation.enqueued ids.
function open(base, lastId) {
  const seen = [];
  const es = new EventSource(`${base}/api/offline/events`, {
    fetch: (input, init) => fetch(input, { ...init, headers: { ...init.headers, ...(lastId ? { 'Last-Event-ID': lastId } : {}) } }),
  });
  es.addEventListener('operation.enqueued', (e) => seen.push(e.lastEventId));
  return { es, seen };
}

async function until(cond, ms) {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(50);
}

// The service notices a closed stream when it next writes: nudge it with events until it
// counts no subscriber.
async function waitNoSubscribers(base) {
  for (let i = 0; i < 300; i++) {
    const text = await (await fetch(`${base}/metrics`)).text();
    if (/\nofflineq_event_subscribers 0\n/.test(text)) return;
    psql(DB, "SELECT offlineq.offlineq_emit('test.nudge', '{}')");
    await sleep(50);
  }
  throw new Error('the service still counts a subscriber');
}

psql('postgres', `DROP DATABASE IF EXISTS ${DB}`);
psql('postgres', `CREATE DATABASE ${DB}`);
const { child, base } = await startService();
let failed = 0;
try {
  for (const gap of [1, 5, 50]) {
    const first = open(base);
    await sleep(300);
    await enqueue(base, 1);
    await until(() => first.seen.length >= 1, 5000);
    if (first.seen.length < 1) throw new Error('the first stream saw nothing');
    const last = first.seen[first.seen.length - 1];
    first.es.close();
    await waitNoSubscribers(base);
    await enqueue(base, gap);
    await sleep(400);
    const [x, id, k] = last.split('-');
    const want = psql(DB, `SELECT string_agg(event_id, ',' ORDER BY xid, id, k) FROM offlineq.offlineq_event_stream `
      + `WHERE type = 'operation.enqueued' AND (xid, id, k) > ('${x}'::xid8, ${id}, ${k})`).split(',');
    const again = open(base, last);
    await until(() => again.seen.length >= want.length, 10000);
    await sleep(300);
    again.es.close();
    const same = again.seen.length === want.length && want.every((w, i) => again.seen[i] === w);
    console.log(`gap ${gap}: resumed after ${last}, ${again.seen.length} of ${want.length} events, ${same ? 'all, in order' : 'DIFFERENT'}`);
    if (!same) {
      console.log(`  table:  ${want.join(' ')}\n  stream: ${again.seen.join(' ')}`);
      failed++;
    }
    await waitNoSubscribers(base);
  }
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  psql('postgres', `DROP DATABASE IF EXISTS ${DB}`);
}
process.exit(failed ? 1 : 0);
