// Test harness of the browser tests: a private sipbx daemon on free loopback ports with a
// temporary database, SIPp phones against it, and the headless browsers Debian ships (never
// a downloaded one): Chromium driven by playwright-core, Firefox ESR by puppeteer-core.
//
// With SIPBX_WEB_HTTPS=1 (run.mjs --https) the daemon serves HTTPS too, with the certificate
// it generates, and sx.base is its https:// URL. This process's fetch and sx.connect trust
// exactly that certificate; the browser context ignores certificate errors (playwright's own
// requests, page.request, know no other way), and the test compares the fingerprint the
// settings page shows with the one sipbx printed.

import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import https from 'node:https';
import tls from 'node:tls';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const HOST = '127.0.0.1';
export const SIPBX = process.env.SIPBX_BIN || path.join(HERE, '../../build/sipbx');
export const WEB_ROOT = process.env.SIPBX_WEB_ROOT || path.join(HERE, '../../web');
export const SIPP = process.env.SIPP || '/usr/bin/sipp';
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';
export const ARTIFACTS = process.env.SIPBX_WEB_ARTIFACTS || path.join(os.tmpdir(), 'sipbx-web-artifacts');

/** A display name that would run script were it ever shown as markup. */
export const XSS = '<img src=x onerror=alert(1)>';
/** The SIP passwords of the test accounts. */
export const PW = { 100: 'secret100', 101: 'secret101', 102: 'secret102' };

/** The dashboard over HTTPS (run.mjs --https). */
export const HTTPS = process.env.SIPBX_WEB_HTTPS === '1';
// The certificate of the daemon last started over HTTPS: what fetch and Chromium trust.
let pinned = null; // { pem }

/** fetch, for https:// URLs trusting only the pinned certificate (Node 20's fetch takes no
 *  CA of its own); anything else goes to the built-in fetch. Enough of fetch for these tests:
 *  method, headers, body; no redirects followed. */
const builtinFetch = globalThis.fetch;
async function pinnedFetch(url, opts = {}) {
  const u = new URL(String(url));
  if (u.protocol !== 'https:' || !pinned) return builtinFetch(url, opts);
  const headers = Object.fromEntries(new Headers(opts.headers || {}));
  return new Promise((resolve, reject) => {
    const req = https.request(u, { method: opts.method || 'GET', headers, ca: pinned.pem, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const h = new Headers();
        for (let i = 0; i < res.rawHeaders.length; i += 2) h.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
        const empty = [101, 204, 205, 304].includes(res.statusCode) || opts.method === 'HEAD';
        resolve(new Response(empty ? null : Buffer.concat(chunks), { status: res.statusCode, headers: h }));
      });
    });
    req.on('error', reject);
    if (opts.body !== undefined && opts.body !== null) req.write(opts.body);
    req.end();
  });
}
if (HTTPS) globalThis.fetch = pinnedFetch;

const SANITIZER_MARKS = ['ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:',
  'SUMMARY: AddressSanitizer', 'SUMMARY: UndefinedBehaviorSanitizer', 'WARNING: ThreadSanitizer'];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function bindUdp(port) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => { s.close(); resolve(null); });
    s.bind(port, HOST, () => { const p = s.address().port; resolve({ s, p }); });
  });
}

function bindTcp(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(null));
    s.listen(port, HOST, () => resolve({ s, p: s.address().port }));
  });
}

/** A loopback port free for both UDP and TCP right now. */
export async function freePort() {
  for (let i = 0; i < 100; i++) {
    const u = await bindUdp(0);
    if (!u) continue;
    const t = await bindTcp(u.p);
    u.s.close();
    if (t) { await new Promise((r) => t.s.close(r)); return u.p; }
  }
  throw new Error('no free loopback port');
}

/** True while some socket on this host has UDP port bound. Read from /proc, so that the
 *  probe never takes the port from the process about to bind it (as binding it would). */
export function udpBound(port) {
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    let lines;
    try { lines = fs.readFileSync(table, 'utf8').trim().split('\n').slice(1); } catch { continue; }
    // "sl local_address ...": the local address is hex IP:hex port
    if (lines.some((l) => parseInt(l.trim().split(/\s+/)[1].split(':').pop(), 16) === port)) return true;
  }
  return false;
}

/** A running sipbx: start() resolves once it printed its banner. */
export class Sipbx {
  constructor() {
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sipbx-web-'));
    this.db = path.join(this.tmp, 'sipbx.db');
    this.stdout = '';
    this.stderr = '';
  }

