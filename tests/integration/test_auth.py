"""API keys, the fail-closed ingest policy and rate limits against a real
alertmapd and PostgreSQL: no key is 401 on every protected route of the route
table; keys work as created and stop working within a second of revocation
(also on another alertmapd process) or expiry; scopes and sources are 403;
a signature secret that is unset refuses its source unless it is opted out
(and the opt-out is logged); a key burst gets 429 with Retry-After while
another key is served; and no key, token, secret or signature value ever
reaches a log line."""

import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SECRET = "auth-it-sentinel-secret-5c1f0e"
NOSIG = """source: nosig
display_name: No Signature
auth: {query_key: true}
fields:
  title: title
"""
UUID0 = "6f1c1e7e-0000-4000-8000-000000000001"


def route_rows():
    """(method, pattern, scope) of every row of h2o-glue/route.c's table, so
    that a row added there is walked here without editing this test."""
    with open(os.path.join(harness.ROOT, "h2o-glue", "route.c"), encoding="utf-8") as f:
        text = f.read()
    table = text.split("static const glue_route_entry_t routes[] = {", 1)[1].split("\n};", 1)[0]
    flat = re.sub(r"\s+", " ", table)
    rows = re.findall(r'\{GLUE_R_\w+, "(\w+)", "([^"]+)", GLUE_SCOPE_(\w+),', flat)
    if len(rows) != flat.count("{GLUE_R_") or not rows:
        raise AssertionError("cannot read the route table of route.c")
    return rows


def fill(pattern):
    return (pattern.replace("{uuid}", UUID0).replace("{source_name}", "generic")
            .replace("{delivery_id}", "1"))


def corrupt(token):
    """The token with one character of its secret changed: the same shape
    and prefix, so the verifier finds the row and refuses the hash."""
    c = "a" if token[13] != "a" else "b"
    return token[:13] + c + token[14:]


def wait_for(pred, timeout, step=0.02):
    deadline = time.monotonic() + timeout * harness.SLOW
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


