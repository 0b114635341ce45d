#!/usr/bin/env python3
"""packaging/grafana/sipbx-dashboard.json: valid JSON in the shape Grafana imports (panels
with unique ids on the 24-column grid, every query on the Prometheus data source variable
and the instance variable), and every metric, label and label value its PromQL expressions
use is one a running sipbx exports at /metrics; counters only under rate() or increase(),
gauges never."""

import json
import os
import re

import apitest

DASHBOARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packaging",
                         "grafana", "sipbx-dashboard.json")
SCRAPE_LABELS = {"instance", "job"}  # added by Prometheus, not by sipbx


def exposition(text):
    """({name: type}, {name: [labels dict]}) of a Prometheus text exposition."""
    types, series = {}, {}
    for line in text.splitlines():
        m = re.match(r"^# TYPE (\S+) (\S+)$", line)
        if m:
            types[m.group(1)] = m.group(2)
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$", line)
        assert m, "bad metrics line %r" % line
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        series.setdefault(m.group(1), []).append(labels)
    return types, series


class Grafana(apitest.DaemonTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        with open(DASHBOARD) as f:
            cls.dash = json.load(f)

    def panels(self):
        return [p for p in self.dash["panels"] if p["type"] != "row"]

    def test_shape(self):
        d = self.dash
        self.assertEqual(d["title"], "sipbx")
        self.assertTrue(d["uid"])
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids repeat")
        variables = {v["name"]: v for v in d["templating"]["list"]}
        self.assertEqual(variables["DS_PROMETHEUS"]["type"], "datasource")
        self.assertEqual(variables["DS_PROMETHEUS"]["query"], "prometheus")
        self.assertEqual(variables["instance"]["datasource"]["uid"], "${DS_PROMETHEUS}")
        for p in self.panels():
            g = p["gridPos"]
            self.assertTrue(0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"])
            self.assertEqual(p["datasource"], {"type": "prometheus", "uid": "${DS_PROMETHEUS}"},
                             p["title"])
            self.assertTrue(p["targets"], p["title"])
            refs = [t["refId"] for t in p["targets"]]
            self.assertEqual(len(refs), len(set(refs)), p["title"])
            for t in p["targets"]:
                self.assertEqual(t["datasource"], p["datasource"], p["title"])
                self.assertIn('instance=~"$instance"', t["expr"],
                              "%s: %s ignores the instance variable" % (p["title"], t["expr"]))
        # what the issue asked for, at least
        exprs = " ".join(t["expr"] for p in self.panels() for t in p["targets"])
        for metric in ("sipbx_registrations", "sipbx_calls_active", "sipbx_calls_total",
                       "sipbx_sip_responses_total", "sipbx_store_write_failures_total",
                       "sipbx_store_failing", "sipbx_sip_blocked_sources",
                       "sipbx_sip_blocks_total"):
            self.assertIn(metric, exprs)

    def test_every_metric_exists(self):
        r = self.api("GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        types, series = exposition(r.body.decode())
        problems = []
        targets = [(p["title"], t["expr"], t.get("legendFormat", ""))
                   for p in self.panels() for t in p["targets"]]
        for v in self.dash["templating"]["list"]:
            if v["type"] == "query":
                targets.append(("variable " + v["name"], v["definition"], ""))
        for title, expr, legend in targets:
            for open_, close in ("()", "[]", "{}"):
                if expr.count(open_) != expr.count(close):
                    problems.append("%s: unbalanced %s in %s" % (title, open_ + close, expr))
            names = re.findall(r"\b((?:sipbx|process)_[a-z0-9_]+)\b", expr)
            self.assertTrue(names, "%s: %s queries no sipbx metric" % (title, expr))
            for name, braces in re.findall(r"\b((?:sipbx|process)_[a-z0-9_]+)\b(\{[^}]*\})?", expr):
                if name not in types:
                    problems.append("%s: %s is not exported" % (title, name))
                    continue
                have = series.get(name, [])
                for label, op, value in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', braces):
                    if label in SCRAPE_LABELS:
                        continue
                    if not any(label in s for s in have):
                        problems.append("%s: %s has no label %s" % (title, name, label))
                    elif op == "=" and not any(s.get(label) == value for s in have):
                        problems.append("%s: %s has no series %s=%r" % (title, name, label, value))
            used = set(names)
            labels = {k for n in used for s in series.get(n, []) for k in s} | SCRAPE_LABELS
            for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
                for label in filter(None, (x.strip() for x in group.split(","))):
                    if label not in labels:
                        problems.append("%s: by (%s): no metric of %s has it" % (title, label, expr))
            for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", legend):
                if label not in labels:
                    problems.append("%s: legend {{%s}}: no such label" % (title, label))
            for fn, name in re.findall(r"\b(rate|increase|irate)\(\s*((?:sipbx|process)_[a-z0-9_]+)", expr):
                if types.get(name) != "counter":
                    problems.append("%s: %s() of %s, a %s" % (title, fn, name, types.get(name)))
            for name in used:
                if types.get(name) == "counter" and not re.search(
                        r"\b(rate|increase|irate)\(\s*%s\b" % name, expr):
                    problems.append("%s: the counter %s is shown without rate() or increase()"
                                    % (title, name))
        self.assertEqual(problems, [])


if __name__ == "__main__":
    apitest.main()