  async start(extraArgs = []) {
    this.sipPort = await freePort();
    this.httpPort = await freePort();
    this.httpsPort = HTTPS ? await freePort() : null;
    this.base = HTTPS ? `https://${HOST}:${this.httpsPort}` : `http://${HOST}:${this.httpPort}`;
    const args = ['serve', '--db', this.db, '--domain', HOST, '--sip', `${HOST}:${this.sipPort}`,
      '--http', `${HOST}:${this.httpPort}`, '--web-root', WEB_ROOT, '--ring-timeout', '30',
      ...(HTTPS ? ['--https', `${HOST}:${this.httpsPort}`] : []), ...extraArgs];
    this.proc = spawn(SIPBX, args, { cwd: this.tmp, stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'detect_leaks=1' } });
    this.proc.stdout.on('data', (d) => { this.stdout += d; });
    this.proc.stderr.on('data', (d) => { this.stderr += d; });
    this.exited = new Promise((r) => this.proc.on('exit', (code, sig) => r({ code, sig })));
    const deadline = Date.now() + 20000;
    while (!/Dashboard: /.test(this.stdout)) {
      if (this.proc.exitCode !== null) throw new Error(`sipbx exited ${this.proc.exitCode}: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`sipbx did not start:\n${this.stdout}\n${this.stderr}`);
      await sleep(50);
    }
    const m = /password '([^']+)'/.exec(this.stdout);
    this.password = m ? m[1] : null;
    if (HTTPS) {
      // the certificate sipbx generated in its data directory (the database's)
      const pem = fs.readFileSync(path.join(this.tmp, 'tls', 'cert.pem'), 'utf8');
      pinned = { pem };
      this.certPem = pem;
      this.fingerprint = /fingerprint ([0-9A-F:]{95})/.exec(this.stdout)?.[1];
    }
    return this;
  }

  /** A raw connection to where the dashboard is served (TLS, trusting its certificate, over
   *  HTTPS); onConnect runs once it can be written to. */
  connect(onConnect) {
    if (!HTTPS) return net.connect(this.httpPort, HOST, onConnect);
    return tls.connect({ port: this.httpsPort, host: HOST, ca: this.certPem }, onConnect);
  }

  /** The API with a token made on the command line (for set-up and checks, not the UI). */
  async token() {
    if (!this._token) {
      this._token = execFileSync(SIPBX, ['token', 'create', 'web-tests', '--db', this.db], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    }
    return this._token;
  }

  async api(method, p, body) {
    const headers = { Authorization: `Bearer ${await this.token()}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(this.base + '/api/v1' + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: r.status, json, text, headers: r.headers };
  }

  /** SIGTERM; the daemon must exit 0 without a sanitizer report. */
  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return this.check();
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 15000);
    const { code, sig } = await this.exited;
    clearTimeout(t);
    this.exitCode = code;
    if (code !== 0) throw new Error(`sipbx exited ${code} (${sig}):\n${this.stderr.slice(-4000)}`);
    return this.check();
  }

  check() {
    const bad = SANITIZER_MARKS.filter((m) => this.stderr.includes(m));
    if (bad.length) throw new Error(`sanitizer report from sipbx:\n${this.stderr.slice(-6000)}`);
  }

  /** Removes the temporary directory (kept when SIPBX_WEB_KEEP is set, for a post-mortem). */
  cleanup() {
    if (process.env.SIPBX_WEB_KEEP) console.log(`# kept ${this.tmp}`);
    else fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}

