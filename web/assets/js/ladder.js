// Ladder (sequence) diagrams of captured SIP messages, drawn as SVG: one column per party,
// one arrow per message, labelled with the method or status, the time since the first
// message and since the one before, and a mark where a message carries SDP (and where it
// changed). Requests, 1xx, 2xx, errors and retransmissions each have their own look; each
// party's leg has its own colour. Retransmissions can be folded into the message they
// repeat, and messages filtered by method. The diagram is one tab stop (a listbox): the
// arrow keys move between messages, Enter opens one.

import { s, h } from './dom.js';

const ROW_H = 36, TOP = 8, PAD = 20, CHAR_W = 7; // CHAR_W: about one character of a label
const ROLE_CHAR_W = 7.6, ADDR_CHAR_W = 6.7; // the same for a party's name and address
const LEGS = 6; // leg colours (--leg-1 .. --leg-6), used in turn

/** "SIP/2.0 180 Ringing" -> 180; a request -> 0. */
function statusOf(m) {
  if (typeof m.status === 'number' && m.status) return m.status;
  const r = /^SIP\/2\.0\s+(\d{3})/.exec(m.first_line || '');
  return r ? Number(r[1]) : 0;
}

function methodOf(m) {
  if (m.method) return m.method;
  if (statusOf(m)) return '';
  return (m.first_line || '').split(' ')[0] || '?';
}

function splitMessage(raw) {
  const i = (raw || '').search(/\r?\n\r?\n/);
  if (i < 0) return { head: raw || '', body: '' };
  const sep = /\r?\n\r?\n/.exec(raw.slice(i))[0];
  return { head: raw.slice(0, i), body: raw.slice(i + sep.length) };
}

/** A header's value from the raw text (first occurrence; compact forms too). */
export function header(raw, name, compact) {
  const re = new RegExp(`^(?:${name}${compact ? '|' + compact : ''})\\s*:\\s*(.*)$`, 'im');
  const m = re.exec(splitMessage(raw).head);
  return m ? m[1].trim() : '';
}

function cseqMethod(m) {
  const v = m.cseq || header(m.raw, 'CSeq');
  return v ? v.split(/\s+/)[1] || '' : '';
}

/** The method a message belongs to: a request's own, a response's from its CSeq. */
export function methodFamily(m) {
  return statusOf(m) ? cseqMethod(m) || '?' : methodOf(m);
}

// ---- SDP ----

// Static RTP payload types (RFC 3551) that need no rtpmap.
const STATIC_PT = { 0: 'PCMU', 3: 'GSM', 4: 'G723', 8: 'PCMA', 9: 'G722', 18: 'G729', 13: 'CN' };

/** The SDP of a message, summed up: {addr, media: [{type, port, codecs, dir}], text}, or
 *  null when it carries none. Only what a ladder reader checks: where the media goes, with
 *  which codecs, in which direction. */
export function sdpOf(m) {
  const { body } = splitMessage(m.raw);
  const ct = header(m.raw, 'Content-Type', 'c').toLowerCase();
  if (!body.trim() || !(ct.startsWith('application/sdp') || /^v=0\s*$/m.test(body.split(/\r?\n/, 1)[0]))) return null;
  const lines = body.split(/\r?\n/);
  let addr = '', sessionDir = 'sendrecv';
  const media = [];
  let cur = null;
  for (const l of lines) {
    const [k, v = ''] = [l.slice(0, 1), l.slice(2)];
    if (l[1] !== '=') continue;
    if (k === 'm') {
      const [type, port, proto, ...fmts] = v.split(/\s+/);
      cur = { type, port: Number(port), proto, fmts, rtpmap: {}, dir: null, addr: '' };
      media.push(cur);
    } else if (k === 'c') {
      const a = v.split(/\s+/)[2] || '';
      if (cur) cur.addr = a; else addr = a;
    } else if (k === 'a') {
      const d = /^(sendrecv|sendonly|recvonly|inactive)$/.exec(v.trim());
      if (d) { if (cur) cur.dir = d[1]; else sessionDir = d[1]; }
      const r = /^rtpmap:(\d+)\s+([^/\s]+)(?:\/(\d+))?/.exec(v);
      if (r && cur) cur.rtpmap[r[1]] = r[2];
    }
  }
  return {
    addr,
    media: media.map((x) => ({
      type: x.type, port: x.port, addr: x.addr || addr, dir: x.dir || sessionDir,
      codecs: x.fmts.map((f) => x.rtpmap[f] || STATIC_PT[f] || f),
    })),
  };
}

