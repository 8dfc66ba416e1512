"""SIGTERM during load: every request that got 202 is in the database, and
alertmapd exits 0."""

import http.client
import json
import os
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class ShutdownTest(harness.ServerTestCase):

    def test_sigterm_during_load_loses_nothing(self):
        threads, per_thread = 4, 500
        accepted = [[] for _ in range(threads)]
        others = [[] for _ in range(threads)]
        answered = [0]
        lock = threading.Lock()

        def load(i):
            conn = http.client.HTTPConnection("127.0.0.1", self.srv.port,
                                              timeout=60 * harness.SLOW)
            try:
                for n in range(per_thread):
                    body = json.dumps(harness.generic_payload("term %d-%d" % (i, n)))
                    try:
                        r = harness.request(self.srv.port, "POST", "/v1/ingest/generic", body,
                                            conn=conn)
                    except (OSError, http.client.HTTPException):
                        # the server stopped accepting: this sender would retry
                        break
                    with lock:
                        answered[0] += 1
                    if r.status == 202:
                        accepted[i].extend(harness.ingest_uuids(r))
                    else:
                        others[i].append(r.status)
                        if r.status != 503:
                            break
            finally:
                conn.close()

        ts = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(threads)]
        for t in ts:
            t.start()
        deadline = time.monotonic() + 60 * harness.SLOW
        while answered[0] < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertGreaterEqual(answered[0], 100, "the load did not get going")
        self.srv.signal(signal.SIGTERM)
        try:
            rc = self.srv.proc.wait(timeout=30 * harness.SLOW)
        except Exception:  # noqa: BLE001
            self.fail("alertmapd did not exit within 30 s of SIGTERM")
        for t in ts:
            t.join(30 * harness.SLOW)
        self.assertFalse(any(t.is_alive() for t in ts), "client threads stuck")
        self.assertEqual(rc, 0, "exit code after SIGTERM; stderr:\n" + self.srv.stderr()[-3000:])
        got = [u for a in accepted for u in a]
        self.assertLess(len(got), threads * per_thread, "SIGTERM arrived after the load")
        self.assertGreater(len(got), 0)
        stored = harness.alert_uuids_in_db(self.db.url)
        missing = [u for u in got if u not in stored]
        self.assertEqual(missing, [], "acknowledged alerts missing from the database")
        # nothing but 202 and (while stopping) 503 is an acceptable answer
        self.assertEqual([s for o in others for s in o if s != 503], [])
        for m in harness.SANITIZER_MARKERS:
            self.assertNotIn(m, self.srv.stderr())


if __name__ == "__main__":
    harness.main()