/** One SIPp process against sx. Resolves {code, out} when it ends; .port is its local port. */
export class Sipp {
  constructor(sx, scenario, { user, password, port, keys = {}, pauseMs, timeout = '30s', calls = 1, rate = 10, extra = [] } = {}) {
    this.port = port;
    this.scenario = scenario;
    const stem = path.join(sx.tmp, `${path.basename(scenario, '.xml')}-${port}-${Date.now()}`);
    this.stem = stem;
    const args = ['-sf', path.join(HERE, 'sipp', scenario), '-key', 'user', user, '-key', 'domain', HOST];
    for (const [k, v] of Object.entries(keys)) args.push('-key', k, v);
    if (password) args.push('-au', user, '-ap', password);
    args.push(`${HOST}:${sx.sipPort}`, '-i', HOST, '-p', String(port), '-t', 'u1', '-m', String(calls),
      ...(calls > 1 ? ['-l', String(calls), '-r', String(rate)] : []),
      '-nostdin', '-timeout', timeout, '-timeout_error', '-trace_msg', '-message_file', stem + '.msg',
      '-trace_err', '-error_file', stem + '.err');
    if (pauseMs !== undefined) args.push('-d', String(pauseMs));
    args.push(...extra);
    this.out = '';
    this.proc = spawn(SIPP, args, { cwd: sx.tmp, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout.on('data', (d) => { this.out += d; });
    this.proc.stderr.on('data', (d) => { this.out += d; });
    this.done = new Promise((r) => this.proc.on('exit', (code) => r(code)));
  }

  /** Resolves once SIPp listens on its port (a UAS must before the INVITE comes). */
  async listening() {
    const deadline = Date.now() + 10000;
    while (!udpBound(this.port)) {
      if (this.proc.exitCode !== null) throw new Error(`sipp ${this.scenario} ended early:\n${this.logs()}`);
      if (Date.now() > deadline) throw new Error(`sipp ${this.scenario} does not listen on ${this.port}`);
      await sleep(20);
    }
  }

  /** Waits for the end; SIPp must have succeeded. */
  async ok(ms = 45000) {
    let timer;
    const code = await Promise.race([this.done, new Promise((r) => { timer = setTimeout(() => r('timeout'), ms); })]);
    clearTimeout(timer);
    if (code === 'timeout') { this.proc.kill('SIGKILL'); throw new Error(`sipp ${this.scenario} did not end:\n${this.logs()}`); }
    if (code !== 0) throw new Error(`sipp ${this.scenario} exited ${code}:\n${this.logs()}`);
  }

  logs() {
    let s = this.out.slice(-3000);
    for (const ext of ['.err', '.msg']) {
      try { s += `\n--- ${ext}\n` + fs.readFileSync(this.stem + ext, 'utf8').slice(-4000); } catch { /* none */ }
    }
    return s;
  }

  kill() { if (this.proc.exitCode === null) this.proc.kill('SIGKILL'); }
}

/** G.711 mu-law of a 16-bit sample (ITU-T G.191's ulaw_compress). */
export function ulaw(x) {
  let absno = x < 0 ? ((~x) >> 2) + 33 : (x >> 2) + 33;
  if (absno > 0x1FFF) absno = 0x1FFF;
  let seg = 1;
  for (let i = absno >> 6; i; i >>= 1) seg++;
  const low = (0x0F - ((absno >> seg) & 0x0F)) | ((8 - seg) << 4);
  return x >= 0 ? low | 0x80 : low;
}

/** seconds of a loud test signal (three tones) at 8 kHz, as 16-bit samples. */
export function testSignal(seconds) {
  const out = [];
  for (let i = 0; i < seconds * 8000; i++) {
    const t = i / 8000;
    out.push(Math.round(6000 * Math.sin(2 * Math.PI * 350 * t) + 3000 * Math.sin(2 * Math.PI * 730 * t) + 1500 * Math.sin(2 * Math.PI * 1510 * t)));
  }
  return out;
}

/** Writes samples as RTP (PCMU, 20 ms packets) in a pcap file (Ethernet, IPv4, UDP) that
 *  SIPp's play_pcap_audio plays with its timing. */
export function writeRtpPcap(file, samples) {
  const parts = [];
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xA1B2C3D4, 0); head.writeUInt16LE(2, 4); head.writeUInt16LE(4, 6);
  head.writeUInt32LE(65535, 16); head.writeUInt32LE(1, 20);
  parts.push(head);
  for (let k = 0; k * 160 + 160 <= samples.length; k++) {
    const rtp = Buffer.alloc(12 + 160);
    rtp[0] = 0x80; rtp[1] = k === 0 ? 0x80 : 0;
    rtp.writeUInt16BE((1000 + k) & 0xFFFF, 2); rtp.writeUInt32BE(160000 + k * 160, 4); rtp.writeUInt32BE(0x5EED, 8);
    for (let i = 0; i < 160; i++) rtp[12 + i] = ulaw(samples[k * 160 + i]);
    const udp = Buffer.alloc(8); udp.writeUInt16BE(6000, 0); udp.writeUInt16BE(6002, 2); udp.writeUInt16BE(8 + rtp.length, 4);
    const ip = Buffer.alloc(20);
    ip[0] = 0x45; ip.writeUInt16BE(20 + 8 + rtp.length, 2); ip[8] = 64; ip[9] = 17;
    ip.set([127, 0, 0, 1], 12); ip.set([127, 0, 0, 1], 16);
    let sum = 0;
    for (let i = 0; i < 20; i += 2) sum += ip.readUInt16BE(i);
    while (sum > 0xFFFF) sum = (sum & 0xFFFF) + (sum >> 16);
    ip.writeUInt16BE(~sum & 0xFFFF, 10);
    const eth = Buffer.concat([Buffer.alloc(12, 0x11), Buffer.from([0x08, 0x00]), ip, udp, rtp]);
    const rec = Buffer.alloc(16);
    const t = k * 0.02;
    rec.writeUInt32LE(Math.floor(t), 0); rec.writeUInt32LE(Math.round((t % 1) * 1e6), 4);
    rec.writeUInt32LE(eth.length, 8); rec.writeUInt32LE(eth.length, 12);
    parts.push(rec, eth);
  }
  fs.writeFileSync(file, Buffer.concat(parts));
}

/** Registers ext (password PW[ext]) with SIPp from a new port, its Contact user contact and
 *  its User-Agent ua; returns the port (the phone's address). */
export async function registerPhone(sx, ext, ua, contact = ext) {
  const port = await freePort();
  await new Sipp(sx, 'register.xml', { user: ext, password: PW[ext], port, keys: { ua, contact } }).ok();
  return port;
}

/** Starts a call from 100 (display name name) to the phone of 101 listening on calleePort,
 *  which rings ringMs before it answers; the caller hangs up talkMs after the answer.
 *  Returns the two SIPp runs, {callee, caller}. */
export async function startCall(sx, { calleePort, ringMs, talkMs, name = 'Alice' }) {
  const callee = new Sipp(sx, 'callee.xml', { user: '101', port: calleePort, pauseMs: ringMs });
  await callee.listening();
  const caller = new Sipp(sx, 'caller.xml', {
    user: '100', password: PW[100], port: await freePort(), pauseMs: talkMs, keys: { callee: '101', name },
  });
  return { callee, caller };
}

/** The number of messages GET /api/v1/traces/{callId} has (404: none yet). */
export async function traceCount(sx, callId) {
  const r = await sx.api('GET', `/traces/${encodeURIComponent(callId)}`);
  if (r.status === 404) return 0;
  assert.equal(r.status, 200, r.text);
  return r.json.messages.length;
}

/** The number of arrows the ladder of callId draws with retransmissions folded (its
 *  default): one per message that is not a retransmission. */
export async function shownArrows(sx, callId) {
  const r = await sx.api('GET', `/traces/${encodeURIComponent(callId)}`);
  assert.equal(r.status, 200, r.text);
  return r.json.messages.filter((m) => !m.retransmission).length;
}

/** Waits until the trace of callId has at least min messages and stops growing (the writer
 *  commits in batches); returns its length then (or the last seen, after 10 s). */
export async function settledTrace(sx, callId, min = 1) {
  let last = -1;
  for (let i = 0; i < 50; i++) {
    const n = await traceCount(sx, callId);
    if (n >= min && n === last) return n;
    last = n;
    await sleep(200);
  }
  return last;
}

/** The end of a test file: stops sx (which must exit cleanly), then writes its output to
 *  ${prefix}sipbx.log in ARTIFACTS, with each of logs ({name: text}) beside it as ${prefix}name,
 *  and
 *  removes its temporary directory. */
export async function finish(sx, prefix = '', logs = {}) {
  try { await sx.stop(); } finally {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    fs.writeFileSync(path.join(ARTIFACTS, `${prefix}sipbx.log`), sx.stdout + '\n--- stderr\n' + sx.stderr);
    for (const [name, text] of Object.entries(logs)) fs.writeFileSync(path.join(ARTIFACTS, prefix + name), text);
    sx.cleanup();
  }
}

/** Sends n OPTIONS to sipbx with one Call-ID from one UDP socket (each answered 200): a
 *  trace of 2n messages for the ladder's big-trace check. Returns the Call-ID. */
/** Sends 2 + 2*(n) messages of one Call-ID that sipbx traces: a REGISTER (answered 401)
 *  and n refreshes with credentials (one nonce, nonce-counts 1..n), each answered 200.
 *  Only requests sipbx accepts are traced, so unauthenticated OPTIONS would not do. */
export async function registerBurst(sx, ext, password, n) {
  const sock = dgram.createSocket('udp4');
  await new Promise((r) => sock.bind(0, HOST, r));
  const port = sock.address().port;
  const callId = `burst-${crypto.randomBytes(6).toString('hex')}@${HOST}`;
  const tag = crypto.randomBytes(4).toString('hex');
  const md5 = (x) => crypto.createHash('md5').update(x).digest('hex');
  let got = 0;
  let last = '';
  let wake = null;
  sock.on('message', (m) => { last = m.toString(); if (/^SIP\/2\.0 \d{3}/.test(last)) { got++; if (wake) wake(); } });
  const send = async (cseq, auth) => {
    const msg = [`REGISTER sip:${HOST} SIP/2.0`,
      `Via: SIP/2.0/UDP ${HOST}:${port};branch=z9hG4bK${crypto.randomBytes(8).toString('hex')};rport`,
      `From: <sip:${ext}@${HOST}>;tag=${tag}`, `To: <sip:${ext}@${HOST}>`, `Call-ID: ${callId}`,
      `CSeq: ${cseq} REGISTER`, `Contact: <sip:${ext}@${HOST}:${port}>`, 'Expires: 60',
      'Max-Forwards: 70', 'User-Agent: web-test-burst', ...(auth ? [`Authorization: ${auth}`] : []),
      'Content-Length: 0', '', ''].join('\r\n');
    await new Promise((r) => sock.send(msg, sx.sipPort, HOST, r));
    const deadline = Date.now() + 3000;
    while (got < cseq && Date.now() < deadline) await new Promise((r) => { wake = r; setTimeout(r, 50); });
  };
  await send(1, null);
  const chal = Object.fromEntries([...last.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
  const ha1 = md5(`${ext}:${chal.realm}:${password}`);
  const ha2 = md5(`REGISTER:sip:${HOST}`);
  for (let i = 1; i <= n; i++) {
    const nc = i.toString(16).padStart(8, '0');
    const resp = md5(`${ha1}:${chal.nonce}:${nc}:c0ffee:auth:${ha2}`);
    await send(i + 1, `Digest username="${ext}", realm="${chal.realm}", nonce="${chal.nonce}", ` +
      `uri="sip:${HOST}", response="${resp}", algorithm=MD5, cnonce="c0ffee", qop=auth, nc=${nc}`);
  }
  sock.close();
  if (got < n + 1) throw new Error(`REGISTER burst: ${got} of ${n + 1} answered`);
  return callId;
}

export const CHROMIUM_ARGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Launches Debian's Chromium with a fresh profile (a persistent context in a temp dir). */
export async function launchBrowser(chromium, viewport = { width: 1280, height: 860 }) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sipbx-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport, acceptDownloads: true,
    ignoreHTTPSErrors: HTTPS, // the generated certificate is self-signed
  });
  const close = async () => { await ctx.close(); fs.rmSync(profile, { recursive: true, force: true }); };
  return { ctx, close };
}

