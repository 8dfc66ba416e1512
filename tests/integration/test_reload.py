"""SIGHUP reload: a broken directory changes nothing (and the log says
file:line:col), a fixed one swaps the new set in, and reloading under load
fails no request."""

import json
import os
import re
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ACME = """\
source: acme
display_name: ACME Monitor
fields:
  title: {path: alert.name, default: Untitled ACME alert}
  severity: {path: alert.level, map: {crit: Critical, warn: Medium}}
  description: alert.text
indicators:
  - {path: alert.host_ip, type: ip}
"""

# line 4 has an unknown key: the error must point at it
BROKEN = """\
source: broken
fields:
  title: {path: title}
feilds_typo: 1
"""

ACME_PAYLOAD = {"alert": {"name": "Disk wiper seen", "level": "CRIT",
                          "text": "wiper on host", "host_ip": "198.51.100.23"}}


def wait_for(pred, timeout, step=0.1):
    deadline = time.monotonic() + timeout * harness.SLOW
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


class ReloadTest(harness.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.db = harness.TempDatabase(cls.__name__)
        cls.servers = []

    def setUp(self):
        self.srv = self.start_server()

    def write(self, name, text):
        with open(os.path.join(self.srv.mappings, name), "w", encoding="utf-8") as f:
            f.write(text)

    def generic_ok(self, title):
        r = self.srv.post("/v1/ingest/generic", harness.generic_payload(title))
        self.assertEqual(r.status, 202, r)

    def test_broken_file_keeps_old_set_then_fixed_file_serves(self):
        self.generic_ok("before reload")
        self.write("acme.yaml", ACME)
        self.write("broken.yaml", BROKEN)
        self.srv.signal(signal.SIGHUP)
        pat = re.compile(r"broken\.yaml:\d+:\d+")
        self.assertTrue(wait_for(lambda: pat.search(self.srv.stderr()), 10),
                        "no broken.yaml:line:col in the log:\n" + self.srv.stderr()[-3000:])
        self.assertIn("broken.yaml:4:", self.srv.stderr(), "the error points at line 4")
        # nothing of the new directory was taken: acme is still unknown
        self.generic_ok("after failed reload")
        r = self.srv.post("/v1/ingest/acme", ACME_PAYLOAD)
        self.assertError(r, 404, "UNKNOWN_SOURCE")
        names = {s.get("name") for s in self.srv.get("/v1/sources").json["data"]}
        self.assertNotIn("acme", names)

        os.unlink(os.path.join(self.srv.mappings, "broken.yaml"))
        self.srv.signal(signal.SIGHUP)
        r = wait_for(lambda: (lambda x: x if x.status != 404 else None)(
            self.srv.post("/v1/ingest/acme", ACME_PAYLOAD)), 10, step=0.2)
        self.assertIsNotNone(r, "acme never served after the fixed reload:\n" +
                             self.srv.stderr()[-3000:])
        self.assertEqual(r.status, 202, r)
        g = self.srv.get("/v1/alerts/" + harness.ingest_uuids(r)[0])
        self.assertEqual(g.status, 200, g)
        a = g.json["data"]
        self.assertEqual((a["title"], a["severity"], a["source_name"], a["description"]),
                         ("Disk wiper seen", "Critical", "acme", "wiper on host"))
        self.assertIn(("ip", "198.51.100.23"),
                      [(i["type"], i["value"]) for i in a["indicators"]])
        self.generic_ok("after good reload")
        names = {s.get("name") for s in self.srv.get("/v1/sources").json["data"]}
        self.assertIn("acme", names)

    def test_mapping_with_failing_sample_is_refused(self):
        self.write("acme.yaml", ACME)
        d = os.path.join(self.srv.mappings, "samples", "acme")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "one.json"), "w") as f:
            json.dump(ACME_PAYLOAD, f)
        with open(os.path.join(d, "one.expected.json"), "w") as f:
            json.dump({"alerts": [{"title": "Not what the mapping makes"}]}, f)
        self.srv.signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: "one.expected.json" in self.srv.stderr()
                                 or "samples/acme" in self.srv.stderr(), 10),
                        "the failing sample is not reported:\n" + self.srv.stderr()[-3000:])
        r = self.srv.post("/v1/ingest/acme", ACME_PAYLOAD)
        self.assertError(r, 404, "UNKNOWN_SOURCE")
        self.generic_ok("after refused reload")

    def test_reload_under_load_fails_nothing(self):
        threads, per_thread = 4, 200
        results = [[] for _ in range(threads)]
        stop = threading.Event()

        def load(i):
            import http.client
            conn = http.client.HTTPConnection("127.0.0.1", self.srv.port,
                                              timeout=60 * harness.SLOW)
            try:
                for n in range(per_thread):
                    if stop.is_set():
                        break
                    body = json.dumps(harness.generic_payload("load %d-%d" % (i, n)))
                    try:
                        r = harness.request(self.srv.port, "POST", "/v1/ingest/generic", body,
                                            conn=conn)
                        results[i].append(r.status)
                    except Exception as e:  # noqa: BLE001 - counted as a failure
                        results[i].append(repr(e))
                        conn.close()
            finally:
                conn.close()

        ts = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(threads)]
        for t in ts:
            t.start()
        # one SIGHUP after every 120 answers, so all five land inside the load
        hups = 0
        for k in range(5):
            wait_for(lambda: sum(len(r) for r in results) >= (k + 1) * 120, 60, step=0.01)
            self.srv.signal(signal.SIGHUP)
            hups += 1
        done_at_last_hup = sum(len(r) for r in results)
        deadline = time.monotonic() + 180 * harness.SLOW
        for t in ts:
            t.join(max(0.1, deadline - time.monotonic()))
        stop.set()
        self.assertFalse(any(t.is_alive() for t in ts), "load threads stuck")
        flat = [s for r in results for s in r]
        self.assertEqual(len(flat), threads * per_thread)
        bad = [s for s in flat if s != 202]
        self.assertEqual(bad, [], "non-202 answers during reload")
        self.assertEqual(hups, 5)
        self.assertLess(done_at_last_hup, threads * per_thread,
                        "the load ended before the last SIGHUP")
        self.generic_ok("after reloads")

    def tearDown(self):
        srv = self.servers.pop()
        try:
            srv.stop()
        finally:
            srv.cleanup()


if __name__ == "__main__":
    harness.main()
