"""Input edge cases (issue 7 point 7): integers beyond 64 bits are accepted
and stored with their exact digits; numbers PostgreSQL cannot hold are
refused with 422 before the database; a database error's text never reaches
the client."""

import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DB_WORDS = ("violates", "constraint", "ERROR", "SQLSTATE", "numeric", "overflows", "relation",
            "poison_check")


def generic_text(title, extra):
    """The generic sample with a new title and raw JSON text appended as
    members (so numbers keep the exact spelling the test gives)."""
    obj = harness.generic_payload(title)
    text = json.dumps(obj)
    assert text.endswith("}")
    return (text[:-1] + ", " + extra + "}").encode()


class PayloadEdgesTest(harness.ServerTestCase):

    def test_integers_beyond_64_bits_are_stored_exactly(self):
        cases = ['"id": 18446744073709551615',
                 '"id": -92233720368547758090, "n": 9223372036854775807',
                 '"big": 1e400, "tiny": 1e-400',
                 '"id": 123456789012345678901234567890123456789012345678901234567890']
        for i, extra in enumerate(cases):
            with self.subTest(extra=extra):
                body = generic_text("big numbers %d" % i, extra)
                r = self.srv.post("/v1/ingest/generic", body)
                self.assertEqual(r.status, 202, r)
                u = harness.ingest_uuids(r)[0]
                raw = harness.psql(self.db.url, "select raw_payload::text from alerts "
                                   "where uuid = '%s'" % u)
                for member in extra.split(", "):
                    key, num = [x.strip().strip('"') for x in member.split(":")]
                    if "e" not in num:  # an integer: its exact digits in the stored text
                        self.assertIn('"%s": %s' % (key, num), raw)
                    # every number: the stored value equals the sent one
                    same = harness.psql(self.db.url, "select (raw_payload->>'%s')::numeric = "
                                        "%s::numeric from alerts where uuid = '%s'" %
                                        (key, num, u))
                    self.assertEqual(same, "t", "%s changed in %s" % (num, raw[:300]))
                got = self.srv.get("/v1/alerts/" + u)
                self.assertEqual(got.status, 200, got)

    def test_dry_run_reads_big_integers(self):
        body = generic_text("dry big", '"id": 18446744073709551615')
        r = self.srv.post("/v1/sources/generic/test", body)
        self.assertEqual(r.status, 200, r)

    def test_numbers_postgresql_cannot_hold_are_422(self):
        before = harness.count_rows(self.db.url)
        for num in ("1e-999999", "1e999999", "0e-20000", "1.5e-16383", "1e131072",
                    "-1e999999999999999999"):
            with self.subTest(num=num):
                body = generic_text("pg range " + num, '"x": [1, {"y": %s}]' % num)
                r = self.srv.post("/v1/ingest/generic", body)
                err = self.assertError(r, 422, "INVALID_PAYLOAD")
                self.assertIn("outside the range PostgreSQL can store", err["message"])
                r = self.srv.post("/v1/sources/generic/test", body)
                self.assertError(r, 422, "INVALID_PAYLOAD")
        # the edges that PostgreSQL holds are accepted
        for num in ("1e-16383", "1e131071", "1.5e-16382"):
            with self.subTest(num=num):
                r = self.srv.post("/v1/ingest/generic", generic_text("pg edge " + num,
                                                                     '"x": %s' % num))
                self.assertEqual(r.status, 202, r)
        after = harness.count_rows(self.db.url)
        self.assertEqual(after["alerts"], before["alerts"] + 3)

    def test_database_error_text_never_reaches_the_client(self):
        harness.psql(self.db.url, "alter table alerts add constraint poison_check "
                     "check (title <> 'poison title')")
        try:
            before = harness.count_rows(self.db.url)
            body = json.dumps(harness.generic_payload("poison title")).encode()
            r = self.srv.post("/v1/ingest/generic", body)
            err = self.assertError(r, 422, "INVALID_PAYLOAD")
            for w in DB_WORDS:
                self.assertNotIn(w, r.raw.decode(), "database text in the answer: %r" % r)
            after = harness.count_rows(self.db.url)
            # The writer upserts a batch's indicators in a short transaction of
            # their own before the alerts' one (storage/batch.c): a request the
            # database refuses leaves its indicator values recorded as seen,
            # never linked to anything. Everything else is unchanged.
            new_iocs = after.pop("indicators") - before.pop("indicators")
            self.assertEqual(after, before)
            self.assertLessEqual(new_iocs, 3)
            self.assertEqual(harness.psql(self.db.url, "select count(*) from indicators i where "
                                          "not exists (select 1 from alert_indicators l "
                                          "where l.indicator_id = i.id)").strip(), str(new_iocs))
            self.assertIn("nothing was stored", err["message"])
            # the detail is in the log, for the operator
            self.assertTrue(any(ln.get("event") == "store_rejected"
                                for ln in self.srv.log_lines()), "no store_rejected log line")
        finally:
            harness.psql(self.db.url, "alter table alerts drop constraint poison_check")


if __name__ == "__main__":
    harness.main()
