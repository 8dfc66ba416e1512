"""GET /readyz against a real PostgreSQL: 200 {"status":"ready"} while the
database answers; 503 {"status":"not_ready","reason":...} once it is stopped
(GET /healthz still 200); 200 again when it is back, without a restart. A
burst of probes costs the database at most about one check a second."""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class ReadyzTest(harness.PrivateClusterTestCase):

    def wait_for(self, status, timeout):
        deadline = time.monotonic() + timeout * harness.SLOW
        last = None
        while time.monotonic() < deadline:
            last = self.srv.get("/readyz", timeout=10)
            if last.status == status:
                return last
            time.sleep(0.1)
        self.fail("GET /readyz did not answer %d within %ds (last: %r)" %
                  (status, timeout * harness.SLOW, last))

    def assertReady(self, r):
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, {"status": "ready"})
        self.assertTrue((r.header("Content-Type") or "").startswith("application/json"))

    def assertNotReady(self, r):
        self.assertEqual(r.status, 503, r)
        self.assertIsInstance(r.json, dict, r)
        self.assertEqual(r.json.get("status"), "not_ready", r)
        self.assertEqual(r.json.get("reason"), "the database does not answer", r)
        # no socket path, host or libpq text reaches the client
        self.assertNotIn(self.cluster.dir, r.raw.decode("utf-8", "replace"))
        self.assertNotIn("PGSQL", r.raw.decode("utf-8", "replace"))

    def test_ready_down_and_back(self):
        self.srv = harness.Server(self.cluster.url, args=["--log-level", "debug"]).start()
        self.assertReady(self.wait_for(200, 10))

        # a burst of probes: answered from one check a second
        t0 = time.monotonic()
        before = self.checks()
        for _ in range(60):
            self.assertReady(self.srv.get("/readyz"))
        elapsed = time.monotonic() - t0
        made = self.checks() - before
        self.assertLessEqual(made, int(elapsed) + 2,
                             "%d database checks for 60 probes in %.1f s" % (made, elapsed))

        self.cluster.stop()
        r = self.wait_for(503, 15)
        self.assertNotReady(r)
        self.assertIsNotNone(r.header("Retry-After"))
        h = self.srv.get("/healthz")
        self.assertEqual(h.status, 200, "liveness does not depend on the database: %r" % h)
        # later probes agree, and the change is logged once, not per probe
        for _ in range(5):
            self.assertNotReady(self.srv.get("/readyz"))
        changes = [line for line in self.srv.log_lines()
                   if line.get("event") == "readiness_changed"]
        self.assertEqual([c.get("status") for c in changes], ["ready", "not_ready"], changes)
        self.assertTrue(changes[-1].get("error"), changes)

        self.cluster.start()
        self.assertReady(self.wait_for(200, 20))
        self.assertIsNone(self.srv.proc.poll(), "alertmapd exited")
        r = self.srv.post("/v1/ingest/generic", harness.generic_payload("after readyz"))
        self.assertIn(r.status, (202, 503), r)

    def checks(self):
        return sum(1 for line in self.srv.log_lines() if line.get("event") == "readiness_check")

    def test_readyz_and_methods(self):
        self.srv = harness.Server(self.cluster.url).start()
        self.assertReady(self.wait_for(200, 10))
        r = self.srv.post("/readyz", {})
        self.assertEqual(r.status, 405, r)
        self.assertEqual(r.header("Allow"), "GET")
        self.assertEqual((r.json or {}).get("error", {}).get("code"), "METHOD_NOT_ALLOWED")
        r = self.srv.get("/readyz/")
        self.assertEqual(r.status, 404, r)
        m = self.srv.get("/metrics")
        self.assertIn('alertmap_http_requests_total{route="readyz",code="200"}',
                      m.raw.decode())


if __name__ == "__main__":
    harness.main()
