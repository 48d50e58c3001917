// The dashboard in a real browser (Debian's chromium, headless, through playwright-core)
// against the real service, a real PostgreSQL and a real local upstream: operations appear and
// complete live, auto-sync is toggled, a manual conflict is resolved with an edited merge.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';

const KEY = 'dashboard-admin-key-5d1c';
const env = Object.fromEntries(fs.readFileSync(process.env.OFFLINEQ_TEST_PGENV, 'utf8')
  .split('\n').filter(Boolean).map((l) => l.split('=')));
const DB = 'browser_dashboard';
const shotDir = process.env.OFFLINEQ_ARTIFACTS || '.';

function psql(sql) {
  execFileSync('psql', ['-q', '-X', '-h', env.OQT_PG_HOST, '-p', env.OQT_PG_PORT, '-U', 'postgres', '-d', 'postgres', '-c', sql],
    { stdio: ['ignore', 'ignore', 'inherit'] });
}

// The upstream: /ok answers 201; /res/doc holds a document at version 2 (If-Match "v1" is stale).
let doc = { name: 'theirs', version: 2 };
const received = [];
const upstream = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    received.push({ method: req.method, url: req.url, body });
    if (req.url === '/res/doc') {
      const etag = `"v${doc.version}"`;
      if (req.method === 'GET') {
        res.writeHead(200, { 'Content-Type': 'application/json', ETag: etag });
        return res.end(JSON.stringify({ name: doc.name }));
      }
      if (req.headers['if-match'] && req.headers['if-match'] !== etag) {
        res.writeHead(412, { 'Content-Type': 'application/json' });
        return res.end('{"error":"stale"}');
      }
      doc = { name: JSON.parse(body).name, version: doc.version + 1, body: JSON.parse(body) };
      res.writeHead(200, { 'Content-Type': 'application/json', ETag: `"v${doc.version}"` });
      return res.end(body);
    }
    setTimeout(() => { res.writeHead(201, { 'Content-Type': 'application/json' }); res.end('{"ok":true}'); }, 100);
  });
});

