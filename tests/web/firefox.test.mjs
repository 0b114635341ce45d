// Browser tests of the dashboard (web/) in headless Debian Firefox ESR, driven by
// puppeteer-core over WebDriver BiDi, against a private sipbx with SIPp phones: the main
// paths of dashboard.test.mjs (log-in, overview, accounts, live calls, ladders, text never
// run as markup) in the second browser the dashboard supports. The tests run in order and
// build on each other. Screenshots go to $SIPBX_WEB_ARTIFACTS/firefox-*.png.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import { Sipbx, launchFirefox, sleep, registerPhone, startCall, settledTrace, shownArrows, finish, ARTIFACTS, PW, XSS } from './harness.mjs';

let sx, browser, closeBrowser, page;
const dialogs = [];
const pageErrors = [];
const consoleErrors = [];
const consoleLog = []; // every console message, written to firefox-console.log
const xssRequests = []; // requests for the hostile <img>'s "x", had it become an element
const state = {}; // what earlier tests leave for later ones

async function shot(p, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await p.screenshot({ path: path.join(ARTIFACTS, `firefox-${name}.png`), fullPage: true });
}

function watch(p) {
  p.setDefaultTimeout(10000);
  p.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  p.on('pageerror', (e) => pageErrors.push(String(e?.message || e)));
  p.on('console', (m) => {
    consoleLog.push(`${m.type()}: ${m.text()}`);
    if (m.type() === 'error') consoleErrors.push(`${m.text()} (${m.location()?.url || '?'})`);
  });
  p.on('request', (r) => { if (/\/x$/.test(new URL(r.url()).pathname)) xssRequests.push(r.url()); });
}

/** Goes to a dashboard route (#/...) and waits for its page to be drawn. */
async function go(hash, p = page) {
  await p.goto(`${sx.base}/#${hash}`);
  // the page of this hash, not the last one still in the document
  await p.waitForFunction(() => document.getElementById('main')?.dataset.rendered === location.hash);
  await p.waitForSelector('main section');
}

const count = (p, sel) => p.$$eval(sel, (els) => els.length);
const text = (p, sel) => p.$eval(sel, (e) => e.textContent);
const attr = (p, sel, name) => p.$eval(sel, (e, n) => e.getAttribute(n), name);

/** Replaces the value of an input, as typing would. */
async function fill(sel, value) {
  await page.locator(sel).fill(value);
}

before(async () => {
  sx = await new Sipbx().start();
  ({ browser, close: closeBrowser } = await launchFirefox(puppeteer));
  console.log(`# ${await browser.version()}, puppeteer-core over WebDriver BiDi`);
  // a new tab: the one Firefox opens with does not get puppeteer's default viewport
  page = await browser.newPage();
  watch(page);
});

after(async () => {
  try { if (closeBrowser) await closeBrowser(); } catch { /* already gone */ }
  if (sx) {
    await finish(sx, 'firefox-',
      { 'console.log': consoleLog.concat(pageErrors.map((e) => `page error: ${e}`)).join('\n') + '\n' });
  }
});

test('log in with the admin password', async () => {
  await page.goto(`${sx.base}/#/`);
  await page.waitForSelector('#login-pass');
  assert.equal(await page.$eval('#login-user', (e) => e.value), 'admin');
  // the password field has the focus: typing and Enter is enough
  await page.keyboard.type('not-the-password');
  await page.keyboard.press('Enter');
  await page.waitForSelector('.field-error');
  assert.match(await text(page, '.field-error'), /Wrong user name or password/);
  await shot(page, '01-login-error');
  await fill('#login-pass', sx.password);
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => /^\d+$/.test(document.getElementById('stat-accounts')?.textContent || ''));
  assert.equal(await page.evaluate(() => location.hash), '#/');
  assert.equal(await page.$eval('#top', (e) => e.hidden), false);
  assert.equal(await text(page, '#whoami'), 'admin');
});

test('the overview shows the number of accounts and the chart of the last 24 hours', async () => {
  // the caller of later tests, made over the API
  assert.equal((await sx.api('POST', '/users', { extension: '100', password: PW[100], display_name: 'Alice' })).status, 201);
  await page.reload();
  await page.waitForFunction(() => document.getElementById('stat-accounts')?.textContent === '1');
  assert.equal(await text(page, '#stat-online'), '0');
  assert.equal(await text(page, '#stat-live'), '0');
  // 24 hourly columns, grid lines and a legend of the five outcomes
  await page.waitForSelector('svg.chart');
  assert.equal(await count(page, 'svg.chart g.bar'), 24);
  assert.equal(await count(page, 'svg.chart line.grid'), 5);
  assert.equal(await count(page, '.chart-figure .legend li'), 5);
  // drawn at the width of its card, not at zero or overflowing it
  const { svgW, boxW } = await page.evaluate(() => ({
    svgW: document.querySelector('svg.chart').getBoundingClientRect().width,
    boxW: document.querySelector('.chart-box').clientWidth,
  }));
  assert.ok(svgW > 600 && svgW <= boxW + 1, `chart ${svgW} px wide in a box of ${boxW} px`);
  // the event stream is connected
  await page.waitForSelector('#live[data-state="on"]');
  await shot(page, '02-overview');
});

