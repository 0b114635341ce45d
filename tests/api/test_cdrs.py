"""api_cdrs: the call record list as the dashboard pages it at office scale (sort by every
column, either way, through cursors; search by Call-ID, name or extension; a total for the
filter) and the per-extension statistics of GET /api/v1/cdrs/stats (24 h, 7 days, 30 days;
answer rate, average talk time). Records are written straight into the database."""

import time
import urllib.parse

import apitest
from apitest import DaemonTest

S = 1000000
DISPOSITIONS = ["ANSWERED", "BUSY", "NO ANSWER", "CANCELLED", "FAILED"]


def insert(d, call_id, start_us, caller, dialled, disposition="ANSWERED", name="",
           answered_by=None, duration=10, billsec=None, open_=0):
    answered = disposition == "ANSWERED"
    if billsec is None:
        billsec = duration - 2 if answered else 0
    d.db_query(
        "INSERT INTO cdrs (call_id, caller, caller_name, dialled, answered_by, start_us, "
        "answer_us, end_us, duration, billsec, disposition, status, hangup_by, open) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (call_id, caller, name, dialled,
         answered_by if answered_by is not None else (dialled if answered else ""),
         start_us, start_us + 2 * S if answered else None,
         None if open_ else start_us + duration * S, duration, billsec, disposition,
         200 if answered else 486, "caller", open_))


