#!/usr/bin/env python3
"""Runs one SIP protocol test (tests/sip/) against a private sipbx daemon.

    run.py --sipbx PATH [--sipp PATH] [--keep] TEST        run.py --list

For the named test: picks free loopback ports, makes a temporary directory and database, starts
`sipbx serve` on 127.0.0.1 (domain 127.0.0.1), adds users 100 and 101 with the CLI and waits
until the daemon knows them, runs the test's SIPp scenarios and raw-socket checks, then stops
the daemon with SIGTERM and requires exit status 0 and no sanitizer report. Exit status 0 on
success, 1 on failure, 77 when a tool the test needs is missing (ctest SKIP_RETURN_CODE).
Python standard library only.

The registrar tests come first; then the call flows of the proxy and of call forwarding
(flows.md), where every phone is a SIPp process of its own: a phone registers with one SIPp run
(register.xml) and answers with a second one bound to the same port, in the background, while
the caller runs. Both legs are checked on SIPp's message logs (-trace_msg), and the call's
record in the database.
"""

import argparse
import datetime
import hashlib
import json
import os
import random
import re
import shutil
import sqlite3
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = "127.0.0.1"
DOMAIN = "127.0.0.1"
USERS = {"100": "secret100", "101": "secret101"}
SIPP_TIMEOUT = "20s"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "SUMMARY: AddressSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")


class TestFailure(Exception):
    pass


class Skip(Exception):
    pass


def check(cond, what):
    if not cond:
        raise TestFailure(what)


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------
# ports

