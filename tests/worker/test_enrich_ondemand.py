"""POST /v1/enrichments end to end, and the worker's metrics in GET /metrics:
a real alertmapd against a real PostgreSQL and the stand-in provider server
of test_enrich.py (imported, not copied) on 127.0.0.1.

python3 test_enrich_ondemand.py ALERTMAPD
"""

import os
import re
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_enrich as te  # noqa: E402
from test_enrich import harness  # noqa: E402

ENRICH = "/v1/enrichments"


def metric(text, name, **labels):
    """The value of one sample of a Prometheus text page (0 when absent)."""
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = ",".join(sorted((m.group(2) or "").split(","))) if m.group(2) else ""
        if got == want:
            return float(m.group(3))
    return 0.0


def by_provider(doc):
    return {e["provider"]: e for e in doc["data"]["enrichment"]}


class OnDemandTest(te.StandTestCase):
    """One alertmapd with two worker threads and a one-place on-demand queue."""

    NAME = "ondemand"

    @classmethod
    def prepare(cls):
        # VirusTotal waits long enough for the stand-in's held answer (203.0.113.20)
        vt = os.path.join(cls.providers, "virustotal.yaml")
        with open(vt) as f:
            text = f.read()
        with open(vt, "w") as f:
            f.write(re.sub(r"(?m)^timeout: .*$", "timeout: 20s", text))

    @classmethod
    def server_args(cls):
        return ["--providers", cls.providers, "--workers", "2", "--ondemand-queue", "1",
                "--request-deadline", "60s"] + te.WORKER_ARGS

    @classmethod
    def after_start(cls):
        cls.idle = harness.Server(cls.db.url, env=te.ENV, args=[
            "--providers", cls.providers, "--workers", "0"])
        cls.closers.append(cls.idle.cleanup)
        cls.closers.append(cls.idle.stop)
        cls.idle.start()

    def enrich(self, body, srv=None):
        return (srv or self.srv).post(ENRICH, body)

    def metrics(self):
        r = self.srv.get("/metrics")
        self.assertEqual(r.status, 200, r)
        return r.raw.decode()

    def test_found_then_cache_hit(self):
        r = self.enrich({"type": "ip", "value": "203.0.113.10"})
        self.assertEqual(r.status, 200, r)
        d = r.json["data"]
        self.assertEqual((d["type"], d["value"], d["verdict"]),
                         ("ip", "203.0.113.10", "Malicious"))
        p = by_provider(r.json)
        vt = p["virustotal"]
        self.assertEqual((vt["outcome"], vt["verdict"], vt["cached"]),
                         ("found", "Malicious", False))
        self.assertEqual(vt["result"]["malicious"], 8)
        # the shape of an indicator's enrichment in GET /v1/alerts/{uuid}
        for e in d["enrichment"]:
            self.assertLessEqual({"provider", "outcome", "verdict", "result", "fetched_at"},
                                 set(e), e)
        self.assertIn("internal_ranges", p)  # a cidr provider answers from memory
        self.assertEqual(self.stand.count("vt", "203.0.113.10"), 1)
        asked = {v: self.stand.count(v, "203.0.113.10") for v in ("abuse", "gn")}
        self.assertEqual(harness.psql(self.db.url, "select outcome || ':' || verdict from "
                                                   "enrichment_results where provider = "
                                                   "'virustotal' and value = '203.0.113.10'"),
                         "found:Malicious")
        # the second time: the cache, no provider request
        r = self.enrich({"type": "ip", "value": "203.0.113.10"})
        self.assertEqual(r.status, 200, r)
        vt2 = by_provider(r.json)["virustotal"]
        self.assertEqual((vt2["outcome"], vt2["verdict"], vt2["cached"]),
                         ("found", "Malicious", True))
        self.assertEqual(vt2["result"], vt["result"])
        self.assertEqual(r.json["data"]["verdict"], "Malicious")
        self.assertEqual(self.stand.count("vt", "203.0.113.10"), 1)
        self.assertEqual({v: self.stand.count(v, "203.0.113.10") for v in ("abuse", "gn")},
                         asked)

    def test_not_found(self):
        r = self.enrich({"type": "ip", "value": "203.0.113.11"})
        self.assertEqual(r.status, 200, r)
        p = by_provider(r.json)
        self.assertEqual((p["virustotal"]["outcome"], p["virustotal"]["verdict"]),
                         ("not_found", None))
        self.assertEqual(p["greynoise"]["outcome"], "not_found")
        self.assertEqual(r.json["data"]["verdict"], "Unknown")

    def test_refresh_asks_again(self):
        body = {"type": "ip", "value": "198.18.7.1", "providers": ["virustotal"]}
        r = self.enrich(body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual([e["provider"] for e in r.json["data"]["enrichment"]], ["virustotal"])
        self.assertEqual(self.stand.count("vt", "198.18.7.1"), 1)
        self.assertEqual(self.stand.count("abuse", "198.18.7.1"), 0)
        self.assertTrue(self.enrich(body).json["data"]["enrichment"][0]["cached"])
        self.assertEqual(self.stand.count("vt", "198.18.7.1"), 1)
        r = self.enrich(dict(body, refresh=True))
        self.assertEqual(r.status, 200, r)
        self.assertFalse(r.json["data"]["enrichment"][0]["cached"])
        self.assertEqual(r.json["data"]["verdict"], "Benign")
        self.assertEqual(self.stand.count("vt", "198.18.7.1"), 2)

    def test_cached_answer_serves_alerts(self):
        """What an on-demand lookup cached, the worker uses for an alert."""
        self.assertEqual(self.enrich({"type": "ip", "value": "198.18.7.2"}).status, 200)
        u = te.post_alert(self.srv, "after on-demand", [{"type": "ip", "value": "198.18.7.2"}])
        self.assertEqual(te.wait_status(self.db.url, u)[:2], ("Enriched", "Benign"))
        self.assertEqual(self.stand.count("vt", "198.18.7.2"), 1)

    def test_canonical_value(self):
        r = self.enrich({"type": "domain", "value": "Malware.Example.NET"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["data"]["value"], "malware.example.net")
        self.assertEqual(r.json["data"]["verdict"], "Malicious")

    def test_bad_input(self):
        cases = [(b"{not json", 400, "INVALID_JSON"),
                 ({"type": "ipv9", "value": "1.2.3.4"}, 422, "INVALID_TYPE"),
                 ({"type": "ip", "value": "not an address"}, 422, "INVALID_VALUE"),
                 ({"type": "ip"}, 422, "INVALID_BODY"),
                 ({"type": "ip", "value": "1.2.3.4", "refresh": "yes"}, 422, "INVALID_BODY"),
                 ({"type": "ip", "value": "1.2.3.4", "extra": 1}, 422, "INVALID_BODY"),
                 (["ip", "1.2.3.4"], 422, "INVALID_BODY"),
                 ({"type": "ip", "value": "1.2.3.4", "providers": ["nosuch"]}, 422,
                  "UNKNOWN_PROVIDER"),
                 ({"type": "account", "value": "bob", "providers": ["virustotal"]}, 422,
                  "UNKNOWN_PROVIDER")]
        for body, status, code in cases:
            with self.subTest(body=body):
                r = self.enrich(body)
                self.assertEqual(r.status, status, r)
                self.assertEqual(r.json["error"]["code"], code, r)
        self.assertEqual(self.stand.count("vt", "1.2.3.4"), 0)

    def test_needs_the_write_scope(self):
        ro = harness.create_key(self.db.url, scopes="read")["token"]
        r = harness.request(self.srv.port, "POST", ENRICH, {"type": "ip", "value": "1.2.3.4"},
                            key=ro)
        self.assertEqual(r.status, 403, r)

    def test_provider_failure_is_reported_not_cached(self):
        r = self.enrich({"type": "ip", "value": "203.0.113.15", "providers": ["virustotal"]})
        self.assertEqual(r.status, 200, r)
        vt = r.json["data"]["enrichment"][0]
        self.assertEqual(vt["outcome"], "failed")
        self.assertIn("reply is not JSON", vt["error"])
        self.enrich({"type": "ip", "value": "203.0.113.15", "providers": ["virustotal"]})
        self.assertEqual(self.stand.count("vt", "203.0.113.15"), 2)

    def test_workers_0_still_serves(self):
        r = self.enrich({"type": "ip", "value": "198.18.7.3", "providers": ["virustotal"]},
                        srv=self.idle)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["data"]["verdict"], "Benign")

    def test_queue_full_is_503(self):
        self.stand.release.clear()
        results = {}
        lock = threading.Condition()

        def ask(value):
            r = self.enrich({"type": "ip", "value": value, "providers": ["virustotal"]})
            with lock:
                results[value] = r
                lock.notify_all()

        try:
            held = threading.Thread(target=ask, args=("203.0.113.20",))
            held.start()
            # the on-demand thread is inside the held request
            self.stand.wait_count("vt", "203.0.113.20", 1)
            others = ["198.18.8.%d" % i for i in range(1, 4)]
            ts = [threading.Thread(target=ask, args=(v,)) for v in others]
            for t in ts:
                t.start()
            # one waits in the queue (its place is 1), the other two are refused at once
            deadline = time.monotonic() + 30 * harness.SLOW
            with lock:
                while len(results) < 2:
                    left = deadline - time.monotonic()
                    self.assertGreater(left, 0, "no lookup was refused: %r" % results)
                    lock.wait(left)
                refused = dict(results)
        finally:
            self.stand.release.set()
        held.join(60)
        for t in ts:
            t.join(60)
        for v, r in refused.items():
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.json["error"]["code"], "QUEUE_FULL")
            self.assertIsNotNone(r.header("Retry-After"))
        self.assertEqual(results["203.0.113.20"].status, 200, results["203.0.113.20"])
        self.assertEqual(results["203.0.113.20"].json["data"]["verdict"], "Malicious")
        served = [v for v in others if results[v].status == 200]
        self.assertEqual(len(served), 1, results)
        self.assertEqual(self.stand.count("vt", served[0]), 1)

    def test_metrics_move(self):
        before = self.metrics()
        self.assertEqual(self.enrich({"type": "ip", "value": "198.18.7.9",
                                      "providers": ["virustotal"]}).status, 200)
        self.assertEqual(self.enrich({"type": "ip", "value": "198.18.7.9",
                                      "providers": ["virustotal"]}).status, 200)
        self.assertEqual(self.enrich({"type": "ip", "value": "203.0.113.13",
                                      "providers": ["virustotal"]}).status, 200)
        u = te.post_alert(self.srv, "metrics", [{"type": "ip", "value": "198.18.7.10"}])
        self.assertEqual(te.wait_status(self.db.url, u)[0], "Enriched")
        after = self.metrics()

        def moved(name, **labels):
            return metric(after, name, **labels) - metric(before, name, **labels)

        lat = "alertmap_enrichment_provider_request_duration_seconds"
        self.assertGreaterEqual(moved(lat + "_count", provider="virustotal"), 3)
        self.assertGreaterEqual(moved(lat + "_bucket", provider="virustotal", le="+Inf"), 3)
        self.assertGreater(moved(lat + "_sum", provider="virustotal"), 0)
        self.assertGreaterEqual(moved("alertmap_enrichment_provider_errors_total",
                                      provider="virustotal", kind="5xx"), 1)
        self.assertGreaterEqual(moved("alertmap_enrichment_cache_lookups_total",
                                      result="hit"), 1)
        self.assertGreaterEqual(moved("alertmap_enrichment_cache_lookups_total",
                                      result="miss"), 2)
        self.assertGreaterEqual(moved("alertmap_enrichment_jobs_processed_total",
                                      outcome="enriched"), 1)
        self.assertGreaterEqual(moved("alertmap_enrichment_ondemand_total", code="2xx"), 3)
        self.assertIn('# TYPE %s histogram' % lat, after)


if __name__ == "__main__":
    harness.main()
