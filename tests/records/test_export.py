"""The read side of call records and traces: GET /api/v1/cdrs (filters, pages, 400s),
/cdrs.csv (columns, RFC 4180 quoting, formula defusing, same filters), /cdrs/summary (counts
per bucket and disposition), /traces/{call_id} (the Call-ID percent-decoded from the path)
and /traces/{call_id}.pcap read back with tshark: a classic pcap for calls over UDP and TCP,
a pcapng file for calls with TLS legs (raw phones over TLS), those marked as decrypted.

    python3 test_export.py --sipbx PATH/TO/sipbx
"""

import calendar
import csv
import io
import ipaddress
import os
import sqlite3
import struct
import subprocess
import urllib.parse

import records
from sipbxtest.net import HOST, free_port
from sipbxtest.phone import Phone

# Synthetic records live in January 2025, far from the real calls of the tests (now).
JAN = calendar.timegm((2025, 1, 1, 0, 0, 0)) * 1000000
HOUR = 3600 * 1000000

CSV_HEADER = ("accountcode,src,dst,dcontext,clid,channel,dstchannel,lastapp,lastdata,start,"
              "answer,end,duration,billsec,disposition,amaflags,uniqueid,userfield,id,"
              "caller_name,answered_by,forwards,status,phrase,hangup_by,user_agent,interrupted,"
              "start_us,answer_us,end_us,linked_call,link")
EVIL = 'Evil, "Guy" <img src=x onerror=alert(1)>'


def insert_cdr(d, call_id, start_us, disposition="ANSWERED", caller="100", dialled="101",
               name="", answered_by=None, status=None, open_=0, forwards="[]"):
    answered = disposition == "ANSWERED"
    answer_us = start_us + 2000000 if answered else None
    end_us = None if open_ else start_us + 10000000
    d.db_query(
        "INSERT INTO cdrs (call_id, caller, caller_name, dialled, answered_by, forwards, "
        "start_us, answer_us, end_us, duration, billsec, disposition, status, phrase, "
        "hangup_by, open) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (call_id, caller, name, dialled,
         answered_by if answered_by is not None else (dialled if answered else ""), forwards,
         start_us, answer_us, end_us, 0 if open_ else 10, 8 if answered and not open_ else 0,
         disposition, status or {"ANSWERED": 200, "BUSY": 486, "NO ANSWER": 408,
                                 "CANCELLED": 487, "FAILED": 404}[disposition],
         "", "caller" if answered else "callee", open_))


