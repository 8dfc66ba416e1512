#!/usr/bin/env python3
"""Tests of tests/tools/corpus_check.py on a small corpus built from the
project's own sample payloads: what it counts as correct, what it reports as
a mismatch, and its exit status."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
import corpus_check  # noqa: E402

ROOT = os.environ.get("ALERTMAP_SOURCE_ROOT", os.path.dirname(os.path.dirname(HERE)))
ALERTMAP = None


def sample(source, name):
    return os.path.join(ROOT, "mappings", "samples", source, name + ".json")


class ScaleTest(unittest.TestCase):
    def test_vendor_scales(self):
        lv = corpus_check.expected_level
        self.assertEqual(lv("guardduty", 8), "High")
        self.assertEqual(lv("guardduty", 6.95), "Medium")
        self.assertEqual(lv("guardduty", 9), "Critical")
        self.assertEqual(lv("suricata", 1), "High")
        self.assertEqual(lv("crowdstrike", 70), "High")
        self.assertEqual(lv("crowdstrike", 2), "Low")
        self.assertEqual(lv("crowdstrike", "Low"), "Low")
        self.assertEqual(lv("opsgenie", 3), "Medium")
        self.assertEqual(lv("opsgenie", "P1"), "Critical")
        self.assertEqual(lv("github", "moderate"), "Medium")
        self.assertEqual(lv("falco", "Notice"), "Low")
        self.assertIsNone(lv("zeek", "anything"))
        self.assertIsNone(lv("sentry", "bogus"))

    def test_instants(self):
        ns = corpus_check.instant_ns
        self.assertEqual(ns("2024-05-02T08:11:42.402113+0200"),
                         ns("2024-05-02T06:11:42.402113Z"))
        self.assertEqual(ns("1970-01-01T00:00:01.000000001Z"), 1_000_000_001)
        self.assertIsNone(ns("yesterday"))


class RunTest(unittest.TestCase):
    def setUp(self):
        self.corpus = tempfile.mkdtemp(prefix="corpus-check-")

    def tearDown(self):
        shutil.rmtree(self.corpus)

    def folder(self, source, files, expect):
        d = os.path.join(self.corpus, source)
        os.makedirs(d)
        for name, path in files.items():
            shutil.copyfile(path, os.path.join(d, name))
        with open(os.path.join(d, "expect.json"), "w") as f:
            json.dump(expect, f)

    def run_check(self, *extra):
        r = subprocess.run([sys.executable, os.path.join(HERE, "corpus_check.py"),
                            "--alertmap", ALERTMAP, "--mappings", os.path.join(ROOT, "mappings"),
                            "--corpus", self.corpus, "--verbose"] + list(extra),
                           capture_output=True, text=True, timeout=120)
        return r.returncode, r.stdout

    def test_counts_and_mismatches(self):
        self.folder("suricata", {
            "good.json": sample("suricata", "alert-tls-sni"),
            "wrong.json": sample("suricata", "alert-http-severity1"),
            "refused.json": sample("suricata", "rejected-not-alert"),
            "refused-claims.json": sample("suricata", "rejected-not-alert"),
        }, {
            "good.json": {"title": "ET INFO Observed DNS over HTTPS Domain in TLS SNI",
                          "severity_vendor": 2, "occurred_at": "2024-05-02T06:11:42.402Z",
                          "indicators_some": [["ip", "203.0.113.80"], ["domain", "DOH.example.net"]]},
            "wrong.json": {"severity_vendor": 3, "occurred_at": "2024-05-04T03:02:05.100Z",
                           "indicators_some": [["ip", "192.0.2.1"]]},
            "refused.json": {},
            "refused-claims.json": {"title": "x"},
        })
        self.folder("okta", {"batch.json": sample("okta", "event-hook-two-events")}, {
            "batch.json": {"alerts": [{"title": "User login to Okta", "severity_vendor": "INFO"},
                                      {"title": "Max sign in attempts exceeded",
                                       "severity_vendor": "WARN",
                                       "indicators_some": [["ip", "203.0.113.66"]]}]}})
        self.folder("nosuchsource", {"a.json": sample("suricata", "alert-tls-sni")}, {"a.json": {}})
        rc, out = self.run_check()
        self.assertEqual(rc, 0, out)
        rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()
                if line and not line.startswith(" ")}
        self.assertEqual(rows["suricata"], ["4", "2", "2", "yes"])
        self.assertEqual(rows["okta"], ["1", "1", "1", "yes"])
        self.assertEqual(rows["nosuchsource"], ["1", "0", "0", "-"])
        self.assertIn("corpus: 3/6 payloads normalize as expected", out)
        self.assertIn("suricata/wrong.json: severity: vendor 3 is Low, got High", out)
        self.assertIn("suricata/wrong.json: occurred_at: expected 2024-05-04T03:02:05.100Z", out)
        self.assertIn("suricata/wrong.json: indicator missing: ip 192.0.2.1", out)
        self.assertIn("suricata/refused-claims.json: rejected: INVALID_PAYLOAD", out)
        self.assertIn("nosuchsource/a.json: no mapping with source: nosuchsource", out)

    def test_batch_length_and_min(self):
        self.folder("okta", {"batch.json": sample("okta", "event-hook-two-events")},
                    {"batch.json": {"alerts": [{"title": "User login to Okta"}]}})
        rc, out = self.run_check("--min", "1")
        self.assertEqual(rc, 1, out)
        self.assertIn("batch: expected 1 alerts, got 2", out)
        rc, out = self.run_check("--min", "0")
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: test_corpus_check.py ALERTMAP [unittest args]")
    ALERTMAP = sys.argv.pop(1)
    unittest.main()
