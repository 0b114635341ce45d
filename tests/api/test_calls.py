"""api_calls: GET /api/v1/calls and /api/v1/calls/{id} show a call while it rings and
while it is answered (a SIPp call through the daemon), and its events arrive on the event
stream in order: call.new, call.ringing, call.answered, call.ended."""

import json

import apitest
from apitest import DaemonTest
from calltest import Call, EventStream

CALL_KEYS = {"id", "call_id", "state", "caller", "caller_name", "callee", "caller_contact",
             "callee_contact", "user_agent", "started_us", "ringing_us", "answered_us",
             "ended_us", "final_status", "hangup_by", "forwards", "linked_call", "link"}


class Calls(DaemonTest):
    def calls(self, query=""):
        r = self.api("GET", "/api/v1/calls" + query)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "application/json")
        self.assertEqual(set(r.json), {"items"})
        return r.json["items"]

    def test_no_calls_and_errors(self):
        self.assertEqual(self.calls(), [])
        self.assertEqual(self.calls("?extension=100"), [])
        self.assertError(self.api("GET", "/api/v1/calls", token=None), 401, "unauthorized")
        self.assertError(self.api("GET", "/api/v1/calls/1", token=None), 401, "unauthorized")
        for bad in ("1", "42", "0", "-1", "abc", "1x", "01", "99999999999999999999999"):
            self.assertError(self.api("GET", "/api/v1/calls/" + bad), 404, "not_found", bad)
        self.assertError(self.api("DELETE", "/api/v1/calls/1"), 404, "not_found")  # no such call
        self.assertError(self.api("POST", "/api/v1/calls", {}), 405, "method_not_allowed")

    def test_call_seen_while_ringing_and_answered(self):
        self.create_user("500", "secret500")
        self.create_user("501", "secret501")
        ev = EventStream(self.d, self.token)
        self.assertEqual(ev.status, 200)
        call = Call(self.d, "500", "secret500", "501", "secret501").start()
        try:
            new, _ = ev.wait_for(lambda e: e["event"] == "call.new", timeout=15)
            c = json.loads(new["data"])
            self.assertEqual(set(c), CALL_KEYS)
            self.assertEqual((c["caller"], c["callee"], c["state"]), ("500", "501", "trying"))
            self.assertEqual(c["caller_name"], "Caller")
            self.assertEqual(c["user_agent"], "sipbx-api-test")
            cid = c["id"]
            self.assertIsInstance(cid, int)
            types = ["call.new"]
            ids = [int(new["id"])]

            # While it rings.
            e, skipped = ev.wait_for(lambda e: e["event"].startswith("call."), timeout=15)
            self.assertEqual(e["event"], "call.ringing", skipped)
            types.append(e["event"])
            ids.append(int(e["id"]))
            items = self.calls()
            self.assertEqual([x["id"] for x in items], [cid])
            self.assertEqual(items[0]["state"], "ringing")
            self.assertGreater(items[0]["ringing_us"], 0)
            self.assertEqual(items[0]["answered_us"], 0)
            self.assertRegex(items[0]["callee_contact"], r"^sip:")
            for ext in ("500", "501"):
                self.assertEqual([x["id"] for x in self.calls("?extension=" + ext)], [cid])
            self.assertEqual(self.calls("?extension=502"), [])
            r = self.api("GET", "/api/v1/calls/%d" % cid)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["id"], cid)
            self.assertEqual(r.json["call_id"], c["call_id"])

            # While they talk.
            e, _ = ev.wait_for(lambda e: e["event"].startswith("call."), timeout=15)
            self.assertEqual(e["event"], "call.answered")
            types.append(e["event"])
            ids.append(int(e["id"]))
            r = self.api("GET", "/api/v1/calls/%d" % cid)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["state"], "answered")
            self.assertEqual(r.json["final_status"], 200)
            self.assertGreater(r.json["answered_us"], r.json["started_us"])

            # And gone.
            e, _ = ev.wait_for(lambda e: e["event"].startswith("call."), timeout=15)
            types.append(e["event"])
            ids.append(int(e["id"]))
            ended = json.loads(e["data"])
            self.assertEqual(types, ["call.new", "call.ringing", "call.answered", "call.ended"])
            self.assertEqual(ids, sorted(ids))
            self.assertEqual(ended["id"], cid)
            self.assertEqual(ended["state"], "ended")
            self.assertEqual(ended["hangup_by"], "caller")
            self.assertGreater(ended["ended_us"], ended["answered_us"])
            self.assertEqual(self.calls(), [])
            self.assertError(self.api("GET", "/api/v1/calls/%d" % cid), 404, "not_found")
        finally:
            ev.close()
            call.wait()


if __name__ == "__main__":
    apitest.main()
