#!/usr/bin/env python3
"""/api/v1/groups (ring groups) and the do-not-disturb switch of /api/v1/users: create, read,
replace and delete groups; every field checked (422 naming it); users and groups share one
namespace (409 both ways, by REST, the bulk import and the CLI); a deleted user leaves its
groups; a forward rule may name a group; a group made over REST rings at once (the SIP side
has it when the answer is sent); dnd is a user field with its own list filter."""

import subprocess

import apitest
from sipbxtest.phone import Phone

GROUP_KEYS = {"extension", "name", "strategy", "members", "member_timeout", "no_answer_target",
              "created_at", "updated_at"}


class Groups(apitest.DaemonTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for ext in ("100", "101", "102", "103"):
            cls.create_user(ext, "secret-%s-pw" % ext)

    def tearDown(self):
        for g in self.api("GET", "/api/v1/groups").json["items"]:
            self.api("DELETE", "/api/v1/groups/" + g["extension"])

    def test_create_get_put_delete(self):
        r = self.api("POST", "/api/v1/groups", {
            "extension": "600", "name": "Sales – Ventes", "strategy": "sequential",
            "members": ["101", "102"], "member_timeout": 12, "no_answer_target": "103"})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.header("Location"), "/api/v1/groups/600")
        g = r.json
        self.assertEqual(set(g), GROUP_KEYS)
        self.assertEqual((g["name"], g["strategy"], g["members"], g["member_timeout"],
                          g["no_answer_target"]),
                         ("Sales – Ventes", "sequential", ["101", "102"], 12, "103"))
        self.assertEqual(self.api("GET", "/api/v1/groups/600").json, g)
        self.assertEqual([x["extension"] for x in self.api("GET", "/api/v1/groups").json["items"]],
                         ["600"])
        # defaults
        r = self.api("POST", "/api/v1/groups", {"extension": "601"})
        self.assertEqual(r.status, 201, r)
        self.assertEqual((r.json["strategy"], r.json["members"], r.json["member_timeout"],
                          r.json["no_answer_target"], r.json["name"]),
                         ("ringall", [], 15, None, ""))
        # PUT replaces the whole group; the order of members is kept
        r = self.api("PUT", "/api/v1/groups/600", {"members": ["102", "100", "101"]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["members"], r.json["strategy"], r.json["no_answer_target"],
                          r.json["name"]), (["102", "100", "101"], "ringall", None, ""))
        self.assertEqual(self.api("DELETE", "/api/v1/groups/600").status, 204)
        self.assertError(self.api("GET", "/api/v1/groups/600"), 404, "not_found")
        self.assertError(self.api("DELETE", "/api/v1/groups/600"), 404, "not_found")
        self.assertError(self.api("PUT", "/api/v1/groups/600", {}), 404, "not_found")
        # natural order of extensions
        for ext in ("70", "6000", "x1"):
            self.assertEqual(self.api("POST", "/api/v1/groups", {"extension": ext}).status, 201)
        self.assertEqual([x["extension"] for x in self.api("GET", "/api/v1/groups").json["items"]],
                         ["70", "601", "6000", "x1"])

    def test_bad_fields(self):
        cases = [
            ({}, "missing_field", "extension"),
            ({"extension": "-6"}, "invalid_field", "extension"),
            ({"extension": "600", "strategy": "random"}, "invalid_field", "strategy"),
            ({"extension": "600", "members": "101"}, "invalid_field", "members"),
            ({"extension": "600", "members": ["101", "101"]}, "invalid_field", "twice"),
            ({"extension": "600", "members": ["999"]}, "invalid_field", "999"),
            ({"extension": "600", "members": [101]}, "invalid_field", "members[0]"),
            ({"extension": "600", "members": ["600"]}, "invalid_field", "itself"),
            ({"extension": "600", "members": ["101"] * 33}, "invalid_field", "at most 32"),
            ({"extension": "600", "member_timeout": 0}, "invalid_field", "member_timeout"),
            ({"extension": "600", "member_timeout": 301}, "invalid_field", "member_timeout"),
            ({"extension": "600", "no_answer_target": "600"}, "invalid_field", "itself"),
            ({"extension": "600", "no_answer_target": "999"}, "invalid_field", "999"),
            ({"extension": "600", "no_answer_target": "not a target"}, "invalid_field",
             "no_answer_target"),
            ({"extension": "600", "name": "x" * 128}, "invalid_field", "name"),
            ({"extension": "600", "name": "a\u0007b"}, "invalid_field", "name"),
            ({"extension": "600", "colour": "red"}, None, "colour"),
        ]
        for body, code, mention in cases:
            r = self.api("POST", "/api/v1/groups", body)
            self.assertIn(r.status, (400, 422), (body, r))
            self.assertError(r, r.status, code, mention)
        self.assertEqual(self.api("GET", "/api/v1/groups").json["items"], [])
        r = self.api("POST", "/api/v1/groups", {"extension": "600", "name": "x" * 127,
                                                "no_answer_target": "sip:desk@example.com"})
        self.assertEqual(r.status, 201, r)
        self.assertError(self.api("PUT", "/api/v1/groups/600", {"extension": "601"}), 422,
                         "invalid_field", "cannot be changed")
        self.assertError(self.api("POST", "/api/v1/groups", raw="{"), 400, "invalid_json")

    def test_one_namespace(self):
        self.assertError(self.api("POST", "/api/v1/groups", {"extension": "101"}), 409,
                         "conflict", "is a user")
        self.assertEqual(self.api("POST", "/api/v1/groups", {"extension": "600"}).status, 201)
        self.assertError(self.api("POST", "/api/v1/groups", {"extension": "600"}), 409,
                         "conflict", "already exists")
        self.assertError(self.api("POST", "/api/v1/users", {"extension": "600",
                                                            "password": "secret-600"}),
                         409, "conflict", "ring group")
        r = self.api("POST", "/api/v1/users/import", raw="extension,password\n600,secret-600\n",
                     content_type="text/csv")
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["created"], r.json["rejected"][0]["reason"]), (0, "duplicate"))
        p = subprocess.run([apitest.SIPBX, "user", "add", "600", "--password", "secret-600",
                            "--db", self.d.db], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1, p)
        self.assertIn("ring group", p.stderr)

    def test_members_and_forward_targets(self):
        self.create_user("104", "secret-104-pw")
        r = self.api("POST", "/api/v1/groups", {"extension": "600", "members": ["101", "104"]})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.api("DELETE", "/api/v1/users/104").status, 204)
        self.assertEqual(self.api("GET", "/api/v1/groups/600").json["members"], ["101"])
        r = self.api("PUT", "/api/v1/users/100/forwarding", {
            "busy": {"enabled": True, "target": "600"}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["busy"]["target"], "600")
        r = self.api("POST", "/api/v1/groups", {"extension": "601", "no_answer_target": "600"})
        self.assertEqual(r.status, 201, r)
        self.api("PUT", "/api/v1/users/100/forwarding", {})

    def test_group_rings_when_created(self):
        """A group created over REST takes a call at once: its member's phone rings."""
        caller = Phone(self.d.sip_port, "100", "secret-100-pw")
        member = Phone(self.d.sip_port, "102", "secret-102-pw")
        try:
            for p in (caller, member):
                self.assertEqual(p.register().status, 200)
            self.assertEqual(self.api("POST", "/api/v1/groups", {
                "extension": "650", "members": ["101", "102"]}).status, 201)
            r, dlg = caller.invite("650")
            self.assertEqual(r.status, 200, r.first)
            caller.in_dialog(dlg, "BYE")
            self.assertEqual(self.api("DELETE", "/api/v1/groups/650").status, 204)
            r, dlg = caller.invite("650")
            self.assertEqual(r.status, 404, r.first)
        finally:
            caller.close()
            member.close()

    def test_dnd(self):
        r = self.api("GET", "/api/v1/users/101")
        self.assertIs(r.json["dnd"], False)
        r = self.api("PATCH", "/api/v1/users/101", {"dnd": True})
        self.assertEqual(r.status, 200, r)
        self.assertIs(r.json["dnd"], True)
        self.assertError(self.api("PATCH", "/api/v1/users/101", {"dnd": "yes"}), 422,
                         "invalid_field", "dnd")
        items = self.api("GET", "/api/v1/users?status=dnd").json["items"]
        self.assertEqual([u["extension"] for u in items], ["101"])
        caller = Phone(self.d.sip_port, "100", "secret-100-pw")
        callee = Phone(self.d.sip_port, "101", "secret-101-pw")
        try:
            for p in (caller, callee):
                self.assertEqual(p.register().status, 200)
            r, _ = caller.invite("101")
            self.assertEqual(r.status, 486, r.first)
            self.assertEqual(self.api("PATCH", "/api/v1/users/101", {"dnd": False}).status, 200)
            r, dlg = caller.invite("101")
            self.assertEqual(r.status, 200, r.first)
            caller.in_dialog(dlg, "BYE")
        finally:
            caller.close()
            callee.close()
        self.assertEqual(self.api("GET", "/api/v1/users?status=dnd").json["items"], [])


if __name__ == "__main__":
    apitest.main()
