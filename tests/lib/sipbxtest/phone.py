"""Raw SIP phones for the tests: an honest phone (registers, calls, answers) and the pieces an
attacker crafts requests from. Standard library only; UDP, TCP or TLS on loopback.

A Phone keeps every message it received, so a test can assert what reached it (and, for an
"evil" listener, that nothing did).
"""

import hashlib
import random
import re
import socket
import ssl
import threading
import time

HOST = "127.0.0.1"


def rand(n=16):
    return "%0*x" % (n, random.getrandbits(4 * n))


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def parse_challenge(value):
    assert value and value.startswith("Digest "), "no Digest challenge: %r" % value
    return {m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
            for m in re.finditer(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', value[7:])}


def digest(user, password, chal, method, uri, nc=1, cnonce=None):
    """An Authorization / Proxy-Authorization value (qop=auth) answering chal."""
    cnonce = cnonce or rand(8)
    ha1 = md5("%s:%s:%s" % (user, chal["realm"], password))
    ha2 = md5("%s:%s" % (method, uri))
    resp = md5("%s:%s:%08x:%s:auth:%s" % (ha1, chal["nonce"], nc, cnonce, ha2))
    return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", '
            'algorithm=MD5, cnonce="%s", qop=auth, nc=%08x'
            % (user, chal["realm"], chal["nonce"], uri, resp, cnonce, nc))


class Msg:
    """A parsed SIP message: first line, headers (in order), body."""

    def __init__(self, raw, source=None):
        self.raw = raw
        self.source = source
        self.at = time.monotonic()  # when it arrived
        head, _, self.body = raw.partition("\r\n\r\n")
        lines = head.split("\r\n")
        self.first = lines[0]
        self.headers = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and self.headers:
                n, v = self.headers[-1]
                self.headers[-1] = (n, v + " " + line.strip())
            elif ":" in line:
                n, v = line.split(":", 1)
                self.headers.append((n.strip().lower(), v.strip()))
        m = re.match(r"SIP/2\.0 (\d{3})", self.first)
        parts = self.first.split(" ")
        self.status = int(m.group(1)) if m else None
        self.method = parts[0] if not m and len(parts) == 3 else None
        self.ruri = parts[1] if self.method else None

    def get(self, name):
        vals = self.all(name)
        return vals[0] if vals else None

    def all(self, name):
        out = []
        for n, v in self.headers:
            if n == name.lower():
                out += [x.strip() for x in re.split(r",(?=\s*<)", v)]
        return out

    def tag(self, header):
        m = re.search(r";tag=([^;>\s]+)", self.get(header) or "")
        return m.group(1) if m else None

    @property
    def cseq(self):
        return self.get("CSeq")

    def __repr__(self):
        return self.raw


class Endpoint:
    """A socket on loopback that sends SIP and collects whatever arrives, in a thread."""

    def __init__(self, server_port, transport="udp", host=HOST, port=0, cafile=None):
        """transport udp, tcp or tls (a TLS connection to server_port; cafile: the server's
        certificate to verify it with, else it is not verified)."""
        self.server = (HOST, server_port)
        self.transport = transport
        self.host = host
        if transport == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind((host, port))
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind((host, port))
            self.sock.connect(self.server)
            if transport == "tls":
                ctx = ssl.create_default_context(cafile=cafile) if cafile else \
                    ssl._create_unverified_context()
                ctx.check_hostname = False
                self.sock = ctx.wrap_socket(self.sock)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.cond = threading.Condition()
        self.closed = False
        self.handler = None  # fn(endpoint, Msg): answers requests when set
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def close(self):
        """Stops the reader thread before the socket goes: with TLS its SSL object keeps the
        descriptor's number, and a reader still running after close() could write the old
        connection's close_notify into a new socket that got the same number."""
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout=2)
        self.sock.close()

    def send(self, text, to=None):
        data = text.encode() if isinstance(text, str) else text
        if self.transport == "udp":
            self.sock.sendto(data, to or self.server)
        else:
            self.sock.sendall(data)

    def _loop(self):
        buf = b""
        while not self.closed:
            try:
                if self.transport == "udp":
                    data, src = self.sock.recvfrom(70000)
                    msgs = [(data, src)]
                else:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                    msgs = []
                    while True:
                        buf = buf.lstrip(b"\r\n")
                        m = re.search(rb"\r\n\r\n", buf)
                        if not m:
                            break
                        cl = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", buf[:m.end()])
                        total = m.end() + (int(cl.group(1)) if cl else 0)
                        if len(buf) < total:
                            break
                        msgs.append((buf[:total], self.server))
                        buf = buf[total:]
            except OSError:
                return
            for data, src in msgs:
                if not data.strip():
                    continue  # a keep-alive, or the socket being shut down
                msg = Msg(data.decode(errors="replace"), src)
                with self.cond:
                    self.received.append(msg)
                    self.cond.notify_all()
                if self.handler and msg.method:
                    self.handler(self, msg)

    def wait(self, pred, timeout=5.0):
        """The first received message for which pred is true, waiting up to timeout; None."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for m in self.received:
                    if pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def response(self, branch, timeout=5.0, final=True):
        return self.wait(lambda m: m.status and "branch=%s" % branch in (m.get("Via") or "")
                         and (m.status >= 200 or not final), timeout)

    def requests(self, method=None):
        with self.cond:
            return [m for m in self.received if m.method and (method is None or m.method == method)]

    def via(self, branch):
        return "Via: SIP/2.0/%s %s:%d;rport;branch=%s" % (self.transport.upper(), self.host,
                                                           self.port, branch)

    def reply(self, req, status, reason, extra=(), body=""):
        """Answers req (copies Via, From, To (with our tag), Call-ID, CSeq)."""
        to = req.get("To")
        if status > 100 and ";tag=" not in to:
            to += ";tag=" + getattr(self, "tag", "uas" + rand(6))
        lines = ["SIP/2.0 %d %s" % (status, reason)]
        lines += ["Via: " + v for v in req.all("Via")]
        lines += ["From: " + req.get("From"), "To: " + to, "Call-ID: " + req.get("Call-ID"),
                  "CSeq: " + req.cseq]
        lines += list(extra)
        lines += ["Content-Length: %d" % len(body), "", body]
        dest = req.source if self.transport == "udp" else None
        self.send("\r\n".join(lines), dest)


def request(ep, method, ruri, from_uri, to_uri, call_id, cseq, from_tag, to_tag=None,
            extra=(), body="", branch=None, contact=True):
    """The text of a request sent from endpoint ep (its Via), and its branch."""
    branch = branch or "z9hG4bK" + rand()
    lines = ["%s %s SIP/2.0" % (method, ruri), ep.via(branch), "Max-Forwards: 70",
             "From: <%s>;tag=%s" % (from_uri, from_tag),
             "To: <%s>%s" % (to_uri, ";tag=" + to_tag if to_tag else ""),
             "Call-ID: " + call_id, "CSeq: %d %s" % (cseq, method)]
    if contact:
        user = getattr(ep, "contact_user", None) or re.sub(r"^sip:([^@]*)@.*$", r"\1", from_uri)
        lines.append("Contact: <sip:%s@%s:%d;transport=%s>" % (
            user, ep.host, getattr(ep, "contact_port", None) or ep.port, ep.transport))
    lines += list(extra)
    if body:
        lines.append("Content-Type: application/sdp")
    lines += ["Content-Length: %d" % len(body.encode()), "", body]
    return "\r\n".join(lines), branch


SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


class Phone(Endpoint):
    """A registered user's phone: registers, places calls with proxy authentication, and
    answers calls (180, then 200) and in-dialog requests (200) when answering is on. Its
    Contact is ext at its own port, or contact_user at contact_port: baresip, for one, writes
    "100-0x55d3..." at the port it listens on, not the one its connection came from."""

    def __init__(self, server_port, ext, password, domain=HOST, answer=True, contact_user=None,
                 contact_port=None, **kw):
        super().__init__(server_port, **kw)
        self.ext, self.password, self.domain = ext, password, domain
        self.contact_user, self.contact_port = contact_user, contact_port
        self.tag = rand(8)
        if answer:
            self.handler = Phone._answer

    @property
    def aor(self):
        return "sip:%s@%s" % (self.ext, self.domain)

    def _answer(self, req):
        if req.method == "ACK":
            return
        if req.method == "INVITE" and not req.tag("To"):
            self.reply(req, 180, "Ringing", ["Record-Route: " + r for r in req.all("Record-Route")])
        extra = ["Record-Route: " + r for r in req.all("Record-Route")]
        extra.append("Contact: <sip:%s@%s:%d;transport=%s>" % (
            self.contact_user or self.ext, self.host, self.contact_port or self.port,
            self.transport))
        body = SDP if req.method == "INVITE" else ""
        if body:
            extra.append("Content-Type: application/sdp")
        self.reply(req, 200, "OK", extra, body)

    def transact(self, text, branch, timeout=5.0):
        """Sends, resending over UDP every 0.5 s, until a final response; returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.send(text)
            r = self.response(branch, timeout=0.5 if self.transport == "udp" else timeout)
            if r:
                return r
        raise AssertionError("no final response to:\n" + text)

    def register(self, expires=120):
        call_id = rand() + "@reg"
        auth = []
        for cseq in (1, 2):
            text, branch = request(self, "REGISTER", "sip:" + self.domain, self.aor, self.aor,
                                   call_id, cseq, self.tag, extra=auth + ["Expires: %d" % expires])
            r = self.transact(text, branch)
            if r.status != 401:
                return r
            auth = ["Authorization: " + digest(self.ext, self.password, parse_challenge(
                r.get("WWW-Authenticate")), "REGISTER", "sip:" + self.domain)]
        return r

    def invite(self, to_ext, call_id=None, extra=(), ruri=None, sdp=SDP):
        """An authenticated INVITE to to_ext (with the SDP offer sdp; "" for none); returns
        (final response, dialog dict)."""
        call_id = call_id or rand() + "@call"
        ruri = ruri or "sip:%s@%s" % (to_ext, self.domain)
        to = "sip:%s@%s" % (to_ext, self.domain)
        auth = []
        for cseq in (1, 2):
            text, branch = request(self, "INVITE", ruri, self.aor, to, call_id, cseq, self.tag,
                                   extra=list(extra) + auth, body=sdp)
            r = self.transact(text, branch, timeout=10)
            if r.status != 407:
                break
            ack, _ = request(self, "ACK", ruri, self.aor, to, call_id, cseq, self.tag,
                             r.tag("To"), branch=branch, contact=False)
            self.send(ack)
            auth = ["Proxy-Authorization: " + digest(self.ext, self.password, parse_challenge(
                r.get("Proxy-Authenticate")), "INVITE", ruri)]
        dlg = {"call_id": call_id, "from_tag": self.tag, "to_tag": r.tag("To"), "to": to,
               "route": list(reversed(r.all("Record-Route"))), "cseq": 2,
               "target": re.sub(r"^<|>.*$", "", r.get("Contact") or "")}
        if r.status == 200:
            self.in_dialog(dlg, "ACK", cseq=2)
        return r, dlg

    def in_dialog(self, dlg, method, cseq=None, ruri=None, route=None, extra=()):
        """Sends an in-dialog request along the dialog's route set; returns its final
        response (None for ACK)."""
        if cseq is None:
            dlg["cseq"] += 1
            cseq = dlg["cseq"]
        route = dlg["route"] if route is None else route
        text, branch = request(self, method, ruri or dlg["target"], self.aor, dlg["to"],
                               dlg["call_id"], cseq, dlg["from_tag"], dlg["to_tag"],
                               extra=["Route: " + r for r in route] + list(extra))
        if method == "ACK":
            self.send(text)
            return None
        return self.transact(text, branch)
