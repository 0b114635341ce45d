"""api_forwarding: GET and PUT /api/v1/users/{ext}/forwarding: the four rules and their
defaults, a PUT replacing all of them, validation naming the field, 404 for unknown users,
a rule to the user's own voicemail, and a changed rule used by the very next call (a SIPp
call forwarded unconditionally)."""

import json

import apitest
from apitest import DaemonTest
from calltest import Call, EventStream

KINDS = ("unconditional", "busy", "no_answer", "unavailable")
OFF = {"unconditional": {"enabled": False, "target": "", "voicemail": False},
       "busy": {"enabled": False, "target": "", "voicemail": False},
       "no_answer": {"enabled": False, "target": "", "voicemail": False, "timeout": 20},
       "unavailable": {"enabled": False, "target": "", "voicemail": False}}


class Forwarding(DaemonTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for ext in ("700", "701", "702"):
            cls.create_user(ext, "secret" + ext)

    def get(self, ext="700"):
        r = self.api("GET", "/api/v1/users/%s/forwarding" % ext)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "application/json")
        return r.json

    def put(self, body, ext="700"):
        return self.api("PUT", "/api/v1/users/%s/forwarding" % ext, body)

    def test_defaults(self):
        self.assertEqual(self.get("702"), OFF)

    def test_put_replaces_all_rules(self):
        full = {"unconditional": {"enabled": False, "target": "701", "voicemail": False},
                "busy": {"enabled": True, "target": "701", "voicemail": False},
                "no_answer": {"enabled": True, "target": "sip:voicemail@192.0.2.20:5070",
                              "voicemail": False, "timeout": 12},
                "unavailable": {"enabled": True, "target": "sip:701@127.0.0.1",
                                "voicemail": False}}
        r = self.put(full)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, full)
        self.assertEqual(self.get(), full)
        # Kinds left out are switched off (and lose their targets); no_answer without a
        # timeout gets the default 20 s.
        r = self.put({"no_answer": {"enabled": True, "target": "702"}})
        self.assertEqual(r.status, 200, r)
        want = dict(OFF, no_answer={"enabled": True, "target": "702", "voicemail": False,
                                    "timeout": 20})
        self.assertEqual(r.json, want)
        self.assertEqual(self.get(), want)
        # An empty object turns everything off.
        self.assertEqual(self.put({}).json, OFF)
        # GET, change one thing, PUT back: the dashboard's way.
        rules = self.get()
        rules["busy"] = {"enabled": True, "target": "sip:x@example.com", "voicemail": False}
        self.assertEqual(self.put(rules).json, rules)
        self.assertEqual(self.put({}).status, 200)

    def test_disabled_rule_keeps_its_target(self):
        self.create_user("709", "secret709")
        self.assertEqual(self.put({"busy": {"enabled": True, "target": "709"}}).status, 200)
        self.assertEqual(self.api("DELETE", "/api/v1/users/709").status, 204)
        parked = {"busy": {"enabled": False, "target": "709", "voicemail": False}}
        r = self.put(parked)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["busy"], parked["busy"])
        self.assertError(self.put({"busy": {"enabled": True, "target": "709"}}), 422,
                         "invalid_field", "busy.target: no such extension 709")
        self.assertEqual(self.put({}).status, 200)

    def test_voicemail(self):
        """A rule may send the call to the user's own voicemail: no target is needed then;
        one given is kept (for when the rule goes back to it) but must still be well-formed;
        a PUT without the field means no voicemail."""
        r = self.put({"busy": {"enabled": True, "voicemail": True},
                      "no_answer": {"enabled": True, "target": "701", "voicemail": True,
                                    "timeout": 15},
                      "unavailable": {"enabled": True, "target": "799", "voicemail": True}})
        self.assertEqual(r.status, 200, r)
        want = dict(OFF, busy={"enabled": True, "target": "", "voicemail": True},
                    no_answer={"enabled": True, "target": "701", "voicemail": True,
                               "timeout": 15},
                    unavailable={"enabled": True, "target": "799", "voicemail": True})
        self.assertEqual(r.json, want)
        self.assertEqual(self.get(), want)
        for body, code, msg in [
                ({"busy": {"enabled": True, "voicemail": 1}}, "invalid_field",
                 "busy.voicemail: must be true or false"),
                ({"busy": {"enabled": True, "voicemail": "yes"}}, "invalid_field",
                 "busy.voicemail: must be true or false"),
                ({"busy": {"enabled": True, "voicemail": False}}, "missing_field",
                 "busy.target: required when the rule is enabled"),
                ({"busy": {"enabled": True, "voicemail": True, "target": "tel:1"}},
                 "invalid_field", "busy.target: must be an extension of this PBX")]:
            with self.subTest(body=body):
                self.assertError(self.put(body), 422, code, msg)
        self.assertEqual(self.get(), want)  # refused PUTs changed nothing
        r = self.put({"busy": {"enabled": True, "target": "701"}})
        self.assertEqual(r.json["busy"], {"enabled": True, "target": "701", "voicemail": False})
        self.assertEqual(self.put({}).status, 200)

    def test_validation(self):
        before = self.get()
        cases = [
            ({"forward": {}}, "unknown_field", "forward: unknown field"),
            ({"busy": {"enabled": True, "target": "701", "timeout": 5}}, "unknown_field",
             "busy.timeout: unknown field"),
            ({"busy": {"enabled": True, "target": "701", "Target": "x"}}, "unknown_field",
             "busy.Target: unknown field"),
            ({"busy": True}, "invalid_field", "busy: must be an object"),
            ({"busy": None}, "invalid_field", "busy: must be an object"),
            ({"busy": {"target": "701"}}, "missing_field", "busy.enabled: required"),
            ({"busy": {"enabled": 1, "target": "701"}}, "invalid_field",
             "busy.enabled: must be true or false"),
            ({"busy": {"enabled": True}}, "missing_field",
             "busy.target: required when the rule is enabled"),
            ({"busy": {"enabled": True, "target": ""}}, "missing_field",
             "busy.target: required when the rule is enabled"),
            ({"busy": {"enabled": True, "target": 701}}, "invalid_field",
             "busy.target: must be a string"),
            ({"busy": {"enabled": True, "target": "799"}}, "invalid_field",
             "busy.target: no such extension 799"),
            ({"unavailable": {"enabled": True, "target": "sip:799@127.0.0.1"}},
             "invalid_field", "unavailable.target: no such extension 799"),
            ({"busy": {"enabled": True, "target": "700"}}, "invalid_field",
             "busy.target: cannot forward 700 to itself"),
            ({"busy": {"enabled": False, "target": "sip:700@127.0.0.1"}}, "invalid_field",
             "busy.target: cannot forward 700 to itself"),
            ({"busy": {"enabled": True, "target": "x" * 300}}, "invalid_field",
             "busy.target: longer than 255 bytes"),
            ({"no_answer": {"enabled": True, "target": "701", "timeout": 0}}, "invalid_field",
             "no_answer.timeout: must be an integer from 1 to 300"),
            ({"no_answer": {"enabled": True, "target": "701", "timeout": 301}},
             "invalid_field", "no_answer.timeout"),
            ({"no_answer": {"enabled": True, "target": "701", "timeout": 1.5}},
             "invalid_field", "no_answer.timeout"),
            ({"no_answer": {"enabled": True, "target": "701", "timeout": "20"}},
             "invalid_field", "no_answer.timeout"),
            ({"no_answer": {"enabled": True, "target": "701", "timeout": 1e300}},
             "invalid_field", "no_answer.timeout"),
        ]
        for target in ("sip:nohost", "sip:@example.com", "sips:a@example.com", "tel:+123",
                       "a@example.com", "sip:a@exa mple.com", "sip:a@example.com:0",
                       "sip:a@example.com:99999", "sip:a@example.com?subject=x",
                       "sip:a@-bad.com", "sip:<a>@example.com", "sip:a@[::1", "-100",
                       "sip:a@example.com;p=\"x\""):
            cases.append(({"busy": {"enabled": True, "target": target}}, "invalid_field",
                          "busy.target: must be an extension of this PBX or a SIP URI "
                          "(sip:user@host)"))
        for body, code, msg in cases:
            with self.subTest(body=body):
                self.assertError(self.put(body), 422, code, msg)
        for target in ("sip:a@[2001:db8::1]:5060", "sip:a.b+c@host-1.example.com;transport=tcp",
                       "SIP:a@example.com", "701"):
            with self.subTest(target=target):
                r = self.put({"busy": {"enabled": True, "target": target}})
                self.assertEqual(r.status, 200, r)
        self.assertEqual(self.put(before).status, 200)
        # Nothing half-written: a refused PUT left the rules as they were.
        self.assertEqual(self.get(), before)

        self.assertError(self.api("PUT", "/api/v1/users/700/forwarding", raw="{"), 400,
                         "invalid_json")
        self.assertError(self.api("PUT", "/api/v1/users/700/forwarding", raw="[]"), 400,
                         "invalid_json")
        self.assertError(self.api("PUT", "/api/v1/users/700/forwarding", raw="{}",
                                  content_type="text/plain"), 415)
        self.assertError(self.api("POST", "/api/v1/users/700/forwarding", {}), 405,
                         "method_not_allowed")

    def test_unknown_user_and_auth(self):
        for ext in ("799", "bad%20ext", "-1"):
            self.assertError(self.api("GET", "/api/v1/users/%s/forwarding" % ext), 404,
                             "not_found")
            self.assertError(self.put({}, ext=ext), 404, "not_found")
        self.assertError(self.api("GET", "/api/v1/users/700/forwarding", token=None), 401,
                         "unauthorized")
        self.assertError(self.api("PUT", "/api/v1/users/700/forwarding", {}, token=None), 401,
                         "unauthorized")
        # With a session cookie a PUT needs the CSRF header.
        cookie, csrf = self.d.login()
        r = self.d.request("PUT", "/api/v1/users/700/forwarding", {},
                           headers={"Cookie": cookie})
        self.assertError(r, 403, "csrf")
        r = self.d.request("PUT", "/api/v1/users/700/forwarding", {},
                           headers={"Cookie": cookie, "X-CSRF-Token": csrf})
        self.assertEqual(r.status, 200, r)

    def test_rules_go_with_the_user(self):
        self.create_user("708", "secret708")
        self.assertEqual(self.put({"busy": {"enabled": True, "target": "701"}},
                                  ext="708").status, 200)
        self.assertEqual(self.api("DELETE", "/api/v1/users/708").status, 204)
        self.create_user("708", "secret708")
        self.assertEqual(self.get("708"), OFF)

    def test_next_call_follows_a_new_rule(self):
        """No pause between the PUT and the call: the SIP side has the rule when the PUT
        answers."""
        ev = EventStream(self.d, self.token)
        self.addCleanup(ev.close)
        r = self.put({"unconditional": {"enabled": True, "target": "701"}})
        self.assertEqual(r.status, 200, r)
        call = Call(self.d, "702", "secret702", "701", "secret701", dial="700").start()
        try:
            fwd, _ = ev.wait_for(lambda e: e["event"] == "call.forwarded", timeout=15)
            c = json.loads(fwd["data"])
            self.assertEqual((c["caller"], c["callee"]), ("702", "700"))
            self.assertEqual(c["forwards"],
                             [{"from": "700", "to": "701", "reason": "unconditional"}])
            ans, _ = ev.wait_for(lambda e: e["event"] == "call.answered", timeout=15)
            self.assertEqual(json.loads(ans["data"])["id"], c["id"])
            ev.wait_for(lambda e: e["event"] == "call.ended", timeout=15)
        finally:
            call.wait()
            self.put({})


if __name__ == "__main__":
    apitest.main()
