// Ladder (sequence) diagrams of captured SIP messages, drawn as SVG: one column per party,
// one arrow per message, labelled with the method or status and the time since the first
// message. Requests, 1xx, 2xx, errors and retransmissions each have their own look.

import { s, h } from './dom.js';

const ROW_H = 30, TOP = 8, PAD = 20, CHAR_W = 7; // CHAR_W: about one character of a label
const ROLE_CHAR_W = 7.6, ADDR_CHAR_W = 6.7; // the same for a party's name and address

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

/** A header's value from the raw text (first occurrence; compact forms too). */
function header(raw, name, compact) {
  const re = new RegExp(`^(?:${name}${compact ? '|' + compact : ''})\\s*:\\s*(.*)$`, 'im');
  const head = (raw || '').split(/\r?\n\r?\n/, 1)[0];
  const m = re.exec(head);
  return m ? m[1].trim() : '';
}

function cseqMethod(m) {
  const v = header(m.raw, 'CSeq');
  return v ? v.split(/\s+/)[1] || '' : '';
}

function isHold(raw) {
  const body = (raw || '').split(/\r?\n\r?\n/).slice(1).join('\n');
  return /^a=(sendonly|inactive)\s*$/m.test(body) || /^c=IN IP4 0\.0\.0\.0\s*$/m.test(body);
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
  if (meth === 'INVITE' && /;\s*tag=/i.test(header(m.raw, 'To', 't'))) return isHold(m.raw) ? 're-INVITE (hold)' : 're-INVITE';
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
 * right of it. Returns {cols: [{key, role, addr, user}], index: Map(key -> column)}.
 */
function parties(msgs) {
  const left = [], right = [], seen = new Map();
  let forwardedBefore = false; // a 181 went to the caller, or a callee failed/was cancelled
  let sawCallee = false;
  for (const m of msgs) {
    const key = remoteOf(m) || '?';
    const st = statusOf(m);
    if (m.direction === 'out' && st === 181) forwardedBefore = true;
    if (!seen.has(key)) {
      const meth = methodOf(m);
      const p = { key, addr: key, user: '' };
      if (m.direction === 'in' && !st) {
        p.role = meth === 'REGISTER' ? 'phone' : left.length ? 'caller ' + (left.length + 1) : (meth === 'INVITE' ? 'caller' : 'client');
        p.user = uriUser('X ' + (/<?(sips?:[^>;\s]+)/i.exec(header(m.raw, 'From', 'f')) || [])[1]);
        left.push(p);
      } else {
        if (meth === 'INVITE') {
          // after a 181 or a failed/cancelled leg a new INVITE is a forward; at the same
          // time as the first one it is another device of the callee (a parallel fork)
          p.role = forwardedBefore ? 'forward target' : !sawCallee ? 'callee' : 'callee (fork)';
          sawCallee = true;
        } else {
          p.role = 'peer';
        }
        p.user = uriUser(m.first_line);
        right.push(p);
      }
      seen.set(key, p);
    }
    if (m.direction === 'in' && st >= 300 && sawCallee) forwardedBefore = true;
    if (m.direction === 'out' && methodOf(m) === 'CANCEL') forwardedBefore = true;
  }
  const cols = [...left, { key: '@sipbx', role: 'sipbx', addr: sipbxAddr(msgs), user: '' }, ...right];
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

/**
 * Draws msgs into {head, body, cols}: two SVGs of the same width (the head stays visible
 * while the body scrolls) and the parties. onSelect(m) is called when an arrow is clicked
 * or activated.
 */
export function drawLadder(msgs, { onSelect, selectedSeq, newFrom = Infinity, avail = 1000 } = {}) {
  const { cols, index } = parties(msgs);
  // Columns share the width there is (so a phone scrolls little), within readable bounds.
  const GUTTER = avail < 600 ? 62 : 78;
  const COL_W = Math.round(Math.max(120, Math.min(200, (avail - GUTTER - PAD) / cols.length)));
  const width = GUTTER + cols.length * COL_W + PAD;
  const x = (i) => GUTTER + COL_W * i + COL_W / 2;
  const bodyH = TOP + msgs.length * ROW_H + 16;
  const t0 = msgs.length ? msgs[0].time_us : 0;
  const first = msgs.find((m) => !statusOf(m));
  const main = first ? methodOf(first) : 'INVITE';

  const head = s('svg', { class: 'ladder-head', width, height: 46, viewBox: `0 0 ${width} 46`, role: 'presentation' });
  // A phone's user part can be long (baresip: "102-0x55f036541820"): cut to the box, the
  // whole name in the tooltip.
  const fit = (text, charW) => {
    const room = Math.floor((COL_W - 24) / charW);
    return text.length > room ? text.slice(0, Math.max(3, room - 1)) + '…' : text;
  };
  cols.forEach((c, i) => {
    const name = c.role + (c.user && c.role !== 'sipbx' ? ' ' + c.user : '');
    const addr = c.addr || '';
    head.append(s('g', { class: ['party-head', c.role === 'sipbx' ? 'is-sipbx' : null] },
      s('title', null, addr ? `${name}, ${addr}` : name),
      s('rect', { x: x(i) - COL_W / 2 + 8, y: 4, width: COL_W - 16, height: 38, rx: 6 }),
      s('text', { x: x(i), y: 20, 'text-anchor': 'middle', class: 'role' }, fit(name, ROLE_CHAR_W)),
      s('text', { x: x(i), y: 35, 'text-anchor': 'middle', class: 'addr' }, fit(addr, ADDR_CHAR_W))));
  });

  const body = s('svg', { class: 'ladder', width, height: bodyH, viewBox: `0 0 ${width} ${bodyH}`, 'aria-label': `Ladder of ${msgs.length} SIP messages between ${cols.map((c) => c.role).join(', ')}` });
  body.append(s('defs', null, ['req', 'r1xx', 'r2xx', 'rerr'].map((k) =>
    s('marker', { id: `ah-${k}`, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse', class: `mk-${k}` },
      s('path', { d: 'M0,0 L10,5 L0,10 z' })))));
  cols.forEach((c, i) => body.append(s('line', { x1: x(i), x2: x(i), y1: 0, y2: bodyH, class: ['lifeline', c.role === 'sipbx' ? 'is-sipbx' : null] })));

  const arrows = [];
  msgs.forEach((m, row) => {
    const y = TOP + row * ROW_H + 20;
    const remote = index.get(remoteOf(m) || '?');
    const me = index.get('@sipbx');
    const from = m.direction === 'in' ? remote : me, to = m.direction === 'in' ? me : remote;
    const kind = kindOf(m);
    const full = labelOf(m, main) + (m.retransmission ? ' ↻' : '');
    const x1 = x(from), x2 = x(to);
    // one arrow per row: a label may reach past its arrow, but not into the time gutter
    const mid = (x1 + x2) / 2;
    const room = Math.floor((2 * Math.min(mid - GUTTER, width - mid) - 8) / CHAR_W);
    const label = full.length > room ? full.slice(0, Math.max(3, room - 1)).trimEnd() + '…' : full;
    const dir = x2 >= x1 ? 1 : -1;
    const g = s('g', {
      class: ['arrow', `k-${kind}`, m.retransmission ? 'retrans' : null, m.seq === selectedSeq ? 'selected' : null, row >= newFrom ? 'new' : null],
      tabindex: 0, role: 'button', dataset: { seq: String(m.seq), kind, retrans: m.retransmission ? '1' : '0' },
      'aria-label': `${row + 1}: ${full}${m.retransmission ? ' (retransmission)' : ''} from ${cols[from].role} to ${cols[to].role}, ${relTime(m, t0)}`,
    },
    s('rect', { x: 2, y: y - 18, width: width - 4, height: ROW_H, class: 'row-hit' }),
    s('text', { x: 4, y: y + 4, class: 'time' }, relTime(m, t0)),
    s('line', { x1: x1 + dir * 2, x2: x2 - dir * 2, y1: y, y2: y, class: 'shaft', 'marker-end': `url(#ah-${kind})` }),
    s('text', { x: mid, y: y - 5, 'text-anchor': 'middle', class: 'label' }, label),
    label !== full ? s('title', null, full) : null);
    g.addEventListener('click', () => onSelect && onSelect(m));
    g.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); onSelect && onSelect(m); }
      else if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
        ev.preventDefault();
        const n = arrows[row + (ev.key === 'ArrowDown' ? 1 : -1)];
        if (n) n.focus();
      }
    });
    arrows.push(g);
    body.append(g);
  });
  return { head, body, cols };
}

