"""api_auth: who may call the API. Health is public; every other endpoint needs a Bearer
token or a session cookie (plus X-CSRF-Token on state-changing requests); log-in, log-out,
expiry, throttling of failed log-ins; 404/405/413/415 shapes."""

import hashlib
import time

import apitest
from apitest import DaemonTest

# Every protected route, with a path that exists for it.
PROTECTED = [
    ("GET", "/api/v1/session"),
    ("DELETE", "/api/v1/session"),
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("GET", "/api/v1/users/100"),
    ("PATCH", "/api/v1/users/100"),
    ("DELETE", "/api/v1/users/100"),
    ("GET", "/api/v1/registrations"),
    ("DELETE", "/api/v1/registrations/100"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/1"),
    ("GET", "/metrics"),
]


class Auth(DaemonTest):
    def test_health_needs_no_auth(self):
        r = self.d.request("GET", "/api/v1/health")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Type"), "application/json")
        self.assertEqual(r.json["status"], "ok")

    def test_missing_auth_is_401_everywhere(self):
        for method, path in PROTECTED:
            body = {} if method in ("POST", "PATCH") else None
            r = self.d.request(method, path, body)
            self.assertError(r, 401, "unauthorized")
            self.assertIn("Bearer", r.header("WWW-Authenticate"), (method, path))

    def test_wrong_token_is_401_everywhere(self):
        wrong = "sipbx_" + "0" * 64
        for method, path in PROTECTED:
            body = {} if method in ("POST", "PATCH") else None
            self.assertError(self.d.request(method, path, body, token=wrong), 401,
                             "unauthorized")
        # Malformed tokens and schemes other than Bearer.
        for value in ("Bearer", "Bearer nonsense", "Basic YWRtaW46YWRtaW4=",
                      "Bearer " + self.token[:-1], "Bearer " + self.token + "0"):
            r = self.d.request("GET", "/api/v1/users", headers={"Authorization": value})
            self.assertError(r, 401, "unauthorized")

    def test_token_works(self):
        r = self.api("GET", "/api/v1/users")
        self.assertEqual(r.status, 200, r)
        r = self.api("GET", "/api/v1/session")
        self.assertEqual(r.json["auth"], "token")
        self.assertEqual(r.json["token_name"], "tests")

    def test_wrong_cookie_is_401(self):
        r = self.d.request("GET", "/api/v1/users",
                           headers={"Cookie": "sipbx_session=" + "a" * 64})
        self.assertError(r, 401, "unauthorized")

    def test_login_session_csrf_logout(self):
        r = self.d.request("POST", "/api/v1/session",
                           {"username": "admin", "password": self.d.admin_password})
        self.assertEqual(r.status, 200, r)
        cookie = r.header("Set-Cookie")
        self.assertIn("HttpOnly", cookie)
        self.assertIn("SameSite=Strict", cookie)
        self.assertIn("Path=/", cookie)
        self.assertEqual(r.json["username"], "admin")
        csrf = r.json["csrf_token"]
        self.assertEqual(len(csrf), 64)
        jar = {"Cookie": cookie.split(";")[0]}

        # Reading needs only the cookie.
        r = self.d.request("GET", "/api/v1/users", headers=jar)
        self.assertEqual(r.status, 200, r)
        r = self.d.request("GET", "/api/v1/session", headers=jar)
        self.assertEqual(r.json["csrf_token"], csrf)

        # Changing needs the CSRF header too, and the right one.
        body = {"extension": "700", "password": "secret700"}
        r = self.d.request("POST", "/api/v1/users", body, headers=jar)
        self.assertError(r, 403, "csrf")
        r = self.d.request("POST", "/api/v1/users", body,
                           headers=dict(jar, **{"X-CSRF-Token": "0" * 64}))
        self.assertError(r, 403, "csrf")
        self.assertEqual(self.api("GET", "/api/v1/users/700").status, 404)
        r = self.d.request("POST", "/api/v1/users", body,
                           headers=dict(jar, **{"X-CSRF-Token": csrf}))
        self.assertEqual(r.status, 201, r)

        # A token needs no CSRF header.
        self.assertEqual(self.api("DELETE", "/api/v1/users/700").status, 204)

        # Sessions are stored as the SHA-256 of the cookie value only.
        value = cookie.split(";")[0].split("=", 1)[1]
        hashed = hashlib.sha256(value.encode()).hexdigest()
        count = "SELECT count(*) FROM sessions WHERE id_hash = ?"
        self.assertEqual(self.d.db_query(count, (value,))[0][0], 0)
        self.assertEqual(self.d.db_query(count, (hashed,))[0][0], 1)

        # Log-out ends the session and clears the cookie.
        r = self.d.request("DELETE", "/api/v1/session", headers=jar)
        self.assertError(r, 403, "csrf")
        r = self.d.request("DELETE", "/api/v1/session",
                           headers=dict(jar, **{"X-CSRF-Token": csrf}))
        self.assertEqual(r.status, 204, r)
        self.assertIn("Max-Age=0", r.header("Set-Cookie"))
        self.assertError(self.d.request("GET", "/api/v1/users", headers=jar), 401)
        self.assertEqual(self.d.db_query("SELECT count(*) FROM sessions WHERE id_hash = ?",
                                         (hashed,))[0][0], 0)

    def test_session_expires(self):
        cookie, _ = self.d.login()
        jar = {"Cookie": cookie}
        self.assertEqual(self.d.request("GET", "/api/v1/users", headers=jar).status, 200)
        self.d.db_query("UPDATE sessions SET expires_at = strftime('%s','now') - 1")
        self.assertError(self.d.request("GET", "/api/v1/users", headers=jar), 401,
                         "unauthorized", "expired")

    def test_login_bad_input(self):
        r = self.d.request("POST", "/api/v1/session", raw="{not json")
        self.assertError(r, 400, "invalid_json")
        r = self.d.request("POST", "/api/v1/session", raw="[1,2]")
        self.assertError(r, 400, "invalid_json")
        r = self.d.request("POST", "/api/v1/session", {"username": "admin"})
        self.assertError(r, 422, "missing_field", "password")
        r = self.d.request("POST", "/api/v1/session", {"username": 7, "password": "x"})
        self.assertError(r, 422, "invalid_field", "username")
        r = self.d.request("POST", "/api/v1/session", raw="username=admin&password=x",
                           content_type="application/x-www-form-urlencoded")
        self.assertError(r, 415, "unsupported_media_type")

    def test_not_found_and_method_not_allowed(self):
        # Outside /api/ paths are the dashboard's files ("/" is its page); under /api/ an
        # unknown path is a JSON 404, never a file.
        for path in ("/api", "/api/v1", "/api/v1/nope", "/api/v1/users/100/x", "/api/v2/users",
                     "/api/index.html", "/no-such-file.js"):
            self.assertError(self.api("GET", path), 404, "not_found")
        r = self.api("PUT", "/api/v1/users")
        self.assertError(r, 405, "method_not_allowed")
        self.assertEqual(r.header("Allow"), "GET, POST")
        r = self.api("POST", "/api/v1/users/100", {})
        self.assertError(r, 405)
        self.assertEqual(r.header("Allow"), "GET, PATCH, DELETE")
        r = self.d.request("POST", "/api/v1/health", {})
        self.assertError(r, 405)
        self.assertEqual(r.header("Allow"), "GET")

    def test_body_too_large(self):
        big = '{"extension":"1","password":"' + "x" * 70000 + '"}'
        r = self.api("POST", "/api/v1/users", raw=big)
        self.assertError(r, 413, "body_too_large")


class Throttle(DaemonTest):
    """Its own daemon: locking 127.0.0.1 out must not disturb the other tests."""

    def test_failed_logins_are_slowed_then_refused(self):
        started = time.time()
        for _ in range(5):
            r = self.d.request("POST", "/api/v1/session",
                               {"username": "admin", "password": "wrong"})
            self.assertError(r, 401, "invalid_credentials")
        # 250 ms more per failure: 0.25 + 0.5 + ... + 1.25 s.
        self.assertGreaterEqual(time.time() - started, 3.5)
        # Locked out now, even with the right password.
        r = self.d.request("POST", "/api/v1/session",
                           {"username": "admin", "password": self.d.admin_password})
        self.assertError(r, 429, "too_many_attempts")
        self.assertGreater(int(r.header("Retry-After")), 0)
        # Unknown users count the same.
        r = self.d.request("POST", "/api/v1/session", {"username": "root", "password": "x"})
        self.assertError(r, 429)
        # Tokens still work.
        self.assertEqual(self.api("GET", "/api/v1/users").status, 200)


if __name__ == "__main__":
    apitest.main()
