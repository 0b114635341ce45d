#!/usr/bin/env python3
"""sipbx as a reflection amplifier: one forged datagram, many answers to the victim.

The attack: a UDP request without credentials whose source is forged to be the victim's
address. A new call was answered through a server transaction, and a 407 to an INVITE is
resent until its ACK comes (RFC 3261 timer G, for 32 s): one 254-byte INVITE brought eleven
407s, 4,257 bytes, to the victim, and kept a transaction alive for 32 s. Now the challenge
of a new call, MESSAGE, OPTIONS or REFER over UDP is sent statelessly, once per request,
with a To tag derived from the request (a retransmission gets the same one), its ACK is
recognised by that tag and dropped quietly, and no transaction is left behind. A real call
through the challenge still works.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
import apitest  # noqa: E402
from sipbxtest.phone import Endpoint, Phone, rand, request  # noqa: E402

# Longer than timer G's first three resends (0.5, 1.5 and 3.5 s after the answer).
LISTEN_S = 4.0


class Attack(apitest.DaemonTest):
    """A daemon with two users, and a victim's address that never answers anything."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.create_user("100", "secret-100-pw")
        cls.create_user("101", "secret-101-pw")

    def setUp(self):
        self.victim = Endpoint(self.d.sip_port, host="127.0.0.2")  # never answers anything

    def tearDown(self):
        self.victim.close()

    def metrics(self):
        return apitest.parse_metrics(self.api("GET", "/metrics").body.decode())

    def server_transactions(self):
        return self.metrics().get('sipbx_sip_transactions{side="server"}', 0)

    def forged(self, method, ruri="sip:101@127.0.0.1", call_id=None, branch=None, to_tag=None,
               extra=(), max_forwards=None):
        text, branch = request(self.victim, method, ruri, "sip:100@127.0.0.1", ruri,
                               call_id or rand() + "@refl", 1, "vt", to_tag, branch=branch,
                               extra=extra, body="" if method != "MESSAGE" else "hello")
        if max_forwards is not None:
            text = text.replace("Max-Forwards: 70", "Max-Forwards: %d" % max_forwards)
        self.victim.send(text)
        return text, branch

    def answers(self, branch):
        with self.victim.cond:
            return [m for m in self.victim.received if m.status and branch in (m.get("Via") or "")]


class NoStateLeft(Attack):
    """On a daemon of its own, so that no transaction of another test is still held (a
    registration's or a call's is kept 32 s)."""

    def test_one_answer_per_forged_request(self):
        """INVITE, MESSAGE, OPTIONS to a user and REFER without credentials, and an INVITE
        with made-up ones: one 407 each in LISTEN_S seconds, no bigger than twice the
        request, and no transaction kept."""
        self.assertIn('sipbx_sip_transactions{side="server"}', self.metrics())
        sent = {}
        for method in ("INVITE", "MESSAGE", "OPTIONS", "REFER"):
            text, branch = self.forged(method)
            sent[method] = (len(text.encode()), branch)
        # made-up credentials for our realm do not buy a transaction either
        text, branch = self.forged("INVITE", extra=[
            'Proxy-Authorization: Digest username="100", realm="127.0.0.1", nonce="x", '
            'uri="sip:101@127.0.0.1", response="%s"' % ("0" * 32)])
        sent["INVITE with made-up credentials"] = (len(text.encode()), branch)
        time.sleep(LISTEN_S)
        for method, (size, branch) in sent.items():
            got = self.answers(branch)
            self.assertEqual([m.status for m in got], [407], "%s: %s" % (method, got))
            answer = len(got[0].raw.encode())
            self.assertLess(answer, 2 * size, "%s: %d bytes answered %d" % (method, answer, size))
        # The housekeeping counts them every second: none of the four left a transaction.
        self.assertEqual(self.wait_for(lambda: self.server_transactions() == 0, 3), True,
                         "transactions held: %s" % self.server_transactions())

    def test_one_answer_per_refused_invite(self):
        """INVITEs refused before any authentication: a forged in-dialog one (a To tag and
        our Route without its signature), one out of hops, one routed through us to another
        host, one with a header missing. One answer each, no transaction kept."""
        us = "<sip:127.0.0.1:%d;lr>" % self.d.sip_port
        cases = {
            "forged in-dialog": (dict(to_tag="b", extra=["Route: " + us]), 403),
            "no Route of ours": (dict(to_tag="b"), 481),
            "Max-Forwards 0": (dict(max_forwards=0), 483),
            "routed elsewhere": (dict(extra=["Route: <sip:127.0.0.3:5099;lr>"]), 403),
        }
        sent = {what: self.forged("INVITE", **kw)[1] for what, (kw, _) in cases.items()}
        text, bad = request(self.victim, "INVITE", "sip:101@127.0.0.1", "sip:100@127.0.0.1",
                            "sip:101@127.0.0.1", rand(), 1, "vt")
        self.victim.send(text.replace("Call-ID: ", "X-Call-ID: "))
        time.sleep(LISTEN_S)
        for what, (_, status) in cases.items():
            got = self.answers(sent[what])
            self.assertEqual([m.status for m in got], [status], "%s: %s" % (what, got))
        self.assertEqual([m.status for m in self.answers(bad)], [400])
        self.assertEqual(self.wait_for(lambda: self.server_transactions() == 0, 3), True,
                         "transactions held: %s" % self.server_transactions())


