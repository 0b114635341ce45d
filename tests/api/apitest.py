"""Shared pieces of the REST API tests: a sipbx daemon on free loopback ports, an HTTP
client that speaks JSON, and a raw SIP REGISTER with digest authentication.

Each test module is a unittest module run as
    python3 test_X.py --sipbx PATH/TO/sipbx
and starts its own daemon (with its own database in a temporary directory) per test class.
Only the Python standard library is used.
"""

import argparse
import hashlib  # noqa: F401  (tests reach some modules through this one: apitest.hashlib)
import http.client
import json
import os
import random
import re
import select
import shutil
import signal  # noqa: F401  (apitest.signal, as test_events.py uses it)
import socket
import sqlite3
import string
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sipbxtest import digest, process, sanitizers  # noqa: E402  (after the path is set)
from sipbxtest.net import free_port  # noqa: E402,F401  (apitest.free_port, as before)

SIPBX = None  # path of the binary, set by main()
SIPP = None  # path of sipp when given (--sipp), else None


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value)
        self.body = body  # bytes
        self._json = None

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all_headers(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def json(self):
        if self._json is None:
            self._json = json.loads(self.body.decode())
        return self._json

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:300])


class Daemon:
    """A `sipbx serve` on free loopback ports with a database of its own.

    dir is the directory of the database and the logs: a new temporary one when None,
    otherwise an existing one (a daemon started again on the same database). sip_port and
    http_port default to free ports; env is the daemon's environment (default ours with the
    sanitizer options of sipbxtest.sanitizers)."""

    preexec = None  # run in the child before sipbx starts (e.g. to set its limits)

    def __init__(self, extra_args=(), dir=None, sip_port=None, http_port=None, env=None):
        self.restarted = dir is not None and os.path.exists(os.path.join(dir, "sipbx.db"))
        self.dir = dir or tempfile.mkdtemp(prefix="sipbx-api-")
        self.db = os.path.join(self.dir, "sipbx.db")
        self.sip_port = sip_port or free_port()
        self.http_port = http_port or free_port()
        self.admin_password = None
        self.stdout_lines = []
        args = [SIPBX, "serve", "--sip", "127.0.0.1:%d" % self.sip_port,
                "--http", "127.0.0.1:%d" % self.http_port, "--domain", "127.0.0.1",
                "--db", self.db] + list(extra_args)
        # one log per start, so those of earlier daemons on the directory stay readable
        n = len([f for f in os.listdir(self.dir) if f.startswith("stderr")])
        self.stderr_path = os.path.join(self.dir, "stderr-%d.txt" % n)
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.stderr,
                                     env=env if env is not None else sanitizers.env(),
                                     preexec_fn=self.preexec)
        self._read_banner()
        self._wait_ready()

    def _read_banner(self):
        deadline = time.time() + 20
        buf = b""
        fd = self.proc.stdout.fileno()
        while time.time() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
                m = re.search(rb"password '([^']+)'", buf)
                # A first start prints the new admin's password last; a start on an
                # existing database (dir given) has none to print.
                if b"REST API: " in buf and (m or (self.restarted and b"Dashboard: " in buf)):
                    self.admin_password = m.group(1).decode() if m else None
                    self.stdout_lines = buf.decode().splitlines()
                    return
            elif self.proc.poll() is not None:
                break
        self.stop(check=False)
        raise RuntimeError("sipbx did not start: stdout %r, stderr %r" % (buf, self.log()))

    def _wait_ready(self):
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if self.request("GET", "/api/v1/health").status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("sipbx does not answer on HTTP: %s" % self.log())

    def log(self):
        if not self.stderr.closed:
            self.stderr.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def _close(self):
        if self.proc.stdout:
            self.proc.stdout.close()
        self.stderr.close()

    def stop(self, check=True, keep=False):
        """SIGTERM, then (with check) the exit status must be 0 and the log free of
        sanitizer reports. The directory is removed unless keep."""
        rc, killed = process.stop(self.proc, timeout=30)
        self._close()
        log = self.log()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        if check:
            if killed:
                raise AssertionError("sipbx did not stop on SIGTERM: " + log)
            if rc != 0:
                raise AssertionError("sipbx exited with %d: %s" % (rc, log))
            bad = sanitizers.report(log)
            if bad:
                raise AssertionError("sanitizer report (%s) in the log:\n%s" % (bad, log))

    # ---- HTTP ----

    def request(self, method, path, body=None, token=None, headers=None, raw=None,
                content_type="application/json"):
        """One request on a fresh connection. body is JSON-encoded; raw is sent as is."""
        h = dict(headers or {})
        data = None
        if raw is not None:
            data = raw if isinstance(raw, bytes) else raw.encode()
        elif body is not None:
            data = json.dumps(body).encode()
        if data is not None and content_type and "Content-Type" not in h:
            h["Content-Type"] = content_type
        if token:
            h["Authorization"] = "Bearer " + token
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=30)
        try:
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            return Response(resp.status, resp.getheaders(), resp.read())
        finally:
            conn.close()

    def login(self, username="admin", password=None):
        """Logs in; returns (cookie header value, csrf token)."""
        r = self.request("POST", "/api/v1/session",
                         {"username": username, "password": password or self.admin_password})
        if r.status != 200:
            raise AssertionError("log-in failed: %r" % r)
        cookie = r.header("Set-Cookie").split(";")[0]
        return cookie, r.json["csrf_token"]

    def create_token(self, name="test"):
        """A token made with the CLI, as an operator would."""
        out = subprocess.run([SIPBX, "token", "create", name, "--db", self.db],
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise AssertionError("token create failed: " + out.stderr)
        return out.stdout.strip()

    def db_query(self, sql, args=()):
        con = sqlite3.connect(self.db, timeout=10)
        try:
            rows = con.execute(sql, args).fetchall()
            con.commit()
            return rows
        finally:
            con.close()


def parse_metrics(text):
    """{'name{labels}': value} of a Prometheus text exposition, checking its syntax."""
    out, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#") or not line:
            continue
        m = re.match(r'^([a-z_]+)(\{[a-z_]+="[^"]*"(?:,[a-z_]+="[^"]*")*\})? (\d+(?:\.\d+)?)$',
                     line)
        assert m, "bad metrics line: %r" % line
        assert m.group(1) in typed, "no TYPE for " + m.group(1)
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


# ---- SIP ----

def _rand(n=10):
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(n))


