"""Every shipped source's sample payloads, posted to a real alertmapd: accepted
ones are stored exactly as their expected file says, rejected ones write nothing."""

import json
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SHIPPED = ("sentinel", "elastic", "splunk", "generic", "alertmanager")


def contains_element(payload, element):
    """True when element is payload itself or an element of an array inside it."""
    if payload == element:
        return True
    if isinstance(payload, dict):
        return any(contains_element(v, element) for v in payload.values())
    if isinstance(payload, list):
        return any(contains_element(v, element) for v in payload)
    return False


def sample_headers(source, name):
    """The request headers a sample declares in NAME.headers.json, or {}."""
    path = os.path.join(harness.ROOT, "mappings", "samples", source,
                        name[:-5] + ".headers.json")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def split_elements(source, payload):
    """The elements of the array a mapping splits on (a plain dotted path), or
    None when the mapping has no split."""
    text = harness.top_level_block(harness.shipped_sources()[source], "split")
    if text is None:
        return None
    text = text.split("#", 1)[0].strip()
    m = re.match(r"\{\s*path:\s*([^,}]+)", text)  # {path: P, optional: true}
    if m:
        text = m.group(1)
    node = payload
    for name in text.strip().strip("'\"").split("."):
        node = node.get(name) if isinstance(node, dict) else None
    return node if isinstance(node, list) else None


class SamplesTest(harness.ServerTestCase):
    # Samples of one source may normalize to the same fingerprint; every
    # sample must make its own alert here.
    server_env = {"ALERTMAP_DEDUP_WINDOW": "0"}

    def test_shipped_sources_have_samples(self):
        sources = harness.shipped_sources()
        for s in SHIPPED:
            self.assertIn(s, sources, "mapping for %s is not shipped" % s)
            ok = [x for x in harness.samples(s) if "error" not in x[2]]
            self.assertTrue(ok, "source %s ships no accepted sample" % s)

    def check_source(self, source):
        smp = harness.samples(source)
        self.assertTrue(smp, "no samples for %s" % source)
        for name, payload, expected in smp:
            with self.subTest(sample=name):
                before = harness.count_rows(self.db.url)
                r = self.srv.post("/v1/ingest/" + source, payload,
                                  headers=sample_headers(source, name))
                stored = [a for a in expected.get("alerts", []) if "disposition" not in a]
                if "acknowledged" in expected or ("alerts" in expected and not stored):
                    # acknowledged: 200, nothing stored
                    self.assertEqual(r.status, 200, r)
                    self.assertEqual(r.json["data"].get("status"), "ignored", r)
                    self.assertEqual(harness.count_rows(self.db.url), before,
                                     "an acknowledged sample wrote rows")
                    continue
                if "error" in expected:
                    err = self.assertError(r, 422, expected["error"].get("code"))
                    if expected["error"].get("message") not in (None, "$dynamic"):
                        self.assertEqual(err["message"], expected["error"]["message"])
                    self.assertEqual(harness.count_rows(self.db.url), before,
                                     "a rejected sample wrote rows")
                    continue
                self.assertEqual(r.status, 202, r)
                data = r.json["data"]
                want = stored
                uuids = harness.ingest_uuids(r)
                self.assertEqual(len(uuids), len(want), r)
                if "alert_uuid" in data:
                    self.assertEqual(data.get("status"), "queued", r)
                    self.assertIs(data.get("is_duplicate"), False, r)
                sent = json.loads(payload)
                elements = split_elements(source, sent)
                if len(stored) != len(expected["alerts"]):
                    elements = None  # some elements are not stored: indexes differ
                if elements is not None:
                    self.assertEqual(len(elements), len(uuids), "one alert per split element")
                for i, (u, exp) in enumerate(zip(uuids, want)):
                    g = self.srv.get("/v1/alerts/" + u)
                    self.assertEqual(g.status, 200, g)
                    got = g.json["data"]
                    self.assertEqual(got.get("uuid"), u)
                    # indicators in extraction order (stored by position)
                    exp = dict(exp)
                    exp_iocs = exp.pop("indicators", [])
                    diffs = harness.match_expected(exp, got)
                    self.assertEqual(diffs, [], "GET /v1/alerts/%s differs from %s" % (u, name))
                    got_iocs = got.get("indicators")
                    self.assertIsInstance(got_iocs, list, g)
                    key = lambda i: (i.get("type"), i.get("value"), i.get("source_field"))  # noqa
                    self.assertEqual(list(map(key, got_iocs)), list(map(key, exp_iocs)),
                                     "indicators of %s" % name)
                    if elements is not None:
                        self.assertEqual(got.get("raw_payload"), elements[i],
                                         "raw_payload of a split alert is its own element")
                    elif len(uuids) == 1:
                        self.assertEqual(got.get("raw_payload"), sent)
                    else:
                        self.assertTrue(contains_element(sent, got.get("raw_payload")),
                                        "raw_payload of a split alert is not an element")
                    self.assertEqual(got.get("status"), "Open")
                    # the enrichment workers (on by default, no providers here)
                    # may already have finished the job
                    self.assertIn(got.get("enrichment_status"), ("Pending", "Enriched"))
                    self.assertEqual(harness.followup_count(self.db.url, u), 1,
                                     "enrichment jobs of %s" % u)
                after = harness.count_rows(self.db.url)
                self.assertEqual(after["alerts"], before["alerts"] + len(uuids))
                self.assertEqual(after["enrichment_followups"],
                                 before["enrichment_followups"] + len(uuids))


def _add(source):
    def t(self):
        self.check_source(source)
    t.__name__ = "test_samples_" + source
    t.__doc__ = "sample payloads of %s" % source
    setattr(SamplesTest, t.__name__, t)


for _s in sorted(set(SHIPPED) | set(harness.shipped_sources())):
    _add(_s)

if __name__ == "__main__":
    harness.main()
