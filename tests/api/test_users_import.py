"""api_users_import: many SIP accounts at once, with POST /api/v1/users/import (CSV or a JSON
array) and `sipbx user import FILE`: the valid rows are created in one transaction and can
register as soon as the answer arrives, every rejected row is named with its reason
(duplicate, bad extension, short password, ...), bad bodies are refused as a whole, 10,000
users take well under 10 s, and one large upload at a time is allowed. Also: a user added
with the CLI can register 100 ms after the CLI returns (the daemon follows the change log)."""

import hashlib
import os
import socket
import subprocess
import time

import apitest
from apitest import DaemonTest

IMPORT = "/api/v1/users/import"


def ha1(ext, password):
    return hashlib.md5(("%s:127.0.0.1:%s" % (ext, password)).encode()).hexdigest()


class UsersImport(DaemonTest):
    def csv(self, text, **kw):
        return self.api("POST", IMPORT, raw=text, content_type="text/csv", **kw)

    def users(self, like):
        return self.d.db_query("SELECT extension, display_name, ha1 FROM users "
                               "WHERE extension LIKE ? ORDER BY extension", (like,))

    def test_csv_rows_created_and_rejected(self):
        text = ("extension,password,display_name\r\n"
                "3001,secret3001,Alice\r\n"
                '3002,secret3002,"Smith, Bob ""the builder"""\r\n'
                "\r\n"
                "3003,abc,Short\r\n"          # line 5: short password
                "-3004,secret3004,Bad\r\n"    # line 6: bad extension
                "3001,secret3001,Again\r\n"   # line 7: duplicate within the file
                "3005,secret3005\r\n"         # line 8: a field missing
                "3006,,Nobody\r\n"            # line 9: no password
                "3007,secret3007,\r\n")       # line 10: fine, empty display name
        r = self.csv(text)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["created"], 3)
        rej = [(e["line"], e["extension"], e["reason"]) for e in r.json["rejected"]]
        self.assertEqual(rej, [(5, "3003", "short_password"), (6, "-3004", "bad_extension"),
                               (7, "3001", "duplicate"), (8, "3005", "bad_row"),
                               (9, "3006", "missing_field")])
        for e in r.json["rejected"]:
            self.assertTrue(e["message"])
        self.assertEqual(self.users("300%"), [
            ("3001", "Alice", ha1("3001", "secret3001")),
            ("3002", 'Smith, Bob "the builder"', ha1("3002", "secret3002")),
            ("3007", "", ha1("3007", "secret3007"))])
        # In effect on the SIP side when the answer arrives.
        self.assertEqual(apitest.register(self.d, "3002", "secret3002"), 200)
        self.assertNotEqual(apitest.register(self.d, "3003", "abc"), 200)  # never created

    def test_json_array(self):
        body = [{"extension": "3101", "password": "secret3101", "display_name": "Carol"},
                {"username": "3102", "password": "secret3102"},
                {"extension": "3103", "password": "secret3103", "enabled": False},
                "3104",
                {"extension": "3105", "password": "x" * 129},
                {"extension": "3106", "password": "secret3106", "display_name": "n" * 128}]
        r = self.api("POST", IMPORT, body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["created"], 2)
        self.assertEqual([(e["line"], e["reason"]) for e in r.json["rejected"]],
                         [(3, "bad_row"), (4, "bad_row"), (5, "long_password"),
                          (6, "long_display_name")])
        self.assertEqual([u[0] for u in self.users("310%")], ["3101", "3102"])
        self.assertEqual(apitest.register(self.d, "3102", "secret3102"), 200)

    def test_existing_user_is_a_duplicate(self):
        self.create_user("3201", "original")
        r = self.csv("extension,password\n3201,changed!\n3202,secret3202\n")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["created"], 1)
        self.assertEqual(r.json["rejected"][0]["reason"], "duplicate")
        self.assertEqual(r.json["rejected"][0]["line"], 2)
        # the existing account is untouched
        self.assertEqual(self.users("3201")[0][2], ha1("3201", "original"))

    def test_bad_bodies_create_nothing(self):
        before = self.d.db_query("SELECT count(*) FROM users")[0][0]
        cases = [
            (dict(raw="extension,password\n3301,secret\n", content_type="text/plain"), 415),
            (dict(raw="extension,password\n3301,secret\n",
                  content_type="application/x-www-form-urlencoded"), 415),
            (dict(raw="", content_type="text/csv"), 400),
            (dict(raw="3301,secret3301,x\n", content_type="text/csv"), 400),  # no header
            (dict(raw="extension,password,colour\n3301,secret,red\n", content_type="text/csv"),
             400),
            (dict(raw="password,display_name\nsecret,x\n", content_type="text/csv"), 400),
            (dict(raw="extension,password\n3301,sec\x00ret\n", content_type="text/csv"), 400),
            (dict(raw='{"extension": "3301", "password": "secret"}'), 400),  # not an array
            (dict(raw='[{"extension": "3301", "password": "secret"'), 400),
            (dict(raw='[{"extension": "3301", "password": "sec\\u0000ret"}]'), 400),
        ]
        for kw, status in cases:
            r = self.api("POST", IMPORT, **kw)
            self.assertError(r, status)
        self.assertEqual(self.d.db_query("SELECT count(*) FROM users")[0][0], before)
        # only POST makes an import (GET asks for a user named "import"); a token or a
        # session is needed
        self.assertError(self.api("GET", IMPORT), 404, "not_found")
        r = self.d.request("POST", IMPORT, raw="extension,password\n3302,secret\n",
                           content_type="text/csv")
        self.assertError(r, 401)
        self.assertEqual(self.users("3302"), [])

    def test_session_needs_csrf_header(self):
        cookie, csrf = self.d.login()
        text = "extension,password\n3401,secret3401\n"
        r = self.d.request("POST", IMPORT, raw=text, content_type="text/csv",
                           headers={"Cookie": cookie})
        self.assertError(r, 403)
        self.assertEqual(self.users("3401"), [])
        r = self.d.request("POST", IMPORT, raw=text, content_type="text/csv",
                           headers={"Cookie": cookie, "X-CSRF-Token": csrf})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["created"], 1)

    def test_ten_thousand_users(self):
        rows = ["extension,password,display_name"]
        rows += ["%d,pw-%d,User %d" % (i, i, i) for i in range(50000, 60000)]
        text = "\n".join(rows) + "\n"
        self.assertGreater(len(text), 64 * 1024)  # more than other requests may send
        t0 = time.monotonic()
        r = self.csv(text)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["created"], 10000)
        self.assertEqual(r.json["rejected"], [])
        self.assertLess(took, 10.0)
        self.assertEqual(self.d.db_query("SELECT count(*) FROM users WHERE extension "
                                         "BETWEEN '50000' AND '59999'")[0][0], 10000)
        self.assertEqual(apitest.register(self.d, "59999", "pw-59999"), 200)
        self.assertEqual(apitest.register(self.d, "50000", "pw-50000"), 200)

    def test_one_large_upload_at_a_time(self):
        header = "extension,password\n"
        # Larger than the import limit: refused when the headers say so, before it is read.
        s = socket.create_connection(("127.0.0.1", self.d.http_port))
        try:
            s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                       "Content-Type: text/csv\r\nContent-Length: %d\r\n\r\n"
                       % (IMPORT, self.token, 4 * 1024 * 1024 + 1)).encode())
            s.settimeout(10)
            head = s.recv(4096).decode(errors="replace")
        finally:
            s.close()
        self.assertTrue(head.startswith("HTTP/1.1 413"), head)
        self.assertIn("4194304 bytes", head)
        # A large upload in progress (headers and part of the body sent) ...
        s = socket.create_connection(("127.0.0.1", self.d.http_port))
        try:
            s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                       "Content-Type: text/csv\r\nContent-Length: %d\r\n\r\n"
                       % (IMPORT, self.token, 1024 * 1024)).encode() + header.encode())
            time.sleep(0.3)
            # ... makes a second large one wait its turn, while small ones go through
            big = header + "".join("%d,secret%d\n" % (i, i) for i in range(70000, 75000))
            self.assertGreater(len(big), 64 * 1024)
            r = self.csv(big)
            self.assertError(r, 503)
            self.assertEqual(r.header("Retry-After"), "5")
            r = self.csv(header + "3501,secret3501\n")
            self.assertEqual(r.status, 200, r)
        finally:
            s.close()
        # Once it is gone, the next large one is taken.
        r = self.wait_for(lambda: (lambda r: r if r.status == 200 else None)(self.csv(big)),
                          timeout=5, msg="a large import after the first one was dropped")
        self.assertEqual(r.json["created"], 5000)


