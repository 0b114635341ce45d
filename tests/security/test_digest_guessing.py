#!/usr/bin/env python3
"""Attack: guessing a SIP password by sending wrong digests as fast as the answers come
(the hardening issue's script made 2,900 guesses a second, all on one nonce).

Asserts that the guessing address is blocked after sip_ban_failures (10) failed checks and
that no later guess is evaluated, the right password included; that the extension's own
phone at another address still registers; that unknown extensions count and are answered
exactly like known ones; that a trusted network is never blocked; that a nonce is retired
after nonce_max_failures (3) wrong answers; and that /metrics and the log tell the story in
a few lines, not one per guess.

    python3 test_digest_guessing.py --sipbx PATH [--sipp PATH]
"""

import random
import re
import socket
import time
import unittest

import sectest
from sectest import ATTACKER, PHONE, Uac, authorization, guess_run, log_lines, metrics

PASSWORD = "Kx7-long-enough-pw"
GUESSES = ["guess%04d" % i for i in range(2500)] + [PASSWORD]


def normalize(raw, ext):
    """A response with what must differ between two requests blanked out."""
    s = re.sub(r'nonce="[0-9a-f]*"', 'nonce="N"', raw)
    s = re.sub(r";tag=[^;,\s>]+", ";tag=T", s)
    s = re.sub(r"branch=[^;,\s]+", "branch=B", s)
    s = re.sub(r"rport=\d+", "rport=P", s)
    s = re.sub(r"(?m)^Call-ID: .*$", "Call-ID: C", s)
    s = re.sub(r"(?m)^CSeq: \d+", "CSeq: N", s)
    s = re.sub(r":\d+;rport", ":P;rport", s)
    return s.replace("sip:%s@" % ext, "sip:EXT@")


