"""Each call flow SIPp can produce leaves one call record (GET /api/v1/cdrs) with the right
disposition, status and party who hung up, and a trace (GET /api/v1/traces/{call_id}) with
every message of both legs in order: the 407 challenge, the relayed answers, the ACKs and
BYEs, and retransmissions flagged as such.

    python3 test_flows.py --sipbx PATH/TO/sipbx
"""

import calendar
import re
import socket
import time

import records
from records import caller, callee, new_call_id

A, B = "A", "B"  # the caller's and the callee's phone in the ladders

# The ladder fragments most flows share: the 407 round and the authenticated INVITE with
# its 100 Trying; then the INVITE to the callee and its 180 relayed; and a whole answered
# call that the caller ends.
AUTHENTICATED = [("in", "INVITE", A), ("out", 407, A), ("in", "ACK", A),
                 ("in", "INVITE", A), ("out", 100, A)]
RINGING = AUTHENTICATED + [("out", "INVITE", B), ("in", 180, B), ("out", 180, A)]
CALLER_HANGS_UP = RINGING + [
    ("in", 200, B), ("out", 200, A),
    ("in", "ACK", A), ("out", "ACK", B),
    ("in", "BYE", A), ("out", "BYE", B),
    ("in", 200, B), ("out", 200, A),
]
P = "sipbx"