/** What differs between two SDP summaries: {media addr/port, codecs, dir} per media line. */
export function sdpChanges(prev, cur) {
  if (!prev || !cur) return [];
  const out = [];
  cur.media.forEach((mm, i) => {
    const p = prev.media[i];
    if (!p) { out.push({ what: `${mm.type} stream`, was: 'none', now: `${mm.addr}:${mm.port}` }); return; }
    const at = (x) => `${x.addr}:${x.port}`;
    if (at(p) !== at(mm)) out.push({ what: `${mm.type} address`, was: at(p), now: at(mm) });
    if (p.codecs.join(' ') !== mm.codecs.join(' ')) out.push({ what: `${mm.type} codecs`, was: p.codecs.join(', '), now: mm.codecs.join(', ') });
    if (p.dir !== mm.dir) out.push({ what: `${mm.type} direction`, was: p.dir, now: mm.dir });
  });
  return out;
}

function isHold(m) {
  const sdp = sdpOf(m);
  return !!sdp && sdp.media.some((x) => x.dir === 'sendonly' || x.dir === 'inactive' || x.addr === '0.0.0.0');
}

/** Kind of message: req, r1xx, r2xx, rerr. */
export function kindOf(m) {
  const st = statusOf(m);
  if (!st) return 'req';
  if (st < 200) return 'r1xx';
  if (st < 300) return 'r2xx';
  return 'rerr';
}

/** The text on an arrow; a response names its method when it is not mainMethod (the
 *  method of the trace's first request: INVITE for calls, REGISTER for registrations). */
function labelOf(m, mainMethod = 'INVITE') {
  const st = statusOf(m);
  if (st) {
    const phrase = (m.first_line || '').replace(/^SIP\/2\.0\s+\d{3}\s*/, '');
    const cm = cseqMethod(m);
    return `${st} ${phrase}`.trim() + (cm && cm !== mainMethod ? ` (${cm})` : '');
  }
  const meth = methodOf(m);
  if (meth === 'INVITE' && /;\s*tag=/i.test(header(m.raw, 'To', 't'))) return isHold(m) ? 're-INVITE (hold)' : 're-INVITE';
  return meth;
}

function uriUser(firstLine) {
  const r = /^\S+\s+sips?:([^@;>\s]+)@/i.exec(firstLine || '');
  return r ? r[1] : '';
}

function remoteOf(m) { return m.direction === 'in' ? m.src : m.dst; }

/**
 * Works out the parties: the ones that started a transaction towards sipbx (the caller,
 * a registering phone) left of sipbx, the ones sipbx called (callee, forward targets)
 * right of it, each side in the order they first appear. Returns {cols: [{key, role,
 * addr, user, leg}], index: Map(key -> column)}.
 */