class UsersCli(DaemonTest):
    def cli(self, *args, stdin=None):
        return subprocess.run([apitest.SIPBX, "user"] + list(args) + ["--db", self.d.db],
                              input=stdin, capture_output=True, text=True, timeout=60)

    def test_import_file(self):
        path = os.path.join(self.d.dir, "users.csv")
        with open(path, "w") as f:
            f.write("extension,password,display_name\n4001,secret4001,Dave\n4002,xy,Eve\n"
                    "4003,secret4003,\n")
        out = self.cli("import", path)
        self.assertEqual(out.returncode, 1, out)  # a row was rejected
        self.assertIn("2 user(s) created, 1 row(s) rejected", out.stdout)
        self.assertIn("line 3, 4002: short_password", out.stderr)
        self.assertEqual([u[0] for u in self.d.db_query(
            "SELECT extension FROM users WHERE extension LIKE '400%' ORDER BY 1")],
            ["4001", "4003"])
        time.sleep(0.1)
        self.assertEqual(apitest.register(self.d, "4001", "secret4001"), 200)

        jpath = os.path.join(self.d.dir, "users.json")
        with open(jpath, "w") as f:
            f.write('[{"extension": "4004", "password": "secret4004"}]')
        out = self.cli("import", jpath)
        self.assertEqual(out.returncode, 0, out)
        self.assertIn("1 user(s) created, 0 row(s) rejected", out.stdout)

        out = self.cli("import", os.path.join(self.d.dir, "missing.csv"))
        self.assertEqual(out.returncode, 2, out)
        self.assertIn("cannot read", out.stderr)
        with open(path, "w") as f:
            f.write("ext;pw\n4005;secret\n")
        out = self.cli("import", path)
        self.assertEqual(out.returncode, 2, out)
        self.assertEqual(len(out.stderr.strip().splitlines()), 1, out.stderr)

    def test_cli_user_registers_within_100_ms(self):
        # Each user is unknown until the daemon has the change; the daemon looks for
        # changes every 50 ms, so 100 ms after the CLI returns the phone must get in at the
        # first try (before the change log, it could take up to half a second).
        for i in range(8):
            ext = "41%02d" % i
            out = self.cli("add", ext, "--password", "secret" + ext)
            self.assertEqual(out.returncode, 0, out)
            returned = time.monotonic()
            time.sleep(0.1)
            p = apitest.SipPhone(self.d.sip_port)
            try:
                status = p.register(ext, "secret" + ext)
            finally:
                p.close()
            self.assertEqual(status, 200, "user %s registered %.0f ms after the CLI returned"
                             % (ext, 1000 * (time.monotonic() - returned)))
        # and a deleted one is gone as quickly
        out = self.cli("del", "4100")
        self.assertEqual(out.returncode, 0, out)
        time.sleep(0.1)
        self.assertNotEqual(apitest.register(self.d, "4100", "secret4100"), 200)


if __name__ == "__main__":
    apitest.main()