class Guessing(sectest.DaemonTest):
    daemon_args = sectest.UNTRUSTED

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.create_user("100", PASSWORD)
        cls.create_user("101", PASSWORD + "-101")

    def blocks(self):
        r = self.api("GET", "/api/v1/security/blocks")
        self.assertEqual(r.status, 200, r)
        return {b["source"]: b for b in r.json["items"]}

    def lift(self, source):
        r = self.api("DELETE", "/api/v1/security/blocks/" + source)
        self.assertIn(r.status, (204, 404), r)

    # Each test guesses from an address of its own (all of 127/8 is this host), so the
    # failures one test leaves in the window do not count towards another's block.

    def test_fast_guessing_blocked(self):
        """The script's run ends after 10 answered guesses; the 11th and every later one,
        and then the right password, get no answer at all; the real phone registers from
        its own address meanwhile."""
        self.addCleanup(self.lift, ATTACKER)
        before = metrics(self.d, self.token)
        answers, secs = guess_run(self.d.sip_port, "100", GUESSES, host=ATTACKER)
        self.assertEqual([s for _, s in answers], [401] * 10, answers)
        rate = len(answers) / secs if secs else 0
        print("  %d guesses answered in %.3f s (%.0f/s), then silence" % (len(answers), secs, rate))

        # the right password from the blocked address: not even a challenge comes back
        thief = Uac(self.d.sip_port, ATTACKER)
        try:
            self.assertIsNone(thief.send("100", timeout=1.0))
            chal = {"realm": "127.0.0.1", "nonce": "0" * 56}
            self.assertIsNone(thief.send("100", authorization("100", PASSWORD, chal), 0.5))
        finally:
            thief.close()

        # the phone of 100, at another address, registers as ever
        phone = Uac(self.d.sip_port, PHONE)
        try:
            self.assertEqual(phone.register("100", PASSWORD), 200)
        finally:
            phone.close()
        regs = self.wait_for(lambda: self.api(
            "GET", "/api/v1/registrations?extension=100").json["items"], msg="no registration")
        self.assertEqual([r["source"].split(":")[0] for r in regs], [PHONE], regs)

        b = self.blocks()[ATTACKER]
        self.assertEqual(b["failures"], 10)
        self.assertEqual(b["extensions"], ["100"])
        self.assertGreaterEqual(b["dropped"], 3)
        self.assertEqual(b["offences"], 1)
        self.assertTrue(590 <= b["expires_in"] <= 600, b)

        after = metrics(self.d, self.token)
        self.assertEqual(after["sipbx_sip_auth_failures_total"]
                         - before["sipbx_sip_auth_failures_total"], 10)
        self.assertEqual(after["sipbx_sip_blocked_sources"], 1)
        self.assertEqual(after["sipbx_sip_blocks_total"] - before["sipbx_sip_blocks_total"], 1)
        self.assertGreaterEqual(after["sipbx_sip_blocked_requests_total"]
                                - before["sipbx_sip_blocked_requests_total"], 3)
        # one nonce carried the run: it was retired after 3 wrong answers
        self.assertEqual(after["sipbx_sip_nonces_retired_total"]
                         - before["sipbx_sip_nonces_retired_total"], 1)

        # the log: one line as the failures began and one as the block started; no line
        # per guess
        self.assertEqual(len(log_lines(self.d, r"blocking %s for 600 s" % ATTACKER)), 1)
        self.assertLessEqual(len(log_lines(self.d, r"failed digest check.* from %s" % ATTACKER)),
                             1)
        self.lift(ATTACKER)
        self.assertEqual(len(log_lines(self.d, r"block of %s ended" % ATTACKER)), 1)
        self.assertEqual(len(log_lines(self.d, r"blocking %s for" % ATTACKER)), 1)

    def test_careful_client_blocked_too(self):
        """A script that answers every fresh challenge (no retired nonce to trip over) is
        blocked after the same 10 guesses."""
        src = "127.0.0.3"
        self.addCleanup(self.lift, src)
        answers, _ = guess_run(self.d.sip_port, "101", GUESSES, host=src, follow=True)
        self.assertEqual([s for _, s in answers], [401] * 10, answers)
        self.assertIn(src, self.blocks())

    def test_unknown_extensions_count_alike(self):
        """Guessing for extensions that do not exist blocks just as fast, and each reply is
        the one a known extension gets (so neither the replies nor the block tell which
        extensions exist)."""
        src = "127.0.0.4"
        self.addCleanup(self.lift, src)
        u = Uac(self.d.sip_port, src)
        try:
            replies = {}
            for ext in ("100", "7777"):
                first = u.send(ext)
                chal = sectest.parse_challenge(first.get("WWW-Authenticate"))
                second = u.send(ext, authorization(ext, "wrong", chal))
                replies[ext] = (first, second)
            for i in range(2):
                known, unknown = replies["100"][i], replies["7777"][i]
                self.assertEqual(known.status, 401)
                self.assertEqual(normalize(known.raw, "100"), normalize(unknown.raw, "7777"))
            # 2 failures so far (one known, one unknown); 8 more for unknown extensions
            statuses = []
            for i in range(8):
                ext = "9%03d" % i
                chal = u.challenge(ext)
                r = u.send(ext, authorization(ext, "wrong", chal))
                statuses.append(r.status if r else None)
            self.assertEqual(statuses, [401] * 8)
            self.assertIsNone(u.send("100", timeout=1.0), "the address must be blocked")
        finally:
            u.close()
        b = self.blocks()[src]
        self.assertEqual(b["failures"], 10)
        self.assertEqual(b["extensions"][0], "9007")  # the 8 most recent, newest first
        targets = {t["extension"]: t for t in
                   self.api("GET", "/api/v1/security/targets").json["items"]}
        self.assertIn("9007", targets)
        self.assertEqual(targets["9007"]["last_source"], src)

    def test_tcp_dropped_and_shut(self):
        """Blocked over UDP, the address gets nothing over TCP either: its REGISTER goes
        unanswered and the connection is shut."""
        src = "127.0.0.7"
        self.addCleanup(self.lift, src)
        answers, _ = guess_run(self.d.sip_port, "100", GUESSES, host=src)
        self.assertEqual(len(answers), 10)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((src, 0))
            s.connect(("127.0.0.1", self.d.sip_port))
            port = s.getsockname()[1]
            msg = ("REGISTER sip:127.0.0.1 SIP/2.0\r\n"
                   "Via: SIP/2.0/TCP %s:%d;branch=z9hG4bKtcp%d\r\n"
                   "Max-Forwards: 70\r\nFrom: <sip:100@127.0.0.1>;tag=t\r\n"
                   "To: <sip:100@127.0.0.1>\r\nCall-ID: tcp-%d@test\r\nCSeq: 1 REGISTER\r\n"
                   "Contact: <sip:100@%s:%d;transport=tcp>\r\nContent-Length: 0\r\n\r\n"
                   % (src, port, port, port, src, port))
            s.sendall(msg.encode())
            s.settimeout(3)
            self.assertEqual(s.recv(4096), b"", "a blocked address must get no answer, and EOF")
        finally:
            s.close()

    def test_nonce_retired(self):
        """After 3 wrong answers to one nonce the right password on that nonce is refused
        with a fresh challenge (not stale) and counted as a failure."""
        u = Uac(self.d.sip_port, "127.0.0.5")
        try:
            chal = u.challenge("101")
            before = metrics(self.d, self.token)["sipbx_sip_auth_failures_total"]
            for pw in ("a", "b", "c"):
                self.assertEqual(u.send("101", authorization("101", pw, chal)).status, 401)
            r = u.send("101", authorization("101", PASSWORD + "-101", chal))
            self.assertEqual(r.status, 401, r.raw)
            fresh = sectest.parse_challenge(r.get("WWW-Authenticate"))
            self.assertNotEqual(fresh["nonce"], chal["nonce"])
            self.assertNotIn("stale", r.get("WWW-Authenticate"))
            self.assertEqual(metrics(self.d, self.token)["sipbx_sip_auth_failures_total"]
                             - before, 4)
            # the fresh nonce works with the right password
            r = u.send("101", authorization("101", PASSWORD + "-101", fresh))
            self.assertEqual(r.status, 200, r.raw)
        finally:
            u.close()

    def test_two_bad_answers_do_not_retire(self):
        """A phone that got its password wrong twice and then right is not held up."""
        u = Uac(self.d.sip_port, "127.0.0.6")
        try:
            chal = u.challenge("101")
            for pw in ("a", "b"):
                self.assertEqual(u.send("101", authorization("101", pw, chal)).status, 401)
            r = u.send("101", authorization("101", PASSWORD + "-101", chal))
            self.assertEqual(r.status, 200, r.raw)
        finally:
            u.close()


