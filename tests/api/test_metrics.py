"""api_metrics: /metrics in the Prometheus text format, behind authentication, with the
SIP, HTTP and store numbers moving as traffic flows."""

import apitest
from apitest import DaemonTest, parse_metrics, register

NAMES = ["sipbx_registrations", "sipbx_calls_active", "sipbx_users", "sipbx_sip_requests_total", "sipbx_sip_responses_total",
         "sipbx_sip_auth_failures_total", "sipbx_http_requests_total",
         "sipbx_store_queue_depth", "sipbx_http_event_streams"]


class Metrics(DaemonTest):
    def metrics(self):
        r = self.api("GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
        return parse_metrics(r.body.decode())

    def test_needs_auth(self):
        self.assertError(self.d.request("GET", "/metrics"), 401, "unauthorized")
        self.assertError(self.d.request("GET", "/metrics", token="sipbx_" + "2" * 64), 401)
        self.assertError(self.api("POST", "/metrics", {}), 405)

    def test_content_and_movement(self):
        m = self.metrics()
        for name in NAMES:
            self.assertTrue(any(k.split("{")[0] == name for k in m), name)
        self.assertEqual(m["sipbx_registrations"], 0)
        self.assertEqual(m["sipbx_calls_active"], 0)
        for method in ("REGISTER", "INVITE", "OPTIONS", "other"):
            self.assertIn('sipbx_sip_requests_total{method="%s"}' % method, m)
        for cls in range(1, 7):
            self.assertIn('sipbx_sip_responses_total{class="%dxx"}' % cls, m)
        self.assertGreaterEqual(m['sipbx_http_requests_total{code="200"}'], 1)

        self.create_user("500", "secret500")
        self.assertEqual(register(self.d, "500", "secret500"), 200)
        self.assertNotEqual(register(self.d, "500", "wrong"), 200)
        self.api("GET", "/api/v1/nowhere")

        after = self.metrics()
        reg = 'sipbx_sip_requests_total{method="REGISTER"}'
        self.assertGreaterEqual(after[reg] - m[reg], 4)  # two challenged REGISTERs
        self.assertGreaterEqual(after['sipbx_sip_responses_total{class="2xx"}'], 1)
        self.assertGreaterEqual(after['sipbx_sip_responses_total{class="4xx"}'], 3)
        self.assertGreaterEqual(after["sipbx_sip_auth_failures_total"], 1)
        self.assertEqual(after["sipbx_registrations"], 1)
        self.assertEqual(after["sipbx_users"], 1)
        self.assertEqual(after['sipbx_http_requests_total{code="201"}'], 1)
        self.assertGreaterEqual(after['sipbx_http_requests_total{code="404"}'], 1)
        self.assertGreaterEqual(after["sipbx_store_queue_depth"], 0)
        self.assertGreater(after["process_resident_memory_bytes"], 2 << 20)
        self.assertGreaterEqual(after['sipbx_memory_pool_bytes{pool="calls"}'], 0)
        # the answered nonce of the registration lives in the nonces' pool: a 64 KiB slab,
        # which the metric shows once the SIP thread's housekeeping (each second) has run
        self.wait_for(lambda: self.metrics()['sipbx_memory_pool_bytes{pool="nonces"}']
                      >= 64 << 10, timeout=5, msg="the nonces' pool in /metrics")
        self.assertEqual(after["sipbx_http_event_streams"], 0)
        self.api("DELETE", "/api/v1/users/500")


if __name__ == "__main__":
    apitest.main()
