"""The read API: listing with filters and cursor pagination, status changes
along the lifecycle, the loaded sources, the dry run that writes nothing, and
the Prometheus counters of GET /metrics."""

import hashlib
import os
import re
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SHIPPED = {"sentinel", "elastic", "splunk", "generic", "alertmanager"}


def page_items(resp):
    data = resp.json.get("data")
    if isinstance(data, dict):
        for k in ("alerts", "items"):
            if isinstance(data.get(k), list):
                return data[k]
    return data


def next_cursor(resp):
    j = resp.json
    for holder in (j, j.get("meta") or {}, j.get("pagination") or {},
                   j.get("data") if isinstance(j.get("data"), dict) else {}):
        if "next_cursor" in holder:
            return holder["next_cursor"]
    raise AssertionError("no next_cursor in the list answer: %r" % resp)


class ReadApiTest(harness.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.created = []  # (uuid, source) oldest first
            for i in range(7):
                r = cls.srv.post("/v1/ingest/generic", harness.generic_payload("read api %d" % i))
                assert r.status == 202, r
                cls.created.append((harness.ingest_uuids(r)[0], "generic"))
                time.sleep(0.01)
            for src in ("sentinel", "splunk"):
                _, payload, _ = harness.accepted_sample(src)
                r = cls.srv.post("/v1/ingest/" + src, payload)
                assert r.status == 202, r
                for u in harness.ingest_uuids(r):
                    cls.created.append((u, src))
        except BaseException:
            cls.tearDownClass()
            raise

    def list_all(self, query, limit):
        """Follows next_cursor to the end (bounded); returns all items."""
        items, cursor, pages = [], None, 0
        while pages < 100:
            q = "%s&limit=%d" % (query, limit) if query else "limit=%d" % limit
            if cursor:
                q += "&cursor=" + cursor
            r = self.srv.get("/v1/alerts?" + q)
            self.assertEqual(r.status, 200, r)
            page = page_items(r)
            self.assertIsInstance(page, list, r)
            self.assertLessEqual(len(page), limit)
            items.extend(page)
            pages += 1
            cursor = next_cursor(r)
            if not cursor:
                break
        self.assertLess(pages, 100, "pagination does not end")
        return items

    def test_list_pagination_newest_first(self):
        items = self.list_all("", 2)
        uuids = [a["uuid"] for a in items]
        self.assertEqual(len(uuids), len(set(uuids)), "a page repeats an alert")
        self.assertEqual(set(uuids), {u for u, _ in self.created})
        self.assertEqual(len(items), len(self.created))
        # newest first: ingest order reversed
        self.assertEqual(uuids, [u for u, _ in reversed(self.created)])
        # list items carry the alert fields
        for a in items:
            for k in ("title", "severity", "status", "source_name", "occurred_at"):
                self.assertIn(k, a)

    def test_list_filters(self):
        items = self.list_all("source_name=generic", 3)
        self.assertEqual({a["uuid"] for a in items},
                         {u for u, s in self.created if s == "generic"})
        self.assertTrue(all(a["source_name"] == "generic" for a in items))
        items = self.list_all("source_name=no-such-source", 5)
        self.assertEqual(items, [])
        for sev in ("Pending", "Informational", "Low", "Medium", "High", "Critical"):
            with self.subTest(severity=sev):
                items = self.list_all("severity=" + sev, 50)
                self.assertTrue(all(a["severity"] == sev for a in items))
                want = int(harness.psql(self.db.url, "select count(*) from alerts where "
                                        "severity = '%s'" % sev))
                self.assertEqual(len(items), want)
        items = self.list_all("status=Open", 50)
        self.assertEqual(len(items), int(harness.psql(
            self.db.url, "select count(*) from alerts where status = 'Open'")))
        # since: in the future -> nothing; far past -> everything
        self.assertEqual(self.list_all("since=2999-01-01T00:00:00Z", 50), [])
        self.assertEqual(len(self.list_all("since=1970-01-01T00:00:00Z", 50)),
                         len(self.created))

    def test_list_bad_parameters(self):
        for q in ("limit=abc", "limit=-1", "since=yesterday", "cursor=%%%", "status=Nope",
                  "severity=Huge"):
            with self.subTest(query=q):
                r = self.srv.get("/v1/alerts?" + q)
                self.assertIn(r.status, (400, 422), r)
                self.assertIsInstance(r.json.get("error"), dict, r)

    def test_get_unknown_alert_404(self):
        r = self.srv.get("/v1/alerts/00000000-0000-4000-8000-000000000000")
        self.assertError(r, 404)
        r = self.srv.get("/v1/alerts/not-a-uuid")
        self.assertIn(r.status, (400, 404), r)

    def test_patch_transitions(self):
        u = self.created[0][0]

        def status():
            return self.srv.get("/v1/alerts/" + u).json["data"]["status"]

        r = self.srv.patch("/v1/alerts/" + u, {"status": "Triaging"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["data"]["status"], "Triaging")
        self.assertEqual(status(), "Triaging")
        # back to Open is not a transition of the lifecycle
        r = self.srv.patch("/v1/alerts/" + u, {"status": "Open"})
        self.assertError(r, 409)
        self.assertEqual(status(), "Triaging")
        r = self.srv.patch("/v1/alerts/" + u, {"status": "Escalated"})
        self.assertEqual(r.status, 200, r)
        # Closed needs a close classification
        r = self.srv.patch("/v1/alerts/" + u, {"status": "Closed"})
        self.assertIn(r.status, (409, 422), r)
        self.assertEqual(status(), "Escalated")
        r = self.srv.patch("/v1/alerts/" + u, {"status": "Closed",
                                               "close_classification": "true_positive"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(status(), "Closed")
        r = self.srv.patch("/v1/alerts/" + u, {"status": "Triaging"})
        self.assertError(r, 409)
        self.assertEqual(status(), "Closed")
        # each transition keeps its time, in order
        row = harness.psql(self.db.url, "select triaged_at <= escalated_at and escalated_at <= "
                           "closed_at, close_classification from alerts where uuid = '%s'" % u)
        self.assertEqual(row, "t|true_positive")

    def test_patch_bad_requests(self):
        u = self.created[1][0]
        r = self.srv.patch("/v1/alerts/" + u, b"{not json")
        self.assertError(r, 400)
        r = self.srv.patch("/v1/alerts/" + u, {"status": "Sleeping"})
        self.assertIn(r.status, (400, 422), r)
        r = self.srv.patch("/v1/alerts/00000000-0000-4000-8000-000000000000",
                           {"status": "Triaging"})
        self.assertError(r, 404)
        self.assertEqual(self.srv.get("/v1/alerts/" + u).json["data"]["status"], "Open")

    def test_sources(self):
        r = self.srv.get("/v1/sources")
        self.assertEqual(r.status, 200, r)
        data = r.json["data"]
        self.assertIsInstance(data, list)
        names = {s["name"] for s in data}
        self.assertEqual(names, set(harness.shipped_sources()))
        self.assertTrue(SHIPPED <= names)
        for s in data:
            with self.subTest(source=s["name"]):
                self.assertTrue(s.get("display_name"))
                self.assertTrue(s.get("file"))
                self.assertTrue(s.get("loaded_at"))
                path = harness.shipped_sources()[s["name"]]
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                self.assertIn(digest, s.values(), "content hash of %s" % path)

    def test_dry_run_writes_nothing(self):
        for src in sorted(harness.shipped_sources()):
            with self.subTest(source=src):
                name, payload, expected = harness.accepted_sample(src)
                before = harness.count_rows(self.db.url)
                r = self.srv.post("/v1/sources/%s/test" % src, payload)
                self.assertEqual(r.status, 200, r)
                alerts = r.json["data"]["alerts"]
                self.assertEqual(len(alerts), len(expected["alerts"]))
                for got, exp in zip(alerts, expected["alerts"]):
                    self.assertEqual(harness.match_expected(exp, got), [], name)
                    self.assertIsInstance(got.get("provenance"), dict, got)
                    self.assertIn("title", got["provenance"])
                    self.assertRegex(got["provenance"]["title"], r"\.yaml:\d+")
                    for ioc in got.get("indicators", []):
                        self.assertRegex(ioc.get("origin", ""), r"\.yaml:\d+", ioc)
                    self.assertRegex(got.get("fingerprint", ""), r"^[0-9a-f]{64}$")
                self.assertEqual(harness.count_rows(self.db.url), before,
                                 "the dry run wrote rows")

    def test_dry_run_errors(self):
        before = harness.count_rows(self.db.url)
        r = self.srv.post("/v1/sources/no-such/test", {"a": 1})
        self.assertError(r, 404, "UNKNOWN_SOURCE")
        r = self.srv.post("/v1/sources/generic/test", b"{oops")
        self.assertError(r, 400, "INVALID_JSON")
        r = self.srv.post("/v1/sources/generic/test", b"[1]")
        self.assertError(r, 422, "INVALID_PAYLOAD")
        self.assertEqual(harness.count_rows(self.db.url), before)

    def scrape(self):
        """GET /metrics parsed into {(name, ((label, value), ...)): float}."""
        r = self.srv.get("/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "text/plain; version=0.0.4")
        sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
        label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')
        out, typed = {}, set()
        for line in r.raw.decode("utf-8").splitlines():
            if line.startswith("# TYPE "):
                typed.add(line.split()[2])
                continue
            if line.startswith("#") or not line:
                continue
            m = sample.match(line)
            self.assertIsNotNone(m, "not a sample line: %r" % line)
            labels = tuple(sorted(label.findall(m.group(2) or "")))
            self.assertIn(m.group(1), typed, "sample before its TYPE line: %r" % line)
            out[(m.group(1), labels)] = float(m.group(3))
        return out

    def test_metrics_count_ingests(self):
        def val(m, name, **labels):
            return m.get((name, tuple(sorted(labels.items()))), 0.0)

        before = self.scrape()
        r = self.srv.post("/v1/ingest/generic", harness.generic_payload("metrics %f" % time.time()))
        self.assertEqual(r.status, 202, r)
        r = self.srv.post("/v1/ingest/generic", b"{oops")
        self.assertError(r, 400, "INVALID_JSON")
        r = self.srv.post("/v1/ingest/no-such-source", {"a": 1})
        self.assertError(r, 404, "UNKNOWN_SOURCE")
        r = self.srv.post("/metrics", {"a": 1})
        self.assertError(r, 405)
        after = self.scrape()

        def delta(name, **labels):
            return val(after, name, **labels) - val(before, name, **labels)

        req = "alertmap_http_requests_total"
        self.assertEqual(delta(req, route="ingest", code="202"), 1)
        self.assertEqual(delta(req, route="ingest", code="400"), 1)
        self.assertEqual(delta(req, route="ingest", code="404"), 1)
        self.assertEqual(delta(req, route="metrics", code="405"), 1)
        # the first scrape is counted by the second
        self.assertEqual(delta(req, route="metrics", code="200"), 1)
        self.assertEqual(delta("alertmap_ingest_alerts_total", result="created"), 1)
        self.assertEqual(delta("alertmap_ingest_alerts_total", result="deduplicated"), 0)
        rej = "alertmap_ingest_rejected_total"
        self.assertEqual(delta(rej, code="INVALID_JSON"), 1)
        self.assertEqual(delta(rej, code="UNKNOWN_SOURCE"), 1)
        self.assertEqual(delta(rej, code="INVALID_SIGNATURE"), 0)
        self.assertEqual(delta("alertmap_store_alerts_inserted_total"), 1)
        self.assertEqual(delta("alertmap_store_requests_total", result="ok"), 1)
        self.assertGreaterEqual(delta("alertmap_store_transactions_total"), 1)
        # the database holds what the counters say was written
        self.assertEqual(val(after, "alertmap_store_alerts_inserted_total"),
                         int(harness.psql(self.db.url, "select count(*) from alerts")))
        self.assertEqual(val(after, "alertmap_mappings_loaded"), len(harness.shipped_sources()))
        self.assertEqual(val(after, "alertmap_reloads_total", result="ok"), 0)
        now = time.time()
        start = val(after, "alertmap_start_time_seconds")
        self.assertTrue(now - 3600 < start <= now, start)
        loaded = val(after, "alertmap_reload_last_success_timestamp_seconds")
        self.assertTrue(start <= loaded <= now, loaded)

    def test_metrics_count_reloads(self):
        rel = "alertmap_reloads_total"

        def wait_for_reload(result, want):
            deadline = time.time() + 20 * harness.SLOW
            while time.time() < deadline:
                m = self.scrape()
                if m.get((rel, (("result", result),)), 0) >= want:
                    return m
                time.sleep(0.1)
            self.fail("%s{result=%s} did not reach %d" % (rel, result, want))

        before = self.scrape()
        ok0 = before[(rel, (("result", "ok"),))]
        failed0 = before[(rel, (("result", "failed"),))]
        loaded0 = before[("alertmap_reload_last_success_timestamp_seconds", ())]
        time.sleep(0.01)
        self.srv.signal(signal.SIGHUP)
        after = wait_for_reload("ok", ok0 + 1)
        self.assertEqual(after[(rel, (("result", "failed"),))], failed0)
        self.assertGreater(after[("alertmap_reload_last_success_timestamp_seconds", ())], loaded0)
        self.assertEqual(after[("alertmap_mappings_loaded", ())], len(harness.shipped_sources()))
        loaded1 = after[("alertmap_reload_last_success_timestamp_seconds", ())]

        # a broken file: the reload fails, the set in use and its time stay
        broken = os.path.join(self.srv.mappings, "zz-broken.yaml")
        with open(broken, "w") as f:
            f.write("source: [unclosed\n")
        try:
            self.srv.signal(signal.SIGHUP)
            after = wait_for_reload("failed", failed0 + 1)
        finally:
            os.unlink(broken)
        self.assertEqual(after[(rel, (("result", "ok"),))], ok0 + 1)
        self.assertEqual(after[("alertmap_reload_last_success_timestamp_seconds", ())], loaded1)
        self.assertEqual(after[("alertmap_mappings_loaded", ())], len(harness.shipped_sources()))
        self.assertEqual(self.srv.post("/v1/ingest/no-such-source", {"a": 1}).status, 404)


if __name__ == "__main__":
    harness.main()
