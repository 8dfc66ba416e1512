"""Every rejected ingest request: the defined status and error body, and not a
single row written. Signatures (hex and prefixed forms), body limits (also
chunked) and unsigned sources."""

import json
import os
import re
import sys
import time
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SECRET = "it-secret-0123456789abcdef"
MAX_BODY = 4096


class IngestErrorsTest(harness.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.small = cls.start_server(env={"ALERTMAP_MAX_BODY": str(MAX_BODY)},
                                         args=["--max-body", str(MAX_BODY)])
            cls.signed_env = {}
            cls.specs = {}
            for src, path in harness.shipped_sources().items():
                spec = harness.signature_spec(path)
                if spec and spec["secret_env"]:
                    cls.specs[src] = spec
                    cls.signed_env[spec["secret_env"][0]] = SECRET
            cls.signed = cls.start_server(env=cls.signed_env)
        except BaseException:
            cls.tearDownClass()
            raise

    def rejected(self, srv, status, code, path, body, **kw):
        """Posts and asserts the error, and that no row changed."""
        before = harness.count_rows(self.db.url)
        r = srv.post(path, body, **kw)
        err = self.assertError(r, status, code)
        self.assertEqual(harness.count_rows(self.db.url), before,
                         "rejected request (%d) wrote rows" % status)
        return err

    def test_unknown_source_404(self):
        self.rejected(self.srv, 404, "UNKNOWN_SOURCE", "/v1/ingest/no-such-source",
                      {"title": "x"})

    def test_malformed_json_400(self):
        for body in (b'{"title": "x",', b"not json", b"", b'{"a":1} trailing'):
            with self.subTest(body=body):
                self.rejected(self.srv, 400, "INVALID_JSON", "/v1/ingest/generic", body)

    def test_array_and_scalar_422(self):
        for body in (b'[{"title": "x"}]', b"42", b'"text"', b"true", b"null"):
            with self.subTest(body=body):
                self.rejected(self.srv, 422, "INVALID_PAYLOAD", "/v1/ingest/generic", body)

    def test_match_failure_422_names_rule(self):
        checked = 0
        for src, path in sorted(harness.shipped_sources().items()):
            if harness.top_level_block(path, "match") is None:
                continue
            with self.subTest(source=src):
                err = self.rejected(self.srv, 422, "INVALID_PAYLOAD", "/v1/ingest/" + src,
                                    {"zz_unrelated_key": 1})
                fname = os.path.basename(path)
                self.assertRegex(err["message"],
                                 r"match rule '[^']+' \(%s:\d+\)" % re.escape(fname))
                checked += 1
        self.assertGreater(checked, 0, "no shipped mapping declares match rules")

    def test_body_over_limit_413(self):
        ok = harness.generic_payload("limit ok")
        small = json.dumps(ok).encode()
        self.assertLess(len(small), MAX_BODY)
        r = self.small.post("/v1/ingest/generic", small)
        self.assertEqual(r.status, 202, r)
        big = dict(ok, padding="x" * (3 * MAX_BODY))
        self.rejected(self.small, 413, None, "/v1/ingest/generic", big)
        # exactly one byte over the limit
        body = json.dumps(dict(ok, padding="")).encode()
        body = body[:-1] + b',"p2":"' + b"y" * (MAX_BODY - len(body) - 8) + b'"}'
        self.assertEqual(len(body), MAX_BODY)
        r = self.small.post("/v1/ingest/generic", body)
        self.assertEqual(r.status, 202, "a body of exactly the limit: %r" % r)
        self.rejected(self.small, 413, None, "/v1/ingest/generic", body + b" ")

    def test_chunked_body_over_limit_413(self):
        big = json.dumps(dict(harness.generic_payload("chunked"),
                              padding="x" * (3 * MAX_BODY))).encode()
        chunks = [big[i:i + 1000] for i in range(0, len(big), 1000)]
        self.rejected(self.small, 413, None, "/v1/ingest/generic", iter(chunks), chunked=True)
        # a chunked body under the limit is accepted
        okb = json.dumps(harness.generic_payload("chunked ok")).encode()
        r = self.small.post("/v1/ingest/generic", iter([okb[:10], okb[10:]]), chunked=True)
        self.assertEqual(r.status, 202, r)

    def auth(self, src, body, secret=SECRET, prefix=False, sign_body=None):
        """(path, headers) of a request to src authenticated with secret."""
        spec = self.specs[src]
        path = "/v1/ingest/" + src
        if spec["scheme"] == "query-token":
            return "%s?%s=%s" % (path, spec["query_param"], urllib.parse.quote(secret)), {}
        if spec["scheme"] == "token":
            return path, {spec["header"]: secret}
        return path, harness.sign(spec, secret, body if sign_body is None else sign_body,
                                  prefix=prefix)

    def test_bad_signature_401(self):
        self.assertTrue(self.specs, "no shipped mapping declares a signature")
        for src in sorted(self.specs):
            _, payload, _ = harness.accepted_sample(src)
            cases = {"missing": ("/v1/ingest/" + src, {}),
                     "wrong secret": self.auth(src, payload, secret="not-the-secret"),
                     "prefixed wrong secret": self.auth(src, payload, secret="x", prefix=True),
                     "other body": self.auth(src, payload, sign_body=payload + b" ")}
            if self.specs[src]["scheme"].startswith("hmac"):
                cases["garbage"] = ("/v1/ingest/" + src,
                                    {self.specs[src]["header"]: self.specs[src]["prefix"] + "zz!"})
            else:
                del cases["other body"]
            for case, (path, headers) in cases.items():
                with self.subTest(source=src, case=case):
                    self.rejected(self.signed, 401, "INVALID_SIGNATURE", path, payload,
                                  headers=headers, key=None)

    def test_good_signature_hex_202(self):
        self.assertTrue(self.specs, "no shipped mapping declares a signature")
        for src in sorted(self.specs):
            with self.subTest(source=src):
                _, payload, _ = harness.accepted_sample(src)
                path, headers = self.auth(src, payload)
                r = self.signed.post(path, payload, headers=headers, key=None)
                self.assertEqual(r.status, 202, r)
                self.assertIn(harness.ingest_uuids(r)[0], harness.alert_uuids_in_db(self.db.url))

    def test_good_signature_prefixed_202(self):
        hmacs = [s for s in sorted(self.specs) if self.specs[s]["prefix"] == "sha256="]
        self.assertIn("sentinel", hmacs, "sentinel signs with an optional sha256= prefix")
        for src in hmacs:
            with self.subTest(source=src):
                _, payload, _ = harness.accepted_sample(src)
                # another body than the hex test (same JSON: it deduplicates)
                raw = payload.rstrip() + b"\n\n"
                path, headers = self.auth(src, raw, prefix=True)
                self.assertTrue(headers[self.specs[src]["header"]].startswith("sha256="))
                r = self.signed.post(path, raw, headers=headers, key=None)
                self.assertEqual(r.status, 202, r)
                self.assertIn(harness.ingest_uuids(r)[0], harness.alert_uuids_in_db(self.db.url))

    def test_secret_unset_opted_out_takes_keys_only_202(self):
        # self.srv runs without any *_WEBHOOK_SECRET, every shipped source
        # listed in ALERTMAP_UNSIGNED_SOURCES (the harness): an ingest key
        # is accepted, no credential at all is not.
        for src in sorted(self.specs):
            with self.subTest(source=src):
                _, payload, _ = harness.accepted_sample(src)
                r = self.srv.post("/v1/ingest/" + src, payload)
                self.assertEqual(r.status, 202, r)
                self.rejected(self.srv, 401, "UNAUTHORIZED", "/v1/ingest/" + src, payload,
                              key=None)
        self.assertTrue(self.specs)
        opted = {x.get("source") for x in self.srv.log_lines()
                 if x.get("event") == "signature_opt_out"}
        self.assertEqual(opted, set(self.specs), "every opt-out is logged at start")


    def test_logs_carry_no_secret_and_no_payload(self):
        marker = "payload-marker-7f3a9c"
        body = harness.generic_payload("log check", note=marker)
        raw = json.dumps(body).encode()
        path, headers = self.auth("generic", raw)
        r = self.signed.post(path, raw, headers=headers, key=None)
        self.assertEqual(r.status, 202, r)
        u = harness.ingest_uuids(r)[0]
        path, headers = self.auth("generic", raw, secret="wrong-" + SECRET)
        self.assertEqual(self.signed.post(path, raw, headers=headers, key=None).status, 401)
        time.sleep(0.2)
        err = self.signed.stderr()
        self.assertNotIn(SECRET, err)
        self.assertNotIn(marker, err)
        lines = self.signed.log_lines()
        text = [x["_text"] for x in lines if "_text" in x]
        self.assertEqual(text, [], "stderr lines that are not JSON objects")
        for x in lines:
            for k in ("time", "level", "event"):
                self.assertIn(k, x)
        mine = [x for x in lines if x.get("alert_uuid") == u]
        self.assertTrue(mine, "no log line names the alert uuid")
        self.assertEqual(mine[0].get("status"), 202)
        self.assertEqual(mine[0].get("source"), "generic")
        self.assertIn("request_id", mine[0])
        self.assertTrue(any(x.get("status") == 401 for x in lines))


if __name__ == "__main__":
    harness.main()
