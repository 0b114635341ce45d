#!/usr/bin/env python3
"""Listening to someone else's voicemail, or recording into it, without the proxy.

sipbx's voicemail user agent listens on 127.0.0.1 (the port is in the banner). A process on
the host, or a phone through the proxy, tries to reach it directly: an INVITE naming a
mailbox to listen to with no token, a made-up token, a token sipbx really issued but for
another call or another operation, the same token again after its call (read off a trace),
one with an old time; and through the proxy a pre-loaded Route to the user agent, or a
Request-URI naming it. Every one is refused (403, or the proxy's own refusal), nothing is
played (no RTP arrives), nothing is recorded, and the log says why. The real calls the
proxy makes still work, and *97 plays only the caller's own mailbox.
"""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
import apitest  # noqa: E402
from sipbxtest import media  # noqa: E402
from sipbxtest.phone import HOST, Endpoint, Phone, rand, request  # noqa: E402


class VoicemailSpoof(apitest.DaemonTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.create_user("100", "secret-100-pw")
        cls.create_user("101", "secret-101-pw")
        r = cls.d.request("PUT", "/api/v1/users/101/forwarding",
                          {"unavailable": {"enabled": True, "voicemail": True}},
                          token=cls.token)
        assert r.status == 200, r
        line = next(l for l in cls.d.stdout_lines if l.startswith("Voicemail:"))
        cls.ua_port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
        # 101's secret message
        cls.secret = media.test_signal(2.0, seed=42)
        os.makedirs(os.path.join(cls.d.dir, "voicemail"), exist_ok=True)
        media.write_wav(os.path.join(cls.d.dir, "voicemail", "5ec4e7.wav"), cls.secret)
        import sqlite3
        con = sqlite3.connect(cls.d.db)
        con.execute("INSERT INTO voicemail_messages (extension, caller, received_us, "
                    "duration_ms, file, bytes) VALUES ('101', '100', ?, 2000, '5ec4e7.wav', "
                    "32044)", (int(time.time() * 1e6),))
        con.commit()
        con.close()

    def setUp(self):
        self.attacker = Endpoint(self.ua_port)  # sends straight to the user agent
        self.rtp = media.RtpPeer()

    def tearDown(self):
        self.attacker.close()
        self.rtp.close()

    def direct(self, ruri, call_id=None):
        """An INVITE from the attacker's socket to the user agent; its final answer."""
        text, branch = request(self.attacker, "INVITE", ruri, "sip:101@127.0.0.1",
                               "sip:101@127.0.0.1", call_id or rand(), 1, rand(8),
                               body=media.sdp(self.rtp.port))
        self.attacker.send(text)
        r = self.attacker.response(branch, timeout=5)
        self.assertIsNotNone(r, "no answer to %s" % ruri)
        return r

    def assert_refused(self, r, what):
        self.assertEqual(r.status, 403, "%s: %s" % (what, r.first))
        self.assertNotIn("m=audio", r.body, "%s: media offered" % what)

    def assert_nothing_played(self):
        time.sleep(1.0)
        self.assertEqual(self.rtp.packets(), [], "RTP was sent to the attacker")

    def ua(self, params):
        return "sip:101@127.0.0.1:%d%s" % (self.ua_port, params)

    def real_token_uri(self):
        """The Request-URI sipbx really sent its user agent for a call of 100 to 101 (which
        went to voicemail), as the trace shows it; the call is over."""
        caller = Phone(self.d.sip_port, "100", "secret-100-pw", answer=False)
        try:
            r, dlg = caller.invite("101", sdp=media.sdp(self.rtp.port))
            self.assertEqual(r.status, 200, r)
            caller.in_dialog(dlg, "BYE")
        finally:
            caller.close()
        deadline = time.time() + 5
        while time.time() < deadline:
            r = self.api("GET", "/api/v1/traces/" + dlg["call_id"])
            if r.status == 200:
                for m in r.json["messages"]:
                    line = m["first_line"]
                    if line.startswith("INVITE sip:101@127.0.0.1:%d;" % self.ua_port):
                        return line.split(" ")[1], dlg["call_id"]
            time.sleep(0.2)
        self.fail("no INVITE to the voicemail user agent in the trace")

    def test_direct_requests_are_refused(self):
        cases = {
            "no token": self.ua(";vm=listen"),
            "made-up token": self.ua(";vm=listen;vmts=%d;vmt=%s" % (time.time(), "0" * 24)),
            "short token": self.ua(";vm=listen;vmts=%d;vmt=abc" % time.time()),
            "no time": self.ua(";vm=listen;vmt=%s" % ("1" * 24)),
            "no operation": self.ua(""),
        }
        for what, ruri in cases.items():
            with self.subTest(what):
                self.assert_refused(self.direct(ruri), what)
        uri, call_id = self.real_token_uri()
        self.assertRegex(uri, r";vm=leave;why=unavailable;vmts=\d+;vmt=[0-9a-f]{24}$")
        # The real token: replayed for its own Call-ID (it was taken), for another call,
        # for listening instead of leaving, for another mailbox.
        listen = uri.replace(";vm=leave", ";vm=listen")
        other_box = uri.replace("sip:101@", "sip:100@")
        for what, ruri, cid in (("replayed", uri, call_id), ("another call", uri, rand()),
                                ("listen with a leave token", listen, call_id),
                                ("another mailbox", other_box, call_id)):
            with self.subTest(what):
                self.assert_refused(self.direct(ruri, call_id=cid), what)
        # An old time, correctly signed or not, is refused.
        old = re.sub(r";vmts=\d+", ";vmts=%d" % (time.time() - 3600), uri)
        self.assert_refused(self.direct(old, call_id=rand()), "old time")
        self.assert_nothing_played()
        log = self.d.log()
        for why in ("no valid token", "a token used before", "an expired token"):
            self.assertIn(why, log)
        rows = self.db_rows("SELECT extension FROM voicemail_messages")
        self.assertEqual(rows, [("101",)], "something was recorded: %s" % rows)

    def db_rows(self, sql):
        import sqlite3
        con = sqlite3.connect(self.d.db)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def test_through_the_proxy(self):
        """A phone cannot steer the proxy to the user agent: a pre-loaded Route to it is
        refused, a Request-URI naming it is routed to user 101 (the domain is 127.0.0.1,
        so its host is ours), never to the user agent with a mailbox of the caller's
        choosing; and *97 plays the caller's own (empty) mailbox, not 101's message."""
        caller = Phone(self.d.sip_port, "100", "secret-100-pw", answer=False)
        try:
            r, _ = caller.invite("101", extra=["Route: <sip:127.0.0.1:%d;lr>" % self.ua_port],
                                 sdp=media.sdp(self.rtp.port))
            self.assertEqual(r.status, 403, r.first)
            r, dlg = caller.invite("*97", sdp=media.sdp(self.rtp.port),
                                   ruri=self.ua(";vm=listen"))
            # routed as a call to 101 (its unavailable rule: 101's voicemail to leave a
            # message, not to listen)
            if r.status == 200:
                caller.in_dialog(dlg, "BYE")
            r, dlg = caller.invite("*97", sdp=media.sdp(self.rtp.port))
            self.assertEqual(r.status, 200, r)
            self.rtp.set_remote(r.body)
            time.sleep(4)
            caller.in_dialog(dlg, "BYE")
        finally:
            caller.close()
        self.assertTrue(self.rtp.packets(), "*97 played nothing")
        self.assertLess(self.rtp.codes().find(media.encode(self.secret)[:4000]), 0,
                        "100 heard 101's message")
        self.assertIn("voicemail: listen call", self.d.log())
        self.assertIsNone(re.search(r"listen call \S+ from 100 for mailbox 101", self.d.log()))


if __name__ == "__main__":
    apitest.main()
