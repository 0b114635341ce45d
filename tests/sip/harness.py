"""The harness of the SIP protocol tests (tests/sip/test_*.py, run by run.py): the daemon under
test with its CLI and database (Ctx), a raw SIP client (SipClient), SIP messages as sent and
as SIPp logged them, SIPp phones (SippRun), digest helpers, and the registry of tests (@test).

Each test gets a Ctx: a temporary directory and database, `sipbx serve` on 127.0.0.1 (domain
127.0.0.1) on free ports, users 100 and 101 added with the CLI; the test may restart the
daemon, add users and forward rules, and run SIPp phones against it. Ports, sanitizer options,
digest answers and SIPp processes come from tests/lib/sipbxtest, shared with the API, records
and security tests and the benchmark. Python standard library only.
"""

import datetime
import glob
import importlib.util
import os
import random
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from sipbxtest import digest, process, sanitizers  # noqa: E402  (after the path is set)
from sipbxtest.digest import md5hex, response as digest_response  # noqa: E402,F401
from sipbxtest.net import DOMAIN, HOST, free_port, sip_ping, udp_bound  # noqa: E402,F401
from sipbxtest.sipp import Sipp  # noqa: E402

USERS = {"100": "secret100", "101": "secret101"}
SIPP_TIMEOUT = "20s"
SANITIZER_MARKS = sanitizers.MARKS  # what fails a test in the daemon's output


class TestFailure(AssertionError):
    pass


class Skip(unittest.SkipTest):
    """A tool the test needs is missing (exit status 77); sipbxtest raises its parent."""


def check(cond, what):
    if not cond:
        raise TestFailure(what)


def log(msg):
    print(msg, flush=True)


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
    return digest.challenge(value)


def authorization(user, password, chal, method="REGISTER", uri=None, nc=1, cnonce="0a4f113b",
                  qop=True):
    """An Authorization value answering chal (a parsed challenge), in the usual client shape."""
    return digest.authorization(user, password, chal, uri or "sip:%s" % DOMAIN, method, nc,
                                cnonce, qop)


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


class SippRun(Sipp):
    """One SIPp phone of a test (sipbxtest.sipp.Sipp) and the messages it logged."""

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


# ---------------------------------------------------------------------------------------------
# the daemon, the CLI and SIPp

