"""Heavy requests leave the event loop (issue 11 point 4): a body over
--engine-inline-max, and every dry run, is normalized on an engine thread.

- a large body answers exactly as it does normalized on the loop (the same
  status and body: 202 with the same alerts, 422 LIMIT_EXCEEDED);
- with one event loop, a small ingest on another connection is answered
  while a heavy dry run is still being normalized (ordered by events: the
  engine thread's log line and the heavy client's answer);
- every engine thread busy and the queue full: 503 ENGINE_BUSY with
  Retry-After, and the running request still gets its answer;
- a client that leaves while its request is on an engine thread or waiting
  for one crashes nothing (the sanitizer builds check it at stop);
- SIGHUP while a request is on an engine thread: the request finishes with
  the program it started with, and the new set serves the next one."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_limits_cost import heavy_alertmanager  # noqa: E402

DRY = "/v1/sources/alertmanager/test"
INGEST = "/v1/ingest/alertmanager"
# the heavy dry run: 400 alerts x 900 IPs normalized in full (the indicator
# limit raised), then refused for the size of its answer
HEAVY_ARGS = ["--max-indicators", "1000000", "--log-level", "debug"]
SMALL_DRY = harness.accepted_sample("alertmanager")[1]


def medium_alertmanager(tag, alerts=40, ips=20):
    """An Alertmanager body over 64 KiB that is accepted: 40 alerts."""
    body = json.loads(heavy_alertmanager(alerts, ips))
    for i, a in enumerate(body["alerts"]):
        a["labels"]["alertname"] = "Pool-%s-%d" % (tag, i)
        a["annotations"]["description"] += " " + "x" * 1600
        a["annotations"]["summary"] = "pool %s %d" % (tag, i)
    return json.dumps(body).encode()


def wait_for(cond, what, timeout=30):
    deadline = time.monotonic() + timeout * harness.SLOW
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def log_events(srv, event, request_id=None):
    return [e for e in srv.log_lines() if e.get("event") == event and
            (request_id is None or e.get("request_id") == request_id)]


class Background:
    """One request on its own connection in a thread; done is set when its
    answer has arrived."""

    def __init__(self, srv, path, body, request_id):
        self.resp = None
        self.error = None
        self.done = threading.Event()
        self.t = threading.Thread(target=self._run, args=(srv, path, body, request_id),
                                  daemon=True)
        self.t.start()

    def _run(self, srv, path, body, request_id):
        try:
            self.resp = srv.post(path, body, headers={"X-Request-Id": request_id}, timeout=120)
        except Exception as e:  # noqa: BLE001 - reported by wait()
            self.error = e
        finally:
            self.done.set()

    def wait(self, timeout=120):
        if not self.done.wait(timeout * harness.SLOW):
            raise AssertionError("no answer within %ds" % (timeout * harness.SLOW))
        if self.error:
            raise self.error
        return self.resp


def h2_client(srv, path, body, request_id):
    """The request over HTTP/2 (h2c, prior knowledge) by curl, which is
    killed to leave: over HTTP/2 libh2o sees the connection close while the
    request is in flight and releases it (over HTTP/1.1 it only notices when
    it writes the answer)."""
    f = os.path.join(srv.tmp, "body-%s.json" % request_id)
    with open(f, "wb") as fh:
        fh.write(body)
    return subprocess.Popen(
        ["curl", "-s", "-o", "/dev/null", "--http2-prior-knowledge", "-H",
         "Content-Type: application/json", "-H", "Authorization: Bearer " + srv.key, "-H",
         "X-Request-Id: " + request_id, "--data-binary", "@" + f,
         "http://127.0.0.1:%d%s" % (srv.port, path)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def leave(proc):
    proc.kill()
    proc.wait(timeout=10)


def strip_uuids(resp):
    d = json.loads(resp.raw)["data"]
    out = {k: v for k, v in d.items() if k not in ("alert_uuid", "alerts")}
    out["alerts"] = [{k: v for k, v in a.items() if k != "alert_uuid"}
                     for a in d.get("alerts", [])]
    return out


def leave_on_engine_thread(srv, request_id):
    """A heavy dry run over HTTP/2 whose client leaves once the engine thread
    runs it; returns when libh2o has released the request."""
    c = h2_client(srv, DRY, heavy_alertmanager(), request_id)
    wait_for(lambda: log_events(srv, "engine_offloaded", request_id),
             "the heavy dry run to reach the engine thread")
    leave(c)
    wait_for(lambda: log_events(srv, "engine_detached", request_id),
             "the request to be released")


class SameAnswerTest(harness.ServerTestCase):
    """The same requests to a server without a pool (everything on the loop)
    and to one whose pool takes every body over 1 KiB."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.inline = cls.srv
        cls.pooled = cls.start_server(args=["--engine-inline-max", "1k", "--log-level", "debug"])

    server_args = ["--engine-threads", "0"]

    def test_large_body_refused_alike(self):
        body = heavy_alertmanager()  # 4.3 MB: over --max-indicators
        a = self.inline.post(INGEST, body)
        b = self.pooled.post(INGEST, body, headers={"X-Request-Id": "same-refused"})
        self.assertError(a, 422, "LIMIT_EXCEEDED")
        self.assertEqual((b.status, b.raw), (a.status, a.raw))
        self.assertTrue(log_events(self.pooled, "engine_offloaded", "same-refused"))
        self.assertFalse(log_events(self.inline, "engine_offloaded"))

    def test_large_body_stored_alike(self):
        a = self.inline.post(INGEST, medium_alertmanager("a"))
        b = self.pooled.post(INGEST, medium_alertmanager("b"), headers={"X-Request-Id": "same-ok"})
        self.assertEqual(a.status, 202, a)
        self.assertEqual(b.status, 202, b)
        self.assertEqual(len(b.json["data"]["alerts"]), 40)
        self.assertEqual(strip_uuids(b), strip_uuids(a))
        self.assertTrue(log_events(self.pooled, "engine_offloaded", "same-ok"))
        # stored: the first alert can be read back
        r = self.pooled.get("/v1/alerts/" + b.json["data"]["alert_uuid"])
        self.assertEqual(r.status, 200, r)

    def test_large_body_with_delivery_id(self):
        # the id is claimed on the loop after the engine thread is done
        body = medium_alertmanager("k")
        hdrs = {"Idempotency-Key": "pool-key-1", "X-Request-Id": "same-key"}
        a = self.pooled.post(INGEST, body, headers=hdrs)
        self.assertEqual(a.status, 202, a)
        self.assertEqual(len(a.json["data"]["alerts"]), 40)
        b = self.pooled.post(INGEST, body, headers=hdrs)
        self.assertEqual((b.status, b.raw), (a.status, a.raw))
        self.assertEqual(b.header("Idempotent-Replayed"), "true", b.headers)
        self.assertTrue(log_events(self.pooled, "engine_offloaded", "same-key"))

    def test_invalid_json_and_dry_run_alike(self):
        broken = b'{"alerts": [' + b'{"status":"firing"},' * 4000 + b'}'
        a = self.inline.post(INGEST, broken)
        b = self.pooled.post(INGEST, broken)
        self.assertError(a, 400, "INVALID_JSON")
        self.assertEqual((b.status, b.raw), (a.status, a.raw))
        body = SMALL_DRY
        a = self.inline.post(DRY, body)
        b = self.pooled.post(DRY, body, headers={"X-Request-Id": "same-dry"})
        self.assertEqual(a.status, 200, a)
        self.assertEqual(b.status, 200, b)
        self.assertEqual(b.json, a.json)
        self.assertTrue(log_events(self.pooled, "engine_offloaded", "same-dry"))

    def test_small_body_stays_on_the_loop(self):
        r = self.pooled.post("/v1/ingest/generic", harness.generic_payload("pool small"),
                             headers={"X-Request-Id": "same-small"})
        self.assertEqual(r.status, 202, r)
        self.assertFalse(log_events(self.pooled, "engine_offloaded", "same-small"))


