"""Alerts settled at ingest: an alert that no live enrichment worker has
work for (no provider of any running worker answers any of its indicator
types, and no worker has dispatch targets) is written Enriched, verdict
Unknown, with no job; every other alert gets its job as before.

Real alertmapd processes (one ingesting, worker-only ones) and a real
PostgreSQL; the provider is a local list, so nothing leaves the machine.

python3 test_settle.py ALERTMAPD
"""

import json
import os
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402
import test_enrich as te  # noqa: E402

ROOT = harness.ROOT
PLAN_REFRESH = 2.0  # the writers re-read the live workers at most this often (storage/plan.c)


def list_provider(d, name, types, values):
    """A list provider answering types from a file of values."""
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name + ".txt"), "w") as fh:
        fh.write("\n".join(values) + "\n")
    with open(os.path.join(d, name + ".yaml"), "w") as fh:
        fh.write("provider: %s\nkind: list\ntypes: [%s]\nfile: %s.txt\nverdict: Malicious\n"
                 "tag: %s\n" % (name, ", ".join(types), name, name))


def post(srv, title, indicators):
    r = srv.post("/v1/ingest/generic", {"title": title, "severity": "High",
                                        "indicators": indicators})
    assert r.status == 202, r
    return harness.ingest_uuids(r)[0]


def row(url, uuid):
    """(enrichment_status, verdict, indicator_verdicts, jobs, enriched_at set)."""
    out = harness.psql_json(url, "select json_build_object('s', enrichment_status, 'v', verdict, "
                                 "'iv', indicator_verdicts, 'at', enriched_at is not null, "
                                 "'jobs', (select count(*) from enrichment_jobs j "
                                 "where j.alert_id = a.id)) from alerts a where uuid = '%s'" % uuid)[0]
    return out["s"], out["v"], out["iv"], out["jobs"], out["at"]


def nodes(url):
    """The live workers' announcements: [(work_types, has_targets)]."""
    text = harness.psql(url, "select coalesce(json_agg(json_build_array(work_types, has_targets) "
                             "order by node), '[]') from enrichment_nodes "
                             "where seen_at > now() - interval '60 seconds'")
    return [(sorted(t), h) for t, h in json.loads(text)]


def wait_nodes(url, want, timeout=15):
    deadline = time.monotonic() + timeout * harness.SLOW
    while True:
        got = nodes(url)
        if got == want:
            # the writers see it at their next re-read
            time.sleep(PLAN_REFRESH + 0.3)
            return
        if time.monotonic() > deadline:
            raise AssertionError("enrichment_nodes is %r, want %r" % (got, want))
        time.sleep(0.1)


def settled_total(srv):
    r = srv.get("/metrics")
    for line in r.raw.decode().splitlines():
        if line.startswith("alertmap_store_alerts_settled_total "):
            return int(line.split()[1])
    raise AssertionError("no alertmap_store_alerts_settled_total in /metrics")


def start_worker(db_url, providers, tmp, extra=(), env=None):
    """A worker-only alertmapd with one thread (test_enrich.start_worker)."""
    return te.start_worker(db_url, providers, tmp,
                           args=["--workers", "1", "--worker-poll", "1"] + list(extra),
                           env_extra=env)


stop_worker = te.stop_worker


class OneServer(unittest.TestCase):
    """A fresh database and one alertmapd with ARGS (cls.tmp for files)."""

    NAME = "settle"

    @classmethod
    def args(cls):
        return []

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="alertmap-%s-" % cls.NAME.replace("_", "-"))
        cls.prepare()
        cls.db = harness.TempDatabase(cls.NAME)
        cls.srv = harness.Server(cls.db.url, args=cls.args())
        cls.srv.start()

    @classmethod
    def prepare(cls):
        pass

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.stop()
        finally:
            cls.srv.cleanup()
            cls.db.drop()
            shutil.rmtree(cls.tmp, ignore_errors=True)


