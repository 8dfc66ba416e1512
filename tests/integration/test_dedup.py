"""Deduplication under concurrency: 50 identical posts at once make one alert."""

import json
import os
import sys
import threading

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

N = 50


class DedupTest(harness.ServerTestCase):

    def test_concurrent_identical_posts_make_one_alert(self):
        body = json.dumps(harness.generic_payload("dedup under concurrency")).encode()
        before = harness.count_rows(self.db.url)
        barrier = threading.Barrier(N, timeout=30 * harness.SLOW)
        results = [None] * N

        def post(i):
            try:
                barrier.wait()
                results[i] = self.srv.post("/v1/ingest/generic", body)
            except Exception as e:  # noqa: BLE001 - reported below
                results[i] = e

        harness.run_threads(N, post, timeout=120)
        bad = [r for r in results if not isinstance(r, harness.Response) or r.status != 202]
        self.assertEqual(bad, [], "non-202 answers")
        uuids = {harness.ingest_uuids(r)[0] for r in results}
        self.assertEqual(len(uuids), 1, "answers carry different alert uuids: %s" % uuids)
        u = uuids.pop()
        firsts = [r for r in results if r.json["data"].get("is_duplicate") is False]
        self.assertEqual(len(firsts), 1, "exactly one answer creates the alert")
        dups = [r.json["data"] for r in results if r.json["data"].get("is_duplicate") is True]
        self.assertEqual(len(dups), N - 1)
        for d in dups:
            self.assertEqual(d.get("status"), "deduplicated")
        # every duplicate answer reports a distinct count, 1..N-1
        self.assertEqual(sorted(d.get("duplicate_count") for d in dups), list(range(1, N)))

        after = harness.count_rows(self.db.url)
        self.assertEqual(after["alerts"], before["alerts"] + 1)
        self.assertEqual(after["enrichment_followups"], before["enrichment_followups"] + 1)
        self.assertEqual(harness.psql(self.db.url, "select duplicate_count from alerts "
                                      "where uuid = '%s'" % u), str(N - 1))
        g = self.srv.get("/v1/alerts/" + u)
        self.assertEqual(g.status, 200, g)
        self.assertEqual(g.json["data"].get("duplicate_count"), N - 1)
        self.assertEqual(harness.followup_count(self.db.url, u), 1)

    def test_sequential_duplicate_answer(self):
        body = json.dumps(harness.generic_payload("dedup sequential")).encode()
        r1 = self.srv.post("/v1/ingest/generic", body)
        self.assertEqual(r1.status, 202, r1)
        self.assertEqual(r1.json["data"].get("status"), "queued")
        self.assertIs(r1.json["data"].get("is_duplicate"), False)
        self.assertIsNone(r1.json["data"].get("duplicate_count"))
        r2 = self.srv.post("/v1/ingest/generic", body)
        self.assertEqual(r2.status, 202, r2)
        self.assertEqual(r2.json["data"],
                         {"alert_uuid": harness.ingest_uuids(r1)[0], "status": "deduplicated",
                          "is_duplicate": True, "duplicate_count": 1})


if __name__ == "__main__":
    harness.main()
