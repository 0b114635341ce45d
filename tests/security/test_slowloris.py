"""security_slowloris: slow clients must not take the dashboard and the API down. Before
the fix the server took 64 connections in all, one thread each, and its 30 s timeout
started again with every byte: 70 connections trickling one byte at a time kept
/api/v1/health unreachable for as long as they liked.

The daemon runs with a descriptor limit of 256 (as `ulimit -n` may be low), and the
attacker opens more sockets than that:
- 500 slow connections from one address (127.0.0.2): /api/v1/health from another address
  answers in under a second all along, an admin logs in, the attacker never holds more
  than its per-source share, and every connection it got is cut once the request deadline
  (10 s from accept, not restarted by each byte) has passed;
- a few dozen slow connections from each of 8 addresses, more than the server may hold
  in all, reopened as soon as they are cut: /api/v1/health stays reachable (never longer
  away than the deadline);
- 20 connections with complete headers whose body trickles: cut at the deadline too.
Refused and cut connections are counted in /metrics, and logged at most once a minute per
source, not once per connection."""

import http.client
import json
import os
import re
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "api"))
sys.path.insert(0, HERE)
import apitest  # noqa: E402
from apitest import Daemon, DaemonTest, parse_metrics  # noqa: E402
from slowloris import Slowloris, raise_fd_limit  # noqa: E402

DAEMON_FDS = 256  # the daemon's descriptor limit: it may hold 128 connections
PER_SOURCE = 32  # HTTP_PER_SOURCE_MAX
DEADLINE = 10.0  # HTTP_REQUEST_DEADLINE, seconds
IO_THREADS = 2  # each may let one more in while another accepts (HTTP_IO_THREADS)


class LowFdDaemon(Daemon):
    """A daemon started with a descriptor limit of DAEMON_FDS, soft and hard (sipbx raises
    its soft limit towards the hard one at start)."""

    @staticmethod
    def preexec():
        resource.setrlimit(resource.RLIMIT_NOFILE, (DAEMON_FDS, DAEMON_FDS))


def get(port, path, source="127.0.0.1", timeout=5.0, method="GET", body=None, headers=None):
    """One request from source on a fresh connection: (status, seconds taken, body), or
    (the exception's name, seconds, None)."""
    t0 = time.time()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, time.time() - t0, data
    except (OSError, http.client.HTTPException) as e:
        return type(e).__name__, time.time() - t0, None
    finally:
        conn.close()


