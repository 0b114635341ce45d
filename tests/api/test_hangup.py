#!/usr/bin/env python3
"""DELETE /api/v1/calls/{id}: an administrator ends a live call on both legs. Answered: both
phones get a BYE from sipbx, in their own dialog (From, To and tags as each expects, a CSeq
above what the other side used); ringing: the devices get CANCEL and the caller 487. The
record says hangup_by "admin"."""

import re

import apitest
from sipbxtest.phone import Phone, digest, parse_challenge, rand, request


class Hangup(apitest.DaemonTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.create_user("100", "secret-100-pw")
        cls.create_user("101", "secret-101-pw")

    def setUp(self):
        self.caller = Phone(self.d.sip_port, "100", "secret-100-pw")
        self.callee = Phone(self.d.sip_port, "101", "secret-101-pw", transport="tcp")
        for p in (self.caller, self.callee):
            self.assertEqual(p.register().status, 200)

    def tearDown(self):
        self.caller.close()
        self.callee.close()

    def live_call(self, call_id):
        calls = self.api("GET", "/api/v1/calls").json["items"]
        return next((c for c in calls if c["call_id"] == call_id), None)

    def cdr(self, call_id):
        def get():
            items = self.api("GET", "/api/v1/cdrs?limit=50").json["items"]
            return next((c for c in items if c["call_id"] == call_id), None)
        return self.wait_for(get, 5, "no record of %s" % call_id)

    def test_answered_call(self):
        r, dlg = self.caller.invite("101")
        self.assertEqual(r.status, 200, r.first)
        inv = self.callee.wait(lambda m: m.method == "INVITE")
        # Each side uses CSeqs of its own: a re-INVITE from the caller (CSeq 3) and an INFO
        # from the callee (CSeq 10); sipbx's BYEs must go above them.
        self.assertEqual(self.caller.in_dialog(dlg, "INVITE").status, 200)
        self.caller.in_dialog(dlg, "ACK", cseq=dlg["cseq"])
        cdlg = {"call_id": dlg["call_id"], "from_tag": dlg["to_tag"], "to_tag": dlg["from_tag"],
                "to": self.caller.aor, "route": inv.all("Record-Route"), "cseq": 9,
                "target": re.sub(r"^<|>.*$", "", inv.get("Contact"))}
        self.assertEqual(self.callee.in_dialog(cdlg, "INFO").status, 200)
        call = self.live_call(dlg["call_id"])
        self.assertEqual(call["state"], "answered")
        r = self.api("DELETE", "/api/v1/calls/%d" % call["id"])
        self.assertEqual(r.status, 204, r)
        bye_a = self.caller.wait(lambda m: m.method == "BYE", 5)
        bye_b = self.callee.wait(lambda m: m.method == "BYE", 5)
        self.assertIsNotNone(bye_a, "no BYE at the caller")
        self.assertIsNotNone(bye_b, "no BYE at the callee")
        # To the caller, as if from the callee: its dialog's tags, a CSeq above 10.
        self.assertEqual(bye_a.tag("From"), dlg["to_tag"])
        self.assertEqual(bye_a.tag("To"), dlg["from_tag"])
        self.assertEqual(bye_a.get("Call-ID"), dlg["call_id"])
        self.assertGreater(int(bye_a.cseq.split()[0]), 10)
        self.assertTrue(bye_a.ruri.startswith("sip:100@"), bye_a.ruri)
        # To the callee, as if from the caller: a CSeq above the caller's 3, over TCP.
        self.assertEqual(bye_b.tag("From"), dlg["from_tag"])
        self.assertEqual(bye_b.tag("To"), dlg["to_tag"])
        self.assertGreater(int(bye_b.cseq.split()[0]), dlg["cseq"])
        self.assertIn("SIP/2.0/TCP", bye_b.get("Via"))
        for b in (bye_a, bye_b):
            self.assertIn("administrator", b.get("Reason") or "", b)
        self.assertIsNone(self.live_call(dlg["call_id"]))
        rec = self.cdr(dlg["call_id"])
        self.assertEqual((rec["disposition"], rec["hangup_by"]), ("ANSWERED", "admin"), rec)

    def test_ringing_call(self):
        sent = []

        def ring(ep, req):
            if req.method == "INVITE":
                ep.inv = req
                ep.reply(req, 180, "Ringing", ["Contact: <sip:101@127.0.0.1:%d;transport=tcp>"
                                               % ep.port])
            elif req.method == "CANCEL":
                sent.append(req)
                ep.reply(req, 200, "OK")
                ep.reply(ep.inv, 487, "Request Terminated")
        self.callee.handler = ring
        call_id = rand() + "@ring"
        # the caller's INVITE (with credentials after the 407), left ringing
        text, branch = request(self.caller, "INVITE", "sip:101@127.0.0.1", self.caller.aor,
                               "sip:101@127.0.0.1", call_id, 1, self.caller.tag)
        r = self.caller.transact(text, branch)
        self.caller.send(request(self.caller, "ACK", "sip:101@127.0.0.1", self.caller.aor,
                                 "sip:101@127.0.0.1", call_id, 1, self.caller.tag, r.tag("To"),
                                 branch=branch, contact=False)[0])
        auth = "Proxy-Authorization: " + digest("100", "secret-100-pw", parse_challenge(
            r.get("Proxy-Authenticate")), "INVITE", "sip:101@127.0.0.1")
        text, branch = request(self.caller, "INVITE", "sip:101@127.0.0.1", self.caller.aor,
                               "sip:101@127.0.0.1", call_id, 2, self.caller.tag, extra=[auth])
        self.caller.send(text)
        self.assertTrue(self.caller.wait(lambda m: m.status == 180, 5), "no ringing")
        call = self.wait_for(lambda: self.live_call(call_id), 3, "the call is not listed")
        self.assertEqual(call["state"], "ringing")
        self.assertEqual(self.api("DELETE", "/api/v1/calls/%d" % call["id"]).status, 204)
        final = self.caller.response(branch, timeout=5)
        self.assertIsNotNone(final, "the caller got no final answer")
        self.assertEqual(final.status, 487)
        self.assertEqual(len(sent), 1)
        self.assertIn("administrator", sent[0].get("Reason") or "")
        self.assertTrue(self.callee.wait(lambda m: m.method == "ACK", 3), "487 not ACKed")
        rec = self.cdr(call_id)
        self.assertEqual((rec["disposition"], rec["hangup_by"]), ("CANCELLED", "admin"), rec)

    def test_errors(self):
        self.assertError(self.api("DELETE", "/api/v1/calls/999999"), 404, "not_found")
        self.assertError(self.api("DELETE", "/api/v1/calls/abc"), 404, "not_found")
        r = self.d.request("DELETE", "/api/v1/calls/1")
        self.assertEqual(r.status, 401)


if __name__ == "__main__":
    apitest.main()
