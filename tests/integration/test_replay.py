"""Replay protection (docs/security.md, "Replay window and idempotency"):
a delivery id (the mapping's delivery_id header, or Idempotency-Key) seen
before inside the window is answered like the first delivery, with the same
alert uuid(s), and nothing new is stored: not on the same process, not after
a restart, not on a second alertmapd sharing the database."""

import json
import os
import sys
import threading
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def stored(url):
    """Row counts without the deliveries table itself, and the sum of the
    duplicate counts (a replay counted as a duplicate would raise it)."""
    rows = harness.count_rows(url)
    rows.pop("deliveries", None)
    rows["duplicates"] = int(harness.psql(url, "select coalesce(sum(duplicate_count), 0) "
                                          "from alerts"))
    return rows


class ReplayTest(harness.ServerTestCase):

    def post_key(self, srv, key, title):
        body = json.dumps(harness.generic_payload(title)).encode()
        return srv.post("/v1/ingest/generic", body, headers={"Idempotency-Key": key})

    def test_idempotency_key_replay_same_process(self):
        key = "key-" + uuid.uuid4().hex
        r1 = self.post_key(self.srv, key, "replay same process")
        self.assertEqual(r1.status, 202, r1)
        self.assertIsNone(r1.header("Idempotent-Replayed"))
        before = stored(self.db.url)
        r2 = self.post_key(self.srv, key, "replay same process")
        self.assertEqual(r2.status, 202, r2)
        self.assertEqual(r2.raw, r1.raw, "a replay gets the first answer, byte for byte")
        self.assertEqual(r2.header("Idempotent-Replayed"), "true")
        # even a changed body: the id names the delivery
        r3 = self.post_key(self.srv, key, "replay same process, other body")
        self.assertEqual(r3.raw, r1.raw)
        self.assertEqual(stored(self.db.url), before, "a replay stored something")
        # the same key for another source is another delivery
        r4 = self.srv.post("/v1/ingest/generic", json.dumps(
            harness.generic_payload("other key")).encode(),
            headers={"Idempotency-Key": key + "-2"})
        self.assertEqual(r4.status, 202)
        self.assertNotEqual(harness.ingest_uuids(r4), harness.ingest_uuids(r1))

    def test_mapping_delivery_header(self):
        _, payload, _ = harness.accepted_sample("github")
        delivery = str(uuid.uuid4())
        r1 = self.srv.post("/v1/ingest/github", payload, headers={"X-GitHub-Delivery": delivery})
        self.assertEqual(r1.status, 202, r1)
        before = stored(self.db.url)
        r2 = self.srv.post("/v1/ingest/github", payload, headers={"X-GitHub-Delivery": delivery})
        self.assertEqual((r2.status, r2.raw), (r1.status, r1.raw))
        self.assertEqual(stored(self.db.url), before)
        # without the header the same body is an ordinary (deduplicated) ingest
        r3 = self.srv.post("/v1/ingest/github", payload)
        self.assertEqual(r3.status, 202)
        self.assertIs(r3.json["data"]["is_duplicate"], True)

    def test_replay_across_restart_and_processes(self):
        key = "restart-" + uuid.uuid4().hex
        r1 = self.post_key(self.srv, key, "replay across processes")
        self.assertEqual(r1.status, 202, r1)
        before = stored(self.db.url)
        other = self.start_server()
        r2 = self.post_key(other, key, "replay across processes")
        self.assertEqual((r2.status, r2.raw), (202, r1.raw))
        other.stop()
        restarted = self.start_server()
        r3 = self.post_key(restarted, key, "replay across processes")
        self.assertEqual((r3.status, r3.raw), (202, r1.raw))
        self.assertEqual(stored(self.db.url), before)

    def test_concurrent_duplicates(self):
        key = "conc-" + uuid.uuid4().hex
        body = json.dumps(harness.generic_payload("replay concurrent")).encode()
        before = stored(self.db.url)
        n = 12
        barrier = threading.Barrier(n, timeout=30 * harness.SLOW)
        results = [None] * n

        def post(i):
            barrier.wait()
            results[i] = self.srv.post("/v1/ingest/generic", body,
                                       headers={"Idempotency-Key": key})

        harness.run_threads(n, post, timeout=120)
        firsts = [r for r in results if r.status == 202 and not r.header("Idempotent-Replayed")]
        self.assertEqual(len(firsts), 1, [(r.status, r.raw) for r in results])
        for r in results:
            if r.status == 409:
                self.assertError(r, 409, "DELIVERY_IN_PROGRESS")
                self.assertEqual(r.header("Retry-After"), "1")
            else:
                self.assertEqual((r.status, r.raw), (202, firsts[0].raw))
        after = stored(self.db.url)
        self.assertEqual(after["alerts"], before["alerts"] + 1)
        self.assertEqual(after["duplicates"], before["duplicates"])
        # a retry after the first finished gets the first answer
        again = self.srv.post("/v1/ingest/generic", body, headers={"Idempotency-Key": key})
        self.assertEqual((again.status, again.raw), (202, firsts[0].raw))

    def test_unfinished_claim_in_flight_then_taken_over(self):
        key = "k:takeover-" + uuid.uuid4().hex
        harness.psql(self.db.url, "insert into deliveries (source_name, delivery_key, "
                     "claim_token) values ('generic', '%s', 'x')" % key)
        r = self.post_key(self.srv, key[2:], "replay takeover")
        self.assertError(r, 409, "DELIVERY_IN_PROGRESS")
        # the claimer died: after the takeover timeout a retry is ingested
        harness.psql(self.db.url, "update deliveries set claimed_at = now() - interval '61 s' "
                     "where delivery_key = '%s'" % key)
        before = stored(self.db.url)
        r = self.post_key(self.srv, key[2:], "replay takeover")
        self.assertEqual(r.status, 202, r)
        self.assertIsNone(r.header("Idempotent-Replayed"))
        self.assertEqual(stored(self.db.url)["alerts"], before["alerts"] + 1)
        self.assertEqual(harness.psql(self.db.url, "select status from deliveries where "
                                      "delivery_key = '%s'" % key), "202")

    def test_outside_the_window_is_a_new_delivery(self):
        key = "old-" + uuid.uuid4().hex
        r1 = self.post_key(self.srv, key, "replay window")
        harness.psql(self.db.url, "update deliveries set claimed_at = now() - interval '25 h' "
                     "where delivery_key = 'k:%s'" % key)
        r2 = self.post_key(self.srv, key, "replay window")
        self.assertEqual(r2.status, 202)
        self.assertIsNone(r2.header("Idempotent-Replayed"))
        # a new delivery of the same alert: the fingerprint dedup counts it
        self.assertEqual(r2.json["data"]["alert_uuid"], r1.json["data"]["alert_uuid"])
        self.assertIs(r2.json["data"]["is_duplicate"], True)

    def test_refused_request_claims_nothing(self):
        key = "bad-" + uuid.uuid4().hex
        r = self.srv.post("/v1/ingest/generic", b"{not json", headers={"Idempotency-Key": key})
        self.assertError(r, 400, "INVALID_JSON")
        r = self.post_key(self.srv, key, "replay after a refusal")
        self.assertEqual(r.status, 202)
        self.assertIsNone(r.header("Idempotent-Replayed"))
        r = self.post_key(self.srv, "x" * 201, "replay key too long")
        self.assertError(r, 400, "INVALID_DELIVERY_ID")


if __name__ == "__main__":
    harness.main()
