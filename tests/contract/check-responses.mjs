// Checks every HTTP response the e2e tests recorded against openapi.yaml:
//  - the path and method are documented (or the answer is a documented 404/405 error),
//  - the status is documented for that operation,
//  - the body matches the documented schema (ajv, JSON Schema 2020-12),
//  - every route of api/routes.c is documented, and every queue operation was exercised.
// Usage: node check-responses.mjs openapi.yaml RECORDINGS_DIR
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const [specPath, dir] = process.argv.slice(2);
const spec = YAML.parse(fs.readFileSync(specPath, 'utf8'));
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema(spec, 'openapi');

const failures = [];
const fail = (msg) => failures.push(msg);
const escape = (s) => s.replace(/~/g, '~0').replace(/\//g, '~1');

function resolve(obj, pointer) {
  while (obj && obj.$ref) {
    pointer = obj.$ref.slice(1);
    obj = pointer.split('/').slice(1).reduce((o, k) => o[k.replace(/~1/g, '/').replace(/~0/g, '~')], spec);
  }
  return [obj, pointer];
}

const templates = Object.keys(spec.paths).map((t) => ({
  template: t,
  re: new RegExp('^' + t.replace(/\{[^}]+\}/g, '[^/]+') + '$'),
  literal: !t.includes('{'),
}));

function findTemplate(p) {
  // A literal path beats a templated one (/queue/stats before /queue/{id}).
  const hits = templates.filter((t) => t.re.test(p));
  return (hits.find((t) => t.literal) || hits[0] || {}).template;
}

const errorSchema = ajv.getSchema('openapi#/components/schemas/Error');
const seen = new Set();
let checked = 0;

function checkBody(rec, responsePointer, response, where) {
  const content = response.content;
  if (!content) {
    if (rec.body !== null && rec.body !== undefined) fail(`${where}: documented without a body, got one`);
    return;
  }
  const ct = (rec.content_type || '').split(';')[0].trim();
  if (!content[ct]) return fail(`${where}: content type "${rec.content_type}" not documented`);
  if (ct !== 'application/json') return; // text bodies (metrics, event streams): the type is the contract
  const validate = ajv.getSchema(`openapi#${responsePointer}/content/${escape(ct)}/schema`);
  if (!validate(rec.body)) fail(`${where}: body does not match: ${ajv.errorsText(validate.errors)}\n  ${JSON.stringify(rec.body).slice(0, 400)}`);
}

function check(rec) {
  const where = `${rec.method} ${rec.path} -> ${rec.status}`;
  const template = findTemplate(rec.path);
  if (rec.method === 'OPTIONS' && template) {
    // CORS preflights are answered for every documented path, without a body.
    if (rec.status !== 204 || (rec.body !== null && rec.body !== undefined)) fail(`${where}: a preflight answers 204 without a body`);
    return;
  }
  if (rec.method === 'HEAD' && template) {
    // HEAD answers as GET would, without a body (openapi.yaml's info says so); a path without
    // GET answers 405.
    if (rec.body !== null && rec.body !== undefined) fail(`${where}: a HEAD answer has a body`);
    const get = spec.paths[template].get;
    if (get ? !(get.responses[String(rec.status)] || get.responses.default) : rec.status !== 405)
      fail(`${where}: not a status GET documents`);
    checked++;
    return;
  }
  const op = template && spec.paths[template][rec.method.toLowerCase()];
  if (!template || !op) {
    // Unknown routes and methods must still answer with a documented error shape.
    if (![404, 405].includes(rec.status) || !errorSchema(rec.body)) fail(`${where}: undocumented path or method`);
    return;
  }
  seen.add(`${rec.method} ${template}`);
  const statusKey = String(rec.status);
  const opPointer = `/paths/${escape(template)}/${rec.method.toLowerCase()}`;
  let response = op.responses[statusKey] || op.responses.default;
  if (!response) return fail(`${where}: status not documented`);
  const [resolved, pointer] = resolve(response, `${opPointer}/responses/${op.responses[statusKey] ? statusKey : 'default'}`);
  checkBody(rec, pointer, resolved, where);
  checked++;
}

for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl'))) {
  for (const line of fs.readFileSync(path.join(dir, file), 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const rec = JSON.parse(line);
    // A body the C harness could not load (numbers beyond jansson's range) comes as its text.
    if (rec.body_text !== undefined) rec.body = JSON.parse(rec.body_text);
    check(rec);
  }
}

// Every route in the table is in the contract.
const routesSrc = fs.readFileSync(new URL('../../api/routes.c', import.meta.url), 'utf8');
// The router has one placeholder, {id}, for any one segment; the contract names its parameter
// (/upstreams/{name}/pause).
const specPathOf = (route) => Object.keys(spec.paths).find((t) => t.replace(/\{[^}]+\}/g, '{id}') === route);
for (const m of routesSrc.matchAll(/\{"(GET|POST|PUT|PATCH|DELETE)", "([^"]+)"/g)) {
  const item = spec.paths[specPathOf(m[2])];
  if (!item || !item[m[1].toLowerCase()]) fail(`route ${m[1]} ${m[2]} is not in openapi.yaml`);
}
// Every documented queue operation was exercised by some e2e test.
for (const [template, item] of Object.entries(spec.paths)) {
  if (!template.startsWith('/api/offline/queue')) continue;
  for (const method of ['get', 'post', 'put', 'patch', 'delete']) {
    if (item[method] && !seen.has(`${method.toUpperCase()} ${template}`)) fail(`no e2e test exercised ${method.toUpperCase()} ${template}`);
  }
}

if (failures.length) {
  console.error(failures.join('\n'));
  console.error(`contract: ${failures.length} problem(s) in ${checked} checked responses`);
  process.exit(1);
}
if (checked === 0) {
  console.error('contract: no recorded responses');
  process.exit(1);
}
console.log(`contract: ${checked} responses match openapi.yaml`);
