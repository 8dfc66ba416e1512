"""The request deadline: a database that hangs (a psql session holding an
ACCESS EXCLUSIVE lock on the alerts table for 15 s) gives 503 with
Retry-After once --request-deadline passes, for ingest and the read API;
after the lock is released the same server answers 202 again (no restart).
The outage is logged as summaries (about one line per second with a count),
not one line per request.
"""

import subprocess
import threading
import time

import harness

DEADLINE_S = 2
HOLD_S = 15


class HeldLock:
    """A psql session that holds a lock until release()."""

    def __init__(self, url, sql):
        self.proc = subprocess.Popen(["psql", url, "-XAtq", "-v", "ON_ERROR_STOP=1"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.proc.stdin.write("BEGIN;\n%s;\nSELECT 'locked';\n" % sql)
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().strip()
        if line != "locked":
            raise AssertionError("psql did not take the lock: %r %s" %
                                 (line, self.proc.stderr.read()))

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("COMMIT;\n\\q\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)


class Deadline(harness.ServerTestCase):
    server_args = ["--request-deadline", str(DEADLINE_S)]

    def ingest(self, title):
        t0 = time.monotonic()
        r = self.srv.post("/v1/ingest/generic", harness.generic_payload(title), timeout=30)
        return r, time.monotonic() - t0

    def test_lock_held_15s_gives_503_then_202(self):
        r, _ = self.ingest("before the lock")
        self.assertEqual(r.status, 202, r)
        pid = self.srv.proc.pid
        lock = HeldLock(self.db.url, "LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE")
        locked_at = time.monotonic()
        answers = []
        try:
            # a burst of concurrent requests, then one a second while the lock holds
            burst = []

            def one(i):
                burst.append(self.ingest("burst %d" % i))

            harness.run_threads(20, one, timeout=30)
            answers.extend(burst)
            r, dt = None, 0
            while time.monotonic() - locked_at < HOLD_S - DEADLINE_S - 1:
                answers.append(self.ingest("while locked %d" % len(answers)))
            g = self.srv.get("/v1/alerts?limit=1", timeout=30)
            self.assertError(g, 503, "DATABASE_UNAVAILABLE")
            while time.monotonic() - locked_at < HOLD_S:
                time.sleep(0.1)  # the lock is held for the whole 15 s
        finally:
            lock.release()
        released_at = time.monotonic()
        for r, dt in answers:
            self.assertError(r, 503, "DATABASE_UNAVAILABLE")
            self.assertEqual(r.header("Retry-After"), "5", r)
            self.assertIn("may still be stored", r.json["error"]["message"])
            self.assertGreaterEqual(dt, DEADLINE_S - 0.2)
            self.assertLess(dt, DEADLINE_S + 2 * harness.SLOW, "answered long after the deadline")

        # released: served again by the same process
        deadline = time.monotonic() + 20 * harness.SLOW
        while True:
            r, dt = self.ingest("after the lock")
            if r.status == 202 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(r.status, 202, r)
        recovered = time.monotonic() - released_at
        self.assertEqual(self.srv.proc.pid, pid)
        self.assertIsNone(self.srv.proc.poll())
        g = self.srv.get("/v1/alerts?limit=1")
        self.assertEqual(g.status, 200, g)
        print("\n%d requests answered 503 after %.2f-%.2f s while the lock was held; 202 again "
              "%.2f s after the release" %
              (len(answers), min(dt for _, dt in answers), max(dt for _, dt in answers),
               recovered))

        # summarised: about one 503 request line per second, counts add up
        lines = self.srv.log_lines()
        lines503 = [l for l in lines if l.get("event") == "request" and l.get("status") == 503]
        span = released_at - locked_at + 2
        self.assertLessEqual(len(lines503), span + 2, "one warn line per 503")
        counted = sum(l.get("count", 1) for l in lines503)
        self.assertGreaterEqual(counted, len(answers))
        failed = [l for l in lines if l.get("event") == "store_failed"]
        self.assertLessEqual(len(failed), span + 2)


if __name__ == "__main__":
    harness.main()
