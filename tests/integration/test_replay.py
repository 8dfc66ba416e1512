"""Replay protection (docs/security.md, "Replay window and idempotency"):
a delivery id (the mapping's delivery_id header, or Idempotency-Key) seen
before inside the window is answered like the first delivery, with the same
alert uuid(s), and nothing new is stored: not on the same process, not after
a restart, not on a second alertmapd sharing the database."""

import hashlib
import hmac
import json
import os
import sys
import threading
import time
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def stored(url):
    """Row counts without the deliveries table itself and the API keys (each
    server the harness starts makes one), and the sum of the duplicate
    counts (a replay counted as a duplicate would raise it)."""
    rows = harness.count_rows(url)
    rows.pop("deliveries", None)
    rows.pop("api_keys", None)
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


STRIPE_MAPPING = """source: stripedemo
display_name: Stripe-style signed demo
signature:
  scheme: hmac-sha256
  header: Demo-Signature
  timestamp_param: t
  signature_param: v1
  delivery_id: Demo-Event-Id
  secret_env: [STRIPEDEMO_WEBHOOK_SECRET, STRIPEDEMO_WEBHOOK_SECRET_OLD]
match:
  - object: alert
    name: alert
fields:
  title: {path: alert.title, default: Untitled demo alert}
"""

SLACK_MAPPING = """source: slackdemo
display_name: Slack-style signed demo
signature:
  scheme: hmac-sha256
  header: X-Demo-Signature
  prefix: "v0="
  timestamp_header: X-Demo-Timestamp
  signed_text: "v0:{timestamp}:{header:X-Demo-Event}:{body}"
  delivery_id: X-Demo-Event
  secret_env: SLACKDEMO_WEBHOOK_SECRET
match:
  - object: alert
    name: alert
fields:
  title: {path: alert.title, default: Untitled demo alert}
"""

SECRET, OLD = "s3cret-now", "s3cret-before"


def mac(secret, text):
    return hmac.new(secret.encode(), text, hashlib.sha256).hexdigest()


class SignedSchemesOverHttpTest(harness.ServerTestCase):
    """The new schemes end to end: accepted when valid, 401 with the reason
    and no row otherwise, and a signed delivery replayed gets the first
    answer."""

    @classmethod
    def setUpClass(cls):
        cls.db = harness.TempDatabase(cls.__name__)
        cls.servers = []
        try:
            s = harness.Server(cls.db.url, env={"STRIPEDEMO_WEBHOOK_SECRET": SECRET,
                                                "STRIPEDEMO_WEBHOOK_SECRET_OLD": OLD,
                                                "SLACKDEMO_WEBHOOK_SECRET": SECRET})
            for name, text in (("stripedemo.yaml", STRIPE_MAPPING),
                               ("slackdemo.yaml", SLACK_MAPPING)):
                with open(os.path.join(s.mappings, name), "w") as f:
                    f.write(text)
            cls.servers.append(s)
            cls.srv = s.start()
        except BaseException:
            cls.tearDownClass()
            raise

    def refused(self, path, body, headers, reason):
        before = harness.count_rows(self.db.url)
        r = self.srv.post(path, body, key=None, headers=headers)
        err = self.assertError(r, 401, "INVALID_SIGNATURE")
        self.assertIn(reason, err["message"])
        self.assertEqual(harness.count_rows(self.db.url), before, "a refused request wrote")

    def test_stripe_style(self):
        body = json.dumps({"alert": {"title": "stripe-style " + uuid.uuid4().hex}}).encode()
        now = int(time.time())

        def hdr(ts, *sigs, event=None):
            h = {"Demo-Signature": ",".join(["t=%d" % ts] + ["v1=" + x for x in sigs])}
            if event:
                h["Demo-Event-Id"] = event
            return h

        p = "/v1/ingest/stripedemo"
        good = mac(SECRET, b"%d." % now + body)
        self.refused(p, body, hdr(now - 400, mac(SECRET, b"%d." % (now - 400) + body)),
                     "is too old")
        self.refused(p, body, hdr(now + 400, mac(SECRET, b"%d." % (now + 400) + body)),
                     "is in the future")
        self.refused(p, body, hdr(now, mac("wrong", b"%d." % now + body)), "does not match")
        self.refused(p, body, hdr(now, good[:-2]), "is not a hex hmac-sha256 digest")
        self.refused(p, body + b" ", hdr(now, good), "does not match")
        self.refused(p, body, {}, "missing signature header 'Demo-Signature'")
        self.refused(p, body, {"Demo-Signature": "v1=" + good}, "has no 't=' timestamp")
        event = "evt_" + uuid.uuid4().hex
        # during a rotation: the old secret's signature and the new one's
        r1 = self.srv.post(p, body, key=None, headers=hdr(now, mac(OLD, b"%d." % now + body), good,
                                                 event=event))
        self.assertEqual(r1.status, 202, r1)
        before = stored(self.db.url)
        r2 = self.srv.post(p, body, key=None, headers=hdr(now, good, event=event))
        self.assertEqual((r2.status, r2.raw), (202, r1.raw))
        self.assertEqual(r2.header("Idempotent-Replayed"), "true")
        self.assertEqual(stored(self.db.url), before)
        # a replay still has to be signed: the signature is checked first
        self.refused(p, body, hdr(now, mac("wrong", b"%d." % now + body), event=event),
                     "does not match")

    def test_slack_style_with_a_signed_header(self):
        body = json.dumps({"alert": {"title": "slack-style " + uuid.uuid4().hex}}).encode()
        now = str(int(time.time()))
        event = uuid.uuid4().hex
        text = ("v0:%s:%s:" % (now, event)).encode() + body
        h = {"X-Demo-Signature": "v0=" + mac(SECRET, text), "X-Demo-Timestamp": now,
             "X-Demo-Event": event}
        p = "/v1/ingest/slackdemo"
        self.refused(p, body, dict(h, **{"X-Demo-Event": event + "x"}), "does not match")
        self.refused(p, body, {k: v for k, v in h.items() if k != "X-Demo-Event"},
                     "missing header 'X-Demo-Event' (part of the signed text)")
        self.refused(p, body, {k: v for k, v in h.items() if k != "X-Demo-Timestamp"},
                     "missing timestamp header 'X-Demo-Timestamp'")
        self.refused(p, body, dict(h, **{"X-Demo-Timestamp": str(int(now) - 1000)}),
                     "is too old")
        r = self.srv.post(p, body, key=None, headers=h)
        self.assertEqual(r.status, 202, r)
        r2 = self.srv.post(p, body, key=None, headers=h)
        self.assertEqual((r2.status, r2.raw), (202, r.raw))


if __name__ == "__main__":
    harness.main()
