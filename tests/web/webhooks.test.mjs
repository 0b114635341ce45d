// Browser test of the Webhooks block of the settings page (web/assets/js/pages/webhooks.js),
// in headless Debian Chromium against a private sipbx and a webhook receiver of its own:
// add a webhook (checked in the form, refused by the server with the reason next to the
// field), its secret shown once and good for the signatures the receiver gets, a test
// event and the delivery log, a dead receiver's failed try and next try, deletion.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { Sipbx, freePort, launchBrowser, finish, ARTIFACTS, HOST, XSS, sleep } from './harness.mjs';

let sx, closeBrowser, page, receiver;
const got = []; // deliveries the receiver got: { headers, body }
const pageErrors = [];
const dialogs = [];

async function shot(name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

before(async () => {
  sx = await new Sipbx().start();
  receiver = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => { got.push({ headers: req.headers, body: Buffer.concat(chunks) }); res.writeHead(204).end(); });
  });
  await new Promise((r) => receiver.listen(0, HOST, r));
  let ctx;
  ({ ctx, close: closeBrowser } = await launchBrowser(chromium));
  page = ctx.pages()[0] || await ctx.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  await page.goto(`${sx.base}/#/settings`);
  await page.waitForSelector('#login-pass');
  await page.fill('#login-pass', sx.password);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#webhooks');
});

after(async () => {
  try { if (closeBrowser) await closeBrowser(); } catch { /* already gone */ }
  if (receiver) receiver.close();
  if (sx) await finish(sx, 'webhooks-');
});

const hookUrl = () => `http://${HOST}:${receiver.address().port}/hooks/sipbx`;

test('the form checks what it can and shows the server\'s reasons at their field', async () => {
  await page.fill('#hook-url', 'ftp://example.com/');
  await page.click('#webhooks button[type=submit]');
  await page.waitForSelector('#webhooks .field-error');
  assert.match(await page.textContent('#webhooks .field-error'), /http:\/\/ or https:\/\//);
  // a URL only the server can judge: its message, next to the URL field
  await page.fill('#hook-url', 'http://exa mple.com/');
  await page.click('#webhooks button[type=submit]');
  await page.waitForFunction(() => /URL/.test(document.querySelector('#webhooks .field-error')?.textContent || '') && document.querySelector('#hook-url').getAttribute('aria-invalid') === 'true');
  // no event chosen
  await page.fill('#hook-url', hookUrl());
  await page.uncheck('#hook-ev-call-ended');
  await page.click('#webhooks button[type=submit]');
  await page.waitForFunction(() => /at least one event/.test(document.querySelector('#webhooks .field-error')?.textContent || ''));
  assert.deepEqual((await sx.api('GET', '/webhooks')).json.items, [], 'nothing was created');
});

test('add a webhook: its secret once, and deliveries signed with it', async () => {
  await page.fill('#hook-url', hookUrl());
  await page.fill('#hook-desc', XSS);
  for (const id of ['#hook-ev-call-ended', '#hook-ev-user-changed']) await page.check(id);
  await page.click('#webhooks button[type=submit]');
  await page.waitForSelector('#new-webhook-secret input');
  const secret = await page.inputValue('#new-webhook-secret input');
  assert.match(secret, /^whsec_[0-9a-f]{64}$/);
  await page.waitForSelector('table.webhooks tbody tr[data-id]');
  const row = page.locator('table.webhooks tbody tr[data-id]').first();
  const text = await row.textContent();
  assert.ok(text.includes(hookUrl()), text);
  assert.ok(text.includes(XSS), 'the description shows as text');
  const hooks = (await sx.api('GET', '/webhooks')).json.items;
  assert.equal(hooks.length, 1);
  assert.deepEqual(hooks[0].events, ['call.ended', 'user.changed']);
  assert.ok(!JSON.stringify(hooks).includes(secret), 'the list never shows the secret');

  // an account made elsewhere reaches the receiver, signed with the secret shown above
  assert.equal((await sx.api('POST', '/users', { extension: '300', password: 'secret300' })).status, 201);
  const deadline = Date.now() + 10000;
  while (!got.some((d) => JSON.parse(d.body).type === 'user.changed')) {
    assert.ok(Date.now() < deadline, 'no user.changed delivery');
    await sleep(50);
  }
  const d = got.find((x) => JSON.parse(x.body).type === 'user.changed');
  const sig = 'sha256=' + crypto.createHmac('sha256', secret).update(d.body).digest('hex');
  assert.equal(d.headers['x-sipbx-signature'], sig);
  assert.equal(JSON.parse(d.body).data.extension, '300');
  await shot('30-webhooks');
});

test('a test event, and the delivery log', async () => {
  const row = page.locator('table.webhooks tbody tr[data-id]').first();
  await row.locator('button:has-text("Send test")').click();
  // the log opens and shows the ping delivered (the block refreshes itself)
  await page.waitForSelector('table.deliveries tr[data-event="ping"][data-state="delivered"]', { timeout: 15000 });
  const ping = got.find((x) => JSON.parse(x.body).type === 'ping');
  assert.ok(ping, 'the receiver got no ping');
  const logRow = await page.textContent('table.deliveries tr[data-event="ping"]');
  assert.match(logRow, /HTTP 204/);
  assert.match(await page.textContent('table.deliveries'), /user\.changed/);
  await shot('31-webhook-log');
  await row.locator('button:has-text("Hide log")').click();
  await page.waitForSelector('table.deliveries', { state: 'detached' });
});

test('a receiver that is down: the failed try, the next one, and deletion', async () => {
  const dead = `http://${HOST}:${await freePort()}/gone`; // nothing listens there
  await page.fill('#hook-url', dead);
  await page.click('#webhooks button[type=submit]');
  const row = page.locator('table.webhooks tbody tr', { hasText: dead });
  await row.waitFor();
  await row.locator('button:has-text("Send test")').click();
  const failed = page.locator('table.deliveries tr[data-event="ping"][data-state="pending"]');
  await page.waitForFunction(() => [...document.querySelectorAll('table.deliveries tr[data-event="ping"][data-state="pending"]')].some((r) => /connect/i.test(r.textContent)), null, { timeout: 15000 });
  const text = await failed.first().textContent();
  assert.match(text, /connect/i, 'the reason of the failed try is shown');
  assert.doesNotMatch(text.split('\n').join(' '), /not tried yet/);
  await shot('32-webhook-failing');
  await row.locator('button:has-text("Delete")').click();
  await page.click('dialog button[value="ok"]');
  await page.waitForSelector(`table.webhooks tbody tr:has-text("${dead}")`, { state: 'detached' });
  const left = (await sx.api('GET', '/webhooks')).json.items.map((w) => w.url);
  assert.deepEqual(left, [hookUrl()]);
});

test('no script errors, no alerts', () => {
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(dialogs, []);
});