class SettleTest(OneServer):
    """One alertmapd with one worker thread and a list provider for IPs."""

    @classmethod
    def prepare(cls):
        cls.providers = os.path.join(cls.tmp, "providers")
        list_provider(cls.providers, "ips", ["ip"], ["203.0.113.9"])

    @classmethod
    def args(cls):
        return ["--providers", cls.providers, "--workers", "1", "--worker-poll", "1"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        wait_nodes(cls.db.url, [(["ip"], False)])

    def test_no_work_is_settled_at_ingest(self):
        before = settled_total(self.srv)
        u = post(self.srv, "domain only", [{"type": "domain", "value": "settled.example.org"},
                                           {"type": "email", "value": "a@example.org"}])
        # right after the 202, with no worker involved
        s, v, iv, jobs, at = row(self.db.url, u)
        self.assertEqual((s, v, jobs, at), ("Enriched", "Unknown", 0, True))
        self.assertEqual(iv, {"domain:settled.example.org": "Unknown",
                              "email:a@example.org": "Unknown"})
        self.assertEqual(settled_total(self.srv), before + 1)
        # GET shows it as a worker would have left it
        a = self.srv.get("/v1/alerts/" + u).json["data"]
        self.assertEqual(a["enrichment_status"], "Enriched")
        self.assertEqual(a["verdict"], "Unknown")
        self.assertIsNotNone(a["enriched_at"])
        self.assertEqual([i["verdict"] for i in a["indicators"]], ["Unknown", "Unknown"])
        # an alert without indicators has no work either
        u = post(self.srv, "no indicators", [])
        self.assertEqual(row(self.db.url, u)[:4], ("Enriched", "Unknown", {}, 0))

    def test_work_gets_a_job_and_is_enriched(self):
        before = settled_total(self.srv)
        u = post(self.srv, "listed ip", [{"type": "ip", "value": "203.0.113.9"},
                                         {"type": "domain", "value": "other.example.org"}])
        self.assertEqual(row(self.db.url, u)[3], 1, "an alert with an ip indicator gets a job")
        deadline = time.monotonic() + 30 * harness.SLOW
        while row(self.db.url, u)[0] == "Pending" and time.monotonic() < deadline:
            time.sleep(0.1)
        s, v, iv, jobs, _ = row(self.db.url, u)
        self.assertEqual((s, v, jobs), ("Enriched", "Malicious", 1))
        self.assertEqual(iv["ip:203.0.113.9"], "Malicious")
        self.assertEqual(settled_total(self.srv), before)

    def test_duplicates_count_on_the_first_alert(self):
        body = {"title": "dup settle", "severity": "High",
                "indicators": [{"type": "domain", "value": "dup.example.org"}]}
        r1 = self.srv.post("/v1/ingest/generic", body)
        r2 = self.srv.post("/v1/ingest/generic", body)
        self.assertEqual((r1.status, r2.status), (202, 202))
        u1, u2 = harness.ingest_uuids(r1)[0], harness.ingest_uuids(r2)[0]
        self.assertEqual(u1, u2)
        self.assertEqual(harness.psql(self.db.url, "select count(*) from alerts where "
                                                   "title = 'dup settle'"), "1")
        self.assertEqual(row(self.db.url, u1)[:2], ("Enriched", "Unknown"))

    def test_reload_that_adds_a_type_stops_settling_it(self):
        d = os.path.join(self.tmp, "providers")
        list_provider(d, "domains", ["domain"], ["reloaded.example.org"])
        try:
            self.srv.signal(signal.SIGHUP)
            wait_nodes(self.db.url, [(["domain", "ip"], False)])
            u = post(self.srv, "after reload", [{"type": "domain", "value": "reloaded.example.org"}])
            self.assertEqual(row(self.db.url, u)[3], 1)
            deadline = time.monotonic() + 30 * harness.SLOW
            while row(self.db.url, u)[0] == "Pending" and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertEqual(row(self.db.url, u)[:2], ("Enriched", "Malicious"))
        finally:
            os.remove(os.path.join(d, "domains.yaml"))
            os.remove(os.path.join(d, "domains.txt"))
            self.srv.signal(signal.SIGHUP)
            wait_nodes(self.db.url, [(["ip"], False)])


class NoWorkerTest(OneServer):
    """alertmapd --workers 0, then worker-only processes: what is settled
    follows what the live workers of the deployment can do."""

    NAME = "settle_nw"

    @classmethod
    def args(cls):
        return ["--workers", "0"]

    def test_deployment_wide(self):
        # no worker anywhere: every alert waits for one in its job
        self.assertEqual(nodes(self.db.url), [])
        time.sleep(PLAN_REFRESH + 0.3)
        u = post(self.srv, "nobody", [{"type": "domain", "value": "nobody.example.org"}])
        self.assertEqual(row(self.db.url, u)[:4], ("Pending", None, {}, 1))

        # a worker elsewhere with a domain provider: domains are its work,
        # although the ingesting process loads no provider at all
        pd = os.path.join(self.tmp, "pd")
        list_provider(pd, "domains", ["domain"], ["x.example.org"])
        w1, log1 = start_worker(self.db.url, pd, self.tmp)
        try:
            wait_nodes(self.db.url, [(["domain"], False)])
            u = post(self.srv, "domain", [{"type": "domain", "value": "x.example.org"}])
            self.assertEqual(row(self.db.url, u)[3], 1)
            u = post(self.srv, "ip", [{"type": "ip", "value": "198.51.100.1"}])
            self.assertEqual(row(self.db.url, u)[:4], ("Enriched", "Unknown",
                                                       {"ip:198.51.100.1": "Unknown"}, 0))

            # a second one with dispatch targets: nothing is settled, every
            # alert may have to be delivered after its enrichment
            pt = os.path.join(self.tmp, "pt")
            os.makedirs(pt)
            with open(os.path.join(pt, "agent.yaml"), "w") as fh:
                fh.write("target: agent\nurl: http://127.0.0.1:9/hook\n"
                         "secret: SETTLE_TEST_SECRET\n")
            w2, log2 = start_worker(self.db.url, pd, self.tmp, ["--targets", pt],
                                    env={"SETTLE_TEST_SECRET": "s" * 32})
            try:
                wait_nodes(self.db.url, sorted([(["domain"], False), (["domain"], True)]))
                u = post(self.srv, "ip with targets", [{"type": "ip", "value": "198.51.100.2"}])
                self.assertEqual(row(self.db.url, u)[3], 1)
            finally:
                stop_worker(w2, log2)
        finally:
            stop_worker(w1, log1)
        # a clean stop takes the rows away: back to a job for everything
        self.assertEqual(nodes(self.db.url), [])
        time.sleep(PLAN_REFRESH + 0.3)
        u = post(self.srv, "after", [{"type": "ip", "value": "198.51.100.3"}])
        self.assertEqual(row(self.db.url, u)[:4], ("Pending", None, {}, 1))

    def test_killed_worker_counts_until_it_expires(self):
        pd = os.path.join(self.tmp, "pk")
        list_provider(pd, "domains", ["domain"], ["k.example.org"])
        w, log = start_worker(self.db.url, pd, self.tmp)
        try:
            wait_nodes(self.db.url, [(["domain"], False)])
        finally:
            w.kill()
            w.wait(timeout=10)
        # its row stays (seen_at ages); until it is 60 s old its types count
        self.assertEqual(nodes(self.db.url), [(["domain"], False)])
        u = post(self.srv, "domain after kill", [{"type": "domain", "value": "k.example.org"}])
        self.assertEqual(row(self.db.url, u)[3], 1)
        # aged past 60 s: ignored, and with no live worker nothing is settled
        harness.psql(self.db.url, "update enrichment_nodes set seen_at = now() - "
                                  "interval '61 seconds'")
        self.assertEqual(nodes(self.db.url), [])
        time.sleep(PLAN_REFRESH + 0.3)
        u = post(self.srv, "ip after expiry", [{"type": "ip", "value": "198.51.100.4"}])
        self.assertEqual(row(self.db.url, u)[:4], ("Pending", None, {}, 1))
        harness.psql(self.db.url, "delete from enrichment_nodes")


if __name__ == "__main__":
    harness.main()