class Ctx:
    """One test's world: a temporary directory, its database, one daemon at a time."""

    def __init__(self, sipbx, sipp, keep):
        self.sipbx = os.path.abspath(sipbx)
        self.sipp_bin = sipp
        self.keep = keep
        self.tmp = tempfile.mkdtemp(prefix="sipbx-sip-")
        self.db = os.path.join(self.tmp, "sipbx.db")
        self.env = sanitizers.env()
        self.proc = None
        self.port = None
        self.serve_args = []
        self.runs = 0
        self.logs = []
        self.users = dict(USERS)  # every user added so far: extension -> password
        self.sipps = []           # every SIPp run, for the logs of a failed test
        self.tcp = False          # phones on TCP: SIPp -t t1 (the tests named *_tcp)
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
            text = process.read_text(logpath)
            self.proc = None
            if "port in use" in text and port is None:
                continue  # another test took the port between the probe and the bind
            raise TestFailure("sipbx serve did not start:\n%s" % text)
        raise TestFailure("sipbx serve could not find a free port")

    def _wait_ready(self):
        """True once the daemon answers OPTIONS with 200 (within 15 s), False when it died."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if sip_ping(self.port, timeout=0.2) == 200:
                return True
        return False

    def stop(self):
        """SIGTERM; the daemon must exit 0 within 15 s without a sanitizer report."""
        if not self.proc:
            return
        proc, self.proc = self.proc, None
        rc, killed = process.stop(proc, timeout=15)
        check(not killed, "sipbx did not stop within 15 s of SIGTERM")
        text = self.daemon_log()
        bad = sanitizers.report(text)
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
        return process.read_text(self.logs[-1]) if self.logs else ""

    # -- CLI
    def cli(self, *args):
        p = subprocess.run([self.sipbx] + list(args) + ["--db", self.db], env=self.env,
                           cwd=self.tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=30)
        out = p.stdout.decode(errors="replace")
        check(sanitizers.report(out) is None, "sanitizer report from sipbx %s:\n%s" % (args, out))
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
                   keys=None, transport=None, cid_str=None, calls=1, pause_ms=None,
                   background=True, timeout=None, args=()):
        """Starts SIPp on a scenario (calls of it, each with its own Call-ID) and, in the
        background, returns once it listens on its port, so a phone is ready for the INVITE
        that follows. cid_str shapes [call_id] (sipp maps answers to calls by Call-ID, so
        scenarios must use [call_id] as it is); pause_ms is the length of <pause/> (-d);
        timeout, what a call may last (a SIPp duration, SIPP_TIMEOUT unless given); args
        more of SIPp's command line."""
        if not self.sipp_bin:
            raise Skip("sipp not found")
        transport = transport or ("t1" if self.tcp else "u1")
        path = os.path.join(HERE, scenario)
        if self.tcp and transport == "t1":
            path = self.tcp_scenario(scenario)
        extra = args
        auth_user = auth_user or user
        password = password or self.users.get(auth_user, "none")
        local_port = local_port or free_port()
        name = os.path.splitext(os.path.basename(scenario))[0]
        args = ["-au", auth_user, "-ap", password]
        if cid_str:
            args += ["-cid_str", cid_str]
        if pause_ms is not None:
            args += ["-d", str(pause_ms)]
        args += list(extra)
        run = SippRun(self.tmp, path, local_port, args,
                      remote="%s:%d" % (HOST, self.port),
                      keys=dict({"user": user, "domain": DOMAIN}, **(keys or {})), calls=calls,
                      transport=transport, name="%s-%d-%d" % (name, local_port, len(self.sipps)),
                      timeout=timeout or SIPP_TIMEOUT, binary=self.sipp_bin)
        self.sipps.append(run)
        if background:
            run.wait_bound()
        return run

    def tcp_scenario(self, scenario):
        """A copy of scenario for SIPp over TCP (-t t1): what it checks of sipbx's Via and
        Record-Route says TCP, the rest is the same flow (the tests named *_tcp)."""
        out = os.path.join(self.tmp, "tcp-" + os.path.basename(scenario))
        if not os.path.exists(out):
            text = process.read_text(os.path.join(HERE, scenario))
            text = text.replace(r"SIP/2\.0/UDP", r"SIP/2\.0/TCP")
            text = text.replace(r"[0-9]+;lr;sbx=", r"[0-9]+;transport=tcp;lr;sbx=")
            with open(out, "w") as f:
                f.write(text)
        return out

    def sipp_wait(self, run, timeout=45):
        """Waits for a SIPp run to end; it must have succeeded. Returns run."""
        rc = run.wait(timeout, check=False)
        if rc == "timeout":
            raise TestFailure("sipp %s did not end within %d s" % (run.scenario, timeout))
        if rc != 0:
            raise TestFailure("sipp %s exited %d\n%s" % (run.scenario, rc,
                                                        process.read_text(run.stem + ".err")))
        log("  sipp %s: ok" % run.scenario)
        return run

    def cleanup(self, failed):
        self.kill()
        for run in self.sipps:
            run.kill()
        if failed:
            for run in self.sipps:
                log("=== sipp %s (port %d):\n%s" % (run.scenario, run.port, run.logs(tail=None)))
            for path in self.logs:
                log("--- %s:\n%s" % (os.path.basename(path), process.read_text(path)))
        if self.keep:
            log("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def with_tls(ctx):
    """Starts the test's daemon again with SIP over TLS on a free port (ctx.tls_port); the
    certificate is generated in its data directory on this first start."""
    ctx.stop()
    ctx.tls_port = free_port()
    ctx.start(*ctx.serve_args, "--sip-tls", "%s:%d" % (HOST, ctx.tls_port), port=ctx.port)


# ---------------------------------------------------------------------------------------------
# the registry: each test_*.py beside this file registers its tests with @test

TESTS = {}  # name -> (function, serve_args)


def test(name, serve_args=()):
    """Registers the decorated function as the SIP test name (ctest: sip_<name>). run.py calls
    it with a Ctx whose daemon was started with serve_args (flags of `sipbx serve`) and has
    users 100 and 101, and stops the daemon after it."""
    def deco(fn):
        if not re.fullmatch(r"[a-z0-9_]+", name):
            raise ValueError("test name %r: lower-case letters, digits and _ only" % name)
        if name in TESTS:
            raise ValueError("two tests named %s: %s and %s" % (
                name, TESTS[name][0].__module__, fn.__module__))
        TESTS[name] = (fn, list(serve_args))
        return fn
    return deco


def load_tests():
    """Loads every test_*.py beside this file, in name order, each by its path as the module
    sip_test_<area> (tests/api has a test_auth.py too, and either directory may be on the
    path first); returns TESTS."""
    for path in sorted(glob.glob(os.path.join(HERE, "test_*.py"))):
        name = "sip_" + os.path.splitext(os.path.basename(path))[0]
        if name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return TESTS
