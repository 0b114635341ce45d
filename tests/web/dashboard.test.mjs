// Browser tests of the dashboard (web/), in headless Debian Chromium against a private
// sipbx with SIPp phones. The tests run in order and build on each other: accounts made
// early are called later. Screenshots of every page go to $SIPBX_WEB_ARTIFACTS.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { Sipbx, Sipp, freePort, launchBrowser, registerBurst, sleep, registerPhone, startCall, traceCount,
  settledTrace, shownArrows, finish, testSignal, writeRtpPcap, ARTIFACTS, HOST, HTTPS, PW, XSS } from './harness.mjs';

const HERE_DIR = path.dirname(fileURLToPath(import.meta.url));
let sx, browser, closeBrowser, page;
const dialogs = [];
const pageErrors = [];
const state = {}; // what earlier tests leave for later ones

async function shot(p, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await p.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** A screenshot of what the window shows, for docs/dashboard.md (docs/img/NAME.png is
 *  copied from $SIPBX_WEB_ARTIFACTS/docs-img/NAME.png). */
async function docShot(p, name) {
  fs.mkdirSync(path.join(ARTIFACTS, 'docs-img'), { recursive: true });
  await p.screenshot({ path: path.join(ARTIFACTS, 'docs-img', `${name}.png`) });
}

function watch(p) {
  p.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  p.on('pageerror', (e) => pageErrors.push(e.message));
}

async function go(hash) {
  await page.goto(`${sx.base}/#${hash}`);
  await rendered(page);
}

/** Waits until the app has put the page of the current hash in place: a hash change keeps
 *  the last page's content in the document until the new page's module has loaded. */
function rendered(p) {
  return p.waitForFunction(() => document.getElementById('main')?.dataset.rendered === location.hash);
}

before(async () => {
  // Loopback is trusted by default; only 127.0.0.1 here, so a guesser on 127.0.0.5 is blocked.
  sx = await new Sipbx().start(['--sip-trusted-networks', '127.0.0.1/32']);
  ({ ctx: browser, close: closeBrowser } = await launchBrowser(chromium));
  page = browser.pages()[0] || await browser.newPage();
  watch(page);
});

after(async () => {
  try { if (closeBrowser) await closeBrowser(); } catch { /* already gone */ }
  if (sx) await finish(sx);
});

test('static files: content types, revalidation, no way out of the web root', async () => {
  let r = await fetch(sx.base + '/');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/html; charset=utf-8/);
  assert.match(r.headers.get('content-security-policy'), /script-src 'self'/);
  assert.match(await r.text(), /<script type="module" src="assets\/js\/app.js">/);
  const types = { '/assets/app.css': /^text\/css/, '/assets/js/app.js': /^text\/javascript/, '/favicon.svg': /^image\/svg\+xml/ };
  for (const [p, t] of Object.entries(types)) {
    r = await fetch(sx.base + p);
    assert.equal(r.status, 200, p);
    assert.match(r.headers.get('content-type'), t, p);
    assert.equal(r.headers.get('cache-control'), 'no-cache', p);
    const etag = r.headers.get('etag');
    assert.ok(etag, p);
    const again = await fetch(sx.base + p, { headers: { 'If-None-Match': etag } });
    assert.equal(again.status, 304, p);
  }
  // raw requests, so that nothing normalises the path on the way
  const raw = (p) => new Promise((resolve, reject) => {
    // (written, not ended: a TLS close_notify would end the exchange before the answer;
    // the server closes after an HTTP/1.0 answer)
    const s = sx.connect(() => s.write(`GET ${p} HTTP/1.0\r\nHost: x\r\n\r\n`));
    let data = '';
    s.on('data', (d) => { data += d; });
    s.on('end', () => resolve(Number(/^HTTP\/1\.\d (\d{3})/.exec(data)?.[1])));
    s.on('error', reject);
  });
  for (const p of ['/../CMakeLists.txt', '/assets/../../CMakeLists.txt', '/assets/%2e%2e/%2e%2e/CMakeLists.txt',
    '/%2e%2e/server/main.c', '/assets/..%2f..%2fCMakeLists.txt', '/assets/', '/nope.html', '/.%2e/LICENSE']) {
    assert.equal(await raw(p), 404, p);
  }
  r = await fetch(sx.base + '/api/v1/nope');
  assert.equal(r.status, 404);
  assert.equal((await r.json()).error.code, 'not_found');
});