class Trusted(sectest.DaemonTest):
    """127.0.0.2/32 trusted: guessing from it is never blocked (and counted); the same run
    from 127.0.0.1 is."""

    daemon_args = ("--sip-trusted-networks", "127.0.0.2/32, 2001:db8::/32")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.create_user("100", PASSWORD)

    def test_trusted_never_blocked(self):
        answers, _ = guess_run(self.d.sip_port, "100", GUESSES[:60], host="127.0.0.2",
                               follow=True)
        self.assertEqual(len(answers), 60, answers[-3:])
        self.assertTrue(all(s == 401 for _, s in answers))
        self.assertEqual(register_status(self.d, "127.0.0.2"), 200)
        m = metrics(self.d, self.token)
        self.assertEqual(m["sipbx_sip_blocked_sources"], 0)
        self.assertGreaterEqual(m["sipbx_sip_auth_failures_total"], 60)
        self.assertTrue(log_lines(self.d, r"127\.0\.0\.2.*trusted network: never blocked"))

        answers, _ = guess_run(self.d.sip_port, "100", GUESSES[:60], host="127.0.0.1")
        self.assertEqual(len(answers), 10)
        r = self.api("GET", "/api/v1/security/blocks")
        self.assertEqual([b["source"] for b in r.json["items"]], ["127.0.0.1"])


def register_status(d, host):
    u = Uac(d.sip_port, host)
    try:
        return u.register("100", PASSWORD)
    finally:
        u.close()


class DefaultTrust(sectest.DaemonTest):
    """Without sip_trusted_networks the host itself (loopback) is trusted, like fail2ban's
    ignoreip: a local SBC or script is never blocked."""

    daemon_args = ()

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.create_user("100", PASSWORD)

    def test_loopback_trusted_by_default(self):
        answers, _ = guess_run(self.d.sip_port, "100", GUESSES[:30], host=ATTACKER, follow=True)
        self.assertEqual(len(answers), 30)
        self.assertEqual(self.api("GET", "/api/v1/security/blocks").json["items"], [])


if __name__ == "__main__":
    random.seed()
    time.sleep(0)
    sectest.main()