class Slow(DaemonTest):
    daemon_class = LowFdDaemon

    def attack(self, sources, per_source, reconnect=False):
        s = Slowloris(self.d.http_port, sources, per_source, reconnect=reconnect)
        self.addCleanup(s.stop)
        s.start()
        return s

    def metrics(self):
        return parse_metrics(self.api("GET", "/metrics").body.decode())

    def login(self, source="127.0.0.1"):
        body = json.dumps({"username": "admin", "password": self.d.admin_password})
        return get(self.d.http_port, "/api/v1/session", source, method="POST", body=body,
                   headers={"Content-Type": "application/json"})

    def daemon_fds(self):
        return len(os.listdir("/proc/%d/fd" % self.d.proc.pid))

    def probe_for(self, seconds, every=0.5, timeout=DEADLINE + 5, source="127.0.0.1"):
        """GET /api/v1/health from source every `every` s for `seconds`; the answers."""
        out = []
        end = time.time() + seconds
        while time.time() < end:
            out.append(get(self.d.http_port, "/api/v1/health", source, timeout=timeout)[:2])
            time.sleep(every)
        return out

    def test_1_one_source(self):
        before = self.metrics()
        attacker = self.attack(["127.0.0.2"], 500)
        t0 = time.time()
        time.sleep(1.0)
        alive, closed, opened = attacker.stats()
        print("attacker: %d open, %d closed by the server, of %d" % (alive, closed, opened))

        # Health answers fast from another address all along, the deadline included.
        probes = self.probe_for(DEADLINE + 1.5 - (time.time() - t0), timeout=5)
        print("health: %d probes, slowest %.3f s" % (len(probes), max(t for _, t in probes)))
        for status, took in probes:
            self.assertEqual(status, 200, probes)
            self.assertLess(took, 1.0, probes)
        status, took, body = self.login()
        self.assertEqual(status, 200, body)
        self.assertLess(took, 2.0)
        # The attacker got its share and no more; the rest was refused at once.
        self.assertEqual(opened, 500)
        self.assertLessEqual(alive, PER_SOURCE + IO_THREADS)
        self.assertGreaterEqual(closed, 500 - PER_SOURCE - IO_THREADS)

        # Every connection the attacker got was cut at the deadline, though it kept
        # sending (it does not reconnect here).
        time.sleep(max(0.0, DEADLINE + 2.0 - (time.time() - t0)))
        alive, closed, opened = attacker.stats()
        self.assertEqual(alive, 0, "slow connections outlived the deadline")
        held = [t for t in attacker.closed_after() if t > 1.0]
        self.assertGreaterEqual(len(held), PER_SOURCE - IO_THREADS)
        self.assertLess(max(held), DEADLINE + 1.0)
        self.assertGreater(min(held), DEADLINE - 1.5)

        m = self.metrics()
        refused = m['sipbx_http_connections_refused_total{reason="source_limit"}'] - \
            before['sipbx_http_connections_refused_total{reason="source_limit"}']
        timed_out = m["sipbx_http_connections_timed_out_total"] - \
            before["sipbx_http_connections_timed_out_total"]
        self.assertGreaterEqual(refused, 500 - PER_SOURCE - IO_THREADS)
        self.assertGreaterEqual(timed_out, len(held))
        self.assertEqual(m["sipbx_http_connections_max"], DAEMON_FDS // 2)
        # One line about the source so far, not hundreds.
        lines = [ln for ln in self.d.log().splitlines() if "127.0.0.2" in ln]
        self.assertEqual(len(lines), 1, lines)
        self.assertRegex(lines[0], r"connections from 127\.0\.0\.2: \d+ refused")

    def test_2_many_sources(self):
        """More slow connections than the server may hold, from 8 addresses, each reopened
        at once when cut: what waited longest for its request makes room for newcomers."""
        sources = ["127.0.0.%d" % i for i in range(10, 18)]
        attacker = self.attack(sources, 40, reconnect=True)
        time.sleep(1.0)
        probes = self.probe_for(DEADLINE + 3)
        attacker_state = attacker.stats()
        status, took, body = self.login("127.0.0.3")
        fds = self.daemon_fds()
        attacker.stop()
        worst = max(t for _, t in probes)
        print("health: %d probes, slowest %.3f s; attacker %r; daemon fds %d"
              % (len(probes), worst, attacker_state, fds))
        for status_, took_ in probes:
            self.assertEqual(status_, 200, probes)
            self.assertLess(took_, DEADLINE, probes)
        self.assertEqual(status, 200, body)
        self.assertLess(fds, DAEMON_FDS)
        m = self.metrics()
        self.assertGreater(m["sipbx_http_connections_evicted_total"], 0)
        self.assertLessEqual(m["sipbx_http_connections"], DAEMON_FDS // 2 + 16)
        log = self.d.log()
        self.assertNotIn("Too many open files", log)
        for src in sources:  # at most a line a minute per source
            self.assertLessEqual(len(re.findall(re.escape(src) + r"\b", log)), 2, src)

    def test_3_slow_body(self):
        """Complete headers and a body that trickles: the deadline covers the body too."""
        before = self.metrics().get("sipbx_http_connections_timed_out_total", 0)
        attacker = Slowloris(self.d.http_port, ["127.0.0.4"], 20, body=True)
        self.addCleanup(attacker.stop)
        attacker.start()
        t0 = time.time()
        time.sleep(1.0)
        self.assertEqual(attacker.stats()[0], 20)  # within its share: all accepted
        status, took, _ = get(self.d.http_port, "/api/v1/health", "127.0.0.4")
        self.assertEqual(status, 200)
        self.wait_for(lambda: attacker.stats()[0] == 0, timeout=DEADLINE + 3 - (time.time() - t0),
                      msg="slow bodies outlived the deadline")
        held = attacker.closed_after()
        self.assertEqual(len(held), 20)
        self.assertGreater(min(held), DEADLINE - 1.5)
        after = self.metrics()["sipbx_http_connections_timed_out_total"]
        self.assertGreaterEqual(after - before, 20)

    def test_4_still_serving(self):
        """After the attacks: everything works, nothing is left open."""
        time.sleep(1)
        status, took, _ = get(self.d.http_port, "/api/v1/health", "127.0.0.2")
        self.assertEqual(status, 200)
        self.assertEqual(self.api("GET", "/api/v1/users").status, 200)
        self.wait_for(lambda: self.metrics()["sipbx_http_connections"] <= 2, timeout=DEADLINE + 8,
                      msg="connections of the attack are still open")


if __name__ == "__main__":
    if raise_fd_limit(2048) < 1024:
        print("skipped: this process may not open 1024 sockets")
        sys.exit(77)
    apitest.main()
