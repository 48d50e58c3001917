// Docker files, checked without a Docker engine (none runs where the tests run):
//  - docker-compose.yml: `docker compose config` when the client has compose, and always a
//    structural check (healthchecks, the service waits for a healthy database, localhost ports);
//  - Dockerfile: its build stage installs exactly the build packages of scripts/deps.sh, its
//    runtime stage the libraries those link against, it runs as non-root with a HEALTHCHECK.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const require = createRequire(path.join(root, 'tests/contract/package.json'));
const YAML = require('yaml');
let failures = 0, checks = 0;
const check = (cond, what) => { checks++; if (!cond) { failures++; console.error(`not ok - ${what}`); } else console.log(`ok - ${what}`); };

const composePath = path.join(root, 'docker/docker-compose.yml');
try {
  execFileSync('docker', ['compose', 'version'], { stdio: 'ignore' });
  execFileSync('docker', ['compose', '-f', composePath, 'config', '-q'], { stdio: 'inherit' });
  check(true, 'docker compose config accepts the compose file');
} catch (e) {
  console.log('# docker compose is not installed here: structural checks only');
}
const compose = YAML.parse(fs.readFileSync(composePath, 'utf8'));
const pg = compose.services.postgres, svc = compose.services.offlineq;
check(pg && pg.healthcheck && /pg_isready/.test(JSON.stringify(pg.healthcheck.test)), 'postgres has a pg_isready healthcheck');
check(pg.volumes && pg.volumes.some((v) => v.startsWith('pgdata:')), 'postgres keeps its data in a volume');
check(svc.depends_on && svc.depends_on.postgres.condition === 'service_healthy', 'offlineq waits for a healthy postgres');
check(svc.build && svc.build.dockerfile === 'docker/Dockerfile', 'offlineq builds from docker/Dockerfile');
check(svc.environment.OFFLINEQ_API_KEYS, 'offlineq gets API keys (it listens beyond loopback)');
for (const [name, s] of Object.entries(compose.services))
  for (const p of s.ports || []) check(String(p).startsWith('127.0.0.1:'), `${name} publishes ${p} on localhost only`);
check(compose.services['demo-upstream'] && compose.services['demo-upstream'].profiles.includes('demo'), 'the demo upstream is optional');

const dockerfile = fs.readFileSync(path.join(root, 'docker/Dockerfile'), 'utf8');
const stages = dockerfile.split(/^FROM /m).slice(1);
const pkgs = (stage) => (stage.match(/apt-get install[^&]*?--no-install-recommends\s*\\?\s*([\s\S]*?)(?:&&|$)/) || [, ''])[1]
  .split(/[\s\\]+/).filter((w) => w && !w.startsWith('-'));
const deps = fs.readFileSync(path.join(root, 'scripts/deps.sh'), 'utf8');
const build = deps.match(/want=\(([\s\S]*?)\)/)[1].split(/\s+/).filter(Boolean)
  .filter((p) => !/^postgresql|^acl$/.test(p)); // the server and setfacl are for `make run` only
check(JSON.stringify(pkgs(stages[0]).sort()) === JSON.stringify(build.sort()),
  `the build stage installs the packages of scripts/deps.sh (${build.join(' ')})`);
const runtime = pkgs(stages[1]);
for (const lib of ['libmicrohttpd12', 'libjansson4', 'libpq5', 'libcurl4', 'libuuid1', 'libssl3'])
  check(runtime.includes(lib), `the runtime stage has ${lib}`);
check(!runtime.some((p) => p.endsWith('-dev') || p === 'build-essential'), 'the runtime stage has no build tools');
check(/^USER offlineq$/m.test(dockerfile), 'the service runs as a non-root user');
check(/HEALTHCHECK[\s\S]*\/readyz/.test(dockerfile), 'HEALTHCHECK on /readyz');
// The libraries the built binary really links against are the runtime packages' (dpkg -S).
const bin = process.env.OFFLINEQ_BIN;
if (bin) {
  const libs = execFileSync('ldd', [bin]).toString().split('\n').map((l) => (l.match(/=> (\/\S+)/) || [])[1]).filter(Boolean);
  const owners = new Set();
  for (const lib of libs) {
    try { owners.add(execFileSync('dpkg', ['-S', fs.realpathSync(lib)]).toString().split(':')[0]); } catch (e) { /* not from a package */ }
  }
  for (const want of ['libmicrohttpd12', 'libjansson4', 'libpq5', 'libuuid1', 'libssl3'])
    check(owners.has(want), `the binary links ${want}, which the runtime stage installs`);
  check([...owners].some((o) => o.startsWith('libcurl4')), 'the binary links libcurl4');
}
console.log(`${checks - failures} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