class SipPhone:
    """A UDP SIP client that can REGISTER with digest credentials."""

    def __init__(self, server_port, user_agent="sipbx-api-test", port=0):
        """port: the local UDP port (0: any free one)."""
        self.server = ("127.0.0.1", server_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if port:
            # a port picked beforehand, which a SIPp UAS takes over once this phone is gone
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(5)
        self.port = self.sock.getsockname()[1]
        self.user_agent = user_agent
        self.call_id = _rand() + "@127.0.0.1"
        self.cseq = 0

    def close(self):
        self.sock.close()

    def _send(self, ext, expires, auth=None):
        self.cseq += 1
        lines = [
            "REGISTER sip:127.0.0.1 SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s;rport" % (self.port, _rand()),
            "Max-Forwards: 70",
            "From: <sip:%s@127.0.0.1>;tag=%s" % (ext, _rand()),
            "To: <sip:%s@127.0.0.1>" % ext,
            "Call-ID: " + self.call_id,
            "CSeq: %d REGISTER" % self.cseq,
            "Contact: <sip:%s@127.0.0.1:%d>" % (ext, self.port),
            "Expires: %d" % expires,
            "User-Agent: " + self.user_agent,
        ]
        if auth:
            lines.append("Authorization: " + auth)
        lines += ["Content-Length: 0", "", ""]
        self.sock.sendto("\r\n".join(lines).encode(), self.server)
        while True:
            data, _ = self.sock.recvfrom(65535)
            text = data.decode(errors="replace")
            status = int(text.split(" ", 2)[1])
            if status >= 200:
                return status, text

    def register(self, ext, password, expires=60):
        """REGISTER, answer the 401 challenge; returns the final status."""
        status, text = self._send(ext, expires)
        if status != 401:
            return status
        m = re.search(r"^WWW-Authenticate:\s*(Digest\s+.*)$", text, re.M | re.I)
        ch = digest.challenge(m.group(1))
        auth = digest.authorization(ext, password, ch, "sip:127.0.0.1", cnonce=_rand(),
                                    qop="qop" in ch)
        status, _ = self._send(ext, expires, auth)
        return status


def register(daemon, ext, password, expires=60):
    """One REGISTER from a fresh phone; returns the final status."""
    p = SipPhone(daemon.sip_port)
    try:
        return p.register(ext, password, expires)
    finally:
        p.close()


# ---- test plumbing ----

class DaemonTest(unittest.TestCase):
    """A test class with one daemon (of daemon_class, started with daemon_args) and one API
    token for all its tests."""

    daemon_class = Daemon
    daemon_args = ()

    @classmethod
    def setUpClass(cls):
        cls.d = cls.daemon_class(cls.daemon_args)
        cls.token = cls.d.create_token("tests")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop(keep=False)

    def api(self, method, path, body=None, **kw):
        kw.setdefault("token", self.token)
        return self.d.request(method, path, body, **kw)

    @classmethod
    def create_user(cls, ext, password, **fields):
        """POST /api/v1/users (fields: display_name, ...); fails unless it is 201. A class
        method, so that setUpClass can add users too."""
        r = cls.d.request("POST", "/api/v1/users", dict(fields, extension=ext, password=password),
                          token=cls.token)
        if r.status != 201:
            raise AssertionError("cannot add user %s: %r" % (ext, r))
        return r

    def assertError(self, r, status, code=None, mentions=None):
        """r is a JSON error of status (and code), whose message names mentions."""
        self.assertEqual(r.status, status, r)
        self.assertTrue(r.header("Content-Type").startswith("application/json"), r.headers)
        err = r.json["error"]
        self.assertIsInstance(err["code"], str)
        self.assertIsInstance(err["message"], str)
        if code:
            self.assertEqual(err["code"], code, r)
        if mentions:
            self.assertIn(mentions, err["message"], r)

    def wait_for(self, fn, timeout=3.0, msg=None):
        """Polls fn until it returns true; returns its last value. With msg, the test fails
        with it when fn is still false after timeout seconds."""
        deadline = time.time() + timeout
        while True:
            v = fn()
            if v or time.time() > deadline:
                if not v and msg:
                    self.fail("%s (after %g s)" % (msg, timeout))
                return v
            time.sleep(0.02)


def main():
    global SIPBX, SIPP
    ap = argparse.ArgumentParser()
    ap.add_argument("--sipbx", required=True)
    ap.add_argument("--sipp", default="")
    args, rest = ap.parse_known_args()
    SIPBX = os.path.abspath(args.sipbx)
    SIPP = args.sipp or shutil.which("sipp")
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
