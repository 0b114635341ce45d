"""Helpers for REST API tests that need live traffic: a reader of the server-sent event
stream (/api/v1/events) and a call between two SIPp phones through the daemon.

A call: the callee registers over raw UDP (apitest.SipPhone) from a port that a SIPp UAS
(sipp/uas.xml: rings 1.5 s, answers, waits for BYE) then listens on; a SIPp UAC
(sipp/uac.xml) calls it, answers the 407 challenge, talks 1.5 s and hangs up. Python
standard library only; SIPp is looked up on PATH (tests skip when it is missing).
"""

import http.client
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from apitest import SipPhone

HERE = os.path.dirname(os.path.abspath(__file__))
SIPP = shutil.which("sipp")


class EventStream:
    """GET /api/v1/events, read one event (a block of lines ending in a blank line) at a
    time."""

    def __init__(self, daemon, token=None, headers=None, timeout=10, query=""):
        h = {"Accept": "text/event-stream"}
        h.update(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        self.conn = http.client.HTTPConnection("127.0.0.1", daemon.http_port, timeout=timeout)
        self.conn.request("GET", "/api/v1/events" + query, headers=h)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.body = b"" if self.status == 200 else self.resp.read()

    def header(self, name):
        return self.resp.getheader(name)

    def next(self, timeout=10):
        """The next block as a dict of its fields ("event", "id", "data", "retry", and
        "comment" for a ': ...' line); None at the end of the stream. Raises
        socket.timeout when nothing complete arrives in time."""
        self.conn.sock.settimeout(timeout)
        block = {}
        while True:
            line = self.resp.readline()
            if not line:
                return None
            line = line.decode().rstrip("\n")
            if line == "":
                if block:
                    return block
                continue
            if line.startswith(":"):
                block["comment"] = line[1:].strip()
                continue
            name, _, value = line.partition(":")
            block[name] = value[1:] if value.startswith(" ") else value

    def next_event(self, timeout=10):
        """The next block that is an event (skipping retry and keepalive lines)."""
        deadline = time.time() + timeout
        while True:
            b = self.next(max(0.1, deadline - time.time()))
            if b is None or "event" in b:
                return b

    def wait_for(self, pred, timeout=10):
        """Reads events until pred(event) holds; returns it and the ones skipped."""
        deadline = time.time() + timeout
        skipped = []
        while True:
            b = self.next_event(max(0.1, deadline - time.time()))
            if b is None:
                raise AssertionError("the event stream ended; skipped %r" % skipped)
            if pred(b):
                return b, skipped
            skipped.append(b)

    def close(self):
        self.conn.close()


class Call:
    """One call from caller to callee through the daemon, both phones SIPp processes.
    start() returns at once; wait() waits for both phones and fails on an error."""

    def __init__(self, daemon, caller, caller_password, callee, callee_password, dial=None):
        """callee's phone answers; dial is the number called (default callee: another
        number reaches callee's phone by forwarding)."""
        if not SIPP:
            raise unittest.SkipTest("sipp is not installed")
        self.d = daemon
        self.caller, self.caller_password = caller, caller_password
        self.callee, self.callee_password = callee, callee_password
        self.dial = dial or callee
        self.tmp = tempfile.mkdtemp(prefix="sipbx-call-")
        self.procs = []

    def _sipp(self, name, args):
        stem = os.path.join(self.tmp, name)
        cmd = [SIPP, "-sf", os.path.join(HERE, "sipp", name + ".xml"), "-i", "127.0.0.1",
               "-t", "u1", "-m", "1", "-nostdin", "-timeout", "30s", "-timeout_error",
               "-trace_msg", "-message_file", stem + ".msg",
               "-trace_err", "-error_file", stem + ".err"] + args
        out = open(stem + ".out", "wb")
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=self.tmp)
        self.procs.append((name, p, out))
        return p

    def start(self):
        # The callee's Contact is the port of a phone that registers and goes; the UAS
        # then listens there.
        phone = SipPhone(self.d.sip_port)
        port = phone.port
        status = phone.register(self.callee, self.callee_password, expires=120)
        phone.close()
        if status != 200:
            raise AssertionError("callee %s did not register: %d" % (self.callee, status))
        self._sipp("uas", ["-p", str(port)])
        time.sleep(0.3)  # the UAS binds its port before the INVITE comes
        self._sipp("uac", ["-s", self.dial, "-key", "user", self.caller,
                           "-au", self.caller, "-ap", self.caller_password,
                           "-p", str(free_udp_port()),
                           "127.0.0.1:%d" % self.d.sip_port])
        return self

    def wait(self, timeout=40):
        failed = []
        for name, p, out in self.procs:
            try:
                rc = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                rc = "timeout"
            out.close()
            if rc != 0:
                failed.append("sipp %s: %s\n%s" % (name, rc, self._logs(name)))
        shutil.rmtree(self.tmp, ignore_errors=True)
        if failed:
            raise AssertionError("\n".join(failed))

    def _logs(self, name):
        text = ""
        for ext in (".out", ".err", ".msg"):
            path = os.path.join(self.tmp, name + ext)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    text += "--- %s%s\n%s\n" % (name, ext, f.read()[-4000:])
        return text


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
