#!/usr/bin/env python3
"""Unauthenticated junk must not be stored as call traces (the hardening issue, part 4).

On 0.1.0, 27k junk messages became 61k trace rows and 55 MB, pushing real call traces out of
the retention budget. Now only messages of a Call-ID that sipbx accepted (an authenticated
request, a signed dialog) are stored; the rest is held back briefly, then counted in
sipbx_trace_untraced_total and dropped. A real call made during the flood is traced whole,
its 407 challenge included.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
import apitest  # noqa: E402
from sipbxtest.phone import Endpoint, Phone, rand, request  # noqa: E402

JUNK_PER_KIND = 150


class JunkTraces(apitest.DaemonTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.create_user("100", "secret-100-pw")
        cls.create_user("101", "secret-101-pw")

    def metric(self, name):
        return apitest.parse_metrics(self.api("GET", "/metrics").body.decode()).get(name, 0)

    def rows(self, where="", args=()):
        return self.d.db_query("SELECT count(*) FROM trace_messages " + where, args)[0][0]

    def flood(self, ep):
        """What a scanner sends: unauthenticated INVITEs, REGISTERs with wrong credentials
        (to unknown users, so nothing is learnt), OPTIONS probes, forged in-dialog requests
        and bytes that are not SIP. Returns the Call-IDs used."""
        ids = []
        target = "sip:0044123@127.0.0.3"
        for i in range(JUNK_PER_KIND):
            for method, ruri, to_tag, extra in (
                    ("INVITE", "sip:101@127.0.0.1", None, []),
                    ("OPTIONS", "sip:101@127.0.0.1", None, []),
                    ("BYE", target, "b", ["Route: <sip:127.0.0.1:%d;lr>" % self.d.sip_port]),
                    ("REGISTER", "sip:127.0.0.1", None,
                     ['Authorization: Digest username="9%03d", realm="127.0.0.1", '
                      'nonce="x", uri="sip:127.0.0.1", response="%s"' % (i, "0" * 32)])):
                call_id = "junk-%s-%s" % (method.lower(), rand())
                ids.append(call_id)
                text, _ = request(ep, method, ruri, "sip:9%03d@127.0.0.1" % i, ruri, call_id, 1,
                                  rand(8), to_tag, extra=extra)
                ep.send(text)
            ep.send(b"\x16\x03\x01 not sip at all %d\r\n\r\n" % i)
            if i % 20 == 0:
                time.sleep(0.05)  # a scanner's pace, not a UDP buffer overflow
        return ids

    def test_junk_is_not_traced_real_calls_are(self):
        before = self.metric("sipbx_trace_untraced_total")
        rows_before = self.rows()
        scanner = Endpoint(self.d.sip_port, host="127.0.0.2")
        callee = Phone(self.d.sip_port, "101", "secret-101-pw")
        caller = Phone(self.d.sip_port, "100", "secret-100-pw", answer=False)
        try:
            self.assertEqual(callee.register().status, 200)
            ids = self.flood(scanner)
            # A real call in the middle of it all: traced whole, challenge included.
            r, dlg = caller.invite("101")
            self.assertEqual(r.status, 200, r.first)
            self.assertEqual(caller.in_dialog(dlg, "BYE").status, 200)
            ids += self.flood(scanner)
            last = [i for i in ids if i.startswith("junk-invite-")][-1]
            self.assertTrue(scanner.wait(lambda m: m.get("Call-ID") == last, 10),
                            "the flood was not read")

            def call_traced():
                firsts = [f for (f,) in self.d.db_query(
                    "SELECT first_line FROM trace_messages WHERE call_id = ? ORDER BY id",
                    (dlg["call_id"],))]
                return firsts if len(firsts) >= 12 else None
            firsts = self.wait_for(call_traced, 5, "the real call was not traced")
            starts = [f.split(" ")[0] if not f.startswith("SIP/") else f.split(" ")[1]
                      for f in firsts]
            for want in ("INVITE", "407", "ACK", "100", "180", "200", "BYE"):
                self.assertIn(want, starts, firsts)
            # Every junk message is counted once the hold time (64*T1) is over, and none of
            # it was ever stored.
            counted = lambda: self.metric("sipbx_trace_untraced_total") - before  # noqa: E731
            if not self.wait_for(lambda: counted() >= 4 * 2 * JUNK_PER_KIND, 45):
                self.fail("junk was not counted as untraced: %d messages" % counted())
            junk_rows = self.rows("WHERE call_id LIKE 'junk-%'")
            self.assertEqual(junk_rows, 0, "junk stored as traces")
            # Registration and call rows only: a handful, not thousands.
            self.assertLess(self.rows() - rows_before, 40)
        finally:
            for e in (scanner, callee, caller):
                e.close()


if __name__ == "__main__":
    apitest.main()