function parties(msgs) {
  const left = [], right = [], seen = new Map();
  // per Call-ID (a transfer's calls may be merged in; a party of another call than the
  // first is named with its call's number): whether a 181 went to the caller or a callee
  // failed or was cancelled (forwardedBefore), and whether a callee was called
  const calls = new Map();
  for (const m of msgs) {
    const key = remoteOf(m) || '?';
    const st = statusOf(m);
    if (!calls.has(m.call_id)) calls.set(m.call_id, { n: calls.size + 1, forwardedBefore: false, sawCallee: false });
    const c = calls.get(m.call_id);
    const call = c.n > 1 ? ` (call ${c.n})` : '';
    if (m.direction === 'out' && st === 181) c.forwardedBefore = true;
    if (!seen.has(key)) {
      const meth = methodOf(m);
      const p = { key, addr: key, user: '', transport: m.transport };
      if (m.direction === 'in' && !st) {
        p.role = meth === 'REGISTER' ? 'phone' : call ? 'caller' + call : left.length ? 'caller ' + (left.length + 1) : (meth === 'INVITE' ? 'caller' : 'client');
        p.user = uriUser('X ' + (/<?(sips?:[^>;\s]+)/i.exec(header(m.raw, 'From', 'f')) || [])[1]);
        left.push(p);
      } else {
        if (meth === 'INVITE' && /;vm=(leave|listen)\b/.test(m.first_line)) {
          // sipbx's own voicemail user agent (its Request-URI carries the vm parameters)
          p.role = 'voicemail' + call;
          c.sawCallee = true;
        } else if (meth === 'INVITE') {
          // after a 181 or a failed/cancelled leg a new INVITE is a forward; at the same
          // time as the first one it is another device of the callee (a parallel fork)
          p.role = c.forwardedBefore ? 'forward target' + call : !c.sawCallee ? 'callee' + call : 'callee (fork)' + call;
          c.sawCallee = true;
        } else {
          p.role = 'peer';
        }
        p.user = uriUser(m.first_line);
        right.push(p);
      }
      seen.set(key, p);
    }
    if (m.direction === 'in' && st >= 300 && c.sawCallee) c.forwardedBefore = true;
    if (m.direction === 'out' && methodOf(m) === 'CANCEL') c.forwardedBefore = true;
  }
  const cols = [...left, { key: '@sipbx', role: 'sipbx', addr: sipbxAddr(msgs), user: '', leg: 0 }, ...right];
  let leg = 0;
  for (const c of cols) if (c.role !== 'sipbx') c.leg = (leg++ % LEGS) + 1;
  const index = new Map(cols.map((c, i) => [c.key, i]));
  return { cols, index };
}

function sipbxAddr(msgs) {
  const m = msgs[0];
  if (!m) return '';
  return m.direction === 'in' ? m.dst : m.src;
}

function relTime(m, t0) {
  return `+${((m.time_us - t0) / 1e6).toFixed(3)} s`;
}

/** The time from one message to the next, short: "12 ms", "1.25 s", "2 min 5 s". */
export function fmtDelta(us) {
  if (us < 1000) return `${Math.max(0, Math.round(us))} µs`;
  if (us < 1e6) return `${(us / 1000).toFixed(us < 1e4 ? 1 : 0)} ms`;
  if (us < 60e6) return `${(us / 1e6).toFixed(2)} s`;
  const sec = Math.round(us / 1e6);
  return `${Math.floor(sec / 60)} min ${sec % 60} s`;
}

/**
 * The rows a diagram shows: every message, or with fold the retransmissions counted on
 * the message they repeat; with methods (a Set), only the messages of those methods
 * (requests by their method, responses by their CSeq's). Each row: {m, repeats, sdp,
 * sdpChanged, delta}.
 */
export function ladderRows(msgs, { fold = true, methods = null } = {}) {
  const rows = [];
  const lastSdp = new Map(); // sender -> its previous SDP
  for (const m of msgs) {
    const sdp = sdpOf(m);
    let changes = [];
    if (sdp) {
      const sender = m.direction === 'in' ? m.src : `sipbx>${m.dst}`;
      changes = sdpChanges(lastSdp.get(sender), sdp);
      lastSdp.set(sender, sdp);
    }
    if (methods && !methods.has(methodFamily(m))) continue;
    if (fold && m.retransmission) {
      const orig = [...rows].reverse().find((r) => r.m.direction === m.direction && r.m.src === m.src && r.m.dst === m.dst &&
        r.m.first_line === m.first_line && (r.m.cseq || '') === (m.cseq || ''));
      if (orig) { orig.repeats.push(m); continue; }
    }
    rows.push({ m, repeats: [], sdp, sdpChanges: changes });
  }
  rows.forEach((r, i) => { r.delta = i ? r.m.time_us - rows[i - 1].m.time_us : 0; });
  return rows;
}

/**
 * Draws msgs into {head, body, cols, rows}: two SVGs of the same width (the head stays
 * visible while the body scrolls), the parties, and the rows shown. onSelect(m) is
 * called when an arrow is clicked or opened with Enter; current is the seq of the message
 * the keyboard is on. avail is the width there is: columns share it (at least 96 px each).
 */