class Reflection(Attack):
    def test_retransmission_same_tag_ack_absorbed(self):
        """A resent INVITE gets the same challenge tag; the ACK of the 407 is taken as such:
        not a forged in-dialog request, no answer, nothing logged."""
        call_id = rand() + "@refl"
        _, branch = self.forged("INVITE", call_id=call_id)
        first = self.victim.wait(lambda m: m.status == 407 and branch in (m.get("Via") or ""))
        self.assertIsNotNone(first)
        self.forged("INVITE", call_id=call_id, branch=branch)
        self.assertTrue(self.wait_for(lambda: len(self.answers(branch)) == 2, 3))
        tags = {m.tag("To") for m in self.answers(branch)}
        self.assertEqual(len(tags), 1, tags)
        tag = tags.pop()
        self.assertRegex(tag, r"^c[0-9a-f]{16}$")
        forged_before = self.metrics().get("sipbx_sip_forged_in_dialog_total", 0)
        ack, _ = request(self.victim, "ACK", "sip:101@127.0.0.1", "sip:100@127.0.0.1",
                         "sip:101@127.0.0.1", call_id, 1, "vt", tag, branch=branch, contact=False)
        self.victim.send(ack)
        # a made-up tag of the same shape is not ours: that ACK is a forged one
        bad, _ = request(self.victim, "ACK", "sip:101@127.0.0.1", "sip:100@127.0.0.1",
                         "sip:101@127.0.0.1", call_id, 1, "vt", "c" + "0" * 16, contact=False)
        self.victim.send(bad)
        self.assertTrue(self.wait_for(
            lambda: self.metrics().get("sipbx_sip_forged_in_dialog_total", 0) == forged_before + 1,
            3), "the good ACK was taken as forged, or the bad one was not")
        self.assertEqual(len(self.answers(branch)), 2, "the ACK was answered")

    def test_a_real_call_through_the_challenge(self):
        """The phone's side of it: INVITE, 407, ACK, INVITE with credentials, 200, BYE."""
        callee = Phone(self.d.sip_port, "101", "secret-101-pw")
        caller = Phone(self.d.sip_port, "100", "secret-100-pw", answer=False)
        try:
            self.assertEqual(callee.register().status, 200)
            forged_before = self.metrics().get("sipbx_sip_forged_in_dialog_total", 0)
            r, dlg = caller.invite("101")
            self.assertEqual(r.status, 200, r.first)
            challenges = [m for m in caller.received if m.status == 407]
            self.assertEqual(len(challenges), 1)
            self.assertEqual(caller.in_dialog(dlg, "BYE").status, 200)
            self.assertEqual(self.metrics().get("sipbx_sip_forged_in_dialog_total", 0),
                             forged_before, "the ACK of the 407 was counted as forged")
            # the callee got one INVITE: the challenged one never went further
            self.assertEqual(len(callee.requests("INVITE")), 1)
        finally:
            callee.close()
            caller.close()

    def test_over_tcp_the_transaction_answers(self):
        """Over TCP nothing is resent and the transaction ends with the answer: the 407 is
        the transaction's, and a call works the same."""
        callee = Phone(self.d.sip_port, "101", "secret-101-pw")
        caller = Phone(self.d.sip_port, "100", "secret-100-pw", answer=False, transport="tcp")
        try:
            self.assertEqual(callee.register().status, 200)
            r, dlg = caller.invite("101")
            self.assertEqual(r.status, 200, r.first)
            self.assertEqual(caller.in_dialog(dlg, "BYE").status, 200)
        finally:
            callee.close()
            caller.close()


if __name__ == "__main__":
    apitest.main()