class Lists(DaemonTest):
    """40 records in 2025 (far from now): callers, dialled numbers, durations and talk
    times that repeat, so that every order has ties to continue through."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.create_user("100", "secret100", display_name="Alice Smith")
        cls.create_user("101", "secret101", display_name="Bob 100%_real")
        base = 1735689600 * S  # 2025-01-01
        cls.rows = []
        for i in range(40):
            row = dict(call_id="rec-%02d@%s" % (i, "lists.test" if i % 3 else "other.test"),
                       start_us=base + (i // 2) * 60 * S,  # two records per start time
                       caller=["100", "102", "103"][i % 3], dialled=["101", "104"][i % 2],
                       disposition=DISPOSITIONS[i % 5], name=["", "Carol", "dave"][i % 3],
                       duration=[5, 30, 5, 12][i % 4])
            insert(cls.d, **row)
            row["id"] = cls.d.db_query("SELECT max(id) FROM cdrs")[0][0]
            row["billsec"] = row["duration"] - 2 if row["disposition"] == "ANSWERED" else 0
            cls.rows.append(row)
        insert(cls.d, "rec-open@lists.test", base, "100", "101", open_=1)

    def walk(self, limit, **params):
        """Every record of the list in pages of limit; returns their Call-IDs."""
        params.update(since="2025-01-01", until="2025-01-02", limit=limit)
        seen, cursor = [], None
        while True:
            q = dict(params, **({"cursor": cursor} if cursor else {}))
            r = self.api("GET", "/api/v1/cdrs?" + urllib.parse.urlencode(q))
            self.assertEqual(r.status, 200, r)
            self.assertLessEqual(len(r.json["items"]), limit)
            seen += [c["call_id"] for c in r.json["items"]]
            cursor = r.json["next_cursor"]
            if not cursor:
                return seen

    def want(self, key, desc, pred=lambda r: True):
        rows = [r for r in self.rows if pred(r)]
        rows.sort(key=lambda r: (key(r), r["start_us"], r["id"]), reverse=desc)
        return [r["call_id"] for r in rows]

    def test_sort_every_column_both_ways(self):
        keys = {"start": lambda r: 0, "duration": lambda r: r["duration"],
                "talk": lambda r: r["billsec"], "caller": lambda r: r["caller"],
                "dialled": lambda r: r["dialled"], "disposition": lambda r: r["disposition"]}
        for name, key in keys.items():
            for desc in (False, True):
                want = self.want(key, desc)
                for limit in (1, 3, 7, 100):
                    with self.subTest(sort=name, desc=desc, limit=limit):
                        got = self.walk(limit, sort=("-" if desc else "") + name)
                        self.assertEqual(got, want)
        # the default is newest first, and -start is the same order with the same cursors
        self.assertEqual(self.walk(4), self.want(keys["start"], True))
        r1 = self.api("GET", "/api/v1/cdrs?since=2025-01-01&limit=5")
        r2 = self.api("GET", "/api/v1/cdrs?since=2025-01-01&limit=5&sort=-start")
        self.assertEqual(r1.json, r2.json)
        # a filter with a sort
        self.assertEqual(self.walk(2, sort="-duration", ext="102"),
                         self.want(keys["duration"], True,
                                   lambda r: "102" in (r["caller"], r["dialled"])))

    def test_search_and_total(self):
        def ids(**p):
            return self.walk(6, **p)

        # the start of a Call-ID (the whole of it too)
        self.assertEqual(ids(q="rec-1"), self.want(lambda r: 0, True,
                                                   lambda r: r["call_id"].startswith("rec-1")))
        self.assertEqual(ids(q="rec-07@lists.test"), ["rec-07@lists.test"])
        # not a Call-ID's middle
        self.assertEqual(ids(q="lists.test"), [])
        # the caller's name, any case
        self.assertEqual(ids(q="CAR"), self.want(lambda r: 0, True,
                                                 lambda r: r["name"] == "Carol"))
        # an account's name: calls it made (100: Alice) or was dialled on (101: Bob)
        self.assertEqual(ids(q="smith"), self.want(lambda r: 0, True,
                                                   lambda r: r["caller"] == "100"))
        self.assertEqual(ids(q="bob"), self.want(lambda r: 0, True,
                                                 lambda r: r["dialled"] == "101"))
        # % and _ are themselves, not wildcards
        self.assertEqual(ids(q="100%_"), self.want(lambda r: 0, True,
                                                   lambda r: r["dialled"] == "101"))
        self.assertEqual(ids(q="a%e"), [])
        # an extension
        self.assertEqual(ids(q="104"), self.want(lambda r: 0, True,
                                                 lambda r: r["dialled"] == "104"))
        # with other filters and another order
        self.assertEqual(ids(q="dave", disposition="answered", sort="talk"),
                         self.want(lambda r: r["billsec"], False,
                                   lambda r: r["name"] == "dave" and
                                   r["disposition"] == "ANSWERED"))

        # a total for the filter, on every page that asks
        def page(**p):
            p.setdefault("since", "2025-01-01")
            r = self.api("GET", "/api/v1/cdrs?" + urllib.parse.urlencode(p))
            self.assertEqual(r.status, 200, r)
            return r.json

        self.assertEqual(page(count="true", limit=3)["total"], 40)  # not the open record
        self.assertNotIn("total", page(limit=3))
        self.assertNotIn("total", page(limit=3, count="false"))
        self.assertEqual(page(count="true", q="car", limit=3)["total"], 13)
        self.assertEqual(page(count="true", disposition="BUSY", ext="100")["total"],
                         len([r for r in self.rows if r["disposition"] == "BUSY" and
                              r["caller"] == "100"]))
        first = page(count="true", limit=3, sort="caller")
        second = page(count="true", limit=3, sort="caller", cursor=first["next_cursor"])
        self.assertEqual(second["total"], 40)
        self.assertEqual(page(count="true", q="nobody")["total"], 0)
        # the CSV export takes the search too
        r = self.api("GET", "/api/v1/cdrs.csv?since=2025-01-01&q=dave")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body.decode().count("\r\n"), 1 + 13)

    def test_bad_parameters(self):
        r = self.api("GET", "/api/v1/cdrs?limit=2&sort=duration")
        cursor = r.json["next_cursor"]
        default = self.api("GET", "/api/v1/cdrs?limit=2").json["next_cursor"]
        for query, name in [("sort=length", "sort"), ("sort=--start", "sort"),
                            ("sort=Start", "sort"), ("count=yes", "count"),
                            ("q=" + "x" * 200, "q"),
                            ("sort=-duration&cursor=" + cursor, "cursor"),
                            ("sort=talk&cursor=" + cursor, "cursor"),
                            ("cursor=" + cursor, "cursor"),
                            ("sort=duration&cursor=" + default, "cursor")]:
            self.assertError(self.api("GET", "/api/v1/cdrs?" + query), 400, "invalid_parameter",
                             name + ":")
        self.assertEqual(self.api("GET", "/api/v1/cdrs?sort=duration&cursor=" + cursor).status,
                         200)


class Stats(DaemonTest):
    """Records of the last 30 days (relative to now), per extension."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.create_user("200", "secret200", display_name="Ann")
        cls.create_user("201", "secret201", display_name="Ben")
        now = int(time.time()) * S
        hour, day = 3600 * S, 86400 * S
        n = 0

        def rec(ago, caller, dialled, disposition, duration=10, answered_by=None, open_=0):
            nonlocal n
            n += 1
            insert(cls.d, "st-%d@stats.test" % n, now - ago, caller, dialled, disposition,
                   answered_by=answered_by, duration=duration, open_=open_)

        # the last hour: 200 calls 201 twice (one answered, 60 s of talk; one busy),
        # 201 calls 200 once (answered, 20 s)
        rec(hour // 2, "200", "201", "ANSWERED", duration=62)
        rec(hour // 3, "200", "201", "BUSY")
        rec(hour // 4, "201", "200", "ANSWERED", duration=22)
        # three days ago: 200 calls 201, forwarded to 202, which answers (100 s)
        rec(3 * day, "200", "201", "ANSWERED", duration=102, answered_by="202")
        # twenty days ago: 201 calls 203, not answered
        rec(20 * day, "201", "203", "NO ANSWER")
        # forty days ago: outside every period
        rec(40 * day, "200", "201", "ANSWERED", duration=1000)
        # a call up now: never counted
        rec(60 * S, "200", "201", "ANSWERED", open_=1)

    def stats(self, **p):
        r = self.api("GET", "/api/v1/cdrs/stats?" + urllib.parse.urlencode(p))
        self.assertEqual(r.status, 200, r)
        return r.json

    def by_ext(self, s):
        return {i["extension"]: i for i in s["items"]}

    def test_periods(self):
        s = self.stats()  # the last 24 hours
        self.assertEqual(s["totals"], {
            "calls": 3, "answered": 2, "answer_rate": 0.6667, "talk_seconds": 80,
            "average_talk_seconds": 40.0,
            "dispositions": {"ANSWERED": 2, "BUSY": 1, "NO ANSWER": 0, "CANCELLED": 0,
                             "FAILED": 0}})
        e = self.by_ext(s)
        self.assertEqual(sorted(e), ["200", "201"])
        self.assertEqual(e["200"], {
            "extension": "200", "display_name": "Ann",
            "placed": {"calls": 2, "answered": 1, "talk_seconds": 60},
            "received": {"calls": 1, "answered": 1, "talk_seconds": 20},
            "answer_rate": 1.0, "average_talk_seconds": 40.0})
        self.assertEqual(e["201"]["placed"], {"calls": 1, "answered": 1, "talk_seconds": 20})
        self.assertEqual(e["201"]["received"], {"calls": 2, "answered": 1, "talk_seconds": 60})
        self.assertEqual(e["201"]["answer_rate"], 0.5)
        day = self.stats(period="24h")
        self.assertEqual((day["totals"], day["items"]), (s["totals"], s["items"]))

        s = self.stats(period="7d")
        self.assertEqual(s["totals"]["calls"], 4)
        self.assertEqual(s["totals"]["talk_seconds"], 180)
        self.assertEqual(s["totals"]["average_talk_seconds"], 60.0)
        e = self.by_ext(s)
        # the forwarded call: received by 201 (not answered by it) and by 202, who answered
        self.assertEqual(e["201"]["received"], {"calls": 3, "answered": 1, "talk_seconds": 60})
        self.assertEqual(e["201"]["answer_rate"], 0.3333)
        self.assertEqual(e["202"], {
            "extension": "202", "display_name": "",
            "placed": {"calls": 0, "answered": 0, "talk_seconds": 0},
            "received": {"calls": 1, "answered": 1, "talk_seconds": 100},
            "answer_rate": 1.0, "average_talk_seconds": 100.0})
        self.assertEqual(e["200"]["placed"], {"calls": 3, "answered": 2, "talk_seconds": 160})

        s = self.stats(period="30d")
        self.assertEqual(s["totals"]["calls"], 5)
        self.assertEqual(s["totals"]["dispositions"]["NO ANSWER"], 1)
        e = self.by_ext(s)
        self.assertEqual(e["203"]["received"], {"calls": 1, "answered": 0, "talk_seconds": 0})
        self.assertEqual(e["203"]["answer_rate"], 0.0)
        self.assertIsNone(e["203"]["average_talk_seconds"])
        self.assertEqual(e["200"]["placed"]["calls"], 3)  # not the one of 40 days ago

    def test_one_extension_and_a_range(self):
        s = self.stats(period="30d", ext="201")
        self.assertEqual(s["ext"], "201")
        self.assertEqual([i["extension"] for i in s["items"]], ["201"])
        self.assertEqual(s["items"][0]["placed"], {"calls": 2, "answered": 1, "talk_seconds": 20})
        self.assertEqual(s["items"][0]["received"]["calls"], 3)
        # the totals are those of the calls 201 took part in
        self.assertEqual(s["totals"]["calls"], 5)
        s = self.stats(period="30d", ext="999")
        self.assertEqual(s["items"], [])
        self.assertEqual(s["totals"]["calls"], 0)
        self.assertIsNone(s["totals"]["answer_rate"])
        self.assertIsNone(s["totals"]["average_talk_seconds"])
        # an explicit range: everything, the old record included
        s = self.stats(since="2000-01-01")
        self.assertEqual(s["totals"]["calls"], 6)
        self.assertEqual(s["since"], "2000-01-01T00:00:00.000000Z")

    def test_bad_parameters(self):
        for query, name in [("period=1y", "period"), ("period=", None),
                            ("period=7d&since=2025-01-01", "period"), ("since=x", "since"),
                            ("since=2025-01-02&until=2025-01-01", "until"), ("ext=a%20b", "ext")]:
            r = self.api("GET", "/api/v1/cdrs/stats?" + query)
            if name is None:
                self.assertEqual(r.status, 200, r)  # an empty parameter is none
            else:
                self.assertError(r, 400, "invalid_parameter", name + ":")
        self.assertError(self.d.request("GET", "/api/v1/cdrs/stats"), 401, "unauthorized")


if __name__ == "__main__":
    apitest.main()
