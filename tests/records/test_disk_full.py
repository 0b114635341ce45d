"""A full disk: while the database cannot grow, calls go on through sipbx, what was stored
stays readable, /api/v1/health and /metrics say the writes fail, and the records and
traces of the calls made meanwhile wait in memory; once there is room again they are all
written, and nothing is lost.

The disk is "full" by a file size limit on the running daemon (RLIMIT_FSIZE, set from
outside with prlimit): a write past it fails with EFBIG as one on a full disk fails with
ENOSPC, and no root or mount is needed.

    python3 test_disk_full.py --sipbx PATH/TO/sipbx
"""

import os
import resource
import sqlite3

import records

CALLS_BEFORE = 5
CALLS_DURING = 30


class DiskFull(records.RecordsTest):

    def calls(self, tag, n):
        """n answered calls from 100 to 101 (10 a second); returns their Call-IDs."""
        cid, a, b = self.start_load(tag, 100, 10, 20, calls=n)
        a.wait(timeout=n / 10 * 4 + 60)
        b.wait(timeout=60)
        return {cid.replace("%u", str(i)) for i in range(1, n + 1)}

    def stored(self, ids):
        """Of ids, those with a closed record in the database (read as another process)."""
        rows = self.d.db_query("SELECT call_id FROM cdrs WHERE open = 0")
        return {r[0] for r in rows} & ids

    def health(self):
        r = self.d.request("GET", "/api/v1/health")
        return r.status, r.json

    def metric(self, name):
        return records.apitest.parse_metrics(self.api("GET", "/metrics").body.decode())[name]

    def test_full_disk_loses_nothing(self):
        before = self.calls("before-full", CALLS_BEFORE)
        self.wait_for(lambda: self.stored(before) == before, 10, "the first records not stored")
        status, body = self.health()
        self.assertEqual((status, body["status"], body["database"]), (200, "ok", "ok"))
        self.assertNotIn("failing_since", body)

        # The disk fills: no file of the daemon may grow past its present size.
        pid = self.d.proc.pid
        files = [self.d.db + ext for ext in ("", "-wal")]
        limit = max(os.path.getsize(f) for f in files if os.path.exists(f)) + 4096
        soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, hard))
        try:
            during = self.calls("while-full", CALLS_DURING)  # every call completes
            status, body = self.wait_for(lambda: (lambda h: h[0] == 503 and h)(self.health()),
                                         15, "health does not report the failing writes")
            self.assertEqual(body["status"], "error")
            self.assertRegex(body["database"], r"^writes failing: .+ \(\d+ rows waiting\)$")
            self.assertRegex(body["failing_since"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
            self.assertEqual(self.metric("sipbx_store_failing"), 1)
            self.assertGreaterEqual(self.metric("sipbx_store_write_failures_total"), 1)
            # what was stored before is still there to read, untouched
            listed = {c["call_id"] for c in self.cdrs(ext="100")}
            self.assertEqual(before - listed, set())
            self.assertLess(len(self.stored(during)), CALLS_DURING,
                            "the disk was not full: every record got written")
            self.assertIn("rows not written", self.d.log())
            self.assertEqual(self.d.proc.poll(), None, "the daemon died of the full disk")
        finally:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))

        # Room again: within a retry or two everything is written.
        self.wait_for(lambda: self.health()[0] == 200, 10, "health did not recover")
        self.assertEqual(self.metric("sipbx_store_failing"), 0)
        self.wait_for(lambda: self.stored(during) == during, 10,
                      "the records of the calls meanwhile not stored")
        self.assertEqual(self.stored(before), before)
        self.assertIn("writing again after", self.d.log())
        rows = self.d.db_query(
            "SELECT call_id, sum(retransmission = 0) FROM trace_messages "
            "WHERE call_id LIKE 'while-full-%' GROUP BY call_id")
        self.assertEqual(len(rows), CALLS_DURING)
        self.assertEqual({n for _, n in rows}, {16}, rows[:5])
        for c in self.cdrs(ext="100"):
            if c["call_id"] in during:
                self.assertEqual((c["disposition"], c["hangup_by"], c["interrupted"]),
                                 ("ANSWERED", "caller", False), c)
        # and the database file is sound
        self.d.stop()
        con = sqlite3.connect(self.d.db)
        try:
            self.assertEqual(con.execute("PRAGMA integrity_check").fetchall(), [("ok",)])
        finally:
            con.close()
        self.__class__.d = records.Daemon(dir=self.d.dir, sip_port=self.d.sip_port,
                                          http_port=self.d.http_port)


if __name__ == "__main__":
    records.main()
