"""Two alertmapd processes on one database (as behind a load balancer):
dedup stays exact when identical alerts race through both, and unique alerts
from both are all stored once."""

import json
import os
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DUPS = 60
UNIQUE = 300


class TwoProcessesTest(harness.ServerTestCase):
    # several writers per process, so that the race is between many connections
    server_args = ["--writers", "3"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.srv2 = cls.start_server(args=cls.server_args)
        except BaseException:
            cls.tearDownClass()
            raise

    def test_identical_posts_through_both_make_one_alert(self):
        body = json.dumps(harness.generic_payload("two processes, one alert")).encode()
        barrier = threading.Barrier(DUPS, timeout=30 * harness.SLOW)
        results = [None] * DUPS

        def post(i):
            try:
                barrier.wait()
                srv = self.srv if i % 2 == 0 else self.srv2
                results[i] = srv.post("/v1/ingest/generic", body)
            except Exception as e:  # noqa: BLE001 - reported below
                results[i] = e

        harness.run_threads(DUPS, post, timeout=120)
        bad = [r for r in results if not isinstance(r, harness.Response) or r.status != 202]
        self.assertEqual(bad, [], "non-202 answers")
        uuids = {harness.ingest_uuids(r)[0] for r in results}
        self.assertEqual(len(uuids), 1, "answers carry different alert uuids: %s" % uuids)
        u = uuids.pop()
        firsts = [r for r in results if r.json["data"].get("is_duplicate") is False]
        self.assertEqual(len(firsts), 1, "exactly one answer creates the alert")
        counts = sorted(r.json["data"].get("duplicate_count") for r in results
                        if r.json["data"].get("is_duplicate") is True)
        self.assertEqual(counts, list(range(1, DUPS)))
        self.assertEqual(harness.psql(self.db.url, "select count(*) from alerts where uuid ="
                                      " '%s'" % u), "1")
        self.assertEqual(harness.psql(self.db.url, "select duplicate_count from alerts "
                                      "where uuid = '%s'" % u), str(DUPS - 1))
        self.assertEqual(harness.followup_count(self.db.url, u), 1)

    def test_unique_posts_through_both_are_all_stored(self):
        results = [None] * UNIQUE
        t0 = time.monotonic()

        def post(i):
            for k in range(i, UNIQUE, 16):
                body = json.dumps(harness.generic_payload("two processes %d" % k)).encode()
                srv = self.srv if k % 2 == 0 else self.srv2
                try:
                    results[k] = srv.post("/v1/ingest/generic", body)
                except Exception as e:  # noqa: BLE001 - reported below
                    results[k] = e

        harness.run_threads(16, post, timeout=180)
        took = time.monotonic() - t0
        bad = [r for r in results if not isinstance(r, harness.Response) or r.status != 202]
        self.assertEqual(bad, [], "non-202 answers")
        uuids = {harness.ingest_uuids(r)[0] for r in results}
        self.assertEqual(len(uuids), UNIQUE)
        self.assertTrue(all(r.json["data"].get("is_duplicate") is False for r in results))
        stored = set(harness.psql(self.db.url, "select uuid from alerts where title like"
                                  " 'two processes %'").split())
        self.assertEqual(stored, uuids)
        print("two processes: %d unique alerts in %.2f s (%.0f/s, 16 clients)" %
              (UNIQUE, took, UNIQUE / took), file=sys.stderr)


if __name__ == "__main__":
    harness.main()
