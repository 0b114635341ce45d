"""api_events: the server-sent event stream GET /api/v1/events: authentication (token or
session cookie), the registration.changed event of a phone registering over SIP, resuming
with Last-Event-ID, the overflow notice, the limit on open streams, keepalives, streams of
a revoked token or ended session closing, and streams ending when the daemon stops.
(Call events are checked with a real call in test_calls.py.)"""

import json
import socket
import time
import urllib.parse

import apitest
from apitest import DaemonTest, SipPhone, parse_metrics, register
from calltest import EventStream

STREAMS_MAX = 16  # HTTP_STREAMS_MAX
KEEPALIVE = 15  # seconds


class Events(DaemonTest):
    def open(self, **kw):
        s = EventStream(self.d, kw.pop("token", self.token), **kw)
        self.addCleanup(s.close)
        return s

    def open_when_free(self, **kw):
        """A stream opened once a slot is free (503 until then), within 5 s."""
        deadline = time.time() + 5
        while True:
            s = self.open(**kw)
            if s.status != 503 or time.time() > deadline:
                self.assertEqual(s.status, 200, s.body)
                return s
            time.sleep(0.2)

    def registration(self, s, ext):
        e, _ = s.wait_for(lambda e: e["event"] == "registration.changed" and
                          json.loads(e["data"])["extension"] == ext)
        return e

    def test_auth_required(self):
        s = self.open(token=None)
        self.assertEqual(s.status, 401)
        self.assertEqual(json.loads(s.body)["error"]["code"], "unauthorized")
        s = self.open(token="sipbx_" + "0" * 64)
        self.assertEqual(s.status, 401)
        # With the dashboard's session cookie; a GET needs no CSRF header.
        cookie, _ = self.d.login()
        s = self.open(token=None, headers={"Cookie": cookie})
        self.assertEqual(s.status, 200)
        self.assertEqual(s.next(), {"retry": "3000"})

    def test_registration_event(self):
        self.create_user("600", "secret600")
        s = self.open()
        self.assertEqual(s.status, 200)
        self.assertEqual(s.header("Content-Type"), "text/event-stream")
        self.assertEqual(s.header("Cache-Control"), "no-store")
        self.assertEqual(s.next(), {"retry": "3000"})  # at once, before any event
        phone = SipPhone(self.d.sip_port)
        try:
            self.assertEqual(phone.register("600", "secret600"), 200)
            e = self.registration(s, "600")
            self.assertEqual(set(e), {"event", "id", "data"})
            self.assertRegex(e["id"], r"^[1-9][0-9]*$")
            self.assertEqual(json.loads(e["data"]), {
                "extension": "600", "contact": "sip:600@127.0.0.1:%d" % phone.port,
                "action": "registered"})
            # sent once stored: what a client reads back at once has the binding
            listed = self.api("GET", "/api/v1/registrations").json["items"]
            self.assertIn("sip:600@127.0.0.1:%d" % phone.port,
                          [b["contact"] for b in listed if b["extension"] == "600"])
            self.assertEqual(phone.register("600", "secret600"), 200)
            again = self.registration(s, "600")
            # "refreshed", or "registered" again when within the same second
            self.assertIn(json.loads(again["data"])["action"], ("registered", "refreshed"))
            self.assertGreater(int(again["id"]), int(e["id"]))
            # Removing the binding over REST is an event too.
            self.assertEqual(self.api("DELETE", "/api/v1/registrations/600").status, 204)
            gone = self.registration(s, "600")
            self.assertNotIn(json.loads(gone["data"])["action"], ("registered", "refreshed"))
            listed = self.api("GET", "/api/v1/registrations").json["items"]
            self.assertEqual([b for b in listed if b["extension"] == "600"], [])
        finally:
            phone.close()

    def test_trace_stream(self):
        """?trace=CALL_ID streams trace.changed for that Call-ID only, each sent once its
        messages are stored (the trace API has them when the event arrives); the main
        stream never carries them."""
        self.create_user("630", "secret630")
        phone, other = SipPhone(self.d.sip_port), SipPhone(self.d.sip_port)
        self.addCleanup(phone.close)
        self.addCleanup(other.close)
        q = urllib.parse.quote(phone.call_id, safe="")
        # (streams of earlier tests may hold their slots for a moment after closing)
        s = self.open_when_free(query="?trace=" + q)
        self.assertEqual(s.header("Content-Type"), "text/event-stream")
        self.assertEqual(s.next(), {"retry": "3000"})
        main = self.open_when_free()
        self.assertEqual(main.next(), {"retry": "3000"})

        self.assertEqual(other.register("630", "secret630"), 200)  # another Call-ID
        self.assertEqual(phone.register("630", "secret630"), 200)
        seen = 0
        while seen < 4:  # REGISTER, 401, REGISTER, 200
            e = s.next_event()
            self.assertEqual(e, {"event": "trace.changed",
                                 "data": json.dumps({"call_id": phone.call_id},
                                                    separators=(",", ":"))})
            r = self.api("GET", "/api/v1/traces/" + q)
            self.assertEqual(r.status, 200, r)
            self.assertGreater(len(r.json["messages"]), seen, "an event without new messages")
            seen = len(r.json["messages"])
        self.assertEqual(seen, 4)
        # the main stream: the two registrations, no trace events (the presence change the
        # first one makes, 630 coming online, and the user's creation, when it was
        # announced after the stream opened, may come between)
        regs = 0
        while regs < 2:
            e = main.next_event()
            self.assertIn(e["event"], ("registration.changed", "presence.changed",
                                       "user.changed"), e)
            regs += e["event"] == "registration.changed"

        for bad in ("", "x" * 256):
            r = self.open(query="?trace=" + bad)
            self.assertEqual(r.status, 400, bad)
            err = json.loads(r.body)["error"]
            self.assertEqual(err["code"], "invalid_parameter")
            self.assertIn("trace", err["message"])
        self.assertEqual(self.open(token=None, query="?trace=" + q).status, 401)

    def test_last_event_id(self):
        self.create_user("610", "secret610")
        s = self.open()
        self.assertEqual(register(self.d, "610", "secret610"), 200)
        first = self.registration(s, "610")
        self.assertEqual(register(self.d, "610", "secret610"), 200)
        second = self.registration(s, "610")

        # A client that reconnects with the id of the first gets the second again.
        r = self.open(headers={"Last-Event-ID": first["id"]})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.next(), {"retry": "3000"})
        self.assertEqual(r.next_event(), second)
        # With the newest id, nothing is replayed: the next is a new event.
        r2 = self.open(headers={"Last-Event-ID": second["id"]})
        self.assertEqual(register(self.d, "610", "secret610"), 200)
        third = self.registration(r2, "610")
        self.assertGreater(int(third["id"]), int(second["id"]))

        # An id of an earlier run of the daemon (or none it made): told to start over.
        for old in ("5", str(int(second["id"]) + 10 ** 6)):
            r = self.open(headers={"Last-Event-ID": old})
            self.assertEqual(r.status, 200)
            self.assertEqual(r.next_event(), {"event": "overflow", "data": '{"missed":null}'})
        for bad in ("abc", "-1", "1.5", "1" * 30):
            r = self.open(headers={"Last-Event-ID": bad})
            self.assertEqual(r.status, 400, bad)
            err = json.loads(r.body)["error"]
            self.assertEqual(err["code"], "invalid_parameter")
            self.assertIn("Last-Event-ID", err["message"])

    def test_overflow(self):
        """A subscriber more than the ring's 1024 events behind is told how many it missed
        and goes on with the oldest event still kept."""
        self.create_user("620", "secret620")
        s = self.open()
        phone = SipPhone(self.d.sip_port)
        try:
            self.assertEqual(phone.register("620", "secret620", expires=120), 200)
            first = self.registration(s, "620")
            for _ in range(1100):
                self.assertEqual(phone.register("620", "secret620", expires=120), 200)
        finally:
            phone.close()
        # Registration events are sent once the writer has committed the change. It can be
        # seconds behind (each REGISTER also queues its trace rows, and a sanitizer build on
        # a busy machine writes slowly): wait until nothing is queued, then a moment for the
        # last batch's events, which go out right after its commit.
        self.wait_for(lambda: parse_metrics(self.api("GET", "/metrics").body.decode())
                      ["sipbx_store_queue_depth"] == 0, timeout=30,
                      msg="the writer never caught up with 1100 registrations")
        time.sleep(0.5)
        r = self.open(headers={"Last-Event-ID": first["id"]})
        self.assertEqual(r.next(), {"retry": "3000"})
        over = r.next()
        self.assertEqual(over["event"], "overflow")
        missed = json.loads(over["data"])["missed"]
        self.assertGreater(missed, 0)
        nxt = r.next()
        self.assertEqual(nxt["event"], "registration.changed")
        self.assertEqual(int(nxt["id"]), int(first["id"]) + 1 + missed)
        # From there on it has all of them, in order, up to the newest.
        last = int(nxt["id"])
        for _ in range(1023):
            e = r.next()
            if int(e["id"]) != last + 1:
                self.fail("after %d came %r" % (last, e))
            last += 1
        self.assertGreaterEqual(last - int(first["id"]), 1100)

    def test_stream_limit(self):
        streams = []
        deadline = time.time() + 5
        # Streams of other tests may still be closing: wait for all the slots.
        while len(streams) < STREAMS_MAX:
            s = self.open()
            if s.status == 200:
                streams.append(s)
                continue
            self.assertEqual(s.status, 503)
            s.close()
            self.assertLess(time.time(), deadline, "slots not freed")
            time.sleep(0.1)
        extra = self.open()
        self.assertEqual(extra.status, 503)
        self.assertEqual(extra.header("Retry-After"), "10")
        err = json.loads(extra.body)["error"]
        self.assertEqual(err["code"], "unavailable")
        self.assertIn("event streams", err["message"])
        # Ordinary requests are still served.
        self.assertEqual(self.api("GET", "/api/v1/users").status, 200)
        self.assertEqual(self.api("GET", "/api/v1/calls").status, 200)
        # A client that goes frees its slot within a second or so.
        streams.pop().close()
        ok = self.wait_for(lambda: self._try_open(), timeout=5)
        self.assertTrue(ok, "the slot of a closed stream was not freed")
        for s in streams:
            s.close()

    def _try_open(self):
        s = self.open()
        return s.status == 200

    def test_keepalive_and_revocation(self):
        """Every 15 s without events a comment line; a stream whose token is revoked or
        whose session ends closes within about as long."""
        r = self.api("POST", "/api/v1/tokens", {"name": "revoked-soon"})
        self.assertEqual(r.status, 201, r)
        doomed_id, doomed = r.json["id"], r.json["token"]
        cookie, csrf = self.d.login()
        kept = self.open()
        by_token = self.open(token=doomed)
        by_cookie = self.open(token=None, headers={"Cookie": cookie})
        for s in (kept, by_token, by_cookie):
            self.assertEqual(s.status, 200)
            self.assertEqual(s.next(), {"retry": "3000"})
        self.assertEqual(self.api("DELETE", "/api/v1/tokens/%d" % doomed_id).status, 204)
        r = self.d.request("DELETE", "/api/v1/session",
                           headers={"Cookie": cookie, "X-CSRF-Token": csrf})
        self.assertEqual(r.status, 204, r)

        # The keepalive comes after 15 s without output (an event, should one come,
        # starts the count again).
        last = time.time()
        while True:
            b = kept.next(timeout=KEEPALIVE + 5)
            if "comment" in b:
                break
            last = time.time()
        self.assertEqual(b, {"comment": "keepalive"})
        self.assertGreater(time.time() - last, KEEPALIVE - 3)
        for s in (by_token, by_cookie):
            while s.next(timeout=10) is not None:  # a keepalive or an event may come first
                pass


class Shutdown(DaemonTest):
    def test_streams_end_when_the_daemon_stops(self):
        streams = [EventStream(self.d, self.token) for _ in range(3)]
        for s in streams:
            self.assertEqual(s.status, 200)
            self.assertEqual(s.next(), {"retry": "3000"})
        start = time.time()
        self.d.proc.send_signal(apitest.signal.SIGTERM)
        self.d.proc.wait(timeout=10)
        self.assertLess(time.time() - start, 5)
        for s in streams:
            try:
                self.assertIsNone(s.next(timeout=5))
            except (ConnectionError, socket.timeout) as e:
                self.fail("the stream did not end cleanly: %r" % e)
            s.close()
        # tearDownClass checks the exit status and the sanitizer log.


if __name__ == "__main__":
    apitest.main()
