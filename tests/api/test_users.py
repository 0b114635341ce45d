"""api_users: create, list (pagination and filters), read, edit, disable and delete SIP
accounts over REST, and every kind of bad input."""

import hashlib

import apitest
from apitest import DaemonTest

USER_KEYS = {"extension", "display_name", "enabled", "call_waiting", "dnd", "ring_timeout",
             "created_at", "updated_at"}


def ha1(ext, password):
    return hashlib.md5(("%s:127.0.0.1:%s" % (ext, password)).encode()).hexdigest()


class Users(DaemonTest):
    def create(self, ext, password="secret", **fields):
        body = dict(extension=ext, password=password, **fields)
        r = self.api("POST", "/api/v1/users", body)
        self.assertEqual(r.status, 201, r)
        return r

    def test_create_get_delete(self):
        r = self.create("200", "secret200", display_name="Alice")
        self.assertEqual(r.header("Location"), "/api/v1/users/200")
        self.assertEqual(r.header("Content-Type"), "application/json")
        u = r.json
        self.assertEqual(set(u), USER_KEYS)  # never a password or a digest
        self.assertEqual(u["extension"], "200")
        self.assertEqual(u["display_name"], "Alice")
        self.assertIs(u["enabled"], True)
        self.assertIs(u["call_waiting"], True)
        self.assertIsNone(u["ring_timeout"])
        self.assertRegex(u["created_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

        # The password is stored as the digest HA1 for the domain, never in clear.
        rows = self.d.db_query("SELECT ha1, realm FROM users WHERE extension = '200'")
        self.assertEqual(rows, [(ha1("200", "secret200"), "127.0.0.1")])

        r = self.api("GET", "/api/v1/users/200")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json, u)

        self.assertEqual(self.api("DELETE", "/api/v1/users/200").status, 204)
        self.assertError(self.api("GET", "/api/v1/users/200"), 404, "not_found")
        self.assertError(self.api("DELETE", "/api/v1/users/200"), 404, "not_found")

    def test_create_with_username_and_all_fields(self):
        r = self.api("POST", "/api/v1/users",
                     {"username": "alice.b", "password": "pw12345", "display_name": "",
                      "enabled": False, "call_waiting": False, "ring_timeout": 45})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["extension"], "alice.b")
        self.assertIs(r.json["enabled"], False)
        self.assertIs(r.json["call_waiting"], False)
        self.assertEqual(r.json["ring_timeout"], 45)
        self.api("DELETE", "/api/v1/users/alice.b")

    def test_duplicate_is_409(self):
        self.create("201")
        r = self.api("POST", "/api/v1/users", {"extension": "201", "password": "other"})
        self.assertError(r, 409, "conflict", "extension")
        self.api("DELETE", "/api/v1/users/201")

    def test_create_bad_input(self):
        cases = [
            ({"password": "secret"}, 422, "missing_field", "extension"),
            ({"extension": "202"}, 422, "missing_field", "password"),
            ({"extension": 202, "password": "secret"}, 422, "invalid_field", "extension"),
            ({"extension": "-202", "password": "secret"}, 422, "invalid_field", "extension"),
            ({"extension": "2 02", "password": "secret"}, 422, "invalid_field", "extension"),
            ({"extension": "a@b", "password": "secret"}, 422, "invalid_field", "extension"),
            ({"extension": "x" * 33, "password": "secret"}, 422, "invalid_field", "extension"),
            ({"extension": "", "password": "secret"}, 422, "invalid_field", "extension"),
            ({"extension": "202", "username": "203", "password": "secret"}, 422,
             "invalid_field", "username"),
            ({"extension": "202", "password": "abc"}, 422, "invalid_field", "password"),
            ({"extension": "202", "password": 1234}, 422, "invalid_field", "password"),
            ({"extension": "202", "password": "secret", "display_name": 5}, 422,
             "invalid_field", "display_name"),
            ({"extension": "202", "password": "secret", "display_name": "a\r\nb"}, 422,
             "invalid_field", "display_name"),
            ({"extension": "202", "password": "secret", "display_name": "x" * 200}, 422,
             "invalid_field", "display_name"),
            ({"extension": "202", "password": "secret", "enabled": "yes"}, 422,
             "invalid_field", "enabled"),
            ({"extension": "202", "password": "secret", "call_waiting": 1}, 422,
             "invalid_field", "call_waiting"),
            ({"extension": "202", "password": "secret", "ring_timeout": 0}, 422,
             "invalid_field", "ring_timeout"),
            ({"extension": "202", "password": "secret", "ring_timeout": 1.5}, 422,
             "invalid_field", "ring_timeout"),
            ({"extension": "202", "password": "secret", "ring_timeout": 1e300}, 422,
             "invalid_field", "ring_timeout"),
            ({"extension": "202", "password": "secret", "color": "red"}, 422,
             "unknown_field", "color"),
        ]
        for body, status, code, field in cases:
            with self.subTest(body=body):
                self.assertError(self.api("POST", "/api/v1/users", body), status, code,
                                 field + ":")
        for raw in ("", "{", "[]", '"x"', '{"extension":"202"} trailing',
                    '{"extension":"202","extension":"203","password":"secret"}'):
            with self.subTest(raw=raw):
                self.assertError(self.api("POST", "/api/v1/users", raw=raw), 400,
                                 "invalid_json")
        self.assertError(self.api("POST", "/api/v1/users", {"extension": "202"},
                                  content_type="text/plain"), 415)
        # Nothing of it was written.
        self.assertError(self.api("GET", "/api/v1/users/202"), 404)

    def test_patch(self):
        self.create("210", "first-pw", display_name="Bob")
        r = self.api("PATCH", "/api/v1/users/210",
                     {"display_name": "Robert", "call_waiting": False, "ring_timeout": 20})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["display_name"], "Robert")
        self.assertIs(r.json["call_waiting"], False)
        self.assertEqual(r.json["ring_timeout"], 20)
        self.assertIs(r.json["enabled"], True)
        r = self.api("PATCH", "/api/v1/users/210", {"ring_timeout": None, "enabled": False})
        self.assertIsNone(r.json["ring_timeout"])
        self.assertIs(r.json["enabled"], False)
        self.assertEqual(self.api("GET", "/api/v1/users/210").json, r.json)

        # Password reset: a new HA1, and the password is never shown.
        r = self.api("PATCH", "/api/v1/users/210", {"password": "second-pw"})
        self.assertEqual(r.status, 200)
        self.assertNotIn("password", r.json)
        rows = self.d.db_query("SELECT ha1 FROM users WHERE extension = '210'")
        self.assertEqual(rows[0][0], ha1("210", "second-pw"))

        # The same extension may be named; another may not.
        self.assertEqual(self.api("PATCH", "/api/v1/users/210", {"extension": "210"}).status,
                         200)
        self.assertError(self.api("PATCH", "/api/v1/users/210", {"extension": "211"}), 422,
                         "invalid_field", "extension")

        # Nothing half-written: one bad field and no field is changed.
        before = self.api("GET", "/api/v1/users/210").json
        r = self.api("PATCH", "/api/v1/users/210",
                     {"display_name": "Changed", "password": "third-pw", "ring_timeout": 99999})
        self.assertError(r, 422, "invalid_field", "ring_timeout")
        self.assertEqual(self.api("GET", "/api/v1/users/210").json, before)
        rows = self.d.db_query("SELECT ha1 FROM users WHERE extension = '210'")
        self.assertEqual(rows[0][0], ha1("210", "second-pw"))

        for body, code, field in [({"enabled": "no"}, "invalid_field", "enabled"),
                                  ({"display_name": None}, "invalid_field", "display_name"),
                                  ({"password": ""}, "invalid_field", "password"),
                                  ({"nickname": "x"}, "unknown_field", "nickname")]:
            self.assertError(self.api("PATCH", "/api/v1/users/210", body), 422, code, field)
        self.assertError(self.api("PATCH", "/api/v1/users/210", raw="{"), 400, "invalid_json")
        self.assertError(self.api("PATCH", "/api/v1/users/999", {"enabled": True}), 404,
                         "not_found")
        self.assertError(self.api("PATCH", "/api/v1/users/bad%20ext", {"enabled": True}), 404)
        self.api("DELETE", "/api/v1/users/210")

    def test_pagination_and_filters(self):
        exts = ["3%02d" % i for i in range(7)]
        for i, e in enumerate(exts):
            self.create(e, display_name="Page %s" % ("Even" if i % 2 == 0 else "Odd"),
                        enabled=(i != 3))
        seen, cursor, pages = [], None, 0
        while True:
            path = "/api/v1/users?search=Page&limit=3" + ("&cursor=" + cursor if cursor else "")
            r = self.api("GET", path)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(set(r.json), {"items", "next_cursor", "total"})
            self.assertEqual(r.json["total"], 7)
            self.assertLessEqual(len(r.json["items"]), 3)
            seen += [u["extension"] for u in r.json["items"]]
            pages += 1
            cursor = r.json["next_cursor"]
            if cursor is None:
                break
        self.assertEqual(seen, exts)
        self.assertEqual(pages, 3)

        # Exactly one page: no next cursor.
        r = self.api("GET", "/api/v1/users?search=page&limit=7")
        self.assertEqual(len(r.json["items"]), 7)
        self.assertIsNone(r.json["next_cursor"])
        # Filters.
        r = self.api("GET", "/api/v1/users?search=odd")
        self.assertEqual([u["extension"] for u in r.json["items"]], ["301", "303", "305"])
        r = self.api("GET", "/api/v1/users?search=Page&enabled=false")
        self.assertEqual([u["extension"] for u in r.json["items"]], ["303"])
        r = self.api("GET", "/api/v1/users?search=30&enabled=true&limit=2")
        self.assertEqual([u["extension"] for u in r.json["items"]], ["300", "301"])

        for q, name in [("limit=0", "limit"), ("limit=501", "limit"), ("limit=abc", "limit"),
                        ("limit=", "limit"), ("cursor=zz", "cursor"),
                        ("enabled=maybe", "enabled")]:
            self.assertError(self.api("GET", "/api/v1/users?" + q), 400, "invalid_parameter",
                             name + ":")
        for e in exts:
            self.assertEqual(self.api("DELETE", "/api/v1/users/" + e).status, 204)

    def test_sort_filter_and_total(self):
        """The list takes sort (every column, either way), status, q and a total; paging
        with a cursor gives every user once in that order, whatever the page size."""
        users = [("9", "Zoe", True), ("10", "adam", True), ("100", "Bob", False),
                 ("99", "carol", True), ("x-1", "", True), ("1000", "Bob", True)]
        for ext, name, enabled in users:
            self.create(ext, display_name=name, enabled=enabled)
        # 10 is online: a phone registered it
        self.assertEqual(apitest.register(self.d, "10", "secret"), 200)
        self.wait_for(lambda: self.api("GET", "/api/v1/registrations?extension=10").json["items"],
                      msg="the registration of 10 is not listed")
        try:
            def walk(query, limit):
                seen, cursor = [], None
                while True:
                    r = self.api("GET", "/api/v1/users?limit=%d&%s%s" % (
                        limit, query, "&cursor=" + cursor if cursor else ""))
                    self.assertEqual(r.status, 200, r)
                    seen += [u["extension"] for u in r.json["items"]]
                    cursor = r.json["next_cursor"]
                    if not cursor:
                        return seen, r.json["total"]

            # extensions in their natural order: numbers by value, then the others
            for limit in (1, 2, 4, 100):
                self.assertEqual(walk("", limit), (["9", "10", "99", "100", "1000", "x-1"], 6))
                self.assertEqual(walk("sort=-extension", limit),
                                 (["x-1", "1000", "100", "99", "10", "9"], 6))
                # names any case; the same name by extension; the empty name first
                self.assertEqual(walk("sort=name", limit),
                                 (["x-1", "10", "100", "1000", "99", "9"], 6))
                self.assertEqual(walk("sort=-name", limit),
                                 (["9", "99", "1000", "100", "10", "x-1"], 6))
                # online, offline, disabled
                self.assertEqual(walk("sort=status", limit),
                                 (["10", "9", "99", "1000", "x-1", "100"], 6))
                self.assertEqual(walk("sort=-status", limit),
                                 (["100", "x-1", "1000", "99", "9", "10"], 6))
            self.assertEqual(walk("sort=created", 2)[1], 6)
            self.assertEqual(len(walk("sort=-created", 4)[0]), 6)

            # filters, each with its total
            self.assertEqual(walk("status=online", 2), (["10"], 1))
            self.assertEqual(walk("status=offline", 2), (["9", "99", "1000", "x-1"], 4))
            self.assertEqual(walk("status=disabled", 2), (["100"], 1))
            self.assertEqual(walk("status=any", 10)[1], 6)
            self.assertEqual(walk("q=BOB", 1), (["100", "1000"], 2))
            self.assertEqual(walk("search=bob&status=offline", 1), (["1000"], 1))
            self.assertEqual(walk("q=99&search=99", 1), (["99"], 1))
            self.assertEqual(walk("q=nobody", 1), ([], 0))
            self.assertEqual(walk("q=o&sort=-name&enabled=true", 1), (["9", "99", "1000"], 3))
            # every item says whether it is online
            r = self.api("GET", "/api/v1/users?sort=status&limit=2")
            self.assertEqual([(u["extension"], u["online"]) for u in r.json["items"]],
                             [("10", True), ("9", False)])

            # a cursor belongs to its order
            r = self.api("GET", "/api/v1/users?limit=1&sort=name")
            self.assertError(self.api("GET", "/api/v1/users?limit=1&sort=status&cursor=" +
                                      r.json["next_cursor"]), 400, "invalid_parameter", "cursor:")
            for q, name in [("sort=phone", "sort"), ("sort=--name", "sort"), ("sort=Name", "sort"),
                            ("status=away", "status"), ("q=a&search=b", "search"),
                            ("q=" + "x" * 600, "q"), ("cursor=" + "41" * 8, "cursor")]:
                self.assertError(self.api("GET", "/api/v1/users?" + q), 400,
                                 "invalid_parameter", name + ":")
        finally:
            for ext, _, _ in users:
                self.assertEqual(self.api("DELETE", "/api/v1/users/" + ext).status, 204)

    def test_display_name_length_in_characters(self):
        """127 characters whatever their bytes; longer is refused with the limit in
        characters, and nothing is cut."""
        for name in ("a" * 127, "\u00fc" * 127, "\u5c71" * 127, "\U0001F600" * 127):
            with self.subTest(name=name[:3]):
                r = self.create("400", display_name=name)
                self.assertEqual(r.json["display_name"], name)
                self.assertEqual(self.api("GET", "/api/v1/users/400").json["display_name"], name)
                r = self.api("GET", "/api/v1/users?q=400")
                self.assertEqual(r.json["items"][0]["display_name"], name)
                self.assertEqual(self.api("DELETE", "/api/v1/users/400").status, 204)
        for name, n in (("a" * 128, 128), ("\u00fc" * 128, 128), ("\U0001F600" * 200, 200),
                        ("x" * 10000, 10000)):
            with self.subTest(chars=n):
                r = self.api("POST", "/api/v1/users",
                             {"extension": "401", "password": "secret", "display_name": name})
                self.assertError(r, 422, "invalid_field",
                                 "display_name: at most 127 characters (this one has %d)" % n)
        self.assertError(self.api("GET", "/api/v1/users/401"), 404)
        # the same rule for a change; the stored name stays
        self.create("402", display_name="Kept")
        try:
            r = self.api("PATCH", "/api/v1/users/402", {"display_name": "\u00e9" * 128})
            self.assertError(r, 422, "invalid_field", "at most 127 characters")
            # bytes that are not UTF-8
            r = self.api("PATCH", "/api/v1/users/402", raw=b'{"display_name":"a\xffb"}')
            self.assertError(r, 422, "invalid_field", "display_name: not valid UTF-8")
            self.assertEqual(self.api("GET", "/api/v1/users/402").json["display_name"], "Kept")
        finally:
            self.assertEqual(self.api("DELETE", "/api/v1/users/402").status, 204)

    def test_chunked_body(self):
        """A body without Content-Length is read in pieces, and refused when too large."""
        import http.client

        def post(chunks):
            conn = http.client.HTTPConnection("127.0.0.1", self.d.http_port, timeout=30)
            try:
                conn.request("POST", "/api/v1/users", body=iter(chunks), encode_chunked=True,
                             headers={"Authorization": "Bearer " + self.token,
                                      "Content-Type": "application/json"})
                resp = conn.getresponse()
                return apitest.Response(resp.status, resp.getheaders(), resp.read())
            finally:
                conn.close()

        r = post([b'{"extension":', b'"220","password"', b':"secret220"}'])
        self.assertEqual(r.status, 201, r)
        r = post([b'{"extension":"221","password":"'] + [b"x" * 8192] * 10 + [b'"}'])
        self.assertError(r, 413, "body_too_large")
        self.assertError(self.api("GET", "/api/v1/users/221"), 404)
        self.api("DELETE", "/api/v1/users/220")


if __name__ == "__main__":
    apitest.main()
