"""The database goes away and comes back: 503 with Retry-After while it is
down (never a 202), 202 again after it is back, without restarting alertmapd."""

import json
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class DatabaseOutageTest(harness.PrivateClusterTestCase):

    def post(self, title):
        body = json.dumps(harness.generic_payload(title)).encode()
        return self.srv.post("/v1/ingest/generic", body, timeout=60)

    def test_database_stopped_then_started(self):
        self.srv = harness.Server(self.cluster.url).start()
        r = self.post("before the outage")
        self.assertEqual(r.status, 202, r)
        first = harness.ingest_uuids(r)[0]

        self.cluster.stop()
        down = []
        for i in range(5):
            down.append(self.post("during the outage %d" % i))
        for r in down:
            self.assertError503(r)

        self.cluster.start()
        deadline = time.monotonic() + 15 * harness.SLOW
        back = None
        tries = 0
        while time.monotonic() < deadline and tries < 200:
            tries += 1
            r = self.post("after the outage")
            if r.status == 202:
                back = r
                break
            self.assertError503(r)
            time.sleep(0.25)
        self.assertIsNotNone(back, "no 202 within 15 s of the database coming back")
        self.assertIsNone(self.srv.proc.poll(), "alertmapd exited")
        uuids = harness.alert_uuids_in_db(self.cluster.url)
        self.assertEqual(uuids, {first, harness.ingest_uuids(back)[0]},
                         "exactly the acknowledged alerts are stored")
        titles = harness.psql(self.cluster.url, "select title from alerts order by 1")
        self.assertNotIn("during the outage", titles)
        self.assertEqual(harness.followups(self.cluster.url), 2)

    def test_database_down_at_start(self):
        # alertmapd may refuse to start without its database, or start and answer
        # 503; it must never acknowledge an alert it could not store.
        # a key made while the database was up: the verifier cannot check it
        # either, which must be a 503 too, never a 401
        key = harness.create_key(self.cluster.url)["token"]
        self.cluster.stop()
        self.srv = harness.Server(self.cluster.url, env={"ALERTMAP_DB_WAIT": "2"},
                                  key=key).start(wait=False)
        deadline = time.monotonic() + 20 * harness.SLOW
        answered = False
        while time.monotonic() < deadline and self.srv.proc.poll() is None:
            try:
                r = self.post("no database yet")
            except OSError:
                time.sleep(0.2)
                continue
            self.assertError503(r)
            answered = True
            break
        if self.srv.proc.poll() is None:
            self.assertTrue(answered, "alertmapd neither answered nor exited")
        else:
            self.assertNotEqual(self.srv.proc.returncode, 0,
                                "alertmapd exited 0 although it could not migrate")
            self.assertIn("error", self.srv.stderr().lower())
            self.srv.cleanup()
            self.srv = None

    def assertError503(self, r):
        self.assertEqual(r.status, 503, r)
        self.assertIsNotNone(r.header("Retry-After"), "503 without Retry-After")
        self.assertRegex(r.header("Retry-After"), r"^\d+$")
        self.assertIsInstance((r.json or {}).get("error"), dict, r)


if __name__ == "__main__":
    harness.main()
