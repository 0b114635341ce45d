"""Each call flow SIPp can produce leaves one call record (GET /api/v1/cdrs) with the right
disposition, status and party who hung up, and a trace (GET /api/v1/traces/{call_id}) with
every message of both legs in order: the 407 challenge, the relayed answers, the ACKs and
BYEs, and retransmissions flagged as such.

    python3 test_flows.py --sipbx PATH/TO/sipbx
"""

import calendar
import hashlib
import re
import socket
import time

import records
from records import new_call_id

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

    def check_flow(self, call_id, sipps, count, steps, **record):
        """The call's record (check_record, with the flow's values in record), its trace of
        count messages or more (check_trace, retransmission flags), and its ladder: steps as
        match_ladder takes them, the phones named after sipps (caller, callee). Returns
        (record, trace)."""
        c = self.cdr(call_id)
        self.check_record(c, call_id, **record)
        tr = self.trace(call_id, count)
        self.check_trace(tr, call_id)
        self.check_retransmission_flags(tr)
        records.match_ladder(self, records.ladder(tr, self.ports(*sipps)), steps)
        return c, tr

    # ---- the flows ----

    def test_answered_caller_hangs_up(self):
        call_id, a, b = self.run_call("answered-caller", "uas_answer.xml", "uac_answer.xml",
                                      hold_ms=1100, display='"Alice Example"')
        c, tr = self.check_flow(call_id, (a, b), 16, CALLER_HANGS_UP,
                                caller_name="Alice Example", dialled="101", answered_by="101",
                                disposition="ANSWERED", status=200, phrase="OK",
                                hangup_by="caller")
        self.assertGreaterEqual(c["billsec"], 1, c)  # held 1.1 s
        msgs = tr["messages"]
        # the challenge, and the credentials in the second INVITE only
        self.assertIn("Proxy-Authenticate: Digest", msgs[1]["raw"])
        self.assertNotIn("Proxy-Authorization", msgs[0]["raw"])
        self.assertIn("Proxy-Authorization: Digest", msgs[3]["raw"])
        # sipbx forwards without the credentials, with its Record-Route, one hop less
        fwd = msgs[5]["raw"]
        self.assertNotIn("Proxy-Authorization", fwd)
        self.assertRegex(fwd, r"Record-Route: <sip:127\.0\.0\.1:%d;lr;sbx=[0-9a-f]{24}>"
                         % self.d.sip_port)
        self.assertIn("Max-Forwards: 69", fwd)
        # the SDP went through untouched, byte for byte
        self.assertEqual(msgs[3]["raw"].split("\r\n\r\n", 1)[1], fwd.split("\r\n\r\n", 1)[1])
        self.assertEqual(msgs[8]["raw"].split("\r\n\r\n", 1)[1],
                         msgs[9]["raw"].split("\r\n\r\n", 1)[1])

    def test_answered_callee_hangs_up(self):
        call_id, a, b = self.run_call("answered-callee", "uas_bye.xml", "uac_wait_bye.xml",
                                      uas_hold_ms=300)
        self.check_flow(call_id, (a, b), 16, [
            *RINGING,
            ("in", 200, B), ("out", 200, A),
            ("in", "ACK", A), ("out", "ACK", B),
            ("in", "BYE", B), ("out", "BYE", A),
            ("in", 200, A), ("out", 200, B),
        ], answered_by="101", disposition="ANSWERED", status=200, hangup_by="callee")

    def test_busy(self):
        call_id, a, b = self.run_call("busy", "uas_busy.xml", "uac_busy.xml")
        self.check_flow(call_id, (a, b), 11, [
            *AUTHENTICATED, ("out", "INVITE", B),
            ("in", 486, B),
            {("out", "ACK", B), ("out", 486, A)},
            ("in", "ACK", A),
        ], answered_by="", answer=None, disposition="BUSY", status=486, phrase="Busy Here",
            hangup_by="callee")

    def test_caller_cancels(self):
        call_id, a, b = self.run_call("cancel", "uas_ring.xml", "uac_cancel.xml", hold_ms=300)
        _, tr = self.check_flow(call_id, (a, b), 17, [
            *RINGING,
            ("in", "CANCEL", A), ("out", 200, A),
            {("out", "CANCEL", B), ("out", 487, A),
             ("in", 200, B), ("in", 487, B), ("out", "ACK", B), ("in", "ACK", A)},
        ], answer=None, disposition="CANCELLED", status=487, phrase="Request Terminated",
            hangup_by="caller")
        self.assertEqual(tr["messages"][9]["cseq"], "2 CANCEL")

    def test_ring_timeout(self):
        call_id, a, b = self.run_call("timeout", "uas_ring.xml", "uac_ring_timeout.xml")
        self.assertGreaterEqual(time.time() - a.started, 1.9, "--ring-timeout 2 not honoured")
        c, _ = self.check_flow(call_id, (a, b), 14, [
            *RINGING,
            {("out", "CANCEL", B), ("out", 408, A),
             ("in", 200, B), ("in", 487, B), ("out", "ACK", B), ("in", "ACK", A)},
        ], answer=None, disposition="NO ANSWER", status=408, phrase="Request Timeout",
            hangup_by="sipbx")
        self.assertGreaterEqual(c["end_us"] - c["start_us"], 1900000)

    def test_unknown_number(self):
        call_id, a, b = self.run_call("unknown", None, "uac_not_found.xml", ext="199")
        self.check_flow(call_id, (a, b), 7, [
            *AUTHENTICATED, ("out", 404, A), ("in", "ACK", A),
        ], dialled="199", answered_by="", answer=None, disposition="FAILED", status=404,
            phrase="Not Found", hangup_by="sipbx")

    def test_unregistered(self):
        call_id, a, b = self.run_call("unregistered", None, "uac_unavailable.xml", ext="103")
        self.check_flow(call_id, (a, b), 7, [
            *AUTHENTICATED, ("out", 480, A), ("in", "ACK", A),
        ], dialled="103", answer=None, disposition="FAILED", status=480,
            phrase="Temporarily Unavailable", hangup_by="sipbx")

    def test_retransmitted_200_is_flagged(self):
        """The caller acknowledges late, so the callee resends its 200 after 500 ms (T1):
        sipbx relays it again, and both copies are marked as retransmissions."""
        call_id, a, b = self.run_call("retrans", "uas_answer.xml", "uac_slow_ack.xml")
        _, tr = self.check_flow(call_id, (a, b), 18, CALLER_HANGS_UP,
                                disposition="ANSWERED", hangup_by="caller")
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
        call_id, a, b = self.run_call("tcp", "uas_answer.xml", "uac_answer.xml", transport="t1")
        _, tr = self.check_flow(call_id, (a, b), 16, CALLER_HANGS_UP,
                                disposition="ANSWERED", hangup_by="caller")
        a_addr = "127.0.0.1:%d" % a.port
        for m in tr["messages"]:
            peer = m["src"] if m["direction"] == "in" else m["dst"]
            self.assertEqual(m["transport"], "tcp" if peer == a_addr else "udp", m)

    def test_tcp_reads_cut_into_messages(self):
        """Two requests in one TCP segment, and one split over two segments (after a CRLF
        keep-alive): each is stored whole and alone, byte for byte as sent. They are
        REGISTERs with credentials (one nonce, nonce-counts 1 to 3): only requests sipbx
        accepts are traced."""
        sock = socket.create_connection(("127.0.0.1", self.d.sip_port), timeout=5)

        def register(call_id, port, auth=None):
            return ("REGISTER sip:%s SIP/2.0\r\n"
                    "Via: SIP/2.0/TCP 127.0.0.1:%d;branch=z9hG4bK%s\r\n"
                    "From: <sip:100@%s>;tag=t%s\r\nTo: <sip:100@%s>\r\nCall-ID: %s\r\n"
                    "CSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n"
                    "Contact: <sip:100@127.0.0.1:%d;transport=tcp>\r\nExpires: 60\r\n%s"
                    "Content-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello\r\nsip!"
                    % (records.DOMAIN, port, call_id.split("@")[0], records.DOMAIN,
                       call_id.split("@")[0], records.DOMAIN, call_id, port,
                       "Authorization: %s\r\n" % auth if auth else ""))

        def read_response():
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            return data.decode()
        try:
            port = sock.getsockname()[1]
            sock.sendall(register(new_call_id("tcp-nonce").replace("%u", "x"), port).encode())
            chal = dict(re.findall(r'(\w+)="([^"]*)"', read_response().split(
                "WWW-Authenticate:", 1)[1].split("\r\n", 1)[0]))
            ids = [new_call_id("tcp-framing").replace("%u", str(i)) for i in range(3)]
            texts = []
            for nc, call_id in enumerate(ids, 1):
                ha1 = hashlib.md5(("100:%s:%s" % (chal["realm"], records.PASSWORDS["100"]))
                                  .encode()).hexdigest()
                ha2 = hashlib.md5(("REGISTER:sip:%s" % records.DOMAIN).encode()).hexdigest()
                resp = hashlib.md5(("%s:%s:%08x:c0ffee:auth:%s" % (ha1, chal["nonce"], nc, ha2))
                                   .encode()).hexdigest()
                auth = ('Digest username="100", realm="%s", nonce="%s", uri="sip:%s", '
                        'response="%s", algorithm=MD5, cnonce="c0ffee", qop=auth, nc=%08x'
                        % (chal["realm"], chal["nonce"], records.DOMAIN, resp, nc))
                texts.append(register(call_id, port, auth))
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
                                  for m in msgs], [("in", "REGISTER"), ("out", 200)])
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