test('create an account in the Accounts page and see it go online when sipp registers it', async () => {
  await go('/accounts');
  await page.waitForSelector('tr[data-ext="100"]');
  await page.click('::-p-text(New account)');
  await page.waitForSelector('#new-ext');
  await fill('#new-ext', '101');
  await fill('#new-name', 'Bob');
  await fill('#new-pw', PW[101]);
  await page.click('#new-account button[type=submit]');
  await page.waitForFunction(() => location.hash === '#/accounts/101');
  // the password is shown once, and the softphone card has what a phone asks for
  await page.waitForSelector('.secret input');
  assert.equal(await page.$eval('.secret input', (e) => e.value), PW[101]);
  const card = await text(page, '.phone-card');
  assert.ok(card.includes(`127.0.0.1:${sx.sipPort}`), card);
  assert.ok(card.includes(PW[101]), card);
  assert.equal(await attr(page, '.presence', 'data-state'), 'offline');
  await shot(page, '03-account-created');
  const u = await sx.api('GET', '/users/101');
  assert.equal(u.status, 200);
  assert.equal(u.json.display_name, 'Bob');

  // SIPp registers it: the page turns online by itself (event stream, no reload)
  state.port101 = await registerPhone(sx, '101', 'Bob phone/1.0');
  await page.waitForSelector('.presence[data-state="online"]', { timeout: 5000 });
  const devices = await text(page, '.devices-table');
  assert.ok(devices.includes(`sip:101@127.0.0.1:${state.port101}`), devices);
  assert.ok(devices.includes('Bob phone/1.0'), devices);
  await shot(page, '04-account-online');

  await go('/accounts');
  await page.waitForSelector('tr[data-ext="101"] .presence[data-state="online"]');
  assert.equal(await attr(page, 'tr[data-ext="100"] .presence', 'data-state'), 'offline');
  assert.ok((await text(page, 'tr[data-ext="101"] .devices')).includes('Bob phone/1.0'));
  await shot(page, '05-accounts');
});

test('a call appears, is answered and ends in the live calls view (event stream)', async () => {
  await go('/calls');
  await page.waitForSelector('#no-calls');
  await page.waitForFunction(() => document.getElementById('calls-note')?.textContent === 'Updated as it happens.');
  const { callee, caller } = await startCall(sx, { calleePort: state.port101, ringMs: 2000, talkMs: 3000 });

  const ringing = await page.waitForSelector('#live-calls tr.call[data-state="ringing"]');
  state.callId = await ringing.evaluate((e) => e.dataset.callId);
  const card = await ringing.evaluate((e) => e.textContent);
  assert.ok(card.includes('Alice') && card.includes('100') && card.includes('101'), card);
  assert.equal(await text(page, 'h1 .count'), '(1)');
  await shot(page, '06-calls-ringing');

  await page.waitForSelector('#live-calls tr.call[data-state="answered"]');
  const d1 = await text(page, '#live-calls tr.call[data-state="answered"] .duration');
  assert.match(d1, /^talking 0:0\d$/);
  await page.waitForFunction((d) => {
    const e = document.querySelector('#live-calls tr.call[data-state="answered"] .duration');
    return e && e.textContent !== d;
  }, { timeout: 3000 }, d1); // the talk time runs
  await shot(page, '07-calls-answered');

  await page.waitForSelector(`#ended-calls tr.call[data-state="ended"][data-call-id="${CSS_escape(state.callId)}"]`);
  await page.waitForSelector('#no-calls');
  await Promise.all([caller.ok(), callee.ok()]);
  assert.match(await text(page, '#ended-calls'), /hung up by caller/);
  assert.equal(await text(page, 'h1 .count'), '(0)');
  await shot(page, '08-calls-ended');
});

