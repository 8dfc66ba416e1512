"""The read/write API of enrichment and dispatch against a real alertmapd, a
real PostgreSQL, the stand-in provider server and a dispatch receiver of
test_enrich.py: GET /v1/alerts/{uuid} with verdicts and enrichment results
(the same document a receiver gets), GET /v1/alerts/{uuid}/deliveries, the
retry of a failed delivery, and the job and delivery counts of GET /metrics.

python3 test_enrich_api.py ALERTMAPD
"""

import json
import os
import re
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_enrich as te  # noqa: E402  (the stand-in, the receiver, provider_dir)

harness = te.harness
ROOT = harness.ROOT
UUID0 = "6f1c1e7e-0000-4000-8000-000000000001"


class SwitchReceiver(te.Receiver):
    """test_enrich's receiver (same signature check, same record of what
    came) with one more endpoint: /switch answers 500 while failing is
    set, 200 afterwards."""

    SECRETS = dict(te.Receiver.SECRETS, **{"/switch": "s3cret-switch"})

    def __init__(self):
        self.failing = True
        super().__init__()

    def answer(self, path, tries):
        if path == "/switch":
            return 500 if self.failing else 200
        return super().answer(path, tries)


def metrics(srv):
    """{(name, status label or None): value} of GET /metrics."""
    r = harness.request(srv.port, "GET", "/metrics", key=None)
    assert r.status == 200, r
    out = {}
    for line in r.raw.decode().splitlines():
        m = re.match(r'^(\w+)(?:\{status="(\w+)"\})? (\d+)$', line)
        if m:
            out[(m.group(1), m.group(2))] = int(m.group(3))
    return out


def sql_counts(url, table):
    rows = harness.psql(url, "select status || '=' || count(*) from %s group by status" % table)
    return {k: int(v) for k, v in (x.split("=") for x in rows.split())}


def wait_for(what, pred, timeout=60):
    deadline = time.monotonic() + timeout * harness.SLOW
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.1)


def wait_metrics(srv, url, states, timeout=60):
    """Waits until the scraped job and delivery gauges equal the tables'
    counts for the given states; returns the scrape."""
    last = {}

    def same():
        m = metrics(srv)
        jobs = sql_counts(url, "enrichment_jobs")
        dels = sql_counts(url, "dispatch_deliveries")
        last["m"], last["sql"] = m, (jobs, dels)
        for kind, name, counts in (("jobs", "alertmap_enrichment_jobs", jobs),
                                   ("deliveries", "alertmap_dispatch_deliveries", dels)):
            for s in states[kind]:
                if m.get((name, s)) != counts.get(s, 0):
                    return None
        return m
    try:
        return wait_for("metrics %r" % states, same, timeout)
    except AssertionError:
        raise AssertionError("metrics never matched the tables: %r vs %r" %
                             ({k: v for k, v in last.get("m", {}).items() if k[1]},
                              last.get("sql")))


