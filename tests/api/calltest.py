"""Helpers for tests that need live traffic (tests/api and tests/records): a reader of the
server-sent event stream (/api/v1/events), a phone registered from the port a SIPp UAS then
answers on, and a call between two SIPp phones through the daemon. SIPp runs are
sipbxtest.sipp.Sipp (tests/lib), importable from here as before.

A call: the callee registers over raw UDP (register_from) from a port that a SIPp UAS
(sipp/uas.xml: rings 1.5 s, answers, waits for BYE) then listens on; a SIPp UAC
(sipp/uac.xml) calls it, answers the 407 challenge, talks 1.5 s and hangs up. Python
standard library only; SIPp is looked up on PATH (tests skip when it is missing).
"""

import http.client
import os
import shutil
import tempfile
import time
import unittest

from apitest import SipPhone, free_port
from sipbxtest.net import udp_bound  # noqa: F401  (calltest.udp_bound, as before)
from sipbxtest.process import read_text  # noqa: F401  (calltest.read_text, as before)
from sipbxtest.sipp import SIPP, Sipp

HERE = os.path.dirname(os.path.abspath(__file__))


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


def register_from(daemon, ext, password, port, expires=3600, user_agent="sipbx-api-test"):
    """REGISTERs ext with Contact 127.0.0.1:port, sent from that port (sipbx reaches a
    phone where its REGISTER came from), so a SIPp UAS on the port gets the calls."""
    p = SipPhone(daemon.sip_port, user_agent=user_agent, port=port)
    try:
        status = p.register(ext, password, expires)
    finally:
        p.close()
    if status != 200:
        raise AssertionError("REGISTER of %s from port %d: %d" % (ext, port, status))


class Call:
    """One call from caller to callee through the daemon, both phones SIPp processes.
    start() returns at once; wait() waits for both phones and fails on an error."""

    def __init__(self, daemon, caller, caller_password, callee, callee_password, dial=None):
        """callee's phone answers; dial is the number called (default callee: another
        number reaches callee's phone by forwarding)."""
        if not SIPP:
            raise unittest.SkipTest("sipp not found")
        self.d = daemon
        self.caller, self.caller_password = caller, caller_password
        self.callee, self.callee_password = callee, callee_password
        self.dial = dial or callee
        self.tmp = tempfile.mkdtemp(prefix="sipbx-call-")
        self.sipps = []

    def _sipp(self, name, **kw):
        s = Sipp(self.tmp, os.path.join(HERE, "sipp", name + ".xml"), **kw)
        self.sipps.append(s)
        return s

    def start(self):
        # The callee's Contact is the port of a phone that registers and goes; the UAS
        # then listens there.
        port = free_port()
        register_from(self.d, self.callee, self.callee_password, port, expires=120)
        self._sipp("uas", port=port).wait_bound()
        self._sipp("uac", args=["-s", self.dial, "-au", self.caller,
                                "-ap", self.caller_password],
                   keys={"user": self.caller}, remote="127.0.0.1:%d" % self.d.sip_port)
        return self

    def wait(self, timeout=40):
        failed = []
        for s in self.sipps:
            try:
                s.wait(timeout)
            except AssertionError as e:
                failed.append(str(e))
        shutil.rmtree(self.tmp, ignore_errors=True)
        if failed:
            raise AssertionError("\n".join(failed))