class OneLoopTest(harness.ServerTestCase):
    """One event loop, one engine thread, no waiting room."""

    server_args = ["--threads", "1", "--engine-threads", "1", "--engine-queue", "0"] + HEAVY_ARGS

    def start_heavy(self, request_id):
        heavy = Background(self.srv, DRY, heavy_alertmanager(), request_id)
        wait_for(lambda: log_events(self.srv, "engine_offloaded", request_id),
                 "the heavy dry run to reach the engine thread")
        return heavy

    def assertHeavyDone(self, heavy):
        r = heavy.wait()
        err = self.assertError(r, 422, "LIMIT_EXCEEDED")
        self.assertIn("max_dry_run_bytes", err["message"])

    def test_small_request_answers_while_heavy_runs(self):
        heavy = self.start_heavy("loop-heavy")
        r = self.srv.post("/v1/ingest/generic", harness.generic_payload("beside the heavy one"))
        self.assertEqual(r.status, 202, r)
        self.assertFalse(heavy.done.is_set(),
                         "the heavy dry run answered before the small ingest beside it")
        m = self.srv.get("/metrics")
        self.assertEqual(m.status, 200, m)
        lines = m.raw.decode().splitlines()
        self.assertIn("alertmap_engine_pool_running 1", lines)
        self.assertIn("alertmap_engine_pool_queued 0", lines)
        self.assertHeavyDone(heavy)
        lines = self.srv.get("/metrics").raw.decode().splitlines()
        self.assertIn("alertmap_engine_pool_running 0", lines)

    def test_pool_full_is_503_with_retry_after(self):
        heavy = self.start_heavy("full-heavy")
        r = self.srv.post(DRY, SMALL_DRY)
        self.assertError(r, 503, "ENGINE_BUSY")
        self.assertTrue(r.header("Retry-After"), r.headers)
        self.assertFalse(heavy.done.is_set())
        self.assertHeavyDone(heavy)
        # the pool is free again
        r = self.srv.post(DRY, SMALL_DRY)
        self.assertEqual(r.status, 200, r)

    def test_client_leaves_while_on_the_engine_thread(self):
        gone = len(log_events(self.srv, "client_gone"))
        leave_on_engine_thread(self.srv, "gone-running")
        # the thread finishes; its answer is dropped and the record freed
        wait_for(lambda: len(log_events(self.srv, "client_gone")) > gone,
                 "the answer of the request that left to be dropped", timeout=60)
        self.assertFalse([e for e in log_events(self.srv, "request")
                          if e.get("request_id") == "gone-running"])
        r = self.srv.post(DRY, SMALL_DRY)
        self.assertEqual(r.status, 200, r)