class DispatchApiTest(te.StandTestCase):
    """One alertmapd with two worker threads and two targets: ok-agent
    (always 200) and switch-agent (500 until the test switches it)."""

    NAME = "enrich_api"

    @classmethod
    def prepare(cls):
        cls.recv = SwitchReceiver()
        cls.closers.append(cls.recv.close)
        cls.tdir = os.path.join(cls.tmp, "targets")
        os.mkdir(cls.tdir)
        base = "http://127.0.0.1:%d" % cls.recv.port
        with open(os.path.join(cls.tdir, "ok.yaml"), "w") as f:
            f.write("target: ok-agent\nurl: %s/ok\nsecret: OK_AGENT_SECRET\nwhen: enriched\n"
                    "filters: {tags: [api-test]}\n" % base)
        with open(os.path.join(cls.tdir, "switch.yaml"), "w") as f:
            f.write("target: switch-agent\nurl: %s/switch\nsecret: SWITCH_AGENT_SECRET\n"
                    "when: enriched\nbackoff: 1s\nmax_attempts: 2\n"
                    "filters: {tags: [api-retry]}\n" % base)

    @classmethod
    def server_env(cls):
        return dict(te.ENV, **te.SIGNING, SWITCH_AGENT_SECRET="s3cret-switch")

    @classmethod
    def server_args(cls):
        return (["--providers", cls.providers, "--targets", cls.tdir, "--workers", "2"] +
                te.WORKER_ARGS)

    @classmethod
    def after_start(cls):
        cls.read_key = harness.create_key(cls.db.url, name="reader", scopes="read")
        cls.write_key = harness.create_key(cls.db.url, name="writer", scopes="read,write")

    def post(self, title, indicators, tags):
        r = self.srv.post("/v1/ingest/generic", {"title": title, "severity": "High",
                                                 "indicators": indicators, "tags": tags})
        self.assertEqual(r.status, 202, r)
        return harness.ingest_uuids(r)[0]

    def deliveries(self, uuid, key=None):
        r = self.srv.get("/v1/alerts/%s/deliveries" % uuid, key=key or self.read_key["token"])
        self.assertEqual(r.status, 200, r)
        return {d["target"]: d for d in r.json["data"]}

    def wait_delivery(self, uuid, target, states):
        return wait_for("%s of %s in %s" % (target, uuid, states),
                        lambda: (lambda d: d if d and d["status"] in states else None)(
                            self.deliveries(uuid).get(target)))

    def retry(self, uuid, delivery_id, key):
        return harness.request(self.srv.port, "POST", "/v1/alerts/%s/deliveries/%s/retry" %
                               (uuid, delivery_id), key=key)

    def test_get_shows_enrichment_and_equals_the_dispatch_body(self):
        u = self.post("api get enriched", [{"type": "ip", "value": "203.0.113.10"},
                                           {"type": "ip", "value": "203.0.113.11"}],
                      ["api-test"])
        ok = self.wait_delivery(u, "ok-agent", ("delivered", "failed"))
        self.assertEqual(ok["status"], "delivered", ok)
        g = self.srv.get("/v1/alerts/" + u, key=self.read_key["token"])
        self.assertEqual(g.status, 200, g)
        doc = g.json["data"]
        self.assertEqual((doc["enrichment_status"], doc["verdict"], doc["enrichment_error"]),
                         ("Enriched", "Malicious", None))
        self.assertIsNotNone(doc["enriched_at"])
        by_value = {i["value"]: i for i in doc["indicators"]}
        bad = by_value["203.0.113.10"]
        self.assertEqual(bad["verdict"], "Malicious")
        providers = {e["provider"]: e for e in bad["enrichment"]}
        self.assertEqual(providers["virustotal"]["outcome"], "found")
        self.assertEqual(providers["virustotal"]["verdict"], "Malicious")
        self.assertEqual(providers["virustotal"]["result"]["malicious"], 8)
        self.assertEqual([e["provider"] for e in bad["enrichment"]],
                         sorted(e["provider"] for e in bad["enrichment"]))
        unknown = by_value["203.0.113.11"]
        self.assertEqual(unknown["verdict"], "Unknown")
        self.assertEqual({e["provider"]: e["outcome"] for e in unknown["enrichment"]}
                         ["virustotal"], "not_found")
        self.assertIsNone({e["provider"]: e for e in unknown["enrichment"]}
                          ["virustotal"]["verdict"])
        # the receiver got exactly this document, delivery id in its header
        got = [g2 for g2 in self.recv.received("/ok") if json.loads(g2[3])["uuid"] == u]
        self.assertEqual(len(got), 1)
        self.assertTrue(got[0][1], "the signature did not verify")
        self.assertEqual(json.loads(got[0][3]), doc)
        self.assertEqual(got[0][4], str(ok["id"]))
        import jsonschema
        with open(os.path.join(ROOT, "schemas", "dispatch.schema.json")) as f:
            jsonschema.validate(doc, json.load(f))
        # the list shows the alert's verdict too
        r = self.srv.get("/v1/alerts?limit=500", key=self.read_key["token"])
        item = [a for a in r.json["data"] if a["uuid"] == u][0]
        self.assertEqual((item["verdict"], item["enrichment_error"]), ("Malicious", None))

    def test_pending_alert_has_null_verdicts_and_no_deliveries(self):
        # a value the stand-in holds: the alert stays Pending while we look
        self.stand.release.clear()
        try:
            u = self.post("api pending", [{"type": "ip", "value": "203.0.113.20"}], ["none"])
            self.stand.wait_count("vt", "203.0.113.20", 1)
            doc = self.srv.get("/v1/alerts/" + u, key=self.read_key["token"]).json["data"]
            self.assertEqual((doc["enrichment_status"], doc["verdict"], doc["enriched_at"]),
                             ("Pending", None, None))
            self.assertEqual(doc["indicators"][0]["verdict"], None)
            self.assertEqual(self.deliveries(u), {})
        finally:
            self.stand.release.set()
        # enriched, or failed if the held replies outlasted the timeout
        self.assertIn(te.wait_status(self.db.url, u, timeout=60)[0], ("Enriched", "Failed"))
        self.assertEqual(self.deliveries(u), {})  # no target wants it

    def test_failed_delivery_retried_through_the_api(self):
        self.recv.failing = True
        u = self.post("api retry", [{"type": "ip", "value": "198.18.7.1"}],
                      ["api-test", "api-retry"])
        failed = self.wait_delivery(u, "switch-agent", ("failed", "delivered"))
        ok = self.wait_delivery(u, "ok-agent", ("failed", "delivered"))
        self.assertEqual(ok["status"], "delivered")
        self.assertEqual(ok["attempts"], 1)
        self.assertEqual(ok["last_status"], 200)
        self.assertIsNotNone(ok["delivered_at"])
        # the list: what the table holds, in the documented form
        self.assertEqual({k: failed[k] for k in ("status", "attempts", "last_status",
                                                  "last_error", "next_attempt_at",
                                                  "delivered_at", "retries", "retried_at",
                                                  "retried_by")},
                         {"status": "failed", "attempts": 2, "last_status": 500,
                          "last_error": "HTTP 500", "next_attempt_at": None,
                          "delivered_at": None, "retries": 0, "retried_at": None,
                          "retried_by": None})
        self.assertRegex(failed["created_at"], r"Z$")
        self.assertEqual(int(harness.psql(self.db.url, "select id from dispatch_deliveries "
                                                       "where target = 'switch-agent' and "
                                                       "alert_id = (select id from alerts where "
                                                       "uuid = '%s')" % u)), failed["id"])
        wait_metrics(self.srv, self.db.url, {"jobs": ["done"],
                                             "deliveries": ["delivered", "failed"]})
        self.assertEqual([g[2] for g in self.recv.received("/switch")
                          if g[4] == str(failed["id"])], [500, 500])

        # refusals change nothing
        did = failed["id"]
        r = self.retry(u, did, self.read_key["token"])
        self.assertEqual((r.status, r.json["error"]["code"]), (403, "FORBIDDEN"), r)
        r = self.retry(u, ok["id"], self.write_key["token"])
        self.assertEqual((r.status, r.json["error"]["code"]), (409, "DELIVERY_NOT_FAILED"), r)
        self.assertIn("delivered", r.json["error"]["message"])
        for garbage in ("abc", "0", "-1", "07", "1.5", "99999999999999999999"):
            r = self.retry(u, garbage, self.write_key["token"])
            self.assertEqual((r.status, r.json["error"]["code"]), (400, "INVALID_DELIVERY_ID"),
                             (garbage, r))
        r = self.retry(u, did + 100000, self.write_key["token"])
        self.assertEqual((r.status, r.json["error"]["code"]), (404, "NOT_FOUND"), r)
        r = self.retry(UUID0, did, self.write_key["token"])  # another alert's delivery
        self.assertEqual((r.status, r.json["error"]["code"]), (404, "NOT_FOUND"), r)
        r = self.retry("not-a-uuid", did, self.write_key["token"])
        self.assertEqual((r.status, r.json["error"]["code"]), (400, "INVALID_UUID"), r)
        r = harness.request(self.srv.port, "GET", "/v1/alerts/%s/deliveries/%d/retry" % (u, did),
                            key=self.write_key["token"])
        self.assertEqual((r.status, r.header("Allow")), (405, "POST"), r)
        self.assertEqual(self.deliveries(u)["switch-agent"], failed)

        # the receiver works again: one retry, exactly one more accepted delivery
        self.recv.failing = False
        r = self.retry(u, did, self.write_key["token"])
        self.assertEqual(r.status, 202, r)
        d = r.json["data"]
        self.assertEqual((d["id"], d["status"], d["attempts"], d["retries"]),
                         (did, "pending", 0, 1))
        self.assertEqual(d["retried_by"], {"key_id": self.write_key["id"],
                                           "key_prefix": self.write_key["prefix"]})
        self.assertIsNotNone(d["retried_at"])
        self.assertIsNotNone(d["next_attempt_at"])
        # a second retry before the worker sent it: it is pending now
        r2 = self.retry(u, did, self.write_key["token"])
        self.assertIn(r2.status, (409,), r2)
        self.assertEqual(r2.json["error"]["code"], "DELIVERY_NOT_FAILED")
        done = self.wait_delivery(u, "switch-agent", ("delivered", "failed"))
        self.assertEqual((done["status"], done["attempts"], done["last_status"],
                          done["last_error"], done["retries"]),
                         ("delivered", 1, 200, None, 1))
        self.assertIsNotNone(done["delivered_at"])
        self.assertEqual(done["retried_by"], d["retried_by"])
        mine = [g for g in self.recv.received("/switch") if g[4] == str(did)]
        self.assertEqual([g[2] for g in mine], [500, 500, 200])
        self.assertTrue(all(g[1] for g in mine))
        r = self.retry(u, did, self.write_key["token"])
        self.assertEqual(r.status, 409, r)
        self.assertEqual(int(harness.psql(self.db.url, "select retried_by_key from "
                                                       "dispatch_deliveries where id = %d" % did)),
                         self.write_key["id"])
        wait_metrics(self.srv, self.db.url, {"jobs": ["done"],
                                             "deliveries": ["delivered", "failed", "pending"]})

    def test_deliveries_of_unknown_or_malformed_alert(self):
        r = self.srv.get("/v1/alerts/%s/deliveries" % UUID0, key=self.read_key["token"])
        self.assertEqual((r.status, r.json["error"]["code"]), (404, "NOT_FOUND"), r)
        r = self.srv.get("/v1/alerts/nope/deliveries", key=self.read_key["token"])
        self.assertEqual((r.status, r.json["error"]["code"]), (400, "INVALID_UUID"), r)
        r = harness.request(self.srv.port, "POST", "/v1/alerts/%s/deliveries" % UUID0,
                            key=self.write_key["token"])
        self.assertEqual((r.status, r.header("Allow")), (405, "GET"), r)
        ing = harness.create_key(self.db.url, name="ingest-only", scopes="ingest")
        r = self.srv.get("/v1/alerts/%s/deliveries" % UUID0, key=ing["token"])
        self.assertEqual(r.status, 403, r)

    def test_scrapes_share_one_count_a_second(self):
        before = metrics(self.srv)
        t0 = time.monotonic()
        for _ in range(20):
            m = metrics(self.srv)
        elapsed = time.monotonic() - t0
        queries = (m[("alertmap_store_queries_total", None)] -
                   before[("alertmap_store_queries_total", None)])
        self.assertEqual(m[("alertmap_queue_counts_up", None)], 1)
        # one count per second at most (plus the one a scrape may have started)
        self.assertLessEqual(queries, int(elapsed) + 2, (queries, elapsed))


