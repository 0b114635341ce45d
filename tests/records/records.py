"""Shared pieces of the call record and trace tests (tests/records/): a sipbx daemon that can
be stopped and started again on the same database, callers and callees running the call
scenarios in this directory, and readers of the CDR and trace endpoints.

Builds on tests/api/apitest.py (the HTTP client, free ports, the DaemonTest plumbing) and
tests/api/calltest.py (SIPp runs, phones registered from the port a SIPp UAS then answers
on). Python standard library only; SIPp for the calls and tshark for the pcap checks (tests
that need a missing tool are skipped).
"""

import os
import random
import select
import shutil
import signal
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "api"))
import apitest  # noqa: E402  (after the path is set)
from calltest import Sipp, register_from  # noqa: E402
from sipbxtest.net import DOMAIN, HOST  # noqa: E402
from sipbxtest.sanitizers import env as sanitizer_env  # noqa: E402,F401  (for CLI runs)

PASSWORDS = {"100": "secret100", "101": "secret101", "102": "secret102", "103": "secret103"}
TSHARK = shutil.which("tshark")


class Daemon(apitest.Daemon):
    """apitest's daemon, but on a directory that outlives it: stop() keeps the database
    unless told otherwise, and a new Daemon(dir=...) starts again on it (with the same
    ports, so phones registered before still reach it)."""

    def __init__(self, extra_args=(), dir=None, sip_port=None, http_port=None):
        self.restarted = dir is not None and os.path.exists(os.path.join(dir, "sipbx.db"))
        super().__init__(extra_args, dir, sip_port, http_port)

    def _read_banner(self):
        if not self.restarted:
            return super()._read_banner()
        # A second start prints no password: the banner ends with the REST API line.
        deadline, buf, fd = time.time() + 20, b"", self.proc.stdout.fileno()
        while time.time() < deadline and b"REST API: " not in buf:
            if self.proc.poll() is not None:
                break
            if select.select([fd], [], [], 0.2)[0]:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
        if b"REST API: " not in buf:
            raise RuntimeError("sipbx did not start again: %r %s" % (buf, self.log()))

    def stop(self, check=True, keep=True):
        """apitest's stop, keeping the directory unless keep=False."""
        super().stop(check, keep)

    def kill9(self):
        """SIGKILL: no clean-up at all, as a power cut."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._close()


# ---- phones ----

def caller(test, scenario, callee, call_id=None, user="100", display='"Alice"', hold_ms=200,
           transport="u1", calls=1, extra=()):
    """Runs the caller side of a scenario (-m calls) against the test's daemon and returns
    the Sipp (started; the caller waits). call_id shapes SIPp's Call-ID (%u: call number)."""
    d = test.d
    args = ["-au", user, "-ap", PASSWORDS[user], "-d", str(hold_ms)] + list(extra)
    if call_id:
        args += ["-cid_str", call_id]
    return Sipp(test.workdir, os.path.join(HERE, scenario), args=args, transport=transport,
                remote="%s:%d" % (HOST, d.sip_port), calls=calls,
                keys={"user": user, "domain": DOMAIN, "callee": callee, "display": display})


def callee(test, scenario, ext, calls=1, hold_ms=200, extra=()):
    """Registers ext from a free port (its earlier bindings removed, so calls do not fork to
    phones of earlier tests) and starts a SIPp UAS of scenario there; returns once it
    listens."""
    r = test.api("DELETE", "/api/v1/registrations/" + ext)
    test.assertEqual(r.status, 204, r)
    port = apitest.free_port()
    register_from(test.d, ext, PASSWORDS[ext], port, user_agent="sipbx-records-test")
    return Sipp(test.workdir, os.path.join(HERE, scenario), port,
                args=["-d", str(hold_ms)] + list(extra), calls=calls).wait_bound()


def new_call_id(tag):
    """A Call-ID shape for SIPp's -cid_str, unique per test run."""
    return "%s-%x-%%u@records.test" % (tag, random.getrandbits(32))


# ---- reading the API ----

