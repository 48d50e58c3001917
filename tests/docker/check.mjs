// Docker files, checked without a Docker engine (none runs where the tests run):
//  - docker-compose.yml: Debian's `docker-compose config` (v1.29) resolves it with a .env made
//    from docker/.env.example: every OFFLINEQ_ variable reaches the service, and without
//    OFFLINEQ_API_KEYS it refuses; `docker compose config` too when that plugin is installed;
//    and a structural check (healthchecks, the service waits for a healthy database, ports);
//  - Dockerfile: its build stage installs exactly the build packages of scripts/deps.sh, its
//    runtime stage the libraries those link against, it runs as non-root with a HEALTHCHECK.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const require = createRequire(path.join(root, 'tests/contract/package.json'));
const YAML = require('yaml');
let failures = 0, checks = 0;
const check = (cond, what) => { checks++; if (!cond) { failures++; console.error(`not ok - ${what}`); } else console.log(`ok - ${what}`); };

const composePath = path.join(root, 'docker/docker-compose.yml');
// docker-compose (v1.29, Debian's) resolves the file as a user would run it: in a copy of the
// docker/ folder with a .env made from .env.example, every OFFLINEQ_ line of it set (the
// commented ones too), and none of the test's own environment.
const envExample = fs.readFileSync(path.join(root, 'docker/.env.example'), 'utf8');
const dotenv = envExample.split('\n').map((l) => l.replace(/^#\s*(OFFLINEQ_\w+)=$/, '$1=value-of-$1'))
  .filter((l) => /^\w+=/.test(l));
const wanted = Object.fromEntries(dotenv.map((l) => l.split(/=(.*)/s).slice(0, 2)));
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(OFFLINEQ_|POSTGRES_|COMPOSE_)/.test(k)));
const resolve = (lines) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oq-compose-'));
  try {
    fs.mkdirSync(path.join(dir, 'docker'));
    fs.copyFileSync(composePath, path.join(dir, 'docker/docker-compose.yml'));
    fs.copyFileSync(path.join(root, 'docker/Dockerfile'), path.join(dir, 'docker/Dockerfile'));
    fs.writeFileSync(path.join(dir, 'docker/.env'), lines.join('\n') + '\n');
    const r = spawnSync('docker-compose', ['config'], { cwd: path.join(dir, 'docker'), env: cleanEnv, encoding: 'utf8' });
    return { status: r.status, out: r.stdout || '', err: (r.stderr || '') + (r.error ? String(r.error) : '') };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
};
const full = resolve(dotenv);
check(full.status === 0, `docker-compose config accepts the compose file with docker/.env.example's variables${full.status === 0 ? '' : ': ' + full.err.trim()}`);
const resolved = full.status === 0 ? YAML.parse(full.out).services.offlineq.environment || {} : {};
for (const [k, v] of Object.entries(wanted).filter(([k2]) => k2.startsWith('OFFLINEQ_')))
  check(resolved[k] === v, `${k} of docker/.env reaches the service (${JSON.stringify(resolved[k])})`);
const nokey = resolve(dotenv.filter((l) => !l.startsWith('OFFLINEQ_API_KEYS=')));
check(nokey.status !== 0 && /OFFLINEQ_API_KEYS/.test(nokey.err), 'docker-compose refuses to start without OFFLINEQ_API_KEYS (no fallback admin key)');
try {
  execFileSync('docker', ['compose', 'version'], { stdio: 'ignore' });
  execFileSync('docker', ['compose', '-f', composePath, '--env-file', path.join(root, 'docker/.env.example'), 'config', '-q'], { stdio: 'inherit' });
  check(true, 'docker compose (v2) config accepts the compose file');
} catch (e) {
  console.log('# the docker compose plugin (v2) is not installed here');
}
const compose = YAML.parse(fs.readFileSync(composePath, 'utf8'));
const pg = compose.services.postgres, svc = compose.services.offlineq;
check(pg && pg.healthcheck && /pg_isready/.test(JSON.stringify(pg.healthcheck.test)), 'postgres has a pg_isready healthcheck');
check(pg.volumes && pg.volumes.some((v) => v.startsWith('pgdata:')), 'postgres keeps its data in a volume');
check(svc.depends_on && svc.depends_on.postgres.condition === 'service_healthy', 'offlineq waits for a healthy postgres');
check(svc.build && svc.build.dockerfile === 'docker/Dockerfile', 'offlineq builds from docker/Dockerfile');
check(/^\$\{OFFLINEQ_API_KEYS:\?/.test(svc.environment.OFFLINEQ_API_KEYS), 'offlineq needs API keys (it listens beyond loopback), with no fallback');
check(svc.env_file === '.env' || (Array.isArray(svc.env_file) && svc.env_file.includes('.env')), 'offlineq reads docker/.env (env_file)');
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
for (const lib of ['libmicrohttpd12', 'libjansson4', 'libpq5', 'libcurl4', 'libuuid1', 'libssl3', 'libsystemd0'])
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
  for (const want of ['libmicrohttpd12', 'libjansson4', 'libpq5', 'libuuid1', 'libssl3', 'libsystemd0'])
    check(owners.has(want), `the binary links ${want}, which the runtime stage installs`);
  check([...owners].some((o) => o.startsWith('libcurl4')), 'the binary links libcurl4');
}
console.log(`${checks - failures} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
