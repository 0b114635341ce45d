// Call records shown as a table (the records page and the overview's recent calls).

import { h, fmtTime, fmtDuration, badge } from './dom.js';

export function forwardsOf(c) {
  let f = c.forwards;
  if (typeof f === 'string') { try { f = JSON.parse(f); } catch { f = []; } }
  return Array.isArray(f) ? f : [];
}

export function ladderHref(callId) {
  return '#/ladder/' + encodeURIComponent(callId);
}

function caller(c) {
  return h('span', { class: 'party' },
    c.caller_name ? [h('span', { class: 'name' }, c.caller_name), ' '] : null,
    h('span', { class: 'ext' }, c.caller || '?'));
}

function status(c) {
  if (!c.status) return '';
  return `${c.status}${c.phrase ? ' ' + c.phrase : ''}`;
}

/** A table of records; compact leaves out the less important columns. */
export function cdrTable(items, { compact = false } = {}) {
  const head = ['Start', 'From', 'To', 'Outcome', 'Talk', ...(compact ? [] : ['Ring+talk', 'Final', 'Hung up by']), ''];
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table cdrs' },
    h('thead', null, h('tr', null, head.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', null, items.map((c) => {
      const fw = forwardsOf(c);
      const to = h('span', { class: 'party' }, h('span', { class: 'ext' }, c.dialled || '?'),
        fw.map((f) => h('span', { class: 'fwd', title: `forwarded by ${f.from} (${f.reason})` }, ' → ', f.to)),
        c.answered_by && c.answered_by !== c.dialled && !fw.some((f) => f.to === c.answered_by)
          ? h('span', { class: 'muted' }, ` (answered by ${c.answered_by})`) : null);
      return h('tr', { dataset: { callId: c.call_id } },
        h('td', { class: 'nowrap c-start' }, fmtTime(c.start || c.start_us)),
        h('td', { class: 'c-from' }, caller(c)),
        h('td', { class: 'c-to' }, h('span', { class: 'to-arrow', 'aria-hidden': 'true' }, '→ '), to),
        h('td', { class: 'c-outcome' }, badge(c.disposition || '?'), c.interrupted ? h('span', { class: 'muted', title: 'sipbx stopped during the call' }, ' interrupted') : null),
        h('td', { class: 'num c-talk', title: 'talk time' }, fmtDuration(c.billsec)),
        compact ? null : h('td', { class: 'num c-more' }, fmtDuration(c.duration)),
        compact ? null : h('td', { class: 'nowrap c-more' }, status(c)),
        compact ? null : h('td', { class: 'c-more' }, c.hangup_by || '—'),
        h('td', { class: 'c-link' }, c.call_id ? h('a', { href: ladderHref(c.call_id), class: 'ladder-link', 'aria-label': `Ladder of the call from ${c.caller} to ${c.dialled}` }, 'Ladder') : null));
    }))));
}
