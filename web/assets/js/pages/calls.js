// Live calls: the calls in progress, kept current by the event stream (no polling), with
// running ring and talk times and forward legs; calls that end stay listed below for a
// while, each with its ladder.

import { api } from '../api.js';
import { h, fill, showError, badge, fmtClock, fmtDuration } from '../dom.js';
import { on, connected } from '../events.js';
import { ladderHref, partyEl, forwardLegs } from '../cdrs.js';

const KEEP_ENDED = 20;

const STATE_TEXT = {
  trying: 'calling', ringing: 'ringing', forwarded: 'forwarded', answered: 'talking', held: 'on hold', ended: 'ended',
};

export function render(main, { signal }) {
  const liveBox = h('div', { class: 'calls', id: 'live-calls', 'aria-live': 'polite' });
  const endedBox = h('div', { class: 'calls ended', id: 'ended-calls' });
  const errBox = h('div');
  const count = h('span', { class: 'count' });
  const note = h('p', { class: 'muted small' });
  main.append(h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Live calls ', count)),
    note, errBox, liveBox,
    h('h2', { class: 'section-title' }, 'Ended while you watched'),
    endedBox));

  const calls = new Map(); // id -> call
  const ended = []; // newest first
  let offset = 0; // server clock - browser clock, ms
  const nodes = new Map(); // id -> {el, dur}

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

  function callCard(c) {
    const dur = h('span', { class: 'duration' }, durationText(c));
    const endText = c.state === 'ended' ? [
      c.final_status ? h('span', null, ` · ${c.final_status}`) : null,
      c.hangup_by ? h('span', null, ` · hung up by ${c.hangup_by}`) : null] : null;
    const el = h('article', { class: ['call', `s-${c.state}`], dataset: { callId: c.call_id, id: String(c.id), state: c.state }, 'aria-label': `Call from ${c.caller} to ${c.callee}, ${STATE_TEXT[c.state] || c.state}` },
      h('div', { class: 'call-top' },
        badge(STATE_TEXT[c.state] || c.state, c.state),
        h('span', { class: 'call-parties' },
          partyEl(c.caller_name, c.caller),
          h('span', { class: 'arrow', 'aria-hidden': 'true' }, ' → '), h('span', { class: 'sr' }, ' to '),
          partyEl(null, c.callee),
          forwardLegs(c.forwards, true)),
        h('a', { class: 'btn small', href: ladderHref(c.call_id) }, 'Ladder')),
      h('div', { class: 'call-meta' },
        dur,
        h('span', { class: 'muted' }, ` · started ${fmtClock(c.started_us)}`), endText),
      h('div', { class: 'call-devices muted small' },
        c.caller_contact ? h('span', null, 'from ', h('code', null, c.caller_contact)) : null,
        c.callee_contact ? h('span', null, ' to ', h('code', null, c.callee_contact)) : null,
        c.user_agent ? h('span', null, ' · ', c.user_agent) : null));
    nodes.set(c.id, { dur, c });
    return el;
  }

  function draw() {
    nodes.clear();
    const list = [...calls.values()].sort((a, b) => a.started_us - b.started_us);
    count.textContent = `(${list.length})`;
    fill(liveBox, list.length ? list.map(callCard) : h('p', { class: 'empty', id: 'no-calls' }, 'No calls right now. They appear here as soon as a phone dials.'));
    fill(endedBox, ended.length ? ended.map(callCard) : h('p', { class: 'muted' }, 'None yet.'));
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

  load();
  drawNote();
  const tick = setInterval(() => {
    for (const { dur, c } of nodes.values()) if (c.state !== 'ended') dur.textContent = durationText(c);
    drawNote();
  }, 1000);
  const offs = [on('call.*', onCall), on('reconnect', load)];
  return () => { clearInterval(tick); offs.forEach((f) => f()); };
}