export function drawLadder(msgs, { onSelect, selectedSeq, current = null, newFrom = Infinity, avail = 1000, fold = true, methods = null } = {}) {
  const { cols, index } = parties(msgs);
  const rows = ladderRows(msgs, { fold, methods });
  // Columns share the width there is (so every column is seen, also with a message open),
  // within readable bounds.
  const GUTTER = avail < 600 ? 62 : 78;
  const COL_W = Math.round(Math.max(96, Math.min(200, (avail - GUTTER - PAD) / cols.length)));
  const width = GUTTER + cols.length * COL_W + PAD;
  const x = (i) => GUTTER + COL_W * i + COL_W / 2;
  const bodyH = TOP + rows.length * ROW_H + 16;
  const t0 = msgs.length ? msgs[0].time_us : 0;
  const first = msgs.find((m) => !statusOf(m));
  const main = first ? methodOf(first) : 'INVITE';

  const head = s('svg', { class: 'ladder-head', width, height: 50, viewBox: `0 0 ${width} 50`, role: 'img', 'aria-label': `Parties: ${cols.map((c) => c.role + (c.user ? ' ' + c.user : '')).join(', ')}` });
  // A phone's user part can be long (baresip: "102-0x55f036541820"): cut to the box, the
  // whole name in the tooltip.
  const fit = (text, charW) => {
    const room = Math.floor((COL_W - 24) / charW);
    return text.length > room ? text.slice(0, Math.max(3, room - 1)) + '…' : text;
  };
  cols.forEach((c, i) => {
    const name = c.role + (c.user && c.role !== 'sipbx' ? ' ' + c.user : '');
    const addr = c.addr || '';
    head.append(s('g', { class: ['party-head', c.role === 'sipbx' ? 'is-sipbx' : null], dataset: { leg: String(c.leg) } },
      s('title', null, (addr ? `${name}, ${addr}` : name) + (c.transport === 'tls' ? ' over TLS' : '')),
      s('rect', { x: x(i) - COL_W / 2 + 8, y: 4, width: COL_W - 16, height: 38, rx: 6 }),
      c.leg ? s('line', { x1: x(i) - COL_W / 2 + 14, x2: x(i) + COL_W / 2 - 14, y1: 45, y2: 45, class: ['legbar', `leg-${c.leg}`] }) : null,
      s('text', { x: x(i), y: 20, 'text-anchor': 'middle', class: 'role' }, fit(name, ROLE_CHAR_W)),
      s('text', { x: x(i), y: 35, 'text-anchor': 'middle', class: 'addr' }, fit(addr, ADDR_CHAR_W))));
  });

  const body = s('svg', {
    class: 'ladder', width, height: bodyH, viewBox: `0 0 ${width} ${bodyH}`, role: 'listbox', tabindex: 0,
    'aria-label': `Ladder of ${rows.length} SIP messages between ${cols.map((c) => c.role).join(', ')}. Arrow keys move, Enter shows a message, Escape closes it.`,
  });
  body.append(s('g', { 'aria-hidden': 'true' },
    s('defs', null, ['req', 'r1xx', 'r2xx', 'rerr'].map((k) =>
      s('marker', { id: `ah-${k}`, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse', class: `mk-${k}` },
        s('path', { d: 'M0,0 L10,5 L0,10 z' })))),
    cols.map((c, i) => s('line', { x1: x(i), x2: x(i), y1: 0, y2: bodyH, class: ['lifeline', c.role === 'sipbx' ? 'is-sipbx' : null] }))));

  const arrows = [];
  rows.forEach((r, row) => {
    const m = r.m;
    const y = TOP + row * ROW_H + 20;
    const remote = index.get(remoteOf(m) || '?');
    const me = index.get('@sipbx');
    const from = m.direction === 'in' ? remote : me, to = m.direction === 'in' ? me : remote;
    const kind = kindOf(m);
    const retrans = m.retransmission || r.repeats.length > 0;
    const full = labelOf(m, main) + (m.retransmission ? ' ↻' : '') + (r.repeats.length ? ` ×${r.repeats.length + 1}` : '');
    const sdpTag = r.sdp ? (r.sdpChanges.length ? 'SDP Δ' : 'SDP') : '';
    const x1 = x(from), x2 = x(to);
    // one arrow per row: a label may reach past its arrow, but not into the time gutter
    const mid = (x1 + x2) / 2;
    const room = Math.floor((2 * Math.min(mid - GUTTER, width - mid) - 8) / CHAR_W) - (sdpTag ? sdpTag.length + 1 : 0);
    const label = full.length > room ? full.slice(0, Math.max(3, room - 1)).trimEnd() + '…' : full;
    const dir = x2 >= x1 ? 1 : -1;
    const delta = row ? `+${fmtDelta(r.delta)}` : '';
    const leg = cols[remote] ? cols[remote].leg : 0;
    const time = relTime(m, t0);
    // the name starts with what is seen, in the order it is seen (WCAG 2.5.3), then says
    // the rest in words
    const name = [time, label, sdpTag, delta].filter(Boolean).join(' ') +
      `: ${full}${m.retransmission ? ' (retransmission)' : ''}${r.repeats.length ? `, sent ${r.repeats.length + 1} times` : ''}` +
      `${r.sdp ? (r.sdpChanges.length ? ', SDP changed' : ', with SDP') : ''}, from ${cols[from].role} to ${cols[to].role}, message ${row + 1} of ${rows.length}`;
    const g = s('g', {
      id: `msg-${m.seq}`,
      class: ['arrow', `k-${kind}`, retrans ? 'retrans' : null, m.seq === selectedSeq ? 'selected' : null, m.seq === current ? 'current' : null, row >= newFrom ? 'new' : null],
      role: 'option', 'aria-selected': String(m.seq === selectedSeq), 'aria-label': name,
      dataset: { seq: String(m.seq), kind, retrans: m.retransmission ? '1' : '0', repeats: String(r.repeats.length), leg: String(leg), sdp: r.sdp ? (r.sdpChanges.length ? 'changed' : '1') : '0' },
    },
    s('rect', { x: 2, y: y - 20, width: width - 4, height: ROW_H, class: 'row-hit' }),
    leg ? s('rect', { x: 2, y: y - 20, width: 4, height: ROW_H, class: ['legmark', `leg-${leg}`] }) : null,
    // (the spaces between the texts are not drawn; they keep the texts apart as words
    // for whatever reads them, as the accessible name has them)
    s('text', { x: 10, y: y + 4, class: 'time' }, time), ' ',
    s('line', { x1: x1 + dir * 2, x2: x2 - dir * 2, y1: y, y2: y, class: 'shaft', 'marker-end': `url(#ah-${kind})` }),
    s('text', { x: mid, y: y - 6, 'text-anchor': 'middle', class: 'label' }, label), ' ',
    sdpTag ? [s('text', { x: mid + (label.length * CHAR_W) / 2 + 5, y: y - 6, class: 'sdptag' }, sdpTag), ' '] : null,
    delta ? s('text', { x: mid, y: y + 13, 'text-anchor': 'middle', class: 'delta' }, delta) : null,
    label !== full ? s('title', null, full) : null);
    g.addEventListener('click', () => { setCurrent(row); onSelect && onSelect(m); });
    arrows.push(g);
    body.append(g);
  });

  let cur = Math.max(0, rows.findIndex((r) => r.m.seq === current));
  // scroll: bring the arrow into view (keyboard moves; not on focus, which a mouse press
  // also gives, and a scroll between its press and release would lose the click)
  function setCurrent(i, scroll = false) {
    if (!arrows.length) return;
    cur = Math.max(0, Math.min(arrows.length - 1, i));
    for (const a of arrows) a.classList.remove('current');
    arrows[cur].classList.add('current');
    body.setAttribute('aria-activedescendant', arrows[cur].id);
    if (scroll) arrows[cur].scrollIntoView({ block: 'nearest' });
  }
  if (arrows.length) body.setAttribute('aria-activedescendant', arrows[cur].id);
  body.addEventListener('focus', () => setCurrent(cur));
  body.addEventListener('keydown', (ev) => {
    const step = { ArrowDown: 1, ArrowUp: -1, PageDown: 10, PageUp: -10 }[ev.key];
    if (step) { ev.preventDefault(); setCurrent(cur + step, true); } else if (ev.key === 'Home') { ev.preventDefault(); setCurrent(0, true); } else if (ev.key === 'End') { ev.preventDefault(); setCurrent(arrows.length - 1, true); } else if ((ev.key === 'Enter' || ev.key === ' ') && rows[cur]) { ev.preventDefault(); onSelect && onSelect(rows[cur].m); }
  });
  return { head, body, cols, rows, current: () => (rows[cur] ? rows[cur].m.seq : null) };
}

/** How a message travelled: UDP or TCP as such; TLS with a lock, and a word that what is
 *  shown is the message as sipbx decrypted it (or before it encrypted it). */
function transportView(transport) {
  const name = (transport || '').toUpperCase();
  if (transport !== 'tls') return name;
  const lock = s('svg', { class: 'lock', viewBox: '0 0 16 16', width: 12, height: 12, 'aria-hidden': 'true', focusable: 'false' },
    s('path', { d: 'M5 7.5V5a3 3 0 0 1 6 0v2.5', fill: 'none', stroke: 'currentColor', 'stroke-width': 1.8 }),
    s('rect', { x: 2.5, y: 7, width: 11, height: 8, rx: 1.5, fill: 'currentColor' }));
  return [h('span', { class: 'tls-mark', title: 'SIP over TLS: encrypted on the wire' }, lock, name),
    h('span', { class: 'muted' }, ' (encrypted on the wire; shown as sipbx decrypted it)')];
}

/** The whole message as text, header names set apart and SDP lines (media address,
 *  codecs, direction) marked; its SDP summed up above it, with what changed since the
 *  sender's previous SDP (prevSdp). Nothing is parsed as markup. */
export function messageView(m, t0, { sdp = null, changes = [] } = {}) {
  const raw = m.raw || '';
  const { head: headPart, body } = splitMessage(raw);
  const lines = headPart.split(/\r?\n/);
  const changed = new Set(changes.map((c) => c.what.split(' ').pop()));
  const sdpLine = (l) => {
    if (/^c=/.test(l)) return changed.has('address') ? 'changed' : 'key';
    if (/^m=/.test(l)) return changed.has('address') || changed.has('codecs') || changed.has('stream') ? 'changed' : 'key';
    if (/^a=(sendrecv|sendonly|recvonly|inactive)\s*$/.test(l)) return changed.has('direction') ? 'changed' : 'key';
    if (/^a=rtpmap:/.test(l)) return changed.has('codecs') ? 'changed' : 'key';
    return null;
  };
  const bodyNodes = body ? (sdp ? body.split(/\r?\n/).map((l) => {
    const k = sdpLine(l);
    return [k ? h('span', { class: ['sdp-line', k === 'changed' ? 'changed' : null] }, l) : l, '\n'];
  }) : body) : null;
  const pre = h('pre', { class: 'sipmsg', tabindex: 0 },
    h('span', { class: 'first' }, lines[0]), '\n',
    lines.slice(1).map((l) => {
      const i = l.indexOf(':');
      return i > 0 ? [h('span', { class: 'hname' }, l.slice(0, i)), l.slice(i), '\n'] : [l, '\n'];
    }),
    bodyNodes ? ['\n', h('span', { class: 'body' }, bodyNodes)] : null);
  const meta = h('dl', { class: 'kv small' },
    h('dt', null, 'Message'), h('dd', null, `#${m.seq}${m.retransmission ? ' (retransmission)' : ''}`),
    h('dt', null, 'Time'), h('dd', null, `${new Date(m.time_us / 1000).toLocaleString(undefined, { hour12: false })}.${String(Math.floor((m.time_us % 1e6) / 1e3)).padStart(3, '0')} (${relTime(m, t0)})`),
    h('dt', null, 'Direction'), h('dd', null, m.direction === 'in' ? `received from ${m.src}` : `sent to ${m.dst}`, ' over ', transportView(m.transport)),
    h('dt', null, 'Size'), h('dd', null, `${new TextEncoder().encode(raw).length} bytes`));
  const sdpBox = sdp ? h('section', { class: 'sdp-box', 'aria-label': 'SDP' },
    h('h3', null, 'SDP', changes.length ? h('span', { class: 'chg' }, ` changed: ${changes.map((c) => c.what).join(', ')}`) : null),
    h('dl', { class: 'kv small' }, sdp.media.map((mm) => {
      const ch = (what) => changes.find((c) => c.what === `${mm.type} ${what}`);
      const val = (what, v) => [v, ch(what) ? h('span', { class: 'was', title: 'before' }, ch(what).was) : null];
      return [
        h('dt', null, `${mm.type} to`), h('dd', { class: 'mono' }, val('address', `${mm.addr}:${mm.port}`)),
        h('dt', null, 'codecs'), h('dd', null, val('codecs', mm.codecs.join(', '))),
        h('dt', null, 'direction'), h('dd', null, val('direction', mm.dir)),
      ];
    }))) : null;
  return h('div', null, meta, sdpBox, pre);
}

// ---- export as a file ----

/** The CSS a diagram needs outside the page, with the colours the page shows now. */
function exportStyle() {
  const cs = getComputedStyle(document.documentElement);
  const v = (n) => cs.getPropertyValue(n).trim();
  const legs = Array.from({ length: LEGS }, (_, i) => `.leg-${i + 1}{stroke:${v(`--leg-${i + 1}`)};fill:${v(`--leg-${i + 1}`)}}`).join('');
  return `text{font-family:system-ui,"Noto Sans","Liberation Sans",sans-serif}` +
    `.party-head rect{fill:${v('--hover')};stroke:${v('--field-line')}}.party-head.is-sipbx rect{fill:${v('--accent-bg')};stroke:${v('--accent-line')}}` +
    `.party-head .role{font-weight:700;font-size:12.5px;fill:${v('--fg')}}.party-head .addr,.time,.delta{font-family:ui-monospace,Menlo,Consolas,monospace;fill:${v('--muted')}}` +
    `.party-head .addr{font-size:11px}.legbar{stroke-width:4}.lifeline{stroke:${v('--line')};stroke-width:1.5}.lifeline.is-sipbx{stroke:${v('--accent-line')};stroke-width:2.5}` +
    `.row-hit{fill:transparent}.shaft{stroke-width:2}.label{font-size:12px;font-weight:600}.time{font-size:11px}.delta{font-size:10.5px}` +
    `.sdptag{font-size:10px;font-weight:700;fill:${v('--sdp')}}` +
    ['req', 'r1xx', 'r2xx', 'rerr'].map((k) => `.k-${k} .shaft{stroke:${v('--' + k)}}.k-${k} .label{fill:${v('--' + k)}}.mk-${k}{fill:${v('--' + k)}}`).join('') +
    `.retrans .shaft{stroke-dasharray:5 4}` + legs;
}

/** The diagram (head and body) as one standalone SVG document. */
export function ladderSvg(head, body) {
  const w = Number(body.getAttribute('width')), hh = Number(head.getAttribute('height')), bh = Number(body.getAttribute('height'));
  const bg = getComputedStyle(document.documentElement).getPropertyValue('--card').trim() || '#fff';
  const out = s('svg', { xmlns: 'http://www.w3.org/2000/svg', width: w, height: hh + bh, viewBox: `0 0 ${w} ${hh + bh}` },
    s('style', null, exportStyle()),
    s('rect', { x: 0, y: 0, width: w, height: hh + bh, fill: bg }));
  const part = (svg, dy) => {
    const g = s('g', { transform: `translate(0 ${dy})` });
    for (const n of svg.childNodes) g.append(n.cloneNode(true));
    g.querySelectorAll('.selected, .current').forEach((e) => e.classList.remove('selected', 'current'));
    return g;
  };
  out.append(part(head, 0), part(body, hh));
  return '<?xml version="1.0" encoding="UTF-8"?>\n' + new XMLSerializer().serializeToString(out);
}

/** The SVG text drawn into a PNG (twice the size, for sharp text); resolves a Blob. */
export function svgToPng(svgText, width, height, scale = 2) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => {
      const c = document.createElement('canvas');
      c.width = Math.ceil(width * scale);
      c.height = Math.ceil(height * scale);
      const ctx = c.getContext('2d');
      ctx.scale(scale, scale);
      ctx.drawImage(img, 0, 0);
      c.toBlob((b) => (b ? resolve(b) : reject(new Error('the browser could not make a PNG'))), 'image/png');
    };
    img.onerror = () => reject(new Error('the browser could not draw the SVG'));
    img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(svgText);
  });
}
