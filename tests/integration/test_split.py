"""One request, many alerts: the alertmanager mapping splits its "alerts"
array. Every element becomes its own stored alert (own uuid, own raw_payload,
own enrichment job); a repeated notification deduplicates element by element;
an empty array, a bad element or too many elements is refused and writes
nothing; the bearer token of the mapping's signature block is enforced."""

import copy
import json
import os
import sys
import uuid as uuidlib

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PATH = "/v1/ingest/alertmanager"
TOKEN = "am-bearer-token-0123456789"


def element(title, instance, severity="critical", description=None, status="firing"):
    """One Alertmanager alert as the webhook receiver sends it."""
    el = {
        "status": status,
        "labels": {"alertname": "SplitTest", "instance": instance, "job": "node",
                   "severity": severity},
        "annotations": {"summary": title},
        "startsAt": "2024-05-06T08:14:31.518734211Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2024-05-06T09:00:00Z",
        "generatorURL": "http://prometheus.example.net:9090/graph?g0.expr=up+%3D%3D+0",
        "fingerprint": uuidlib.uuid4().hex[:16],
    }
    if description is not None:
        el["annotations"]["description"] = description
    return el


def notification(alerts):
    """The webhook envelope around alerts."""
    return {
        "version": "4",
        "groupKey": "{}:{alertname=\"SplitTest\"}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "alertmap",
        "groupLabels": {"alertname": "SplitTest"},
        "commonLabels": {"alertname": "SplitTest", "job": "node"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.net:9093",
        "alerts": alerts,
    }


def unique(label):
    return "%s %s" % (label, uuidlib.uuid4().hex[:8])


def titles_in_db(url, titles):
    """How many stored alerts carry one of titles."""
    quoted = ",".join("'%s'" % t.replace("'", "''") for t in titles)
    return int(harness.psql(url, "select count(*) from alerts where title in (%s)" % quoted))


class SplitTest(harness.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.signed = cls.start_server(env={"ALERTMANAGER_WEBHOOK_SECRET": TOKEN})
        except BaseException:
            cls.tearDownClass()
            raise

    def post(self, payload, srv=None, **kw):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return (srv or self.srv).post(PATH, body, **kw)

    def answer_list(self, r):
        """data.alerts of a 202 answer, checked against the top-level fields."""
        self.assertEqual(r.status, 202, r)
        data = r.json["data"]
        lst = data.get("alerts")
        self.assertIsInstance(lst, list, "a split request lists every alert: %r" % r)
        self.assertTrue(lst, r)
        for k in ("alert_uuid", "status", "is_duplicate", "duplicate_count"):
            self.assertEqual(data.get(k), lst[0].get(k), "top-level %s is the first alert's" % k)
        return lst

    def rejected(self, payload, status, code, srv=None, **kw):
        before = harness.count_rows(self.db.url)
        r = self.post(payload, srv=srv, **kw)
        err = self.assertError(r, status, code)
        self.assertEqual(harness.count_rows(self.db.url), before,
                         "a refused request (%d) wrote rows" % status)
        return err

    def test_every_element_is_its_own_alert(self):
        els = [element(unique("brute force on bastion"), "10.20.1.5:9100",
                       description="failed logins from 203.0.113.45"),
               element(unique("new port on db"), "db-01.corp.example.net:9100", "warning"),
               element(unique("auditd stopped"), "[2001:db8:40::12]:9100", "info"),
               element(unique("cert expired"), "https://portal.example.com", "high",
                       status="resolved")]
        payload = notification(els)
        before = harness.count_rows(self.db.url)
        lst = self.answer_list(self.post(payload))
        self.assertEqual(len(lst), len(els), "one outcome per element")
        uuids = [o.get("alert_uuid") for o in lst]
        self.assertEqual(len(set(uuids)), len(els), "every element has its own uuid")
        for o in lst:
            self.assertEqual(o.get("status"), "queued", o)
            self.assertIs(o.get("is_duplicate"), False, o)
            self.assertIsNone(o.get("duplicate_count"), o)

        after = harness.count_rows(self.db.url)
        self.assertEqual(after["alerts"], before["alerts"] + len(els))
        self.assertEqual(after["enrichment_followups"], before["enrichment_followups"] + len(els))

        severities = ["Critical", "Medium", "Informational", "High"]
        first_iocs = [("ip", "10.20.1.5", "labels.instance"),
                      ("ip", "203.0.113.45", "annotations.description")]
        for i, (u, el) in enumerate(zip(uuids, els)):
            with self.subTest(element=i):
                g = self.srv.get("/v1/alerts/" + u)
                self.assertEqual(g.status, 200, g)
                got = g.json["data"]
                self.assertEqual(got.get("uuid"), u)
                # answers are in element order
                self.assertEqual(got.get("title"), el["annotations"]["summary"])
                self.assertEqual(got.get("source_name"), "alertmanager")
                self.assertEqual(got.get("severity"), severities[i])
                self.assertEqual(got.get("occurred_at"), "2024-05-06T08:14:31.518734Z")
                self.assertEqual(got.get("detection_rule_ref"), "SplitTest")
                self.assertEqual(got.get("raw_payload"), el,
                                 "raw_payload is the element, not the whole notification")
                self.assertEqual(harness.followup_count(self.db.url, u), 1,
                                 "one enrichment job per alert")
                self.assertEqual(got.get("status"), "Open")
                self.assertIn(got.get("enrichment_status"), ("Pending", "Enriched"))
                if i == 0:
                    key = lambda x: (x.get("type"), x.get("value"), x.get("source_field"))  # noqa
                    self.assertEqual([key(x) for x in got.get("indicators", [])], first_iocs)

    def test_same_notification_again_is_deduplicated(self):
        els = [element(unique("dedup %d" % i), "10.9.8.%d:9100" % i) for i in range(3)]
        payload = notification(els)
        first = self.answer_list(self.post(payload))
        uuids = [o["alert_uuid"] for o in first]
        before = harness.count_rows(self.db.url)
        # Alertmanager repeats a group at repeat_interval, byte for byte
        for n in (1, 2):
            again = self.answer_list(self.post(payload))
            self.assertEqual([o.get("alert_uuid") for o in again], uuids)
            for o in again:
                self.assertEqual(o.get("status"), "deduplicated", o)
                self.assertIs(o.get("is_duplicate"), True, o)
                self.assertEqual(o.get("duplicate_count"), n, o)
        self.assertEqual(harness.count_rows(self.db.url), before, "duplicates wrote new rows")
        for u in uuids:
            self.assertEqual(harness.followup_count(self.db.url, u), 1)
            self.assertEqual(self.srv.get("/v1/alerts/" + u).json["data"].get("duplicate_count"),
                             2)

    def test_new_and_known_alert_in_one_request(self):
        known = element(unique("known"), "10.7.7.7:9100")
        self.answer_list(self.post(notification([known])))
        # the known alert resolves while a new one fires: same title and host
        resolved = copy.deepcopy(known)
        resolved["status"] = "resolved"
        resolved["endsAt"] = "2024-05-06T09:00:00Z"
        fresh = element(unique("fresh"), "10.7.7.8:9100")
        before = harness.count_rows(self.db.url)
        lst = self.answer_list(self.post(notification([resolved, fresh])))
        self.assertEqual([o.get("is_duplicate") for o in lst], [True, False], lst)
        self.assertEqual([o.get("status") for o in lst], ["deduplicated", "queued"], lst)
        after = harness.count_rows(self.db.url)
        self.assertEqual(after["alerts"], before["alerts"] + 1)
        self.assertEqual(after["enrichment_followups"], before["enrichment_followups"] + 1)

    def test_repeated_element_in_one_request(self):
        # two identical elements normalize to one fingerprint: one alert
        el = element(unique("twice"), "10.6.6.6:9100")
        before = harness.count_rows(self.db.url)
        lst = self.answer_list(self.post(notification([el, copy.deepcopy(el)])))
        self.assertEqual(len(lst), 2, lst)
        self.assertEqual(lst[0].get("alert_uuid"), lst[1].get("alert_uuid"), lst)
        self.assertEqual([o.get("is_duplicate") for o in lst], [False, True], lst)
        after = harness.count_rows(self.db.url)
        self.assertEqual(after["alerts"], before["alerts"] + 1)
        self.assertEqual(after["enrichment_followups"], before["enrichment_followups"] + 1)

    def test_empty_alerts_array_422_names_split(self):
        for status in ("firing", "resolved"):
            with self.subTest(status=status):
                payload = notification([])
                payload["status"] = status
                err = self.rejected(payload, 422, "INVALID_PAYLOAD")
                self.assertRegex(err["message"], r"^split \(alertmanager\.yaml:\d+\): ")
                self.assertIn("alerts is missing, empty or not an array", err["message"])

    def test_alerts_not_an_array_422_names_match_rule(self):
        cases = {"missing": ({k: v for k, v in notification([]).items() if k != "alerts"},
                             "alerts is not present"),
                 "object": (dict(notification([]), alerts={"0": element("x", "h:1")}),
                            "alerts is not an array"),
                 "null": (dict(notification([]), alerts=None), "alerts is not present")}
        for case, (payload, why) in cases.items():
            with self.subTest(case=case):
                err = self.rejected(payload, 422, "INVALID_PAYLOAD")
                self.assertRegex(err["message"],
                                 r"^match rule 'alerts-array' \(alertmanager\.yaml:\d+\) "
                                 r"failed: " + why + "$")

    def test_all_or_nothing(self):
        # three good elements and a bad one: none of the good ones is stored
        good = [element(unique("atomic %d" % i), "10.5.5.%d:9100" % i) for i in range(3)]
        titles = [e["annotations"]["summary"] for e in good]
        for bad, idx in (("SshAuthFailuresHigh", 3), (None, 3), ([good[0]], 3), (7, 3)):
            with self.subTest(bad=bad):
                err = self.rejected(notification(good + [bad]), 422, "INVALID_PAYLOAD")
                self.assertRegex(err["message"], r"^split \(alertmanager\.yaml:\d+\): "
                                 r"element %d of alerts is not an object$" % idx)
                self.assertEqual(titles_in_db(self.db.url, titles), 0)
        # a bad element first: the message names element 0
        err = self.rejected(notification(["x"] + good), 422, "INVALID_PAYLOAD")
        self.assertIn("element 0 of alerts is not an object", err["message"])
        # more elements than the per-request limit: LIMIT_EXCEEDED, nothing stored
        many = [{"labels": {"alertname": "Flood", "instance": "10.4.%d.%d:9100" % (i // 250,
                                                                                  i % 250)}}
                for i in range(1001)]
        err = self.rejected(notification(many), 422, "LIMIT_EXCEEDED")
        self.assertIn("1000", err["message"])
        self.assertEqual(titles_in_db(self.db.url, ["Flood"]), 0)
        # the same good elements alone are accepted afterwards, all of them
        lst = self.answer_list(self.post(notification(good)))
        self.assertEqual([o.get("is_duplicate") for o in lst], [False] * 3)
        self.assertEqual(titles_in_db(self.db.url, titles), 3)

    def test_limit_is_inclusive(self):
        # exactly 1000 elements is within the limit
        tag = uuidlib.uuid4().hex[:8]
        many = [{"labels": {"alertname": "Burst %s %d" % (tag, i)}} for i in range(1000)]
        before = harness.count_rows(self.db.url)
        lst = self.answer_list(self.post(notification(many)))
        self.assertEqual(len(lst), 1000)
        self.assertEqual(len({o["alert_uuid"] for o in lst}), 1000)
        after = harness.count_rows(self.db.url)
        self.assertEqual(after["alerts"], before["alerts"] + 1000)
        self.assertEqual(after["enrichment_followups"], before["enrichment_followups"] + 1000)

    def test_bearer_token(self):
        payload = json.dumps(notification([element(unique("signed"), "10.3.3.3:9100")])).encode()
        for case, headers in {"missing": {}, "wrong": {"Authorization": "Bearer nope"},
                              "other scheme": {"Authorization": "Basic " + TOKEN + "x"}}.items():
            with self.subTest(case=case):
                # no API key either: only the token could vouch for it
                err = self.rejected(payload, 401, "INVALID_SIGNATURE", srv=self.signed,
                                    headers=headers, key=None)
                self.assertNotIn(TOKEN, err["message"], "the secret leaks into the answer")
        r = self.post(payload, srv=self.signed, headers={"Authorization": "Bearer " + TOKEN})
        lst = self.answer_list(r)
        self.assertIs(lst[0].get("is_duplicate"), False)
        # "Bearer " is optional on the wire; the same alert again deduplicates
        r = self.post(payload, srv=self.signed, headers={"Authorization": TOKEN})
        self.assertIs(self.answer_list(r)[0].get("is_duplicate"), True)
        # an ingest API key as the bearer credentials works while the token is set
        other = json.dumps(notification([element(unique("keyed"), "10.3.3.4:9100")])).encode()
        r = self.post(other, srv=self.signed,
                      headers={"Authorization": "Bearer " + self.signed.key})
        self.assertIs(self.answer_list(r)[0].get("is_duplicate"), False)


if __name__ == "__main__":
    harness.main()
