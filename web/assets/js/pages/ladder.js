// The ladder of one Call-ID (a call or a registration): every captured SIP message as a
// sequence diagram; click an arrow for the whole message. The ladder is fetched again
// whenever the event stream says messages of its Call-ID were stored (trace.changed).

import { api, url } from '../api.js';
import { h, fill, showError, badge, fmtTime } from '../dom.js';
import { on } from '../events.js';
import { drawLadder, messageView, kindOf } from '../ladder.js';

export function render(main, { params, signal, go }) {
  const callId = params[0];
  if (!callId) return lookup(main, go);

  const status = h('span', { class: 'ladder-status' });
  const summary = h('p', { class: 'muted', id: 'ladder-summary' }, 'Loading…');
  const headWrap = h('div', { class: 'ladder-headwrap' });
  const bodyWrap = h('div', { class: 'ladder-bodywrap' });
  const scroller = h('div', { class: 'ladder-scroll', tabindex: -1 }, headWrap, bodyWrap);
  const detail = h('aside', { class: 'card ladder-detail', id: 'ladder-detail', 'aria-label': 'Selected message', hidden: true });
  const errBox = h('div');
  const pcap = h('a', { class: 'btn', href: url(`/traces/${encodeURIComponent(callId)}.pcap`), download: `${callId.replace(/[^A-Za-z0-9._-]/g, '_')}.pcap`, id: 'pcap-link' }, 'Download pcap');
  const legend = h('ul', { class: 'legend ladder-legend', 'aria-label': 'Legend' },
    h('li', null, h('span', { class: 'swatch k-req' }), 'request'),
    h('li', null, h('span', { class: 'swatch k-r1xx' }), '1xx provisional'),
    h('li', null, h('span', { class: 'swatch k-r2xx' }), '2xx success'),
    h('li', null, h('span', { class: 'swatch k-rerr' }), '3xx–6xx failure'),
    h('li', null, h('span', { class: 'swatch retrans' }), 'retransmission ↻'));

  main.append(h('section', { class: 'page ladder-page' },
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/calls' }, 'Live calls'), ' · ', h('a', { href: '#/records' }, 'Call records'), ' · ', h('a', { href: '#/ladder' }, 'Find a Call-ID')),
    h('div', { class: 'page-head' }, h('h1', null, 'Ladder ', status), pcap),
    h('p', { class: 'callid' }, 'Call-ID ', h('code', null, callId)),
    summary, legend, errBox,
    h('div', { class: 'ladder-layout' }, scroller, detail)));

  let msgs = [];
  let selectedSeq = null;
  let live = false;
  let ended = false;
  let loading = null, again = false;

  function select(m) {
    selectedSeq = m.seq;
    for (const a of bodyWrap.querySelectorAll('.arrow.selected')) a.classList.remove('selected');
    const g = bodyWrap.querySelector(`.arrow[data-seq="${CSS.escape(String(m.seq))}"]`);
    if (g) g.classList.add('selected');
    const close = h('button', { type: 'button', class: 'btn small', 'aria-label': 'Close message' }, 'Close');
    close.addEventListener('click', () => {
      detail.hidden = true;
      selectedSeq = null;
      if (g) { g.classList.remove('selected'); g.focus(); }
    });
    fill(detail, h('div', { class: 'card-head' }, h('h2', null, m.first_line || 'message'), close),
      messageView(m, msgs[0].time_us));
    detail.hidden = false;
    if (window.matchMedia('(max-width: 900px)').matches) detail.scrollIntoView({ block: 'nearest' });
  }

  function draw(prevCount) {
    if (!msgs.length) {
      fill(headWrap);
      fill(bodyWrap, h('p', { class: 'empty' }, live ? 'No message captured yet.' : 'No SIP message was captured for this Call-ID (traces are kept for a limited time, and capture may be off).'));
      return;
    }
    const t0 = performance.now();
    const { head, body, cols } = drawLadder(msgs, { onSelect: select, selectedSeq, newFrom: prevCount || Infinity, avail: scroller.clientWidth || 1000 });
    fill(headWrap, head);
    fill(bodyWrap, body);
    const span = (msgs[msgs.length - 1].time_us - msgs[0].time_us) / 1e6;
    const counts = { req: 0, r1xx: 0, r2xx: 0, rerr: 0 };
    let re = 0;
    for (const m of msgs) { counts[kindOf(m)]++; if (m.retransmission) re++; }
    summary.textContent = `${msgs.length} messages over ${span.toFixed(3)} s between ${cols.length} parties, from ${fmtTime(msgs[0].time_us)}: ` +
      `${counts.req} requests, ${counts.r1xx} provisional, ${counts.r2xx} success, ${counts.rerr} failure responses` + (re ? `, ${re} retransmissions` : '') + '.';
    summary.dataset.drawMs = String(Math.round(performance.now() - t0));
    if (selectedSeq !== null) {
      const m = msgs.find((x) => x.seq === selectedSeq);
      if (m && !detail.hidden) select(m);
    }
  }

  async function load() {
    if (loading) { again = true; return loading; }
    loading = (async () => {
      await liveChecked; // what an empty trace means depends on it
      try {
        const r = await api('GET', `/traces/${encodeURIComponent(callId)}`, { signal });
        const prev = msgs.length;
        msgs = (r.messages || []).slice().sort((a, b) => (a.seq - b.seq) || (a.time_us - b.time_us));
        fill(errBox);
        if (msgs.length !== prev || !prev) draw(prev);
      } catch (e) {
        if (e.status === 404) { msgs = []; draw(0); if (!live) summary.textContent = 'Nothing captured for this Call-ID.'; }
        else showError(errBox, e, load);
      }
    })();
    await loading;
    loading = null;
    if (again) { again = false; return load(); }
  }

  function setLive(on_, c) {
    live = on_;
    fill(status, on_ ? badge('live', 'live') : ended ? badge('ended', 'ended') : null);
    if (c) status.title = `${c.caller} → ${c.callee}: ${c.state}`;
  }

  const liveChecked = (async () => {
    try {
      const r = await api('GET', '/calls', { signal });
      const c = r.items.find((x) => x.call_id === callId);
      if (c) setLive(true, c);
    } catch { /* a live view is a bonus; the trace is what matters */ }
  })();

  const off = on('call.*', (type, c) => {
    if (!c || c.call_id !== callId) return;
    if (type === 'call.ended') { ended = true; setLive(false, c); } else setLive(true, c);
  });
  // A stream of this Call-ID's trace.changed events: sipbx sends one once new messages of
  // it are stored, so the ladder grows with every message, also those no call event
  // marks (ACK, in-dialog requests, a registration's refresh). On (re)connecting, or when
  // the server says events were missed, the trace is fetched again.
  const traces = new EventSource(url('/events', { trace: callId }));
  traces.addEventListener('trace.changed', () => load());
  traces.addEventListener('overflow', () => load());
  traces.onopen = () => load(); // what was stored before the stream began is fetched too
  // A refused stream (e.g. too many open) is not retried: the ladder is shown as it is now.
  traces.onerror = () => { if (traces.readyState === EventSource.CLOSED) load(); };
  return () => { off(); traces.close(); };
}

function lookup(main, go) {
  const input = h('input', { id: 'cid', name: 'call_id', required: true, spellcheck: 'false', autocomplete: 'off', class: 'mono' });
  const f = h('form', { class: 'card', 'aria-label': 'Open a ladder' },
    h('div', { class: 'field' }, h('label', { for: 'cid' }, 'Call-ID'), input,
      h('p', { class: 'hint' }, 'The Call-ID of a call or of a registration (REGISTER). Calls and devices link to their ladders directly.')),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn primary' }, 'Show ladder')));
  f.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (input.value.trim()) go('/ladder/' + encodeURIComponent(input.value.trim()));
  });
  main.append(h('section', { class: 'page' }, h('h1', null, 'Ladder'), f));
  input.focus();
}
