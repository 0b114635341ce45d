#!/usr/bin/env python3
"""Attack: waiting out a block by getting the daemon restarted, and the administrator's side
of a block: it survives a restart, DELETE /api/v1/security/blocks/{source} and
`sipbx block del SOURCE` lift it in the running daemon (the CLI within well under a second),
a repeat offender's block doubles, /metrics counts it, and the log has one line when a block
starts and one when it ends.

    python3 test_block_lifecycle.py --sipbx PATH [--sipp PATH]
"""

import subprocess
import time
import unittest

import sectest  # first: it puts tests/api on the path
import apitest
from sectest import Uac, guess_run, log_lines, metrics

PASSWORD = "Kx7-long-enough-pw"
GUESSES = ["guess%04d" % i for i in range(100)]


def block(d, src):
    """Guesses from src until blocked; asserts it took exactly 10 answered guesses."""
    answers, _ = guess_run(d.sip_port, "100", GUESSES, host=src)
    assert len(answers) == 10, answers


def blocked(d, src):
    """True when a REGISTER from src goes unanswered."""
    u = Uac(d.sip_port, src)
    try:
        return u.send("100", timeout=0.5) is None
    finally:
        u.close()


def cli(d, *args):
    return subprocess.run([apitest.SIPBX, "block"] + list(args) + ["--db", d.db],
                          capture_output=True, text=True, timeout=30)


class Lifecycle(sectest.DaemonTest):
    daemon_args = sectest.UNTRUSTED

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.create_user("100", PASSWORD)

    def blocks(self):
        r = self.api("GET", "/api/v1/security/blocks")
        self.assertEqual(r.status, 200, r)
        return {b["source"]: b for b in r.json["items"]}

    def test_delete_lifts(self):
        src = "127.0.0.2"
        block(self.d, src)
        self.assertTrue(blocked(self.d, src))
        self.assertEqual(self.api("DELETE", "/api/v1/security/blocks/" + src).status, 204)
        self.assertFalse(blocked(self.d, src))
        self.assertNotIn(src, self.blocks())
        self.assertEqual(metrics(self.d, self.token)["sipbx_sip_blocked_sources"], 0)
        # it is gone from the database too (the writer commits within 50 ms)
        self.wait_for(lambda: not self.d.db_query(
            "SELECT 1 FROM sip_blocks WHERE source = ?", (src,)), msg="row not deleted")
        self.assertEqual(len(log_lines(self.d, r"blocking %s for 600 s" % src)), 1)
        self.assertEqual(len(log_lines(self.d, r"block of %s ended \(lifted by an admin" % src)),
                         1)
        r = self.api("DELETE", "/api/v1/security/blocks/" + src)
        self.assertError(r, 404, "not_found", src)
        r = self.api("DELETE", "/api/v1/security/blocks/not-an-address")
        self.assertError(r, 400, "invalid_parameter", "not-an-address")

    def test_cli_lifts_running_daemon(self):
        src = "127.0.0.3"
        block(self.d, src)
        out = cli(self.d, "list")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"(?m)^127\.0\.0\.3 .* 10 failed digest checks in 60 s "
                                     r"\(extensions 100\)$")
        start = time.monotonic()
        out = cli(self.d, "del", src)
        took = time.monotonic() - start
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "block of %s lifted" % src)
        print("  sipbx block del took %.3f s (the daemon lifted it meanwhile)" % took)
        self.assertLess(took, 1.0)
        self.assertNotIn(src, self.blocks())
        self.assertFalse(blocked(self.d, src))
        self.assertEqual(len(log_lines(self.d, r"block of %s ended \(lifted by the CLI" % src)),
                         1)
        out = cli(self.d, "del", src)
        self.assertEqual(out.returncode, 1)
        self.assertEqual(out.stderr.strip(), "sipbx: %s is not blocked" % src)
        out = cli(self.d, "del", "example.org")
        self.assertEqual(out.returncode, 2)
        self.assertIn("not an IPv4 or IPv6 address", out.stderr)


class ShortBlocks(sectest.DaemonTest):
    """sip_ban_time 2 s: a block ends by itself, and the next one of the same address
    doubles."""

    daemon_args = sectest.UNTRUSTED + ("--sip-ban-time", "2", "--sip-ban-max-time", "5")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.create_user("100", PASSWORD)

    def test_expires_and_doubles(self):
        src = "127.0.0.2"
        before = metrics(self.d, self.token)
        block(self.d, src)
        b = self.api("GET", "/api/v1/security/blocks").json["items"][0]
        self.assertEqual(b["offences"], 1)
        self.wait_for(lambda: not blocked(self.d, src), timeout=5, msg="block did not end")
        # the housekeeping (once a second) writes its end
        self.wait_for(lambda: log_lines(self.d, r"block of %s ended \(expired\)" % src),
                      timeout=2, msg="no log line for the end of the block")
        block(self.d, src)
        b = self.api("GET", "/api/v1/security/blocks").json["items"][0]
        self.assertEqual(b["offences"], 2)
        self.assertIn("repeat offender", log_lines(self.d, r"blocking %s for 4 s" % src)[0])
        self.assertEqual(metrics(self.d, self.token)["sipbx_sip_blocks_total"]
                         - before["sipbx_sip_blocks_total"], 2)


class Restart(unittest.TestCase):
    """A block is in the database and in force again after a restart; one lifted with the
    CLI while the daemon was down is not."""

    def test_survives_restart(self):
        d = sectest.sip_daemon()
        try:
            token = d.create_token()
            r = d.request("POST", "/api/v1/users", {"extension": "100", "password": PASSWORD},
                          token=token)
            self.assertEqual(r.status, 201)
            block(d, "127.0.0.2")
            block(d, "127.0.0.3")
            before = d.request("GET", "/api/v1/security/blocks", token=token).json["items"]
            d.stop(keep=True)

            d = sectest.Restarted(d)
            self.assertTrue(blocked(d, "127.0.0.2"), "block of 127.0.0.2 gone after restart")
            after = d.request("GET", "/api/v1/security/blocks", token=token).json["items"]
            strip = [{k: v for k, v in b.items() if k not in ("dropped", "expires_in")}
                     for b in before]
            self.assertEqual(strip, [{k: v for k, v in b.items()
                                      if k not in ("dropped", "expires_in")} for b in after])
            self.assertTrue(log_lines(d, r"2 block\(s\) of the last run still in force"))

            # lifted with the CLI while no daemon runs: not blocked at the next start
            d.stop(keep=True)
            out = subprocess.run([apitest.SIPBX, "block", "del", "127.0.0.3", "--db", d.db],
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("no running sipbx took it up", out.stdout)
            d = sectest.Restarted(d)
            self.assertFalse(blocked(d, "127.0.0.3"))
            self.assertTrue(blocked(d, "127.0.0.2"))
            # the lifted row goes (through the writer) once the daemon has seen it
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                rows = d.db_query("SELECT source FROM sip_blocks ORDER BY source")
                if rows == [("127.0.0.2",)]:
                    break
                time.sleep(0.05)
            self.assertEqual(rows, [("127.0.0.2",)])
        finally:
            d.stop(keep=False)


if __name__ == "__main__":
    sectest.main()
