// The dashboard in a real browser (Debian's chromium, headless, through playwright-core)
// against the real service, a real PostgreSQL and a real local upstream: operations appear and
// complete live, auto-sync is toggled, a manual conflict is resolved with an edited merge; the
// history charts show what was enqueued, search by id opens an operation, attempts read "1
// attempt", bulk retry and delete of the shown filter confirm with the dry run's count, and the
// upstreams panel shows the state and pauses and resumes an upstream.
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
const HOSTILE = '<img src=x onerror="window.__pwned=1"><u id="pwn">u</u>';
let badFails = true; // /bad answers 400 (failed at once) while this holds, then 201
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
    if (req.url === '/hostile') {
      res.writeHead(400, { 'Content-Type': 'text/html' });
      return res.end(HOSTILE);
    }
    if (req.url.startsWith('/bad') && badFails) {
      res.writeHead(400, { 'Content-Type': 'application/json' });
      return res.end('{"error":"refused"}');
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
  await page.click(`#ops tr[data-id="${c.json.id}"]`);
  const twice = await page.waitForFunction((id) => {
    const dd = [...document.querySelectorAll('#d-meta dd')].map((d) => d.textContent);
    return document.getElementById('d-id').textContent === id && document.querySelectorAll('#d-attempts tr').length === 2
      && dd[0] === 'completed' && dd[2] === '2 attempts';
  }, c.json.id, { timeout: 5000 }).then(() => true, () => false);
  const dd = await page.$$eval('#d-meta dd', (d) => d.map((x) => x.textContent));
  check(twice, `the resolved conflict, sent again, reads "${dd[2]}" (its two attempts on record), status ${dd[0]}`);

  for (let i = 3; i < 8; i++)
    await call(svc.base, 'POST', '/api/offline/queue', { operation_type: 'metric_log', payload: { run_id: 'r1', step: i, metrics: { loss: 1 / i } }, delay_s: 3600 });

  // The history: 9 enqueued (3 api_call, 1 experiment_sync, 5 metric_log), 4 completed, none failed.
  await page.waitForFunction(() => document.getElementById('t-enqueued').textContent === '9'
    && document.getElementById('t-completed').textContent === '4', null, { timeout: 20000 });
  const chart = await page.$$eval('#chart-flow [data-series]', (gs) => gs.map((g) => [g.dataset.series, g.dataset.values.split(',').map(Number),
    g.querySelectorAll('rect.bar').length, g.querySelector('polyline') ? g.querySelector('polyline').getAttribute('points').split(' ').length : 0]));
  const series = (name) => chart.find(([s]) => s === name);
  const sum = (name) => series(name)[1].reduce((a, b) => a + b, 0);
  check(chart.length === 3 && chart.every(([, v]) => v.length === 90) && series('enqueued')[3] === 90,
    `the flow chart has 3 series of 90 buckets, enqueued a line of 90 points: ${JSON.stringify(chart.map(([s, , b, l]) => [s, b, l]))}`);
  check(sum('enqueued') === 9 && sum('completed') === 4 && sum('failed') === 0, `the chart's values: enqueued 9, completed 4, failed 0`);
  check(series('completed')[2] === series('completed')[1].filter((v) => v > 0).length && series('failed')[2] === 0,
    'a completed bar for each bucket with completions, no failed bar');
  const hist = (await call(svc.base, 'GET', '/api/offline/queue/stats/history')).json;
  const last = series('enqueued')[1];
  check(hist.points.length === 90 && hist.points.slice(0, 80).every((p, i) => p.enqueued === last[i]),
    'the chart shows the buckets of GET /queue/stats/history');
  await page.waitForFunction(() => document.getElementById('t-depth').textContent === '5', null, { timeout: 20000 });
  const depth = await page.$eval('#chart-depth [data-series="depth"]', (g) => g.dataset.values.split(','));
  check(depth.length === 90 && depth[89] === '5', 'the depth chart ends at the 5 waiting operations');

  // Attempts as made: a first-try completion is "1 attempt", a waiting one "not tried yet".
  const okId = (await call(svc.base, 'GET', '/api/offline/queue?status=completed&operation_type=api_call&limit=1')).json.operations[0].id;
  await page.waitForSelector(`#ops tr[data-id="${okId}"]`);
  check(await page.textContent(`#ops tr[data-id="${okId}"] td.attempts`) === '1 attempt', 'a completed first try reads "1 attempt" in the list');
  check((await page.$$eval('#ops .pill.pending', (ps) => ps.map((p) => p.closest('tr').querySelector('td.attempts').textContent)))
    .every((t) => t === 'not tried yet'), 'a waiting operation reads "not tried yet"');

  // Search by id opens it, with its attempt.
  await page.fill('#search-id', okId);
  await page.click('#search button');
  await page.waitForFunction((id) => document.getElementById('d-id').textContent === id, okId);
  const meta = await page.$$eval('#d-meta dd', (dd) => dd.map((d) => d.textContent));
  check(meta[2] === '1 attempt', `search by id opens the operation; its detail reads "1 attempt"`);
  await page.waitForFunction(() => document.querySelectorAll('#d-attempts tr td').length === 7);
  const one = await page.$$eval('#d-attempts tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  check(one.length === 1 && one[0][3] === 'succeeded' && one[0][4] === '201', `its detail lists the attempt: ${JSON.stringify(one)}`);
  await page.fill('#search-id', '01a20000-0000-7000-8000-000000000000');
  await page.click('#search button');
  await page.waitForFunction(() => document.getElementById('notice').textContent.includes('No operation with id'));
  check(true, 'an unknown id says so');

  // Bulk retry of the shown filter: 2 failed api_call (and 1 failed metric_log, not shown).
  const bad = [];
  for (let i = 0; i < 2; i++)
    bad.push((await call(svc.base, 'POST', '/api/offline/queue', { operation_type: 'api_call', payload: { endpoint: `/bad/${i}` } })).json.id);
  for (const id of bad) {
    for (let i = 0; i < 100 && (await call(svc.base, 'GET', `/api/offline/queue/${id}`)).json.status !== 'failed'; i++)
      await new Promise((r) => setTimeout(r, 100));
  }
  await page.selectOption('#f-status', 'failed');
  await page.selectOption('#f-type', 'api_call');
  await page.waitForFunction(() => document.querySelectorAll('#ops .pill.failed').length === 2, null, { timeout: 10000 });
  check(await page.isEnabled('#bulk-retry'), 'bulk retry is offered for the failed filter');
  badFails = false;
  await page.click('#bulk-retry');
  await page.waitForSelector('#modal', { state: 'visible' });
  const retryText = await page.textContent('#modal-text');
  check(retryText === 'Retry 2 operations matching status failed, type api_call?', `the confirmation names the dry run's count: "${retryText}"`);
  await page.click('#modal-ok');
  await page.waitForFunction(() => document.getElementById('notice').textContent.startsWith('2 operations retried'));
  let after;
  for (let i = 0; i < 100; i++) {
    after = await Promise.all(bad.map(async (id) => (await call(svc.base, 'GET', `/api/offline/queue/${id}`)).json));
    if (after.every((o) => o.status === 'completed')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  check(after.every((o) => o.status === 'completed' && o.retry_count === 0), 'both were retried (attempts reset) and completed, as the API shows');

  // Bulk delete of the shown filter: the 5 waiting metric_log; cancel first, then confirm.
  await page.selectOption('#f-status', 'pending');
  await page.selectOption('#f-type', 'metric_log');
  await page.waitForFunction(() => document.querySelectorAll('#ops .pill.pending').length === 5, null, { timeout: 10000 });
  await page.click('#bulk-delete');
  await page.waitForSelector('#modal', { state: 'visible' });
  const delText = await page.textContent('#modal-text');
  check(delText === 'Delete 5 operations matching status pending, type metric_log?', `the delete confirmation names the count: "${delText}"`);
  await page.click('#modal-cancel');
  await page.waitForSelector('#modal', { state: 'hidden' });
  check((await call(svc.base, 'GET', '/api/offline/queue?status=pending&operation_type=metric_log')).json.operations.length === 5, 'cancel deletes nothing');
  await page.click('#bulk-delete');
  await page.waitForSelector('#modal', { state: 'visible' });
  await page.click('#modal-ok');
  await page.waitForFunction(() => document.getElementById('notice').textContent.startsWith('5 operations deleted'));
  const left = (await call(svc.base, 'GET', '/api/offline/queue?status=pending&operation_type=metric_log')).json.operations.length;
  const stats = (await call(svc.base, 'GET', '/api/offline/queue/stats')).json;
  check(left === 0 && !(stats.by_type.metric_log || {}).pending, 'the 5 were deleted, as the API shows');

  // Clear completed asks first, naming the count; cancel deletes nothing.
  const completedBefore = (await call(svc.base, 'GET', '/api/offline/queue/stats')).json.completed;
  await page.waitForFunction((n) => document.querySelector('#stats [data-k="completed"] b').textContent === String(n), completedBefore);
  await page.click('#clear');
  await page.waitForSelector('#modal', { state: 'visible' });
  const clearText = await page.textContent('#modal-text');
  check(clearText === `Delete ${completedBefore} completed operation${completedBefore === 1 ? '' : 's'}?`, `clear completed names the count: "${clearText}"`);
  await page.click('#modal-cancel');
  await page.waitForSelector('#modal', { state: 'hidden' });
  check((await call(svc.base, 'GET', '/api/offline/queue/stats')).json.completed === completedBefore, 'cancelling clear completed deletes nothing');

  // A hostile payload and upstream answer stay text.
  const h = await call(svc.base, 'POST', '/api/offline/queue', { operation_type: 'api_call', payload: { endpoint: '/hostile', data: { note: HOSTILE } } });
  for (let i = 0; i < 100 && (await call(svc.base, 'GET', `/api/offline/queue/${h.json.id}`)).json.status !== 'failed'; i++)
    await new Promise((r) => setTimeout(r, 100));
  await page.selectOption('#f-status', 'failed');
  await page.selectOption('#f-type', 'api_call');
  // the list of the second filter is the one clicked in (the first one's rows may differ)
  await page.waitForFunction((id) => document.querySelector(`#ops tr[data-id="${id}"]`) !== null
    && [...document.querySelectorAll('#ops tr')].every((tr) => tr.children[1].textContent === 'api_call'), h.json.id);
  await page.click(`#ops tr[data-id="${h.json.id}"]`);
  await page.waitForFunction((x) => document.getElementById('d-payload').textContent.includes(JSON.stringify(x))
    && [...document.querySelectorAll('#d-attempts td')].some((td) => td.title === x), HOSTILE, { timeout: 10000 });
  check(await page.evaluate(() => window.__pwned === undefined && !document.querySelector('main img') && !document.getElementById('pwn')),
    'a hostile payload and upstream answer are shown as text, not markup');

  // The upstreams panel: the state, and pause/resume through it.
  const ups = await call(svc.base, 'GET', '/api/offline/upstreams');
  check(ups.status === 200 && ups.json.upstreams.length === 1, 'GET /upstreams lists the one upstream');
  const row = '#upstreams tr[data-name="default"]';
  await page.waitForSelector(row);
  const state = await page.textContent(`${row} .pill`);
  check(state === ups.json.upstreams[0].breaker.state.replace('_', ' ') && state === 'closed' && !ups.json.upstreams[0].paused,
    `the upstreams panel shows default ${state}`);
  await page.click(`${row} button`);
  await page.waitForFunction((r) => document.querySelector(`${r} .pill`).textContent === 'paused'
    && document.querySelector(`${r} button`).textContent === 'Resume', row, { timeout: 10000 });
  check((await call(svc.base, 'GET', '/api/offline/upstreams')).json.upstreams[0].paused === true, 'Pause paused it (the API says paused; the button now offers Resume)');
  const held = await call(svc.base, 'POST', '/api/offline/queue', { operation_type: 'api_call', payload: { endpoint: '/ok/held' } });
  await page.waitForFunction((r) => document.querySelector(`${r} td:nth-child(4)`).textContent === '1', row, { timeout: 10000 });
  await new Promise((r) => setTimeout(r, 1000));
  check((await call(svc.base, 'GET', `/api/offline/queue/${held.json.id}`)).json.status === 'pending' && !received.some((r) => r.url === '/ok/held'),
    'while paused an operation for it waits (the panel counts it pending)');
  const pausedUp = (await call(svc.base, 'GET', '/api/offline/upstreams')).json.upstreams[0];
  await page.waitForFunction((r) => document.querySelector(`${r} td.eta`).textContent === 'time left unknown'
    && / pending: time left unknown$/.test(document.getElementById('eta').textContent), row, { timeout: 10000 });
  check(pausedUp.eta_s === null && (await call(svc.base, 'GET', '/api/offline/sync/status')).json.eta_s === null,
    'while paused nothing drains: eta_s is null and the panel says the time left is unknown');
  await page.click(`${row} button`);
  await page.waitForFunction((r) => document.querySelector(`${r} .pill`).textContent === 'closed', row, { timeout: 10000 });
  let heldOp;
  for (let i = 0; i < 100; i++) {
    heldOp = (await call(svc.base, 'GET', `/api/offline/queue/${held.json.id}`)).json;
    if (heldOp.status === 'completed') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  check((await call(svc.base, 'GET', '/api/offline/upstreams')).json.upstreams[0].paused === false && heldOp.status === 'completed',
    'Resume resumed it: the waiting operation was delivered');
  await page.waitForFunction((r) => document.querySelector(`${r} td.eta`).textContent === 'drained', row, { timeout: 10000 });
  const drained = (await call(svc.base, 'GET', '/api/offline/upstreams')).json.upstreams[0];
  check(drained.eta_s === 0 && drained.pending === 0, 'drained: eta_s 0 and the panel says so');

  // A click is not overwritten by a slower refresh of the operation shown before it: the list's
  // refresh asks for the shown one again (held back 1.5 s here), the click asks for another.
  // Before, the refresh's answer came last and the panel went back to the old operation.
  await page.selectOption('#f-status', 'completed');
  await page.selectOption('#f-type', 'api_call');
  await page.waitForSelector(`#ops tr[data-id="${bad[1]}"]`);
  await page.click(`#ops tr[data-id="${bad[0]}"]`);
  await page.waitForFunction((id) => document.getElementById('d-id').textContent === id, bad[0]);
  const slow = new RegExp(`/api/offline/queue/${bad[0]}$`);
  await page.route(slow, async (route) => {
    const response = await route.fetch();
    await new Promise((r) => setTimeout(r, 1500));
    await route.fulfill({ response });
  });
  await page.selectOption('#f-type', '');
  await page.waitForTimeout(200);
  await page.click(`#ops tr[data-id="${bad[1]}"]`);
  await page.waitForTimeout(2500);
  await page.unroute(slow);
  const shownId = await page.textContent('#d-id');
  check(shownId === bad[1], `the operation clicked last is the one shown (${shownId === bad[1] ? 'it' : shownId === bad[0] ? 'the one before' : shownId})`);

  await page.selectOption('#f-status', 'pending,in_progress,completed,failed,conflict');
  await page.selectOption('#f-type', '');
  await page.click(`#ops tr[data-id="${okId}"]`);
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