class AuthTest(harness.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.secrets = []  # every credential value the tests send
        try:
            cls.mdir = tempfile.mkdtemp(prefix="alertmap-it-auth-")
            shutil.copytree(os.path.join(harness.ROOT, "mappings"),
                            os.path.join(cls.mdir, "m"))
            with open(os.path.join(cls.mdir, "m", "nosig.yaml"), "w") as f:
                f.write(NOSIG)
            # another process on the same database
            cls.other = cls.start_server()
            # the policy as shipped: nothing opted out, sentinel's secret set
            cls.strict = harness.Server(cls.db.url, mappings=os.path.join(cls.mdir, "m"),
                                        env={"ALERTMAP_UNSIGNED_SOURCES": "",
                                             "SENTINEL_WEBHOOK_SECRET": SECRET})
            cls.servers.append(cls.strict)
            cls.strict.start()
            cls.limited = cls.start_server(args=["--rate-per-key", "2:5",
                                                 "--rate-per-source", "0.5:8"])
            for s in cls.servers:
                cls.secrets.append(s.key)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        if getattr(cls, "mdir", None):
            shutil.rmtree(cls.mdir, ignore_errors=True)

    def key(self, scopes=harness.ALL_SCOPES, **kw):
        k = harness.create_key(self.db.url, scopes=scopes, **kw)
        self.secrets.append(k["token"])
        return k

    def test_every_protected_route_needs_a_key(self):
        ro = self.key("read")["token"]
        ingest_only = self.key("ingest")["token"]
        rows = route_rows()
        walked = 0
        for method, pattern, scope in rows:
            path = fill(pattern)
            body = None if method == "GET" else {"title": "route walk"}
            with self.subTest(method=method, path=path):
                r = harness.request(self.srv.port, method, path, body, key=None)
                if scope == "PUBLIC":
                    self.assertNotIn(r.status, (401, 403), r)
                    continue
                if scope == "METRICS":
                    # public from loopback by default (--metrics-access loopback)
                    self.assertEqual(r.status, 200, r)
                    continue
                walked += 1
                self.assertError(r, 401, "UNAUTHORIZED")
                self.assertEqual(r.header("WWW-Authenticate"), 'Bearer realm="alertmap"')
                # never from a cookie
                r = harness.request(self.srv.port, method, path, body, key=None,
                                    headers={"Cookie": "api_key=" + self.srv.key})
                self.assertError(r, 401, "UNAUTHORIZED")
                # a wrong key of the right shape
                r = harness.request(self.srv.port, method, path, body,
                                    key=corrupt(self.srv.key))
                self.assertError(r, 401, "UNAUTHORIZED")
                # a key without the scope
                other = ingest_only if scope != "INGEST" else ro
                r = harness.request(self.srv.port, method, path, body, key=other)
                self.assertError(r, 403, "FORBIDDEN")
                # the key of every scope passes the check (the handler answers)
                r = harness.request(self.srv.port, method, path, body,
                                    headers={"X-API-Key": self.srv.key})
                self.assertNotIn(r.status, (401, 403), r)
        self.assertGreaterEqual(walked, 6, rows)

    def test_create_works_revoke_401_within_a_second_on_another_process(self):
        k = self.key("read")
        for s in (self.srv, self.other):
            self.assertEqual(s.get("/v1/alerts?limit=1", key=k["token"]).status, 200)
        harness.revoke_key(self.db.url, k["prefix"])
        t0 = time.monotonic()
        # each process re-reads on its own: both within a second
        for s in (self.other, self.srv):
            r = wait_for(lambda: (lambda x: x if x.status == 401 else None)(
                s.get("/v1/alerts?limit=1", key=k["token"])), 3)
            elapsed = time.monotonic() - t0
            self.assertIsNotNone(r, "the revoked key still works on port %d" % s.port)
            self.assertError(r, 401, "KEY_REVOKED")
            self.assertLess(elapsed, 1.0 * harness.SLOW, "revocation took %.3f s" % elapsed)

    def test_expired_key_401(self):
        k = self.key("read", expires="2s")
        self.assertEqual(self.srv.get("/v1/alerts?limit=1", key=k["token"]).status, 200)
        r = wait_for(lambda: (lambda x: x if x.status == 401 else None)(
            self.srv.get("/v1/alerts?limit=1", key=k["token"])), 6, step=0.1)
        self.assertIsNotNone(r, "the key works after its expiry")
        self.assertError(r, 401, "KEY_EXPIRED")

    def test_key_for_one_source_posting_to_another_403(self):
        k = self.key("ingest", sources="generic")["token"]
        before = harness.count_rows(self.db.url)
        _, payload, _ = harness.accepted_sample("elastic")
        err = self.assertError(self.srv.post("/v1/ingest/elastic", payload, key=k), 403,
                               "FORBIDDEN")
        self.assertIn("elastic", err["message"])
        self.assertEqual(harness.count_rows(self.db.url)["alerts"], before["alerts"])
        r = self.srv.post("/v1/ingest/generic", harness.generic_payload("source key ok"), key=k)
        self.assertEqual(r.status, 202, r)

    def test_read_only_key_cannot_post_or_patch_and_patch_records_its_key(self):
        ro = self.key("read")["token"]
        before = harness.count_rows(self.db.url)
        self.assertError(self.srv.post("/v1/ingest/generic", harness.generic_payload("ro"),
                                       key=ro), 403, "FORBIDDEN")
        self.assertEqual(harness.count_rows(self.db.url)["alerts"], before["alerts"])
        r = self.srv.post("/v1/ingest/generic", harness.generic_payload("to be patched"))
        u = harness.ingest_uuids(r)[0]
        self.assertError(self.srv.patch("/v1/alerts/" + u, {"status": "Triaging"}, key=ro),
                         403, "FORBIDDEN")
        g = self.srv.get("/v1/alerts/" + u, key=ro)
        self.assertEqual((g.status, g.json["data"]["status"]), (200, "Open"), g)
        self.assertIsNone(g.json["data"]["updated_by"])
        w = self.key("read,write")
        r = self.srv.patch("/v1/alerts/" + u, {"status": "Triaging"}, key=w["token"])
        self.assertEqual(r.status, 200, r)
        g = self.srv.get("/v1/alerts/" + u, key=ro)
        self.assertEqual(g.json["data"]["updated_by"],
                         {"key_id": w["id"], "key_prefix": w["prefix"]})
        self.assertEqual(int(harness.psql(self.db.url, "select updated_by_key from alerts "
                                          "where uuid = '%s'" % u)), w["id"])

    def test_unset_secret_refuses_unless_opted_out(self):
        _, payload, _ = harness.accepted_sample("generic")
        before = harness.count_rows(self.db.url)
        # nothing opted out: refused with the variable named, key or not
        for key in (None, self.strict.key):
            err = self.assertError(self.strict.post("/v1/ingest/generic", payload, key=key),
                                   401, "SIGNATURE_SECRET_UNSET")
            self.assertIn("GENERIC_WEBHOOK_SECRET", err["message"])
        self.assertEqual(harness.count_rows(self.db.url)["alerts"], before["alerts"])
        errors = {x.get("source"): x for x in self.strict.log_lines()
                  if x.get("event") == "signature_secret_unset"}
        self.assertEqual(errors["generic"]["level"], "error")
        self.assertEqual(errors["generic"]["variables"], "GENERIC_WEBHOOK_SECRET")
        self.assertNotIn("sentinel", errors, "sentinel's secret is set")
        # the same at every reload
        n = len(errors)
        self.strict.signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: sum(
            1 for x in self.strict.log_lines() if x.get("event") == "signature_secret_unset"
            and x.get("source") == "generic") >= 2, 10), "reload logged no error")
        self.assertGreater(n, 10)
        # opted out (harness default): the key is enough, and it was logged
        self.assertEqual(self.srv.post("/v1/ingest/generic", payload).status, 202)
        opt = [x for x in self.srv.log_lines() if x.get("event") == "signature_opt_out"
               and x.get("source") == "generic"]
        self.assertTrue(opt and opt[0]["level"] == "warn", opt)
        policy = [x for x in self.srv.log_lines() if x.get("event") == "auth_policy"]
        self.assertIn("generic", policy[0]["unsigned_sources"].split(","))

    def test_signature_or_key(self):
        _, payload, _ = harness.accepted_sample("sentinel")
        spec = harness.signature_spec(harness.shipped_sources()["sentinel"])
        headers = harness.sign(spec, SECRET, payload)
        self.secrets.extend([SECRET] + list(headers.values()))
        # signed, no key: accepted
        r = self.strict.post("/v1/ingest/sentinel", payload, headers=headers, key=None)
        self.assertEqual(r.status, 202, r)
        # a key, no signature: accepted too
        r = self.strict.post("/v1/ingest/sentinel", payload.rstrip() + b"\n")
        self.assertEqual(r.status, 202, r)
        # neither: the signature's own error
        before = harness.count_rows(self.db.url)
        self.assertError(self.strict.post("/v1/ingest/sentinel", payload, key=None), 401,
                         "INVALID_SIGNATURE")
        bad = dict(headers)
        bad[spec["header"]] = "sha256=" + "0" * 64
        self.assertError(self.strict.post("/v1/ingest/sentinel", payload, headers=bad, key=None),
                         401, "INVALID_SIGNATURE")
        # a wrong signature and a wrong key: the key's answer
        self.assertError(self.strict.post("/v1/ingest/sentinel", payload, headers=dict(
            bad, **{"X-API-Key": corrupt(self.strict.key)}), key=None), 401, "UNAUTHORIZED")
        self.assertEqual(harness.count_rows(self.db.url)["alerts"], before["alerts"])

    def test_mapping_without_signature_needs_a_key_query_key_where_allowed(self):
        k = self.key("ingest", sources="nosig")["token"]
        before = harness.count_rows(self.db.url)
        self.assertError(self.strict.post("/v1/ingest/nosig", {"title": "q"}, key=None), 401,
                         "UNAUTHORIZED")
        self.assertEqual(harness.count_rows(self.db.url)["alerts"], before["alerts"])
        r = self.strict.post("/v1/ingest/nosig?api_key=" + k, {"title": "query key"}, key=None)
        self.assertEqual(r.status, 202, r)
        r = self.strict.post("/v1/ingest/nosig", {"title": "header key"}, key=k)
        self.assertEqual(r.status, 202, r)
        # generic does not allow it; a read route never takes it
        err = self.assertError(self.srv.post("/v1/ingest/generic?api_key=" + self.srv.key,
                                             harness.generic_payload("qk"), key=None),
                               401, "UNAUTHORIZED")
        self.assertIn("query_key", err["message"])
        self.assertError(self.srv.get("/v1/alerts?api_key=" + self.srv.key, key=None), 401,
                         "UNAUTHORIZED")
        line = [x for x in self.strict.log_lines() if x.get("event") == "request"
                and x.get("source") == "nosig" and x.get("status") == 202]
        self.assertTrue(line)
        self.assertEqual(line[0].get("key"), k[:12], "the log line names the key's prefix")

    def test_rate_limit_burst_429_while_another_key_is_served(self):
        a = self.key("read,ingest")["token"]
        b = self.key("read,ingest")["token"]
        statuses = []
        limited = None
        for _ in range(20):
            r = self.limited.get("/v1/alerts?limit=1", key=a)
            statuses.append(r.status)
            if r.status == 429:
                limited = r
        self.assertIn(200, statuses)
        self.assertIsNotNone(limited, statuses)
        err = self.assertError(limited, 429, "RATE_LIMITED")
        self.assertIn(a[:12], err["message"])
        self.assertRegex(limited.header("Retry-After") or "", r"^[1-9]\d*$")
        # another key during the burst: served
        self.assertEqual(self.limited.get("/v1/alerts?limit=1", key=b).status, 200)
        # per source: 8 in the bucket at 0.5/s, whichever keys post
        c, d, e = (self.key("ingest")["token"] for _ in range(3))
        seen = []
        for i, k in enumerate([c] * 5 + [d] * 5 + [e] * 2):
            r = self.limited.post("/v1/ingest/generic",
                                  harness.generic_payload("rate %d" % i), key=k)
            seen.append(r)
        by_source = [r for r in seen if r.status == 429]
        self.assertTrue(by_source, [r.status for r in seen])
        self.assertIn("source 'generic'", by_source[0].json["error"]["message"])
        self.assertTrue(all(r.status in (202, 429) for r in seen), seen)

    def test_zz_no_credential_in_any_log_line(self):
        """Runs last (name order): every server's whole log, for every key,
        secret and signature value any test of this class sent."""
        self.assertTrue(self.secrets)
        for s in self.servers:
            log = s.stderr()
            self.assertTrue(log)
            for v in self.secrets:
                self.assertNotIn(v, log)
                if v.startswith("amk_"):
                    self.assertNotIn(v[13:], log, "a key's secret is in the log")


if __name__ == "__main__":
    harness.main()
