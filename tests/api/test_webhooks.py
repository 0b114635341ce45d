#!/usr/bin/env python3
"""Webhooks (/api/v1/webhooks): events POSTed to local receivers (HTTP servers on free
loopback ports, in threads of this test) that check each delivery's HMAC-SHA256 signature
with the webhook's secret. A receiver that answers 500 then 200 gets the event again and it
is delivered once; one that never answers holds up neither calls (a real SIP call is timed
meanwhile) nor the deliveries of other webhooks; deliveries pending at a stop go out after
the restart."""

import hashlib
import hmac
import http.server
import json
import os
import socket
import subprocess
import threading
import time

import apitest
from apitest import Daemon
from sipbxtest.net import free_port
from sipbxtest.phone import Phone

EVENTS = ["call.new", "call.answered", "call.ended", "registration.changed", "user.changed"]


class Receiver:
    """An HTTP server on a free loopback port that records every request. answer(headers)
    gives the status to answer a request with (headers: its headers, names in lower case),
    or None to never answer it (the connection is held until the receiver closes)."""

    def __init__(self, answer=lambda h: 204, port=None):
        self.requests = []  # (monotonic time, path, headers dict, body bytes)
        self.cond = threading.Condition()
        self.release = threading.Event()
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with rec.cond:
                    rec.requests.append((time.monotonic(), self.path, headers, body))
                    rec.cond.notify_all()
                status = answer(headers)
                if status is None:
                    rec.release.wait(60)
                    self.close_connection = True
                    return
                self.send_response(status)
                if status in (301, 302, 307, 308):
                    self.send_header("Location", rec.redirect_to)
                body = b"" if status == 204 else b"ok"
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.redirect_to = "http://127.0.0.1:9/"
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port or 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d/hook" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def wait(self, pred, timeout=10):
        """The first request (t, path, headers, body, json) for which pred(json) holds."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, path, h, body in self.requests:
                    j = json.loads(body)
                    if pred(j):
                        return t, path, h, body, j
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no matching delivery within %g s; got %r" % (
                        timeout, [json.loads(r[3])["type"] for r in self.requests]))
                self.cond.wait(left)

    def of(self, pred):
        """The requests (t, path, headers, body) whose JSON body satisfies pred."""
        with self.cond:
            return [r for r in self.requests if pred(json.loads(r[3]))]

    def events(self, type_=None):
        with self.cond:
            return [json.loads(r[3]) for r in self.requests
                    if type_ is None or json.loads(r[3])["type"] == type_]


def verify(testcase, secret, headers, body):
    """The delivery is signed with secret and its headers agree with its body."""
    want = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    testcase.assertTrue(hmac.compare_digest(headers["x-sipbx-signature"], want),
                        "bad signature %r" % headers["x-sipbx-signature"])
    j = json.loads(body)
    testcase.assertEqual(headers["content-type"], "application/json")
    testcase.assertEqual(headers["x-sipbx-event"], j["type"])
    testcase.assertEqual(headers["x-sipbx-event-id"], j["id"])
    testcase.assertRegex(j["id"], r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                                  r"[0-9a-f]{12}$")
    testcase.assertRegex(j["created_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
    testcase.assertAlmostEqual(int(headers["x-sipbx-timestamp"]), time.time(), delta=60)
    testcase.assertEqual(sorted(j), ["created_at", "data", "id", "type"])
    return j


class WebhookTest(apitest.DaemonTest):
    def add_webhook(self, url, events=EVENTS, description="test"):
        r = self.api("POST", "/api/v1/webhooks",
                     {"url": url, "events": events, "description": description})
        self.assertEqual(r.status, 201, r)
        self.addCleanup(lambda: self.api("DELETE", "/api/v1/webhooks/%d" % r.json["id"]))
        return r.json

    def receiver(self, **kw):
        rec = Receiver(**kw)
        self.addCleanup(rec.close)
        return rec

    def deliveries(self, hook_id):
        r = self.api("GET", "/api/v1/webhooks/%d/deliveries?limit=500" % hook_id)
        self.assertEqual(r.status, 200, r)
        return r.json["items"]

    def call(self, caller, callee, talk=0.2):
        """A call from caller to callee (registered Phones), answered and hung up by the
        caller; returns (Call-ID, seconds from INVITE to its 200, seconds for the BYE)."""
        t0 = time.monotonic()
        r, dlg = caller.invite(callee.ext)
        setup = time.monotonic() - t0
        self.assertEqual(r.status, 200, r.first)
        time.sleep(talk)
        t1 = time.monotonic()
        self.assertEqual(caller.in_dialog(dlg, "BYE").status, 200)
        return dlg["call_id"], setup, time.monotonic() - t1


class Api(WebhookTest):
    def test_create_list_get_delete(self):
        r = self.api("POST", "/api/v1/webhooks",
                     {"url": "https://crm.example.com/pbx?k=1",
                      "events": ["user.changed", "call.ended"]})
        self.assertEqual(r.status, 201, r)
        w = r.json
        self.assertEqual(r.header("Location"), "/api/v1/webhooks/%d" % w["id"])
        self.assertRegex(w["secret"], r"^whsec_[0-9a-f]{64}$")
        # canonical order, the description defaults to ""
        self.assertEqual(w["events"], ["call.ended", "user.changed"])
        self.assertEqual(w["description"], "")
        self.assertEqual(w["deliveries"], {"pending": 0, "delivered": 0, "failed": 0})
        self.assertIsNone(w["last_delivery"])
        # the secret is never shown again
        got = self.api("GET", "/api/v1/webhooks/%d" % w["id"]).json
        self.assertNotIn("secret", got)
        self.assertEqual(got, {k: v for k, v in w.items() if k != "secret"})
        items = self.api("GET", "/api/v1/webhooks").json
        self.assertEqual(items["next_cursor"], None)
        self.assertIn(got, items["items"])
        self.assertNotIn(w["secret"], json.dumps(items))
        self.assertEqual(self.api("DELETE", "/api/v1/webhooks/%d" % w["id"]).status, 204)
        self.assertError(self.api("GET", "/api/v1/webhooks/%d" % w["id"]), 404, "not_found")
        self.assertError(self.api("DELETE", "/api/v1/webhooks/%d" % w["id"]), 404, "not_found")
        for bad in ("0", "x", "-1", "01"):
            self.assertError(self.api("GET", "/api/v1/webhooks/" + bad), 404, "not_found")
            self.assertError(self.api("POST", "/api/v1/webhooks/%s/ping" % bad), 404,
                             "not_found")
            self.assertError(self.api("GET", "/api/v1/webhooks/%s/deliveries" % bad), 404,
                             "not_found")

    def test_bad_input(self):
        def post(body, status, code, mentions):
            r = self.api("POST", "/api/v1/webhooks", body)
            self.assertError(r, status, code, mentions)

        ok = {"url": "http://127.0.0.1:9/x", "events": ["call.new"]}
        for url, why in (("ftp://example.com/", "http:// or https://"),
                         ("file:///etc/passwd", "http:// or https://"),
                         ("javascript:alert(1)", "http:// or https://"),
                         ("http://", "URL"), ("https:///path", "URL"),
                         ("http://exa mple.com/", "URL"),
                         ("http://x/" + "a" * 2048, "2048")):
            post(dict(ok, url=url), 422, "invalid_field", "url")
        post({"events": ["call.new"]}, 422, "missing_field", "url")
        post({"url": ok["url"]}, 422, "missing_field", "events")
        for events, mentions in (([], "events"), ("call.new", "events"), ([1], "1"),
                                 (["call.ringing"], "call.ringing"),
                                 (["call.new", "call.new"], "twice"), ([None], "null")):
            post(dict(ok, events=events), 422, "invalid_field", mentions)
        post(dict(ok, secret="mine"), 422, "unknown_field", "secret")
        post(dict(ok, description="x" * 256), 422, "invalid_field", "description")
        post(dict(ok, description="a\nb"), 422, "invalid_field", "description")
        r = self.api("POST", "/api/v1/webhooks", raw="url=x", content_type="text/plain")
        self.assertError(r, 415, "unsupported_media_type")
        self.assertEqual(self.api("GET", "/api/v1/webhooks", token=None).status, 401)
        self.assertEqual(self.api("POST", "/api/v1/webhooks", ok, token=None).status, 401)
        self.assertEqual(self.api("GET", "/api/v1/webhooks").json["items"], [])

    def test_limit(self):
        room = 16 - len(self.api("GET", "/api/v1/webhooks").json["items"])
        ids = [self.add_webhook("http://127.0.0.1:9/%d" % i, ["call.new"])["id"]
               for i in range(room)]
        self.assertEqual(len(self.api("GET", "/api/v1/webhooks").json["items"]), 16)
        self.assertEqual(len(set(ids)), room)
        r = self.api("POST", "/api/v1/webhooks", {"url": "http://127.0.0.1:9/", "events": EVENTS})
        self.assertError(r, 409, "conflict", "16")

    def test_cookie_needs_csrf(self):
        cookie, csrf = self.d.login()
        body = {"url": "http://127.0.0.1:9/", "events": ["call.new"]}
        r = self.d.request("POST", "/api/v1/webhooks", body, headers={"Cookie": cookie})
        self.assertError(r, 403, "csrf")
        r = self.d.request("POST", "/api/v1/webhooks", body,
                           headers={"Cookie": cookie, "X-CSRF-Token": csrf})
        self.assertEqual(r.status, 201, r)
        self.api("DELETE", "/api/v1/webhooks/%d" % r.json["id"])


class Deliveries(WebhookTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.create_user("200", "secret-200-pw", display_name="Alice")
        cls.create_user("201", "secret-201-pw", display_name="Bob")

    def phones(self):
        a = Phone(self.d.sip_port, "200", "secret-200-pw")
        b = Phone(self.d.sip_port, "201", "secret-201-pw")
        for p in (a, b):
            self.addCleanup(p.close)
        return a, b

    def test_every_event_signed(self):
        rec = self.receiver()
        w = self.add_webhook(rec.url)
        secret = w["secret"]

        # user.changed, from REST (created, updated, deleted) and from the command line
        self.create_user("250", "secret-250-pw", display_name="Carol")
        _, _, h, body, j = rec.wait(lambda j: j["type"] == "user.changed"
                                    and j["data"]["extension"] == "250")
        verify(self, secret, h, body)
        self.assertEqual(j["data"]["change"], "created")
        self.assertEqual(j["data"]["user"], self.api("GET", "/api/v1/users/250").json)
        self.assertEqual(self.api("PATCH", "/api/v1/users/250", {"enabled": False}).status, 200)
        _, _, h, body, j = rec.wait(lambda j: j["type"] == "user.changed"
                                    and j["data"]["change"] == "updated")
        verify(self, secret, h, body)
        self.assertFalse(j["data"]["user"]["enabled"])
        self.assertEqual(self.api("DELETE", "/api/v1/users/250").status, 204)
        _, _, h, body, j = rec.wait(lambda j: j["type"] == "user.changed"
                                    and j["data"]["change"] == "deleted")
        verify(self, secret, h, body)
        self.assertEqual(j["data"], {"extension": "250", "change": "deleted", "user": None})
        out = subprocess.run([apitest.SIPBX, "user", "add", "251", "--password", "secret-251-pw",
                              "--db", self.d.db], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        _, _, h, body, j = rec.wait(lambda j: j["type"] == "user.changed"
                                    and j["data"]["extension"] == "251")
        verify(self, secret, h, body)
        self.assertEqual(j["data"]["change"], "created")

        # registration.changed, then a call: call.new, call.answered, call.ended (the record)
        a, b = self.phones()
        for p in (a, b):
            self.assertEqual(p.register().status, 200)
        _, _, h, body, j = rec.wait(lambda j: j["type"] == "registration.changed"
                                    and j["data"]["extension"] == "201")
        verify(self, secret, h, body)
        self.assertEqual(j["data"]["action"], "registered")
        call_id, _, _ = self.call(a, b)
        new = verify(self, secret, *rec.wait(lambda j: j["type"] == "call.new"
                                             and j["data"]["call_id"] == call_id)[2:4])
        self.assertEqual((new["data"]["caller"], new["data"]["callee"]), ("200", "201"))
        self.assertEqual(new["data"]["state"], "trying")
        answered = verify(self, secret, *rec.wait(lambda j: j["type"] == "call.answered"
                                                  and j["data"]["call_id"] == call_id)[2:4])
        self.assertEqual(answered["data"]["state"], "answered")
        ended = verify(self, secret, *rec.wait(lambda j: j["type"] == "call.ended"
                                               and j["data"]["call_id"] == call_id)[2:4])
        # the whole record, as the records API shows it
        cdrs = self.api("GET", "/api/v1/cdrs?limit=10").json["items"]
        self.assertIn(ended["data"], cdrs)
        self.assertEqual(ended["data"]["disposition"], "ANSWERED")
        self.assertEqual(ended["data"]["hangup_by"], "caller")

        # each event once, each delivery logged as delivered at the first try
        ids = [e["id"] for e in rec.events()]
        self.assertEqual(len(ids), len(set(ids)), "an event was delivered twice")
        def all_delivered():
            log = self.deliveries(w["id"])
            return log if log and all(d["state"] == "delivered" for d in log) else None
        log = self.wait_for(all_delivered, 5, "deliveries not all delivered")
        self.assertEqual(len(log), len(ids))
        for d in log:
            self.assertEqual((d["attempts"], d["last_status"], d["last_error"]), (1, 204, ""), d)
            self.assertIsNone(d["next_try_at"])
            self.assertIsNotNone(d["done_at"])
        self.assertEqual(sorted(d["event_id"] for d in log), sorted(ids))
        got = self.api("GET", "/api/v1/webhooks/%d" % w["id"]).json
        self.assertEqual(got["deliveries"]["delivered"], len(ids))
        self.assertEqual(got["last_delivery"], log[0])

        # only the events asked for
        rec2 = self.receiver()
        w2 = self.add_webhook(rec2.url, ["call.ended"])
        call_id, _, _ = self.call(a, b)
        rec2.wait(lambda j: j["type"] == "call.ended" and j["data"]["call_id"] == call_id)
        time.sleep(0.5)
        self.assertEqual([e["type"] for e in rec2.events()], ["call.ended"])
        # a ping goes to that webhook alone
        r = self.api("POST", "/api/v1/webhooks/%d/ping" % w2["id"])
        self.assertEqual(r.status, 202, r)
        self.assertEqual((r.json["event"], r.json["state"], r.json["attempts"]),
                         ("ping", "pending", 0))
        _, _, h, body, j = rec2.wait(lambda j: j["type"] == "ping")
        verify(self, w2["secret"], h, body)
        self.assertEqual(j["data"], {"webhook_id": w2["id"]})
        self.assertEqual(j["id"], r.json["event_id"])
        self.assertEqual(rec.events("ping"), [])

        m = apitest.parse_metrics(self.api("GET", "/metrics").body.decode())
        self.assertEqual(m["sipbx_webhooks"], 2)
        self.assertGreaterEqual(m['sipbx_webhook_attempts_total{result="delivered"}'],
                                len(ids) + 2)
        self.assertGreaterEqual(m['sipbx_calls_total{disposition="ANSWERED"}'], 2)

    def test_500_then_200_is_retried_and_delivered_once(self):
        # Every event's first try fails. (The users of setUpClass may still be announced
        # when the webhook is added: the events of this test's user are told apart.)
        rec = self.receiver(answer=lambda h: 500 if h["x-sipbx-attempt"] == "1" else 200)
        w = self.add_webhook(rec.url, ["user.changed"])
        self.create_user("260", "secret-260-pw")
        mine = lambda j: j["data"]["extension"] == "260"  # noqa: E731
        first = rec.wait(mine)
        event_id = json.loads(first[3])["id"]
        d = self.wait_for(lambda: [x for x in self.deliveries(w["id"]) if x["attempts"] == 1
                                   and x["event_id"] == event_id], 5,
                          "the failed try is not logged")[0]
        self.assertEqual((d["state"], d["last_status"], d["last_error"]),
                         ("pending", 500, "HTTP 500"))
        self.assertIsNotNone(d["next_try_at"])
        # tried again after the first backoff step (5 s), with the same event and bytes
        self.wait_for(lambda: len(rec.of(mine)) >= 2, 15, "not tried again")
        (t1, _, h1, b1), (t2, _, h2, b2) = rec.of(mine)[:2]
        self.assertGreaterEqual(t2 - t1, 4.5)
        self.assertEqual(b1, b2)
        self.assertEqual(h1["x-sipbx-event-id"], h2["x-sipbx-event-id"])
        self.assertEqual((h1["x-sipbx-attempt"], h2["x-sipbx-attempt"]), ("1", "2"))
        verify(self, w["secret"], h2, b2)
        d = self.wait_for(lambda: [x for x in self.deliveries(w["id"]) if x["state"] == "delivered"
                                   and x["event_id"] == event_id], 5, "not logged delivered")[0]
        self.assertEqual((d["attempts"], d["last_status"], d["last_error"]), (2, 200, ""))
        time.sleep(6)  # and never again
        self.assertEqual(len(rec.of(mine)), 2)
        self.assertEqual(event_id, h2["x-sipbx-event-id"])

    def test_redirect_is_not_followed(self):
        target = self.receiver()
        rec = self.receiver(answer=lambda h: 302)
        rec.redirect_to = target.url
        w = self.add_webhook(rec.url, ["user.changed"])
        self.api("POST", "/api/v1/webhooks/%d/ping" % w["id"])
        d = self.wait_for(lambda: [x for x in self.deliveries(w["id"]) if x["attempts"] == 1],
                          5, "the try is not logged")[0]
        self.assertEqual((d["state"], d["last_status"]), ("pending", 302))
        self.assertIn("redirects are not followed", d["last_error"])
        self.assertEqual(target.requests, [])

    def test_dead_receiver_holds_up_neither_calls_nor_others(self):
        dead = self.receiver(answer=lambda h: None)  # takes the request, never answers
        alive = self.receiver()
        wd = self.add_webhook(dead.url, ["call.new", "call.answered", "call.ended"])
        wa = self.add_webhook(alive.url, ["call.new", "call.answered", "call.ended"])
        a, b = self.phones()
        for p in (a, b):
            self.assertEqual(p.register().status, 200)
        start = time.monotonic()
        for i in range(3):
            call_id, setup, bye = self.call(a, b)
            # Calls are set up and ended as fast as ever (nothing of a webhook is on the
            # SIP thread): far below the 10 s the dead receiver takes to time out.
            self.assertLess(setup, 2.0, "call %d took %.2f s to set up" % (i, setup))
            self.assertLess(bye, 2.0, "the BYE of call %d took %.2f s" % (i, bye))
            # the other webhook gets the call's end at once, not after the dead one
            t, _, h, body, _ = alive.wait(lambda j: j["type"] == "call.ended"
                                          and j["data"]["call_id"] == call_id, 5)
            verify(self, wa["secret"], h, body)
            self.assertLess(t - start, 8, "the live webhook waited for the dead one")
        self.assertEqual(len(alive.events()), 9)
        # The dead one got its first delivery and holds it; after 10 s that try fails and
        # the next goes (one at a time per webhook).
        dead.wait(lambda j: j["type"] == "call.new", 5)
        self.assertEqual(len(dead.requests), 1)
        d = self.wait_for(lambda: [x for x in self.deliveries(wd["id"]) if x["attempts"] == 1
                                   and x["state"] == "pending"], 15, "no timed-out try logged")
        self.assertEqual(d[0]["last_error"], "no answer within 10 s")
        self.assertIsNone(d[0]["last_status"])
        self.wait_for(lambda: len(dead.requests) >= 2, 5, "the next delivery did not go")
        m = apitest.parse_metrics(self.api("GET", "/metrics").body.decode())
        self.assertGreaterEqual(m["sipbx_webhook_deliveries_pending"], 8)
        self.assertGreaterEqual(m['sipbx_webhook_attempts_total{result="retried"}'], 1)


class Restart(WebhookTest):
    """Deliveries queued when the daemon stops go out after it starts again."""

    daemon_args = ()

    def test_pending_deliveries_survive_a_restart(self):
        port = free_port()  # nothing listens there yet: every try is refused
        w = self.add_webhook("http://127.0.0.1:%d/hook" % port, ["user.changed"])
        for ext in ("270", "271", "272"):
            self.create_user(ext, "secret-%s-pw" % ext)

        def tried():
            log = self.deliveries(w["id"])
            return log if len(log) == 3 and all(d["attempts"] >= 1 for d in log) else None
        log = self.wait_for(tried, 10, "the first tries are not logged")
        for d in log:
            self.assertEqual(d["state"], "pending")
            self.assertIn("onnect", d["last_error"])  # "Failed to connect ... refused"
        # Stop (the deliveries wait 5 s for their next try), start the receiver, and the
        # daemon again on the same database and ports.
        dir_, sip, http_ = self.d.dir, self.d.sip_port, self.d.http_port
        self.d.stop(keep=True)
        rec = self.receiver(port=port)
        type(self).d = Daemon(dir=dir_, sip_port=sip, http_port=http_)
        got = self.wait_for(lambda: len(rec.requests) >= 3, 20, "not delivered after the restart")
        self.assertTrue(got)
        exts = sorted(json.loads(r[3])["data"]["extension"] for r in rec.requests)
        self.assertEqual(exts, ["270", "271", "272"])
        for r in rec.requests:
            verify(self, w["secret"], r[2], r[3])
            self.assertEqual(r[2]["x-sipbx-attempt"], "2")
        log = self.wait_for(lambda: all(d["state"] == "delivered"
                                        for d in self.deliveries(w["id"])), 5)
        self.assertTrue(log)
        time.sleep(1)
        self.assertEqual(len(rec.requests), 3, "delivered more than once")


if __name__ == "__main__":
    apitest.main()
