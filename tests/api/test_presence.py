"""api_presence: GET /api/v1/presence (every user's presence and busy lamp, or one user's),
the presence.changed events on the event stream when a phone registers, publishes or ends
its publication, and the presence metrics (subscriptions by package, NOTIFYs sent,
publications) with a real subscription from a raw phone."""

import json
import re

import apitest
from apitest import DaemonTest
from calltest import EventStream
from sipbxtest.phone import Phone, digest, parse_challenge, rand, request

KEYS = {"extension", "basic", "note", "busy", "dialog", "source", "watchers"}
PIDF = ('<?xml version="1.0" encoding="UTF-8"?>\r\n'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:700@127.0.0.1">\r\n'
        '<tuple id="t"><status><basic>open</basic></status>'
        '<note>Busy &amp; in a meeting</note></tuple></presence>\r\n')


def authed(phone, method, ruri, extra, body="", ctype=None):
    """method out of dialog from phone to ruri, answering one 407; the final response."""
    call_id, auth = rand() + "@api", []
    for cseq in (1, 2):
        ex = list(extra) + auth + (["Content-Type: " + ctype] if ctype else [])
        text, branch = request(phone, method, ruri, phone.aor, ruri, call_id, cseq, phone.tag,
                               extra=ex)
        if body:
            text = text.replace("Content-Length: 0\r\n\r\n", "Content-Length: %d\r\n\r\n%s"
                                % (len(body.encode()), body))
        r = phone.transact(text, branch)
        if r.status != 407:
            return r
        auth = ["Proxy-Authorization: " + digest(phone.ext, phone.password, parse_challenge(
            r.get("Proxy-Authenticate")), method, ruri)]
    return r


class Presence(DaemonTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.create_user("700", "secret700")
        cls.create_user("701", "secret701")

    def presence(self, query=""):
        r = self.api("GET", "/api/v1/presence" + query)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(set(r.json), {"items"})
        return {p["extension"]: p for p in r.json["items"]}

    def stream(self):
        s = EventStream(self.d, self.token)
        self.addCleanup(s.close)
        self.assertEqual(s.status, 200)
        return s

    def changed(self, s, ext, pred=lambda p: True):
        e, _ = s.wait_for(lambda e: e["event"] == "presence.changed" and
                          json.loads(e["data"])["extension"] == ext and
                          pred(json.loads(e["data"])))
        return json.loads(e["data"])

    def test_list_and_errors(self):
        items = self.presence()
        self.assertEqual(set(items["701"]), KEYS)
        self.assertEqual(items["701"], {"extension": "701", "basic": "closed", "note": "Offline",
                                        "busy": False, "dialog": "idle",
                                        "source": "registration", "watchers": 0})
        self.assertEqual(list(self.presence("?extension=701")), ["701"])
        self.assertError(self.api("GET", "/api/v1/presence?extension=999"), 404, "not_found",
                         "999")
        self.assertError(self.api("GET", "/api/v1/presence", token=None), 401, "unauthorized")
        self.assertError(self.api("POST", "/api/v1/presence", {}), 405, "method_not_allowed")

    def test_events_publish_and_metrics(self):
        s = self.stream()
        owner = Phone(self.d.sip_port, "700", "secret700", domain="127.0.0.1", answer=False)
        watcher = Phone(self.d.sip_port, "701", "secret701", domain="127.0.0.1", answer=False)
        watcher.handler = lambda ep, m: m.method == "NOTIFY" and ep.reply(m, 200, "OK")
        self.addCleanup(owner.close)
        self.addCleanup(watcher.close)
        before = apitest.parse_metrics(self.api("GET", "/metrics").body.decode())

        self.assertEqual(owner.register().status, 200)
        p = self.changed(s, "700", lambda p: p["basic"] == "open")
        self.assertEqual((p["note"], p["source"], p["busy"]), ("Available", "registration", False))

        r = authed(watcher, "SUBSCRIBE", "sip:700@127.0.0.1", ["Event: presence", "Expires: 600"])
        self.assertEqual(r.status, 200, r)
        self.assertTrue(watcher.wait(lambda m: m.method == "NOTIFY", timeout=5))
        self.assertEqual(self.presence("?extension=700")["700"]["watchers"], 1)

        r = authed(owner, "PUBLISH", owner.aor, ["Event: presence", "Expires: 600"], PIDF,
                   "application/pidf+xml")
        self.assertEqual(r.status, 200, r)
        etag = r.get("SIP-ETag")
        p = self.changed(s, "700", lambda p: p["source"] == "published")
        self.assertEqual((p["basic"], p["note"]), ("open", "Busy & in a meeting"))
        self.assertEqual(self.presence()["700"]["note"], "Busy & in a meeting")
        self.assertTrue(watcher.wait(lambda m: m.method == "NOTIFY" and "meeting" in m.body,
                                     timeout=5))

        after = apitest.parse_metrics(self.api("GET", "/metrics").body.decode())
        self.assertEqual(after['sipbx_sip_subscriptions{package="presence"}'], 1)
        self.assertEqual(after['sipbx_sip_subscriptions{package="dialog"}'], 0)
        self.assertEqual(after["sipbx_presence_publications"], 1)
        self.assertGreaterEqual(after["sipbx_sip_notifies_sent_total"] -
                                before["sipbx_sip_notifies_sent_total"], 2)

        r = authed(owner, "PUBLISH", owner.aor, ["Event: presence", "Expires: 0",
                                                 "SIP-If-Match: " + etag])
        self.assertEqual(r.status, 200, r)
        p = self.changed(s, "700", lambda p: p["source"] == "registration")
        self.assertEqual(p["note"], "Available")
        metrics = apitest.parse_metrics(self.api("GET", "/metrics").body.decode())
        self.assertEqual(metrics["sipbx_presence_publications"], 0)
        self.assertTrue(re.match(r"^[0-9a-f]+$", etag))


if __name__ == "__main__":
    apitest.main()
