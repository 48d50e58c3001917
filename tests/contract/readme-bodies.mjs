// Every JSON body README.md posts with curl (`-d '{...}'` to `$B/...`) must validate against the
// request schema openapi.yaml gives that operation, so README and spec cannot drift. The enqueue
// (/api/offline/queue) and batch (/api/offline/queue/batch) examples must be among them.
// README writes unknown ids as "…"; that placeholder is read as a UUID.
// Usage: node readme-bodies.mjs openapi.yaml README.md
import fs from 'node:fs';
import YAML from 'yaml';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const [specPath, readmePath] = process.argv.slice(2);
const spec = YAML.parse(fs.readFileSync(specPath, 'utf8'));
const readme = fs.readFileSync(readmePath, 'utf8');
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema(spec, 'openapi');

const PREFIX = '/api/offline';
const PLACEHOLDER_ID = '00000000-0000-4000-8000-000000000000';
const MUST_SEE = ['POST /api/offline/queue', 'POST /api/offline/queue/batch'];
const escape = (s) => s.replace(/~/g, '~0').replace(/\//g, '~1');
const templates = Object.keys(spec.paths).map((t) => ({
  template: t,
  re: new RegExp('^' + t.replace(/\{[^}]+\}/g, '[^/]+') + '$'),
  literal: !t.includes('{'),
}));
const findTemplate = (p) => {
  const hits = templates.filter((t) => t.re.test(p));
  return (hits.find((t) => t.literal) || hits[0] || {}).template;
};

// The shell commands of the README's ```sh blocks: a command ends at a newline outside single
// quotes that is not escaped with a backslash.
function commands(text) {
  const out = [];
  for (const block of text.matchAll(/```sh\n([\s\S]*?)```/g)) {
    let cur = '', quoted = false;
    const src = block[1];
    for (let i = 0; i < src.length; i++) {
      const ch = src[i];
      if (ch === "'") quoted = !quoted;
      if (ch === '\n' && !quoted) {
        if (cur.endsWith('\\')) { cur = cur.slice(0, -1); continue; }
        out.push(cur); cur = ''; continue;
      }
      if (ch === '#' && !quoted && (cur === '' || /\s$/.test(cur))) { // a comment: skip the line
        while (i < src.length && src[i] !== '\n') i++;
        i--; continue;
      }
      cur += ch;
    }
    if (cur.trim()) out.push(cur);
  }
  // `a; b` on one line: each curl on its own
  return out.flatMap((c) => c.split(/;\s+(?=curl\b)/)).map((c) => c.trim()).filter((c) => c.startsWith('curl'));
}

const failures = [];
const seen = new Map();
let checked = 0;
for (const cmd of commands(readme)) {
  const body = cmd.match(/\s(?:-d|--data|--data-raw)\s+'([^']*)'/);
  if (!body) continue; // no inline body (-d @file, --data-binary @file, or none)
  const url = cmd.match(/"?\$B(\/[^\s"'?]*)/);
  if (!url) continue;
  const method = (cmd.match(/-X\s+([A-Z]+)/) || [, 'POST'])[1];
  const path = PREFIX + url[1].replace(/\$[A-Z_]+/g, PLACEHOLDER_ID);
  const template = findTemplate(path);
  const where = `README: ${method} ${url[1]} -d '${body[1].replace(/\s+/g, ' ').slice(0, 120)}'`;
  const op = template && spec.paths[template][method.toLowerCase()];
  if (!op) { failures.push(`${where}: no such operation in openapi.yaml`); continue; }
  if (!op.requestBody?.content?.['application/json']) { failures.push(`${where}: openapi.yaml documents no JSON body`); continue; }
  let doc;
  try {
    doc = JSON.parse(body[1].replaceAll('"…"', JSON.stringify(PLACEHOLDER_ID)));
  } catch (err) {
    failures.push(`${where}: not JSON: ${err.message}`);
    continue;
  }
  const pointer = `openapi#/paths/${escape(template)}/${method.toLowerCase()}/requestBody/content/application~1json/schema`;
  const validate = ajv.getSchema(pointer);
  if (!validate(doc)) failures.push(`${where}: does not match the request schema: ${ajv.errorsText(validate.errors)}`);
  const key = `${method} ${template}`;
  seen.set(key, (seen.get(key) || 0) + 1);
  checked++;
}
for (const key of MUST_SEE) if (!seen.has(key)) failures.push(`README shows no JSON body for ${key} (the check would test nothing)`);

if (failures.length) {
  console.error(failures.join('\n'));
  console.error(`readme: ${failures.length} problem(s) in ${checked} README request bodies`);
  process.exit(1);
}
console.log(`readme: ${checked} request bodies match openapi.yaml (${[...seen].map(([k, n]) => `${k} x${n}`).join(', ')})`);