test('the ladder of the call has one arrow per message of GET /api/v1/traces/{call_id}', async () => {
  const n = await settledTrace(sx, state.callId, 10);
  assert.ok(n >= 10, `${n} messages`);
  // from the ended call's card, as a user would
  await page.click('#ended-calls tr.call a.ladder-link');
  await page.waitForFunction((cid) => decodeURIComponent(location.hash) === `#/ladder/${cid}`, {}, state.callId);
  await page.waitForFunction((k) => document.querySelectorAll('svg.ladder .arrow').length === k, {}, await shownArrows(sx, state.callId));
  const heads = await page.$$eval('.party-head .role', (els) => els.map((e) => e.textContent.split(' ')[0]));
  assert.deepEqual(heads, ['caller', 'sipbx', 'callee']);
  const labels = await page.$$eval('svg.ladder .arrow .label', (els) => els.map((e) => e.textContent));
  assert.equal(labels[0], 'INVITE');
  assert.ok(labels.includes('407 Proxy Authentication Required'), labels.join(', '));
  assert.ok(labels.includes('BYE'), labels.join(', '));
  for (const k of ['req', 'r1xx', 'r2xx', 'rerr']) assert.ok(await count(page, `svg.ladder .arrow.k-${k}`), `an arrow of kind ${k}`);
  assert.match(await text(page, '#ladder-summary'), new RegExp(`^${n} messages `));
  // arrows are laid out one per row, inside the drawing (SVG geometry in Firefox)
  const rows = await page.$$eval('svg.ladder .arrow .shaft', (ls) => ls.map((l) => {
    const b = l.getBoundingClientRect();
    return { y: Math.round(b.top), w: b.width };
  }));
  assert.ok(rows.every((r, i) => i === 0 || r.y > rows[i - 1].y), 'one arrow per row, top to bottom');
  assert.ok(rows.every((r) => r.w > 50), 'every arrow spans between two lifelines');
  // click an arrow: the whole message
  await page.click('svg.ladder .arrow .shaft');
  await page.waitForSelector('#ladder-detail:not([hidden]) pre.sipmsg');
  const msg = await text(page, '#ladder-detail pre.sipmsg');
  assert.match(msg, /^INVITE sip:101@127\.0\.0\.1 SIP\/2\.0/);
  assert.ok(msg.includes(`Call-ID: ${state.callId}`));
  await shot(page, '09-ladder');
});

test('call records: the call is listed and filtered; the filter row lines up, nothing clipped', async () => {
  const row = `tr[data-call-id="${CSS_escape(state.callId)}"]`;
  await go('/records');
  await page.waitForSelector(row);
  assert.match(await text(page, row), /ANSWERED/);
  // Firefox clips the fields of a date-time input that is narrower than it wants (the AM/PM
  // field went missing), and sizes selects and inputs differently: measure both
  const f = await page.evaluate(() => {
    const ids = ['f-since', 'f-until', 'f-ext', 'f-disp', 'f-limit'];
    const box = (e) => e.getBoundingClientRect();
    const probe = document.createElement('input');
    probe.type = 'datetime-local';
    probe.style.cssText = 'position: absolute; visibility: hidden; width: max-content';
    document.querySelector('form.filters').append(probe);
    const need = box(probe).width;
    probe.remove();
    return {
      need, widths: ids.slice(0, 2).map((id) => box(document.getElementById(id)).width),
      labels: ids.map((id) => Math.round(box(document.querySelector(`label[for="${id}"]`)).top)),
      heights: ids.map((id) => Math.round(box(document.getElementById(id)).height)),
    };
  });
  for (const w of f.widths) assert.ok(w >= f.need - 0.5, `a date-time input ${w} px wide; its fields need ${f.need} px`);
  assert.equal(new Set(f.labels).size, 1, `the labels of the filters at ${f.labels.join(', ')} px`);
  assert.equal(new Set(f.heights).size, 1, `the filter fields ${f.heights.join(', ')} px high`);
  await shot(page, '10-records');
  // a filter that matches the call, then one that does not
  await fill('#f-ext', '101');
  await page.select('#f-disp', 'ANSWERED');
  await page.click('form.filters button[type=submit]');
  await page.waitForFunction(() => /ext=101/.test(location.hash) && /disposition=ANSWERED/.test(location.hash));
  await page.waitForSelector(row);
  await page.select('#f-disp', 'BUSY');
  await page.click('form.filters button[type=submit]');
  await page.waitForSelector('::-p-text(No call matches)');
});

