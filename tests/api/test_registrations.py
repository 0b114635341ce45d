"""api_registrations: a user created over REST registers over SIP at once and a deleted
one cannot; who is registered from where; kicking a registration; disabling an account;
a password reset over REST."""

import apitest
from apitest import DaemonTest, SipPhone, register

REG_KEYS = {"extension", "contact", "source", "transport", "user_agent", "call_id",
            "expires_in", "registered_at", "expires_at"}


class Registrations(DaemonTest):
    def bindings(self, query=""):
        r = self.api("GET", "/api/v1/registrations" + query)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "application/json")
        return r.json["items"]

    def wait_bindings(self, ext, n):
        """The writer commits bindings within milliseconds: poll briefly."""
        return self.wait_for(lambda: len(self.bindings("?extension=" + ext)) == n)

    def test_created_user_registers_at_once_and_deleted_cannot(self):
        self.create_user("400", "secret400")
        # No pause: the SIP side must know the user as soon as the POST returned.
        self.assertEqual(register(self.d, "400", "secret400"), 200)
        self.assertTrue(self.wait_bindings("400", 1))

        self.assertEqual(self.api("DELETE", "/api/v1/users/400").status, 204)
        self.assertTrue(self.wait_bindings("400", 0))
        self.assertNotEqual(register(self.d, "400", "secret400"), 200)

    def test_list_fields_filter_and_pagination(self):
        phones = []
        for ext in ("410", "411"):
            self.create_user(ext, "secret" + ext)
        for ext, n in (("410", 2), ("411", 2)):
            for _ in range(n):
                p = SipPhone(self.d.sip_port, user_agent="phone-" + ext)
                self.assertEqual(p.register(ext, "secret" + ext, expires=120), 200)
                phones.append((ext, p))
        self.assertTrue(self.wait_bindings("410", 2))
        self.assertTrue(self.wait_bindings("411", 2))

        items = self.bindings("?extension=410")
        self.assertEqual(len(items), 2)
        b = items[0]
        self.assertEqual(set(b), REG_KEYS)
        self.assertEqual(b["extension"], "410")
        self.assertEqual(b["transport"], "udp")
        self.assertEqual(b["user_agent"], "phone-410")
        self.assertRegex(b["contact"], r"^<?sip:410@127\.0\.0\.1:\d+>?")
        ports = sorted(p.port for e, p in phones if e == "410")
        self.assertEqual(sorted(int(x["source"].rsplit(":", 1)[1]) for x in items), ports)
        self.assertTrue(all(x["source"].startswith("127.0.0.1:") for x in items))
        self.assertTrue(100 <= b["expires_in"] <= 120, b)

        # Pages of one, in (extension, contact) order, across both users.
        seen, cursor = [], None
        for _ in range(10):
            r = self.api("GET", "/api/v1/registrations?limit=1" +
                         ("&cursor=" + cursor if cursor else ""))
            self.assertEqual(r.status, 200, r)
            self.assertLessEqual(len(r.json["items"]), 1)
            seen += [(x["extension"], x["contact"]) for x in r.json["items"]]
            cursor = r.json["next_cursor"]
            if not cursor:
                break
        mine = [s for s in seen if s[0] in ("410", "411")]
        self.assertEqual(len(mine), 4)
        self.assertEqual(seen, sorted(seen))
        self.assertError(self.api("GET", "/api/v1/registrations?limit=0"), 400,
                         "invalid_parameter", "limit")
        self.assertError(self.api("GET", "/api/v1/registrations?cursor=abc"), 400,
                         "invalid_parameter", "cursor")
        self.assertEqual(self.bindings("?extension=nobody"), [])

        # Kick: every binding of 410 goes, 411 keeps its own.
        r = self.api("DELETE", "/api/v1/registrations/410")
        self.assertEqual(r.status, 204, r)
        self.assertTrue(self.wait_bindings("410", 0))
        self.assertEqual(len(self.bindings("?extension=411")), 2)
        # The metrics agree with the registrar.
        self.assertTrue(self.wait_for(lambda: "sipbx_registrations 2\n" in
                                      self.api("GET", "/metrics").body.decode()))

        self.assertError(self.api("DELETE", "/api/v1/registrations/999"), 404, "not_found")
        self.assertError(self.api("DELETE", "/api/v1/registrations/bad%20ext"), 404)
        self.assertError(self.api("DELETE", "/api/v1/registrations/411",
                                  token="sipbx_" + "1" * 64), 401)
        for _, p in phones:
            p.close()
        for ext in ("410", "411"):
            self.api("DELETE", "/api/v1/users/" + ext)

    def test_disable_and_password_reset(self):
        self.create_user("420", "secret420")
        self.assertEqual(register(self.d, "420", "secret420"), 200)
        self.assertTrue(self.wait_bindings("420", 1))

        # Disabling drops the registrations and refuses new ones.
        r = self.api("PATCH", "/api/v1/users/420", {"enabled": False})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(self.wait_bindings("420", 0))
        self.assertNotEqual(register(self.d, "420", "secret420"), 200)
        self.api("PATCH", "/api/v1/users/420", {"enabled": True})
        self.assertEqual(register(self.d, "420", "secret420"), 200)

        # A password reset takes effect at once: the new one works, the old one not.
        self.assertEqual(self.api("PATCH", "/api/v1/users/420",
                                  {"password": "changed420"}).status, 200)
        self.assertEqual(register(self.d, "420", "changed420"), 200)
        self.assertNotEqual(register(self.d, "420", "secret420"), 200)
        self.api("DELETE", "/api/v1/users/420")


if __name__ == "__main__":
    apitest.main()
