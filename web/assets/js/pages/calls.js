// Live calls: the calls in progress as a compact table (fifty fit one screen), kept current
// by the event stream (no polling), with running ring and talk times, forward legs and the
// call a transfer or pickup came from, and a filter; calls that end stay listed below for a
// while, each with its ladder.

import { api } from '../api.js';
import { h, fill, showError, badge, fmtClock, fmtDuration, cut, debounce, confirmDialog, toast } from '../dom.js';
import { on, connected } from '../events.js';
import { ladderHref, partyEl, forwardLegs, originMark, linkWords } from '../cdrs.js';

const KEEP_ENDED = 20;

const STATE_TEXT = {
  trying: 'calling', ringing: 'ringing', forwarded: 'forwarded', answered: 'talking', held: 'on hold', ended: 'ended',
};

export function render(main, { signal, go, query }) {
  const liveBox = h('div', { id: 'live-calls', 'aria-live': 'polite' });
  const endedBox = h('div', { id: 'ended-calls' });
  const errBox = h('div');
  const count = h('span', { class: 'count', id: 'calls-count' });
  const note = h('span', { class: 'muted small', id: 'calls-note' });
  const filter = h('input', { type: 'search', id: 'calls-filter', name: 'filter', value: query.filter || '', placeholder: 'Extension, name, state or device', autocomplete: 'off' });
  main.append(h('section', { class: 'page wide-page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Live calls ', count),
      h('div', { class: 'actions', role: 'search' }, note, h('label', { for: 'calls-filter' }, 'Filter'), filter)),
    errBox, liveBox,
    h('h2', { class: 'section-title' }, 'Ended while you watched'),
    endedBox));

  const calls = new Map(); // id -> call
  const ended = []; // newest first
  let offset = 0; // server clock - browser clock, ms
  const nodes = new Map(); // id -> {dur, c}

  function nowUs() { return (Date.now() + offset) * 1000; }

  function durationText(c) {
    const now = c.ended_us || nowUs();
    if (c.answered_us) {
      const talk = (now - c.answered_us) / 1e6;
      return c.state === 'ended' ? `talked ${fmtDuration(talk)}` : `${c.state === 'held' ? 'on hold, call' : 'talking'} ${fmtDuration(talk)}`;
    }
    const ring = (now - (c.started_us || now)) / 1e6;
    return c.state === 'ended' ? `after ${fmtDuration(ring)}` : `${STATE_TEXT[c.state] || c.state} ${fmtDuration(ring)}`;
  }

  /** The words a filter looks in. */
  function words(c) {
    return [c.caller, c.caller_name, c.callee, STATE_TEXT[c.state], c.state, c.user_agent, c.caller_contact, c.callee_contact,
      ...(c.forwards || []).map((f) => f.to), c.link ? linkWords(c.link).short : ''].join(' ').toLowerCase();
  }

  function row(c) {
    const dur = h('span', { class: 'duration' }, durationText(c));
    const end = c.state === 'ended' ? [c.final_status ? ` · ${c.final_status}` : '', c.hangup_by ? ` · hung up by ${c.hangup_by}` : ''].join('') : '';
    const device = [c.user_agent, c.callee_contact ? `to ${c.callee_contact}` : ''].filter(Boolean).join(' · ');
    nodes.set(c.id, { dur, c });
    return h('tr', { class: ['call', `s-${c.state}`], dataset: { callId: c.call_id, id: String(c.id), state: c.state } },
      h('td', { class: 'c-state' }, badge(STATE_TEXT[c.state] || c.state, c.state)),
      h('td', { class: 'c-parties' }, h('span', { class: 'call-parties' },
        partyEl(c.caller_name, c.caller),
        h('span', { class: 'arrow', 'aria-hidden': 'true' }, ' → '), h('span', { class: 'sr' }, ' to '),
        partyEl(null, c.callee),
        forwardLegs(c.forwards || [], true),
        c.linked_call ? originMark(c, [...calls.values(), ...ended].find((x) => x.call_id === c.linked_call)) : null)),
      h('td', { class: 'c-dur' }, dur, end ? h('span', { class: 'muted small' }, end) : null),
      h('td', { class: 'nowrap muted small c-started' }, fmtClock(c.started_us)),
      h('td', { class: 'c-device muted small' }, device ? cut(device) : '—'),
      h('td', { class: 'c-link' }, h('a', { class: 'ladder-link', href: ladderHref(c.call_id), 'aria-label': `Ladder of the call from ${c.caller} to ${c.callee}` }, 'Ladder'),
        c.state === 'ended' ? null : hangupButton(c)));
  }

  /** Ends the call on both legs (DELETE /calls/{id}: CANCEL while it rings, BYE once
   *  answered), after a confirmation; the call.ended event then moves it below. */
  function hangupButton(c) {
    const b = h('button', { type: 'button', class: 'btn small danger hangup', 'aria-label': `Hang up the call from ${c.caller} to ${c.callee}` }, 'Hang up');
    b.addEventListener('click', async () => {
      const ringing = !c.answered_us;
      const ok = await confirmDialog('Hang up this call?',
        `${c.caller} → ${c.callee}: ${ringing ? 'the ringing phones stop and the caller hears the call end' : 'both phones are told the call is over'}. The call record will say it was ended by the administrator.`,
        'Hang up');
      if (!ok) return;
      b.disabled = true;
      try {
        await api('DELETE', `/calls/${c.id}`);
        toast(`Call ${c.caller} → ${c.callee} ended.`);
      } catch (e) {
        b.disabled = false;
        toast(e.status === 404 ? 'That call has already ended.' : `Could not end the call: ${e.message}`);
      }
    });
    return b;
  }

  function table(list, cls, emptyEl) {
    if (!list.length) return emptyEl;
    return h('div', { class: 'table-wrap' }, h('table', { class: ['table calls-table', cls] },
      h('thead', null, h('tr', null, ['State', 'Call', 'Time', 'Started', 'Device', ''].map((t) => h('th', { scope: 'col' }, t || h('span', { class: 'sr' }, 'Ladder and actions'))))),
      h('tbody', null, list.map(row))));
  }

  function draw() {
    nodes.clear();
    const f = filter.value.trim().toLowerCase();
    const all = [...calls.values()].sort((a, b) => a.started_us - b.started_us);
    const list = f ? all.filter((c) => words(c).includes(f)) : all;
    count.textContent = f ? `(${list.length} of ${all.length})` : `(${all.length})`;
    fill(liveBox, table(list, null, all.length
      ? h('p', { class: 'empty', id: 'no-match' }, `No call in progress matches “${filter.value.trim()}”.`)
      : h('p', { class: 'empty', id: 'no-calls' }, 'No calls right now. They appear here as soon as a phone dials.')));
    const endedList = f ? ended.filter((c) => words(c).includes(f)) : ended;
    fill(endedBox, table(endedList, 'ended', h('p', { class: 'muted' }, 'None yet.')));
  }

  async function load() {
    try {
      const r = await api('GET', '/calls', { signal });
      if (r._date) {
        const d = new Date(r._date).getTime() - Date.now();
        offset = Math.abs(d) > 2000 ? d : 0; // the Date header has whole seconds only
      }
      calls.clear();
      for (const c of r.items) calls.set(c.id, c);
      fill(errBox);
      draw();
    } catch (e) { showError(errBox, e, load); }
  }

  function onCall(type, c) {
    if (!c || c.id === undefined) return;
    if (type === 'call.ended' || c.state === 'ended') {
      calls.delete(c.id);
      const i = ended.findIndex((x) => x.id === c.id);
      if (i >= 0) ended.splice(i, 1);
      ended.unshift(c);
      ended.length = Math.min(ended.length, KEEP_ENDED);
    } else {
      calls.set(c.id, c);
    }
    draw();
  }

  function drawNote() {
    note.textContent = connected() ? 'Updated as it happens.' : 'Waiting for the live event stream…';
  }

  filter.addEventListener('input', debounce(() => {
    draw();
    go('/calls', { filter: filter.value.trim() }, { replace: true, noRender: true });
  }, 150));
  load();
  drawNote();
  const tick = setInterval(() => {
    for (const { dur, c } of nodes.values()) if (c.state !== 'ended') dur.textContent = durationText(c);
    drawNote();
  }, 1000);
  const offs = [on('call.*', onCall), on('reconnect', load)];
  return () => { clearInterval(tick); offs.forEach((f) => f()); };
}