test('SIP-derived and admin-entered text shows as text, never as markup', async () => {
  // an account with a hostile display name, made in the UI
  await go('/accounts');
  await page.click('::-p-text(New account)');
  await page.waitForSelector('#new-ext');
  await fill('#new-ext', '102');
  await fill('#new-name', XSS);
  await fill('#new-pw', PW[102]);
  await page.click('#new-account button[type=submit]');
  await page.waitForFunction(() => location.hash === '#/accounts/102');
  assert.equal((await sx.api('GET', '/users/102')).json.display_name, XSS);
  await registerPhone(sx, '102', `${XSS} softphone`);
  // a call whose caller display name (From header) is hostile, watched live
  await go('/calls');
  await page.waitForFunction(() => document.getElementById('calls-note')?.textContent === 'Updated as it happens.');
  const { callee, caller } = await startCall(sx, { calleePort: state.port101, ringMs: 300, talkMs: 500, name: XSS });
  await page.waitForFunction((x) => [...document.querySelectorAll('#ended-calls tr.call')]
    .some((e) => e.textContent.includes(x)), {}, XSS);
  await Promise.all([caller.ok(), callee.ok()]);
  await shot(page, '11-xss-calls');

  for (const h of ['/accounts', '/accounts/102', '/records', '/']) {
    await go(h);
    await page.waitForFunction((x) => document.querySelector('main').textContent.includes(x), { timeout: 5000 }, XSS);
    assert.equal(await count(page, 'img[src="x"], main img:not([src="favicon.svg"])'), 0, h);
    if (h === '/accounts') await shot(page, '12-xss-accounts');
  }
  // and in the ladder's message view
  const cdrs = await sx.api('GET', '/cdrs?limit=1');
  const cid = cdrs.json.items[0].call_id;
  await go(`/ladder/${encodeURIComponent(cid)}`);
  await page.waitForSelector('svg.ladder .arrow');
  await page.click('svg.ladder .arrow .shaft');
  await page.waitForFunction((x) => document.querySelector('#ladder-detail pre')?.textContent.includes(x), {}, XSS);
  assert.equal(await count(page, 'img[src="x"]'), 0);
  await shot(page, '13-xss-ladder');
  await sleep(300); // an onerror would have fired by now
  assert.deepEqual(dialogs, [], 'no script ran');
  assert.deepEqual(xssRequests, [], 'no <img src=x> was made');
});

test('a ring group made in the Groups page: members found by search, put in order, saved', async () => {
  await go('/groups');
  await page.waitForSelector('#no-groups');
  await page.click('#new-group-btn');
  await page.waitForSelector('#g-ext');
  await fill('#g-ext', '600');
  await fill('#g-name', 'Sales');
  await page.click('#g-strat-sequential');
  await fill('#g-member-search', 'bob');
  await page.waitForFunction(() => [...document.querySelectorAll('#g-results li')].map((l) => l.dataset.ext).join() === '101');
  await page.click('#g-results li[data-ext="101"] button');
  await fill('#g-member-search', '100');
  await page.waitForFunction(() => [...document.querySelectorAll('#g-results li')].map((l) => l.dataset.ext).join() === '100');
  await page.keyboard.press('Enter'); // the first found is added, the form not sent
  await page.waitForSelector('#g-members li[data-ext="100"]');
  await page.click('#g-members button[aria-label="Move 100 up"]');
  assert.deepEqual(await page.$$eval('#g-members li', (ls) => ls.map((l) => l.dataset.ext)), ['100', '101']);
  await shot(page, '16-groups-form');
  await page.click('#group-form button[type=submit]');
  await page.waitForSelector('table.groups tr[data-ext="600"]');
  const g = (await sx.api('GET', '/groups/600')).json;
  assert.deepEqual([g.name, g.strategy, g.members], ['Sales', 'sequential', ['100', '101']]);
  assert.deepEqual(await page.$$eval('tr[data-ext="600"] .c-members li', (ls) => ls.map((l) => l.textContent)), ['Alice 100', 'Bob 101']);
  await shot(page, '17-groups');
});

test('readable at phone width', async () => {
  const phone = await browser.newPage();
  watch(phone);
  await phone.setViewport({ width: 390, height: 844 });
  for (const h of ['/', '/accounts', '/calls', `/ladder/${encodeURIComponent(state.callId)}`, '/groups']) {
    await go(h, phone);
    await sleep(300);
    const w = await phone.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(w <= 391, `${h}: the page is ${w} px wide`);
    await shot(phone, `14-phone-${h.split('/')[1] || 'overview'}`);
  }
  await phone.close();
});

test('the overview counts the calls; no script error and nothing on the console', async () => {
  await go('/');
  await page.waitForFunction(() => document.getElementById('stat-accounts')?.textContent === '3');
  assert.equal(await text(page, '#stat-online'), '2'); // 101 and 102
  await page.waitForFunction(() => document.getElementById('stat-day')?.textContent === '2');
  await page.waitForSelector('svg.chart .bar rect.d-answered');
  await page.mouse.move(0, 0); // no column highlighted where the last click left the pointer
  await shot(page, '15-overview-calls');
  assert.deepEqual({ pageErrors, consoleErrors }, { pageErrors: [], consoleErrors: [] }, 'no script errors, nothing on the console');
});

/** CSS.escape for the test's side (node has no CSS global). */
function CSS_escape(s) {
  return s.replace(/["\\]/g, '\\$&');
}
