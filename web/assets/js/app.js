// The dashboard shell: checks the session, runs the hash router (#/path?query), keeps the
// header (navigation, event-stream state, log-out) and hands each page its <main>.

import { api, setCsrf, onUnauthorized, rememberAndLogin, queryString } from './api.js';
import { h, fill, errorBox } from './dom.js';
import * as events from './events.js';

// Each page module exports render(main, ctx) and may return a cleanup function.
const routes = [
  { re: /^\/login$/, page: 'login', nav: null, title: 'Log in', public: true },
  { re: /^\/$/, page: 'overview', nav: 'overview', title: 'Overview' },
  { re: /^\/accounts$/, page: 'accounts', nav: 'accounts', title: 'Accounts' },
  { re: /^\/accounts\/([^/]+)$/, page: 'account', nav: 'accounts', title: 'Account' },
  { re: /^\/groups(?:\/([^/]+))?$/, page: 'groups', nav: 'groups', title: 'Ring groups' },
  { re: /^\/forwarding(?:\/([^/]+))?$/, page: 'forwarding', nav: 'forwarding', title: 'Forwarding' },
  { re: /^\/voicemail(?:\/([^/]+))?$/, page: 'voicemail', nav: 'voicemail', title: 'Voicemail' },
  { re: /^\/calls$/, page: 'calls', nav: 'calls', title: 'Live calls' },
  { re: /^\/records$/, page: 'records', nav: 'records', title: 'Call records' },
  { re: /^\/stats$/, page: 'stats', nav: 'stats', title: 'Statistics' },
  { re: /^\/ladder(?:\/(.+))?$/, page: 'ladder', nav: null, title: 'Ladder' },
  { re: /^\/settings$/, page: 'settings', nav: 'settings', title: 'Tokens & settings' },
];

export const session = { username: null, settings: null };

let cleanup = null;
let renderSeq = 0;
let sessionChecked = false;

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, qs] = raw.split('?', 2);
  return { path: path || '/', query: Object.fromEntries(new URLSearchParams(qs || '')) };
}

/** Navigates to a hash path with query parameters (empty ones left out). */
export function go(path, query, { replace = false, noRender = false } = {}) {
  const hash = '#' + path + queryString(query);
  if (replace) { history.replaceState(null, '', hash); if (!noRender) render(); } else location.hash = hash;
}

/** Settings (domain, ports): loaded once, shared by pages; fresh: loaded again (the
 *  settings page shows what the daemon runs with now). */
export async function getSettings({ fresh = false, signal } = {}) {
  if (!session.settings || fresh) session.settings = await api('GET', '/settings', { signal });
  return session.settings;
}

function showShell(show) {
  document.getElementById('top').hidden = !show;
  document.getElementById('whoami').textContent = session.username || '';
}

function markNav(nav) {
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

/** Takes the session s (what POST or GET /session answers: the log-in page, or a reload). */
export function loggedIn(s) {
  session.username = s.username;
  setCsrf(s.csrf_token);
  sessionChecked = true;
  showShell(true);
  events.start();
}

/** Forgets the session (logged out, or it ended) and shows the log-in page. */
function endSession() {
  sessionChecked = false;
  session.username = null;
  session.settings = null;
  setCsrf(null);
  events.stop();
  if (!location.hash.startsWith('#/login')) location.hash = '#/login';
  else render();
}

async function render() {
  const seq = ++renderSeq;
  const hash = location.hash;
  await show(seq);
  // The page of this hash is in place (the one before is gone): scripts and tests wait for
  // it rather than finding the last page's content still there after a hash change.
  if (seq === renderSeq) document.getElementById('main').dataset.rendered = hash;
}

async function show(seq) {
  const { path, query } = parseHash();
  const main = document.getElementById('main');
  let route = null, params = [];
  for (const r of routes) {
    const m = r.re.exec(path);
    if (m) { route = r; params = m.slice(1).map((p) => (p === undefined ? p : decodeURIComponent(p))); break; }
  }
  if (cleanup) { try { cleanup(); } catch (e) { console.error(e); } cleanup = null; }
  if (!route) {
    showShell(sessionChecked);
    fill(main, h('section', { class: 'page' }, h('h1', null, 'Not found'),
      h('p', null, 'There is no page ', h('code', null, path), '. ', h('a', { href: '#/' }, 'Go to the overview'), '.')));
    return;
  }
  if (!route.public && !sessionChecked) {
    try {
      loggedIn(await api('GET', '/session'));
    } catch (e) {
      if (e.status === 401) rememberAndLogin();
      else fill(main, h('section', { class: 'page' }, errorBox(e, () => render())));
      return;
    }
    if (seq !== renderSeq) return;
  }
  showShell(!route.public);
  markNav(route.nav);
  document.title = `${route.title} · sipbx`;
  let mod;
  try {
    mod = await import(`./pages/${route.page}.js`);
  } catch (e) {
    fill(main, h('section', { class: 'page' }, errorBox(new Error('cannot load the page: ' + e.message))));
    return;
  }
  if (seq !== renderSeq) return;
  main.replaceChildren();
  const ac = new AbortController();
  const ret = mod.render(main, { params, query, signal: ac.signal, go, session });
  cleanup = () => { ac.abort(); if (typeof ret === 'function') ret(); };
  // Move focus to the page for keyboard and screen-reader users (not on first load).
  if (document.activeElement && document.activeElement !== document.body && !main.contains(document.activeElement)) {
    main.focus({ preventScroll: true });
  }
}

onUnauthorized(endSession);

document.getElementById('logout').addEventListener('click', async () => {
  try { await api('DELETE', '/session'); } catch { /* gone already */ }
  endSession();
});

window.addEventListener('hashchange', render);
render();