test('log in (keyboard only), first page usable within 1 s, back to where the user was', async () => {
  await go('/accounts');
  await page.waitForSelector('#login-pass');
  await shot(page, '01-login');
  // a wrong password is reported at the form
  await page.focus('#login-pass');
  await page.keyboard.type('not-the-password');
  await page.keyboard.press('Enter');
  await page.waitForSelector('.field-error');
  assert.match(await page.textContent('.field-error'), /Wrong user name or password/);
  await shot(page, '02-login-error');
  await page.fill('#login-pass', sx.password);
  await page.keyboard.press('Enter');
  // the page asked for first
  await page.waitForSelector('table.accounts, .empty');
  assert.match(page.url(), /#\/accounts$/);

  // a fresh load of the overview, logged in: usable (numbers shown) within 1 s
  const t0 = Date.now();
  await go('/');
  await page.waitForFunction(() => /^\d+$/.test(document.getElementById('stat-accounts')?.textContent || ''));
  const ms = Date.now() - t0;
  assert.ok(ms < 1000, `overview usable after ${ms} ms`);
  await page.waitForSelector('#live[data-state="on"]');
});

test('create an account and see it go online when sipp registers it', async () => {
  // the caller of later tests, made over the API
  assert.equal((await sx.api('POST', '/users', { extension: '100', password: PW[100], display_name: 'Alice' })).status, 201);

  await go('/accounts');
  await page.click('button:has-text("New account")');
  await page.fill('#new-ext', '101');
  await page.fill('#new-name', 'Bob');
  await page.fill('#new-pw', PW[101]);
  await page.click('#new-account button[type=submit]');
  await page.waitForURL(/#\/accounts\/101$/);
  // the password is shown once, copyable, and the softphone card has what a phone asks for
  await page.waitForSelector('.secret input');
  assert.equal(await page.inputValue('.secret input'), PW[101]);
  const card = await page.textContent('.phone-card');
  assert.ok(card.includes(`127.0.0.1:${sx.sipPort}`), card);
  assert.ok(card.includes('Domain (realm)127.0.0.1'), card);
  assert.ok(card.includes(PW[101]), card);
  assert.equal(await page.getAttribute('.presence', 'data-state'), 'offline');
  await shot(page, '03-account-created');

  // SIPp registers it: the page turns online by itself (event stream, no reload)
  state.port101 = await registerPhone(sx, '101', 'Bob phone/1.0');
  await page.waitForSelector('.presence[data-state="online"]', { timeout: 5000 });
  const devices = await page.textContent('.devices-table');
  assert.ok(devices.includes(`sip:101@127.0.0.1:${state.port101}`), devices);
  assert.ok(devices.includes('Bob phone/1.0'), devices);
  await shot(page, '04-account-online');

  // the list shows it online with its device
  await go('/accounts');
  await page.waitForSelector('tr[data-ext="101"] .presence[data-state="online"]');
  assert.equal(await page.getAttribute('tr[data-ext="100"] .presence', 'data-state'), 'offline');
  assert.ok((await page.textContent('tr[data-ext="101"] .devices')).includes('Bob phone/1.0'));
  await shot(page, '05-accounts');

  // registrations have ladders too: REGISTER, 401, REGISTER, 200
  await go('/accounts/101');
  await page.click('.devices-table a.ladder-link');
  await page.waitForSelector('svg.ladder .arrow');
  const cid = decodeURIComponent(page.url().split('#/ladder/')[1]);
  const n = await settledTrace(sx, cid, 4);
  assert.equal(n, 4);
  await page.waitForFunction((k) => document.querySelectorAll('svg.ladder .arrow').length === k, await shownArrows(sx, cid));
  const heads = await page.$$eval('.party-head .role', (els) => els.map((e) => e.textContent));
  assert.deepEqual(heads.map((h) => h.split(' ')[0]), ['phone', 'sipbx']);
  await shot(page, '06-ladder-registration');
});

test('a call appears, rings, is answered and ends in the live view; its ladder grows', async () => {
  await go('/calls');
  await page.waitForSelector('#no-calls');
  const { callee, caller } = await startCall(sx, { calleePort: state.port101, ringMs: 2500, talkMs: 4000 });

  const ringing = await page.waitForSelector('#live-calls tr.call[data-state="ringing"]', { timeout: 8000 });
  const cid = await ringing.getAttribute('data-call-id');
  state.callId = cid;
  assert.ok((await ringing.textContent()).includes('Alice'));
  await shot(page, '07-calls-ringing');

  // a second tab watches the ladder of the call while it goes on
  const watcher = await browser.newPage();
  watch(watcher);
  await watcher.goto(`${sx.base}/#/ladder/${encodeURIComponent(cid)}`);
  await watcher.waitForSelector('svg.ladder .arrow');
  await watcher.waitForSelector('.ladder-status .badge');
  const early = await watcher.$$eval('svg.ladder .arrow', (a) => a.length);

  const answered = await page.waitForSelector('#live-calls tr.call[data-state="answered"]', { timeout: 8000 });
  const d1 = await answered.$eval('.duration', (e) => e.textContent);
  assert.match(d1, /^talking 0:0\d$/);
  await page.waitForFunction((d) => {
    const e = document.querySelector('#live-calls tr.call[data-state="answered"] .duration');
    return e && e.textContent !== d;
  }, d1, { timeout: 3000 }).catch(() => {}); // a timeout fails the assertion below
  const d2 = await page.$eval('#live-calls tr.call[data-state="answered"] .duration', (e) => e.textContent);
  assert.notEqual(d1, d2, 'the talk time runs');
  await shot(page, '08-calls-answered');

  await page.waitForSelector('#ended-calls tr.call[data-state="ended"]', { timeout: 10000 });
  await page.waitForSelector('#no-calls');
  await Promise.all([caller.ok(), callee.ok()]);
  assert.ok((await page.textContent('#ended-calls')).includes('hung up by caller'));
  await shot(page, '09-calls-ended');

  const total = await settledTrace(sx, cid, 10);
  assert.ok(total > early, `the trace grew (${early} -> ${total})`);
  await watcher.waitForFunction((k) => document.querySelectorAll('svg.ladder .arrow').length === k, await shownArrows(sx, cid), { timeout: 8000 });
  await shot(watcher, '10-ladder-grown-live');
  await watcher.close();
});

test('the accounts page shows each user\'s presence note and busy lamp live', async () => {
  await go('/accounts');
  await page.waitForSelector('tr[data-ext="101"] .c-presence .lamp[data-basic="open"]');
  assert.ok((await page.textContent('tr[data-ext="101"] .c-presence')).includes('Available'));
  assert.ok((await page.textContent('tr[data-ext="100"] .c-presence')).includes('Offline'));
  // a call to 101: its lamp rings, then says in a call, then goes dark, without a reload
  const { callee, caller } = await startCall(sx, { calleePort: state.port101, ringMs: 1500, talkMs: 2000 });
  await page.waitForSelector('tr[data-ext="101"] .lamp[data-dialog="early"] .b-ringing', { timeout: 8000 });
  await page.waitForSelector('tr[data-ext="101"] .lamp[data-dialog="confirmed"] .b-talking', { timeout: 8000 });
  assert.ok((await page.textContent('tr[data-ext="101"] .c-presence')).includes('On the phone'));
  await shot(page, '05b-accounts-busy-lamp');
  await Promise.all([caller.ok(), callee.ok()]);
  await page.waitForSelector('tr[data-ext="101"] .lamp[data-dialog="idle"]', { timeout: 8000 });
  assert.ok((await page.textContent('tr[data-ext="101"] .c-presence')).includes('Available'));
});

test('the ladder of a call: one arrow per captured message, message details, pcap', async () => {
  // from the call records (the live view's ended list only has calls seen live)
  await go('/records');
  await page.click(`tr[data-call-id="${state.callId}"] a.ladder-link`);
  await page.waitForSelector('svg.ladder .arrow');
  const n = await traceCount(sx, state.callId);
  // one arrow per message, a retransmission folded into the arrow of the message it repeats
  const arrows = await page.$$eval('svg.ladder .arrow', (a) => a.map((g) => 1 + Number(g.dataset.repeats)));
  assert.equal(arrows.length, await shownArrows(sx, state.callId));
  assert.equal(arrows.reduce((x, y) => x + y, 0), n);
  const heads = await page.$$eval('.party-head .role', (els) => els.map((e) => e.textContent.split(' ')[0]));
  assert.deepEqual(heads, ['caller', 'sipbx', 'callee']);
  // requests, 1xx, 2xx and errors (the 407) are told apart
  for (const k of ['req', 'r1xx', 'r2xx', 'rerr']) {
    assert.ok(await page.$(`svg.ladder .arrow.k-${k}`), `an arrow of kind ${k}`);
  }
  const labels = await page.$$eval('svg.ladder .arrow .label', (els) => els.map((e) => e.textContent));
  assert.equal(labels[0], 'INVITE');
  assert.ok(labels.includes('407 Proxy Authentication Required'), labels.join(', '));
  assert.ok(labels.includes('BYE'));
  // click an arrow: the whole message
  await page.click('svg.ladder .arrow >> nth=0');
  await page.waitForSelector('#ladder-detail:not([hidden]) pre.sipmsg');
  const msg = await page.textContent('#ladder-detail pre.sipmsg');
  assert.match(msg, /^INVITE sip:101@127\.0\.0\.1 SIP\/2\.0/);
  assert.ok(msg.includes(`Call-ID: ${state.callId}`));
  await shot(page, '11-ladder-call');
  // keyboard: the diagram is one tab stop; down to the next arrow, Enter shows it, Escape
  // closes it and gives the focus back to the diagram
  await page.focus('svg.ladder');
  await page.keyboard.press('Home');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => !document.querySelector('#ladder-detail pre.sipmsg')?.textContent.startsWith('INVITE'));
  assert.equal(await page.getAttribute('svg.ladder', 'aria-activedescendant'), await page.getAttribute('svg.ladder .arrow >> nth=1', 'id'));
  await page.keyboard.press('Escape');
  await page.waitForSelector('#ladder-detail', { state: 'hidden' });
  assert.equal(await page.evaluate(() => document.activeElement?.matches('svg.ladder')), true);
  // the pcap button downloads a capture file
  const href = await page.getAttribute('#pcap-link', 'href');
  const r = await page.request.get(sx.base + href);
  assert.equal(r.status(), 200);
  const magic = (await r.body()).readUInt32LE(0);
  assert.ok([0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1, 0x0a0d0d0a].includes(magic), magic.toString(16));
});

test('forwarding rules are checked inline and saved', async () => {
  await go('/forwarding/101');
  await page.waitForSelector('#fw-no_answer-en');
  await page.check('#fw-no_answer-en');
  await page.fill('#fw-no_answer-target', '');
  await page.click('form.forwarding button[type=submit]');
  const err = await page.waitForSelector('fieldset[data-rule="no_answer"] .field-error');
  assert.match(await err.textContent(), /Enter where to forward/);
  assert.equal(await page.getAttribute('#fw-no_answer-target', 'aria-invalid'), 'true');
  await page.fill('#fw-no_answer-target', '101');
  await page.waitForSelector('fieldset[data-rule="no_answer"] .field-error:has-text("itself")');
  await shot(page, '12-forwarding-invalid');
  // what only the server knows (no such extension) is shown next to the field too
  await page.check('#fw-busy-en');
  await page.fill('#fw-busy-target', '999');
  await page.fill('#fw-no_answer-target', '100');
  await page.click('form.forwarding button[type=submit]');
  const apiErr = await page.waitForSelector('fieldset[data-rule="busy"] .field-error');
  assert.match(await apiErr.textContent(), /^No such extension 999$/);
  assert.equal(await page.getAttribute('#fw-busy-target', 'aria-invalid'), 'true');
  await shot(page, '12b-forwarding-api-error');
  await page.uncheck('#fw-busy-en');
  await page.fill('#fw-busy-target', '');
  await page.fill('#fw-no_answer-timeout', '15');
  await page.waitForSelector('fieldset[data-rule="no_answer"] .field-error', { state: 'detached' });
  await page.click('form.forwarding button[type=submit]');
  await page.waitForSelector('#toast.show:has-text("saved")');
  const r = await sx.api('GET', '/users/101/forwarding');
  assert.equal(r.status, 200);
  assert.deepEqual({ ...r.json.no_answer }, { enabled: true, target: '100', voicemail: false, timeout: 15 });
  assert.equal(r.json.unconditional.enabled, false);
  // it is what the page shows after a reload
  await page.reload();
  await page.waitForSelector('#fw-no_answer-en');
  assert.equal(await page.isChecked('#fw-no_answer-en'), true);
  assert.equal(await page.inputValue('#fw-no_answer-target'), '100');
  await shot(page, '13-forwarding');
  // leave it off for the calls of later tests
  await page.uncheck('#fw-no_answer-en');
  await page.click('form.forwarding button[type=submit]');
  await page.waitForSelector('#toast.show:has-text("saved")');
});

test('call records: filter, page, download CSV', async () => {
  await go('/records');
  await page.waitForSelector(`tr[data-call-id="${state.callId}"]`);
  await page.fill('#f-ext', '101');
  await page.selectOption('#f-disp', 'ANSWERED');
  await page.click('form.filters button[type=submit]');
  await page.waitForURL(/ext=101/);
  await page.waitForSelector(`tr[data-call-id="${state.callId}"]`);
  assert.match(await page.textContent(`tr[data-call-id="${state.callId}"]`), /ANSWERED/);
  await shot(page, '14-records');
  // a filter that matches nothing says so
  await page.selectOption('#f-disp', 'BUSY');
  await page.click('form.filters button[type=submit]');
  await page.waitForSelector('.empty:has-text("No call matches")');
  await page.selectOption('#f-disp', 'ANSWERED');
  await page.click('form.filters button[type=submit]');
  await page.waitForSelector(`tr[data-call-id="${state.callId}"]`);

  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#csv-link')]);
  const file = path.join(ARTIFACTS, 'calls.csv');
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await dl.saveAs(file);
  const csv = fs.readFileSync(file, 'utf8');
  const lines = csv.trim().split(/\r?\n/);
  assert.ok(lines.length >= 2, csv);
  assert.ok(lines.some((l) => l.includes(state.callId)), csv);
  assert.ok(lines.slice(1).every((l) => l.includes('ANSWERED')), csv);
});

test('SIP-derived and admin-entered text shows as text, never as markup', async () => {
  // an account with a hostile display name, made in the UI
  await go('/accounts');
  await page.click('button:has-text("New account")');
  await page.fill('#new-ext', '102');
  await page.fill('#new-name', XSS);
  await page.fill('#new-pw', PW[102]);
  await page.click('#new-account button[type=submit]');
  await page.waitForURL(/#\/accounts\/102$/);
  // a Contact user as baresip makes it (long: the ladder must cut it to its column)
  state.port102 = await registerPhone(sx, '102', `${XSS} softphone`, '102-0x55f036541820');
  // a call whose caller display name (From header) is hostile
  await go('/calls');
  await page.waitForSelector('#live-calls');
  const { callee, caller } = await startCall(sx, { calleePort: state.port101, ringMs: 300, talkMs: 500, name: XSS });
  await page.waitForSelector('#ended-calls tr.call[data-state="ended"] >> nth=0', { timeout: 10000 });
  await Promise.all([caller.ok(), callee.ok()]);
  await page.waitForFunction((x) => document.getElementById('ended-calls').textContent.includes(x), XSS);
  await shot(page, '15-xss-calls');

  for (const h of ['/accounts', '/records', '/', '/accounts/102']) {
    await go(h);
    await page.waitForFunction((x) => document.querySelector('main').textContent.includes(x), XSS, { timeout: 5000 });
    assert.equal(await page.$$eval('img[src="x"], main img:not([src="favicon.svg"])', (e) => e.length), 0, h);
    if (h === '/accounts') await shot(page, '16-xss-accounts');
  }
  // and in the ladder's message view
  const cdrs = await sx.api('GET', '/cdrs?limit=1');
  const cid = cdrs.json.items[0].call_id;
  await go(`/ladder/${encodeURIComponent(cid)}`);
  await page.click('svg.ladder .arrow >> nth=0');
  await page.waitForFunction((x) => document.querySelector('#ladder-detail pre')?.textContent.includes(x), XSS);
  assert.equal(await page.$$eval('img[src="x"]', (e) => e.length), 0);
  await shot(page, '17-xss-ladder');
  assert.deepEqual(dialogs, [], 'no script ran');
});

test('a forwarded call shows its forward leg live and in its ladder', async () => {
  const fw = { unconditional: { enabled: true, target: '102' }, busy: { enabled: false, target: '' },
    no_answer: { enabled: false, target: '', timeout: 20 }, unavailable: { enabled: false, target: '' } };
  assert.equal((await sx.api('PUT', '/users/101/forwarding', fw)).status, 200);
  try {
    await go('/calls');
    await page.waitForSelector('#live-calls');
    const { callee, caller } = await startCall(sx, { calleePort: state.port102, ringMs: 1500, talkMs: 1500 });
    const card = await page.waitForSelector('#live-calls tr.call .leg', { timeout: 8000 });
    assert.match(await card.textContent(), /102 \(unconditional\)/);
    await shot(page, '18a-calls-forwarded');
    const ended = await page.waitForSelector('#ended-calls tr.call[data-state="ended"] .leg', { timeout: 10000 });
    assert.match(await ended.textContent(), /102/);
    await Promise.all([caller.ok(), callee.ok()]);
    const cid = await page.getAttribute('#ended-calls tr.call >> nth=0', 'data-call-id');
    await settledTrace(sx, cid, 10);
    state.forwardedCallId = cid;
    await go(`/ladder/${encodeURIComponent(cid)}`);
    await page.waitForFunction((k) => document.querySelectorAll('svg.ladder .arrow').length === k, await shownArrows(sx, cid));
    const heads = await page.$$eval('.party-head .role', (els) => els.map((e) => e.textContent));
    assert.deepEqual(heads.slice(0, 2), ['caller 100', 'sipbx']);
    assert.match(heads[2], /^forward target 102-0x5\S*…$/);
    // every party's name and address inside its box, the whole of them in the tooltip
    const overflow = await page.$$eval('.party-head', (gs) => gs.flatMap((g) => {
      const box = g.querySelector('rect').getBBox();
      return [...g.querySelectorAll('text')].filter((t) => t.getComputedTextLength() > box.width - 4)
        .map((t) => `${t.textContent} (${Math.round(t.getComputedTextLength())} px in ${box.width} px)`);
    }));
    assert.deepEqual(overflow, []);
    assert.match(await page.textContent('.party-head:nth-of-type(3) title'), /forward target 102-0x55f036541820, 127\.0\.0\.1:\d+/);
    await shot(page, '18b-ladder-forwarded');
  } finally {
    fw.unconditional = { enabled: false, target: '' };
    await sx.api('PUT', '/users/101/forwarding', fw);
  }
});

test('voicemail: a rule sends calls there; a message left appears live, plays in the page, is marked heard and deleted; a greeting is uploaded', async () => {
  // 102's calls all go to its voicemail (its phone stays registered)
  await go('/forwarding/102');
  await page.waitForSelector('#fw-unconditional-en');
  // one explanation for both kinds of destination; targets are still offered as typed
  assert.match(await page.textContent('form.forwarding > p.muted'), /another account, a ring group or a SIP address, or to its voicemail\./);
  assert.equal(await page.getAttribute('#fw-busy-target', 'list'), 'fw-targets');
  await page.check('#fw-unconditional-en');
  await page.check('#fw-unconditional-vm');
  assert.equal(await page.isHidden('#fw-unconditional-target'), true, 'no target to voicemail');
  await page.click('form.forwarding button[type=submit]');
  await page.waitForSelector('#toast.show:has-text("saved")');
  let r = await sx.api('GET', '/users/102/forwarding');
  assert.deepEqual({ ...r.json.unconditional }, { enabled: true, target: '', voicemail: true });

  await go('/voicemail/102');
  await page.waitForSelector('#vm-messages .empty');
  // a greeting of its own: a second of a tone, as a WAV file chosen in the page
  const tone = Buffer.alloc(44 + 16000);
  tone.write('RIFF', 0); tone.writeUInt32LE(36 + 16000, 4); tone.write('WAVEfmt ', 8);
  tone.writeUInt32LE(16, 16); tone.writeUInt16LE(1, 20); tone.writeUInt16LE(1, 22);
  tone.writeUInt32LE(8000, 24); tone.writeUInt32LE(16000, 28); tone.writeUInt16LE(2, 32); tone.writeUInt16LE(16, 34);
  tone.write('data', 36); tone.writeUInt32LE(16000, 40);
  for (let i = 0; i < 8000; i++) tone.writeInt16LE(Math.round(3000 * Math.sin(2 * Math.PI * 440 * i / 8000)), 44 + 2 * i);
  await page.setInputFiles('#vm-greeting-file', { name: 'hello.wav', mimeType: 'audio/wav', buffer: tone });
  await page.click('#vm-greeting button[type=submit]');
  await page.waitForSelector('#vm-greeting-kind[data-kind="custom"]');
  r = await sx.api('GET', '/users/102/voicemail/greeting');
  assert.equal(r.json.greeting, 'custom');
  assert.equal(r.json.duration, 1);

  // a caller leaves 3 s of audio; the page shows the message as it is saved (SSE)
  writeRtpPcap(path.join(sx.tmp, 'vm_message.pcap'), testSignal(3));
  const caller = new Sipp(sx, 'voicemail_caller.xml', { user: '100', password: PW[100], port: await freePort(),
    pauseMs: 2000, keys: { callee: '102' }, extra: ['-mi', HOST, '-mp', String(await freePort())] });
  await caller.ok();
  const row = await page.waitForSelector('table.voicemail tbody tr.new', { timeout: 15000 });
  assert.match(await row.textContent(), /100/);
  assert.match(await page.textContent('#vm-summary'), /1 new/);
  assert.match(await row.textContent(), /0:03/);
  await shot(page, '16b-voicemail');
  await docShot(page, 'voicemail');
  // the call's ladder names sipbx's voicemail as the party that answered, not a forward target
  const vmCall = (await sx.api('GET', '/cdrs?limit=5')).json.items.find((c) => c.answered_by === 'voicemail:102');
  assert.ok(vmCall, 'no record answered by voicemail:102');
  await settledTrace(sx, vmCall.call_id, 6);
  await go(`/ladder/${encodeURIComponent(vmCall.call_id)}`);
  await page.waitForSelector('.party-head .role');
  const vmHeads = await page.$$eval('.party-head .role', (els) => els.map((e) => e.textContent));
  assert.deepEqual(vmHeads.slice(0, 2), ['caller 100', 'sipbx']);
  assert.ok(vmHeads.some((t) => /^voicemail 102/.test(t)), JSON.stringify(vmHeads));
  assert.ok(!vmHeads.some((t) => /^forward target/.test(t)), JSON.stringify(vmHeads));
  await go('/voicemail/102');
  await page.waitForSelector('table.voicemail tbody tr.new');
  // the account page links here with the count, beside its presence and do-not-disturb switch
  await go('/accounts/102');
  await page.waitForSelector('#account-voicemail:has-text("(1 new)")');
  assert.ok(await page.$('.page-head .head-side #dnd-switch'), 'no do-not-disturb switch in the head');
  assert.ok(await page.$('.page-head .head-side .account-links a[href="#/forwarding/102"]'), 'no link to the forwarding rules');
  await go('/voicemail/102');
  await page.waitForSelector('table.voicemail tbody tr.new');
  // played in the page to the end: the browser decoded the WAV, and it is now heard
  const played = await page.evaluate(() => new Promise((resolve) => {
    const a = document.querySelector('table.voicemail tbody tr audio');
    a.muted = true;
    a.addEventListener('ended', () => resolve({ duration: a.duration, ended: true }));
    a.addEventListener('error', () => resolve({ error: a.error && a.error.code }));
    a.play().catch((e) => resolve({ error: String(e) }));
  }));
  assert.equal(played.ended, true, JSON.stringify(played));
  assert.ok(Math.abs(played.duration - 3) < 0.4, `duration ${played.duration}`);
  await page.waitForSelector('table.voicemail tbody tr.heard');
  r = await sx.api('GET', '/users/102/voicemail');
  assert.equal(r.json.items[0].heard, true);
  assert.deepEqual([r.json.new, r.json.old], [0, 1]);
  // the download link is the WAV file
  const href = await page.getAttribute('table.voicemail a:has-text("Download")', 'href');
  assert.equal(href, r.json.items[0].audio_url);
  // deleted after a confirmation
  await page.click('table.voicemail button:has-text("Delete")');
  await page.click('dialog button[value="ok"]');
  await page.waitForSelector('#vm-messages .empty');
  r = await sx.api('GET', '/users/102/voicemail');
  assert.deepEqual(r.json.items, []);
  // back to the default greeting; 102 rings again
  await page.click('#vm-greeting button:has-text("Use the default greeting")');
  await page.click('dialog button[value="ok"]');
  await page.waitForSelector('#vm-greeting-kind[data-kind="default"]');
  r = await sx.api('PUT', '/users/102/forwarding', {});
  assert.equal(r.status, 200);
});

test('hold and resume show in the live view as they happen', async () => {
  await go('/calls');
  await page.waitForSelector('#live-calls');
  // every state a call's card shows, in order (the resume lasts only until A's BYE)
  await page.evaluate(() => {
    window.seenStates = {};
    const note = (el) => {
      const id = el.getAttribute && el.getAttribute('data-call-id');
      if (!id) return;
      const list = (window.seenStates[id] ||= []);
      const st = el.getAttribute('data-state');
      if (list[list.length - 1] !== st) list.push(st);
    };
    new MutationObserver((muts) => {
      for (const m of muts) {
        if (m.type === 'attributes') note(m.target);
        for (const n of m.addedNodes || []) {
          if (n.nodeType !== 1) continue;
          note(n);
          n.querySelectorAll('tr.call').forEach(note);
        }
      }
    }).observe(document.querySelector('main') || document.body,
      { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'] });
  });
  // the hold flow of the protocol tests: B answers, holds (a=sendonly) for the -d pause,
  // resumes (a=sendrecv); then A hangs up
  const callee = new Sipp(sx, '../../sip/hold_callee.xml', { user: '101', port: state.port101, pauseMs: 3000 });
  await callee.listening();
  const caller = new Sipp(sx, '../../sip/hold_caller.xml', {
    user: '100', password: PW[100], port: await freePort(), keys: { callee: '101' },
  });
  const held = await page.waitForSelector('#live-calls tr.call[data-state="held"]', { timeout: 8000 });
  const cid = await held.getAttribute('data-call-id');
  assert.match(await held.$eval('.duration', (e) => e.textContent), /^on hold, call 0:0\d$/);
  await shot(page, '18c-calls-held');
  await page.waitForSelector(`#ended-calls tr.call[data-call-id="${cid}"][data-state="ended"]`, { timeout: 8000 });
  await Promise.all([caller.ok(), callee.ok()]);
  state.holdCallId = cid;
  const seen = await page.evaluate((id) => window.seenStates[id], cid);
  assert.deepEqual(seen.slice(-3), ['held', 'answered', 'ended'], `states shown: ${seen}`);
});

test('an administrator hangs up a live call: both phones get a BYE, the record says admin', async () => {
  await go('/calls');
  await page.waitForSelector('#live-calls');
  const callee = new Sipp(sx, 'callee.xml', { user: '101', port: state.port101, pauseMs: 300 });
  await callee.listening();
  const caller = new Sipp(sx, 'caller_until_bye.xml', {
    user: '100', password: PW[100], port: await freePort(), keys: { callee: '101', name: 'Alice' },
  });
  const row = await page.waitForSelector('#live-calls tr.call[data-state="answered"]', { timeout: 8000 });
  const cid = await row.getAttribute('data-call-id');
  await row.$eval('button.hangup', (b) => b.click());
  const dlg = await page.waitForSelector('dialog.dialog[open]');
  assert.match(await dlg.textContent(), /both phones are told the call is over/);
  await page.click('dialog.dialog button[value="ok"]');
  const ended = await page.waitForSelector(`#ended-calls tr.call[data-call-id="${cid}"][data-state="ended"]`, { timeout: 8000 });
  assert.match(await ended.textContent(), /hung up by admin/);
  await Promise.all([caller.ok(), callee.ok()]); // each took its BYE and answered 200
  let cdr;
  for (let i = 0; i < 50 && !cdr; i++) { // the writer commits in batches
    cdr = (await sx.api('GET', '/cdrs?limit=20')).json.items.find((c) => c.call_id === cid);
    if (!cdr) await sleep(100);
  }
  assert.ok(cdr, 'no record of the call');
  assert.equal(cdr.hangup_by, 'admin');
  assert.equal(cdr.disposition, 'ANSWERED');
  await shot(page, '18d-calls-hung-up');
});

test('a blind transfer: the new call is marked live, in the records and in its ladder, with the chain', async () => {
  await go('/');
  await go('/calls'); // afresh: nothing listed as ended yet
  await page.waitForSelector('#ended-calls p');
  // call X: 100 -> 101; 101 REFERs 100 to 102; 100 hangs X up
  const transferor = new Sipp(sx, 'transfer_callee.xml', { user: '101', port: state.port101, pauseMs: 300, keys: { target: '102' } });
  await transferor.listening();
  const transferee = new Sipp(sx, 'transfer_caller.xml', { user: '100', password: PW[100], port: await freePort(), keys: { callee: '101', name: 'Alice' } });
  await Promise.all([transferee.ok(), transferor.ok()]);
  const x = await page.waitForSelector('#ended-calls tr.call[data-state="ended"] >> nth=0', { timeout: 8000 });
  const fromId = await x.getAttribute('data-call-id');
  // call Z: 100 calls 102 as asked; it rings a while
  const target = new Sipp(sx, 'callee.xml', { user: '102', port: state.port102, pauseMs: 2500 });
  await target.listening();
  const again = new Sipp(sx, 'caller.xml', { user: '100', password: PW[100], port: await freePort(), pauseMs: 1000, keys: { callee: '102', name: 'Alice' } });
  const live = await page.waitForSelector('#live-calls tr.call .linkmark.from', { timeout: 8000 });
  assert.equal(await live.textContent(), '↪ transferred from 100 → 101');
  assert.equal(await live.$eval('a', (a) => a.getAttribute('href')), `#/ladder/${encodeURIComponent(fromId)}`);
  const toId = await page.getAttribute('#live-calls tr.call', 'data-call-id');
  await shot(page, '18e-calls-transferred');
  await Promise.all([again.ok(), target.ok()]);
  let cdr;
  for (let i = 0; i < 50 && !(cdr && cdr.call_id === toId); i++) { // the writer commits in batches
    cdr = (await sx.api('GET', `/cdrs?linked_call=${encodeURIComponent(fromId)}`)).json.items[0];
    if (!cdr) await sleep(100);
  }
  assert.equal(cdr.call_id, toId);
  assert.equal(cdr.link, 'transfer');
  state.transferFrom = fromId;
  state.transferTo = toId;

  // the records: each of the two says where it came from or went on to
  await go('/records');
  const toRow = `tr[data-call-id="${toId}"]`, fromRow = `tr[data-call-id="${fromId}"]`;
  await page.waitForSelector(`${toRow} .linkmark.from`);
  assert.equal(await page.textContent(`${toRow} .linkmark.from`), '↪ transferred from 100 → 101');
  assert.equal(await page.getAttribute(`${toRow} .linkmark.from a`, 'href'), `#/ladder/${encodeURIComponent(fromId)}`);
  await page.waitForSelector(`${fromRow} .linkmark.to`);
  assert.equal(await page.textContent(`${fromRow} .linkmark.to`), '↳ then transferred to 102');
  assert.equal(await page.getAttribute(`${fromRow} .linkmark.to a`, 'href'), `#/ladder/${encodeURIComponent(toId)}`);
  assert.equal(await page.$$eval('table.cdrs .linkmark', (m) => m.length), 2, 'no other record is linked');
  await shot(page, '18f-records-transfer');
  // from a page of its own (filtered to 102), the mark still names the call it came from
  await go('/records?ext=102');
  await page.waitForSelector(`${toRow} .linkmark.from`);
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === '↪ transferred from 100 → 101', `${toRow} .linkmark.from`);

  // its ladder: the chain above it, and the messages of both calls
  await page.click(`${toRow} .linkmark.from a`);
  await page.waitForURL(new RegExp(`#/ladder/${encodeURIComponent(fromId).replace(/[.]/g, '\\.')}$`));
  await page.waitForSelector('#ladder-chain:not([hidden]) li >> nth=1');
  const chain = await page.$$eval('#ladder-chain li', (ls) => ls.map((l) => [l.dataset.callId, l.querySelector('.conn')?.textContent || '', l.querySelector('.callref').textContent]));
  assert.deepEqual(chain, [[fromId, '', '100 → 101 (this call)'], [toId, '→ transferred (blind) →', '100 → 102']]);
  assert.equal(await page.getAttribute('#ladder-chain [aria-current="page"]', 'title'), `Call-ID ${fromId}`);
  await page.waitForSelector('#ladder-related:not([hidden])');
  assert.equal(await page.getAttribute('#ladder-related a', 'href'), `#/ladder/${encodeURIComponent(toId)}`);
  // the messages of both calls in one diagram
  const n = (await shownArrows(sx, fromId)) + (await shownArrows(sx, toId));
  await page.waitForFunction((k) => document.querySelectorAll('svg.ladder .arrow').length === k, n);
  // the parties of the second call named as such (not as another device of the callee)
  assert.equal(await page.getAttribute('svg.ladder-head', 'aria-label'),
    'Parties: caller 100, caller (call 2) 100, sipbx, callee 101, callee (call 2) 102-0x55f036541820');
  const refer = await page.$$eval('svg.ladder .arrow .label', (ls) => ls.map((l) => l.textContent));
  assert.ok(refer.includes('REFER') && refer.includes('202 Accepted (REFER)'), refer.join(', '));
  await shot(page, '18g-ladder-transfer-chain');
  // and from the new call's side
  await page.click('#ladder-chain a.callref');
  await page.waitForSelector(`#ladder-chain li[data-call-id="${toId}"] [aria-current="page"]`);
  assert.equal(await page.textContent('#ladder-chain li[data-link="transfer"] .conn'), '→ transferred (blind) →');
  // the words of the other links (an attended transfer, a pickup), as the marks say them
  const words = await page.evaluate(async () => {
    const { originMark, successorsMark } = await import('/assets/js/cdrs.js');
    const pickup = { call_id: 'b', caller: '102', dialled: '100', linked_call: 'a', link: 'pickup' };
    const attended = { call_id: 'c', caller: '101', dialled: '102', linked_call: 'a', link: 'attended-transfer' };
    return [originMark(pickup, { caller: '100', dialled: '101' }).textContent, originMark(attended, null).textContent,
      successorsMark([pickup, attended]).textContent];
  });
  assert.deepEqual(words, ['↪ picked up from 100 → 101', '↪ transferred (attended) from call a', '↳ then picked up by 102, transferred (attended) to 102']);
});

test('ring groups: an empty page says what they are; create one with members found and put in order', async () => {
  await go('/groups');
  await page.waitForSelector('#no-groups');
  assert.match(await page.textContent('#no-groups'), /A ring group is an extension of its own/);
  await shot(page, '35-groups-empty');
  await page.click('#new-group-btn');
  await page.waitForSelector('#group-form');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'g-ext');
  // an extension of an account is refused by the server, at the field
  await page.fill('#g-ext', '101');
  await page.fill('#g-name', 'Sales');
  await page.check('#g-strat-sequential');
  assert.match(await page.textContent('#g-members-help'), /ring in this order/);
  await page.click('#group-form button[type=submit]');
  const extErr = await page.waitForSelector('#group-form .field-error');
  assert.equal(await extErr.textContent(), '101 is a user');
  assert.equal(await page.getAttribute('#g-ext', 'aria-invalid'), 'true');
  await page.fill('#g-ext', '600');
  // members: found by name or extension (the server searches), added in order
  await page.waitForFunction(() => document.querySelectorAll('#g-results li').length === 3); // every account, before a search
  await page.fill('#g-member-search', 'bob');
  await page.waitForFunction(() => [...document.querySelectorAll('#g-results li')].map((l) => l.dataset.ext).join() === '101');
  await page.click('#g-results li[data-ext="101"] button');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'g-member-search', 'back to the search after adding');
  await page.fill('#g-member-search', 'alice');
  await page.waitForFunction(() => [...document.querySelectorAll('#g-results li')].map((l) => l.dataset.ext).join() === '100');
  await page.keyboard.press('Enter'); // adds the first found, does not submit
  await page.fill('#g-member-search', '102');
  await page.waitForFunction(() => [...document.querySelectorAll('#g-results li')].map((l) => l.dataset.ext).join() === '102');
  await page.click('#g-results li[data-ext="102"] button');
  const order = () => page.$$eval('#g-members li', (ls) => ls.map((l) => l.dataset.ext));
  assert.deepEqual(await order(), ['101', '100', '102']);
  assert.equal(await page.textContent('#g-members-count'), '3 of 32');
  assert.equal(await page.isDisabled('#g-results li[data-ext="102"] button'), true, 'a member is not offered twice');
  // put in order: 100 first, then 102, then 101
  const focused = () => page.evaluate(() => document.activeElement.getAttribute('aria-label'));
  await page.click('#g-members button[aria-label="Move 100 up"]');
  assert.equal(await focused(), 'Move 100 down', 'the focus stays with the moved member (up is disabled at the top)');
  await page.click('#g-members button[aria-label="Move 102 up"]');
  assert.equal(await focused(), 'Move 102 up');
  assert.deepEqual(await order(), ['100', '102', '101']);
  assert.match(await page.textContent('#g-members-said'), /moved to position 2 of 3/);
  await page.fill('#g-timeout', '10');
  // a no-answer target the server does not know is reported at its field
  await page.fill('#g-target', '999');
  await page.click('#group-form button[type=submit]');
  const tErr = await page.waitForSelector('#g-target + .field-error, .field:has(#g-target) .field-error');
  assert.equal(await tErr.textContent(), 'No such extension 999');
  await page.fill('#g-target', 'sip:reception@example.com');
  await shot(page, '36-groups-form');
  await page.click('#group-form button[type=submit]');
  await page.waitForSelector('#toast.show:has-text("Ring group 600 created")');
  const g = (await sx.api('GET', '/groups/600')).json;
  assert.deepEqual([g.name, g.strategy, g.members, g.member_timeout, g.no_answer_target],
    ['Sales', 'sequential', ['100', '102', '101'], 10, 'sip:reception@example.com']);
  // listed: the members by name, in order
  const row = await page.waitForSelector('table.groups tr[data-ext="600"]');
  assert.deepEqual(await row.$$eval('.c-members li', (ls) => ls.map((l) => l.textContent)), ['Alice 100', `${XSS} 102`, 'Bob 101']);
  assert.match(await row.textContent(), /One after another/);
  assert.match(await row.$eval('.c-timeout', (c) => c.textContent), /^10 s each$/);
  assert.equal(await page.$$eval('img[src="x"]', (e) => e.length), 0);
  await shot(page, '37-groups-list');
});

test('ring groups: edit (the whole group is saved), delete after a confirmation', async () => {
  assert.equal((await sx.api('POST', '/groups', { extension: '601', name: 'Support', members: ['101'], no_answer_target: '600' })).status, 201);
  await go('/calls'); // the page may be on the groups already: come to it afresh
  await go('/groups');
  await page.waitForSelector('table.groups tr[data-ext="601"]');
  assert.match(await page.textContent('tr[data-ext="601"] .c-target'), /^group Sales 600$/);
  await page.click('tr[data-ext="600"] a:has-text("Edit")');
  await page.waitForURL(/#\/groups\/600$/);
  await page.waitForSelector('#g-members li[data-ext="100"]');
  assert.equal(await page.$('#g-ext'), null, 'the extension cannot change');
  await page.check('#g-strat-ringall');
  assert.match(await page.textContent('#g-members-help'), /all ring at once/);
  await page.click('#g-members button[aria-label="Remove 102"]');
  await page.fill('#g-target', '');
  await page.click('#group-form button[type=submit]');
  await page.waitForURL(/#\/groups$/);
  await page.waitForSelector('#toast.show:has-text("Ring group 600 saved")');
  const g = (await sx.api('GET', '/groups/600')).json;
  assert.deepEqual([g.name, g.strategy, g.members, g.member_timeout, g.no_answer_target], ['Sales', 'ringall', ['100', '101'], 10, null]);
  await page.waitForFunction(() => document.querySelector('tr[data-ext="600"] .c-members')?.textContent === 'Alice 100Bob 101');
  // delete: Cancel keeps it, OK removes it
  await page.click('tr[data-ext="601"] button:has-text("Delete")');
  assert.equal(await page.textContent('dialog h2'), 'Delete ring group 601?');
  await page.click('dialog button[value="cancel"]');
  assert.equal((await sx.api('GET', '/groups/601')).status, 200);
  await page.click('tr[data-ext="601"] button:has-text("Delete")');
  await page.click('dialog button[value="ok"]');
  await page.waitForSelector('tr[data-ext="601"]', { state: 'detached' });
  assert.equal((await sx.api('GET', '/groups/601')).status, 404);
  // a forwarding rule may send calls to a group: offered as the target is typed
  await go('/forwarding/100');
  await page.waitForSelector('#fw-busy-target');
  await page.waitForSelector('#fw-targets option[value="600"]', { state: 'attached' });
  assert.equal(await page.getAttribute('#fw-busy-target', 'list'), 'fw-targets');
  await page.check('#fw-busy-en');
  await page.fill('#fw-busy-target', '600');
  await page.click('form.forwarding button[type=submit]');
  await page.waitForSelector('#toast.show:has-text("saved")');
  assert.equal((await sx.api('GET', '/users/100/forwarding')).json.busy.target, '600');
  await page.uncheck('#fw-busy-en');
  await page.fill('#fw-busy-target', '');
  await page.click('form.forwarding button[type=submit]');
  await page.waitForSelector('#toast.show:has-text("saved")');
  // the forwarding page of a group says where its calls go
  await go('/forwarding/600');
  await page.waitForSelector('#fw-is-group');
});

test('do not disturb: the switch of an account, the badge and filter of the list, several at once', async () => {
  try {
    await dndChecks();
  } finally { // the calls of later tests need the phones to ring
    for (const e of ['100', '101', '102']) await sx.api('PATCH', `/users/${e}`, { dnd: false });
  }
});

async function dndChecks() {
  await go('/accounts/101');
  const sw = await page.waitForSelector('#dnd-switch');
  assert.equal(await sw.getAttribute('role'), 'switch');
  assert.equal(await sw.getAttribute('aria-checked'), 'false');
  await sw.click();
  await page.waitForSelector('#dnd-switch[aria-checked="true"]');
  await page.waitForSelector('#toast.show:has-text("Do not disturb on for 101")');
  assert.equal((await sx.api('GET', '/users/101')).json.dnd, true);
  assert.match(await page.textContent('#dnd-help'), /^Calls to 101 get busy/);
  await shot(page, '38-account-dnd');
  // the list: a badge, and the filter
  await go('/accounts');
  await page.waitForSelector('tr[data-ext="101"] .b-dnd');
  assert.equal(await page.$('tr[data-ext="100"] .b-dnd'), null);
  await page.selectOption('#acc-status', 'dnd');
  await page.waitForFunction(() => [...document.querySelectorAll('table.accounts tbody tr')].map((r) => r.dataset.ext).join() === '101');
  assert.match(page.url(), /status=dnd/);
  // several at once
  await page.selectOption('#acc-status', '');
  await page.waitForSelector('tr[data-ext="102"]');
  await page.check('tr[data-ext="100"] td.sel input');
  await page.check('tr[data-ext="102"] td.sel input');
  await page.click('#bulk-bar button:has-text("Do not disturb on")');
  assert.equal(await page.textContent('dialog h2'), 'Turn on do not disturb for 2 accounts?');
  await page.click('dialog button[value="ok"]');
  await page.waitForSelector('#toast.show:has-text("2 accounts set to do not disturb")');
  await page.waitForSelector('tr[data-ext="102"] .b-dnd');
  assert.deepEqual((await sx.api('GET', '/users?status=dnd')).json.items.map((u) => u.extension), ['100', '101', '102']);
  await shot(page, '39-accounts-dnd');
  // the group shows who will not ring
  await go('/groups');
  await page.waitForSelector('tr[data-ext="600"] .c-members .b-dnd');
  await go('/accounts?status=dnd');
  await page.waitForFunction(() => document.querySelectorAll('table.accounts tbody tr').length === 3);
  await page.check('table.accounts thead input[type=checkbox]');
  await page.click('#bulk-bar button:has-text("Do not disturb off")');
  await page.click('dialog button[value="ok"]');
  await page.waitForSelector('#no-match');
  assert.deepEqual((await sx.api('GET', '/users?status=dnd')).json.items, []);
  // and the switch back on the account page
  await go('/accounts/101');
  await page.waitForSelector('#dnd-switch[aria-checked="false"]');
}

test('display names: the limit in characters, counted in the field and said before saving', async () => {
  await go('/accounts');
  await page.click('button:has-text("New account")');
  await page.fill('#new-ext', '150');
  const long = '山'.repeat(128); // 384 bytes
  await page.fill('#new-name', long);
  await page.fill('#new-pw', 'secret150');
  assert.equal(await page.textContent('#new-name-count'), '128 of 127 characters');
  assert.equal(await page.getAttribute('#new-name-count', 'class'), 'counter over');
  await page.click('#new-account button[type=submit]');
  const err = await page.waitForSelector('#new-account .field-error');
  assert.match(await err.textContent(), /^At most 127 characters: this name has 128\.$/);
  assert.equal((await sx.api('GET', '/users/150')).status, 404, 'nothing was sent');
  await shot(page, '23-display-name-limit');
  // 127 characters of four bytes each are taken whole, not cut
  const emoji = '😀'.repeat(127);
  await page.fill('#new-name', emoji);
  assert.equal(await page.textContent('#new-name-count'), '127 of 127 characters');
  await page.click('#new-account button[type=submit]');
  await page.waitForURL(/#\/accounts\/150$/);
  assert.equal((await sx.api('GET', '/users/150')).json.display_name, emoji);
  assert.equal(await page.inputValue('#ed-name'), emoji);
  // a 127-character name without spaces widens nothing: no page scrolls sideways
  const wide = 'W'.repeat(127);
  assert.equal((await sx.api('PATCH', '/users/150', { display_name: wide })).status, 200);
  await page.setViewportSize({ width: 1400, height: 900 });
  try {
    for (const h of ['/accounts', '/accounts/150', '/forwarding/150', '/stats']) {
      await go(h);
      await page.waitForSelector('main section.page');
      await page.waitForLoadState('networkidle').catch(() => {});
      const w = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
      assert.ok(w[0] <= w[1], `${h}: ${w[0]} px wide in a ${w[1]} px window`);
    }
    await go('/accounts');
    const cell = await page.waitForSelector('tr[data-ext="150"] td.c-name .cut');
    assert.equal(await cell.getAttribute('title'), wide, 'the whole name in the tooltip');
    const tw = await page.$eval('table.accounts', (t) => t.getBoundingClientRect().width);
    assert.ok(tw <= 1400, `the accounts table is ${tw} px wide`);
  } finally {
    await page.setViewportSize({ width: 1280, height: 860 });
    await sx.api('DELETE', '/users/150');
  }
});

test('ladders: time since the previous message, a colour per leg, SDP marked and compared', async () => {
  await go(`/ladder/${encodeURIComponent(state.forwardedCallId)}`);
  await page.waitForSelector('svg.ladder .arrow');
  const rows = await page.$$eval('svg.ladder .arrow', (gs) => gs.map((g) => ({
    delta: g.querySelector('.delta')?.textContent || '', leg: g.dataset.leg, sdp: g.dataset.sdp, label: g.querySelector('.label').textContent,
    name: g.getAttribute('aria-label'), visible: [...g.querySelectorAll('text')].map((t) => t.textContent).join(' '),
  })));
  assert.equal(rows[0].delta, '');
  assert.ok(rows.slice(1).every((r) => /^\+\d+(\.\d+)? (µs|ms|s)$|^\+\d+ min \d+ s$/.test(r.delta)), rows.map((r) => r.delta).join(' '));
  // a leg per party: caller, callee and forward target each have their own colour
  const legs = await page.$$eval('.party-head', (gs) => gs.map((g) => g.dataset.leg));
  assert.deepEqual(legs, ['1', '0', '2']); // caller, sipbx, the forward target (unconditional)
  assert.deepEqual([...new Set(rows.map((r) => r.leg))].sort(), ['1', '2']);
  // every arrow's accessible name starts with what it shows, in order (WCAG 2.5.3)
  for (const r of rows) assert.ok(r.name.startsWith(r.visible), `"${r.name}" does not start with "${r.visible}"`);
  // SDP: the INVITE carries an offer, the 200 an answer
  const invite = rows.findIndex((r) => r.label === 'INVITE' && r.sdp !== '0');
  assert.ok(invite >= 0, 'the INVITE is marked as carrying SDP');
  await page.click(`svg.ladder .arrow >> nth=${invite}`);
  const box = await page.waitForSelector('#ladder-detail .sdp-box');
  assert.match(await box.textContent(), /audio to127\.0\.0\.1:\d+codecsPCMU/);
  assert.ok(await page.$('#ladder-detail .sipmsg .sdp-line'), 'media lines highlighted in the message');
  // every column stays in view while the message is open
  const fit = await page.evaluate(() => {
    const sc = document.querySelector('.ladder-scroll');
    return [sc.scrollWidth, sc.clientWidth, document.querySelectorAll('.party-head').length];
  });
  assert.ok(fit[0] <= fit[1], `the ladder is ${fit[0]} px wide in ${fit[1]} px with the message open (${fit[2]} columns)`);
  await shot(page, '24-ladder-sdp-open');
  await docShot(page, 'ladder-sdp');
  await page.keyboard.press('Escape');
  await page.waitForSelector('#ladder-detail', { state: 'hidden' });

  // the hold: the re-INVITE's SDP differs from the one before (sendonly), and says so
  await go(`/ladder/${encodeURIComponent(state.holdCallId)}`);
  const re = page.locator('svg.ladder .arrow[data-sdp="changed"]').first(); // drawn again as the page settles
  await re.waitFor();
  assert.match(await re.locator('.label').textContent(), /re-INVITE \(hold\)/);
  assert.equal(await re.locator('.sdptag').textContent(), 'SDP Δ');
  await re.click();
  const held = await page.waitForSelector('#ladder-detail .sdp-box');
  assert.match(await held.textContent(), /changed: audio direction/);
  assert.match(await held.textContent(), /sendonly\s*sendrecv/); // now, and what it was
  assert.ok(await page.$('#ladder-detail .sipmsg .sdp-line.changed'));
  await shot(page, '25-ladder-hold-sdp-change');
  await docShot(page, 'ladder-hold');
  await page.keyboard.press('Escape');
});

test('ladders: filter by method, fold retransmissions, save as SVG and PNG', async () => {
  await go(`/ladder/${encodeURIComponent(state.callId)}`);
  await page.waitForSelector('svg.ladder .arrow');
  const all = await page.$$eval('svg.ladder .arrow', (a) => a.length);
  const methods = await page.$$eval('.ladder-tools .methods button', (bs) => bs.map((b) => b.dataset.method));
  assert.ok(methods.includes('INVITE') && methods.includes('BYE') && methods.includes('ACK'), methods.join());
  await page.click('.ladder-tools button[data-method="INVITE"]');
  assert.equal(await page.getAttribute('.ladder-tools button[data-method="INVITE"]', 'aria-pressed'), 'false');
  const left = await page.$$eval('svg.ladder .arrow .label', (ls) => ls.map((l) => l.textContent));
  assert.ok(left.length < all && left.length > 0);
  assert.ok(left.every((l) => !/^(INVITE|re-INVITE|1\d\d|200 OK$|407)/.test(l)), left.join(', '));
  assert.ok(left.includes('BYE'));
  await page.click('.ladder-tools button[data-method="INVITE"]');
  await page.waitForFunction((k) => document.querySelectorAll('svg.ladder .arrow').length === k, all);
  // unfolded, every message has its arrow
  await page.uncheck('#fold-retrans');
  await page.waitForFunction((k) => document.querySelectorAll('svg.ladder .arrow').length === k, await traceCount(sx, state.callId));
  await page.check('#fold-retrans');
  // a retransmission folded: made here, as the phones on loopback seldom resend
  const folded = await page.evaluate(async () => {
    const { ladderRows } = await import('/assets/js/ladder.js');
    const m = (seq, retransmission) => ({ seq, time_us: seq * 1000, direction: 'out', src: 'a:1', dst: 'b:2', first_line: 'SIP/2.0 200 OK', cseq: '1 INVITE', retransmission, raw: '' });
    return ladderRows([m(1, false), m(2, true), m(3, true)]).map((r) => r.repeats.length);
  });
  assert.deepEqual(folded, [2]);
  // saved as files
  const [svgDl] = await Promise.all([page.waitForEvent('download'), page.click('#export-svg')]);
  const svgFile = path.join(ARTIFACTS, 'ladder.svg');
  await svgDl.saveAs(svgFile);
  const svg = fs.readFileSync(svgFile, 'utf8');
  assert.match(svg, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.equal((svg.match(/class="arrow /g) || []).length, all);
  assert.ok(svg.includes('<style>') && svg.includes('INVITE'));
  const [pngDl] = await Promise.all([page.waitForEvent('download'), page.click('#export-png')]);
  const png = fs.readFileSync(await pngDl.path());
  assert.equal(png.subarray(0, 8).toString('hex'), '89504e470d0a1a0a');
  assert.ok(png.readUInt32BE(16) > 300, `a PNG ${png.readUInt32BE(16)} px wide`);
  fs.writeFileSync(path.join(ARTIFACTS, 'ladder.png'), png);
  // nothing captured: no pcap to download
  await go(`/ladder/${encodeURIComponent('never-seen@nowhere')}`);
  await page.waitForSelector('#ladder-summary:has-text("Nothing captured")');
  assert.equal(await page.isVisible('#pcap-link'), false);
});

test('ladders: a leg over TLS is marked with a lock in the message, its pcap is pcapng', async () => {
  // a caller over TLS and a callee over UDP, written straight into the capture
  const cid = 'tls-leg@web.test';
  const t0 = Date.now() * 1000;
  const msg = (first, cseq) => `${first}\r\nVia: SIP/2.0/TLS 127.0.0.1:40001;branch=z9hG4bKtls\r\nFrom: <sip:100@127.0.0.1>;tag=a\r\nTo: <sip:101@127.0.0.1>\r\nCall-ID: ${cid}\r\nCSeq: ${cseq}\r\nContent-Length: 0\r\n\r\n`;
  const rows = [
    [t0, 'in', 'tls', '127.0.0.1:5061', '127.0.0.1:40001', 'INVITE sip:101@127.0.0.1 SIP/2.0', '1 INVITE'],
    [t0 + 1000, 'out', 'udp', '127.0.0.1:5060', '127.0.0.1:40002', 'INVITE sip:101@127.0.0.1:40002 SIP/2.0', '1 INVITE'],
  ];
  execFileSync('sqlite3', [sx.db, 'PRAGMA busy_timeout=10000;' + rows.map(([t, dir, tr, local, remote, first, cseq]) =>
    `INSERT INTO trace_messages (call_id, time_us, direction, transport, local, remote, first_line, raw)
     VALUES ('${cid}', ${t}, '${dir}', '${tr}', '${local}', '${remote}', '${first}', '${msg(first, cseq).replace(/'/g, "''")}');`).join('')]);
  await go(`/ladder/${encodeURIComponent(cid)}`);
  await page.waitForFunction(() => document.querySelectorAll('svg.ladder .arrow').length === 2);
  assert.match(await page.textContent('.party-head:nth-of-type(1) title'), /^caller 100, 127\.0\.0\.1:40001 over TLS$/);
  assert.doesNotMatch(await page.textContent('.party-head:nth-of-type(3) title'), /TLS/);
  await page.click('svg.ladder .arrow >> nth=0');
  await page.waitForSelector('#ladder-detail:not([hidden]) .tls-mark');
  const dd = await page.$eval('#ladder-detail .tls-mark', (e) => ({ text: e.textContent, lock: !!e.querySelector('svg.lock[aria-hidden="true"]'), row: e.closest('dd').textContent }));
  assert.deepEqual([dd.text, dd.lock], ['TLS', true]);
  assert.equal(dd.row, 'received from 127.0.0.1:40001 over TLS (encrypted on the wire; shown as sipbx decrypted it)');
  await shot(page, '25-ladder-tls');
  await page.click('svg.ladder .arrow >> nth=1');
  await page.waitForFunction(() => document.querySelector('#ladder-detail pre.sipmsg')?.textContent.includes('40002 SIP/2.0'));
  assert.equal(await page.$('#ladder-detail .tls-mark'), null);
  assert.match(await page.textContent('#ladder-detail dl'), /sent to 127\.0\.0\.1:40002 over UDP/);
  // the capture of a call with a TLS leg: pcapng, named so
  const r = await page.request.get(sx.base + await page.getAttribute('#pcap-link', 'href'));
  assert.equal(r.status(), 200);
  assert.equal(r.headers()['content-type'], 'application/x-pcapng');
  assert.match(r.headers()['content-disposition'], /filename="tls-leg_web\.test\.pcapng"$/);
  assert.equal((await r.body()).readUInt32LE(0), 0x0a0d0d0a);
});

test('50 live calls in a compact table that fits one screen, with a filter', async () => {
  await page.setViewportSize({ width: 1920, height: 1200 });
  try {
    await go('/calls');
    await page.waitForSelector('#no-calls');
    const callee = new Sipp(sx, 'callee.xml', { user: '101', port: state.port101, pauseMs: 100, calls: 50, timeout: '60s' });
    await callee.listening();
    const caller = new Sipp(sx, 'caller.xml', { user: '100', password: PW[100], port: await freePort(), pauseMs: 12000,
      keys: { callee: '101', name: 'Alice' }, calls: 50, rate: 50, timeout: '60s' });
    await page.waitForFunction(() => document.querySelectorAll('#live-calls tr.call[data-state="answered"]').length === 50, null, { timeout: 20000 });
    assert.equal(await page.textContent('#calls-count'), '(50)');
    const bottom = await page.$eval('#live-calls tr.call:last-child', (r) => r.getBoundingClientRect().bottom + window.scrollY);
    assert.ok(bottom <= 1200, `the 50th call ends ${bottom} px down a 1200 px screen`);
    await shot(page, '26-calls-50');
  await docShot(page, 'calls-50');
    // the filter: by the answering state's word, then by something nobody has
    await page.fill('#calls-filter', 'talking');
    await page.waitForFunction(() => document.getElementById('calls-count').textContent === '(50 of 50)');
    await page.fill('#calls-filter', 'nobody-here');
    await page.waitForSelector('#live-calls #no-match');
    assert.equal(await page.textContent('#calls-count'), '(0 of 50)');
    await page.fill('#calls-filter', '');
    await Promise.all([caller.ok(60000), callee.ok(60000)]);
  } finally {
    await page.setViewportSize({ width: 1280, height: 860 });
  }
});

test('tokens: create (shown once) and revoke; settings', async () => {
  await go('/settings');
  await page.waitForSelector('#settings');
  const st = await page.textContent('#settings');
  assert.ok(st.includes('127.0.0.1'), st);
  assert.ok(st.includes(`:${sx.sipPort}`), st);
  assert.ok(st.includes('30 s'), st); // --ring-timeout 30
  await page.fill('#tok-name', 'monitoring');
  await page.click('form.inline-form button[type=submit]');
  await page.waitForSelector('#new-token input');
  const token = await page.inputValue('#new-token input');
  assert.match(token, /^sipbx_/);
  let r = await fetch(`${sx.base}/api/v1/users`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(r.status, 200);
  await page.waitForSelector('table.tokens td:has-text("monitoring")');
  await shot(page, '18-settings');
  const row = page.locator('table.tokens tr', { hasText: 'monitoring' });
  await row.locator('button:has-text("Revoke")').click();
  await page.click('dialog button[value="ok"]');
  await page.waitForSelector('table.tokens td:has-text("monitoring")', { state: 'detached' });
  r = await fetch(`${sx.base}/api/v1/users`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(r.status, 401);
});

/** Guesses n wrong passwords for ext from source (a loopback address) over UDP, answering
 *  each fresh challenge, as a password-guessing script would: sipbx blocks source after 10. */
async function guessPasswords(ext, source, n) {
  const sock = dgram.createSocket('udp4');
  await new Promise((r) => sock.bind(0, source, r));
  const port = sock.address().port;
  const md5 = (s) => crypto.createHash('md5').update(s).digest('hex');
  const callId = `guess-${crypto.randomBytes(6).toString('hex')}@${source}`;
  const send = (cseq, auth) => new Promise((resolve) => {
    const msg = [`REGISTER sip:${HOST} SIP/2.0`,
      `Via: SIP/2.0/UDP ${source}:${port};rport;branch=z9hG4bK${crypto.randomBytes(8).toString('hex')}`,
      'Max-Forwards: 70', `From: <sip:${ext}@${HOST}>;tag=g1`, `To: <sip:${ext}@${HOST}>`,
      `Call-ID: ${callId}`, `CSeq: ${cseq} REGISTER`, `Contact: <sip:${ext}@${source}:${port}>`,
      ...(auth ? [`Authorization: ${auth}`] : []), 'Content-Length: 0', '', ''].join('\r\n');
    const timer = setTimeout(() => { sock.removeAllListeners('message'); resolve(null); }, 1000);
    sock.on('message', (buf) => {
      const text = buf.toString();
      if (!text.includes(`CSeq: ${cseq} `)) return;
      clearTimeout(timer);
      sock.removeAllListeners('message');
      resolve(text);
    });
    sock.send(msg, sx.sipPort, HOST);
  });
  let answer = await send(1);
  for (let i = 0; i < n && answer; i++) {
    const nonce = /nonce="([0-9a-f]+)"/.exec(answer)[1];
    const uri = `sip:${HOST}`;
    const resp = md5(`${md5(`${ext}:${HOST}:guess${i}`)}:${nonce}:${md5(`REGISTER:${uri}`)}`);
    answer = await send(i + 2, `Digest username="${ext}", realm="${HOST}", nonce="${nonce}", uri="${uri}", response="${resp}", algorithm=MD5`);
  }
  sock.close();
  return answer;
}

test('settings: a blocked address is listed and lifted', async () => {
  assert.equal(await guessPasswords('100', '127.0.0.5', 12), null, 'the guesser must end up unanswered');
  await go('/calls'); // the page may be on the settings already: come to it afresh
  await go('/settings');
  await page.waitForSelector('table.blocks tr[data-source="127.0.0.5"]');
  const row = page.locator('table.blocks tr[data-source="127.0.0.5"]');
  const text = await row.textContent();
  assert.ok(text.includes('10 failed digest checks in 60 s'), text);
  assert.ok(text.includes('100'), text);
  await shot(page, '19-settings-blocks');
  await row.locator('button:has-text("Lift")').click();
  await page.click('dialog button[value="ok"]');
  await page.waitForSelector('table.blocks tr[data-source="127.0.0.5"]', { state: 'detached' });
  const r = await sx.api('GET', '/security/blocks');
  assert.deepEqual(r.json.items, []);
  assert.ok(await guessPasswords('100', '127.0.0.5', 1), 'answered again after the lift');
});

test('a ladder follows its own trace stream, and closes it when the page is left', async () => {
  const streams = async () => {
    const r = await fetch(`${sx.base}/metrics`, { headers: { Authorization: `Bearer ${await sx.token()}` } });
    return Number(/^sipbx_http_event_streams (\d+)$/m.exec(await r.text())[1]);
  };
  const settle = async (want) => {
    const deadline = Date.now() + 5000;
    let n;
    while ((n = await streams()) !== want && Date.now() < deadline) await sleep(100);
    return n;
  };
  await go('/calls');
  await page.waitForSelector('#live-calls');
  const base = await settle(await streams()); // the app's own event stream (and nothing else of ours)
  await go(`/ladder/${encodeURIComponent(state.callId)}`);
  await page.waitForSelector('svg.ladder .arrow');
  assert.equal(await settle(base + 1), base + 1, 'the ladder opened its trace stream');
  for (let i = 0; i < 3; i++) { // back and forth: never more than one per ladder shown
    await go('/records');
    await page.waitForSelector('#records, table');
    await go(`/ladder/${encodeURIComponent(state.callId)}`);
    await page.waitForSelector('svg.ladder .arrow');
  }
  assert.equal(await settle(base + 1), base + 1, 'trace streams of ladders left behind still open');
  await go('/calls');
  assert.equal(await settle(base), base, 'the trace stream outlived its page');
});

test('a ladder of 200 messages draws without a stall', async () => {
  const cid = await registerBurst(sx, '100', PW[100], 99); // 2 + 2 * 99 messages
  assert.equal(await settledTrace(sx, cid, 200), 200);
  const t0 = Date.now();
  await go(`/ladder/${encodeURIComponent(cid)}`);
  await page.waitForFunction(() => document.querySelectorAll('svg.ladder .arrow').length === 200);
  const ms = Date.now() - t0;
  const drawMs = Number(await page.getAttribute('#ladder-summary', 'data-draw-ms'));
  assert.ok(drawMs < 250, `drawn in ${drawMs} ms`);
  assert.ok(ms < 2000, `shown after ${ms} ms`);
  await page.click('svg.ladder .arrow >> nth=199');
  await page.waitForSelector('#ladder-detail:not([hidden])');
  await shot(page, '19-ladder-200');
});

test('a large call record table pages instantly', async () => {
  // 100000 synthetic records, written straight into the database
  execFileSync('sqlite3', [sx.db, `PRAGMA busy_timeout=10000;
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
    INSERT INTO cdrs (call_id, caller, caller_name, dialled, answered_by, start_us, answer_us, end_us,
                      duration, billsec, disposition, status, phrase, hangup_by)
    SELECT 'bulk-' || i, '100', 'Bulk', '101', '101', 1700000000000000 + i * 60000000,
           1700000000000000 + i * 60000000 + 5000000, 1700000000000000 + i * 60000000 + 65000000,
           65, 60, 'ANSWERED', 200, 'OK', 'caller' FROM n;`]);
  await go('/records?limit=100');
  await page.waitForSelector('table.cdrs tbody tr');
  const seen = new Set();
  const times = [];
  for (let i = 0; i < 4; i++) {
    const ids = await page.$$eval('table.cdrs tbody tr', (rows) => rows.map((r) => r.dataset.callId));
    assert.equal(ids.length, 100);
    for (const id of ids) { assert.ok(!seen.has(id), `${id} shown twice`); seen.add(id); }
    const t0 = Date.now();
    await page.click('button:has-text("Older")');
    await page.waitForFunction((k) => document.querySelector('.pager span')?.textContent.startsWith(`page ${k} of`), i + 2);
    times.push(Date.now() - t0);
  }
  await shot(page, '20-records-paged');
  assert.ok(Math.max(...times) < 1000, `pages took ${times.join(', ')} ms`);
  await page.click('button:has-text("Newer")');
  await page.waitForFunction(() => document.querySelector('.pager span')?.textContent.startsWith('page 4 of'));
});

const loadTimes = {}; // page -> ms, at office scale (docs/dashboard.md)

test('office scale: 1,000 more accounts, 350 registrations, 100,000 records: every page loads fast', async () => {
  const now = Math.floor(Date.now() / 1000);
  execFileSync('sqlite3', [sx.db, `PRAGMA busy_timeout=10000;
    BEGIN;
    WITH RECURSIVE n(i) AS (SELECT 2000 UNION ALL SELECT i + 1 FROM n WHERE i < 2999)
    INSERT INTO users (extension, display_name, ha1, realm, created_at, updated_at)
    SELECT i, CASE WHEN i % 100 = 7 THEN 'Very-long-name-without-any-spaces-' || i || '-' || printf('%.80c', 'x') ELSE 'Staff ' || i END,
           '00000000000000000000000000000000', '127.0.0.1', ${now} - (3000 - i), ${now} FROM n;
    WITH RECURSIVE n(i) AS (SELECT 2000 UNION ALL SELECT i + 1 FROM n WHERE i < 2349)
    INSERT INTO registrations (extension, contact, source, transport, user_agent, call_id, cseq, registered_at, expires_at)
    SELECT i, 'sip:' || i || '@192.0.2.' || (i % 250) || ':5060;transport=udp;x-long=' || printf('%.60c', 'y'),
           '192.0.2.' || (i % 250) || ':5060', 'udp', 'Yealink SIP-T46S 66.86.0.15 ' || printf('%.60c', 'z'),
           'reg-' || i || '@192.0.2.1', 1, ${now}, ${now} + 3600 FROM n;
    COMMIT;`]);
  const users = (await sx.api('GET', '/users?limit=1')).json.total;
  assert.ok(users >= 1000, `${users} accounts`);
  state.users = users;
  const ready = {
    '/': () => /^\d+$/.test(document.getElementById('stat-accounts')?.textContent || '') && !!document.querySelector('svg.chart'),
    '/accounts': () => document.querySelectorAll('table.accounts tbody tr').length === 50,
    '/accounts/2000': () => !!document.querySelector('.devices-table') && !!document.getElementById('account-totals-list'),
    '/forwarding/2000': () => !!document.getElementById('fw-no_answer-en') && document.querySelectorAll('#fw-account option').length > 1000,
    '/groups': () => !!document.querySelector('table.groups tr[data-ext="600"] .chip'),
    '/calls': () => !!document.querySelector('#no-calls, #live-calls table'),
    '/records': () => document.querySelectorAll('table.cdrs tbody tr').length === 50 && /records/.test(document.getElementById('records-count').textContent),
    '/stats?period=30d': () => !!document.querySelector('#stats-table table') && !!document.querySelector('svg.chart'),
    '/settings': () => !!document.getElementById('settings'),
  };
  for (const [hash, fn] of Object.entries(ready)) {
    await go('/calls'); // from another page, as a click in the menu would
    await page.waitForSelector('main section.page');
    const t0 = Date.now();
    await page.goto(`${sx.base}/#${hash}`);
    await page.waitForFunction(fn, null, { timeout: 10000 });
    loadTimes[hash] = Date.now() - t0;
  }
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  fs.writeFileSync(path.join(ARTIFACTS, 'load-times.json'), JSON.stringify({ accounts: users, records: (await sx.api('GET', '/cdrs?limit=1&count=true')).json.total, ms: loadTimes }, null, 2) + '\n');
  console.log(`# load times at ${users} accounts: ${JSON.stringify(loadTimes)}`);
  for (const [hash, ms] of Object.entries(loadTimes)) assert.ok(ms < 2500, `${hash} took ${ms} ms`);
});

test('ring groups at scale: members found among 1,000 accounts as the search is typed', async () => {
  await go('/groups/600');
  await page.waitForSelector('#g-members li[data-ext="100"]');
  await page.waitForSelector('#g-results li');
  assert.equal(await page.$$eval('#g-results li', (l) => l.length), 8, 'a page of results, not every account');
  assert.match(await page.textContent('#g-results-count'), new RegExp(`^${state.users.toLocaleString('en-US')} accounts match; the first 8 are shown`));
  const want = (await sx.api('GET', '/users?q=staff%20234&limit=1')).json.total;
  assert.ok(want > 8, `${want} accounts match`);
  const t0 = Date.now();
  await page.fill('#g-member-search', 'staff 234');
  await page.waitForFunction((n) => document.getElementById('g-results-count').textContent.startsWith(`${n} accounts match; the first 8`), want);
  const ms = Date.now() - t0; // with the 200 ms pause for typing
  assert.ok(ms < 1000, `results after ${ms} ms`);
  await page.fill('#g-member-search', 'staff 2345');
  await page.waitForFunction(() => [...document.querySelectorAll('#g-results li')].map((l) => l.dataset.ext).join() === '2345');
  await page.keyboard.press('Enter');
  await page.click('#g-members button[aria-label="Move 2345 up"]');
  assert.deepEqual(await page.$$eval('#g-members li', (ls) => ls.map((l) => l.dataset.ext)), ['100', '2345', '101']);
  await page.check('#g-strat-sequential');
  await page.fill('#g-member-search', 'staff 23');
  await page.waitForFunction(() => /^\d+ accounts match; the first 8/.test(document.getElementById('g-results-count').textContent));
  await docShot(page, 'groups');
  await page.click('#group-form button[type=submit]');
  await page.waitForURL(/#\/groups$/);
  const g = (await sx.api('GET', '/groups/600')).json;
  assert.deepEqual([g.strategy, g.members], ['sequential', ['100', '2345', '101']]);
  await page.waitForFunction(() => document.querySelector('tr[data-ext="600"] .c-members')?.textContent === 'Alice 100Staff 2345 2345Bob 101');
});

test('accounts at scale: pages, sort by every column, filter, search, no match', async () => {
  await go('/accounts');
  await page.waitForSelector('table.accounts tbody tr');
  assert.match(await page.textContent('#accounts-count'), new RegExp(`^${state.users.toLocaleString('en-US')} accounts; showing 1–50\\.$`));
  // by name, then the reverse: the server's order, a page at a time
  for (const [sort, dir] of [['name', 'ascending'], ['name', 'descending'], ['status', 'ascending'], ['created', 'descending']]) {
    await page.click(`table.accounts th:has(button:text-is("${sort[0].toUpperCase() + sort.slice(1)}")) button`);
    await page.waitForSelector(`table.accounts th[aria-sort="${dir}"]`);
    const want = (await sx.api('GET', `/users?limit=50&sort=${dir === 'descending' ? '-' : ''}${sort}`)).json.items.map((u) => u.extension);
    await page.waitForFunction((w) => [...document.querySelectorAll('table.accounts tbody tr')].map((r) => r.dataset.ext).join() === w.join(), want);
  }
  await shot(page, '27-accounts-1000-sorted');
  await docShot(page, 'accounts-1000');
  await page.click('table.accounts th:has(button:text-is("Extension")) button');
  await page.waitForSelector('table.accounts th[aria-sort="ascending"]:has-text("Extension")');
  // page 2
  await page.click('button:has-text("Next →")');
  await page.waitForFunction(() => document.getElementById('accounts-page').textContent.startsWith('page 2 of'));
  const p2 = (await sx.api('GET', '/users?limit=100')).json.items.slice(50).map((u) => u.extension);
  assert.deepEqual(await page.$$eval('table.accounts tbody tr', (rs) => rs.map((r) => r.dataset.ext)), p2);
  // online / offline / disabled
  await page.selectOption('#acc-status', 'online');
  const online = (await sx.api('GET', '/users?limit=1&status=online')).json.total;
  await page.waitForFunction((n) => document.getElementById('accounts-count').textContent.startsWith(`${n} accounts match`), online.toLocaleString('en-US'));
  assert.ok(await page.$$eval('table.accounts tbody tr .presence', (ps) => ps.every((p) => p.dataset.state === 'online')));
  assert.match(page.url(), /status=online/);
  await page.selectOption('#acc-status', 'disabled');
  await page.waitForSelector('#no-match, table.accounts');
  await page.selectOption('#acc-status', '');
  // search, and the answer when nothing matches
  await page.fill('#acc-search', 'staff 2345');
  await page.waitForFunction(() => document.querySelectorAll('table.accounts tbody tr').length === 1);
  assert.equal(await page.getAttribute('table.accounts tbody tr', 'data-ext'), '2345');
  await page.fill('#acc-search', 'nobody-has-this-name');
  await page.waitForSelector('#no-match');
  assert.match(await page.textContent('#no-match'), /^No account matches “nobody-has-this-name”\. Show all accounts\.$/);
  await shot(page, '28-accounts-no-match');
  await page.click('#no-match button');
  await page.waitForFunction(() => document.querySelectorAll('table.accounts tbody tr').length === 50);
});

test('accounts at scale: several enabled, disabled and deleted at once, after a confirmation', async () => {
  await go('/accounts?q=299');
  const matching = (await sx.api('GET', '/users?q=299')).json.items.map((u) => u.extension); // 2299, 2990 .. 2999
  await page.waitForFunction((n) => document.querySelectorAll('table.accounts tbody tr').length === n, matching.length);
  for (const e of ['2997', '2998', '2999']) await page.check(`tr[data-ext="${e}"] td.sel input`);
  assert.equal(await page.textContent('#bulk-count'), '3 selected');
  await page.click('#bulk-bar button:has-text("Disable")');
  assert.match(await page.textContent('dialog h2'), /^Disable 3 accounts\?$/);
  assert.match(await page.textContent('dialog p'), /^2997, 2998, 2999\. /);
  await shot(page, '29-accounts-bulk-confirm');
  await page.click('dialog button[value="ok"]');
  await page.waitForSelector('#toast.show:has-text("3 accounts disabled")');
  for (const e of ['2997', '2998', '2999']) assert.equal((await sx.api('GET', `/users/${e}`)).json.enabled, false, e);
  await page.waitForSelector('tr[data-ext="2999"] .presence[data-state="disabled"]');
  // Cancel changes nothing
  await page.check('tr[data-ext="2990"] td.sel input');
  await page.click('#bulk-bar button:has-text("Delete")');
  await page.click('dialog button[value="cancel"]');
  assert.equal((await sx.api('GET', '/users/2990')).status, 200);
  // select the page, then delete
  await page.check('table.accounts thead input[type=checkbox]');
  assert.equal(await page.textContent('#bulk-count'), `${matching.length} selected`);
  await page.click('#bulk-bar button:has-text("Delete")');
  await page.click('dialog button[value="ok"]');
  await page.waitForSelector('#no-match');
  for (const e of matching) assert.equal((await sx.api('GET', `/users/${e}`)).status, 404, e);
});

test('accounts: import from CSV, each line checked first, then created', async () => {
  const sent = [];
  const watch = (req) => {
    if (req.url().endsWith('/api/v1/users/import')) sent.push({ type: req.headers()['content-type'], body: req.postData() });
  };
  page.on('request', watch);
  try {
    await go('/accounts');
    await page.click('button:has-text("Import CSV")');
    const csv = ['extension,password,display_name', '3001,secret3001,Ann', '3002,secret3002,"Smith, Bob ""B"""',
      '-bad,secret,Bad', '3004,abc,Short', '3001,secret3001,Again', '100,secret100,Exists', `3005,secret3005,${'名'.repeat(128)}`,
      '3003,secret3003,Taken by now', '3006,secret3006,=cmd', ''].join('\r\n');
    await page.fill('#import-text', csv);
    await page.click('#import-card button:has-text("Check")');
    await page.waitForSelector('#import-preview table');
    const rows = await page.$$eval('#import-preview tbody tr', (rs) => rs.map((r) => [r.dataset.line, r.querySelector('td:last-child').textContent]));
    assert.deepEqual(rows, [['2', 'ok'], ['3', 'ok'], ['4', 'bad extension (1 to 32 letters, digits or - _ . ! ~ * \' +)'],
      ['5', 'short password (at least 4 characters)'], ['6', 'duplicate of line 2'], ['7', 'the account exists already'],
      ['8', 'display name of 128 characters (at most 127)'], ['9', 'ok'], ['10', 'ok']]);
    assert.match(await page.textContent('#import-summary'), /^4 to create, 5 with a problem/);
    assert.equal(await page.textContent('#import-create'), 'Create 4 accounts');
    await shot(page, '30-accounts-import-preview');
    await docShot(page, 'import-preview');
    // someone creates 3003 between the check and the import: the server refuses that line
    assert.equal((await sx.api('POST', '/users', { extension: '3003', password: 'secret3003' })).status, 201);
    await page.click('#import-create');
    await page.waitForSelector('#import-result');
    assert.match(await page.textContent('#import-result'), /^3 accounts created, 6 lines not \(see below\)\.$/);
    assert.match(await page.textContent('#import-preview tr[data-line="9"]'), /refused by sipbx: duplicate/);
    assert.match(await page.textContent('#import-preview tr[data-line="2"]'), /created$/);
    for (const e of ['3001', '3002', '3006']) assert.equal((await sx.api('GET', `/users/${e}`)).status, 200, e);
    assert.equal((await sx.api('GET', '/users/3004')).status, 404);
    // one request, CSV with a header, only the lines that passed the check, quoted as needed
    assert.equal(sent.length, 1);
    assert.match(sent[0].type, /^text\/csv/);
    assert.equal(sent[0].body, 'extension,password,display_name\r\n3001,secret3001,Ann\r\n3002,secret3002,"Smith, Bob ""B"""\r\n' +
      '3003,secret3003,Taken by now\r\n3006,secret3006,=cmd\r\n');
    await shot(page, '31-accounts-import-done');
  } finally {
    page.off('request', watch);
  }
});

test('accounts: export as CSV, without passwords, formulas defused', async () => {
  assert.equal((await sx.api('PATCH', '/users/3006', { display_name: '=HYPERLINK("x")' })).status, 200);
  await go('/accounts?status=offline');
  await page.waitForSelector('table.accounts tbody tr');
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#export-accounts')]);
  const file = path.join(ARTIFACTS, 'accounts.csv');
  await dl.saveAs(file);
  const lines = fs.readFileSync(file, 'utf8').trimEnd().split('\r\n');
  assert.equal(lines[0], 'extension,display_name,enabled,online,call_waiting,ring_timeout,created_at,updated_at,dnd');
  const offline = (await sx.api('GET', '/users?limit=1&status=offline')).json.total;
  assert.equal(lines.length, offline + 1);
  assert.ok(!/password|secret3001/i.test(lines.join('\n')));
  assert.ok(lines.includes('3006,"\'=HYPERLINK(""x"")",true,false,true,,' + (await sx.api('GET', '/users/3006')).json.created_at + ',' + (await sx.api('GET', '/users/3006')).json.updated_at + ',false'), lines.find((l) => l.startsWith('3006')));
});

test('call records at scale: search by Call-ID or name, sort, the total for the filter', async () => {
  await go('/records?limit=100');
  await page.waitForSelector('table.cdrs tbody tr');
  const total = (await sx.api('GET', '/cdrs?limit=1&count=true')).json.total;
  assert.equal(await page.textContent('#records-count'), `${total.toLocaleString('en-US')} records.`);
  await page.fill('#f-q', 'bulk-99999');
  await page.click('form.filters button[type=submit]');
  await page.waitForURL(/q=bulk-99999/);
  await page.waitForFunction(() => document.getElementById('records-count').textContent === '1 record matches the filters.');
  assert.deepEqual(await page.$$eval('table.cdrs tbody tr', (rs) => rs.map((r) => r.dataset.callId)), ['bulk-99999']);
  // a name: the caller's, or an account's
  await page.fill('#f-q', 'alice');
  await page.click('form.filters button[type=submit]');
  await page.waitForFunction(() => /match/.test(document.getElementById('records-count').textContent) && !/bulk/.test(document.querySelector('table.cdrs tbody').textContent));
  await shot(page, '32-records-search');
  // sort by talk time, longest first, and back
  await page.click('button:has-text("Clear")');
  await page.waitForSelector('table.cdrs th[aria-sort="descending"]:has-text("Start")');
  await page.click('table.cdrs th:has-text("Talk") button');
  await page.waitForSelector('table.cdrs th[aria-sort="descending"]:has-text("Talk")');
  const want = (await sx.api('GET', '/cdrs?limit=50&sort=-talk')).json.items.map((c) => c.call_id);
  await page.waitForFunction((w) => [...document.querySelectorAll('table.cdrs tbody tr')].map((r) => r.dataset.callId).join() === w.join(), want);
  await page.click('table.cdrs th:has-text("Talk") button');
  await page.waitForSelector('table.cdrs th[aria-sort="ascending"]:has-text("Talk")');
  await page.click('button:has-text("Older")');
  await page.waitForFunction(() => document.querySelector('.pager span')?.textContent.startsWith('page 2 of'));
  assert.match(page.url(), /sort=talk/);
});

test('statistics: 24 hours, 7 days, 30 days; per extension, sortable', async () => {
  await go('/stats');
  await page.waitForSelector('#stats-table table');
  const s = (await sx.api('GET', '/cdrs/stats')).json;
  assert.match(await page.textContent('#stats-totals'), new RegExp(`^Calls${s.totals.calls}`));
  const row = await page.textContent('#stats-table tr[data-ext="100"]');
  const me = s.items.find((i) => i.extension === '100');
  assert.ok(row.startsWith(`100Alice${me.placed.calls}${me.received.calls}`), row);
  await page.click('#stats-table th:has-text("Made") button');
  await page.waitForSelector('#stats-table th[aria-sort="descending"]:has-text("Made")');
  assert.equal(await page.getAttribute('#stats-table tbody tr >> nth=0', 'data-ext'), '100');
  await shot(page, '33-stats');
  await docShot(page, 'stats');
  await page.click('a[data-period="30d"]');
  await page.waitForSelector('a[data-period="30d"][aria-current="true"]');
  await page.waitForSelector('#stats-table table');
  // the account page has the same totals, for its extension
  await go('/accounts/100');
  await page.waitForSelector('#account-totals-list');
  await page.click('button[data-period="24h"]');
  await page.waitForFunction((n) => document.getElementById('account-totals-list')?.textContent.startsWith(`Calls made${n} (`), String(me.placed.calls));
});

test('accessibility: axe finds nothing serious on any page, light or dark', async () => {
  const axeSource = fs.readFileSync(path.join(HERE_DIR, 'node_modules/axe-core/axe.min.js'), 'utf8');
  const p = await browser.newPage();
  watch(p);
  await p.addInitScript(axeSource); // through the driver: the page's CSP allows no script of ours
  const found = [];
  try {
    const pages = ['/', '/accounts', '/accounts/100', '/forwarding/100', '/voicemail/102', '/calls', '/records', '/stats',
      `/ladder/${encodeURIComponent(state.forwardedCallId)}`, '/settings', '/groups', '/groups/600',
      `/ladder/${encodeURIComponent(state.transferFrom)}`];
    for (const scheme of ['light', 'dark']) {
      await p.emulateMedia({ colorScheme: scheme });
      for (const hsh of pages) {
        await p.goto(`${sx.base}/#${hsh}`);
        await p.waitForSelector('main section.page');
        await p.waitForLoadState('networkidle').catch(() => {});
        await sleep(400);
        if (hsh.startsWith('/ladder')) { await p.click('svg.ladder .arrow >> nth=0'); await p.waitForSelector('#ladder-detail:not([hidden])'); }
        if (hsh === '/accounts') await p.click('button:has-text("Import CSV")');
        if (hsh === '/groups') await p.click('#new-group-btn'); // the form, with the search's results
        const r = await p.evaluate(() => window.axe.run(document, { resultTypes: ['violations'], rules: { 'label-content-name-mismatch': { enabled: true } } }));
        for (const v of r.violations) {
          if (v.impact === 'serious' || v.impact === 'critical') {
            found.push(`${scheme} ${hsh}: ${v.id} (${v.impact}) ${v.nodes.length}× e.g. ${v.nodes[0].target.join(' ')}: ${v.nodes[0].failureSummary}`);
          }
        }
        if (scheme === 'dark') await shot(p, `34-dark${(hsh.startsWith('/ladder/') ? `/ladder/${pages.indexOf(hsh)}` : hsh).split('/').slice(0, 3).join('-')}`);
        if (scheme === 'dark' && hsh === '/records') await docShot(p, 'records-dark');
      }
    }
  } finally { await p.close(); }
  assert.deepEqual(found, []);
});

test('an expired session returns to the log-in page, then back to where the user was', async () => {
  await go('/records?ext=101');
  await page.waitForSelector('table.cdrs');
  await browser.clearCookies(); // what an expired session looks like to the browser
  await page.click('#nav a[data-nav="forwarding"]');
  await page.waitForSelector('#login-pass');
  await page.fill('#login-pass', sx.password);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#fw-account');
  assert.match(page.url(), /#\/forwarding$/);
});

test('readable at phone width', async () => {
  const phone = await browser.newPage();
  watch(phone);
  await phone.setViewportSize({ width: 390, height: 844 });
  // every page, with the long names, contacts and user agents of the office-scale accounts
  const pages = ['/', '/accounts', '/accounts?q=very-long', '/accounts/101', '/accounts/2007', '/forwarding/101', '/voicemail/102', '/calls', '/records',
    '/records?q=bulk', '/stats', `/ladder/${encodeURIComponent(state.callId)}`, `/ladder/${encodeURIComponent(state.holdCallId)}`, '/settings', '/ladder',
    '/groups', '/groups/600', `/ladder/${encodeURIComponent(state.transferTo)}`, `/records?ext=102`];
  for (const [i, h] of pages.entries()) {
    await phone.goto(`${sx.base}/#${h}`);
    await phone.waitForSelector('main section.page');
    await phone.waitForLoadState('networkidle').catch(() => {});
    await sleep(300);
    if (h.startsWith('/ladder/')) { await phone.click('svg.ladder .arrow >> nth=0'); await phone.waitForSelector('#ladder-detail:not([hidden])'); }
    if (h === '/groups') await phone.click('#new-group-btn');
    const w = await phone.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(w <= 391, `${h}: the page is ${w} px wide`);
    await shot(phone, `21-phone-${String(i).padStart(2, '0')}-${h.split('/')[1].replace(/\W+/g, '-') || 'overview'}`);
  }
  await phone.close();
  // the desktop overview, with the calls of the tests in its chart
  await go('/');
  await page.waitForSelector('svg.chart .bar rect.d-answered');
  await shot(page, '22-overview');
  await docShot(page, 'overview');
  assert.deepEqual(pageErrors, [], 'no script errors');
});

test('over HTTPS: plain HTTP redirects to it; the settings show the certificate to pin', { skip: !HTTPS && 'the plain HTTP run' }, async () => {
  // a page asked for on the plain port lands on the same page over HTTPS (the fragment kept)
  await page.goto(`http://${HOST}:${sx.httpPort}/#/records`);
  await page.waitForSelector('table.cdrs, .empty');
  assert.equal(page.url(), `${sx.base}/#/records`);
  // the API on the plain port is refused, naming the HTTPS URL
  const r = await fetch(`http://${HOST}:${sx.httpPort}/api/v1/users`, { headers: { Authorization: `Bearer ${await sx.token()}` } });
  assert.equal(r.status, 403);
  assert.match((await r.json()).error.message, new RegExp(`https://${HOST}:${sx.httpsPort}/api/v1`));
  await go('/settings');
  await page.waitForSelector('#certificates .cert');
  const st = await page.textContent('#settings');
  assert.ok(st.includes(`${HOST}:${sx.httpsPort}`), st);
  assert.ok(st.includes('redirects to HTTPS'), st);
  const cert = page.locator('#certificates .cert');
  assert.equal(await cert.count(), 1);
  assert.equal(await cert.getAttribute('data-fingerprint'), sx.fingerprint);
  assert.equal(await cert.locator('code.fingerprint').textContent(), sx.fingerprint);
  assert.match(await cert.textContent(), /Certificate of HTTPS/);
  assert.match(await cert.textContent(), /self-signed, generated by sipbx/);
  await shot(page, '23-settings-https');
  assert.deepEqual(pageErrors, [], 'no script errors');
});