class QueueTest(harness.ServerTestCase):
    """One engine thread and one waiting place."""

    server_args = ["--threads", "1", "--engine-threads", "1", "--engine-queue", "1"] + HEAVY_ARGS

    def test_client_leaves_while_queued(self):
        running = h2_client(self.srv, DRY, heavy_alertmanager(), "q-running")
        wait_for(lambda: log_events(self.srv, "engine_offloaded", "q-running"),
                 "the first request to reach the engine thread")
        queued = h2_client(self.srv, DRY, heavy_alertmanager(), "q-queued")
        wait_for(lambda: log_events(self.srv, "engine_queued", "q-queued"),
                 "the second request to be queued")
        # a third finds the queue full
        self.assertError(self.srv.post(DRY, SMALL_DRY), 503, "ENGINE_BUSY")
        leave(queued)
        leave(running)
        # the one that waited is never normalized
        wait_for(lambda: log_events(self.srv, "engine_skipped", "q-queued"),
                 "the queued request to be skipped", timeout=60)
        self.assertFalse(log_events(self.srv, "engine_offloaded", "q-queued"))
        r = self.srv.post(DRY, SMALL_DRY)
        self.assertEqual(r.status, 200, r)


class ReloadTest(harness.ServerTestCase):
    server_args = ["--threads", "1", "--engine-threads", "1"] + HEAVY_ARGS

    def test_sighup_while_on_the_engine_thread(self):
        heavy = Background(self.srv, DRY, heavy_alertmanager(), "hup-heavy")
        wait_for(lambda: log_events(self.srv, "engine_offloaded", "hup-heavy"),
                 "the heavy dry run to reach the engine thread")
        self.srv.signal(signal.SIGHUP)
        wait_for(lambda: log_events(self.srv, "reload_ok"), "the reload")
        self.assertError(heavy.wait(), 422, "LIMIT_EXCEEDED")
        r = self.srv.post(DRY, SMALL_DRY)
        self.assertEqual(r.status, 200, r)

    def test_sighup_after_the_client_left(self):
        # the job's own reference keeps the program: the request that held
        # the other one is gone when the reload drops the set
        n = len(log_events(self.srv, "reload_ok"))
        gone = len(log_events(self.srv, "client_gone"))
        leave_on_engine_thread(self.srv, "hup-gone")
        self.srv.signal(signal.SIGHUP)
        wait_for(lambda: len(log_events(self.srv, "reload_ok")) > n, "the reload")
        wait_for(lambda: len(log_events(self.srv, "client_gone")) > gone,
                 "the engine thread to finish", timeout=60)
        wait_for(lambda: self.srv.post(DRY, SMALL_DRY).status == 200,
                 "the engine thread to be free again", timeout=60)


class DeadlineTest(harness.ServerTestCase):
    """An ingest that goes on to the writer from its engine thread keeps the
    request deadline: answered 503 when the writer is too slow, and the late
    answer is dropped when it comes."""

    server_args = ["--request-deadline", "1", "--engine-inline-max", "1k"] + HEAVY_ARGS

    def test_deadline_while_the_writer_works(self):
        body = heavy_alertmanager(120, 900)  # 1.3 MB, 108 000 indicators: seconds of writing
        r = self.srv.post(INGEST, body, headers={"X-Request-Id": "late-heavy"})
        self.assertError(r, 503, "DATABASE_UNAVAILABLE")
        self.assertTrue(log_events(self.srv, "engine_offloaded", "late-heavy"))
        wait_for(lambda: log_events(self.srv, "late_completion"),
                 "the writer's late answer to be dropped", timeout=180)
        r = self.srv.post("/v1/ingest/generic", harness.generic_payload("after the late one"))
        self.assertEqual(r.status, 202, r)


class OptionsTest(harness.ServerTestCase):
    def test_invalid_pool_options_exit_2(self):
        for args, flag in ((["--engine-threads", "300"], "--engine-threads"),
                           (["--engine-queue", "-1"], "--engine-queue"),
                           (["--engine-inline-max", "0"], "--engine-inline-max")):
            r = subprocess.run([harness.ALERTMAPD, "--database-url", self.db.url] + args,
                               capture_output=True, text=True, timeout=30 * harness.SLOW)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn(flag, r.stderr)

    def test_pool_logged_at_start(self):
        pool = log_events(self.srv, "engine_pool")
        self.assertEqual(len(pool), 1, self.srv.stderr()[-2000:])
        self.assertEqual(pool[0]["inline_max"], 65536)
        self.assertEqual(pool[0]["queue"], 16)
        self.assertGreaterEqual(pool[0]["threads"], 1)


if __name__ == "__main__":
    harness.main()
