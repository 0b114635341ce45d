#!/usr/bin/env python3
"""Runs one registrar protocol test (tests/sip/) against a private sipbx daemon.

    run.py --sipbx PATH [--sipp PATH] [--keep] TEST        run.py --list

For the named test: picks free loopback ports, makes a temporary directory and database, starts
`sipbx serve` on 127.0.0.1 (domain 127.0.0.1), adds users 100 and 101 with the CLI and waits
until the daemon knows them, runs the test's SIPp scenarios and raw-socket checks, then stops
the daemon with SIGTERM and requires exit status 0 and no sanitizer report. Exit status 0 on
success, 1 on failure, 77 when a tool the test needs is missing (ctest SKIP_RETURN_CODE).
Python standard library only.
"""

import argparse
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = "127.0.0.1"
DOMAIN = "127.0.0.1"
USERS = {"100": "secret100", "101": "secret101"}
SIPP_TIMEOUT = "15s"
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
        self.headers = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and self.headers:
                name, value = self.headers[-1]
                self.headers[-1] = (name, value + " " + line.strip())
            elif ":" in line:
                name, value = line.split(":", 1)
                self.headers.append((name.strip(), value.strip()))

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

    def __init__(self, server_port, transport="udp"):
        self.server = (HOST, server_port)
        self.transport = transport
        if transport == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind((HOST, 0))
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

    def add_users(self):
        """Adds 100 and 101, then waits until the daemon authenticates them: a query (REGISTER
        without Contact) gets 200 once the user is known, and changes nothing."""
        for ext, pw in USERS.items():
            self.cli("user", "add", ext, "--password", pw)
        c = SipClient(self.port)
        try:
            deadline = time.monotonic() + 10
            pending = dict(USERS)
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
    def sipp(self, scenario, user="100", password=None, auth_user=None, local_port=None,
             keys=None, transport="u1", cid_str=None):
        """Runs one call of a scenario against the daemon; fails with SIPp's logs unless
        every call succeeded. cid_str shapes [call_id] (sipp maps answers to calls by
        Call-ID, so scenarios must use [call_id] as it is). Returns the local port used (the
        Contact's port)."""
        if not self.sipp_bin:
            raise Skip("sipp not found")
        auth_user = auth_user or user
        password = password or USERS[auth_user]
        local_port = local_port or free_port()
        name = os.path.splitext(os.path.basename(scenario))[0]
        stem = os.path.join(self.tmp, "%s-%d" % (name, local_port))
        cmd = [self.sipp_bin, "-sf", os.path.join(HERE, scenario),
               "-key", "user", user, "-key", "domain", DOMAIN]
        for k, v in (keys or {}).items():
            cmd += ["-key", k, v]
        cmd += ["-au", auth_user, "-ap", password, "%s:%d" % (HOST, self.port),
                "-i", HOST, "-p", str(local_port), "-t", transport, "-m", "1", "-nostdin",
                "-timeout", SIPP_TIMEOUT, "-timeout_error",
                "-trace_msg", "-message_file", stem + ".msg",
                "-trace_err", "-error_file", stem + ".err"]
        if cid_str:
            cmd += ["-cid_str", cid_str]
        with open(stem + ".out", "wb") as out:
            p = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=self.tmp,
                               timeout=40)
        if p.returncode != 0:
            parts = ["sipp %s exited %d" % (scenario, p.returncode)]
            for ext in (".err", ".msg"):
                if os.path.exists(stem + ext):
                    parts.append("--- %s%s:\n%s" % (name, ext, open(stem + ext,
                                                                     errors="replace").read()))
            raise TestFailure("\n".join(parts))
        log("  sipp %s: ok" % scenario)
        return local_port

    def cleanup(self, failed):
        self.kill()
        if failed:
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
        import traceback
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