def free_port():
    """A loopback port free for both UDP and TCP right now (sipbx listens on both)."""
    for _ in range(100):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            u.bind((HOST, 0))
            port = u.getsockname()[1]
            t.bind((HOST, port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise TestFailure("no free loopback port")


# ---------------------------------------------------------------------------------------------
# SIP messages and digest authentication (RFC 2617 / RFC 3261 22.4)

def parse_headers(lines):
    """The (name, value) pairs of header lines, in order, folded lines joined to theirs."""
    headers = []
    for line in lines:
        if line[:1] in (" ", "\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
        elif ":" in line:
            name, value = line.split(":", 1)
            headers.append((name.strip(), value.strip()))
    return headers


class Response:
    def __init__(self, raw):
        self.raw = raw
        head = raw.split("\r\n\r\n", 1)[0]
        lines = head.split("\r\n")
        m = re.match(r"SIP/2\.0 (\d{3}) (.*)$", lines[0])
        if not m:
            raise TestFailure("not a SIP response: %r" % raw[:200])
        self.status = int(m.group(1))
        self.reason = m.group(2)
        self.headers = parse_headers(lines[1:])

    def get(self, name):
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def contacts(self):
        """Every Contact value, one per binding (Sofia writes one header per binding)."""
        out = []
        for v in self.all("Contact"):
            out += [c.strip() for c in re.split(r",(?=\s*<)", v)]
        return out

    def __str__(self):
        return self.raw


def parse_challenge(value):
    check(value is not None and value.startswith("Digest "), "no Digest challenge: %r" % value)
    params = {}
    for m in re.finditer(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', value[7:]):
        params[m.group(1)] = m.group(2) if m.group(2) is not None else m.group(3)
    return params


def md5hex(text):
    return hashlib.md5(text.encode()).hexdigest()


def digest_response(user, password, realm, nonce, method, uri, nc=None, cnonce=None):
    """The request-digest; with nc (an int) and cnonce it is the qop=auth form."""
    ha1 = md5hex("%s:%s:%s" % (user, realm, password))
    ha2 = md5hex("%s:%s" % (method, uri))
    if nc is None:
        return md5hex("%s:%s:%s" % (ha1, nonce, ha2))
    return md5hex("%s:%s:%08x:%s:auth:%s" % (ha1, nonce, nc, cnonce, ha2))


def authorization(user, password, chal, method="REGISTER", uri=None, nc=1, cnonce="0a4f113b",
                  qop=True):
    """An Authorization value answering chal (a parsed challenge), in the usual client shape."""
    uri = uri or "sip:%s" % DOMAIN
    if not qop:
        resp = digest_response(user, password, chal["realm"], chal["nonce"], method, uri)
        return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", '
                'algorithm=MD5' % (user, chal["realm"], chal["nonce"], uri, resp))
    resp = digest_response(user, password, chal["realm"], chal["nonce"], method, uri, nc, cnonce)
    return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", '
            'algorithm=MD5, cnonce="%s", qop=auth, nc=%08x'
            % (user, chal["realm"], chal["nonce"], uri, resp, cnonce, nc))


class SipClient:
    """A minimal UAC over UDP (or TCP) on loopback: builds requests, resends them over UDP
    until a final response arrives, and matches responses by Via branch."""

    def __init__(self, server_port, transport="udp", local_port=0):
        self.server = (HOST, server_port)
        self.transport = transport
        if transport == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind((HOST, local_port))
        else:
            self.sock = socket.create_connection(self.server, timeout=5)
            self.buf = b""
        self.port = self.sock.getsockname()[1]
        self.call_id = "%016x@test" % random.getrandbits(64)
        self.tag = "%08x" % random.getrandbits(32)
        self.cseq = 0

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode()
        if self.transport == "udp":
            self.sock.sendto(data, self.server)
        else:
            self.sock.sendall(data)

    def _recv_one(self, deadline):
        """One message, or None at the deadline."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                if self.transport == "udp":
                    data, _ = self.sock.recvfrom(70000)
                    return data.decode(errors="replace")
                m = re.search(rb"\r\n\r\n", self.buf)
                if m:
                    head = self.buf[:m.end()]
                    cl = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
                    total = m.end() + (int(cl.group(1)) if cl else 0)
                    if len(self.buf) >= total:
                        msg, self.buf = self.buf[:total], self.buf[total:]
                        return msg.decode(errors="replace")
                chunk = self.sock.recv(65536)
                if not chunk:
                    return None
                self.buf += chunk
            except socket.timeout:
                return None

    def drain(self, seconds=0.3, first=False):
        """Every message that arrives within seconds (or only the first, with first)."""
        out, deadline = [], time.monotonic() + seconds
        while True:
            msg = self._recv_one(deadline)
            if msg is None:
                return out
            out.append(msg)
            if first:
                return out

    def transact(self, text, timeout=5.0):
        """Sends a request and returns its final Response (resending over UDP every 0.5 s)."""
        branch = re.search(r"branch=([^;,\s]+)", text).group(1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.send_raw(text)
            resend_at = min(deadline, time.monotonic() + (0.5 if self.transport == "udp" else 30))
            while True:
                msg = self._recv_one(resend_at)
                if msg is None:
                    break
                if not msg.startswith("SIP/2.0 "):
                    continue
                if "branch=%s" % branch not in msg:
                    continue  # a late answer to an earlier transaction
                r = Response(msg)
                if r.status >= 200:
                    return r
        raise TestFailure("no final response to:\n%s" % text)

    def request(self, method, user, to_user=None, contact="default", expires=None, auth=None,
                extra=(), cseq=None, call_id=None, ruri=None, body=""):
        """Builds and sends a request for user; contact None leaves Contact out."""
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        branch = "z9hG4bK%016x" % random.getrandbits(64)
        proto = self.transport.upper()
        lines = [
            "%s %s SIP/2.0" % (method, ruri or "sip:%s" % DOMAIN),
            "Via: SIP/2.0/%s %s:%d;rport;branch=%s" % (proto, HOST, self.port, branch),
            "Max-Forwards: 70",
            "From: <sip:%s@%s>;tag=%s" % (user, DOMAIN, self.tag),
            "To: <sip:%s@%s>" % (to_user or user, DOMAIN),
            "Call-ID: %s" % (call_id or self.call_id),
            "CSeq: %d %s" % (cseq, method),
        ]
        if contact == "default":
            contact = "<sip:%s@%s:%d>" % (user, HOST, self.port)
        if contact is not None:
            lines.append("Contact: %s" % contact)
        if expires is not None:
            lines.append("Expires: %s" % expires)
        if auth is not None:
            lines.append("Authorization: %s" % auth)
        lines += list(extra)
        lines += ["User-Agent: sipbx-test", "Content-Length: %d" % len(body.encode()), "", body]
        return self.transact("\r\n".join(lines))

    def register(self, user, password, **kw):
        """Challenge then credentials; returns (final response, the challenge answered)."""
        r = self.request("REGISTER", user, **kw)
        check(r.status == 401, "expected 401 to the first REGISTER, got:\n%s" % r)
        chal = parse_challenge(r.get("WWW-Authenticate"))
        kw["auth"] = authorization(user, password, chal)
        return self.request("REGISTER", user, **kw), chal


# ---------------------------------------------------------------------------------------------
# SIP messages as SIPp logged them (-trace_msg): what each phone of a call sent and received

COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length",
           "c": "content-type", "k": "supported", "e": "content-encoding", "s": "subject"}


class SipMsg:
    """One message from a SIPp message log: direction ("sent" or "received"), the wall-clock
    time SIPp logged, the first line, the headers (names lower-cased, compact forms expanded)
    and the body."""

    def __init__(self, direction, when, raw):
        self.direction = direction
        self.when = when
        self.raw = raw
        text = raw.replace("\r\n", "\n")
        head, _, self.body = text.partition("\n\n")
        lines = head.split("\n")
        self.first = lines[0].strip()
        m = re.match(r"SIP/2\.0 (\d{3})", self.first)
        self.status = int(m.group(1)) if m else None
        self.method = None if m else self.first.split(" ")[0]
        self.ruri = None if m else self.first.split(" ")[1]
        self.headers = [(COMPACT.get(n.lower(), n.lower()), v)
                        for n, v in parse_headers(lines[1:])]

    def all(self, name):
        return [v for n, v in self.headers if n == name.lower()]

    def get(self, name):
        values = self.all(name)
        return values[0] if values else None

    def vias(self):
        """Every Via entry, top first (one header may hold several, comma-separated)."""
        return [v.strip() for h in self.all("Via") for v in h.split(",")]

    def cseq(self):
        return self.get("CSeq")

    def tag(self, name):
        m = re.search(r";\s*tag=([^;>\s,]+)", self.get(name) or "")
        return m.group(1) if m else None

    def branch(self):
        m = re.search(r"branch=([^;,\s]+)", self.vias()[0])
        return m.group(1) if m else None

    def is_(self, kind, cseq=None):
        """kind: a method name for requests or a status (int) for responses."""
        hit = self.status == kind if isinstance(kind, int) else self.method == kind
        return hit and (cseq is None or self.cseq() == cseq)

    def __str__(self):
        return "--- %s at %.3f:\n%s" % (self.direction, self.when, self.raw)


LOG_ENTRY = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)[^\n]*\n", re.M)


def parse_sipp_log(path):
    """The messages of a SIPp -trace_msg file, in order."""
    if not os.path.exists(path):
        return []
    parts = LOG_ENTRY.split(open(path, errors="replace").read())
    out = []
    for stamp, chunk in zip(parts[1::2], parts[2::2]):
        m = re.match(r"\s*\w+ message (sent|received)[^\n]*\n", chunk)
        if not m:
            continue
        raw = chunk[m.end():].strip("\r\n")
        fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in stamp else "%Y-%m-%d %H:%M:%S"
        when = datetime.datetime.strptime(stamp, fmt).timestamp()
        out.append(SipMsg(m.group(1), when, raw))
    return out


class SippRun:
    """One SIPp process: scenario, local port, log files, and the messages it logged."""

    def __init__(self, scenario, port, stem, proc):
        self.scenario = scenario
        self.port = port
        self.stem = stem
        self.proc = proc

    def messages(self):
        return parse_sipp_log(self.stem + ".msg")

    def received(self, kind=None, cseq=None):
        return [m for m in self.messages()
                if m.direction == "received" and (kind is None or m.is_(kind, cseq))]

    def sent(self, kind=None, cseq=None):
        return [m for m in self.messages()
                if m.direction == "sent" and (kind is None or m.is_(kind, cseq))]

    def call_id(self):
        """The Call-ID of the first message this phone sent (for a caller, its call's)."""
        return self.sent()[0].get("Call-ID")

    def wait_for(self, what, pred, timeout=10.0):
        """Waits until a logged message satisfies pred; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            hit = next((m for m in self.messages() if pred(m)), None)
            if hit:
                return hit
            if time.monotonic() > deadline or self.proc.poll() not in (None, 0):
                raise TestFailure("%s: %s never came" % (self.scenario, what))
            time.sleep(0.05)

    def errors(self):
        path = self.stem + ".err"
        return open(path, errors="replace").read() if os.path.exists(path) else ""

    def logs(self):
        parts = []
        for ext in (".out", ".err", ".msg"):
            if os.path.exists(self.stem + ext):
                parts.append("--- %s%s:\n%s" % (os.path.basename(self.stem), ext,
                                                open(self.stem + ext, errors="replace").read()))
        return "\n".join(parts)


def udp_bound(port):
    """True when some socket on this host is bound to UDP port (read from /proc, so that
    probing never takes the port from the process that is about to bind it)."""
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as f:
                for line in f.readlines()[1:]:
                    if int(line.split()[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            continue
    return False


# ---------------------------------------------------------------------------------------------
# the daemon, the CLI and SIPp

def sanitizer_env():
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
    # No suppressions are needed today; should Sofia's own allocations ever make
    # LeakSanitizer noisy, tests/lsan.supp (libsofia-sip-ua frames only) is picked up here.
    supp = os.path.join(HERE, "..", "lsan.supp")
    if os.path.exists(supp):
        env["LSAN_OPTIONS"] = "suppressions=%s:print_suppressions=0" % os.path.abspath(supp)
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


def sanitizer_report(text):
    return next((m for m in SANITIZER_MARKS if m in text), None)


class Ctx:
    """One test's world: a temporary directory, its database, one daemon at a time."""

    def __init__(self, sipbx, sipp, keep):
        self.sipbx = os.path.abspath(sipbx)
        self.sipp_bin = sipp
        self.keep = keep
        self.tmp = tempfile.mkdtemp(prefix="sipbx-sip-")
        self.db = os.path.join(self.tmp, "sipbx.db")
        self.env = sanitizer_env()
        self.proc = None
        self.port = None
        self.serve_args = []
        self.runs = 0
        self.logs = []
        self.users = dict(USERS)  # every user added so far: extension -> password
        self.sipps = []           # every SIPp run, for the logs of a failed test
        self.syncs = 0

    # -- daemon
    def start(self, *args, port=None):
        """Starts sipbx serve (a new port unless given) and waits until it answers OPTIONS."""
        self.serve_args = list(args)
        for _ in range(5):
            self.port = port or free_port()
            self.runs += 1
            logpath = os.path.join(self.tmp, "daemon-%d.log" % self.runs)
            self.logs.append(logpath)
            cmd = [self.sipbx, "serve", "--db", self.db, "--domain", DOMAIN,
                   "--sip", "%s:%d" % (HOST, self.port), "--http", "%s:%d" % (HOST, free_port())]
            cmd += self.serve_args
            with open(logpath, "wb") as out:
                self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                             env=self.env, cwd=self.tmp)
            if self._wait_ready():
                return
            text = open(logpath, errors="replace").read()
            self.proc = None
            if "port in use" in text and port is None:
                continue  # another test took the port between the probe and the bind
            raise TestFailure("sipbx serve did not start:\n%s" % text)
        raise TestFailure("sipbx serve could not find a free port")

    def _wait_ready(self):
        c = SipClient(self.port)
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False
                c.send_raw("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bK%x\r\n"
                           "From: <sip:probe@%s>;tag=p\r\nTo: <sip:%s>\r\nCall-ID: probe%x\r\n"
                           "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                           % (DOMAIN, HOST, c.port, random.getrandbits(48), DOMAIN, DOMAIN,
                              random.getrandbits(48)))
                if any(m.startswith("SIP/2.0 200") for m in c.drain(0.2)):
                    return True
            return False
        finally:
            c.close()

    def stop(self):
        """SIGTERM; the daemon must exit 0 within 15 s without a sanitizer report."""
        if not self.proc:
            return
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise TestFailure("sipbx did not stop within 15 s of SIGTERM")
        text = self.daemon_log()
        bad = sanitizer_report(text)
        check(bad is None, "sanitizer report from the daemon (%s)" % bad)
        check(rc == 0, "sipbx serve exited with status %d after SIGTERM" % rc)

    def kill(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def daemon_log(self):
        return open(self.logs[-1], errors="replace").read() if self.logs else ""

    # -- CLI
    def cli(self, *args):
        p = subprocess.run([self.sipbx] + list(args) + ["--db", self.db], env=self.env,
                           cwd=self.tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=30)
        out = p.stdout.decode(errors="replace")
        check(sanitizer_report(out) is None, "sanitizer report from sipbx %s:\n%s" % (args, out))
        check(p.returncode == 0, "sipbx %s exited %d:\n%s" % (" ".join(args), p.returncode, out))
        return out

    def add_users(self, users=None):
        """Adds users (default 100 and 101) with the CLI, then waits until the daemon
        authenticates them: a query (REGISTER without Contact) gets 200 once the user is known,
        and changes nothing."""
        users = dict(users or USERS)
        for ext, pw in users.items():
            self.cli("user", "add", ext, "--password", pw)
        self.users.update(users)
        self.wait_known(users)

    def wait_known(self, users):
        c = SipClient(self.port)
        try:
            deadline = time.monotonic() + 10
            pending = dict(users)
            while pending and time.monotonic() < deadline:
                for ext, pw in list(pending.items()):
                    r, _ = c.register(ext, pw, contact=None)
                    if r.status == 200:
                        del pending[ext]
                if pending:
                    time.sleep(0.1)
            check(not pending, "the daemon never picked up users %s" % sorted(pending))
        finally:
            c.close()

    def sync(self):
        """Returns once the daemon has reloaded users and forward rules changed so far: it
        reloads the whole table on any change, so once a user added after those changes can
        authenticate, the changes are in too."""
        self.syncs += 1
        ext = "9%02d" % self.syncs
        self.cli("user", "add", ext, "--password", "sync" + ext)
        self.wait_known({ext: "sync" + ext})

    def db_exec(self, sql, *args):
        """Runs one statement on the daemon's database (as another process would) and returns
        the rows as dicts."""
        con = sqlite3.connect(self.db, timeout=10)
        con.row_factory = sqlite3.Row
        try:
            with con:
                return [dict(r) for r in con.execute(sql, args).fetchall()]
        finally:
            con.close()

    def forward(self, ext, kind, target, timeout=None, enabled=1):
        """Writes one call-forward rule (db/003_forwarding.sql); call sync() before relying
        on it."""
        self.db_exec("INSERT OR REPLACE INTO forward_rules (extension, kind, enabled, target, "
                     "timeout) VALUES (?, ?, ?, ?, ?)", ext, kind, enabled, target, timeout)

    def cdr(self, call_id, timeout=3.0):
        """The closed call record of call_id (the writer commits in batches), as a dict."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.db_exec("SELECT * FROM cdrs WHERE call_id = ? AND open = 0", call_id)
            if rows:
                check(len(rows) == 1, "one record per call attempt, %s has %d" % (call_id,
                                                                                   len(rows)))
                return rows[0]
            if time.monotonic() > deadline:
                raise TestFailure("no closed call record for %s: %s" % (
                    call_id, self.db_exec("SELECT * FROM cdrs")))
            time.sleep(0.1)

    def user_list(self):
        """`sipbx user list` as {ext: [(status, contact, user agent), ...]}."""
        out = self.cli("user", "list")
        users, ext = {}, None
        for line in out.splitlines()[1:]:
            tokens = line.split()
            st = next((i for i, t in enumerate(tokens) if t in ("online", "offline", "disabled")),
                      None)
            if st is None:
                continue
            if not line.startswith(" "):
                ext = tokens[0]
            users.setdefault(ext, []).append((tokens[st], tokens[st + 1], line))
        return users

    def wait_list(self, ext, want, timeout=3.0):
        """Waits until `user list` shows ext with status want (the writer thread commits in
        batches); returns the rows."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.user_list().get(ext, [])
            if rows and all(r[0] == want for r in rows):
                return rows
            if time.monotonic() > deadline:
                raise TestFailure("user list: %s is not %s: %s" % (ext, want, rows))
            time.sleep(0.1)

    # -- SIPp
    def sipp(self, scenario, **kw):
        """Runs one call of a scenario against the daemon; fails with SIPp's logs unless
        every call succeeded. Returns the local port used (the Contact's port)."""
        return self.sipp_wait(self.sipp_start(scenario, background=False, **kw)).port

    def run_sipp(self, scenario, **kw):
        """Like sipp(), but returns the finished SippRun (its messages)."""
        return self.sipp_wait(self.sipp_start(scenario, background=False, **kw))

    def sipp_start(self, scenario, user="100", password=None, auth_user=None, local_port=None,
                   keys=None, transport="u1", cid_str=None, calls=1, pause_ms=None,
                   background=True):
        """Starts SIPp on a scenario (calls of it, each with its own Call-ID) and, in the
        background, returns once it listens on its port, so a phone is ready for the INVITE
        that follows. cid_str shapes [call_id] (sipp maps answers to calls by Call-ID, so
        scenarios must use [call_id] as it is); pause_ms is the length of <pause/> (-d)."""
        if not self.sipp_bin:
            raise Skip("sipp not found")
        auth_user = auth_user or user
        password = password or self.users.get(auth_user, "none")
        local_port = local_port or free_port()
        name = os.path.splitext(os.path.basename(scenario))[0]
        stem = os.path.join(self.tmp, "%s-%d-%d" % (name, local_port, len(self.sipps)))
        cmd = [self.sipp_bin, "-sf", os.path.join(HERE, scenario),
               "-key", "user", user, "-key", "domain", DOMAIN]
        for k, v in (keys or {}).items():
            cmd += ["-key", k, v]
        cmd += ["-au", auth_user, "-ap", password, "%s:%d" % (HOST, self.port),
                "-i", HOST, "-p", str(local_port), "-t", transport, "-m", str(calls),
                "-nostdin", "-timeout", SIPP_TIMEOUT, "-timeout_error",
                "-trace_msg", "-message_file", stem + ".msg",
                "-trace_err", "-error_file", stem + ".err"]
        if cid_str:
            cmd += ["-cid_str", cid_str]
        if pause_ms is not None:
            cmd += ["-d", str(pause_ms)]
        out = open(stem + ".out", "wb")
        try:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=self.tmp)
        finally:
            out.close()
        run = SippRun(scenario, local_port, stem, proc)
        self.sipps.append(run)
        if background:
            deadline = time.monotonic() + 10
            while not udp_bound(local_port):
                if proc.poll() is not None:
                    self.sipp_wait(run)  # reports why it ended
                    raise TestFailure("sipp %s ended before it listened" % scenario)
                if time.monotonic() > deadline:
                    raise TestFailure("sipp %s does not listen on %d" % (scenario, local_port))
                time.sleep(0.02)
        return run

    def sipp_wait(self, run, timeout=45):
        """Waits for a SIPp run to end; it must have succeeded. Returns run."""
        try:
            rc = run.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            run.proc.kill()
            run.proc.wait()
            raise TestFailure("sipp %s did not end within %d s" % (run.scenario, timeout))
        if rc != 0:
            raise TestFailure("sipp %s exited %d\n%s" % (run.scenario, rc, run.errors()))
        log("  sipp %s: ok" % run.scenario)
        return run

    def cleanup(self, failed):
        self.kill()
        for run in self.sipps:
            if run.proc.poll() is None:
                run.proc.kill()
                run.proc.wait()
        if failed:
            for run in self.sipps:
                log("=== sipp %s (port %d):\n%s" % (run.scenario, run.port, run.logs()))
            for path in self.logs:
                log("--- %s:\n%s" % (os.path.basename(path), open(path, errors="replace").read()))
        if self.keep:
            log("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# the tests: each gets a started daemon with users 100 and 101, and may restart it

TESTS = {}


def test(name, serve_args=()):
    def deco(fn):
        TESTS[name] = (fn, list(serve_args))
        return fn
    return deco


@test("register")
def t_register(ctx):
    """Challenge then success; the binding shows in `user list`."""
    port = ctx.sipp("register.xml")
    rows = ctx.wait_list("100", "online")
    check(rows[0][1] == "sip:100@%s:%d" % (HOST, port), "user list contact: %s" % rows)
    check(ctx.user_list()["101"][0][0] == "offline", "101 must stay offline")


@test("register_tcp")
def t_register_tcp(ctx):
    """The same over TCP (sipbx listens on UDP and TCP)."""
    ctx.sipp("register.xml", transport="t1")
    rows = ctx.wait_list("100", "online")
    check(" tcp " in rows[0][2], "binding should be marked tcp: %s" % rows)


@test("refresh")
def t_refresh(ctx):
    ctx.sipp("refresh.xml")
    rows = ctx.wait_list("100", "online")
    check(len(rows) == 1, "a refresh must not add a binding: %s" % rows)


@test("two_devices")
def t_two_devices(ctx):
    ctx.sipp("register.xml")
    ctx.sipp("two_devices.xml")
    deadline = time.monotonic() + 3
    while len(ctx.user_list().get("100", [])) != 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    rows = ctx.user_list()["100"]
    check(len(rows) == 2 and all(r[0] == "online" for r in rows), "two bindings: %s" % rows)


@test("deregister_one")
def t_deregister_one(ctx):
    first = ctx.sipp("register.xml")
    ctx.sipp("two_devices.xml")
    ctx.sipp("deregister_one.xml", local_port=first)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        rows = ctx.user_list()["100"]
        if len(rows) == 1:
            break
        time.sleep(0.1)
    check(len(rows) == 1 and rows[0][1].endswith(";line=dev2"), "left: %s" % rows)


@test("deregister_all")
def t_deregister_all(ctx):
    ctx.sipp("register.xml")
    ctx.sipp("two_devices.xml")
    ctx.sipp("deregister_all.xml")
    ctx.wait_list("100", "offline")


@test("wrong_password")
def t_wrong_password(ctx):
    ctx.sipp("wrong_password.xml", password="not-secret100")
    check(ctx.user_list()["100"][0][0] == "offline", "100 must not be registered")


@test("user_mismatch")
def t_user_mismatch(ctx):
    ctx.sipp("user_mismatch.xml", user="100", keys={"aor": "101"})
    users = ctx.user_list()
    check(users["101"][0][0] == "offline" and users["100"][0][0] == "offline",
          "nobody may be registered: %s" % users)


def normalize(raw, ext):
    """A response with what must differ between two requests blanked out: nonce, tags,
    branch, Call-ID and the extension itself."""
    s = re.sub(r'nonce="[0-9a-f]*"', 'nonce="N"', raw)
    s = re.sub(r";tag=[^;,\s>]+", ";tag=T", s)
    s = re.sub(r"branch=[^;,\s]+", "branch=B", s)
    s = re.sub(r"(?m)^Call-ID: .*$", "Call-ID: C", s)
    s = s.replace("sip:%s@" % ext, "sip:EXT@")
    return s


@test("unknown_user")
def t_unknown_user(ctx):
    """An unknown user is answered exactly like a known one with a wrong password, so the
    registrar cannot be used to find out which extensions exist."""
    c = SipClient(ctx.port)
    try:
        answers = {}
        for ext, pw in (("100", "wrong-password"), ("555", "whatever")):
            # the same requests but for the user: same socket, CSeq 1 then 2, own Call-ID
            kw = dict(contact="<sip:%s@%s:%d>" % (ext, HOST, c.port), expires=120,
                      call_id="%s-%x@test" % (ext, random.getrandbits(32)))
            first = c.request("REGISTER", ext, cseq=1, **kw)
            chal = parse_challenge(first.get("WWW-Authenticate"))
            second = c.request("REGISTER", ext, cseq=2, auth=authorization(ext, pw, chal), **kw)
            answers[ext] = (first, second)
        for i, stage in enumerate(("without credentials", "with credentials")):
            known, unknown = answers["100"][i], answers["555"][i]
            check(known.status == 401, "known user %s: %d" % (stage, known.status))
            check([n for n, _ in known.headers] == [n for n, _ in unknown.headers],
                  "header sets differ %s:\n%s\n---\n%s" % (stage, known, unknown))
            a, b = normalize(known.raw, "100"), normalize(unknown.raw, "555")
            check(a == b, "responses differ %s:\n%s\n---\n%s" % (stage, a, b))
            chal = known.get("WWW-Authenticate")
            check(re.fullmatch(r'Digest realm="127\.0\.0\.1", nonce="[0-9a-f]{56}", '
                               r'algorithm=MD5, qop="auth"', chal), "challenge: %s" % chal)
        log("  unknown user and wrong password: same 401, byte for byte")
    finally:
        c.close()


@test("stale_nonce", serve_args=["--nonce-ttl", "1"])
def t_stale_nonce(ctx):
    """With nonce_ttl 1 a 3 s old nonce is stale (sipp, flows.md); in raw form also: a stale
    nonce with a wrong password is just wrong (no stale=true, which would tell the client the
    password was right)."""
    c = SipClient(ctx.port)
    try:
        r = c.request("REGISTER", "101", expires=120)
        chal = parse_challenge(r.get("WWW-Authenticate"))
        ctx.sipp("stale_nonce.xml")  # waits 3 s, so chal is stale too by now
        r = c.request("REGISTER", "101", expires=120,
                      auth=authorization("101", "wrong-password", chal))
        check(r.status == 401 and "stale" not in r.get("WWW-Authenticate"),
              "stale nonce + wrong password must be a plain 401:\n%s" % r)
        r = c.request("REGISTER", "101", expires=120, auth=authorization("101", "secret101", chal))
        check(r.status == 401 and r.get("WWW-Authenticate").endswith(", stale=true"),
              "stale nonce + right password must be 401 stale=true:\n%s" % r)
        check(parse_challenge(r.get("WWW-Authenticate"))["nonce"] != chal["nonce"],
              "the stale answer must carry a new nonce")
    finally:
        c.close()
    check(ctx.user_list()["101"][0][0] == "offline", "101 must not be registered")


@test("replay")
def t_replay(ctx):
    """The same Authorization (same nonce, same nc) in a new transaction is refused with 401;
    a higher nc on the same nonce is a legitimate refresh; a nonce answered without qop is
    good for one request only."""
    c = SipClient(ctx.port)
    try:
        r, chal = c.register("100", "secret100", expires=120)
        check(r.status == 200, "first registration:\n%s" % r)
        auth1 = authorization("100", "secret100", chal, nc=1)

        # the very same credentials again: a new transaction (new branch, next CSeq)
        r = c.request("REGISTER", "100", expires=120, auth=auth1)
        check(r.status == 401, "replayed Authorization (same nc) must get 401:\n%s" % r)
        check(parse_challenge(r.get("WWW-Authenticate"))["nonce"] != chal["nonce"],
              "the refusal must carry a new nonce")

        # from another port too, as an eavesdropper would
        other = SipClient(ctx.port)
        try:
            r = other.request("REGISTER", "100", expires=120, auth=auth1,
                              contact="<sip:100@%s:%d>" % (HOST, other.port))
            check(r.status == 401, "replay from elsewhere must get 401:\n%s" % r)
        finally:
            other.close()

        # nc=2 is a refresh without a new challenge
        r = c.request("REGISTER", "100", expires=180,
                      auth=authorization("100", "secret100", chal, nc=2))
        check(r.status == 200, "nc=2 on a fresh nonce must be accepted:\n%s" % r)
        check(any(x.endswith(";expires=180") or x.endswith(";expires=179")
                  for x in r.contacts()), "refresh expiry: %s" % r.contacts())
        for nc in (2, 1):
            r = c.request("REGISTER", "100", expires=120,
                          auth=authorization("100", "secret100", chal, nc=nc))
            check(r.status == 401, "nc=%d after nc=2 must get 401:\n%s" % (nc, r))

        # RFC 2069 style (no qop): one request per nonce
        r = c.request("REGISTER", "100", expires=120)
        chal2 = parse_challenge(r.get("WWW-Authenticate"))
        auth2 = authorization("100", "secret100", chal2, qop=False)
        r = c.request("REGISTER", "100", expires=120, auth=auth2)
        check(r.status == 200, "credentials without qop must be accepted once:\n%s" % r)
        r = c.request("REGISTER", "100", expires=120, auth=auth2)
        check(r.status == 401, "credentials without qop replayed must get 401:\n%s" % r)
    finally:
        c.close()


@test("digest_uri")
def t_digest_uri(ctx):
    """RFC 2617 3.2.2.5: the digest uri must name the Request-URI (compared as SIP URIs, the
    default port filled in) or sipbx itself; right credentials for another uri get 400, so a
    captured INVITE's credentials cannot call someone else. Wrong credentials with a wrong
    uri get the usual challenge (nothing told about the uri)."""
    c = SipClient(ctx.port)
    try:
        def register_with(uri, password="secret100"):
            r = c.request("REGISTER", "100", expires=120)
            chal = parse_challenge(r.get("WWW-Authenticate"))
            return c.request("REGISTER", "100", expires=120,
                             auth=authorization("100", password, chal, uri=uri))

        r = register_with("sip:other.example.com")
        check(r.status == 400 and "Digest uri" in r.reason,
              "a uri naming another server must get 400:\n%s" % r)
        check(ctx.user_list()["100"][0][0] == "offline", "registered with a foreign uri")
        r = register_with("sip:other.example.com", password="wrong")
        check(r.status == 401, "wrong password and uri: want the 401 challenge, got\n%s" % r)
        for uri in ("sip:%s:5060;transport=udp" % DOMAIN.upper(), "sip:%s:%d" % (HOST, ctx.port)):
            r = register_with(uri)
            check(r.status == 200, "uri %s must be accepted:\n%s" % (uri, r))

        # An INVITE to 101 with credentials made for a call to 103
        bport = phone(ctx, "101")
        listener = quiet(ctx, bport)
        ruri = "sip:101@%s" % DOMAIN
        call_id = "%016x@test" % random.getrandbits(64)
        r = c.request("INVITE", "100", to_user="101", ruri=ruri, call_id=call_id)
        check(r.status == 407, "want 407 first, got\n%s" % r)
        ack_for(c, r, ruri)
        chal = parse_challenge(r.get("Proxy-Authenticate"))
        auth = authorization("100", USERS["100"], chal, method="INVITE",
                             uri="sip:103@%s" % DOMAIN)
        r = c.request("INVITE", "100", to_user="101", ruri=ruri, call_id=call_id,
                      extra=["Proxy-Authorization: " + auth])
        check(r.status == 400, "credentials for another callee must get 400:\n%s" % r)
        ack_for(c, r, ruri)
        heard_nothing(listener, "101 (with credentials made for a call to 103)")
    finally:
        c.close()
    check("does not match the Request-URI" in ctx.daemon_log(), "the refusal is not logged")


@test("interval_too_brief")
def t_interval_too_brief(ctx):
    ctx.sipp("interval_too_brief.xml")
    check(ctx.user_list()["100"][0][0] == "offline", "a 423 must not create a binding")


@test("expires_cap")
def t_expires_cap(ctx):
    ctx.sipp("expires_cap.xml")
    rows = ctx.wait_list("100", "online")
    secs = int(rows[0][2].split()[-1].rstrip("s"))
    check(3590 <= secs <= 3600, "stored expiry must be capped too: %s" % rows)


@test("options")
def t_options(ctx):
    ctx.sipp("options.xml")


@test("method_not_allowed")
def t_method_not_allowed(ctx):
    ctx.sipp("method_not_allowed.xml")


@test("restart")
def t_restart(ctx):
    """A binding survives SIGTERM and a new start on the same database."""
    port = ctx.sipp("register.xml")
    ctx.wait_list("100", "online")
    ctx.stop()
    ctx.start(*ctx.serve_args)
    ctx.sipp("query.xml")
    rows = ctx.wait_list("100", "online", timeout=0)
    check(rows[0][1] == "sip:100@%s:%d" % (HOST, port), "after restart: %s" % rows)
    check("1 registration(s) restored" in ctx.daemon_log(), "restore not logged")


@test("expiry", serve_args=["--min-expires", "1"])
def t_expiry(ctx):
    """A 2 s binding is gone 4 s later: from the list and from a query. Until then every
    query lists it with time left (never expires=0 for a binding whose time is up)."""
    registered = time.monotonic()
    ctx.sipp("expiry.xml")
    ctx.wait_list("100", "online")
    c = SipClient(ctx.port)
    try:
        r = c.request("REGISTER", "100", contact=None)
        chal = parse_challenge(r.get("WWW-Authenticate"))
        nc, left = 0, ["?"]
        while left and time.monotonic() - registered < 4:
            nc += 1
            r = c.request("REGISTER", "100", contact=None,
                          auth=authorization("100", "secret100", chal, nc=nc))
            check(r.status == 200, "query:\n%s" % r)
            left = [int(x.rsplit(";expires=", 1)[1]) for x in r.contacts()]
            check(all(x > 0 for x in left), "a binding listed with no time left:\n%s" % r)
            time.sleep(0.05)
        check(not left, "the 2 s binding is still listed after 4 s:\n%s" % r)
    finally:
        c.close()
    time.sleep(max(0, 4 - (time.monotonic() - registered)))
    ctx.wait_list("100", "offline", timeout=0.5)
    check("100 expired" in ctx.daemon_log(), "expiry not logged")


def malformed_udp_inputs(port):
    """Raw datagrams that are not valid requests (name, bytes)."""
    base = ("REGISTER sip:127.0.0.1 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK{b}\r\n"
            "From: <sip:100@127.0.0.1>;tag=1\r\nTo: <sip:100@127.0.0.1>\r\n"
            "Call-ID: malformed-{b}\r\nCSeq: 1 REGISTER\r\n"
            "Contact: <sip:100@127.0.0.1:{p}>\r\nMax-Forwards: 70\r\n")
    rnd = random.Random(3261)

    def req(drop=(), add="", replace=None):
        b = "%x" % rnd.getrandbits(40)
        s = base.format(p=port, b=b)
        for d in drop:
            s = re.sub(r"(?m)^%s:.*\r\n" % re.escape(d), "", s)
        if replace:
            s = re.sub(replace[0], replace[1], s)
        return (s + add + "Content-Length: 0\r\n\r\n").encode()

    garbage = bytes(rnd.getrandbits(8) for _ in range(1500))
    return [
        ("random bytes", garbage),
        ("empty datagram", b""),
        ("keep-alive CRLF", b"\r\n\r\n"),
        ("NUL bytes", b"REGISTER \x00\x00\x00 SIP/2.0\r\n\r\n"),
        ("request line only", b"REGISTER sip:127.0.0.1 SIP/2.0\r\n\r\n"),
        ("no Call-ID", req(drop=["Call-ID"])),
        ("no CSeq", req(drop=["CSeq"])),
        ("CSeq not a number", req(replace=(r"CSeq: 1 REGISTER", "CSeq: abc REGISTER"))),
        ("CSeq method mismatch", req(replace=(r"CSeq: 1 REGISTER", "CSeq: 1 INVITE"))),
        ("CSeq overflow", req(replace=(r"CSeq: 1 ", "CSeq: 99999999999999999999 "))),
        ("no Via", req(drop=["Via"])),
        ("broken Via", req(replace=(r"Via: [^\r]*", "Via: SIP/2.0/UDP"))),
        ("Via garbage", req(replace=(r"Via: [^\r]*", "Via: ;;;;@@@@"))),
        ("no From", req(drop=["From"])),
        ("no To", req(drop=["To"])),
        ("To without user", req(replace=(r"To: [^\r]*", "To: <sip:127.0.0.1>"))),
        ("To not a URI", req(replace=(r"To: [^\r]*", "To: <<<>>>"))),
        ("Contact garbage", req(replace=(r"Contact: [^\r]*", "Contact: <sip:@:;;;>>"))),
        ("Contact star without Expires 0", req(replace=(r"Contact: [^\r]*", "Contact: *"))),
        ("negative Expires", req(add="Expires: -5\r\n")),
        ("huge Expires", req(add="Expires: 99999999999999999999999\r\n")),
        ("Content-Length too large", req().replace(b"Content-Length: 0", b"Content-Length: 9000")),
        ("Content-Length negative", req().replace(b"Content-Length: 0", b"Content-Length: -1")),
        ("bad SIP version", req().replace(b"SIP/2.0\r\n", b"SIP/7.3\r\n", 1)),
        ("unknown method token", req().replace(b"REGISTER sip", b"R\x01G sip", 1)),
        ("a response to nobody", ("SIP/2.0 200 OK\r\n"
                                  "Via: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bKx\r\n"
                                  "From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\n"
                                  "CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n").encode()),
        ("60 KB header", req(add="X-Big: %s\r\n" % ("a" * 60000))),
        ("2000 headers", req(add="X-H: 1\r\n" * 2000)),
    ]


def malformed_auth_values(chal):
    """Authorization values that are not valid answers; each must get a 401 or 400."""
    n, good = chal["nonce"], authorization("100", "secret100", chal, nc=7)
    return [
        ("scheme only", "Digest"),
        ("Basic", "Basic MTAwOnNlY3JldDEwMA=="),
        ("username only", 'Digest username="100"'),
        ("unterminated quote", 'Digest username="100, realm="127.0.0.1", nonce="%s' % n),
        ("short nonce", good.replace(n, n[:20])),
        ("non-hex nonce", good.replace(n, "z" * 56)),
        ("forged nonce MAC", good.replace(n, n[:24] + "0" * 32)),
        ("nonce from the future", good.replace(n, "ffffffff" + n[8:])),
        ("nc not hex", good.replace("nc=00000007", "nc=zzzzzzzz")),
        ("nc zero", good.replace("nc=00000007", "nc=00000000")),
        ("nc too long", good.replace("nc=00000007", "nc=0000000000000007")),
        ("qop auth-int", good.replace("qop=auth", "qop=auth-int")),
        ("algorithm SHA-256", good.replace("algorithm=MD5", "algorithm=SHA-256")),
        ("foreign realm", good.replace('realm="127.0.0.1"', 'realm="example.com"')),
        ("response too short", re.sub(r'response="[0-9a-f]+"', 'response="abc"', good)),
        ("response too long", re.sub(r'response="[0-9a-f]+"', 'response="%s"' % ("a" * 4000),
                                     good)),
        ("huge username", good.replace('username="100"', 'username="%s"' % ("x" * 5000))),
        ("empty values", 'Digest username="", realm="", nonce="", uri="", response=""'),
        ("qop without cnonce", re.sub(r'cnonce="[^"]*", ', "", good)),
    ]


@test("malformed")
def t_malformed(ctx):
    """Broken input never crashes the daemon nor gets a 5xx; afterwards a normal REGISTER
    still succeeds (and the runner checks the exit status on SIGTERM)."""
    probe = SipClient(ctx.port)
    try:
        for name, data in malformed_udp_inputs(probe.port):
            probe.send_raw(data)
            answers = probe.drain(0.15, first=True)
            check(ctx.alive(), "the daemon died on: %s" % name)
            for a in answers:
                # 5xx only where RFC 3261 says so (501, 505, 513), never a failure of ours
                check(not a.startswith("SIP/2.0 5") or a[8:11] in ("501", "505", "513"),
                      "%s got a server error:\n%s" % (name, a))
            log("  %-32s -> %s" % (name, ", ".join(a.split("\r\n", 1)[0] for a in answers)
                                    or "(no answer)"))

        # credentials that are broken in every way: each is a fresh challenge or a 400
        r = probe.request("REGISTER", "100", expires=120)
        chal = parse_challenge(r.get("WWW-Authenticate"))
        for name, value in malformed_auth_values(chal):
            r = probe.request("REGISTER", "100", expires=120, auth=value)
            check(ctx.alive(), "the daemon died on Authorization: %s" % name)
            check(r.status in (400, 401), "Authorization %s: got\n%s" % (name, r))
            log("  Authorization %-24s -> %d" % (name, r.status))

        # well authenticated but broken Contacts: refused as a whole, nothing stored
        # (RFC 3261 10.3 step 8: all binding updates or none)
        overlong = "<sip:100@127.0.0.1:9;x=%s>" % ("y" * 2000)
        bad_contacts = [
            ("negative expires param", "<sip:100@127.0.0.1:9>;expires=-1"),
            ("star with another Contact", "*, <sip:100@127.0.0.1:9>"),
            ("star without Expires: 0", "*"),
            ("overlong Contact URI", overlong),
            ("a good one, then an overlong one", "<sip:100@127.0.0.1:9>, " + overlong),
            ("a good one, then expires=-1",
             "<sip:100@127.0.0.1:9>, <sip:100@127.0.0.1:8>;expires=-1"),
        ]
        for name, contact in bad_contacts:
            r, _ = probe.register("100", "secret100", contact=contact, expires=120)
            check(ctx.alive(), "the daemon died on Contact: %s" % name)
            check(r.status == 400, "Contact %s: want 400, got\n%s" % (name, r))
            log("  Contact %-30s -> %d" % (name, r.status))
        r, _ = probe.register("100", "secret100", contact=None)
        check(r.status == 200 and not r.contacts(), "refused Contacts were stored:\n%s" % r)

        # a malformed expires param is the default expiry (RFC 3261 20.10), not a removal
        r, _ = probe.register("100", "secret100", contact="<sip:100@127.0.0.1:7>;expires=abc")
        check(r.status == 200 and "<sip:100@127.0.0.1:7>;expires=3600" in r.contacts(),
              "expires=abc must register for the default 3600 s:\n%s" % r)
        r, _ = probe.register("100", "secret100", contact="*", expires=0)
        check(r.status == 200 and not r.contacts(), "Contact: * clean-up:\n%s" % r)
    finally:
        probe.close()

    # TCP: a 70 KB message (larger than the 64 KB limit), then a message cut in half
    s = socket.create_connection((HOST, ctx.port), timeout=5)
    try:
        big = ("REGISTER sip:127.0.0.1 SIP/2.0\r\n"
               "Via: SIP/2.0/TCP 127.0.0.1:%d;branch=z9hG4bKbig\r\n"
               "From: <sip:100@127.0.0.1>;tag=1\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: big\r\n"
               "CSeq: 1 REGISTER\r\nX-Padding: %s\r\nContent-Length: 0\r\n\r\n"
               % (s.getsockname()[1], "p" * (70 * 1024)))
        try:
            s.sendall(big.encode())
            s.settimeout(2)
            answer = s.recv(4096).decode(errors="replace")
        except (socket.timeout, ConnectionError):
            answer = ""
        log("  TCP 70 KB message               -> %s" % (answer.split("\r\n", 1)[0] or
                                                         "(connection closed, no answer)"))
        check(not answer.startswith("SIP/2.0 2"), "a 70 KB message must not be accepted")
    finally:
        s.close()
    check(ctx.alive(), "the daemon died on a 70 KB TCP message")
    s = socket.create_connection((HOST, ctx.port), timeout=5)
    s.sendall(b"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;bra")
    s.close()
    check(ctx.alive(), "the daemon died on a truncated TCP message")

    # and the daemon still works, over UDP and TCP
    ctx.sipp("register.xml")
    tcp = SipClient(ctx.port, transport="tcp")
    try:
        r, _ = tcp.register("101", "secret101", expires=120)
        check(r.status == 200, "REGISTER over TCP after the abuse:\n%s" % r)
    finally:
        tcp.close()


def seed_check(ctx, scenario, cid_str, user_agent, raw_auth):
    """A seed scenario, then the same client's credential shape replayed raw (the seeds'
    servers did not offer qop, so these clients answered without it)."""
    ctx.sipp(scenario, cid_str=cid_str)
    check(re.search(r"registrar: 100 registered sip:100@127\.0\.0\.1:\d+;\S+ from .*\(%s"
                    % re.escape(user_agent), ctx.daemon_log()),
          "the binding with User-Agent %r is not in the log" % user_agent)
    check(ctx.user_list()["100"][0][0] == "offline", "the seed's de-registration must remove it")
    c = SipClient(ctx.port)
    try:
        r = c.request("REGISTER", "101", expires=3600, extra=["User-Agent: " + user_agent])
        chal = parse_challenge(r.get("WWW-Authenticate"))
        r = c.request("REGISTER", "101", expires=3600, auth=raw_auth(chal))
        check(r.status == 200, "the seed's Authorization shape (no qop) was refused:\n%s" % r)
    finally:
        c.close()


@test("seed_xlite_register")
def t_seed_xlite(ctx):
    # seed 002: Proxy-Authorization: Digest username="101",realm="myvoipapp.com",nonce="...",
    # uri="sip:192.168.1.132",response="...",algorithm=MD5  (no spaces, no qop)
    def shape(chal):
        uri = "sip:%s" % DOMAIN
        resp = digest_response("101", "secret101", chal["realm"], chal["nonce"], "REGISTER", uri)
        return ('Digest username="101",realm="%s",nonce="%s",uri="%s",response="%s",algorithm=MD5'
                % (chal["realm"], chal["nonce"], uri, resp))
    # Call-ID shape of seed 002: MDhjYTg0NzVmODk0ZGNhYzI0YTMyYjE0ZTE1ZTZkODk.
    seed_check(ctx, "seed_xlite_register.xml", "MDhjYTg0NzVmODk0ZGNhYzI0YTMyYjE0ZT%u%p.",
               "X-Lite 4 release 4.1 stamp 63214", shape)


@test("seed_microsip_register")
def t_seed_microsip(ctx):
    # seed 000: Authorization: Digest username="kt408", realm="intel.org", nonce="...",
    # uri="sip:intel.org", response="..."  (no algorithm, no qop)
    def shape(chal):
        uri = "sip:%s" % DOMAIN
        resp = digest_response("101", "secret101", chal["realm"], chal["nonce"], "REGISTER", uri)
        return ('Digest username="101", realm="%s", nonce="%s", uri="%s", response="%s"'
                % (chal["realm"], chal["nonce"], uri, resp))
    # Call-ID shape of seed 001: dd68454eca354c44b183c60ff41b9f90 (32 hex digits)
    seed_check(ctx, "seed_microsip_register.xml", "dd68454eca354c44b183%u%p",
               "MicroSIP/3.19.30", shape)


# ---------------------------------------------------------------------------------------------
# call flows (flows.md): helpers. A is the caller, B the callee, C a forward target.

def phone(ctx, user, second=False):
    """Registers a device of user from a new port (the second device of a user with
    two_devices.xml) and returns the port, where its answering scenario is started next."""
    return ctx.sipp("two_devices.xml" if second else "register.xml", user=user)


def one(msgs, what):
    check(len(msgs) >= 1, "%s: none" % what)
    return msgs[0]


def unique(msgs):
    """Messages without retransmissions (the same text again)."""
    seen, out = set(), []
    for m in msgs:
        if m.raw not in seen:
            seen.add(m.raw)
            out.append(m)
    return out


def proxied(ctx, m, what, nvia=2, mf=69, record_route=True):
    """m, received by a phone, was forwarded by sipbx: sipbx's Via on top (its own branch),
    the sender's below, Max-Forwards decremented, sipbx's Route gone, no credentials left,
    and sipbx's Record-Route on an initial INVITE."""
    vias = m.vias()
    check(len(vias) == nvia, "%s: want %d Via entries, got %s\n%s" % (what, nvia, vias, m))
    check(re.match(r"SIP/2\.0/UDP 127\.0\.0\.1:%d;.*branch=z9hG4bKsbx[0-9a-f]{16}\.\d+"
                   % ctx.port, vias[0]), "%s: top Via is not sipbx's: %s" % (what, vias[0]))
    check(m.get("Max-Forwards") == str(mf), "%s: Max-Forwards %s, want %d" % (
        what, m.get("Max-Forwards"), mf))
    rr = m.all("Record-Route")
    if record_route:
        check(len(rr) == 1 and re.fullmatch(our_rr(ctx), rr[0]),
              "%s: Record-Route %s, want sipbx's signed one" % (what, rr))
    else:
        check(rr == [], "%s: Record-Route %s, want none" % (what, rr))
    check(not m.all("Route"), "%s: sipbx left its Route in:\n%s" % (what, m))
    check(not m.get("Proxy-Authorization"), "%s: credentials forwarded:\n%s" % (what, m))


def our_rr(ctx):
    """A regular expression for sipbx's Record-Route (or the Route a phone makes of it): its
    address, lr, and the dialog token sipbx signs (24 hex digits)."""
    return r"<sip:%s:%d;lr;sbx=[0-9a-f]{24}>" % (re.escape(HOST), ctx.port)


def relayed(m, what):
    """m, received by the phone that sent the request, came back through sipbx: sipbx took
    its own Via off again."""
    vias = m.vias()
    check(len(vias) == 1 and "z9hG4bKsbx" not in vias[0],
          "%s: Via entries %s (sipbx's must be gone)" % (what, vias))


def caller_authenticated(ctx, a, user="100"):
    """A's first INVITE was challenged with 407 (Proxy-Authenticate), A's ACK of the 407
    ended that transaction (same branch), and the second INVITE carried credentials."""
    inv1 = one(a.sent("INVITE", "1 INVITE"), "caller's first INVITE")
    r407 = one(a.received(407, "1 INVITE"), "407 to the first INVITE")
    check((r407.get("Proxy-Authenticate") or "").startswith('Digest realm="%s"' % DOMAIN),
          "407 without a challenge:\n%s" % r407)
    relayed(r407, "407")
    ack = one(a.sent("ACK", "1 ACK"), "ACK of the 407")
    check(ack.branch() == inv1.branch(), "ACK of the 407 has another branch")
    inv2 = one(a.sent("INVITE", "2 INVITE"), "caller's INVITE with credentials")
    check('username="%s"' % user in (inv2.get("Proxy-Authorization") or ""),
          "second INVITE without Proxy-Authorization:\n%s" % inv2)
    return inv2


def invite_reached(ctx, phone_run, inv, port, user, what="callee", mf=69, contact_params=""):
    """The phone on port got A's INVITE inv through sipbx, at its registered Contact, with the
    same dialog identifiers and body; returns the INVITE it got."""
    got = one(phone_run.received("INVITE"), "INVITE at the %s" % what)
    check(got.ruri == "sip:%s@%s:%d%s" % (user, HOST, port, contact_params),
          "%s: Request-URI %s is not the registered Contact" % (what, got.ruri))
    proxied(ctx, got, "INVITE at the %s" % what, mf=mf)
    for h in ("Call-ID", "From", "CSeq", "Content-Type"):
        check(got.get(h) == inv.get(h), "%s: %s changed: %s -> %s" % (what, h, inv.get(h),
                                                                       got.get(h)))
    check(got.body.strip() == inv.body.strip(), "%s: SDP changed" % what)
    check(got.vias()[1].startswith("SIP/2.0/UDP 127.0.0.1:%d;branch=%s" % (
        int(re.search(r":(\d+);", inv.vias()[0]).group(1)), inv.branch())),
          "%s: the caller's Via is not below sipbx's: %s" % (what, got.vias()))
    return got


def answered_call(ctx, a, b, b_port, b_user="101", a_user="100", contact_params=""):
    """Both legs of an answered call (flows.md "Basic call and release") up to the ACK:
    returns (the INVITE at B, the 200 at A)."""
    inv = caller_authenticated(ctx, a, a_user)
    got = invite_reached(ctx, b, inv, b_port, b_user, contact_params=contact_params)
    ok = one(a.received(200, "2 INVITE"), "200 at the caller")
    relayed(ok, "200 at the caller")
    b_tag = one(b.sent(200, "2 INVITE"), "200 from the callee").tag("To")
    check(ok.tag("To") == b_tag, "the caller's 200 is not the callee's (To tag %s, want %s)" % (
        ok.tag("To"), b_tag))
    check(len(ok.all("Record-Route")) == 1 and re.fullmatch(our_rr(ctx), ok.all("Record-Route")[0]),
          "200 at the caller: Record-Route %s" % ok.all("Record-Route"))
    ack = one(b.received("ACK", "2 ACK"), "ACK at the callee")
    proxied(ctx, ack, "ACK at the callee", record_route=False)
    check(ack.ruri == "sip:%s@%s:%d%s" % (b_user, HOST, b_port, contact_params),
          "ACK Request-URI %s" % ack.ruri)
    check(len(unique(b.received("ACK"))) == 1, "the callee got more than one ACK")
    return got, ok


def released(ctx, frm, to, what, cseq):
    """The BYE that frm sent reached to through sipbx, and its 200 came back the same way."""
    bye = one(frm.sent("BYE"), "BYE from the %s" % what)
    got = one(to.received("BYE"), "BYE through sipbx (%s)" % what)
    proxied(ctx, got, "BYE at the other side (%s)" % what, record_route=False)
    check(got.cseq() == cseq == bye.cseq(), "BYE CSeq %s" % got.cseq())
    check(got.tag("From") == bye.tag("From") and got.tag("To") == bye.tag("To"),
          "BYE dialog tags changed")
    ok = one(frm.received(200, cseq), "200 to the BYE")
    relayed(ok, "200 to the BYE")


def caller_saw(a, cseq, want, what):
    """The statuses A got for cseq, in order, are want (a list); retransmitted final
    responses count once (provisional ones are never retransmitted here: no 100rel)."""
    got, finals = [], set()
    for m in a.received():
        if m.status and m.cseq() == cseq and m.raw not in finals:
            got.append(m.status)
            if m.status >= 200:
                finals.add(m.raw)
    check(got == want, "%s: the caller got %s, want %s" % (what, got, want))


def captured(ctx, call_id, until, timeout=3.0):
    """sipbx's own capture of call_id (trace_messages, in the order sipbx sent and received
    them, without retransmissions and 100 Trying) as (direction, peer port, method or
    status) tuples; waits until until(ladder) holds or the timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        rows = ctx.db_exec("SELECT direction, remote, first_line FROM trace_messages "
                           "WHERE call_id = ? AND retransmission = 0 ORDER BY id", call_id)
        ladder = []
        for t in rows:
            words = t["first_line"].split(" ")
            what = words[1] if words[0].startswith("SIP/") else words[0]
            if what != "100":
                ladder.append((t["direction"], int(t["remote"].rsplit(":", 1)[1]), what))
        if until(ladder) or time.monotonic() > deadline:
            return ladder
        time.sleep(0.1)


def in_order(ctx, call_id, *steps):
    """In sipbx's own capture of call_id, steps ((direction, port, method or status), ...)
    all happened, in this order (the first occurrence of each). Timestamps of two SIPp
    processes cannot order messages a millisecond apart; sipbx's capture can."""
    lad = captured(ctx, call_id, lambda ld: all(x in ld for x in steps))
    check(all(x in lad for x in steps), "capture of %s lacks some of %s: %s" % (call_id, steps,
                                                                                 lad))
    idx = [lad.index(x) for x in steps]
    check(idx == sorted(idx), "sipbx did %s in another order: %s" % (" < ".join(map(str, steps)),
                                                                      lad))


def answered_after_callee(ctx, call_id, a_port, b_port, status):
    """In sipbx's own capture, the caller's final status (487 or 408) went out only after
    B's 487 came in and was ACKed (the ladders of flows.md "Caller gives up" and "No answer:
    the server's ring timer"). Timestamps of two SIPp processes cannot order this."""
    in_order(ctx, call_id, ("in", b_port, "487"), ("out", a_port, status))
    in_order(ctx, call_id, ("in", b_port, "487"), ("out", b_port, "ACK"))


def cdr_is(ctx, call_id, **want):
    """The call record of call_id has the wanted fields; returns it."""
    row = ctx.cdr(call_id)
    for k, v in want.items():
        check(row[k] == v, "call record %s: %s is %r, want %r (%s)" % (call_id, k, row[k], v, row))
    return row


# ---------------------------------------------------------------------------------------------
# call flows of the stateful proxy

@test("call")
def t_call(ctx):
    """flows.md "Basic call and release", released by the caller: 407 then credentials, 100,
    180, 200 with Record-Route; ACK and BYE go through sipbx; one ANSWERED record."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("call_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("call_caller.xml", user="100", keys={"callee": "101"}, pause_ms=300)
    ctx.sipp_wait(b)
    answered_call(ctx, a, b, bport)
    caller_saw(a, "2 INVITE", [100, 180, 200], "answered call")
    got = [m.status for m in a.received() if m.status and m.cseq() == "1 INVITE"]
    check(got in ([407], [100, 407]), "unauthenticated INVITE: the caller got %s" % got)
    released(ctx, a, b, "caller", "3 BYE")
    cdr_is(ctx, a.call_id(), disposition="ANSWERED", status=200,
           hangup_by="caller", caller="100", dialled="101", answered_by="101", forwards="[]")


@test("callee_bye")
def t_callee_bye(ctx):
    """flows.md "Basic call and release", released by the callee: B's BYE goes through
    sipbx to A's Contact (Route taken off), the 200 comes back to B; the record says callee."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("callee_bye_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("callee_bye_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    answered_call(ctx, a, b, bport)
    released(ctx, b, a, "callee", "1 BYE")
    bye = one(a.received("BYE"), "BYE at the caller")
    check(bye.ruri == "sip:100@%s:%d" % (HOST, a.port), "BYE Request-URI %s is not A's Contact"
          % bye.ruri)
    sent = one(b.sent("BYE"), "B's BYE")
    check(len(sent.all("Route")) == 1 and re.fullmatch(our_rr(ctx), sent.all("Route")[0]),
          "B's BYE does not follow the Record-Route: %s" % sent.all("Route"))
    cdr_is(ctx, bye.get("Call-ID"), disposition="ANSWERED", hangup_by="callee", answered_by="101")


def failure_acked(ctx, a, b, status, what):
    """B's final failure status was ACKed by sipbx hop by hop (same branch, CSeq INVITE's),
    A got it relayed (B's To tag), and A's own ACK stayed at sipbx."""
    got = one(b.received("INVITE"), "INVITE at %s" % what)
    fin = one(b.sent(status), "%d from %s" % (status, what))
    acks = unique(b.received("ACK"))
    check(len(acks) == 1, "%s: want one ACK from sipbx, got %d" % (what, len(acks)))
    ack = acks[0]
    check(ack.vias() == [got.vias()[0]] and ack.branch() == got.branch(),
          "%s: the ACK of the %d is not sipbx's, for its INVITE: %s" % (what, status, ack.vias()))
    check(ack.cseq() == got.cseq().replace("INVITE", "ACK") and ack.ruri == got.ruri,
          "%s: ACK %s %s" % (what, ack.ruri, ack.cseq()))
    check(ack.tag("To") == fin.tag("To"), "%s: ACK To tag %s" % (what, ack.tag("To")))
    if a is not None:
        r = one(a.received(status, "2 INVITE"), "%d at the caller" % status)
        relayed(r, "%d at the caller" % status)
        check(r.tag("To") == fin.tag("To"), "the caller's %d is not %s's" % (status, what))
    return got


@test("busy")
def t_busy(ctx):
    """flows.md "Callee busy": B 486 -> sipbx ACKs B -> A gets the 486 and ACKs sipbx."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("busy_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("busy_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    inv = caller_authenticated(ctx, a)
    invite_reached(ctx, b, inv, bport, "101")
    failure_acked(ctx, a, b, 486, "the callee")
    caller_saw(a, "2 INVITE", [100, 486], "busy")
    check(one(a.sent("ACK", "2 ACK"), "A's ACK").branch() == inv.branch(), "A's ACK branch")
    cdr_is(ctx, inv.get("Call-ID"), disposition="BUSY", status=486, hangup_by="callee")


def cancelled_leg(ctx, b, what):
    """B's side of a cancelled INVITE: sipbx's CANCEL for the INVITE B got (same branch and
    Request-URI, CSeq number), B's 200 and 487, and sipbx's ACK of the 487."""
    got = one(b.received("INVITE"), "INVITE at %s" % what)
    cancels = unique(b.received("CANCEL"))
    check(len(cancels) == 1, "%s: want one CANCEL, got %d" % (what, len(cancels)))
    c = cancels[0]
    check(c.vias() == [got.vias()[0]] and c.ruri == got.ruri,
          "%s: the CANCEL is not for the INVITE it got: %s %s" % (what, c.ruri, c.vias()))
    check(c.cseq() == got.cseq().replace("INVITE", "CANCEL"), "%s: CANCEL CSeq %s" % (
        what, c.cseq()))
    check(c.tag("To") is None, "%s: a CANCEL has the INVITE's To (no tag)" % what)
    one(b.sent(200, c.cseq()), "%s's 200 to the CANCEL" % what)
    failure_acked(ctx, None, b, 487, what)
    return got, c


@test("cancel")
def t_cancel(ctx):
    """flows.md "Caller gives up": A CANCEL -> 200 -> CANCEL to B -> B 200 + 487 -> sipbx ACKs
    -> A gets 487 and ACKs."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("cancel_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("cancel_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    inv = caller_authenticated(ctx, a)
    invite_reached(ctx, b, inv, bport, "101")
    cancelled_leg(ctx, b, "the callee")
    in_order(ctx, inv.get("Call-ID"), ("in", a.port, "CANCEL"), ("out", bport, "CANCEL"))
    caller_saw(a, "2 INVITE", [100, 180, 487], "cancelled call")
    caller_saw(a, "2 CANCEL", [200], "CANCEL")
    relayed(one(a.received(487), "487 at the caller"), "487 at the caller")
    answered_after_callee(ctx, inv.get("Call-ID"), a.port, bport, "487")
    cdr_is(ctx, inv.get("Call-ID"), disposition="CANCELLED", status=487, hangup_by="caller")


@test("cancel_race")
def t_cancel_race(ctx):
    """A CANCEL that crosses B's 200: the 200 still reaches A (RFC 3261 16.10 with 16.7
    step 5: 2xx responses to an INVITE are always forwarded), A ACKs it (B gets the ACK) and
    hangs up; no 487 to A. The record is an answered call."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("cancel_race_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("cancel_race_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    caller_saw(a, "2 INVITE", [100, 180, 200], "CANCEL crossing the 200")
    caller_saw(a, "2 CANCEL", [200], "CANCEL")
    ok = one(a.received(200, "2 INVITE"), "B's 200 at A")
    relayed(ok, "B's 200 at A")
    check(ok.tag("To") == one(b.sent(200, "2 INVITE"), "B's 200").tag("To"), "not B's 200")
    ack = one(b.received("ACK", "2 ACK"), "A's ACK at B")
    proxied(ctx, ack, "A's ACK at B", record_route=False)
    released(ctx, a, b, "caller", "3 BYE")
    cdr_is(ctx, ok.get("Call-ID"), disposition="ANSWERED", answered_by="101", hangup_by="caller")


@test("cancel_slow_callee")
def t_cancel_slow_callee(ctx):
    """sipbx waits for the callee's 487 before it answers the caller (see "cancel"), but not
    for ever: B sits on the CANCEL for 3 s, A gets its 487 after sipbx's grace time (2 s),
    and B's late 487 is still ACKed."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("cancel_slow_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("cancel_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    caller_saw(a, "2 INVITE", [100, 180, 487], "cancel, slow callee")
    waited = one(a.received(487), "487").when - one(a.sent("CANCEL"), "CANCEL").when
    check(1.5 <= waited <= 2.8, "A waited %.1f s for its 487, want about 2 s" % waited)
    cancelled_leg(ctx, b, "the slow callee")
    cdr_is(ctx, a.call_id(), disposition="CANCELLED", hangup_by="caller")
    log("  A got its 487 %.1f s after the CANCEL" % waited)


@test("cancel_retransmit")
def t_cancel_retransmit(ctx):
    """Seed 000: A resends its CANCEL; the retransmission gets the same 200 (same To tag,
    byte for byte), B gets one CANCEL, A gets one 487."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("cancel_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("cancel_retransmit_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    sent = a.sent("CANCEL")
    check(len(sent) == 2 and sent[0].raw == sent[1].raw, "A must send the same CANCEL twice")
    oks = a.received(200, "2 CANCEL")
    check(len(oks) == 2, "want a 200 for each CANCEL, got %d" % len(oks))
    check(oks[0].raw == oks[1].raw, "the retransmitted CANCEL got another 200:\n%s\n%s"
          % (oks[0], oks[1]))
    check(len(a.received(487)) == 1, "A must get one 487")
    cancelled_leg(ctx, b, "the callee")
    cdr_is(ctx, sent[0].get("Call-ID"), disposition="CANCELLED", status=487)


@test("ring_timeout", serve_args=["--ring-timeout", "3"])
def t_ring_timeout(ctx):
    """flows.md "No answer: the server's ring timer": after --ring-timeout (3 s) sipbx CANCELs
    B (200, 487, ACK) and answers A 408. Then the callee's own ring_timeout column (1 s)
    wins over the flag."""
    for ring, want in ((None, 3.0), (1, 1.0)):
        if ring:
            ctx.db_exec("UPDATE users SET ring_timeout = ? WHERE extension = '101'", ring)
            ctx.sync()
        bport = phone(ctx, "101")
        b = ctx.sipp_start("cancel_callee.xml", user="101", local_port=bport)
        a = ctx.run_sipp("ring_timeout_caller.xml", user="100", keys={"callee": "101"})
        ctx.sipp_wait(b)
        inv = caller_authenticated(ctx, a)
        got, c = cancelled_leg(ctx, b, "the callee")
        check(not a.sent("CANCEL"), "the caller did not cancel")
        caller_saw(a, "2 INVITE", [100, 180, 408], "ring timeout")
        r408 = one(a.received(408), "408")
        relayed(r408, "408 at the caller")
        rang = r408.when - one(a.received(180), "180").when
        check(want - 0.3 <= rang <= want + 1.5, "rang %.1f s, want %.0f s" % (rang, want))
        check(abs(c.when - r408.when) < 0.5, "the CANCEL to B and the 408 to A belong together")
        answered_after_callee(ctx, inv.get("Call-ID"), a.port, bport, "408")
        cdr_is(ctx, inv.get("Call-ID"), disposition="NO ANSWER", status=408, hangup_by="sipbx")
        log("  rang %.1f s (want %.0f s)" % (rang, want))
        ctx.sipp("deregister_all.xml", user="101")


@test("not_found")
def t_not_found(ctx):
    """An unknown extension: 404 after authentication, nothing forwarded."""
    a = ctx.run_sipp("not_found_caller.xml", user="100", keys={"callee": "555"})
    inv = caller_authenticated(ctx, a)
    caller_saw(a, "2 INVITE", [100, 404], "unknown extension")
    relayed(one(a.received(404), "404"), "404")
    # docs/api.md: hangup_by is sipbx for a number sipbx itself refused
    cdr_is(ctx, inv.get("Call-ID"), disposition="FAILED", status=404, hangup_by="sipbx",
           answered_by="")


@test("not_registered")
def t_not_registered(ctx):
    """A known user without a registered device (and no forward rule): 480, and nothing sent
    to the device 101 had before it de-registered."""
    bport = phone(ctx, "101")
    ctx.sipp("deregister_all.xml", user="101")
    ctx.wait_list("101", "offline")
    listener = SipClient(ctx.port, local_port=bport)
    try:
        a = ctx.run_sipp("not_registered_caller.xml", user="100", keys={"callee": "101"})
        heard = listener.drain(0.3)
    finally:
        listener.close()
    check(not heard, "the de-registered device got:\n%s" % "\n".join(heard))
    inv = caller_authenticated(ctx, a)
    caller_saw(a, "2 INVITE", [100, 480], "not registered")
    cdr_is(ctx, inv.get("Call-ID"), disposition="NO ANSWER", status=480, hangup_by="sipbx")


@test("fork")
def t_fork(ctx):
    """Parallel forking: both devices of 101 ring (each at its own Contact, from its own
    REGISTER source); device 1 answers after 0.5 s and wins, device 2 gets CANCEL (200, 487,
    ACK); A gets both 180s and the winner's 200 only; ACK and BYE go to the winner only."""
    p1 = phone(ctx, "101")
    p2 = phone(ctx, "101", second=True)
    d2 = ctx.sipp_start("cancel_callee.xml", user="101", local_port=p2)
    d1 = ctx.sipp_start("call_callee.xml", user="101", local_port=p1, pause_ms=500)
    a = ctx.run_sipp("call_caller.xml", user="100", keys={"callee": "101"}, pause_ms=200)
    ctx.sipp_wait(d1)
    ctx.sipp_wait(d2)
    inv1, _ = answered_call(ctx, a, d1, p1)
    inv = caller_authenticated(ctx, a)
    inv2 = invite_reached(ctx, d2, inv, p2, "101", what="device 2", contact_params=";line=dev2")
    check(inv1.branch() != inv2.branch(), "both forks have the same branch")
    check(abs(inv1.when - inv2.when) < 0.4, "the devices were not rung in parallel")
    released(ctx, a, d1, "caller", "3 BYE")
    cancelled_leg(ctx, d2, "device 2")
    in_order(ctx, inv.get("Call-ID"), ("in", p1, "200"), ("out", p2, "CANCEL"))
    tags = {m.tag("To") for m in a.received(180)}
    want = {one(d.sent(180), "180").tag("To") for d in (d1, d2)}
    check(tags == want, "A must see both devices ring: 180 tags %s, want %s" % (tags, want))
    check(not a.received(487), "the cancelled fork's 487 must stay at sipbx")
    check(not d2.received("ACK", "2 ACK") or all(m.branch() == inv2.branch()
                                                  for m in d2.received("ACK")),
          "device 2 got the caller's ACK")
    check(not d2.received("BYE"), "device 2 got a BYE")
    cdr_is(ctx, inv.get("Call-ID"), disposition="ANSWERED", answered_by="101")


@test("hold")
def t_hold(ctx):
    """flows.md "Hold and session change": B's re-INVITE with a=sendonly reaches A through
    sipbx (no new Record-Route, Route gone), A's 200 (a=recvonly) reaches B, B's ACK reaches
    A; then resume (a=sendrecv) the same way; then A's BYE."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("hold_callee.xml", user="101", local_port=bport, pause_ms=300)
    a = ctx.run_sipp("hold_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    answered_call(ctx, a, b, bport)
    for cseq, sdp, answer in (("1", "sendonly", "recvonly"), ("2", "sendrecv", "sendrecv")):
        sent = one(b.sent("INVITE", cseq + " INVITE"), "B's re-INVITE %s" % cseq)
        check(len(sent.all("Route")) == 1 and re.fullmatch(our_rr(ctx), sent.all("Route")[0]),
              "B's re-INVITE Route")
        got = one(a.received("INVITE", cseq + " INVITE"), "re-INVITE %s at A" % cseq)
        proxied(ctx, got, "re-INVITE (%s) at A" % sdp, record_route=False)
        check(got.ruri == "sip:100@%s:%d" % (HOST, a.port), "re-INVITE Request-URI %s" % got.ruri)
        check("a=%s" % sdp in got.body and got.body.strip() == sent.body.strip(),
              "re-INVITE SDP changed:\n%s" % got)
        ok = one(b.received(200, cseq + " INVITE"), "200 for the re-INVITE at B")
        relayed(ok, "200 for the re-INVITE at B")
        check("a=%s" % answer in ok.body, "A's answer lost its a=%s:\n%s" % (answer, ok))
        ack = one(a.received("ACK", cseq + " ACK"), "B's ACK of the re-INVITE at A")
        proxied(ctx, ack, "ACK of the re-INVITE at A", record_route=False)
    check(one(a.received("INVITE", "1 INVITE"), "hold").when <
          one(a.received("INVITE", "2 INVITE"), "resume").when, "resume before hold")
    released(ctx, a, b, "caller", "3 BYE")
    cdr_is(ctx, a.call_id(), disposition="ANSWERED", hangup_by="caller")


@test("session_timer")
def t_session_timer(ctx):
    """RFC 4028: the call's 200 agrees on Session-Expires: 4; A refreshes with a re-INVITE
    (relayed both ways with its Session-Expires) 3.5 s later, which keeps the call up past
    the first interval; then both phones vanish, and sipbx ends the call once an interval
    and its grace (4 + 1 s) pass without a refresh: record closed, hung up by sipbx."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("session_timer_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("session_timer_caller.xml", user="100", keys={"callee": "101"})
    refreshed = time.monotonic()  # A ends right after its refresh's ACK
    ctx.sipp_wait(b)
    inv = caller_authenticated(ctx, a)
    invite_reached(ctx, b, inv, bport, "101")
    relayed(one(a.received(200, "2 INVITE"), "200 at the caller"), "200 at the caller")
    check(one(b.received("ACK", "2 ACK"), "ACK at B").ruri.startswith("sip:101@"), "ACK at B")
    got = one(b.received("INVITE", "3 INVITE"), "the refresh at B")
    proxied(ctx, got, "the refresh at B", record_route=False)
    check(got.get("Session-Expires") == "4;refresher=uac", "refresh lost its Session-Expires")
    ok = one(a.received(200, "3 INVITE"), "200 to the refresh at A")
    relayed(ok, "200 to the refresh at A")
    call_id = a.call_id()

    def is_open():
        rows = ctx.db_exec("SELECT open FROM cdrs WHERE call_id = ?", call_id)
        check(len(rows) == 1, "one record of the call: %s" % rows)
        return rows[0]["open"] == 1

    # Without the refresh the call would end 5 s after the answer (1.5 s after the refresh,
    # plus a housekeeping second); with it, 5 s after the refresh.
    time.sleep(max(0.0, refreshed + 3.5 - time.monotonic()))
    check(is_open(), "the call ended although A refreshed the session")
    while is_open():
        check(time.monotonic() < refreshed + 8, "the call outlived its session interval")
        time.sleep(0.1)
    check(time.monotonic() >= refreshed + 4.5, "the call ended before its session expired")
    cdr_is(ctx, call_id, disposition="ANSWERED", hangup_by="sipbx")
    check("no session refresh within 4 s" in ctx.daemon_log(), "the expiry is not logged")


@test("too_many_hops")
def t_too_many_hops(ctx):
    """flows.md "Loops": Max-Forwards 0 gets 483 Too Many Hops, unauthenticated, and the
    registered callee hears nothing."""
    bport = phone(ctx, "101")
    listener = SipClient(ctx.port, local_port=bport)
    try:
        a = ctx.run_sipp("too_many_hops_caller.xml", user="100", keys={"callee": "101"})
        heard = listener.drain(0.5)
    finally:
        listener.close()
    check(not heard, "the callee got:\n%s" % "\n".join(heard))
    caller_saw(a, "1 INVITE", [483], "Max-Forwards 0")
    relayed(one(a.received(483), "483"), "483")
    check(not ctx.db_exec("SELECT * FROM cdrs"), "a 483 before authentication is no call")


@test("loop")
def t_loop(ctx):
    """flows.md "Loops": the INVITE that B sends back to sipbx carries sipbx's own branch for
    it in a Via: 482 Loop Detected (to B, not forwarded again); B's 482 reaches A."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("loop_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("loop_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    inv = caller_authenticated(ctx, a)
    got = invite_reached(ctx, b, inv, bport, "101")
    bounced = one(b.sent("INVITE"), "the INVITE sent back")
    check(bounced.vias()[1] == got.vias()[0], "the bounced INVITE must carry sipbx's Via")
    r482 = one(b.received(482, got.cseq()), "482 to the bounced INVITE")
    check(r482.vias() == bounced.vias(), "482 must answer B's request: %s" % r482.vias())
    check("sipbx" in (r482.get("Server") or ""), "the 482 is not sipbx's own:\n%s" % r482)
    check(len(unique(b.received("INVITE"))) == 1, "sipbx forwarded the looped INVITE again")
    failure_acked(ctx, a, b, 482, "the callee")
    caller_saw(a, "2 INVITE", [100, 482], "loop")
    check("loop detected" in ctx.daemon_log(), "the loop is not logged")


@test("message")
def t_message(ctx):
    """flows.md "Presence and messages": MESSAGE to a registered user: 407, then relayed with
    the text unchanged, and the phone's 200 relayed back. No call record (not a call)."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("message_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("message_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    caller_saw(a, "1 MESSAGE", [407], "MESSAGE without credentials")
    caller_saw(a, "2 MESSAGE", [200], "MESSAGE with credentials")
    check(not a.sent("ACK"), "no ACK for a MESSAGE")
    sent = one(a.sent("MESSAGE", "2 MESSAGE"), "A's MESSAGE")
    got = one(b.received("MESSAGE"), "MESSAGE at B")
    check(got.ruri == "sip:101@%s:%d" % (HOST, bport), "MESSAGE Request-URI %s" % got.ruri)
    proxied(ctx, got, "MESSAGE at B", record_route=False)
    check(got.body == sent.body and got.get("Content-Type") == "text/plain", "text changed")
    ok = one(a.received(200), "200 at A")
    relayed(ok, "200 at A")
    check(ok.tag("To") == one(b.sent(200), "B's 200").tag("To"), "the 200 is not B's")
    check(len(unique(b.received("MESSAGE"))) == 1, "B got the unauthenticated MESSAGE too")
    time.sleep(0.2)
    check(not ctx.db_exec("SELECT * FROM cdrs"), "a MESSAGE is not a call")


@test("retransmit_2xx")
def t_retransmit_2xx(ctx):
    """flows.md "B may retransmit" its 200: the copies B sends before the ACK all reach A
    (the same message), and B gets one ACK."""
    bport = phone(ctx, "101")
    b = ctx.sipp_start("call_callee.xml", user="101", local_port=bport)
    a = ctx.run_sipp("retransmit_2xx_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    answered_call(ctx, a, b, bport)
    sent = b.sent(200, "2 INVITE")
    got = a.received(200, "2 INVITE")
    check(len(sent) >= 2, "B did not retransmit its 200 (sent %d)" % len(sent))
    check(len(got) == len(sent), "B sent its 200 %d times, A got it %d times" % (
        len(sent), len(got)))
    check(all(m.raw == got[0].raw for m in got), "the relayed copies differ")
    check(len(b.received("ACK")) == 1, "B must get one ACK")
    released(ctx, a, b, "caller", "3 BYE")
    log("  200 sent %d times, relayed %d times" % (len(sent), len(got)))


@test("call_waiting_off")
def t_call_waiting_off(ctx):
    """users.call_waiting = 0: while 101 talks to 100, a call from 102 to 101 gets 486 from
    sipbx itself; 101's phone sees one INVITE only."""
    ctx.add_users({"102": "secret102"})
    ctx.db_exec("UPDATE users SET call_waiting = 0 WHERE extension = '101'")
    ctx.sync()
    bport = phone(ctx, "101")
    b = ctx.sipp_start("call_callee.xml", user="101", local_port=bport)
    a = ctx.sipp_start("call_caller.xml", user="100", keys={"callee": "101"}, pause_ms=2500,
                       background=False)
    b.wait_for("ACK at 101", lambda m: m.is_("ACK") and m.direction == "received")
    c = ctx.run_sipp("busy_caller.xml", user="102", keys={"callee": "101"})
    ctx.sipp_wait(a)
    ctx.sipp_wait(b)
    answered_call(ctx, a, b, bport)
    released(ctx, a, b, "caller", "3 BYE")
    caller_authenticated(ctx, c, "102")
    caller_saw(c, "2 INVITE", [100, 486], "second call")
    r486 = one(c.received(486), "486")
    check("SIPpTag01" not in (r486.get("To") or ""), "the 486 came from the phone:\n%s" % r486)
    c_id = c.call_id()
    check(not [m for m in b.received() if m.get("Call-ID") == c_id],
          "101's phone saw the second call")
    check(r486.when < one(b.received("BYE"), "BYE").when, "the second call came after the first")
    cdr_is(ctx, c_id, disposition="BUSY", status=486, caller="102")
    cdr_is(ctx, a.call_id(), disposition="ANSWERED")


@test("call_waiting")
def t_call_waiting(ctx):
    """flows.md "Call waiting": while 100 talks to 101 (and has put 101 on hold), 102 calls
    100: 100's phone rings again (a second dialog), answers, holds and resumes each call;
    every in-dialog request stays in its own dialog."""
    ctx.add_users({"102": "secret102"})
    aport = phone(ctx, "100")
    a = ctx.sipp_start("hold_callee.xml", user="100", local_port=aport, calls=2, pause_ms=2000)
    b = ctx.sipp_start("hold_caller.xml", user="101", keys={"callee": "100"})
    a.wait_for("hold of the first call", lambda m: m.is_(200, "1 INVITE") and
               m.direction == "received")
    c = ctx.run_sipp("hold_caller.xml", user="102", keys={"callee": "100"})
    ctx.sipp_wait(b)
    ctx.sipp_wait(a)
    ids = {}
    for who, run in (("101", b), ("102", c)):
        call_id = run.call_id()
        ids[who] = call_id
        invs = [m for m in a.received("INVITE", "2 INVITE") if m.get("Call-ID") == call_id]
        check(len(unique(invs)) == 1, "100 must get one INVITE of %s's call" % who)
        got = [m for m in run.received("INVITE") if m.get("Call-ID") != call_id]
        check(not got, "%s got a request of the other dialog" % who)
        check(len(unique(run.received("INVITE"))) == 2, "%s must get hold and resume" % who)
        check(all(m.tag("To") == run.sent()[0].tag("From") for m in run.received("INVITE")),
              "%s got a re-INVITE of another dialog" % who)
        cdr_is(ctx, call_id, disposition="ANSWERED", hangup_by="caller", answered_by="100")
    def at_a(call, kind, cseq, direction):
        return one([m for m in a.messages() if m.direction == direction and m.is_(kind, cseq)
                    and m.get("Call-ID") == ids[call]], "%s %s of %s's call" % (kind, cseq, call))
    first_held = at_a("101", 200, "1 INVITE", "received").when
    second_rang = at_a("102", "INVITE", "2 INVITE", "received").when
    first_resumed = at_a("101", "INVITE", "2 INVITE", "sent").when
    first_bye = at_a("101", "BYE", "3 BYE", "received").when
    check(first_held < second_rang < first_resumed < first_bye,
          "want: 101 held, 102 rings, 101 resumed, 101 ends (%.2f %.2f %.2f %.2f)" % (
              first_held, second_rang, first_resumed, first_bye))


@test("call_self")
def t_call_self(ctx):
    """flows.md "Callee busy": calling yourself with one device: the INVITE reaches the same
    phone, which says 486; sipbx ACKs it and the phone, as caller, gets the 486."""
    port = phone(ctx, "100")
    a = ctx.run_sipp("call_self.xml", user="100", keys={"callee": "100"}, local_port=port)
    inv = caller_authenticated(ctx, a)
    got = one(a.received("INVITE"), "the INVITE back at the phone")
    check(got.ruri == "sip:100@%s:%d" % (HOST, port), "Request-URI %s" % got.ruri)
    proxied(ctx, got, "INVITE back at the phone")
    failure_acked(ctx, a, a, 486, "the phone")
    cdr_is(ctx, inv.get("Call-ID"), disposition="BUSY", caller="100", dialled="100")


def quiet(ctx, port):
    """A socket on a registered phone's port, to show it is never called."""
    return SipClient(ctx.port, local_port=port)


def heard_nothing(listener, who):
    heard = listener.drain(0.2)
    listener.close()
    check(not heard, "%s must not be called, got:\n%s" % (who, "\n".join(heard)))


def ack_for(c, r, ruri):
    """ACKs the final failure r of an INVITE that c sent (same branch: r's Via)."""
    c.send_raw("ACK %s SIP/2.0\r\nVia: %s\r\nMax-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\n"
               "Call-ID: %s\r\nCSeq: %s ACK\r\nContent-Length: 0\r\n\r\n"
               % (ruri, r.get("Via"), r.get("From"), r.get("To"), r.get("Call-ID"),
                  r.get("CSeq").split()[0]))


def proxy_request(c, method, user, ruri, auth_user=None, **kw):
    """A request that sipbx challenges with 407, then the same with Proxy-Authorization
    for auth_user (default: user); returns the final response to the second."""
    auth_user = auth_user or user
    kw.setdefault("call_id", "%016x@test" % random.getrandbits(64))
    r = c.request(method, user, ruri=ruri, **kw)
    check(r.status == 407, "%s %s: want 407 first, got\n%s" % (method, ruri, r))
    if method == "INVITE":
        ack_for(c, r, ruri)
    chal = parse_challenge(r.get("Proxy-Authenticate"))
    auth = authorization(auth_user, USERS[auth_user], chal, method=method, uri=ruri)
    kw["extra"] = list(kw.get("extra", ())) + ["Proxy-Authorization: " + auth]
    r = c.request(method, user, ruri=ruri, **kw)
    if method == "INVITE" and r.status >= 300:
        ack_for(c, r, ruri)
    return r


@test("presence")
def t_presence(ctx):
    """flows.md "Presence and messages": SUBSCRIBE gets 489 Bad Event (SIPp, X-Lite's
    request of seed 004); requests that only make sense inside a dialog get 481 when they come
    without one, unauthenticated and never forwarded; a stray ACK gets no answer at all."""
    ctx.sipp("subscribe.xml")
    bport = phone(ctx, "101")
    listener = quiet(ctx, bport)
    c = SipClient(ctx.port)
    try:
        for method in ("BYE", "INFO", "UPDATE", "PRACK", "NOTIFY"):
            r = c.request(method, "100", to_user="101", ruri="sip:101@%s" % DOMAIN,
                          extra=["Event: presence"] if method == "NOTIFY" else ())
            check(r.status == 481, "%s outside a dialog: want 481, got\n%s" % (method, r))
            log("  %s outside a dialog -> %d" % (method, r.status))
        c.send_raw("ACK sip:101@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bKstray\r\n"
                   "From: <sip:100@%s>;tag=1\r\nTo: <sip:101@%s>\r\nCall-ID: stray@test\r\n"
                   "CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                   % (DOMAIN, HOST, c.port, DOMAIN, DOMAIN))
        check(not c.drain(0.5), "a stray ACK must not be answered")
    finally:
        c.close()
    heard_nothing(listener, "101 (nothing to forward)")


@test("refusals")
def t_refusals(ctx):
    """What the proxy refuses: an INVITE for another domain (403 after authentication: no open
    relay), From not the authenticated user (403), a request with a To tag but without
    sipbx's Route (481: not a dialog sipbx carries), a MESSAGE to an unknown user (404). The
    registered callee hears nothing of it, and the refused INVITEs leave no call behind."""
    bport = phone(ctx, "101")
    listener = quiet(ctx, bport)
    c = SipClient(ctx.port)
    try:
        r = proxy_request(c, "INVITE", "100", "sip:101@example.com", to_user="101")
        check(r.status == 403, "INVITE to another domain: want 403, got\n%s" % r)
        r = proxy_request(c, "INVITE", "101", "sip:101@%s" % DOMAIN, auth_user="100")
        check(r.status == 403, "From 101 with 100's credentials: want 403, got\n%s" % r)
        lines = ("INVITE sip:101@{h}:{b} SIP/2.0\r\nVia: SIP/2.0/UDP {h}:{p};branch=z9hG4bK{x}\r\n"
                 "From: <sip:100@{d}>;tag=a1\r\nTo: <sip:101@{d}>;tag=b2\r\n"
                 "Call-ID: nodialog@test\r\nCSeq: 5 INVITE\r\nContact: <sip:100@{h}:{p}>\r\n"
                 "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        r = c.transact(lines.format(h=HOST, b=bport, p=c.port, d=DOMAIN,
                                    x="%x" % random.getrandbits(40)))
        check(r.status == 481, "re-INVITE without sipbx's Route: want 481, got\n%s" % r)
        ack_for(c, r, "sip:101@%s:%d" % (HOST, bport))
        r = proxy_request(c, "MESSAGE", "100", "sip:555@%s" % DOMAIN, to_user="555",
                          body="hello")
        check(r.status == 404, "MESSAGE to an unknown user: want 404, got\n%s" % r)
    finally:
        c.close()
    heard_nothing(listener, "101 (refused requests)")
    time.sleep(0.2)
    check(not ctx.db_exec("SELECT * FROM cdrs"), "a refused INVITE is no call attempt: %s"
          % ctx.db_exec("SELECT * FROM cdrs"))


# ---------------------------------------------------------------------------------------------
# call forwarding (flows.md "Call forward on busy", "... on no answer"; forward_rules)

def diversion(m):
    return ", ".join(m.all("Diversion"))


def div(*entries):
    """The Diversion value sipbx must send: (user, reason) pairs, newest first."""
    return ", ".join("<sip:%s@%s>;reason=%s;counter=1" % (u, DOMAIN, r) for u, r in entries)


def check_forwards(ctx, call_id, *entries, **want):
    row = cdr_is(ctx, call_id, **want)
    got = [(f["from"], f["to"], f["reason"]) for f in json.loads(row["forwards"])]
    check(got == list(entries), "call record forwards %s, want %s" % (got, list(entries)))
    return row


def forwarded_leg(ctx, a, c, cport, cuser, want_div):
    """C got A's INVITE through sipbx with the Diversion want_div, still addressed To the
    dialled user; returns C's INVITE."""
    inv = caller_authenticated(ctx, a)
    got = invite_reached(ctx, c, inv, cport, cuser, what="forward target %s" % cuser)
    check(diversion(got) == want_div, "Diversion at %s: %r, want %r" % (cuser, diversion(got),
                                                                        want_div))
    check(got.get("To") == inv.get("To"), "the To of the forwarded INVITE changed")
    return got


@test("forward_busy")
def t_forward_busy(ctx):
    """flows.md "Call forward on busy": B 486 -> sipbx ACKs B -> INVITE to C with Diversion
    reason=user-busy -> A gets 181 then C's 180 and 200; ACK and BYE between A and C."""
    ctx.add_users({"102": "secret102"})
    ctx.forward("101", "busy", "102")
    ctx.sync()
    bport, cport = phone(ctx, "101"), phone(ctx, "102")
    b = ctx.sipp_start("busy_callee.xml", user="101", local_port=bport)
    c = ctx.sipp_start("forward_target.xml", user="102", local_port=cport)
    a = ctx.run_sipp("call_caller.xml", user="100", keys={"callee": "101"}, pause_ms=200)
    ctx.sipp_wait(b)
    ctx.sipp_wait(c)
    inv = caller_authenticated(ctx, a)
    got_b = invite_reached(ctx, b, inv, bport, "101")
    check(not got_b.all("Diversion"), "B's INVITE must not be diverted")
    failure_acked(ctx, None, b, 486, "B")
    forwarded_leg(ctx, a, c, cport, "102", div(("101", "user-busy")))
    in_order(ctx, inv.get("Call-ID"), ("in", bport, "486"), ("out", bport, "ACK"),
             ("out", cport, "INVITE"))
    answered_call(ctx, a, c, cport, b_user="102")
    caller_saw(a, "2 INVITE", [100, 181, 180, 200], "forward on busy")
    check(not a.received(486), "B's 486 must stay at sipbx")
    check(not b.received("BYE"), "B got the BYE")
    released(ctx, a, c, "caller", "3 BYE")
    check_forwards(ctx, inv.get("Call-ID"), ("101", "102", "user-busy"),
                   disposition="ANSWERED", dialled="101", answered_by="102")


@test("forward_no_answer")
def t_forward_no_answer(ctx):
    """flows.md "Call forward on no answer": B rings for the rule's 2 s, then sipbx CANCELs B
    (200, 487, ACK) and rings C with Diversion reason=no-answer; C answers."""
    ctx.add_users({"102": "secret102"})
    ctx.forward("101", "no_answer", "102", timeout=2)
    ctx.sync()
    bport, cport = phone(ctx, "101"), phone(ctx, "102")
    b = ctx.sipp_start("cancel_callee.xml", user="101", local_port=bport)
    # C rings 1 s before it answers: B's CANCEL must not wait for C's answer
    c = ctx.sipp_start("forward_target.xml", user="102", local_port=cport, pause_ms=1000)
    a = ctx.run_sipp("call_caller.xml", user="100", keys={"callee": "101"}, pause_ms=200)
    ctx.sipp_wait(b)
    ctx.sipp_wait(c)
    got_b, cancel = cancelled_leg(ctx, b, "B")
    rang = cancel.when - got_b.when
    check(1.7 <= rang <= 3.5, "B rang %.1f s, the rule says 2 s" % rang)
    got_c = forwarded_leg(ctx, a, c, cport, "102", div(("101", "no-answer")))
    check(abs(got_c.when - cancel.when) < 0.5, "B's CANCEL and C's INVITE belong together")
    in_order(ctx, got_c.get("Call-ID"), ("out", bport, "CANCEL"), ("out", cport, "INVITE"))
    answered_call(ctx, a, c, cport, b_user="102")
    caller_saw(a, "2 INVITE", [100, 180, 181, 180, 200], "forward on no answer")
    check(not a.received(487), "B's 487 must stay at sipbx")
    released(ctx, a, c, "caller", "3 BYE")
    check_forwards(ctx, got_c.get("Call-ID"), ("101", "102", "no-answer"),
                   disposition="ANSWERED", answered_by="102")
    log("  B rang %.1f s" % rang)


@test("forward_unconditional")
def t_forward_unconditional(ctx):
    """An unconditional rule: B (registered) never gets an INVITE; C does, with Diversion
    reason=unconditional."""
    ctx.add_users({"102": "secret102"})
    ctx.forward("101", "unconditional", "102")
    ctx.sync()
    bport, cport = phone(ctx, "101"), phone(ctx, "102")
    listener = quiet(ctx, bport)
    c = ctx.sipp_start("forward_target.xml", user="102", local_port=cport)
    a = ctx.run_sipp("call_caller.xml", user="100", keys={"callee": "101"}, pause_ms=200)
    ctx.sipp_wait(c)
    heard_nothing(listener, "B (unconditional forward)")
    forwarded_leg(ctx, a, c, cport, "102", div(("101", "unconditional")))
    answered_call(ctx, a, c, cport, b_user="102")
    caller_saw(a, "2 INVITE", [100, 181, 180, 200], "unconditional forward")
    released(ctx, a, c, "caller", "3 BYE")
    check_forwards(ctx, a.call_id(), ("101", "102", "unconditional"),
                   disposition="ANSWERED", answered_by="102")


@test("forward_unavailable")
def t_forward_unavailable(ctx):
    """An unavailable rule: B has no registered device, so C rings (Diversion
    reason=unavailable) instead of A getting 480. Then the same with the target written as a
    SIP URI of this PBX (sip:102@127.0.0.1) rather than an extension."""
    ctx.add_users({"102": "secret102"})
    cport = phone(ctx, "102")
    for target in ("102", "sip:102@%s" % DOMAIN):
        ctx.forward("101", "unavailable", target)
        ctx.sync()
        c = ctx.sipp_start("forward_target.xml", user="102", local_port=cport)
        a = ctx.run_sipp("call_caller.xml", user="100", keys={"callee": "101"}, pause_ms=200)
        ctx.sipp_wait(c)
        forwarded_leg(ctx, a, c, cport, "102", div(("101", "unavailable")))
        answered_call(ctx, a, c, cport, b_user="102")
        caller_saw(a, "2 INVITE", [100, 181, 180, 200], "forward when unavailable")
        released(ctx, a, c, "caller", "3 BYE")
        check_forwards(ctx, a.call_id(), ("101", target, "unavailable"),
                       disposition="ANSWERED", answered_by="102")


@test("forward_target_busy")
def t_forward_target_busy(ctx):
    """Forward on busy to a target that is busy too: both phones get their 486 ACKed by
    sipbx, A ends with 486 (after the 181), never a second ring."""
    ctx.add_users({"102": "secret102"})
    ctx.forward("101", "busy", "102")
    ctx.sync()
    bport, cport = phone(ctx, "101"), phone(ctx, "102")
    b = ctx.sipp_start("busy_callee.xml", user="101", local_port=bport)
    c = ctx.sipp_start("busy_callee.xml", user="102", local_port=cport)
    a = ctx.run_sipp("busy_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    ctx.sipp_wait(c)
    failure_acked(ctx, None, b, 486, "B")
    failure_acked(ctx, None, c, 486, "C")
    forwarded_leg(ctx, a, c, cport, "102", div(("101", "user-busy")))
    caller_saw(a, "2 INVITE", [100, 181, 486], "busy forward target")
    r = one(a.received(486), "486 at A")
    relayed(r, "486 at A")
    check(r.tag("To") in {one(x.sent(486), "486").tag("To") for x in (b, c)},
          "A's 486 is from neither phone")
    check_forwards(ctx, a.call_id(), ("101", "102", "user-busy"),
                   disposition="BUSY", status=486)


@test("forward_chain")
def t_forward_chain(ctx):
    """101 -> 102 (unconditional) -> 103 (on busy): 102 gets one Diversion entry, 103 two,
    newest first; A gets a 181 per forward. Then a chain of six unconditional forwards stops
    after SIP_MAX_FORWARDS (5) with 482, and nobody rings."""
    ctx.add_users({"%d" % e: "secret%d" % e for e in range(102, 108)})
    ctx.forward("101", "unconditional", "102")
    ctx.forward("102", "busy", "103")
    ctx.sync()
    bport, cport, dport = phone(ctx, "101"), phone(ctx, "102"), phone(ctx, "103")
    listener = quiet(ctx, bport)
    c = ctx.sipp_start("busy_callee.xml", user="102", local_port=cport)
    d = ctx.sipp_start("forward_target.xml", user="103", local_port=dport)
    a = ctx.run_sipp("call_caller.xml", user="100", keys={"callee": "101"}, pause_ms=200)
    ctx.sipp_wait(c)
    ctx.sipp_wait(d)
    heard_nothing(listener, "101 (unconditional forward)")
    forwarded_leg(ctx, a, c, cport, "102", div(("101", "unconditional")))
    failure_acked(ctx, None, c, 486, "102")
    forwarded_leg(ctx, a, d, dport, "103", div(("102", "user-busy"), ("101", "unconditional")))
    answered_call(ctx, a, d, dport, b_user="103")
    caller_saw(a, "2 INVITE", [100, 181, 181, 180, 200], "chain of two")
    released(ctx, a, d, "caller", "3 BYE")
    check_forwards(ctx, a.call_id(), ("101", "102", "unconditional"),
                   ("102", "103", "user-busy"), disposition="ANSWERED", answered_by="103")

    # six forwards in a row: 101 -> 102 -> ... -> 107
    ctx.db_exec("DELETE FROM forward_rules")
    for e in range(101, 107):
        ctx.forward(str(e), "unconditional", str(e + 1))
    ctx.sync()
    last = phone(ctx, "107")
    listener = quiet(ctx, last)
    a = ctx.run_sipp("loop_caller.xml", user="100", keys={"callee": "101"})
    heard_nothing(listener, "107 (beyond the forward limit)")
    caller_saw(a, "2 INVITE", [100, 181, 181, 181, 181, 181, 482], "six forwards")
    check_forwards(ctx, a.call_id(),
                   *[(str(e), str(e + 1), "unconditional") for e in range(101, 106)],
                   disposition="FAILED", status=482)


@test("forward_loop")
def t_forward_loop(ctx):
    """Forward rules in a circle (101 <-> 102) end, never ring forever: unconditional rules
    end in 482 at once; busy rules end in the last phone's 486; no-answer rules (1 s) ring
    each phone once, then 482."""
    ctx.add_users({"102": "secret102"})
    ctx.forward("101", "unconditional", "102")
    ctx.forward("102", "unconditional", "101")
    ctx.sync()
    bport, cport = phone(ctx, "101"), phone(ctx, "102")
    lb, lc = quiet(ctx, bport), quiet(ctx, cport)
    a = ctx.run_sipp("loop_caller.xml", user="100", keys={"callee": "101"})
    heard_nothing(lb, "101 (unconditional loop)")
    heard_nothing(lc, "102 (unconditional loop)")
    caller_saw(a, "2 INVITE", [100, 181, 181, 482], "unconditional loop")
    check_forwards(ctx, a.call_id(), ("101", "102", "unconditional"),
                   ("102", "101", "unconditional"), status=482)

    ctx.db_exec("DELETE FROM forward_rules")
    ctx.forward("101", "busy", "102")
    ctx.forward("102", "busy", "101")
    ctx.sync()
    b = ctx.sipp_start("busy_callee.xml", user="101", local_port=bport)
    c = ctx.sipp_start("busy_callee.xml", user="102", local_port=cport)
    a = ctx.run_sipp("busy_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    ctx.sipp_wait(c)
    failure_acked(ctx, None, b, 486, "101")
    failure_acked(ctx, None, c, 486, "102")
    check(len(unique(b.received("INVITE"))) == 1, "101 rang twice")
    caller_saw(a, "2 INVITE", [100, 181, 181, 486], "busy loop")

    ctx.db_exec("DELETE FROM forward_rules")
    ctx.forward("101", "no_answer", "102", timeout=1)
    ctx.forward("102", "no_answer", "101", timeout=1)
    ctx.sync()
    b = ctx.sipp_start("cancel_callee.xml", user="101", local_port=bport)
    c = ctx.sipp_start("cancel_callee.xml", user="102", local_port=cport)
    started = time.monotonic()
    a = ctx.run_sipp("loop_caller.xml", user="100", keys={"callee": "101"})
    took = time.monotonic() - started
    ctx.sipp_wait(b)
    ctx.sipp_wait(c)
    cancelled_leg(ctx, b, "101")
    cancelled_leg(ctx, c, "102")
    caller_saw(a, "2 INVITE", [100, 180, 181, 180, 181, 482], "no-answer loop")
    check(took < 6, "the no-answer loop took %.1f s" % took)
    check("forwarding loop" in ctx.daemon_log(), "the loop is not logged")


@test("forward_call_waiting")
def t_forward_call_waiting(ctx):
    """Who is busy after a forward: 100 calls 101, no answer in 1 s, so 102 answers. With call
    waiting off for both, 102 is now busy (a direct call from 103 gets 486 from sipbx and
    102's phone sees no second INVITE) and 101 is not (a call from 103 to 101 rings 101's
    phone and is answered)."""
    ctx.add_users({"102": "secret102", "103": "secret103"})
    ctx.db_exec("UPDATE users SET call_waiting = 0 WHERE extension IN ('101', '102')")
    ctx.forward("101", "no_answer", "102", timeout=1)
    ctx.sync()
    bport, cport = phone(ctx, "101"), phone(ctx, "102")
    b = ctx.sipp_start("cancel_callee.xml", user="101", local_port=bport)
    c = ctx.sipp_start("forward_target.xml", user="102", local_port=cport)
    a = ctx.sipp_start("call_caller.xml", user="100", keys={"callee": "101"}, pause_ms=4000,
                       background=False)
    c.wait_for("ACK at 102", lambda m: m.is_("ACK") and m.direction == "received")
    ctx.sipp_wait(b)
    d = ctx.run_sipp("busy_caller.xml", user="103", keys={"callee": "102"})
    caller_saw(d, "2 INVITE", [100, 486], "call to 102, busy through a forwarded call")
    check("SIPpTag01" not in (one(d.received(486), "486").get("To") or ""),
          "the 486 to 103 came from a phone, not from sipbx")
    b2 = ctx.sipp_start("call_callee.xml", user="101", local_port=bport)
    d2 = ctx.run_sipp("call_caller.xml", user="103", keys={"callee": "101"}, pause_ms=200)
    ctx.sipp_wait(b2)
    answered_call(ctx, d2, b2, bport, a_user="103")
    ctx.sipp_wait(a)
    ctx.sipp_wait(c)
    first = a.call_id()
    check(not [m for m in c.received("INVITE") if m.get("Call-ID") != first],
          "102's phone got a second call while call waiting is off")
    check_forwards(ctx, first, ("101", "102", "no-answer"), disposition="ANSWERED",
                   answered_by="102")
    cdr_is(ctx, d.call_id(), disposition="BUSY", dialled="102")
    cdr_is(ctx, d2.call_id(), disposition="ANSWERED", answered_by="101")


@test("forward_cancel")
def t_forward_cancel(ctx):
    """A gives up while the forward target rings: C gets CANCEL (200, 487, ACK), A gets 200
    for its CANCEL and 487; B's 486 was ACKed before."""
    ctx.add_users({"102": "secret102"})
    ctx.forward("101", "busy", "102")
    ctx.sync()
    bport, cport = phone(ctx, "101"), phone(ctx, "102")
    b = ctx.sipp_start("busy_callee.xml", user="101", local_port=bport)
    c = ctx.sipp_start("cancel_callee.xml", user="102", local_port=cport)
    a = ctx.run_sipp("cancel_caller.xml", user="100", keys={"callee": "101"})
    ctx.sipp_wait(b)
    ctx.sipp_wait(c)
    failure_acked(ctx, None, b, 486, "B")
    forwarded_leg(ctx, a, c, cport, "102", div(("101", "user-busy")))
    cancelled_leg(ctx, c, "C")
    call_id = a.call_id()
    in_order(ctx, call_id, ("in", a.port, "CANCEL"), ("out", cport, "CANCEL"),
             ("in", cport, "487"), ("out", a.port, "487"))
    caller_saw(a, "2 INVITE", [100, 181, 180, 487], "cancel during the forward")
    caller_saw(a, "2 CANCEL", [200], "CANCEL")
    check_forwards(ctx, a.call_id(), ("101", "102", "user-busy"),
                   disposition="CANCELLED", status=487, hangup_by="caller")


# ---------------------------------------------------------------------------------------------
# an end-to-end call between two real softphones (baresip), driven over baresip's ctrl_tcp

class Baresip:
    """One headless baresip for user, with its own config directory: SIP on a free loopback
    port, no sound card (a 440 Hz sine as microphone, a WAV file as speaker), driven by JSON
    commands over its ctrl_tcp socket, which also reports every call event."""

    def __init__(self, ctx, user, binary):
        self.user = user
        self.dir = os.path.join(ctx.tmp, "baresip-%s" % user)
        os.makedirs(self.dir)
        self.sip_port, self.ctrl_port = free_port(), free_port()
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write("poll_method epoll\n"
                    "sip_listen %s:%d\n"
                    "call_local_timeout 120\n"
                    "audio_player aufile,%s\n"
                    "audio_source ausine,440\n"
                    "ausrc_srate 48000\nausrc_channels 2\n"  # all ausine can do; resampled
                    "audio_alert aufile,%s\n"
                    "module_path /usr/lib/baresip/modules\n"
                    "module g711.so\nmodule aufile.so\nmodule ausine.so\nmodule ctrl_tcp.so\n"
                    "module_tmp account.so\nmodule_app menu.so\n"
                    "ctrl_tcp_listen %s:%d\n"
                    % (HOST, self.sip_port, os.path.join(self.dir, "speaker.wav"),
                       os.path.join(self.dir, "alert.wav"), HOST, self.ctrl_port))
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            f.write("<sip:%s@%s:%d>;auth_pass=%s;regint=60;audio_codecs=PCMU\n"
                    % (user, DOMAIN, ctx.port, ctx.users[user]))
        self.logpath = os.path.join(self.dir, "baresip.log")
        with open(self.logpath, "wb") as out:
            # -t: a safety net, should the test die before it quits baresip
            self.proc = subprocess.Popen([binary, "-f", self.dir, "-t", "60"],
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=self.dir)
        self.sock, self.buf, self.events = None, b"", []
        deadline = time.monotonic() + 10
        while self.sock is None:
            try:
                self.sock = socket.create_connection((HOST, self.ctrl_port), timeout=1)
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise TestFailure("baresip %s did not start:\n%s" % (user, self.log()))
                time.sleep(0.1)

    def log(self):
        return open(self.logpath, errors="replace").read()

    def _read(self, deadline):
        """One netstring (a JSON object) or None at the deadline."""
        while True:
            m = re.match(rb"(\d+):", self.buf)
            if m and len(self.buf) >= m.end() + int(m.group(1)) + 1:
                n = int(m.group(1))
                data, self.buf = self.buf[m.end():m.end() + n], self.buf[m.end() + n + 1:]
                return json.loads(data.decode(errors="replace"))
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not chunk:
                raise TestFailure("baresip %s closed its control socket:\n%s" % (
                    self.user, self.log()))
            self.buf += chunk

    def command(self, command, params=""):
        """Runs a menu command (dial, accept, hangup, quit ...) and returns its answer."""
        token = "%x" % random.getrandbits(32)
        msg = json.dumps({"command": command, "params": params, "token": token}).encode()
        self.sock.sendall(b"%d:%s," % (len(msg), msg))
        deadline = time.monotonic() + 5
        while True:
            obj = self._read(deadline)
            if obj is None:
                raise TestFailure("baresip %s: no answer to %s" % (self.user, command))
            if obj.get("event"):
                self.events.append(obj)
            elif obj.get("token") == token:
                return obj

    def wait_event(self, kind, timeout=10.0):
        """Waits for a ua event of type kind (REGISTER_OK, CALL_INCOMING, ...); returns it."""
        deadline = time.monotonic() + timeout
        while True:
            hit = next((e for e in self.events if e.get("type") == kind), None)
            if hit:
                self.events.remove(hit)
                return hit
            obj = self._read(deadline)
            if obj is None:
                raise TestFailure("baresip %s: no %s event (got %s)\n%s" % (
                    self.user, kind, [e.get("type") for e in self.events], self.log()))
            if obj.get("event"):
                self.events.append(obj)

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.command("quit")
            except (TestFailure, OSError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.sock:
            self.sock.close()


@test("baresip_call")
def t_baresip_call(ctx):
    """Two real softphones (baresip 100 and 101, no sound card) register, 100 dials 101, 101
    accepts, both see the call established, 100 hangs up, both see it closed. sipbx's own
    capture shows the ladder of flows.md "Basic call and release" on both legs, and the
    record says ANSWERED."""
    binary = shutil.which("baresip")
    if not binary or not os.path.isdir("/usr/lib/baresip/modules"):
        raise Skip("baresip (with its modules in /usr/lib/baresip/modules) is not installed")
    phones = {}
    try:
        for user in ("100", "101"):
            phones[user] = Baresip(ctx, user, binary)
        a, b = phones["100"], phones["101"]
        # (REGISTER_OK may come before the control socket is up: the user list tells)
        for user, p in phones.items():
            rows = ctx.wait_list(user, "online", timeout=10)
            check(re.match(r"sip:%s\S*@%s:%d" % (user, re.escape(HOST), p.sip_port), rows[0][1])
                  and "baresip" in rows[0][2], "%s's binding: %s" % (user, rows))
        a.command("dial", "101")
        incoming = b.wait_event("CALL_INCOMING")
        a.wait_event("CALL_RINGING")  # B's 180, relayed
        b.command("accept")
        a.wait_event("CALL_ESTABLISHED")
        b.wait_event("CALL_ESTABLISHED")
        time.sleep(1.0)  # a second of audio both ways
        a.command("hangup")
        a.wait_event("CALL_CLOSED")
        b.wait_event("CALL_CLOSED")
        log("  baresip 101 got: %s" % incoming.get("param", ""))
    finally:
        for p in phones.values():
            p.stop()
    rows = ctx.db_exec("SELECT * FROM cdrs")
    check(len(rows) == 1, "want one call record, got %s" % rows)
    call_id = rows[0]["call_id"]
    cdr_is(ctx, call_id, disposition="ANSWERED", caller="100", dialled="101",
           answered_by="101", hangup_by="caller", status=200)
    check("baresip" in rows[0]["user_agent"], "caller's User-Agent: %r" % rows[0]["user_agent"])
    # both legs, as sipbx captured them
    want = [("in", a.sip_port, "INVITE"), ("out", a.sip_port, "407"),
            ("in", a.sip_port, "ACK"), ("in", a.sip_port, "INVITE"),
            ("out", b.sip_port, "INVITE"), ("in", b.sip_port, "180"),
            ("out", a.sip_port, "180"), ("in", b.sip_port, "200"),
            ("out", a.sip_port, "200"), ("in", a.sip_port, "ACK"),
            ("out", b.sip_port, "ACK"), ("in", a.sip_port, "BYE"),
            ("out", b.sip_port, "BYE"), ("in", b.sip_port, "200"),
            ("out", a.sip_port, "200")]
    got = captured(ctx, call_id, lambda ladder: ladder == want)
    check(got == want, "the captured ladder:\n%s\nwant:\n%s" % (
        "\n".join(map(str, got)), "\n".join(map(str, want))))


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sipbx", help="the sipbx binary to test")
    ap.add_argument("--sipp", default=shutil.which("sipp"), help="the sipp binary")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--list", action="store_true", help="list the tests and exit")
    ap.add_argument("test", nargs="?")
    a = ap.parse_args()
    if a.list:
        print("\n".join(TESTS))
        return 0
    if not a.test or a.test not in TESTS or not a.sipbx:
        ap.error("need --sipbx and one of: %s" % ", ".join(TESTS))
    fn, serve_args = TESTS[a.test]
    started = time.monotonic()
    ctx = Ctx(a.sipbx, a.sipp, a.keep)
    failed = True
    try:
        ctx.start(*serve_args)
        ctx.add_users()
        fn(ctx)
        ctx.stop()
        failed = False
    except Skip as e:
        log("SKIP %s: %s" % (a.test, e))
        ctx.cleanup(False)
        return 77
    except TestFailure as e:
        log("FAIL %s: %s" % (a.test, e))
    except Exception:
        traceback.print_exc()
        log("FAIL %s: the runner raised" % a.test)
    finally:
        if ctx.proc and failed:
            # still stop it properly, so its own report (if any) lands in the log
            try:
                ctx.stop()
            except TestFailure as e:
                log("also: %s" % e)
    ctx.cleanup(failed)
    if not failed:
        log("PASS %s (%.1f s)" % (a.test, time.monotonic() - started))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
