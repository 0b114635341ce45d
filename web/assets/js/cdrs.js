// Call records shown as a table (the records page and the overview's recent calls), and
// the parts of a call that the live calls show the same way; the links between calls that
// a transfer or a pickup made (a record names the call it came from: linked_call, link).

import { api } from './api.js';
import { h, fill, showError, fmtTime, fmtDuration, badge, cut, sortHeader, fmtIso } from './dom.js';

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

// ---- calls that came from other calls (transfers, pickups) ----

const LINKS = {
  transfer: { from: 'transferred from', to: 'transferred to', kind: 'transferred (blind)', short: 'transfer' },
  'attended-transfer': { from: 'transferred (attended) from', to: 'transferred (attended) to', kind: 'transferred (attended)', short: 'attended transfer' },
  pickup: { from: 'picked up from', to: 'picked up by', kind: 'picked up', short: 'pickup' },
};
const LOOKUPS_PARALLEL = 4; // records asked for at once
const WINDOW_PAGES = 4; // pages of 500 records read to find the calls that came from a page
const REFER_WINDOW_S = 61; // a transfer's call starts within a minute of its REFER (server/sip/calls.c)

/** The words of a link: {from, to, kind, short}. */
export function linkWords(link) {
  return LINKS[link] || { from: 'came from', to: 'went on to', kind: 'linked', short: 'linked' };
}

/** A call named by its parties, "100 → 101" (a record or a live call), or by its Call-ID
 *  when that is all there is. */
export function callLabel(c, callId) {
  if (c) return `${c.caller || '?'} → ${c.dialled || c.callee || '?'}`;
  return `call ${callId.length > 18 ? callId.slice(0, 14) + '…' : callId}`;
}

/** The mark of call c that came from another: "↪ transferred from 100 → 101", a link to
 *  that call's ladder; origin: its record or live call, when known. */
export function originMark(c, origin) {
  return h('span', { class: 'linkmark from', dataset: { link: c.link } },
    h('span', { 'aria-hidden': 'true' }, '↪ '), linkWords(c.link).from, ' ',
    h('a', { href: ladderHref(c.linked_call), title: `Ladder of the call it came from (Call-ID ${c.linked_call})` }, callLabel(origin, c.linked_call)));
}

/** The mark of a call others came from: "↳ then transferred to 102, picked up by 103",
 *  each a link to that call's ladder. */
export function successorsMark(children) {
  return h('span', { class: 'linkmark to' }, h('span', { 'aria-hidden': 'true' }, '↳ '), 'then ',
    children.map((k, i) => [i ? ', ' : '', linkWords(k.link).to, ' ',
      h('a', { href: ladderHref(k.call_id), title: `Ladder of ${callLabel(k, k.call_id)} (Call-ID ${k.call_id})` }, k.link === 'pickup' ? k.caller : k.dialled || k.callee)]));
}

/** Runs fn on each of list, a few at a time. */
async function each(list, fn) {
  let i = 0;
  const worker = async () => { while (i < list.length) await fn(list[i++]); };
  await Promise.all(Array.from({ length: Math.min(LOOKUPS_PARALLEL, list.length) }, worker));
}

/** The record of Call-ID id (null when there is none): q is a prefix search of Call-IDs. */
export async function recordOf(id, signal) {
  const r = await api('GET', '/cdrs', { query: { q: id, limit: 5 }, signal });
  return r.items.find((c) => c.call_id === id) || null;
}

/** The records that came from the calls of items: Map Call-ID -> [records]. They start
 *  while their call goes on or a minute after it ended, so the records of that time are
 *  read (a few pages); when there are more, each call is asked for by its Call-ID. */
