// Statistics: the calls of the last 24 hours, 7 days or 30 days in all (answer rate,
// talk time, a chart by outcome) and per extension, sortable, from GET /cdrs/stats and
// /cdrs/summary.

import { api } from '../api.js';
import { h, fill, errorBox, showError, cut, fmtDuration, fmtNumber, sortHeader, debounce, fmtIso } from '../dom.js';
import { callChart } from '../chart.js';

const PERIODS = { '24h': { label: 'Last 24 hours', hours: 24, bucket: 3600 },
  '7d': { label: '7 days', hours: 7 * 24, bucket: 86400 }, '30d': { label: '30 days', hours: 30 * 24, bucket: 86400 } };

const pct = (x) => (x === null || x === undefined ? '—' : `${Math.round(x * 100)} %`);

export function render(main, { query, signal, go }) {
  const period = PERIODS[query.period] ? query.period : '24h';
  const sortKey = (query.sort || 'extension').replace(/^-/, '');
  let sort = { key: sortKey, desc: (query.sort || '').startsWith('-') };
  const cards = h('div', { class: 'stats', id: 'stats-totals' });
  const chartBox = h('div', { class: 'chart-box' }, h('p', { class: 'muted' }, 'Loading…'));
  const tableBox = h('div', { id: 'stats-table' }, h('p', { class: 'muted' }, 'Loading…'));
  const filter = h('input', { type: 'search', id: 'stats-filter', value: query.filter || '', placeholder: 'Extension or name', autocomplete: 'off' });
  const group = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Period' },
    Object.entries(PERIODS).map(([p, { label }]) => h('a', { class: 'btn', href: `#/stats?period=${p}`,
      'aria-current': p === period ? 'true' : null, dataset: { period: p } }, label)));
  main.append(h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Statistics'), group),
    cards,
    h('section', { class: 'card' }, h('h2', null, `Calls by outcome, ${PERIODS[period].label.toLowerCase()}`), chartBox),
    h('section', { class: 'card' },
      h('div', { class: 'card-head' }, h('h2', null, 'Per extension'),
        h('div', { class: 'field' }, h('label', { class: 'sr', for: 'stats-filter' }, 'Filter extensions'), filter)),
      h('p', { class: 'hint' }, 'Made: calls the extension placed. Received: calls dialled to it, and calls it answered after another forwarded them. Answer rate: received calls it answered.'),
      tableBox)));

  let items = [];
  const stat = (label, value, sub) => h('div', { class: 'card stat' }, h('span', { class: 'stat-label' }, label), h('span', { class: 'stat-value' }, value),
    sub ? h('span', { class: 'stat-sub' }, sub) : null);

  function here(extra) {
    return { period: period === '24h' ? '' : period, sort: sort.key === 'extension' && !sort.desc ? '' : (sort.desc ? '-' : '') + sort.key, filter: filter.value.trim(), ...extra };
  }

  const keyOf = {
    extension: (i) => i.extension, name: (i) => (i.display_name || '').toLowerCase(), placed: (i) => i.placed.calls,
    received: (i) => i.received.calls, answered: (i) => i.received.answered, rate: (i) => i.answer_rate ?? -1,
    talk: (i) => i.placed.talk_seconds + i.received.talk_seconds, average: (i) => i.average_talk_seconds ?? -1,
  };
  const natural = (a, b) => a.localeCompare(b, undefined, { numeric: true });

  function drawTable() {
    const f = filter.value.trim().toLowerCase();
    const list = items.filter((i) => !f || i.extension.toLowerCase().includes(f) || (i.display_name || '').toLowerCase().includes(f));
    const k = keyOf[sort.key] || keyOf.extension;
    list.sort((a, b) => {
      const x = k(a), y = k(b);
      const c = typeof x === 'string' ? natural(x, y) : x - y;
      return (sort.desc ? -c : c) || natural(a.extension, b.extension);
    });
    if (!items.length) { fill(tableBox, h('p', { class: 'empty' }, 'No calls in this period.')); return; }
    if (!list.length) { fill(tableBox, h('p', { class: 'empty' }, `No extension matches “${filter.value.trim()}”.`)); return; }
    const onSort = (key, desc) => { sort = { key, desc }; go('/stats', here(), { replace: true, noRender: true }); drawTable(); };
    const num = (label, key) => sortHeader(label, key, sort, onSort, { defaultDesc: true, cls: 'num' });
    fill(tableBox, h('div', { class: 'table-wrap' }, h('table', { class: 'table stats-table' },
      h('thead', null, h('tr', null, sortHeader('Extension', 'extension', sort, onSort), sortHeader('Name', 'name', sort, onSort),
        num('Made', 'placed'), num('Received', 'received'), num('Answered', 'answered'), num('Answer rate', 'rate'),
        num('Talk', 'talk'), num('Average talk', 'average'))),
      h('tbody', null, list.map((i) => h('tr', { dataset: { ext: i.extension } },
        h('td', null, /^sips?:/.test(i.extension) ? cut(i.extension) : h('a', { href: `#/accounts/${encodeURIComponent(i.extension)}` }, i.extension)),
        h('td', { class: 'c-name' }, i.display_name ? cut(i.display_name) : h('span', { class: 'muted' }, '—')),
        h('td', { class: 'num' }, fmtNumber(i.placed.calls)),
        h('td', { class: 'num' }, fmtNumber(i.received.calls)),
        h('td', { class: 'num' }, fmtNumber(i.received.answered)),
        h('td', { class: 'num nowrap' }, i.answer_rate === null ? '—'
          : [h('span', { class: 'rate-bar', 'aria-hidden': 'true' }, h('span', { class: `w${Math.round(i.answer_rate * 10) * 10}` })), pct(i.answer_rate)]),
        h('td', { class: 'num' }, fmtDuration(i.placed.talk_seconds + i.received.talk_seconds)),
        h('td', { class: 'num' }, i.average_talk_seconds === null ? '—' : fmtDuration(i.average_talk_seconds))))))));
  }

  async function load() {
    try {
      const s = await api('GET', '/cdrs/stats', { query: { period }, signal });
      const t = s.totals;
      items = s.items;
      fill(cards,
        stat('Calls', fmtNumber(t.calls), `${fmtNumber(items.length)} extension${items.length === 1 ? '' : 's'}`),
        stat('Answered', fmtNumber(t.answered), `answer rate ${pct(t.answer_rate)}`),
        stat('Talk time', fmtDuration(t.talk_seconds)),
        stat('Average talk', t.average_talk_seconds === null ? '—' : fmtDuration(t.average_talk_seconds), 'per answered call'));
      drawTable();
    } catch (e) { showError(tableBox, e, load); fill(cards); }
  }

  async function loadChart() {
    const p = PERIODS[period];
    const step = p.bucket * 1000;
    const until = new Date(Math.ceil(Date.now() / step) * step);
    const since = new Date(until.getTime() - p.hours * 3600 * 1000);
    try {
      const r = await api('GET', '/cdrs/summary', { query: { since: fmtIso(since), until: fmtIso(until), bucket: p.bucket }, signal });
      fill(chartBox, callChart(r.items, p.bucket, chartBox.clientWidth || 720));
    } catch (e) { if (e.name !== 'AbortError') fill(chartBox, errorBox(e, loadChart)); }
  }

  filter.addEventListener('input', debounce(() => { drawTable(); go('/stats', here(), { replace: true, noRender: true }); }, 150));
  load();
  loadChart();
}
