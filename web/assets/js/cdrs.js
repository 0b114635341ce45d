// Call records shown as a table (the records page and the overview's recent calls), and
// the parts of a call that the live calls show the same way.

import { api } from './api.js';
import { h, fill, showError, fmtTime, fmtDuration, badge, cut, sortHeader } from './dom.js';

export function ladderHref(callId) {
  return '#/ladder/' + encodeURIComponent(callId);
}

/** A party of a call: "Alice 100" (the name when there is one, cut when long, whole in
 *  its tooltip). */
export function partyEl(name, ext) {
  return h('span', { class: 'party' },
    name ? [cut(name, { cls: 'name', inline: true }), ' '] : null,
    h('span', { class: 'ext' }, ext || '?'));
}

/** The forward legs of a call, each " → 102"; detailed (the live calls): " ⤷ 102 (busy)",
 *  with words for screen readers. */
export function forwardLegs(forwards, detailed = false) {
  return forwards.map((f) => h('span', { class: detailed ? 'leg' : 'fwd', title: `forwarded by ${f.from} (${f.reason})` },
    detailed ? [h('span', { class: 'arrow', 'aria-hidden': 'true' }, ' ⤷ '), h('span', { class: 'sr' }, ' forwarded to ')] : ' → ',
    f.to,
    detailed ? h('span', { class: 'muted small' }, ` (${f.reason})`) : null));
}

function status(c) {
  if (!c.status) return '';
  return `${c.status}${c.phrase ? ' ' + c.phrase : ''}`;
}

/** A table of records; compact leaves out the less important columns. With onSort, the
 *  column headers sort (sort: {key, desc} as GET /cdrs names the keys). */
export function cdrTable(items, { compact = false, sort = null, onSort = null } = {}) {
  const cols = [['Start', 'start', true], ['From', 'caller'], ['To', 'dialled'], ['Outcome', 'disposition'], ['Talk', 'talk', true],
    ...(compact ? [] : [['Ring+talk', 'duration', true], ['Final'], ['Hung up by']]), ['']];
  const th = ([label, key, defaultDesc]) => (onSort && key ? sortHeader(label, key, sort, onSort, { defaultDesc: !!defaultDesc })
    : h('th', { scope: 'col' }, label || h('span', { class: 'sr' }, 'Ladder')));
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table cdrs' },
    h('thead', null, h('tr', null, cols.map(th))),
    h('tbody', null, items.map((c) => {
      const fw = c.forwards;
      const to = h('span', { class: 'party' }, h('span', { class: 'ext' }, c.dialled || '?'),
        forwardLegs(fw),
        c.answered_by && c.answered_by !== c.dialled && !fw.some((f) => f.to === c.answered_by)
          ? h('span', { class: 'muted' }, ` (answered by ${c.answered_by})`) : null);
      return h('tr', { dataset: { callId: c.call_id } },
        h('td', { class: 'nowrap c-start' }, fmtTime(c.start)),
        h('td', { class: 'c-from' }, partyEl(c.caller_name, c.caller)),
        h('td', { class: 'c-to' }, h('span', { class: 'to-arrow', 'aria-hidden': 'true' }, '→ '), to),
        h('td', { class: 'c-outcome' }, badge(c.disposition || '?'), c.interrupted ? h('span', { class: 'muted', title: 'sipbx stopped during the call' }, ' interrupted') : null),
        h('td', { class: 'num c-talk', title: 'talk time' }, fmtDuration(c.billsec)),
        compact ? null : h('td', { class: 'num c-more' }, fmtDuration(c.duration)),
        compact ? null : h('td', { class: 'nowrap c-more' }, status(c)),
        compact ? null : h('td', { class: 'c-more nowrap' }, c.hangup_by || '—'),
        h('td', { class: 'c-link' }, c.call_id ? h('a', { href: ladderHref(c.call_id), class: 'ladder-link', 'aria-label': `Ladder of the call from ${c.caller} to ${c.dialled}` }, 'Ladder') : null));
    }))));
}

/** Fills box with the newest records of query (a compact table), or emptyText. */
export async function recentCalls(box, query, emptyText, signal) {
  try {
    const r = await api('GET', '/cdrs', { query, signal });
    fill(box, r.items.length ? cdrTable(r.items, { compact: true }) : h('p', { class: 'empty' }, emptyText));
  } catch (e) { showError(box, e, () => recentCalls(box, query, emptyText, signal)); }
}