class RecordsTest(apitest.DaemonTest):
    """A DaemonTest whose daemon has users 100..103 and a work directory for SIPp logs."""

    daemon_class = Daemon

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.workdir = tempfile.mkdtemp(prefix="sipbx-records-sipp-")
        for ext, pw in PASSWORDS.items():
            cls.create_user(ext, pw, display_name="User " + ext)

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        if os.environ.get("SIPBX_KEEP"):
            print("kept", cls.workdir)
        else:
            shutil.rmtree(cls.workdir, ignore_errors=True)

    def get_json(self, path, status=200):
        r = self.api("GET", path)
        self.assertEqual(r.status, status, r)
        return r.json

    def cdrs(self, **params):
        """Every CDR matching params (all pages)."""
        items, cursor = [], None
        while True:
            q = dict(params, limit=500)
            if cursor:
                q["cursor"] = cursor
            page = self.get_json("/api/v1/cdrs?" + urllib.parse.urlencode(q))
            items += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return items

    def cdr(self, call_id, timeout=5.0):
        """The one CDR of call_id, waiting for the writer's batch."""
        found = self.wait_for(lambda: [c for c in self.cdrs() if c["call_id"] == call_id],
                              timeout)
        self.assertEqual(len(found), 1, "CDRs of %s: %r" % (call_id, found))
        return found[0]

    def trace(self, call_id, count=None, timeout=5.0):
        """The trace of call_id (waiting until it has count messages, when given)."""
        path = "/api/v1/traces/" + urllib.parse.quote(call_id, safe="")

        def complete():
            r = self.api("GET", path)
            done = r.status == 200 and (count is None or len(r.json["messages"]) >= count)
            return r if done else None
        r = self.wait_for(complete, timeout) or self.api("GET", path)
        self.assertEqual(r.status, 200, r)
        return r.json

    def run_call(self, tag, uas, uac, ext="101", uas_hold_ms=200, **caller_kw):
        """One call from 100 to ext: a callee running scenario uas (none when None), a caller
        running uac (caller_kw: see caller()); returns (Call-ID, caller's Sipp, callee's
        Sipp or None) once both have ended well."""
        cid = new_call_id(tag)
        b = callee(self, uas, ext, hold_ms=uas_hold_ms) if uas else None
        a = caller(self, uac, ext, cid, **caller_kw)
        a.wait()
        if b:
            b.wait()
        return cid.replace("%u", "1"), a, b

    def start_load(self, tag, hold_ms, rate, limit, calls=10000):
        """Starts calls answered calls from 100 to 101 (uac_load.xml to uas_answer.xml), rate
        a second and at most limit at once, each held hold_ms; returns (the Call-ID shape,
        the caller's Sipp, the callee's Sipp)."""
        cid = new_call_id(tag)
        b = callee(self, "uas_answer.xml", "101", calls=calls)
        a = caller(self, "uac_load.xml", "101", cid, hold_ms=hold_ms, calls=calls,
                   extra=["-r", str(rate), "-l", str(limit)])
        return cid, a, b


def ladder(trace, ports, retransmissions=False):
    """The trace as (direction, what, peer) tuples: what is the method or the status code,
    peer the name in ports (a dict port -> name) of the other end. Messages flagged as
    retransmissions are left out unless asked for (a loaded machine may resend any)."""
    out = []
    for m in trace["messages"]:
        if m["retransmission"] and not retransmissions:
            continue
        other = m["src"] if m["direction"] == "in" else m["dst"]
        port = int(other.rsplit(":", 1)[1])
        what = m.get("method") or m.get("status")
        out.append((m["direction"], what, ports.get(port, other)))
    return out


def match_ladder(test, got, expected):
    """expected is a list of steps and sets of steps: a set's steps come in any order (they
    race on the wire), everything else in the order given; and nothing else is there."""
    flat = []
    for step in expected:
        if isinstance(step, (set, frozenset)):
            n = len(step)
            chunk = got[len(flat):len(flat) + n]
            test.assertEqual(sorted(map(str, chunk)), sorted(map(str, step)),
                             "\ngot:      %s\nexpected: %s" % (got, expected))
            flat += chunk
        else:
            test.assertEqual(got[len(flat):len(flat) + 1], [step],
                             "\nat %d\ngot:      %s\nexpected: %s" % (len(flat), got, expected))
            flat.append(step)
    test.assertEqual(len(got), len(flat), "\ngot:      %s\nexpected: %s" % (got, expected))


def main():
    apitest.main()