class QueueMetricsTest(te.StandTestCase):
    """alertmapd without workers ingests, a worker-only process enriches
    later: the gauges follow the jobs from queued to done and failed."""

    NAME = "queue_metrics"

    @classmethod
    def server_args(cls):
        return ["--workers", "0"]

    def test_jobs_move_from_queued_to_done_and_failed(self):
        all_states = {"jobs": ["queued", "running", "done", "failed"],
                      "deliveries": ["pending", "sending", "delivered", "failed"]}
        m = wait_metrics(self.srv, self.db.url, all_states)
        self.assertEqual(m[("alertmap_enrichment_jobs", "queued")], 0)
        uuids = [te.post_alert(self.srv, "metrics %d" % i, [{"type": "ip",
                                                            "value": "198.18.8.%d" % i}])
                 for i in range(1, 4)]
        uuids.append(te.post_alert(self.srv, "metrics broken",
                                   [{"type": "ip", "value": "203.0.113.15"}]))
        m = wait_metrics(self.srv, self.db.url, all_states)
        self.assertEqual(m[("alertmap_enrichment_jobs", "queued")], 4)
        self.assertEqual(m[("alertmap_enrichment_jobs", "done")], 0)
        w, log = te.start_worker(self.db.url, self.providers, self.tmp)
        try:
            for u in uuids:
                te.wait_status(self.db.url, u)
        finally:
            te.stop_worker(w, log)
        m = wait_metrics(self.srv, self.db.url, all_states)
        self.assertEqual((m[("alertmap_enrichment_jobs", "queued")],
                          m[("alertmap_enrichment_jobs", "running")],
                          m[("alertmap_enrichment_jobs", "done")],
                          m[("alertmap_enrichment_jobs", "failed")]), (0, 0, 3, 1))
        # the final states come from the tallies: deleting alerts takes
        # their jobs out of the count as well
        harness.psql(self.db.url, "delete from alerts where title = 'metrics 1'")
        m = wait_metrics(self.srv, self.db.url, all_states)
        self.assertEqual(m[("alertmap_enrichment_jobs", "done")], 2)


class MetricsOutageTest(harness.PrivateClusterTestCase):
    """GET /metrics while the database is stopped: the process counters
    still answer, the database counts say they could not be read."""

    def test_scrape_answers_while_the_database_is_down(self):
        self.srv = harness.Server(self.cluster.url, args=["--workers", "0"])
        self.srv.start()
        wait_for("counts up", lambda: metrics(self.srv).get(("alertmap_queue_counts_up", None)))
        self.cluster.stop()
        m = wait_for("counts down", lambda: (lambda x: x if x.get(
            ("alertmap_queue_counts_up", None)) == 0 else None)(metrics(self.srv)))
        self.assertNotIn(("alertmap_enrichment_jobs", "queued"), m)  # no stale values
        self.assertIn(("alertmap_mappings_loaded", None), m)
        self.cluster.start()
        m = wait_for("counts up again", lambda: (lambda x: x if x.get(
            ("alertmap_queue_counts_up", None)) == 1 else None)(metrics(self.srv)))
        self.assertEqual(m[("alertmap_enrichment_jobs", "queued")], 0)


if __name__ == "__main__":
    harness.main()
