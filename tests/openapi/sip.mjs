// A small SIP phone over UDP on loopback, enough to give the API something to show: it
// registers with digest authentication, places calls (answering the 407 challenge), and
// takes calls: rings, then answers or keeps ringing until cancelled. RtpPeer is the little
// RTP (G.711 mu-law) a call to voicemail needs to leave a message. Node built-ins only.

import crypto from 'node:crypto';
import dgram from 'node:dgram';

const HOST = '127.0.0.1';
const SDP = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n' +
  'm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';

const rand = (n = 8) => crypto.randomBytes(n).toString('hex');
const md5 = (s) => crypto.createHash('md5').update(s).digest('hex');

/** A parsed SIP message. */
class Msg {
  constructor(text) {
    const [head, body = ''] = text.split('\r\n\r\n', 2);
    const lines = head.split('\r\n');
    this.first = lines[0];
    this.body = body;
    this.headers = [];
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) this.headers.push([l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim()]);
    }
    const m = /^SIP\/2\.0 (\d{3})/.exec(this.first);
    this.status = m ? Number(m[1]) : 0;
    this.method = m ? null : this.first.split(' ')[0];
  }

  get(name) { const h = this.headers.find(([n]) => n === name.toLowerCase()); return h ? h[1] : null; }
  all(name) { return this.headers.filter(([n]) => n === name.toLowerCase()).map(([, v]) => v); }
  tag(name) { const m = /;tag=([^;>\s]+)/.exec(this.get(name) || ''); return m ? m[1] : null; }
  get branch() { const m = /branch=([^;,\s]+)/.exec(this.get('via') || ''); return m ? m[1] : null; }
}

