"""api_tokens: API tokens over REST and with `sipbx token`: shown once, stored hashed,
last-used time, revocation, pagination and bad input."""

import hashlib
import subprocess

import apitest
from apitest import DaemonTest

TOKEN_KEYS = {"id", "name", "created_at", "last_used_at"}


class Tokens(DaemonTest):
    def test_create_use_revoke(self):
        r = self.api("POST", "/api/v1/tokens", {"name": "deploy"})
        self.assertEqual(r.status, 201, r)
        t = r.json
        self.assertEqual(set(t), TOKEN_KEYS | {"token"})
        self.assertEqual(t["name"], "deploy")
        self.assertIsNone(t["last_used_at"])
        self.assertRegex(t["token"], r"^sipbx_[0-9a-f]{64}$")
        self.assertEqual(r.header("Location"), "/api/v1/tokens/%d" % t["id"])

        # Stored as its SHA-256 only.
        rows = self.d.db_query("SELECT token_hash FROM api_tokens WHERE id = ?", (t["id"],))
        self.assertEqual(rows[0][0], hashlib.sha256(t["token"].encode()).hexdigest())
        with open(self.d.db, "rb") as f:
            self.assertNotIn(t["token"].encode(), f.read())

        # It works, and its use is recorded; the list never shows a secret.
        self.assertEqual(self.d.request("GET", "/api/v1/users", token=t["token"]).status, 200)
        r = self.api("GET", "/api/v1/tokens?name=deploy")
        self.assertEqual(r.status, 200)
        [item] = r.json["items"]
        self.assertEqual(set(item), TOKEN_KEYS)
        self.assertRegex(item["last_used_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

        # Revoked: it stops working at once.
        self.assertEqual(self.api("DELETE", "/api/v1/tokens/%d" % t["id"]).status, 204)
        self.assertError(self.d.request("GET", "/api/v1/users", token=t["token"]), 401)
        self.assertError(self.api("DELETE", "/api/v1/tokens/%d" % t["id"]), 404, "not_found")
        self.assertEqual(self.api("GET", "/api/v1/tokens?name=deploy").json["items"], [])

    def test_bad_input(self):
        for body, status, code, field in [({}, 422, "missing_field", "name"),
                                          ({"name": ""}, 422, "invalid_field", "name"),
                                          ({"name": 3}, 422, "invalid_field", "name"),
                                          ({"name": "x" * 65}, 422, "invalid_field", "name"),
                                          ({"name": "a", "scope": "all"}, 422,
                                           "unknown_field", "scope")]:
            self.assertError(self.api("POST", "/api/v1/tokens", body), status, code, field)
        self.assertError(self.api("POST", "/api/v1/tokens", raw="{]"), 400, "invalid_json")
        for bad in ("abc", "0", "-1", "99999", "1x"):
            self.assertError(self.api("DELETE", "/api/v1/tokens/" + bad), 404, "not_found")
        self.assertError(self.api("GET", "/api/v1/tokens?limit=x"), 400, "invalid_parameter",
                         "limit")
        self.assertError(self.api("GET", "/api/v1/tokens?cursor=x"), 400, "invalid_parameter",
                         "cursor")

    def test_pagination(self):
        ids = [self.api("POST", "/api/v1/tokens", {"name": "page"}).json["id"]
               for _ in range(5)]
        seen, cursor = [], None
        while True:
            r = self.api("GET", "/api/v1/tokens?name=page&limit=2" +
                         ("&cursor=" + cursor if cursor else ""))
            self.assertEqual(r.status, 200, r)
            seen += [t["id"] for t in r.json["items"]]
            cursor = r.json["next_cursor"]
            if cursor is None:
                break
        self.assertEqual(seen, ids)
        for i in ids:
            self.api("DELETE", "/api/v1/tokens/%d" % i)

    def test_cli(self):
        run = lambda *a: subprocess.run([apitest.SIPBX, "token"] + list(a) + ["--db", self.d.db],
                                        capture_output=True, text=True, timeout=30)
        out = run("create", "from-cli")
        self.assertEqual(out.returncode, 0, out.stderr)
        secret = out.stdout.strip()
        self.assertRegex(secret, r"^sipbx_[0-9a-f]{64}$")
        # The running daemon accepts it at once.
        self.assertEqual(self.d.request("GET", "/api/v1/users", token=secret).status, 200)
        out = run("list")
        self.assertEqual(out.returncode, 0)
        self.assertIn("from-cli", out.stdout)
        self.assertNotIn(secret, out.stdout)
        tid = [line.split()[0] for line in out.stdout.splitlines() if "from-cli" in line][0]
        out = run("revoke", tid)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertError(self.d.request("GET", "/api/v1/users", token=secret), 401)
        out = run("revoke", tid)
        self.assertEqual(out.returncode, 1)
        self.assertEqual(run("revoke", "abc").returncode, 2)
        self.assertEqual(run("create").returncode, 2)


if __name__ == "__main__":
    apitest.main()
