"""No call record lost: N calls through sipbx leave exactly N records; SIGTERM while calls
run leaves a closed record of every call SIPp completed and of every call still up; kill -9
during an answered call leaves a record that the next start closes as interrupted.

    python3 test_load.py --sipbx PATH/TO/sipbx
"""

import os
import re
import time

import records
from records import caller, callee, new_call_id

LOAD_CALLS = int(os.environ.get("SIPBX_LOAD_CALLS", "200"))
LOAD_RATE = int(os.environ.get("SIPBX_LOAD_RATE", "20"))


def completed(sipp):
    """The Call-IDs SIPp logged as completed (the BYE answered) by uac_load.xml."""
    return {m.group(1) for m in (re.search(r"completed (\S+)", line) for line in
                                 sipp.log_lines()) if m}


class Load(records.RecordsTest):

    def test_n_calls_n_records(self):
        cid, a, b = self.start_load("load", 100, LOAD_RATE, LOAD_RATE * 4, calls=LOAD_CALLS)
        prefix = cid.split("%u")[0]
        a.wait(timeout=LOAD_CALLS / LOAD_RATE * 4 + 60)
        b.wait(timeout=60)
        done = completed(a)
        self.assertEqual(len(done), LOAD_CALLS)

        def listed():
            return [c for c in self.cdrs(ext="100") if c["call_id"].startswith(prefix)]
        self.wait_for(lambda: len(listed()) >= LOAD_CALLS, 10)
        mine = listed()
        self.assertEqual(len(mine), LOAD_CALLS)
        self.assertEqual({c["call_id"] for c in mine}, done)
        self.assertEqual({(c["disposition"], c["hangup_by"], c["interrupted"]) for c in mine},
                         {("ANSWERED", "caller", False)})
        # and every call's trace has its 16 messages (more when something was resent)
        rows = self.d.db_query(
            "SELECT call_id, sum(retransmission = 0) FROM trace_messages "
            "WHERE call_id LIKE ? GROUP BY call_id", (prefix + "%",))
        self.assertEqual(len(rows), LOAD_CALLS)
        self.assertEqual({n for _, n in rows}, {16}, rows[:5])


class Sigterm(records.RecordsTest):

    def test_sigterm_under_load_loses_nothing(self):
        # 2 s calls at 20 per second: some 40 are up at any time
        cid, a, b = self.start_load("sigterm", 2000, 20, 200)
        prefix = cid.split("%u")[0]
        try:
            time.sleep(5)
            self.d.stop()  # SIGTERM; exit status 0 and no sanitizer report
        finally:
            a.kill()
            b.kill()
        done = completed(a)
        self.assertGreater(len(done), 20, "too few calls completed before the stop")
        # the records as the database holds them after the stop; nothing left open
        rows = self.d.db_query(
            "SELECT call_id, disposition, hangup_by, interrupted, open, answer_us, end_us "
            "FROM cdrs WHERE call_id LIKE ?", (prefix + "%",))
        by_id = {}
        for r in rows:
            self.assertNotIn(r[0], by_id, "two records of one call")
            by_id[r[0]] = r
        self.assertEqual([r for r in rows if r[4]], [], "records left open")
        missing = done - set(by_id)
        self.assertEqual(missing, set(), "completed calls without a record")
        for call_id in done:
            self.assertEqual(by_id[call_id][1:4], ("ANSWERED", "caller", 0), call_id)
        up = [r for r in rows if r[0] not in done]
        self.assertTrue(up, "no call was in flight at the stop")
        for r in up:
            if r[1] == "ANSWERED":
                # the BYE never came: closed at the stop, marked interrupted
                self.assertEqual((r[2], r[3]), ("sipbx", 1), r)
                self.assertIsNotNone(r[5])
                self.assertGreaterEqual(r[6], r[5])
            else:
                self.assertEqual(r[2], "sipbx", r)  # ringing at the stop
        # and the next start finds nothing to repair
        self.__class__.d = records.Daemon(dir=self.d.dir, sip_port=self.d.sip_port,
                                          http_port=self.d.http_port)
        listed = [c for c in self.cdrs(ext="100") if c["call_id"].startswith(prefix)]
        self.assertEqual(len(listed), len(rows))
        self.assertNotIn("closed as interrupted", self.d.log())


class Kill9(records.RecordsTest):

    def heartbeat_us(self):
        """The writer's last heartbeat (0 before the first)."""
        rows = self.d.db_query("SELECT value FROM settings WHERE key = 'heartbeat_us'")
        return int(rows[0][0]) if rows else 0

    def test_kill9_during_answered_call(self):
        cid = new_call_id("kill9")
        call_id = cid.replace("%u", "1")
        b = callee(self, "uas_answer.xml", "101")
        a = caller(self, "uac_answer.xml", "101", cid, hold_ms=30000)
        try:
            rows = self.wait_for(lambda: self.d.db_query(
                "SELECT answer_us FROM cdrs WHERE call_id = ? AND open = 1", (call_id,)), 10,
                "the answered call was not journaled")
            # a heartbeat a second or more after the answer, so the end lies after it (and
            # billsec is 1 or more)
            answer_us = rows[0][0]
            self.wait_for(lambda: self.heartbeat_us() >= answer_us + 1000000, 15,
                          "no heartbeat a second after the answer")
            killed = time.time()
            self.d.kill9()
        finally:
            a.kill()
            b.kill()
        self.__class__.d = records.Daemon(dir=self.d.dir, sip_port=self.d.sip_port,
                                          http_port=self.d.http_port)
        self.assertIn("1 call record(s) left open by the previous run closed as interrupted",
                      self.d.log())
        c = self.cdr(call_id)
        self.assertIs(c["interrupted"], True)
        self.assertEqual((c["disposition"], c["status"], c["hangup_by"], c["answered_by"]),
                         ("ANSWERED", 200, "sipbx", "101"))
        self.assertIsNotNone(c["start"])
        self.assertIsNotNone(c["answer"])
        self.assertIsNotNone(c["end"])
        self.assertLessEqual(c["start_us"], c["answer_us"])
        # ended at the last heartbeat: after the answer, at most 5 s before the kill
        self.assertGreater(c["end_us"], c["answer_us"])
        self.assertLessEqual(c["end_us"], killed * 1e6)
        self.assertGreaterEqual(c["end_us"], killed * 1e6 - 6.5e6)  # 5 s, and some slack
        self.assertEqual(c["billsec"], (c["end_us"] - c["answer_us"]) // 1000000)
        self.assertGreaterEqual(c["billsec"], 1)


if __name__ == "__main__":
    records.main()
