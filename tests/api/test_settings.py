"""api_settings: GET /api/v1/settings shows the settings the daemon runs with (flags
included, ports as bound), read-only."""

import apitest
from apitest import DaemonTest


class Settings(DaemonTest):
    daemon_args = ("--ring-timeout", "45", "--min-expires", "30", "--max-expires", "900")

    def test_settings(self):
        r = self.api("GET", "/api/v1/settings")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "application/json")
        version = self.api("GET", "/api/v1/health").json["version"]
        self.assertEqual(r.json, {
            "domain": "127.0.0.1",
            "sip": {"address": "127.0.0.1", "port": self.d.sip_port,
                    "transports": ["udp", "tcp"], "tls_address": None, "tls_port": None,
                    "certificate": None},
            "http": {"address": "127.0.0.1", "port": self.d.http_port},
            # HTTPS off (the default): test_https.py has it on
            "https": {"enabled": False, "address": None, "port": None, "hsts_max_age": 0,
                      "certificate": None},
            "ring_timeout": 45,
            "min_expires": 30,
            "max_expires": 900,
            "trace": {"enabled": True, "days": 7, "max_mb": 256},
            "version": version,
        })
        # The dashboard's way: the session cookie.
        cookie, _ = self.d.login()
        r = self.d.request("GET", "/api/v1/settings", headers={"Cookie": cookie})
        self.assertEqual(r.status, 200, r)

    def test_errors(self):
        self.assertError(self.api("GET", "/api/v1/settings", token=None), 401, "unauthorized")
        for method in ("PUT", "PATCH", "POST"):
            r = self.api(method, "/api/v1/settings", {"ring_timeout": 10})
            self.assertError(r, 405, "method_not_allowed")
            self.assertEqual(r.header("Allow"), "GET")
        self.assertError(self.api("GET", "/api/v1/settings/domain"), 404, "not_found")


if __name__ == "__main__":
    apitest.main()
