// Overview: accounts and how many are online, live calls now, the last 24 hours of calls
// by outcome (a chart), and the most recent call records. Follows the event stream.

import { api, listAll } from '../api.js';
import { h, fill, errorBox, debounce, fmtIso } from '../dom.js';
import { on, onChange } from '../events.js';
import { callChart } from '../chart.js';
import { recentCalls } from '../cdrs.js';

function stat(label, id, href) {
  const value = h('span', { class: 'stat-value', id }, '…');
  return [h('a', { class: 'card stat', href }, h('span', { class: 'stat-label' }, label), value), value];
}

export function render(main, { signal }) {
  const [accCard, accV] = stat('Accounts', 'stat-accounts', '#/accounts');
  const [onCard, onV] = stat('Online now', 'stat-online', '#/accounts');
  const [liveCard, liveV] = stat('Live calls', 'stat-live', '#/calls');
  const [dayCard, dayV] = stat('Calls, last 24 h', 'stat-day', '#/records');
  const onSub = h('span', { class: 'stat-sub' });
  onCard.append(onSub);
  const chartBox = h('div', { class: 'chart-box' }, h('p', { class: 'muted' }, 'Loading…'));
  const recentBox = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  const statErr = h('div');

  main.append(h('section', { class: 'page' },
    h('h1', null, 'Overview'),
    statErr,
    h('div', { class: 'stats' }, accCard, onCard, liveCard, dayCard),
    h('section', { class: 'card' }, h('h2', null, 'Calls in the last 24 hours'), chartBox),
    h('section', { class: 'card' },
      h('div', { class: 'card-head' }, h('h2', null, 'Recent calls'), h('a', { href: '#/records' }, 'All call records')),
      recentBox)));

  const live = new Map(); // id -> call
  let lastBuckets = null;
  function drawChart() {
    if (lastBuckets) fill(chartBox, callChart(lastBuckets, 3600, chartBox.clientWidth || 720));
  }
  let lastWidth = 0;
  const resize = new ResizeObserver(debounce(() => {
    if (Math.abs(chartBox.clientWidth - lastWidth) > 20) { lastWidth = chartBox.clientWidth; drawChart(); }
  }, 150));
  resize.observe(chartBox);

  // Counts, not lists: the API counts the accounts (and those online) for any number of them.
  async function loadCounts() {
    try {
      const [all, online, regs] = await Promise.all([
        api('GET', '/users', { query: { limit: 1 }, signal }),
        api('GET', '/users', { query: { limit: 1, status: 'online' }, signal }),
        listAll('/registrations', {}, { signal }),
      ]);
      accV.textContent = String(all.total);
      onV.textContent = String(online.total);
      onSub.textContent = `${regs.length} device${regs.length === 1 ? '' : 's'} registered`;
      fill(statErr);
    } catch (e) {
      if (e.name === 'AbortError') return;
      accV.textContent = onV.textContent = '?';
      fill(statErr, errorBox(e, loadCounts));
    }
  }

  async function loadLive() {
    try {
      const r = await api('GET', '/calls', { signal });
      live.clear();
      for (const c of r.items) live.set(c.id, c);
      liveV.textContent = String(live.size);
    } catch (e) {
      if (e.name === 'AbortError') return;
      liveV.textContent = '?';
      liveV.title = e.message;
    }
  }

  async function loadChart() {
    const hour = 3600 * 1000;
    const until = new Date(Math.ceil(Date.now() / hour) * hour);
    const since = new Date(until.getTime() - 24 * hour);
    try {
      // one bucket per hour, empty ones included
      const r = await api('GET', '/cdrs/summary', { query: { since: fmtIso(since), until: fmtIso(until), bucket: 3600 }, signal });
      dayV.textContent = String(r.items.reduce((a, b) => a + b.total, 0));
      lastBuckets = r.items;
      drawChart();
    } catch (e) {
      if (e.name === 'AbortError') return;
      dayV.textContent = '?';
      fill(chartBox, errorBox(e, loadChart));
    }
  }

  function loadRecent() {
    recentCalls(recentBox, { limit: 8 }, 'No calls yet. Register two softphones and call one from the other.', signal);
  }

  loadCounts(); loadLive(); loadChart(); loadRecent();

  const refreshEnded = debounce(() => { loadChart(); loadRecent(); }, 700);
  const offs = [
    on('call.*', (type, c) => {
      if (type === 'call.ended') { live.delete(c.id); refreshEnded(); } else live.set(c.id, c);
      liveV.textContent = String(live.size);
    }),
    onChange('registration.changed', loadCounts, 200),
    on('reconnect', () => { loadCounts(); loadLive(); loadChart(); loadRecent(); }),
  ];
  return () => { resize.disconnect(); offs.forEach((f) => f()); };
}
