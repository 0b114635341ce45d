"""security_url_nul: libmicrohttpd decodes "%00" in a URL to a NUL byte, which ended the path
(or a query parameter) there: DELETE /api/v1/users/101%00x deleted user 101, PATCH changed
it, DELETE /api/v1/tokens/1%00junk revoked token 1, and a filter "?ext=101%00x" was read as
"101". Any request whose URL holds %00, in the path or the query, on any route, is refused
with 400 and changes nothing. "%2500" (an encoded "%" followed by "00") is no NUL and is
answered as usual."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
import apitest  # noqa: E402
from apitest import DaemonTest, register  # noqa: E402


class UrlNul(DaemonTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.create_user("101", "secret101", display_name="Alice")

    def assertNulRefused(self, r):
        self.assertError(r, 400, "bad_request")
        self.assertIn("%00", r.json["error"]["message"])

    def user(self, ext):
        return self.api("GET", "/api/v1/users/" + ext)

    def test_delete_user(self):
        r = self.api("DELETE", "/api/v1/users/101%00x")
        self.assertNulRefused(r)
        self.assertEqual(self.user("101").status, 200, "user 101 was deleted")
        self.assertEqual(register(self.d, "101", "secret101"), 200)

    def test_patch_user(self):
        r = self.api("PATCH", "/api/v1/users/101%00anything", {"display_name": "Eve"})
        self.assertNulRefused(r)
        self.assertEqual(self.user("101").json["display_name"], "Alice")
        r = self.api("PATCH", "/api/v1/users/101%00", {"password": "taken0ver"})
        self.assertNulRefused(r)
        self.assertEqual(register(self.d, "101", "taken0ver"), 401)
        self.assertEqual(register(self.d, "101", "secret101"), 200)

    def test_forwarding(self):
        path = "/api/v1/users/101/forwarding"
        before = self.api("GET", path).json
        r = self.api("PUT", "/api/v1/users/101%00/forwarding",
                     {"unconditional": {"enabled": True, "target": "999"}})
        self.assertNulRefused(r)
        self.assertEqual(self.api("GET", path).json, before)

    def test_revoke_token(self):
        victim = self.d.create_token("victim")
        tid = [t["id"] for t in self.api("GET", "/api/v1/tokens").json["items"]
               if t["name"] == "victim"][0]
        r = self.api("DELETE", "/api/v1/tokens/%d%%00junk" % tid)
        self.assertNulRefused(r)
        self.assertEqual(self.api("GET", "/api/v1/users", token=victim).status, 200,
                         "the token was revoked")

    def test_read_and_query(self):
        # reading: no answer about user 101 under another name
        self.assertNulRefused(self.user("101%00x"))
        # a filter in the query string, and a NUL in a parameter's name
        self.assertNulRefused(self.api("GET", "/api/v1/cdrs?ext=101%00x"))
        self.assertNulRefused(self.api("GET", "/api/v1/cdrs?ext%00=1"))
        # public routes and the dashboard's files too, without credentials
        self.assertNulRefused(self.d.request("GET", "/api/v1/health%00"))
        self.assertNulRefused(self.d.request("GET", "/index.html%00.png"))
        self.assertNulRefused(self.d.request("POST", "/api/v1/session%00",
                                             body={"username": "admin", "password": "x"}))

    def test_encoded_percent_is_no_nul(self):
        # "%2500" decodes to the three characters "%00": an extension that does not exist
        r = self.user("101%2500")
        self.assertNotEqual(r.status, 400, r)
        self.assertIn(r.status, (404, 422), r)
        self.assertEqual(self.api("GET", "/api/v1/users?x=%2500").status, 200)


if __name__ == "__main__":
    apitest.main()
