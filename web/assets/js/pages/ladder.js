// The ladder of one Call-ID (a call or a registration): every captured SIP message as a
// sequence diagram, with the legs of a transferred call (other Call-IDs) merged in and the
// chain of calls a transfer or pickup made shown above it (as the server linked them; the
// Refer-To and Replaces headers when it did not); click an arrow (or Enter on it) for the
// whole message with its SDP summed up. Messages can be
// filtered by method, retransmissions folded or not, and the diagram saved as SVG or PNG.
// The ladder is fetched again whenever the event stream says messages of its Call-ID were
// stored (trace.changed).

import { api, url } from '../api.js';
import { h, fill, showError, badge, fmtTime, download, debounce, toast } from '../dom.js';
import { on } from '../events.js';
import { recordOf, callLabel, linkWords } from '../cdrs.js';
import { drawLadder, messageView, kindOf, methodFamily, sdpOf, sdpChanges, header, ladderSvg, svgToPng } from '../ladder.js';

const MAX_RELATED = 4; // other Call-IDs merged into one ladder at most
const MAX_CHAIN = 8; // calls shown in a chain of transfers at most
// Room left for a vertical scroll bar, whether there is one or not: the width a ladder is
// drawn for does not change when one comes (which would draw it again, under a click).
const SCROLLBAR = 18;

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
  const related = h('p', { class: 'related', id: 'ladder-related', hidden: true });
  const chainBox = h('nav', { class: 'chain-nav', id: 'ladder-chain', 'aria-label': 'Calls linked by a transfer or pickup', hidden: true });
  const safeName = callId.replace(/[^A-Za-z0-9._-]/g, '_');
  const pcap = h('a', { class: 'btn', href: url(`/traces/${encodeURIComponent(callId)}.pcap`), download: `${safeName}.pcap`, id: 'pcap-link', hidden: true }, 'Download pcap');
  const svgBtn = h('button', { type: 'button', class: 'btn', id: 'export-svg', disabled: true }, 'Save SVG');
  const pngBtn = h('button', { type: 'button', class: 'btn', id: 'export-png', disabled: true }, 'Save PNG');
  const foldBox = h('input', { type: 'checkbox', id: 'fold-retrans', checked: true });
  const methodsBox = h('div', { class: 'methods', role: 'group', 'aria-label': 'Show the messages of' });
  const legend = h('ul', { class: 'legend ladder-legend', 'aria-label': 'Legend' });

  main.append(h('section', { class: 'page ladder-page' },
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/calls' }, 'Live calls'), ' · ', h('a', { href: '#/records' }, 'Call records'), ' · ', h('a', { href: '#/ladder' }, 'Find a Call-ID')),
    h('div', { class: 'page-head' }, h('h1', null, 'Ladder ', status), h('div', { class: 'actions' }, svgBtn, pngBtn, pcap)),
    h('p', { class: 'callid' }, 'Call-ID ', h('code', null, callId)),
    summary, chainBox, related,
    h('div', { class: 'ladder-tools' }, methodsBox,
      h('span', { class: 'field check' }, foldBox, h('label', { for: 'fold-retrans' }, 'Fold retransmissions'))),
    legend, errBox,
    h('div', { class: 'ladder-layout' }, scroller, detail)));

  let msgs = []; // of this Call-ID and the related ones, in time order
  let own = []; // of this Call-ID
  let relatedIds = [];
  let selectedSeq = null;
  let current = null; // seq of the message the keyboard is on
  let methods = null; // Set of methods shown, null: all
  let drawn = null; // what drawLadder returned
  let lastWidth = 0; // of the scroller, when the ladder was last drawn
  const boxWidth = () => Math.floor(scroller.getBoundingClientRect().width) - 2; // less its border
  let live = false;
  let ended = false;
  let loading = null, again = false;

  function closeDetail() {
    detail.hidden = true;
    selectedSeq = null;
    draw();
    const svg = bodyWrap.querySelector('svg.ladder');
    if (svg) svg.focus();
  }

  function select(m) {
    selectedSeq = m.seq;
    current = m.seq;
    for (const a of bodyWrap.querySelectorAll('.arrow.selected')) { a.classList.remove('selected'); a.setAttribute('aria-selected', 'false'); }
    const g = bodyWrap.querySelector(`.arrow[data-seq="${CSS.escape(String(m.seq))}"]`);
    if (g) { g.classList.add('selected'); g.setAttribute('aria-selected', 'true'); }
    const close = h('button', { type: 'button', class: 'btn small', 'aria-label': 'Close message (Escape)' }, 'Close');
    close.addEventListener('click', closeDetail);
    // the SDP the same sender sent before this one, for what changed
    const sender = (x) => (x.direction === 'in' ? x.src : `sipbx>${x.dst}`);
    let prev = null;
    for (const x of msgs) {
      if (x === m) break;
      if (sender(x) === sender(m)) prev = sdpOf(x) || prev;
    }
    const sdp = sdpOf(m);
    const other = m.call_id && m.call_id !== callId ? h('p', { class: 'small' }, 'Of the related call ', h('a', { href: `#/ladder/${encodeURIComponent(m.call_id)}` }, m.call_id)) : null;
    const wasHidden = detail.hidden;
    fill(detail, h('div', { class: 'card-head' }, h('h2', null, m.first_line || 'message'), close), other,
      messageView(m, msgs[0].time_us, { sdp, changes: sdp ? sdpChanges(prev, sdp) : [] }));
    detail.hidden = false;
    if (wasHidden) draw(); // the columns share the narrower width now
    if (window.matchMedia('(max-width: 1100px)').matches) detail.scrollIntoView({ block: 'nearest' });
  }

  function drawTools() {
    const present = [...new Set(msgs.map(methodFamily))];
    fill(methodsBox, h('span', { class: 'muted small' }, 'Show:'), present.map((meth) => {
      const b = h('button', { type: 'button', class: 'btn small', 'aria-pressed': String(!methods || methods.has(meth)), dataset: { method: meth } }, meth);
      b.addEventListener('click', () => {
        const on_ = !methods || methods.has(meth);
        const next = new Set(methods || present);
        if (on_) next.delete(meth); else next.add(meth);
        methods = next.size === present.length ? null : next;
        drawTools();
        draw();
      });
      return b;
    }));
  }

  function drawLegend(cols) {
    fill(legend,
      h('li', null, h('span', { class: 'swatch k-req' }), 'request'),
      h('li', null, h('span', { class: 'swatch k-r1xx' }), '1xx provisional'),
      h('li', null, h('span', { class: 'swatch k-r2xx' }), '2xx success'),
      h('li', null, h('span', { class: 'swatch k-rerr' }), '3xx–6xx failure'),
      h('li', null, h('span', { class: 'swatch retrans' }), 'retransmission ↻ (×N: folded)'),
      h('li', null, h('strong', { class: 'small' }, 'SDP'), ' media offer/answer, ', h('strong', { class: 'small' }, 'SDP Δ'), ' changed'),
      cols.filter((c) => c.leg).map((c) => h('li', { class: 'leg-key' }, h('span', { class: ['swatch', `leg-${c.leg}`] }), `leg of ${c.role}${c.user ? ' ' + c.user : ''}`)));
  }

  function draw(prevCount) {
    if (!msgs.length) {
      fill(headWrap);
      fill(bodyWrap, h('p', { class: 'empty' }, live ? 'No message captured yet.' : 'No SIP message was captured for this Call-ID (traces are kept for a limited time, and capture may be off).'));
      svgBtn.disabled = pngBtn.disabled = true;
      return;
    }
    const t0 = performance.now();
    const hadFocus = bodyWrap.contains(document.activeElement);
    lastWidth = boxWidth();
    drawn = drawLadder(msgs, { onSelect: select, selectedSeq, current, newFrom: prevCount || Infinity, avail: lastWidth ? lastWidth - SCROLLBAR : 1000, fold: foldBox.checked, methods });
    fill(headWrap, drawn.head);
    fill(bodyWrap, drawn.body);
    drawn.body.addEventListener('keydown', () => { current = drawn.current(); });
    drawn.body.addEventListener('click', () => { current = drawn.current(); });
    if (hadFocus) drawn.body.focus({ preventScroll: true });
    drawLegend(drawn.cols);
    svgBtn.disabled = pngBtn.disabled = false;
    const span = (msgs[msgs.length - 1].time_us - msgs[0].time_us) / 1e6;
    const counts = { req: 0, r1xx: 0, r2xx: 0, rerr: 0 };
    let re = 0;
    for (const m of msgs) { counts[kindOf(m)]++; if (m.retransmission) re++; }
    const shown = drawn.rows.length;
    summary.textContent = `${msgs.length} messages over ${span.toFixed(3)} s between ${drawn.cols.length} parties, from ${fmtTime(msgs[0].time_us)}: ` +
      `${counts.req} requests, ${counts.r1xx} provisional, ${counts.r2xx} success, ${counts.rerr} failure responses` + (re ? `, ${re} retransmissions` : '') +
      (shown !== msgs.length ? `; ${shown} shown` : '') + '.';
    summary.dataset.drawMs = String(Math.round(performance.now() - t0));
    summary.dataset.shown = String(shown);
  }

  /** Call-IDs this one's messages point to: a Replaces header or a Refer-To with
   *  Replaces (an attended transfer). */
  function pointedTo(list) {
    const ids = new Set();
    for (const m of list) {
      const rep = header(m.raw, 'Replaces');
      if (rep) ids.add(rep.split(';')[0].trim());
      const rt = /[?&]Replaces=([^&>;]+)/i.exec(header(m.raw, 'Refer-To', 'r'));
      if (rt) { try { ids.add(decodeURIComponent(rt[1]).split(';')[0]); } catch { /* not encoded well */ } }
    }
    ids.delete(callId);
    return [...ids];
  }

  /** The calls a blind transfer of this one made: after each REFER that sipbx passed on,
   *  the records of calls to its Refer-To user that started within a minute. */
  async function transferredTo(list) {
    const ids = [];
    for (const m of list) {
      if (m.method !== 'REFER' || m.direction !== 'in') continue;
      const user = /sips?:([^@;>?\s]+)@/i.exec(header(m.raw, 'Refer-To', 'r'));
      if (!user || /Replaces=/i.test(header(m.raw, 'Refer-To', 'r'))) continue;
      const since = new Date(m.time_us / 1000 - 1000).toISOString(), until = new Date(m.time_us / 1000 + 60000).toISOString();
      try {
        const r = await api('GET', '/cdrs', { query: { since, until, ext: user[1], limit: 20, sort: 'start' }, signal });
        for (const c of r.items) if (c.call_id !== callId && c.dialled === user[1]) ids.push(c.call_id);
      } catch { /* related legs are a help; the call's own ladder is what matters */ }
    }
    return ids;
  }

  let liveCalls = []; // GET /calls and the call events since: the links of calls going on

  /** Call id as the server knows it: its live call while it goes on, else its record
   *  (null: neither). */
  async function callOf(id) {
    const live = liveCalls.find((x) => x.call_id === id);
    if (live) return live;
    try { return await recordOf(id, signal); } catch (e) { if (e.name === 'AbortError') throw e; return null; }
  }

  /** The calls that came from call id (the server links them): live ones and records. */
  async function childrenOf(id) {
    const out = liveCalls.filter((x) => x.linked_call === id);
    try {
      const r = await api('GET', '/cdrs', { query: { linked_call: id, limit: 20, sort: 'start' }, signal });
      for (const c of r.items) if (!out.some((x) => x.call_id === c.call_id)) out.push(c);
    } catch (e) { if (e.name === 'AbortError') throw e; }
    return out;
  }

  /** The chain of calls this one is in, as the server linked them (each call made by a
   *  transfer or pickup names the call it came from): the calls it came from, oldest
   *  first, this one, then the calls that came from it and from those. Each node is
   *  {id, call (live call or record, or null), parent (the Call-ID it came from), link}. */
  async function serverChain() {
    const node = (id, call) => ({ id, call, parent: (call && call.linked_call) || null, link: (call && call.link) || null });
    const self = node(callId, await callOf(callId));
    const nodes = [self];
    for (let cur = self; cur.parent && nodes.length < MAX_CHAIN && !nodes.some((n) => n.id === cur.parent);) {
      cur = node(cur.parent, await callOf(cur.parent));
      nodes.unshift(cur);
    }
    for (let i = nodes.indexOf(self), depth = 0; i < nodes.length && depth < 3 && nodes.length < MAX_CHAIN; depth++) {
      const level = nodes.slice(i);
      i = nodes.length;
      for (const n of level) {
        for (const k of await childrenOf(n.id)) {
          if (nodes.length < MAX_CHAIN && !nodes.some((x) => x.id === k.call_id)) nodes.push(node(k.call_id, k));
        }
      }
    }
    return nodes;
  }

  /** Shows the chain above the ladder: "100 → 101 · transferred (blind) → 100 → 102". */
  function drawChain(nodes) {
    chainBox.hidden = nodes.length < 2;
    if (chainBox.hidden) { fill(chainBox); return; }
    const label = (n) => callLabel(n.call, n.id);
    fill(chainBox, h('ol', { class: 'chain' }, nodes.map((n, i) => {
      const prev = nodes[i - 1];
      const from = n.parent && (!prev || prev.id !== n.parent) ? nodes.find((x) => x.id === n.parent) : null;
      const conn = !n.parent || !n.link ? null
        : h('span', { class: 'conn' }, i === 0 ? '… ' : null, h('span', { 'aria-hidden': 'true' }, '→ '), linkWords(n.link).kind,
          from ? ` from ${label(from)}` : i === 0 ? ` from call ${n.parent}` : null, h('span', { 'aria-hidden': 'true' }, ' →'));
      const when = n.call && (n.call.start || n.call.started_us) ? h('span', { class: 'muted small' }, ` ${fmtTime(n.call.start || n.call.started_us)}`) : null;
      const ref = n.id === callId
        ? h('strong', { class: 'callref', 'aria-current': 'page', title: `Call-ID ${n.id}` }, label(n), h('span', { class: 'sr' }, ' (this call)'))
        : h('a', { class: 'callref', href: `#/ladder/${encodeURIComponent(n.id)}`, title: `Call-ID ${n.id}`, dataset: { callId: n.id } }, label(n));
      return h('li', { dataset: { callId: n.id, link: n.link || '' } }, conn, ref, when);
    })));
  }

  async function loadRelated() {
    let chain = [];
    try { chain = await serverChain(); } catch (e) { if (e.name === 'AbortError') throw e; }
    drawChain(chain);
    // the calls next to this one first: the one it came from, those that came from it
    const near = (n) => (n.id === callId ? 9 : n.parent === callId || chain.some((x) => x.id === callId && x.parent === n.id) ? 0 : 1);
    const linked = chain.filter((n) => n.id !== callId).sort((a, b) => near(a) - near(b)).map((n) => n.id);
    // without links from the server (records older than them), the headers say
    const want = (linked.length ? linked : [...new Set([...pointedTo(own), ...(await transferredTo(own))])]).slice(0, MAX_RELATED);
    const extra = [];
    for (const id of want) {
      try {
        const r = await api('GET', `/traces/${encodeURIComponent(id)}`, { signal });
        for (const m of r.messages || []) extra.push({ ...m, call_id: id });
      } catch { /* nothing captured of it */ }
    }
    relatedIds = want.filter((id) => extra.some((m) => m.call_id === id));
    if (relatedIds.length) {
      related.hidden = false;
      const name = (id) => { const n = chain.find((x) => x.id === id); return n && n.call ? `${callLabel(n.call, id)} (${id})` : id; };
      fill(related, 'Drawn with the messages of the linked call', relatedIds.length === 1 ? '' : 's', ': ',
        relatedIds.map((id, i) => [i ? ', ' : '', h('a', { href: `#/ladder/${encodeURIComponent(id)}` }, name(id))]), '.');
    }
    return extra;
  }

  async function load() {
    if (loading) { again = true; return loading; }
    loading = (async () => {
      await liveChecked; // what an empty trace means depends on it
      try {
        const r = await api('GET', `/traces/${encodeURIComponent(callId)}`, { signal });
        const prev = msgs.length;
        own = (r.messages || []).slice().sort((a, b) => (a.seq - b.seq) || (a.time_us - b.time_us)).map((m) => ({ ...m, call_id: callId }));
        const extra = await loadRelated();
        // one sequence for all: the related legs' messages get numbers after this call's
        msgs = [...own, ...extra.map((m, i) => ({ ...m, trace_seq: m.seq, seq: own.length + i + 1 }))]
          .sort((a, b) => (a.time_us - b.time_us) || (a.seq - b.seq));
        pcap.hidden = !own.length;
        fill(errBox);
        if (msgs.length !== prev || !prev) { drawTools(); draw(prev); }
        if (selectedSeq !== null && !detail.hidden) {
          const m = msgs.find((x) => x.seq === selectedSeq);
          if (m) select(m);
        }
      } catch (e) {
        if (e.status === 404) {
          msgs = own = [];
          pcap.hidden = true;
          draw(0);
          if (!live) summary.textContent = 'Nothing captured for this Call-ID.';
        } else showError(errBox, e, load);
      }
    })();
    await loading;
    loading = null;
    if (again) { again = false; return load(); }
  }

  async function exportAs(kind) {
    if (!drawn) return;
    const svg = ladderSvg(drawn.head, drawn.body);
    if (kind === 'svg') { download(`ladder-${safeName}.svg`, 'image/svg+xml', svg); return; }
    const w = Number(drawn.body.getAttribute('width'));
    const hh = Number(drawn.head.getAttribute('height')) + Number(drawn.body.getAttribute('height'));
    try {
      download(`ladder-${safeName}.png`, 'image/png', await svgToPng(svg, w, hh));
    } catch (e) { toast(`Cannot save a PNG: ${e.message}`); }
  }
  svgBtn.addEventListener('click', () => exportAs('svg'));
  pngBtn.addEventListener('click', () => exportAs('png'));
  foldBox.addEventListener('change', () => draw());

  function setLive(on_, c) {
    live = on_;
    fill(status, on_ ? badge('live', 'live') : ended ? badge('ended', 'ended') : null);
    if (c) status.title = `${c.caller} → ${c.callee}: ${c.state}`;
  }

  const liveChecked = (async () => {
    try {
      const r = await api('GET', '/calls', { signal });
      liveCalls = r.items;
      const c = r.items.find((x) => x.call_id === callId);
      if (c) setLive(true, c);
    } catch { /* a live view is a bonus; the trace is what matters */ }
  })();

  // Escape closes the open message wherever the focus is on the page.
  const onKey = (ev) => {
    if (ev.key === 'Escape' && !detail.hidden && !document.querySelector('dialog[open]')) { ev.preventDefault(); closeDetail(); }
  };
  document.addEventListener('keydown', onKey);
  // The columns share the width there is: drawn again when it changes (a message opened
  // or closed, the window resized) from the width of the last drawing.
  const resize = new ResizeObserver(debounce(() => {
    // (not for the page's own scroll bar coming or going, 15 px or so)
    if (Math.abs(boxWidth() - lastWidth) > 24 && msgs.length) draw();
  }, 100));
  resize.observe(scroller);

  const off = on('call.*', (type, c) => {
    if (!c) return;
    // the calls of this chain as they go on; one that came from this call joins the ladder
    // (ended ones kept: their records may not be stored yet)
    const known = liveCalls.findIndex((x) => x.id === c.id);
    if (known >= 0) liveCalls[known] = c; else liveCalls.push(c);
    if (liveCalls.length > 500) liveCalls.shift();
    if (type === 'call.new' && c.linked_call === callId) load();
    if (c.call_id !== callId) return;
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
  return () => { off(); traces.close(); resize.disconnect(); document.removeEventListener('keydown', onKey); };
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