async function successorsOf(items, signal) {
  const ids = new Set(items.map((c) => c.call_id));
  const kids = new Map();
  const add = (k) => {
    if (!k.linked_call || !ids.has(k.linked_call)) return;
    const l = kids.get(k.linked_call) || [];
    if (!l.some((x) => x.call_id === k.call_id)) l.push(k);
    kids.set(k.linked_call, l);
  };
  const first = Math.min(...items.map((c) => c.start_us)), last = Math.max(...items.map((c) => c.end_us || c.start_us));
  const query = { since: fmtIso(new Date(Math.floor(first / 1e6) * 1000)), until: fmtIso(new Date((Math.ceil(last / 1e6) + REFER_WINDOW_S) * 1000)), limit: 500, sort: 'start' };
  const seen = [];
  let cursor = null;
  const untilUs = (Math.ceil(last / 1e6) + REFER_WINDOW_S) * 1e6;
  for (let n = 0; n < WINDOW_PAGES; n++) {
    const r = await api('GET', '/cdrs', { query: { ...query, cursor }, signal });
    seen.push(...r.items);
    cursor = r.next_cursor;
    if (!cursor) break;
    // at the pace of the first page, more pages than that: each call asked for is quicker
    const upTo = seen[seen.length - 1].start_us;
    if (n === 0 && upTo > first && (untilUs - first) / (upTo - first) > WINDOW_PAGES) break;
  }
  if (!cursor) { seen.forEach(add); return kids; }
  await each([...ids], async (id) => {
    const r = await api('GET', '/cdrs', { query: { linked_call: id, limit: 20 }, signal });
    r.items.forEach(add);
  });
  return kids;
}

/** Completes the link marks of a table cdrTable drew in box: the parties of the calls
 *  records came from that are not on the page and, with successors, the calls that came
 *  from the page's records. A help, not the table: failures leave the marks as drawn. */
export async function annotateLinks(box, items, { successors = false, signal } = {}) {
  const byId = new Map(items.map((c) => [c.call_id, c]));
  const slot = (id) => box.querySelector(`tr[data-call-id="${CSS.escape(id)}"] .links`);
  delete box.dataset.linksDone;
  try {
    const missing = [...new Set(items.filter((c) => c.linked_call && !byId.has(c.linked_call)).map((c) => c.linked_call))];
    const origins = new Map();
    await each(missing, async (id) => { const o = await recordOf(id, signal); if (o) origins.set(id, o); });
    for (const c of items) {
      const s = c.linked_call && origins.has(c.linked_call) && slot(c.call_id);
      if (s) s.querySelector('.linkmark.from').replaceWith(originMark(c, origins.get(c.linked_call)));
    }
    if (!successors || !items.length) return;
    const kids = await successorsOf(items, signal);
    for (const [id, list] of kids) {
      const s = slot(id);
      if (!s) continue;
      const old = s.querySelector('.linkmark.to');
      if (old) old.replaceWith(successorsMark(list)); else s.append(successorsMark(list));
    }
    box.dataset.linksDone = 'true';
  } catch (e) {
    if (e.name !== 'AbortError') console.warn('call links:', e.message);
  }
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
  // the links between records of this page; annotateLinks completes them
  const byId = new Map(items.map((c) => [c.call_id, c]));
  const kids = new Map();
  for (const c of items) if (c.linked_call && byId.has(c.linked_call)) kids.set(c.linked_call, [...(kids.get(c.linked_call) || []), c]);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table cdrs' },
    h('thead', null, h('tr', null, cols.map(th))),
    h('tbody', null, items.map((c) => {
      const fw = c.forwards;
      const to = h('span', { class: 'party' }, h('span', { class: 'ext' }, c.dialled || '?'),
        forwardLegs(fw),
        c.answered_by && c.answered_by !== c.dialled && !fw.some((f) => f.to === c.answered_by)
          ? h('span', { class: 'muted' }, ` (answered by ${c.answered_by})`) : null,
        h('span', { class: 'links' }, c.linked_call ? originMark(c, byId.get(c.linked_call)) : null,
          kids.has(c.call_id) ? successorsMark(kids.get(c.call_id)) : null));
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
    annotateLinks(box, r.items, { signal });
  } catch (e) { showError(box, e, () => recentCalls(box, query, emptyText, signal)); }
}