// Preferences on top of puppeteer's own (which already turn off updates, safe browsing and
// data reporting): the test Firefox talks to the loopback sipbx and to nothing else. Every
// host name resolves to 127.0.0.1, so no DNS query leaves the machine (Firefox ESR looked
// up Mozilla's remote settings server even with puppeteer's dummy one set); what is left
// goes to a proxy on a closed loopback port (loopback itself is never proxied).
export const FIREFOX_PREFS = {
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'network.trr.mode': 5,
  'network.dns.forceResolve': '127.0.0.1',
  'network.dns.disablePrefetch': true,
  'network.prefetch-next': false,
  'network.predictor.enabled': false,
  'dom.push.connection.enabled': false,
  'browser.region.network.url': '',
  'browser.region.update.enabled': false,
  'extensions.systemAddon.update.enabled': false,
  'toolkit.telemetry.enabled': false,
  'media.gmp-gmpopenh264.enabled': false,
  'network.proxy.type': 1,
  'network.proxy.http': '127.0.0.1',
  'network.proxy.http_port': 9,
  'network.proxy.ssl': '127.0.0.1',
  'network.proxy.ssl_port': 9,
  'network.proxy.no_proxies_on': '',
};

/** Launches Debian's Firefox ESR headless over WebDriver BiDi with a fresh temporary
 *  profile (puppeteer makes it and removes it on close). puppeteer is puppeteer-core's
 *  default export. */
export async function launchFirefox(puppeteer, viewport = { width: 1280, height: 860 }) {
  const browser = await puppeteer.launch({
    browser: 'firefox', executablePath: FIREFOX, headless: true, defaultViewport: viewport,
    extraPrefsFirefox: FIREFOX_PREFS, protocolTimeout: 30000,
    // As in Mozilla's own test harnesses: a connection to a non-local address is a fatal
    // error, and the remote settings server may be overridden (with puppeteer's dummy one).
    env: { ...process.env, MOZ_DISABLE_NONLOCAL_CONNECTIONS: '1' },
  });
  return { browser, close: () => browser.close() };
}