class Export(records.RecordsTest):

    @classmethod
    def setUpClass(cls):
        cls.tls_port = free_port()
        cls.daemon_args = ("--sip-tls", "%s:%d" % (HOST, cls.tls_port))
        super().setUpClass()
        # 60 records, one every 20 minutes from 2025-01-01 00:00 UTC, dispositions in turn,
        # callers 100 and 102 alternating, all dialling 101 except every 7th (103).
        cls.synthetic = []
        disps = ["ANSWERED", "BUSY", "NO ANSWER", "CANCELLED", "FAILED"]
        for i in range(60):
            row = dict(call_id="syn-%02d@export.test" % i, start_us=JAN + i * 20 * 60 * 1000000,
                       disposition=disps[i % 5], caller="100" if i % 2 == 0 else "102",
                       dialled="103" if i % 7 == 0 else "101")
            insert_cdr(cls.d, **row)
            cls.synthetic.append(row)
        # one still open (a call up now): never listed
        insert_cdr(cls.d, "syn-open@export.test", JAN + 30 * 60 * 1000000, open_=1)

    def in_jan(self, **params):
        params.setdefault("since", "2025-01-01")
        params.setdefault("until", "2025-01-02")
        return self.cdrs(**params)

    # ---- list ----

    def test_list_newest_first_in_pages(self):
        seen, cursor, pages = [], None, 0
        while True:
            q = {"since": "2025-01-01", "until": "2025-01-02", "limit": 7}
            if cursor:
                q["cursor"] = cursor
            page = self.get_json("/api/v1/cdrs?" + urllib.parse.urlencode(q))
            self.assertEqual(sorted(page), ["items", "next_cursor"])
            self.assertLessEqual(len(page["items"]), 7)
            seen += page["items"]
            pages += 1
            cursor = page["next_cursor"]
            if not cursor:
                break
        self.assertEqual(pages, 9)  # 60 = 8 * 7 + 4
        self.assertEqual([c["call_id"] for c in seen],
                         [r["call_id"] for r in reversed(self.synthetic)])
        c = seen[-1]
        self.assertEqual(c["start"], "2025-01-01T00:00:00.000000Z")
        self.assertEqual(c["start_us"], JAN)
        self.assertEqual(c["answer"], "2025-01-01T00:00:02.000000Z")
        self.assertEqual(c["end_us"], JAN + 10000000)
        self.assertEqual(sorted(c), sorted([
            "id", "call_id", "caller", "caller_name", "dialled", "answered_by", "forwards",
            "start", "start_us", "answer", "answer_us", "end", "end_us", "duration", "billsec",
            "disposition", "status", "phrase", "hangup_by", "user_agent", "interrupted",
            "linked_call", "link"]))
        busy = seen[-2]
        self.assertIsNone(busy["answer"])
        self.assertIsNone(busy["answer_us"])

    def test_filters(self):
        def ids(**p):
            return [c["call_id"] for c in self.in_jan(**p)]

        def want(pred):
            return [r["call_id"] for r in reversed(self.synthetic) if pred(r)]

        self.assertEqual(ids(ext="102"), want(lambda r: r["caller"] == "102"))
        self.assertEqual(ids(ext="103"), want(lambda r: r["dialled"] == "103"))
        self.assertEqual(ids(disposition="busy"), want(lambda r: r["disposition"] == "BUSY"))
        for spelling in ("NO ANSWER", "NO_ANSWER", "no_answer", "No Answer"):
            self.assertEqual(ids(disposition=spelling),
                             want(lambda r: r["disposition"] == "NO ANSWER"), spelling)
        self.assertEqual(ids(ext="100", disposition="ANSWERED"),
                         want(lambda r: r["caller"] == "100" and r["disposition"] == "ANSWERED"))
        # answered_by counts as the extension too
        self.assertEqual(ids(ext="101", disposition="answered"),
                         want(lambda r: r["dialled"] == "101" and r["disposition"] == "ANSWERED"))
        # times: dates are midnight UTC; RFC 3339 with Z or an offset; until is exclusive
        self.assertEqual(ids(since="2025-01-01T10:00:00Z", until="2025-01-01T12:00:00Z"),
                         want(lambda r: JAN + 10 * HOUR <= r["start_us"] < JAN + 12 * HOUR))
        self.assertEqual(ids(since="2025-01-01T11:00:00+01:00", until="2025-01-01T13:00:00+01:00"),
                         want(lambda r: JAN + 10 * HOUR <= r["start_us"] < JAN + 12 * HOUR))
        self.assertEqual(ids(since="2025-01-01T05:30:00-04:30", until="2025-01-01T10:20:00.5Z"),
                         want(lambda r: JAN + 10 * HOUR <= r["start_us"] <= JAN + 10 * HOUR +
                              20 * 60 * 1000000))
        # a '+' left unescaped in the query string arrives as a space: still an offset
        r = self.api("GET", "/api/v1/cdrs?since=2025-01-01T11:00:00+01:00&"
                            "until=2025-01-01T13:00:00+01:00")
        self.assertEqual([c["call_id"] for c in r.json["items"]],
                         want(lambda r: JAN + 10 * HOUR <= r["start_us"] < JAN + 12 * HOUR))
        self.assertEqual(ids(since="2025-01-02", until="2025-01-03"), [])
        self.assertEqual(len(ids()), 60)  # the open record is not listed
        # empty parameters are no filter (what a form sends)
        r = self.api("GET", "/api/v1/cdrs?since=2025-01-01&until=2025-01-02&ext=&disposition="
                            "&limit=100&cursor=")
        self.assertEqual(len(r.json["items"]), 60)

    def test_bad_parameters_are_400_naming_them(self):
        bad = [
            ("since=2025-13-01", "since"), ("since=2025-02-30", "since"),
            ("until=yesterday", "until"), ("since=2025-01-01T10:00:00", "since"),
            ("since=2025-01-01T25:00:00Z", "since"), ("until=2025-01-01T10:00Z", "until"),
            ("since=1969-12-31", "since"), ("since=2025-01-01T10:00:00+1:00", "since"),
            ("since=2025-01-02&until=2025-01-01", "until"),
            ("disposition=ANSWER", "disposition"), ("disposition=NOANSWER", "disposition"),
            ("disposition=%27%3B--", "disposition"), ("ext=1%2F2", "ext"),
            ("ext=" + "9" * 40, "ext"), ("limit=0", "limit"), ("limit=501", "limit"),
            ("limit=ten", "limit"), ("cursor=zz", "cursor"), ("cursor=3132", "cursor"),
        ]
        for query, name in bad:
            for path in ("/api/v1/cdrs", "/api/v1/cdrs.csv"):
                if path.endswith("csv") and name in ("limit", "cursor"):
                    continue  # the export takes no page parameters
                r = self.api("GET", path + "?" + query)
                self.assertError(r, 400, "invalid_parameter", name + ":")
        for query, name in (("bucket=59", "bucket"), ("bucket=x", "bucket"),
                            ("since=2025-01-01&until=2026-01-01&bucket=60", "bucket"),
                            ("since=2025-01-01&until=2024-01-01", "until"),
                            ("since=nope", "since"), ("ext=a%20b", "ext")):
            r = self.api("GET", "/api/v1/cdrs/summary?" + query)
            self.assertError(r, 400, "invalid_parameter", name + ":")

    def test_needs_credentials(self):
        for path in ("/api/v1/cdrs", "/api/v1/cdrs.csv", "/api/v1/cdrs/summary",
                     "/api/v1/traces/x@y", "/api/v1/traces/x@y.pcap"):
            r = self.d.request("GET", path)
            self.assertError(r, 401, "unauthorized")

    # ---- CSV ----

    def csv_rows(self, query=""):
        r = self.api("GET", "/api/v1/cdrs.csv" + query)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "text/csv; charset=utf-8; header=present")
        self.assertRegex(r.header("Content-Disposition"),
                         r'^attachment; filename="sipbx-cdrs-\d{8}T\d{6}Z\.csv"$')
        self.assertEqual(r.header("Transfer-Encoding"), "chunked")  # streamed
        text = r.body.decode()
        self.assertTrue(text.startswith(CSV_HEADER + "\r\n"))
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        return text, rows

    def test_csv_columns(self):
        text, rows = self.csv_rows("?since=2025-01-01&until=2025-01-02")
        self.assertEqual(len(rows), 60)
        self.assertTrue(text.endswith("\r\n"))
        first = rows[-1]  # newest first, like the list
        self.assertEqual(first["uniqueid"], "syn-00@export.test")
        self.assertEqual(first["src"], "100")
        self.assertEqual(first["dst"], "103")
        self.assertEqual(first["accountcode"], "")
        self.assertEqual(first["dcontext"], records.DOMAIN)
        self.assertEqual(first["clid"], "<100>")
        self.assertEqual(first["channel"], "SIP/100-%08x" % int(first["id"]))
        self.assertEqual(first["dstchannel"], "SIP/103-%08x" % int(first["id"]))
        self.assertEqual(first["lastapp"], "Dial")
        self.assertEqual(first["lastdata"], "SIP/103")
        self.assertEqual(first["start"], "2025-01-01 00:00:00")
        self.assertEqual(first["answer"], "2025-01-01 00:00:02")
        self.assertEqual(first["end"], "2025-01-01 00:00:10")
        self.assertEqual((first["duration"], first["billsec"]), ("10", "8"))
        self.assertEqual(first["disposition"], "ANSWERED")
        self.assertEqual(first["amaflags"], "DOCUMENTATION")
        self.assertEqual(first["forwards"], "[]")
        self.assertEqual(first["interrupted"], "0")
        self.assertEqual(first["start_us"], str(JAN))
        busy = rows[-2]
        self.assertEqual((busy["answer"], busy["answer_us"], busy["status"]), ("", "", "486"))
        # the same filters as the list, giving the same records in the same order
        for q in ({"ext": "102"}, {"disposition": "no_answer"}, {"ext": "103", "disposition":
                                                                 "answered"}):
            q.update(since="2025-01-01", until="2025-01-02")
            _, rows = self.csv_rows("?" + urllib.parse.urlencode(q))
            self.assertEqual([r["uniqueid"] for r in rows],
                             [c["call_id"] for c in self.cdrs(**q)], q)

    def test_csv_quoting_and_formulas(self):
        names = {
            "csv-1@export.test": '=HYPERLINK("http://evil.example/","click")',
            "csv-2@export.test": "+1+1",
            "csv-3@export.test": "-2+3",
            "csv-4@export.test": "@SUM(A1:A9)",
            "csv-5@export.test": "\tTab first",
            "csv-6@export.test": 'two\r\nlines, "quoted", and a comma',
            "csv-7@export.test": "plain ünïcödé name",
        }
        for i, (cid, name) in enumerate(sorted(names.items())):
            insert_cdr(self.d, cid, JAN + 48 * HOUR + i * 1000000, name=name,
                       forwards='[{"from":"101","to":"=2+2","reason":"user-busy"}]',
                       disposition="BUSY")
        _, rows = self.csv_rows("?since=2025-01-03&until=2025-01-04")
        got = {r["uniqueid"]: r for r in rows}
        self.assertEqual(sorted(got), sorted(names))
        for cid, name in names.items():
            want = "'" + name if name[0] in "=+-@\t" else name
            self.assertEqual(got[cid]["caller_name"], want, cid)
            # clid starts with its quote, so it needs no defusing; the name is data inside
            self.assertTrue(got[cid]["clid"].startswith('"'), got[cid]["clid"])
            self.assertTrue(got[cid]["clid"].endswith('" <100>'), got[cid]["clid"])
            # the forward target is where the call went last
            self.assertEqual(got[cid]["dstchannel"], "SIP/=2+2-%08x" % int(got[cid]["id"]))
            self.assertEqual(got[cid]["forwards"],
                             '[{"from":"101","to":"=2+2","reason":"user-busy"}]')
        # and the JSON list gives the names as they are
        listed = {c["call_id"]: c["caller_name"]
                  for c in self.cdrs(since="2025-01-03", until="2025-01-04")}
        self.assertEqual(listed, names)

    def test_csv_of_a_real_call_with_a_hostile_display_name(self):
        call_id, _, _ = self.run_call("csv-evil", "uas_answer.xml", "uac_answer.xml",
                                      display='"Evil, \\"Guy\\" <img src=x onerror=alert(1)>"')
        c = self.cdr(call_id)
        self.assertEqual(c["caller_name"], EVIL)
        _, rows = self.csv_rows("?ext=100&disposition=ANSWERED")
        row = next(r for r in rows if r["uniqueid"] == call_id)
        self.assertEqual(row["caller_name"], EVIL)
        self.assertEqual(row["clid"], '"Evil, \\"Guy\\" <img src=x onerror=alert(1)>" <100>')
        self.assertEqual(row["src"], "100")
        self.assertEqual(row["dst"], "101")
        self.assertEqual(row["dstchannel"], "SIP/101-%08x" % c["id"])
        self.assertEqual(row["user_agent"], "sipbx-records-test")
        self.assertEqual(int(row["start_us"]), c["start_us"])

    def test_csv_streams_many_records(self):
        rows = [(("bulk-%05d@export.test" % i), JAN + 72 * HOUR + i * 1000) for i in range(3000)]
        con = sqlite3.connect(self.d.db, timeout=10)
        with con:
            con.executemany(
                "INSERT INTO cdrs (call_id, caller, dialled, start_us, end_us, disposition, "
                "status) VALUES (?, '100', '101', ?, ? + 1000, 'FAILED', 404)",
                [(c, s, s) for c, s in rows])
        con.close()
        _, got = self.csv_rows("?since=2025-01-04&until=2025-01-05")
        self.assertEqual([r["uniqueid"] for r in got], [c for c, _ in reversed(rows)])

    # ---- summary ----

    def test_summary(self):
        s = self.get_json("/api/v1/cdrs/summary?since=2025-01-01&until=2025-01-02&bucket=3600")
        self.assertEqual(s["bucket"], 3600)
        self.assertEqual(s["since"], "2025-01-01T00:00:00.000000Z")
        self.assertEqual(s["until"], "2025-01-02T00:00:00.000000Z")
        self.assertEqual(len(s["items"]), 24)
        keys = ["ANSWERED", "BUSY", "NO ANSWER", "CANCELLED", "FAILED"]
        for h, item in enumerate(s["items"]):
            self.assertEqual(item["start_us"], JAN + h * HOUR)
            self.assertEqual(item["start"], "2025-01-01T%02d:00:00.000000Z" % h)
            want = {k: 0 for k in keys}
            for r in self.synthetic:
                if JAN + h * HOUR <= r["start_us"] < JAN + (h + 1) * HOUR:
                    want[r["disposition"]] += 1
            self.assertEqual({k: item[k] for k in keys}, want, item)
            self.assertEqual(item["total"], sum(want.values()))
        # buckets of 6 h, the range starting inside a bucket; the ext filter
        s = self.get_json("/api/v1/cdrs/summary?since=2025-01-01T05:00:00Z"
                          "&until=2025-01-01T13:00:00Z&bucket=21600&ext=102")
        self.assertEqual([i["start"] for i in s["items"]],
                         ["2025-01-01T00:00:00.000000Z", "2025-01-01T06:00:00.000000Z",
                          "2025-01-01T12:00:00.000000Z"])
        total = sum(i["total"] for i in s["items"])
        self.assertEqual(total, len([r for r in self.synthetic if r["caller"] == "102" and
                                     JAN + 5 * HOUR <= r["start_us"] < JAN + 13 * HOUR]))
        # no range: the last 24 hours, hourly
        s = self.get_json("/api/v1/cdrs/summary")
        self.assertEqual(s["bucket"], 3600)
        self.assertIn(len(s["items"]), (24, 25))

    # ---- traces ----

    def test_trace_call_id_from_the_path(self):
        odd = ["a/b%c@d e?f#g;h=\"i\"", "ends-with.pcap", "plain@host"]
        for i, cid in enumerate(odd):
            self.d.db_query(
                "INSERT INTO trace_messages (call_id, time_us, direction, transport, local, "
                "remote, first_line, raw) VALUES (?, ?, 'in', 'udp', '127.0.0.1:5060', "
                "'127.0.0.1:5062', 'OPTIONS sip:x SIP/2.0', ?)",
                (cid, JAN + i, "OPTIONS sip:x SIP/2.0\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\n"
                               "Content-Length: 0\r\n\r\n" % cid))
        for cid in odd:
            tr = self.trace(cid, 1)
            self.assertEqual(tr["call_id"], cid)
            m = tr["messages"][0]
            self.assertEqual((m["src"], m["dst"], m["method"], m["cseq"]),
                             ("127.0.0.1:5062", "127.0.0.1:5060", "OPTIONS", "1 OPTIONS"))
        q = urllib.parse.quote
        r = self.api("GET", "/api/v1/traces/" + q(odd[0], safe="") + ".pcap")
        self.assertEqual((r.status, r.header("Content-Type")),
                         (200, "application/vnd.tcpdump.pcap"))
        self.assertEqual(r.header("Content-Disposition"),
                         'attachment; filename="a_b_c_d_e_f_g_h__i_.pcap"')
        # "ends-with.pcap" is a Call-ID of its own: no call "ends-with" exists, so JSON
        r = self.api("GET", "/api/v1/traces/ends-with.pcap")
        self.assertEqual(r.json["call_id"], "ends-with.pcap")
        r = self.api("GET", "/api/v1/traces/ends-with.pcap.pcap")
        self.assertEqual(r.header("Content-Type"), "application/vnd.tcpdump.pcap")

    def test_trace_text_that_is_not_utf8(self):
        cid = "binary@export.test"
        raw = (b"MESSAGE sip:x SIP/2.0\r\nCall-ID: " + cid.encode() +
               b"\r\nContent-Length: 4\r\n\r\n\xff\x00\xc3\xa9")
        con = sqlite3.connect(self.d.db, timeout=10)
        with con:
            con.execute("INSERT INTO trace_messages (call_id, time_us, direction, transport, "
                        "local, remote, first_line, raw) VALUES (?, ?, 'in', 'udp', "
                        "'127.0.0.1:5060', '[::1]:5070', 'MESSAGE sip:x SIP/2.0', "
                        "CAST(? AS TEXT))", (cid, JAN, raw))
        con.close()
        tr = self.trace(cid, 1)
        self.assertTrue(tr["messages"][0]["raw"].endswith("\r\n\r\n\ufffd\ufffd\u00e9"))
        # the pcap keeps the bytes; an IPv6 peer makes it an IPv6 packet (sipbx mapped)
        r = self.api("GET", "/api/v1/traces/" + cid + ".pcap")
        pkts = read_pcap(self, r.body)
        self.assertEqual(len(pkts), 1)
        ip = pkts[0][1]
        self.assertEqual(ip[0] >> 4, 6)
        self.assertEqual(ip[48:], raw)

    def test_pcap_tls_ipv6(self):
        """A TLS message from an IPv6 peer: IPv6 tags in its exported PDU (sipbx's IPv4 end
        mapped), the exact bytes, and tshark dissects it as SIP."""
        cid = "tls-v6@export.test"
        raw = (b"MESSAGE sip:x SIP/2.0\r\nCall-ID: " + cid.encode() +
               b"\r\nCSeq: 1 MESSAGE\r\nContent-Length: 5\r\n\r\nhi\xff\x00!")
        con = sqlite3.connect(self.d.db, timeout=10)
        with con:
            con.execute("INSERT INTO trace_messages (call_id, time_us, direction, transport, "
                        "local, remote, first_line, raw) VALUES (?, ?, 'in', 'tls', "
                        "'127.0.0.1:5061', '[2001:db8::7]:40123', 'MESSAGE sip:x SIP/2.0', "
                        "CAST(? AS TEXT))", (cid, JAN, raw))
        con.close()
        r = self.api("GET", "/api/v1/traces/" + cid + ".pcap")
        self.assertEqual(r.header("Content-Type"), "application/x-pcapng")
        pkts = read_pcapng(self, r.body)
        self.assertEqual([(p[0], p[1], p[3]) for p in pkts], [(JAN, "sipbx-tls", TLS_COMMENT)])
        tags, body = pdu_tags(pkts[0][2])
        self.assertEqual(body, raw)
        self.assertEqual(tags, {12: b"sip\0", 22: ipaddress.ip_address("2001:db8::7").packed,
                                23: ipaddress.ip_address("::ffff:127.0.0.1").packed,
                                24: struct.pack("!I", 2), 25: struct.pack("!I", 40123),
                                26: struct.pack("!I", 5061)})
        if not records.TSHARK:
            self.skipTest("tshark not found")
        path = os.path.join(self.workdir, "v6.pcap")
        with open(path, "wb") as f:
            f.write(r.body)
        out = subprocess.run([records.TSHARK, "-r", path, "-Y", "sip", "-T", "fields",
                              "-e", "sip.Method", "-e", "exported_pdu.ipv6_src"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.stdout.split(), ["MESSAGE", "2001:db8::7"], out.stderr)

    def test_pcap_read_back(self):
        for transport in ("u1", "t1"):
            with self.subTest(transport=transport):
                call_id, _, _ = self.run_call("pcap-" + transport, "uas_answer.xml",
                                              "uac_answer.xml", transport=transport)
                self.cdr(call_id)
                self.check_pcap(call_id, 16)

    def test_pcap_tls(self):
        """Calls with a leg over TLS come as pcapng: the UDP and TCP legs as IP packets on
        one interface, the TLS messages (as sipbx decrypted them) on another as exported
        PDUs for Wireshark's SIP dissector, with their real addresses and ports, each with a
        comment saying so; tshark dissects every message as SIP."""
        for caller_tr, callee_tr in (("tls", "udp"), ("tcp", "tls")):
            with self.subTest(caller=caller_tr, callee=callee_tr):
                for ext in ("100", "101"):  # no device of another test rings as well
                    r = self.api("DELETE", "/api/v1/registrations/" + ext)
                    self.assertIn(r.status, (200, 204), r)
                port = {"tls": self.tls_port}
                a = Phone(port.get(caller_tr, self.d.sip_port), "100", records.PASSWORDS["100"],
                          transport=caller_tr)
                b = Phone(port.get(callee_tr, self.d.sip_port), "101", records.PASSWORDS["101"],
                          transport=callee_tr)
                try:
                    for p in (a, b):
                        self.assertEqual(p.register().status, 200)
                    r, dlg = a.invite("101")
                    self.assertEqual(r.status, 200, r)
                    self.assertEqual(a.in_dialog(dlg, "BYE").status, 200)
                finally:
                    a.close()
                    b.close()
                self.cdr(dlg["call_id"])
                self.check_pcap(dlg["call_id"], 12)

    def check_pcap(self, call_id, count):
        msgs = self.trace(call_id, count)["messages"]  # count, or more if any was resent
        r = self.api("GET", "/api/v1/traces/" + urllib.parse.quote(call_id, safe="") + ".pcap")
        self.assertEqual(r.status, 200, r)
        tls = any(m["transport"] == "tls" for m in msgs)
        if tls:
            self.assertEqual(r.header("Content-Type"), "application/x-pcapng")
            self.assertRegex(r.header("Content-Disposition"), r'filename="[^"]+\.pcapng"$')
            pkts = read_pcapng(self, r.body)
        else:
            self.assertEqual(r.header("Content-Type"), "application/vnd.tcpdump.pcap")
            pkts = [(ts, "sipbx", ip, None) for ts, ip in read_pcap(self, r.body)]
        self.assertEqual(len(pkts), len(msgs))
        next_seq = {}  # TCP: (src, dst) -> where its next segment starts
        for (ts, iface, data, comment), m in zip(pkts, msgs):
            self.assertEqual(ts, m["time_us"])
            if m["transport"] == "tls":
                self.assertEqual((iface, comment), ("sipbx-tls", TLS_COMMENT), m)
                check_pdu(self, data, m)
            else:
                self.assertEqual((iface, comment), ("sipbx", None), m)
                check_ip_packet(self, data, m, next_seq)
        self.assertEqual(bool(next_seq), any(m["transport"] == "tcp" for m in msgs))
        if not records.TSHARK:
            self.skipTest("tshark not found")
        path = os.path.join(self.workdir, "trace.pcap")
        with open(path, "wb") as f:
            f.write(r.body)
        # Every port of the call decoded as SIP: a free port the test happened to get may be
        # one tshark gives to another protocol (its port table beats the SIP heuristics),
        # which dissected a whole TCP leg as something else in one CI run.
        decode = []
        for m in msgs:
            for a in ((m["src"], m["dst"]) if m["transport"] in ("udp", "tcp") else ()):
                rule = "%s.port==%d,sip" % (m["transport"], port_of(a))
                if port_of(a) != self.tls_port and rule not in decode:
                    decode.append(rule)
        out = subprocess.run(
            [records.TSHARK, "-r", path, "-Y", "sip", "-T", "fields", "-E", "separator=|"]
            + [x for rule in decode for x in ("-d", rule)] + [
             "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
             "-o", "tcp.check_checksum:TRUE",
             # sipbx's TLS port taken for TLS, as Wireshark takes 5061: no TLS message is
             # a TCP segment there, so none is lost to the TLS dissector
             "-d", "tcp.port==%d,tls" % self.tls_port,
             "-e", "sip.Method", "-e", "sip.Status-Code", "-e", "frame.time_epoch",
             "-e", "ip.checksum.status", "-e", "udp.checksum.status",
             "-e", "tcp.checksum.status", "-e", "_ws.malformed", "-e", "_ws.expert.severity",
             "-e", "frame.comment", "-e", "frame.interface_name", "-e", "exported_pdu.src_port",
             "-e", "exported_pdu.dst_port", "-e", "exported_pdu.prot_name"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertEqual(len(lines), len(msgs), out.stdout)  # every message dissected as SIP
        for line, m in zip(lines, msgs):
            (method, status, epoch, ipsum, udpsum, tcpsum, malformed, expert, comment, iface,
             sport, dport, dissector) = line.split("|")
            self.assertEqual(method or int(status), m.get("method") or m.get("status"), line)
            self.assertAlmostEqual(float(epoch), m["time_us"] / 1e6, places=5)
            self.assertEqual(malformed, "", line)
            if m["transport"] == "tls":
                # decrypted TLS: marked, on the real ports, handed to the SIP dissector
                self.assertEqual((comment, iface, dissector), (TLS_COMMENT, "sipbx-tls", "sip"),
                                 line)
                self.assertEqual((int(sport), int(dport)),
                                 (port_of(m["src"]), port_of(m["dst"])), line)
                continue
            self.assertEqual((comment, iface, sport), ("", "sipbx" if tls else "", ""), line)
            l4sum = tcpsum if m["transport"] == "tcp" else udpsum
            self.assertEqual((ipsum, l4sum), ("1", "1"), line)  # 1 = Good
            if not m["retransmission"]:  # (a resent message may be flagged as such)
                self.assertEqual(expert, "", "Wireshark's expert info flags the packet: " + line)


TLS_COMMENT = "sipbx: SIP over TLS, decrypted by sipbx"


def port_of(endpoint):
    return int(endpoint.rsplit(":", 1)[1])


def check_ip_packet(test, ip, m, next_seq):
    """ip is message m as it travelled: an IPv4 packet from src to dst with a UDP datagram
    or a TCP segment following the bytes before it in its direction (next_seq)."""
    test.assertEqual(ip[0], 0x45)
    test.assertEqual(struct.unpack("!H", ip[2:4])[0], len(ip))
    test.assertEqual(checksum(ip[:20]), 0, "IPv4 header checksum")
    src = "%d.%d.%d.%d:%d" % (tuple(ip[12:16]) + (struct.unpack("!H", ip[20:22])[0],))
    dst = "%d.%d.%d.%d:%d" % (tuple(ip[16:20]) + (struct.unpack("!H", ip[22:24])[0],))
    test.assertEqual((src, dst), (m["src"], m["dst"]))
    proto = {"udp": 17, "tcp": 6}[m["transport"]]
    test.assertEqual(ip[9], proto, m)
    pseudo = ip[12:20] + struct.pack("!BBH", 0, proto, len(ip) - 20)
    if proto == 17:
        test.assertEqual(struct.unpack("!H", ip[24:26])[0], len(ip) - 20)
        test.assertEqual(checksum(pseudo + ip[20:]), 0, "UDP checksum")
        payload = ip[28:]
    else:
        seq, ack = struct.unpack("!II", ip[24:32])
        test.assertEqual((ip[32], ip[33]), (0x50, 0x18))  # 20-byte header; PSH, ACK
        test.assertEqual(checksum(pseudo + ip[20:]), 0, "TCP checksum")
        payload = ip[40:]
        test.assertEqual(seq, next_seq.get((src, dst), 1), "TCP sequence")
        test.assertEqual(ack, next_seq.get((dst, src), 1), "TCP acknowledgement")
        next_seq[(src, dst)] = seq + len(payload)
    test.assertEqual(payload.decode(), m["raw"])


def pdu_tags(data):
    """The tags of an exported PDU ({tag: value}) and the bytes after them."""
    tags, off = {}, 0
    while True:
        tag, n = struct.unpack("!HH", data[off:off + 4])
        value, off = data[off + 4:off + 4 + n], off + 4 + n
        if tag == 0:
            return tags, data[off:]
        tags[tag] = value


def check_pdu(test, data, m):
    """data is message m as an exported PDU: tags naming the SIP dissector, src and dst
    (IPv4), TCP ports, then the message's bytes."""
    tags, body = pdu_tags(data)
    test.assertEqual(tags.pop(12).rstrip(b"\0"), b"sip")
    ip = lambda b: "%d.%d.%d.%d" % tuple(b)  # noqa: E731
    u32 = lambda b: struct.unpack("!I", b)[0]  # noqa: E731
    src = "%s:%d" % (ip(tags.pop(20)), u32(tags.pop(25)))
    dst = "%s:%d" % (ip(tags.pop(21)), u32(tags.pop(26)))
    test.assertEqual((src, dst), (m["src"], m["dst"]))
    test.assertEqual(u32(tags.pop(24)), 2)  # TCP
    test.assertEqual(tags, {})
    test.assertEqual(body.decode(), m["raw"])


def read_pcap(test, data):
    """(time in microseconds, packet) of each record of a classic pcap of LINKTYPE_RAW."""
    magic, major, minor, _, _, snaplen, linktype = struct.unpack("<IHHiIII", data[:24])
    test.assertEqual((magic, major, minor, linktype), (0xa1b2c3d4, 2, 4, 101))
    out, off = [], 24
    while off < len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[off:off + 16])
        test.assertEqual(incl, orig)
        test.assertLessEqual(incl, snaplen)
        out.append((sec * 1000000 + usec, data[off + 16:off + 16 + incl]))
        off += 16 + incl
    test.assertEqual(off, len(data))
    return out


def read_pcapng(test, data):
    """(time in microseconds, interface name, packet, comment or None) of each Enhanced
    Packet Block of a little-endian pcapng file, its blocks' lengths checked."""
    ifaces, out, off, first = [], [], 0, True
    while off < len(data):
        btype, blen = struct.unpack("<II", data[off:off + 8])
        test.assertEqual(blen % 4, 0)
        test.assertEqual(struct.unpack("<I", data[off + blen - 4:off + blen])[0], blen)
        body = data[off + 8:off + blen - 4]
        if first:
            test.assertEqual(btype, 0x0A0D0D0A)
            test.assertEqual(struct.unpack("<IHH", body[:8]), (0x1A2B3C4D, 1, 0))
            test.assertTrue(options(body[16:]).get(4, b"").startswith(b"sipbx "))
            first = False
        elif btype == 1:  # Interface Description Block
            linktype, _, snaplen = struct.unpack("<HHI", body[:8])
            opts = options(body[8:])
            ifaces.append((opts[2].decode(), linktype, snaplen))
            test.assertEqual(linktype, {"sipbx": 101, "sipbx-tls": 252}[opts[2].decode()])
        else:
            test.assertEqual(btype, 6)  # Enhanced Packet Block
            ifid, hi, lo, incl, orig = struct.unpack("<IIIII", body[:20])
            test.assertEqual(incl, orig)
            test.assertLessEqual(incl, ifaces[ifid][2])
            comment = options(body[20 + (incl + 3) // 4 * 4:]).get(1)
            out.append(((hi << 32) | lo, ifaces[ifid][0], body[20:20 + incl],
                        comment.decode() if comment else None))
        off += blen
    test.assertEqual(off, len(data))
    test.assertEqual(len(set(i[0] for i in ifaces)), len(ifaces), "an interface twice")
    return out


def options(data):
    """The options of a pcapng block: {code: value}, up to the end of options."""
    out, off = {}, 0
    while off + 4 <= len(data):
        code, n = struct.unpack("<HH", data[off:off + 4])
        if code == 0:
            break
        out[code] = data[off + 4:off + 4 + n]
        off += 4 + (n + 3) // 4 * 4
    return out


def checksum(data):
    """RFC 1071 sum; 0 when data includes a right checksum."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


if __name__ == "__main__":
    records.main()
