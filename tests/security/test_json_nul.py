"""security_json_nul: a JSON string holding the escape \\u0000 (or a raw NUL byte) must not
be read as the part before the NUL. Before the fix "a\\u0000b" created user "a", a password
"abcd\\u0000..." was stored as "abcd", and "admin\\u0000x" logged in as admin. Every body
with one is refused (422, or 400 for a raw NUL byte, which is not JSON) and changes
nothing, on each resource that reads JSON."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
import apitest  # noqa: E402
from apitest import DaemonTest, register  # noqa: E402

NUL = "\\u0000"  # the JSON escape, written into the body text as is


class JsonNul(DaemonTest):
    def send(self, method, path, text, **kw):
        """text is the body as sent: a JSON document with \\u0000 escapes in it."""
        return self.api(method, path, raw=text.encode(), **kw)

    def assertNulRefused(self, r, field):
        self.assertError(r, 422, "invalid_field")
        msg = r.json["error"]["message"]
        self.assertIn("\\u0000", msg, r)
        if field:
            self.assertTrue(msg.startswith(field + ":"), r)

    def users(self):
        return sorted(u["extension"] for u in self.api("GET", "/api/v1/users").json["items"])

    def test_users_create(self):
        before = self.users()
        r = self.send("POST", "/api/v1/users",
                      '{"extension":"a%sb","password":"secret1"}' % NUL)
        self.assertNulRefused(r, "extension")
        # a NUL in a field name: "password\u0000x" would otherwise be read as "password"
        r = self.send("POST", "/api/v1/users",
                      '{"extension":"nul1","password%sx":"secret1"}' % NUL)
        self.assertNulRefused(r, None)
        self.assertIn("field name", r.json["error"]["message"])
        for field, value in (("display_name", "Al%sice" % NUL), ("password", "abcd%sefgh" % NUL)):
            body = {"extension": "nul2", "password": "secret22", "display_name": "x"}
            text = json.dumps(body).replace('"%s"' % body[field], '"%s"' % value)
            self.assertNulRefused(self.send("POST", "/api/v1/users", text), field)
        self.assertEqual(self.users(), before, "a refused request created a user")
        self.assertNotIn("a", self.users())

    def test_password_not_cut(self):
        """The attack that matters most: a password stored as its part before the NUL."""
        self.create_user("710", "secret710")
        r = self.send("PATCH", "/api/v1/users/710", '{"password":"abcd%sefgh"}' % NUL)
        self.assertNulRefused(r, "password")
        self.assertEqual(register(self.d, "710", "abcd"), 401)
        self.assertEqual(register(self.d, "710", "secret710"), 200)

    def test_users_patch(self):
        self.create_user("700", "secret700", display_name="Bob")
        r = self.send("PATCH", "/api/v1/users/700", '{"display_name":"Eve%sBob"}' % NUL)
        self.assertNulRefused(r, "display_name")
        self.assertEqual(self.api("GET", "/api/v1/users/700").json["display_name"], "Bob")
        # the same text with an escaped backslash is no NUL: a literal "\u0000" is a name
        r = self.send("PATCH", "/api/v1/users/700", '{"display_name":"Eve\\\\u0000Bob"}')
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["display_name"], "Eve\\u0000Bob")

    def test_forwarding(self):
        self.create_user("720", "secret720")
        self.create_user("721", "secret721")
        path = "/api/v1/users/720/forwarding"
        before = self.api("GET", path).json
        r = self.send("PUT", path,
                      '{"busy":{"enabled":true,"target":"721%s999"}}' % NUL)
        self.assertNulRefused(r, "busy.target")
        self.assertEqual(self.api("GET", path).json, before)

    def test_tokens(self):
        before = self.api("GET", "/api/v1/tokens").json["items"]
        r = self.send("POST", "/api/v1/tokens", '{"name":"ci%sadmin"}' % NUL)
        self.assertNulRefused(r, "name")
        self.assertEqual(self.api("GET", "/api/v1/tokens").json["items"], before)

    def test_session(self):
        """admin\\u0000x must not be taken for admin (with admin's password)."""
        text = json.dumps({"username": "adminX", "password": self.d.admin_password})
        text = text.replace("adminX", "admin%sx" % NUL)
        r = self.d.request("POST", "/api/v1/session", raw=text.encode())
        self.assertNulRefused(r, "username")
        self.assertIsNone(r.header("Set-Cookie"))
        # and a password cut at its NUL is not checked either
        text = json.dumps({"username": "admin", "password": "PW"}).replace(
            "PW", self.d.admin_password + NUL + "junk")
        r = self.d.request("POST", "/api/v1/session", raw=text.encode())
        self.assertNulRefused(r, "password")

    def test_raw_nul_byte(self):
        """A raw NUL byte, in a string or after the object, is not JSON."""
        before = self.users()
        for raw in (b'{"extension":"a\x00b","password":"secret1"}',
                    b'{"extension":"nul3","password":"secret1"}\x00trailing'):
            r = self.api("POST", "/api/v1/users", raw=raw)
            self.assertError(r, 400, "invalid_json")
        self.assertEqual(self.users(), before)


if __name__ == "__main__":
    apitest.main()