class Flows(records.RecordsTest):
    daemon_args = ("--ring-timeout", "2")

    def ports(self, *sipps):
        """Port -> name for the ladders: the caller's, the callee's, and sipbx's own."""
        names = {self.d.sip_port: P}
        for name, s in zip((A, B), sipps):
            if s:
                names[s.port] = name
        return names

    def check_record(self, c, call_id, **want):
        """Fields every record has, then the flow's own values."""
        self.assertEqual(c["call_id"], call_id)
        self.assertEqual(c["caller"], "100")
        self.assertEqual(c["user_agent"], "sipbx-records-test")
        self.assertIs(c["interrupted"], False)
        self.assertIsInstance(c["id"], int)
        self.assertEqual(c["forwards"], [])
        for key in ("start", "answer", "end"):
            us = c[key + "_us"]
            if us is None:
                self.assertIsNone(c[key])
                continue
            # the string and the number are the same instant, to the microsecond
            self.assertRegex(c[key], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
            secs = calendar.timegm(time.strptime(c[key][:19], "%Y-%m-%dT%H:%M:%S"))
            self.assertEqual(secs * 1000000 + int(c[key][20:26]), us)
            self.assertLess(abs(us / 1e6 - time.time()), 600, "%s is not now" % key)
        self.assertIsNotNone(c["start_us"])
        self.assertIsNotNone(c["end_us"])
        self.assertLessEqual(c["start_us"], c["end_us"])
        self.assertEqual(c["duration"], (c["end_us"] - c["start_us"]) // 1000000)
        if c["answer_us"]:
            self.assertLessEqual(c["start_us"], c["answer_us"])
            self.assertLessEqual(c["answer_us"], c["end_us"])
            self.assertEqual(c["billsec"], (c["end_us"] - c["answer_us"]) // 1000000)
        else:
            self.assertEqual(c["billsec"], 0)
        for k, v in want.items():
            self.assertEqual(c[k], v, "%s of %r" % (k, c))

    def check_trace(self, tr, call_id):
        """What holds for every trace: numbering, times, addresses, first lines, CSeq."""
        self.assertEqual(tr["call_id"], call_id)
        msgs = tr["messages"]
        self.assertEqual([m["seq"] for m in msgs], list(range(1, len(msgs) + 1)))
        last = 0
        for m in msgs:
            self.assertGreaterEqual(m["time_us"], last)
            last = m["time_us"]
            self.assertRegex(m["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
            self.assertEqual(int(m["time"][20:26]), m["time_us"] % 1000000)
            self.assertIn(m["direction"], ("in", "out"))
            us = "127.0.0.1:%d" % self.d.sip_port
            self.assertEqual(m["dst" if m["direction"] == "in" else "src"], us)
            self.assertTrue(m["raw"].startswith(m["first_line"] + "\r\n"), m)
            self.assertIn("\r\n\r\n", m["raw"])
            head, body = m["raw"].split("\r\n\r\n", 1)
            cl = re.search(r"(?im)^(?:Content-Length|l)\s*:\s*(\d+)", head)
            self.assertIsNotNone(cl, m["raw"])
            self.assertEqual(len(body.encode()), int(cl.group(1)), "body cut:\n" + m["raw"])
            self.assertIn("Call-ID: " + call_id, m["raw"])
            if "method" in m:
                self.assertNotIn("status", m)
                self.assertEqual(m["first_line"].split(" ")[0], m["method"])
                if m["method"] not in ("ACK", "CANCEL"):
                    self.assertTrue(m["cseq"].endswith(" " + m["method"]), m)
            else:
                self.assertEqual(m["first_line"], "SIP/2.0 %d %s" % (m["status"], m["reason"]))

    def check_retransmission_flags(self, tr):
        """A message is flagged exactly when the same bytes went the same way between the
        same two ends before (within 32 s): then it is a resent copy."""
        msgs = tr["messages"]
        for i, m in enumerate(msgs):
            copy = any(p["raw"] == m["raw"] and p["direction"] == m["direction"] and
                       p["src"] == m["src"] and p["dst"] == m["dst"] and
                       m["time_us"] - p["time_us"] <= 32000000 for p in msgs[:i])
            self.assertEqual(m["retransmission"], copy, m)

    # ---- the flows ----

    def test_answered_caller_hangs_up(self):
        cid = new_call_id("answered-caller")
        b = callee(self, "uas_answer.xml", "101")
        a = caller(self, "uac_answer.xml", "101", cid, hold_ms=1100,
                   display='"Alice Example"')
        a.wait()
        b.wait()
        call_id = cid.replace("%u", "1")
        c = self.cdr(call_id)
        self.check_record(c, call_id, caller_name="Alice Example", dialled="101",
                          answered_by="101", disposition="ANSWERED", status=200, phrase="OK",
                          hangup_by="caller")
        self.assertGreaterEqual(c["billsec"], 1, c)  # held 1.1 s
        tr = self.trace(call_id, 16)
        self.check_trace(tr, call_id)
        self.check_retransmission_flags(tr)
        records.match_ladder(self, records.ladder(tr, self.ports(a, b)), CALLER_HANGS_UP)
        msgs = tr["messages"]
        # the challenge, and the credentials in the second INVITE only
        self.assertIn("Proxy-Authenticate: Digest", msgs[1]["raw"])
        self.assertNotIn("Proxy-Authorization", msgs[0]["raw"])
        self.assertIn("Proxy-Authorization: Digest", msgs[3]["raw"])
        # sipbx forwards without the credentials, with its Record-Route, one hop less
        fwd = msgs[5]["raw"]
        self.assertNotIn("Proxy-Authorization", fwd)
        self.assertIn("Record-Route: <sip:127.0.0.1:%d;lr>" % self.d.sip_port, fwd)
        self.assertIn("Max-Forwards: 69", fwd)
        # the SDP went through untouched, byte for byte
        self.assertEqual(msgs[3]["raw"].split("\r\n\r\n", 1)[1], fwd.split("\r\n\r\n", 1)[1])
        self.assertEqual(msgs[8]["raw"].split("\r\n\r\n", 1)[1],
                         msgs[9]["raw"].split("\r\n\r\n", 1)[1])

    def test_answered_callee_hangs_up(self):
        cid = new_call_id("answered-callee")
        b = callee(self, "uas_bye.xml", "101", hold_ms=300)
        a = caller(self, "uac_wait_bye.xml", "101", cid)
        a.wait()
        b.wait()
        call_id = cid.replace("%u", "1")
        self.check_record(self.cdr(call_id), call_id, answered_by="101",
                          disposition="ANSWERED", status=200, hangup_by="callee")
        tr = self.trace(call_id, 16)
        self.check_trace(tr, call_id)
        self.check_retransmission_flags(tr)
        records.match_ladder(self, records.ladder(tr, self.ports(a, b)), [
            *RINGING,
            ("in", 200, B), ("out", 200, A),
            ("in", "ACK", A), ("out", "ACK", B),
            ("in", "BYE", B), ("out", "BYE", A),
            ("in", 200, A), ("out", 200, B),
        ])

    def test_busy(self):
        cid = new_call_id("busy")
        b = callee(self, "uas_busy.xml", "101")
        a = caller(self, "uac_busy.xml", "101", cid)
        a.wait()
        b.wait()
        call_id = cid.replace("%u", "1")
        self.check_record(self.cdr(call_id), call_id, answered_by="", answer=None,
                          disposition="BUSY", status=486, phrase="Busy Here",
                          hangup_by="callee")
        tr = self.trace(call_id, 11)
        self.check_trace(tr, call_id)
        self.check_retransmission_flags(tr)
        records.match_ladder(self, records.ladder(tr, self.ports(a, b)), [
            *AUTHENTICATED, ("out", "INVITE", B),
            ("in", 486, B),
            {("out", "ACK", B), ("out", 486, A)},
            ("in", "ACK", A),
        ])

    def test_caller_cancels(self):
        cid = new_call_id("cancel")
        b = callee(self, "uas_ring.xml", "101")
        a = caller(self, "uac_cancel.xml", "101", cid, hold_ms=300)
        a.wait()
        b.wait()
        call_id = cid.replace("%u", "1")
        self.check_record(self.cdr(call_id), call_id, answer=None, disposition="CANCELLED",
                          status=487, phrase="Request Terminated", hangup_by="caller")
        tr = self.trace(call_id, 17)
        self.check_trace(tr, call_id)
        self.check_retransmission_flags(tr)
        records.match_ladder(self, records.ladder(tr, self.ports(a, b)), [
            *RINGING,
            ("in", "CANCEL", A), ("out", 200, A),
            {("out", "CANCEL", B), ("out", 487, A),
             ("in", 200, B), ("in", 487, B), ("out", "ACK", B), ("in", "ACK", A)},
        ])
        msgs = tr["messages"]
        self.assertEqual(msgs[9]["cseq"], "2 CANCEL")

    def test_ring_timeout(self):
        cid = new_call_id("timeout")
        b = callee(self, "uas_ring.xml", "101")
        started = time.time()
        a = caller(self, "uac_ring_timeout.xml", "101", cid)
        a.wait()
        b.wait()
        self.assertGreaterEqual(time.time() - started, 1.9, "--ring-timeout 2 not honoured")
        call_id = cid.replace("%u", "1")
        c = self.cdr(call_id)
        self.check_record(c, call_id, answer=None, disposition="NO ANSWER", status=408,
                          phrase="Request Timeout", hangup_by="sipbx")
        self.assertGreaterEqual(c["end_us"] - c["start_us"], 1900000)
        tr = self.trace(call_id, 14)
        self.check_trace(tr, call_id)
        self.check_retransmission_flags(tr)
        records.match_ladder(self, records.ladder(tr, self.ports(a, b)), [
            *RINGING,
            {("out", "CANCEL", B), ("out", 408, A),
             ("in", 200, B), ("in", 487, B), ("out", "ACK", B), ("in", "ACK", A)},
        ])

    def test_unknown_number(self):
        cid = new_call_id("unknown")
        a = caller(self, "uac_not_found.xml", "199", cid)
        a.wait()
        call_id = cid.replace("%u", "1")
        self.check_record(self.cdr(call_id), call_id, dialled="199", answered_by="",
                          answer=None, disposition="FAILED", status=404, phrase="Not Found",
                          hangup_by="sipbx")
        tr = self.trace(call_id, 7)
        self.check_trace(tr, call_id)
        records.match_ladder(self, records.ladder(tr, self.ports(a)), [
            *AUTHENTICATED, ("out", 404, A), ("in", "ACK", A),
        ])

    def test_unregistered(self):
        cid = new_call_id("unregistered")
        a = caller(self, "uac_unavailable.xml", "103", cid)
        a.wait()
        call_id = cid.replace("%u", "1")
        self.check_record(self.cdr(call_id), call_id, dialled="103", answer=None,
                          disposition="NO ANSWER", status=480,
                          phrase="Temporarily Unavailable", hangup_by="sipbx")
        tr = self.trace(call_id, 7)
        self.check_trace(tr, call_id)
        records.match_ladder(self, records.ladder(tr, self.ports(a)), [
            *AUTHENTICATED, ("out", 480, A), ("in", "ACK", A),
        ])

    def test_retransmitted_200_is_flagged(self):
        """The caller acknowledges late, so the callee resends its 200 after 500 ms (T1):
        sipbx relays it again, and both copies are marked as retransmissions."""
        cid = new_call_id("retrans")
        b = callee(self, "uas_answer.xml", "101")
        a = caller(self, "uac_slow_ack.xml", "101", cid)
        a.wait()
        b.wait()
        call_id = cid.replace("%u", "1")
        self.check_record(self.cdr(call_id), call_id, disposition="ANSWERED",
                          hangup_by="caller")
        tr = self.trace(call_id, 18)
        self.check_trace(tr, call_id)
        self.check_retransmission_flags(tr)
        records.match_ladder(self, records.ladder(tr, self.ports(a, b)), CALLER_HANGS_UP)
        # the copies: the callee's 200 again (at 500 ms, maybe 1.5 s on a slow machine),
        # each relayed again, before the late ACK
        got = records.ladder(tr, self.ports(a, b), retransmissions=True)
        first = got.index(("in", 200, B))
        ack = got.index(("in", "ACK", A), first)
        resent = got[first + 2:ack]
        self.assertGreaterEqual(len(resent), 2, got)
        self.assertEqual(resent, [("in", 200, B), ("out", 200, A)] * (len(resent) // 2), got)
        flagged = [m["seq"] for m in tr["messages"] if m["retransmission"]]
        self.assertEqual(flagged, list(range(first + 3, ack + 1)), got)

    def test_caller_over_tcp(self):
        """The caller's leg over TCP, the callee's over UDP: every message of both legs is
        there, each one whole (TCP reads are cut into messages by Content-Length)."""
        cid = new_call_id("tcp")
        b = callee(self, "uas_answer.xml", "101")
        a = caller(self, "uac_answer.xml", "101", cid, transport="t1")
        a.wait()
        b.wait()
        call_id = cid.replace("%u", "1")
        self.check_record(self.cdr(call_id), call_id, disposition="ANSWERED",
                          hangup_by="caller")
        tr = self.trace(call_id, 16)
        self.check_trace(tr, call_id)
        self.check_retransmission_flags(tr)
        records.match_ladder(self, records.ladder(tr, self.ports(a, b)), CALLER_HANGS_UP)
        a_addr = "127.0.0.1:%d" % a.port
        for m in tr["messages"]:
            peer = m["src"] if m["direction"] == "in" else m["dst"]
            self.assertEqual(m["transport"], "tcp" if peer == a_addr else "udp", m)

    def test_tcp_reads_cut_into_messages(self):
        """Two requests in one TCP segment, and one split over two segments (after a CRLF
        keep-alive): each is stored whole and alone, byte for byte as sent."""
        def options(call_id, port):
            return ("OPTIONS sip:%s SIP/2.0\r\n"
                    "Via: SIP/2.0/TCP 127.0.0.1:%d;branch=z9hG4bK%s\r\n"
                    "From: <sip:probe@%s>;tag=t%s\r\nTo: <sip:%s>\r\nCall-ID: %s\r\n"
                    "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Type: text/plain\r\n"
                    "Content-Length: 11\r\n\r\nhello\r\nsip!"
                    % (records.DOMAIN, port, call_id.split("@")[0], records.DOMAIN,
                       call_id.split("@")[0], records.DOMAIN, call_id))
        sock = socket.create_connection(("127.0.0.1", self.d.sip_port), timeout=5)
        try:
            port = sock.getsockname()[1]
            ids = [new_call_id("tcp-framing").replace("%u", str(i)) for i in range(3)]
            texts = [options(i, port) for i in ids]
            sock.sendall((texts[0] + texts[1]).encode())
            time.sleep(0.3)
            half = len(texts[2]) // 2
            sock.sendall(("\r\n\r\n" + texts[2][:half]).encode())
            time.sleep(0.3)
            sock.sendall(texts[2][half:].encode())
            for call_id, text in zip(ids, texts):
                tr = self.trace(call_id, 2)
                self.check_trace(tr, call_id)
                msgs = tr["messages"]
                self.assertEqual([(m["direction"], m.get("method") or m["status"])
                                  for m in msgs], [("in", "OPTIONS"), ("out", 200)])
                self.assertEqual(msgs[0]["raw"], text)
                self.assertEqual(msgs[0]["transport"], "tcp")
                self.assertEqual(msgs[0]["src"], "127.0.0.1:%d" % port)
        finally:
            sock.close()

    def test_unknown_call_is_404(self):
        r = self.api("GET", "/api/v1/traces/no-such-call%40nowhere")
        self.assertError(r, 404, "not_found", "no-such-call@nowhere")
        r = self.api("GET", "/api/v1/traces/no-such-call%40nowhere.pcap")
        self.assertError(r, 404, "not_found", "no-such-call@nowhere")


if __name__ == "__main__":
    records.main()