function challenge(value) {
  const out = {};
  for (const m of value.replace(/^Digest\s+/i, '').matchAll(/(\w+)=(?:"([^"]*)"|([^\s,]+))/g)) out[m[1]] = m[2] ?? m[3];
  return out;
}

export class Phone {
  /** mode: 'answer' (180, then 200), 'ring' (180 only, until a CANCEL) */
  constructor(sipPort, ext, password, mode = 'answer') {
    Object.assign(this, { sipPort, ext, password, mode, tag: rand(), waiters: [], received: [] });
    this.domain = HOST;
  }

  async start(source = HOST) {
    this.host = source;
    this.sock = dgram.createSocket('udp4');
    await new Promise((r) => this.sock.bind(0, source, r));
    this.port = this.sock.address().port;
    this.sock.on('message', (buf) => this.onMessage(new Msg(buf.toString('latin1'))));
    return this;
  }

  close() { try { this.sock.close(); } catch { /* closed */ } }

  send(text) { this.sock.send(Buffer.from(text, 'latin1'), this.sipPort, HOST); }

  onMessage(m) {
    this.received.push(m);
    for (const w of [...this.waiters]) {
      if (w.pred(m)) { this.waiters.splice(this.waiters.indexOf(w), 1); clearTimeout(w.timer); w.resolve(m); }
    }
    if (m.method) this.onRequest(m);
  }

  /** The next message for which pred holds (one already received counts). */
  wait(pred, ms = 5000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.waiters.splice(this.waiters.indexOf(w), 1); reject(new Error(`phone ${this.ext}: nothing came within ${ms} ms`)); }, ms);
      timer.unref(); // the socket keeps the process alive, not a wait that is moot
      const w = { pred, resolve, timer };
      this.waiters.push(w);
    });
  }

  via(branch) { return `Via: SIP/2.0/UDP ${this.host}:${this.port};rport;branch=${branch}`; }
  get aor() { return `sip:${this.ext}@${this.domain}`; }
  get contact() { return `Contact: <sip:${this.ext}@${this.host}:${this.port}>`; }

  request(method, ruri, { to, callId, cseq, toTag, extra = [], body = '', branch = 'z9hG4bK' + rand(), contact = true }) {
    const lines = [`${method} ${ruri} SIP/2.0`, this.via(branch), 'Max-Forwards: 70',
      `From: <${this.aor}>;tag=${this.tag}`, `To: <${to}>${toTag ? ';tag=' + toTag : ''}`,
      `Call-ID: ${callId}`, `CSeq: ${cseq} ${method}`, ...(contact ? [this.contact] : []), ...extra];
    if (body) lines.push('Content-Type: application/sdp');
    lines.push(`Content-Length: ${Buffer.byteLength(body)}`, '', body);
    return { text: lines.join('\r\n'), branch };
  }

  /** Sends a request (again every 500 ms until an answer comes: UDP may lose it) and
   *  returns its final response. */
  async transact(req, ms = 8000) {
    const done = this.wait((m) => m.status >= 200 && m.branch === req.branch, ms);
    const timer = setInterval(() => this.send(req.text), 500);
    this.wait((m) => m.status > 0 && m.branch === req.branch, ms).then(() => clearInterval(timer), () => {});
    this.send(req.text);
    try { return await done; } finally { clearInterval(timer); }
  }

  auth(header, ch, method, uri) {
    const ha1 = md5(`${this.ext}:${ch.realm}:${this.password}`);
    const ha2 = md5(`${method}:${uri}`);
    const cnonce = rand(4);
    const qop = ch.qop ? ', qop=auth, nc=00000001, cnonce="' + cnonce + '"' : '';
    const resp = ch.qop ? md5(`${ha1}:${ch.nonce}:00000001:${cnonce}:auth:${ha2}`) : md5(`${ha1}:${ch.nonce}:${ha2}`);
    return `${header}: Digest username="${this.ext}", realm="${ch.realm}", nonce="${ch.nonce}", uri="${uri}", response="${resp}", algorithm=MD5${qop}`;
  }

  /** REGISTER, answering the challenge with the phone's password; the final response
   *  (a 401 when the password is wrong). Rejects when sipbx does not answer. */
  async register() {
    const callId = rand() + '@reg';
    const uri = `sip:${this.domain}`;
    let extra = [], r;
    for (let cseq = 1; cseq <= 2; cseq++) {
      r = await this.transact(this.request('REGISTER', uri, { to: this.aor, callId, cseq, extra: [...extra, 'Expires: 300'] }), 3000);
      if (r.status !== 401) return r;
      extra = [this.auth('Authorization', challenge(r.get('www-authenticate')), 'REGISTER', uri)];
    }
    return r;
  }

  /** An INVITE to ext (with the header lines headers, e.g. a Replaces; sdp the offer),
   *  authenticated; resolves with { status, dialog, sdp } once final (sdp: the answer's). */
  async invite(ext, headers = [], sdp = SDP) {
    const callId = rand() + '@call';
    const to = `sip:${ext}@${this.domain}`;
    let extra = [];
    for (let cseq = 1; cseq <= 2; cseq++) {
      const req = this.request('INVITE', to, { to, callId, cseq, extra: [...headers, ...extra], body: sdp });
      const r = await this.transact(req, 20000);
      if (r.status >= 300) {
        // a non-2xx final is acknowledged hop by hop, on the INVITE's branch
        this.send(this.request('ACK', to, { to, callId, cseq, toTag: r.tag('to'), branch: req.branch, contact: false }).text);
      }
      if (r.status === 407) {
        extra = [this.auth('Proxy-Authorization', challenge(r.get('proxy-authenticate')), 'INVITE', to)];
        continue;
      }
      const dialog = { callId, to, toTag: r.tag('to'), cseq, route: r.all('record-route').reverse(),
        target: (/<([^>]+)>/.exec(r.get('contact') || '') || [])[1] };
      if (r.status === 200) this.inDialog(dialog, 'ACK', cseq);
      return { status: r.status, dialog, sdp: r.body };
    }
    throw new Error('INVITE challenged twice');
  }

  /** An in-dialog request along the dialog's route; the final response (none for ACK). */
  async inDialog(d, method, cseq) {
    if (cseq === undefined) cseq = ++d.cseq;
    const req = this.request(method, d.target, { to: d.to, callId: d.callId, cseq, toTag: d.toTag,
      extra: d.route.map((r) => `Route: ${r}`), contact: method !== 'BYE' });
    if (method === 'ACK') { this.send(req.text); return null; }
    return this.transact(req);
  }

  reply(req, status, reason, extra = [], body = '') {
    let to = req.get('to');
    if (status > 100 && !/;tag=/.test(to)) to += ';tag=' + this.tag;
    const lines = [`SIP/2.0 ${status} ${reason}`, ...req.all('via').map((v) => `Via: ${v}`),
      `From: ${req.get('from')}`, `To: ${to}`, `Call-ID: ${req.get('call-id')}`, `CSeq: ${req.get('cseq')}`, ...extra];
    if (body) lines.push('Content-Type: application/sdp');
    lines.push(`Content-Length: ${Buffer.byteLength(body)}`, '', body);
    this.send(lines.join('\r\n'));
  }

  onRequest(req) {
    const rr = req.all('record-route').map((r) => `Record-Route: ${r}`);
    if (req.method === 'ACK') return;
    if (req.method === 'INVITE' && !req.tag('to')) {
      this.reply(req, 180, 'Ringing', [...rr, this.contact]);
      if (this.mode === 'answer') this.reply(req, 200, 'OK', [...rr, this.contact], SDP);
      else this.ringing = req;
      return;
    }
    if (req.method === 'CANCEL') {
      this.reply(req, 200, 'OK');
      if (this.ringing) this.reply(this.ringing, 487, 'Request Terminated', rr);
      this.ringing = null;
      return;
    }
    this.reply(req, 200, 'OK', req.method === 'INVITE' ? [...rr, this.contact] : [], req.method === 'INVITE' ? SDP : '');
  }
}