function startService(upstreamUrl) {
  return new Promise((resolve, reject) => {
    const url = `postgresql:///${DB}?host=${env.OQT_PG_HOST}&port=${env.OQT_PG_PORT}&user=postgres`;
    const child = spawn(process.env.OFFLINEQ_BIN, [], {
      env: { ...process.env, OFFLINEQ_DATABASE_URL: url, OFFLINEQ_LISTEN: '127.0.0.1:0', OFFLINEQ_WORKERS: '2',
             OFFLINEQ_API_KEYS: `${KEY}:admin`, OFFLINEQ_UPSTREAMS: `default=${upstreamUrl}`, OFFLINEQ_CHECK_INTERVAL_S: '2' },
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

async function call(base, method, p, body) {
  const res = await fetch(base + p, { method, headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
                                      body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, json: await res.json().catch(() => null) };
}

function check(cond, what) {
  if (!cond) throw new Error(`failed: ${what}`);
  console.log(`ok - ${what}`);
}

let browser, svc;
let failed = 0;
try {
  psql(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  psql(`CREATE DATABASE ${DB}`);
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
  svc = await startService(`http://127.0.0.1:${upstream.address().port}`);
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'] });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });

  await page.goto(svc.base + '/');
  await page.waitForSelector('#keyform', { state: 'visible' });
  check((await page.textContent('#banner')).includes('401'), 'without a key the dashboard says 401 and asks for one');
  await page.fill('#key', KEY);
  await page.click('#keyform button');
  await page.waitForFunction(() => document.getElementById('net-text').textContent === 'online');
  check(true, 'with the key it shows the network online');
  await page.waitForFunction(() => document.getElementById('live').textContent.includes('live'));
  check(true, 'the event stream is connected');

  await page.click('#auto-toggle');
  await page.waitForFunction(() => document.getElementById('auto').textContent === 'off');
  check(true, 'auto-sync stopped from the dashboard');

  for (let i = 0; i < 3; i++) {
    const r = await call(svc.base, 'POST', '/api/offline/queue', { operation_type: 'api_call', payload: { endpoint: `/ok/${i}`, data: { n: i } } });
    check(r.status === 201, `operation ${i} enqueued over the API`);
  }
  await page.waitForFunction(() => document.querySelectorAll('#ops .pill.pending').length === 3, null, { timeout: 10000 });
  check(true, 'the three operations appear live as pending');

  await page.click('#sync-now');
  await page.waitForFunction(() => document.querySelectorAll('#ops .pill.completed').length === 3, null, { timeout: 15000 });
  check(received.filter((r) => r.url.startsWith('/ok/')).length === 3, 'sync now delivered them; they show completed live');
  await page.waitForFunction(() => document.getElementById('last-sync').textContent.includes('3 succeeded'));
  check(true, 'the last sync result is shown');

  await page.click('#auto-toggle');
  await page.waitForFunction(() => document.getElementById('auto').textContent === 'on');
  check(true, 'auto-sync started again');

  await page.selectOption('#strategy', 'manual');
  await page.click('#strategy-set');
  await page.waitForFunction(async () => true);
  let strategy;
  for (let i = 0; i < 50; i++) {
    strategy = (await call(svc.base, 'GET', '/api/offline/sync/conflict-strategy')).json.strategy;
    if (strategy === 'manual') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  check(strategy === 'manual', 'the conflict strategy was set to manual from the dashboard');

  const c = await call(svc.base, 'POST', '/api/offline/queue', { operation_type: 'experiment_sync',
    payload: { endpoint: '/res/doc', if_match: '"v1"', data: { name: 'mine' } } });
  check(c.status === 201, 'a stale experiment_sync enqueued');
  await page.waitForFunction(() => document.querySelectorAll('#ops .pill.conflict').length === 1, null, { timeout: 15000 });
  check(true, 'it shows as a conflict');
  await page.click('#ops .pill.conflict');
  await page.waitForSelector('#d-resolve', { state: 'visible' });
  await page.waitForFunction(() => document.querySelectorAll('#d-attempts tr').length >= 1, null, { timeout: 5000 });
  const tries = await page.$$eval('#d-attempts tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  check(tries.length === 1 && tries[0][0] === '1' && tries[0][3] === 'conflict' && tries[0][4] === '412',
    `the detail panel lists the attempt: ${JSON.stringify(tries)}`);
  check((await page.inputValue('#d-merged')).includes('theirs'), 'the detail panel shows the remote document to edit');
  await page.fill('#d-merged', JSON.stringify({ name: 'merged in the browser', reviewed: true }));
  await page.click('#r-merged');
  await page.waitForFunction((id) => document.querySelector(`#ops tr[data-id="${id}"] .pill.completed`) !== null, c.json.id, { timeout: 15000 });
  check(doc.name === 'merged in the browser' && doc.body.reviewed === true, 'the edited merge reached the upstream; the operation completed');

  for (let i = 3; i < 8; i++)
    await call(svc.base, 'POST', '/api/offline/queue', { operation_type: 'metric_log', payload: { run_id: 'r1', step: i, metrics: { loss: 1 / i } }, delay_s: 3600 });
  await page.click('#ops tr:first-child');
  await page.waitForTimeout(800);
  fs.mkdirSync(shotDir, { recursive: true });
  const shot = path.join(shotDir, 'dashboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  check(fs.statSync(shot).size > 10000, `screenshot saved to ${shot}`);
} catch (e) {
  failed = 1;
  console.error(e.stack || String(e));
} finally {
  if (browser) await browser.close();
  if (svc) { svc.child.kill('SIGTERM'); await new Promise((r) => svc.child.on('exit', r)); }
  upstream.close();
  try { psql(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`); } catch (e) { /* the cluster may be gone */ }
}
console.log(failed ? '0 passed, 1 failed' : '1 passed, 0 failed');
process.exit(failed);
