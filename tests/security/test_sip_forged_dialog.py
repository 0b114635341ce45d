#!/usr/bin/env python3
"""Toll fraud through forged in-dialog requests (the hardening issue, part 1).

The attack on 0.1.0: one unauthenticated UDP packet `INVITE sip:0044123@<any host:port>` with a
To tag and `Route: <sip:SIPBX;lr>` was relayed to that host with a spoofed From (and the same
for BYE, MESSAGE, REFER, NOTIFY, INFO, UPDATE). Now only dialogs that sipbx record-routed (its
signed Record-Route in the top Route) are continued; everything else gets 403 (481 when it does
not even name sipbx), an ACK is dropped, nothing reaches the target, and the refusals are
counted in /metrics and logged once a minute per source.
"""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
import apitest  # noqa: E402
from sipbxtest.phone import HOST, Endpoint, Phone, rand, request  # noqa: E402

METHODS = ("INVITE", "BYE", "MESSAGE", "REFER", "NOTIFY", "INFO", "UPDATE")


class ForgedDialog(apitest.DaemonTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.create_user("100", "secret-100-pw")
        cls.create_user("101", "secret-101-pw")

    def setUp(self):
        # The host the attacker wants to reach: another address, not the PBX's domain.
        self.evil = Endpoint(self.d.sip_port, host="127.0.0.3")
        self.attacker = Endpoint(self.d.sip_port, host="127.0.0.2")
        self.callee = Phone(self.d.sip_port, "101", "secret-101-pw")
        self.assertEqual(self.callee.register().status, 200)

    def tearDown(self):
        for e in (self.evil, self.attacker, self.callee):
            e.close()

    def us(self, params=";lr"):
        return "<sip:%s:%d%s>" % (HOST, self.d.sip_port, params)

    def forged(self, method, route, call_id=None, from_tag="a", to_tag="b", ruri=None):
        """Sends the attack packet; returns sipbx's final answer (None for ACK)."""
        ruri = ruri or "sip:0044123@%s:%d" % (self.evil.host, self.evil.port)
        text, branch = request(self.attacker, method, ruri, "sip:100@127.0.0.1",
                               "sip:0044123@127.0.0.1", call_id or rand(), 1, from_tag, to_tag,
                               extra=["Route: " + r for r in route])
        self.attacker.send(text)
        if method == "ACK":
            return None
        return self.attacker.response(branch, timeout=3)

    def metric(self, name):
        return apitest.parse_metrics(self.api("GET", "/metrics").body.decode()).get(name, 0)

    def assert_nothing_reached(self, who, seconds=1.0):
        time.sleep(seconds)
        self.assertEqual(who.requests(), [], "a forged request was relayed")

    def test_forged_requests_are_refused(self):
        """The 0.1.0 attack, for every method: 403 with our Route and no token, a forged
        token, or another dialog's token; 481 without our Route; ACK dropped; nothing
        reaches the target."""
        before = self.metric("sipbx_sip_forged_in_dialog_total")
        routes = {
            "no token": [self.us()],
            "forged token": [self.us(";lr;sbx=" + "0" * 24)],
            "short token": [self.us(";lr;sbx=abc")],
        }
        sent = 0
        for method in METHODS:
            for what, route in routes.items():
                r = self.forged(method, route)
                sent += 1
                self.assertIsNotNone(r, "%s (%s): no answer" % (method, what))
                self.assertEqual(r.status, 403, "%s (%s): %s" % (method, what, r.first))
            r = self.forged(method, [])
            sent += 1
            self.assertEqual(r.status, 481, "%s without Route: %s" % (method, r.first))
        self.forged("ACK", [self.us()])
        sent += 1
        self.assert_nothing_reached(self.evil)
        self.assertEqual([m for m in self.attacker.received if not m.status], [])
        self.assertFalse([m for m in self.attacker.received if m.cseq and "ACK" in m.cseq],
                         "an ACK was answered")
        self.assertEqual(self.metric("sipbx_sip_forged_in_dialog_total") - before, sent)
        # One log line for this source within the minute, not one per packet.
        lines = [l for l in self.d.log().splitlines() if "refused" in l and "127.0.0.2" in l]
        self.assertEqual(len(lines), 1, "\n".join(lines))

    def test_token_of_another_dialog(self):
        """A token that sipbx really issued, for a call of user 100, does not open any other
        dialog (another Call-ID, or the same Call-ID with other tags)."""
        caller = Phone(self.d.sip_port, "100", "secret-100-pw", answer=False)
        try:
            r, dlg = caller.invite("101")
            self.assertEqual(r.status, 200, r)
            route = dlg["route"]
            self.assertEqual(len(route), 1)
            self.assertRegex(route[0], r";sbx=[0-9a-f]{24}")
            for call_id, ftag, ttag in ((rand(), dlg["from_tag"], dlg["to_tag"]),
                                        (dlg["call_id"], "x" + rand(6), "y" + rand(6))):
                for method in ("INVITE", "BYE"):
                    r = self.forged(method, route, call_id=call_id, from_tag=ftag, to_tag=ttag)
                    self.assertEqual(r.status, 403, "%s %s: %s" % (method, call_id, r.first))
            self.assert_nothing_reached(self.evil)
            # The real dialog goes on: the caller's BYE reaches the callee.
            r = caller.in_dialog(dlg, "BYE")
            self.assertEqual(r.status, 200, r)
            self.assertTrue(self.callee.wait(lambda m: m.method == "BYE", 2))
        finally:
            caller.close()

    def test_real_dialog_both_ways_and_after_restart(self):
        """What the signing must not break: both sides' in-dialog requests pass (the callee's
        carry the caller's tag in To), and a dialog set up before a restart is still carried
        after it (the key comes from the database), with no call table entry left."""
        caller = Phone(self.d.sip_port, "100", "secret-100-pw")
        try:
            r, dlg = caller.invite("101")
            self.assertEqual(r.status, 200, r)
            inv = self.callee.wait(lambda m: m.method == "INVITE" and m.tag("To") is None)
            # The callee's view of the dialog: route set = Record-Route of the INVITE.
            cdlg = {"call_id": dlg["call_id"], "from_tag": dlg["to_tag"], "to_tag": dlg["from_tag"],
                    "to": caller.aor, "route": inv.all("Record-Route"), "cseq": 10,
                    "target": re.sub(r"^<|>.*$", "", inv.get("Contact"))}
            self.callee.tag = dlg["to_tag"]
            r = self.callee.in_dialog(cdlg, "INFO")
            self.assertEqual(r.status, 200, "callee's INFO: %s" % r.first)
            self.assertTrue(caller.wait(lambda m: m.method == "INFO", 2))

            self.d.stop(keep=True)
            type(self).d = apitest.Daemon(dir=self.d.dir, sip_port=self.d.sip_port,
                                          http_port=self.d.http_port)
            self.assertEqual(self.callee.register().status, 200)
            r = caller.in_dialog(dlg, "INVITE")
            self.assertEqual(r.status, 200, "re-INVITE after restart: %s" % r.first)
            caller.in_dialog(dlg, "ACK", cseq=dlg["cseq"])
            r = self.callee.in_dialog(cdlg, "BYE")
            self.assertEqual(r.status, 200, "callee's BYE after restart: %s" % r.first)
        finally:
            caller.close()

    def test_no_loose_routing_out_of_dialog(self):
        """Out of dialog too, sipbx never becomes a relay: a pre-loaded Route through it to
        another host is refused, before any authentication, and a Request-URI of another
        host is refused after it; nothing reaches the other host."""
        r = self.forged("INVITE", [self.us(), "<sip:%s:%d;lr>" % (self.evil.host, self.evil.port)],
                        to_tag=None, ruri="sip:101@127.0.0.1")
        self.assertEqual(r.status, 403, r.first)
        caller = Phone(self.d.sip_port, "100", "secret-100-pw", answer=False)
        try:
            r, _ = caller.invite("101", extra=["Route: " + self.us(),
                                               "Route: <sip:%s:%d;lr>" % (self.evil.host, self.evil.port)])
            self.assertEqual(r.status, 403, r.first)
            r, _ = caller.invite("0044123", ruri="sip:0044123@%s:%d" % (self.evil.host, self.evil.port))
            self.assertEqual(r.status, 403, r.first)
            for method in ("MESSAGE", "OPTIONS", "REFER"):
                text, branch = request(self.attacker, method, "sip:0044123@%s:%d" % (
                    self.evil.host, self.evil.port), "sip:100@127.0.0.1", "sip:0044123@127.0.0.1", rand(),
                    1, "a", extra=["Route: " + self.us()])
                self.attacker.send(text)
                r = self.attacker.response(branch, timeout=3)
                self.assertIn(r.status, (403, 407), "%s: %s" % (method, r.first))
        finally:
            caller.close()
        self.assert_nothing_reached(self.evil)


if __name__ == "__main__":
    apitest.main()