/** The whole message as text, header names set apart; nothing parsed as markup. */
export function messageView(m, t0) {
  const raw = m.raw || '';
  const [headPart, ...rest] = raw.split(/\r?\n\r?\n/);
  const lines = headPart.split(/\r?\n/);
  const pre = h('pre', { class: 'sipmsg', tabindex: 0 },
    h('span', { class: 'first' }, lines[0]), '\n',
    lines.slice(1).map((l) => {
      const i = l.indexOf(':');
      return i > 0 ? [h('span', { class: 'hname' }, l.slice(0, i)), l.slice(i), '\n'] : [l, '\n'];
    }),
    rest.length ? ['\n', h('span', { class: 'body' }, rest.join('\r\n\r\n'))] : null);
  const meta = h('dl', { class: 'kv small' },
    h('dt', null, 'Message'), h('dd', null, `#${m.seq}${m.retransmission ? ' (retransmission)' : ''}`),
    h('dt', null, 'Time'), h('dd', null, `${new Date(m.time_us / 1000).toLocaleString(undefined, { hour12: false })}.${String(Math.floor((m.time_us % 1e6) / 1e3)).padStart(3, '0')} (${relTime(m, t0)})`),
    h('dt', null, 'Direction'), h('dd', null, m.direction === 'in' ? `received from ${m.src}` : `sent to ${m.dst}`, ` over ${(m.transport || '').toUpperCase()}`),
    h('dt', null, 'Size'), h('dd', null, `${new TextEncoder().encode(raw).length} bytes`));
  return h('div', null, meta, pre);
}
