"""Deliveries that are not new alerts: a mapping's disposition rules answer
200 {"data": {"status": "ignored", ...}} and store nothing (a Grafana resolved
notification, an SNS subscription confirmation), a resolve notification
answers with the fingerprint it resolves; and the declarative verification
handshake: Okta's GET with X-Okta-Verification-Challenge is echoed as
{"verification": value} only with the hook's credential, a GET on a source
without a verification entry stays 405."""

import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

OKTA_SECRET = "okta-hook-secret-0123456789"


def grafana_resolved(title):
    return {
        "receiver": "alertmap", "status": "resolved", "orgId": 1,
        "title": "[RESOLVED] " + title,
        "alerts": [{"status": "resolved", "labels": {"alertname": title},
                    "annotations": {"summary": title},
                    "startsAt": "2024-05-03T11:00:00Z", "endsAt": "2024-05-03T11:20:00Z"}],
    }


class AcknowledgeTest(harness.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.okta = cls.start_server(env={"OKTA_WEBHOOK_SECRET": OKTA_SECRET})
        except BaseException:
            cls.tearDownClass()
            raise

    def test_ignored_delivery_is_200_and_stores_nothing(self):
        before = harness.count_rows(self.db.url)
        r = self.srv.post("/v1/ingest/grafana", json.dumps(grafana_resolved("Disk full")))
        self.assertEqual(r.status, 200, r)
        data = r.json["data"]
        self.assertEqual(data.get("status"), "ignored", r)
        self.assertEqual(data.get("disposition"), "ignore", r)
        self.assertEqual(data.get("rule"), "resolved", r)
        self.assertEqual(harness.count_rows(self.db.url), before, "an ignored delivery wrote rows")

    def test_sns_subscription_confirmation_is_acknowledged(self):
        before = harness.count_rows(self.db.url)
        body = {"Type": "SubscriptionConfirmation", "MessageId": "m-1", "Token": "t",
                "Message": "You have chosen to subscribe to the topic.",
                "SubscribeURL": "https://sns.example.invalid/?Action=ConfirmSubscription"}
        r = self.srv.post("/v1/ingest/guardduty", json.dumps(body))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["data"].get("rule"), "sns-subscription", r)
        self.assertEqual(harness.count_rows(self.db.url), before)

    def test_resolve_answers_the_fingerprint_and_stores_nothing(self):
        before = harness.count_rows(self.db.url)
        body = {"event": {"id": "E1", "event_type": "incident.resolved",
                          "occurred_at": "2024-05-03T06:10:00Z",
                          "data": {"id": "Q1", "title": "Nightly backup job failed",
                                   "urgency": "low"}}}
        r = self.srv.post("/v1/ingest/pagerduty", json.dumps(body))
        self.assertEqual(r.status, 200, r)
        data = r.json["data"]
        self.assertEqual((data.get("status"), data.get("disposition")), ("ignored", "resolve"), r)
        self.assertRegex(data.get("fingerprint") or "", "^[0-9a-f]{64}$", r)
        self.assertEqual(harness.count_rows(self.db.url), before)

    def test_okta_verification_get_is_echoed(self):
        r = self.okta.get("/v1/ingest/okta",
                          headers={"X-Okta-Verification-Challenge": "Yz3mR0-k_9.x",
                                   "Authorization": OKTA_SECRET})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, {"verification": "Yz3mR0-k_9.x"})

    def test_okta_verification_needs_the_credential(self):
        r = self.okta.get("/v1/ingest/okta", headers={"X-Okta-Verification-Challenge": "abc"})
        self.assertError(r, 401, "INVALID_SIGNATURE")

    def test_verification_value_is_never_reflected_raw(self):
        r = self.okta.get("/v1/ingest/okta",
                          headers={"X-Okta-Verification-Challenge": "<script>",
                                   "Authorization": OKTA_SECRET})
        self.assertError(r, 400, "INVALID_PAYLOAD")

    def test_get_without_verification_is_405(self):
        r = self.srv.get("/v1/ingest/grafana")
        self.assertError(r, 405, "METHOD_NOT_ALLOWED")


if __name__ == "__main__":
    harness.main()