/** G.711 mu-law of a 16-bit sample (ITU-T G.711, as sipbx's server/audio). */
function ulaw(x) {
  let s = Math.max(-32635, Math.min(32635, Math.round(x)));
  const sign = s < 0 ? 0x80 : 0;
  if (sign) s = -s - 1; // G.191's reference code, as sipbx
  s += 0x84;
  let exp = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exp > 0; exp--, mask >>= 1);
  return ~(sign | (exp << 4) | ((s >> (exp + 3)) & 0x0f)) & 0xff;
}

/** The 16-bit sample of a mu-law code. */
function unulaw(c) {
  const u = ~c & 0xff;
  const t = (((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
  return u & 0x80 ? 0x84 - t : t - 0x84;
}

/** One RTP endpoint on loopback for a call: it offers PCMU and telephone-event, records
 *  what the other side sends and sends audio back, 20 ms a packet, in real time. */
export class RtpPeer {
  async start() {
    this.sock = dgram.createSocket('udp4');
    await new Promise((r) => this.sock.bind(0, HOST, r));
    this.port = this.sock.address().port;
    this.packets = []; // { pt, seq, ts, payload }
    this.sock.on('message', (b) => {
      if (b.length >= 12 && b[0] >> 6 === 2) this.packets.push({ pt: b[1] & 0x7f, seq: b.readUInt16BE(2), ts: b.readUInt32BE(4), payload: b.subarray(12) });
    });
    return this;
  }

  /** The SDP offer of this endpoint. */
  get sdp() {
    return 'v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n' +
      `m=audio ${this.port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n` +
      'a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n';
  }

  /** Where to send: the address and port of the SDP answer. */
  answer(sdp) {
    this.remote = { host: /^c=IN IP4 (\S+)/m.exec(sdp)[1], port: Number(/^m=audio (\d+)/m.exec(sdp)[1]) };
  }

  /** The loudest sample of each PCMU packet received, in order. */
  levels() {
    return this.packets.filter((p) => p.pt === 0).map((p) => Math.max(...[...p.payload].map((c) => Math.abs(unulaw(c)))));
  }

  /** True once the other side sent something loud (a greeting, a tone) and then quiet
   *  packets of silence after it (voicemail: it records now). */
  quietAfterSound(quiet) {
    const lv = this.levels();
    const last = lv.findLastIndex((x) => x >= 1000);
    return last >= 0 && lv.length - 1 - last >= quiet && lv.slice(last + 1).every((x) => x < 100);
  }

  /** Sends samples as PCMU, a packet every 20 ms. */
  async send(samples) {
    this.seq = this.seq ?? 1000;
    this.ts = this.ts ?? 8000;
    this.ssrc = this.ssrc ?? crypto.randomBytes(4).readUInt32BE(0);
    for (let i = 0; i < samples.length; i += 160) {
      const b = Buffer.alloc(12 + 160, 0xff);
      b[0] = 0x80;
      b[1] = i === 0 ? 0x80 : 0; // the marker on the first packet of a talkspurt
      b.writeUInt16BE(this.seq++ & 0xffff, 2);
      b.writeUInt32BE(this.ts >>> 0, 4);
      b.writeUInt32BE(this.ssrc, 8);
      for (let j = 0; j < 160 && i + j < samples.length; j++) b[12 + j] = ulaw(samples[i + j]);
      this.ts += 160;
      this.sock.send(b, this.remote.port, this.remote.host);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close() { try { this.sock.close(); } catch { /* closed */ } }
}
