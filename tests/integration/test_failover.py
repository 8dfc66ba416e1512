"""Failover under load: a primary with a synchronous streaming standby, both
started here (scripts/pg start / standby), alertmapd given both hosts with
target_session_attrs=read-write. The primary crashes (immediate shutdown)
while senders post; the standby is promoted. Every 202 is in the new
primary, service resumes without restarting alertmapd, and every answer is
a 202 or a 503 (with Retry-After), never another error."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SENDERS = 8
BEFORE = 40   # 202s before the crash
AFTER = 40    # 202s sent after the promotion


def pg(*args):
    r = subprocess.run([os.path.join(harness.ROOT, "scripts", "pg")] + list(args),
                       capture_output=True, text=True, timeout=180)
    if r.returncode != 0:
        raise AssertionError("scripts/pg %s failed: %s" % (" ".join(args), r.stderr))
    return r.stdout.strip()


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout * harness.SLOW
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out after %ds waiting for %s" % (timeout * harness.SLOW, what))


class FailoverTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="alertmap-it-failover-")
        self.pdir = os.path.join(self.tmp, "primary")
        self.sdir = os.path.join(self.tmp, "standby")
        self.srv = None
        self.purl = pg("start", self.pdir, "alertmap")
        self.surl = pg("standby", self.pdir, self.sdir, "alertmap")
        # synchronous replication: a COMMIT returns once the standby has
        # flushed it, so a 202 survives the loss of the primary
        harness.psql(self.purl, "alter system set synchronous_standby_names = '*'")
        harness.psql(self.purl, "select pg_reload_conf()")
        wait_for(lambda: harness.psql(self.purl, "select string_agg(sync_state, ',') from "
                                      "pg_stat_replication") == "sync", 30,
                 "the standby to be synchronous")
        psock = self.purl.split("host=")[1].split("&")[0]
        ssock = self.surl.split("host=")[1].split("&")[0]
        self.url = ("postgresql:///alertmap?host=%s,%s&user=alertmap"
                    "&target_session_attrs=read-write&connect_timeout=2" % (psock, ssock))

    def tearDown(self):
        try:
            if self.srv:
                self.srv.stop()
        finally:
            if self.srv:
                self.srv.cleanup()
            pg("stop", self.sdir)
            pg("stop", self.pdir)
            shutil.rmtree(self.tmp, ignore_errors=True)

    def test_promote_standby_under_load(self):
        self.srv = harness.Server(self.url).start()
        lock = threading.Lock()
        answers = []  # (status, uuid or None, sent after the promotion)
        state = {"promoted": False, "stop": False}

        def ok_count(after):
            with lock:
                return sum(1 for a in answers if a[0] == 202 and a[2] == after)

        def sender(i):
            k = 0
            while not state["stop"]:
                k += 1
                after = state["promoted"]
                body = json.dumps(harness.generic_payload("failover %d-%d" % (i, k))).encode()
                try:
                    r = self.srv.post("/v1/ingest/generic", body, timeout=60)
                except Exception as e:  # noqa: BLE001 - reported below
                    with lock:
                        answers.append((repr(e), None, after))
                    continue
                u = harness.ingest_uuids(r)[0] if r.status == 202 else None
                if r.status == 503:
                    if r.header("Retry-After") is None or not isinstance(
                            (r.json or {}).get("error"), dict):
                        u = "bad 503: %r" % r
                with lock:
                    answers.append((r.status, u, after))
                if r.status != 202:
                    time.sleep(0.05)  # a sender honouring Retry-After, briefly

        threads = [threading.Thread(target=sender, args=(i,), daemon=True)
                   for i in range(SENDERS)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: ok_count(False) >= BEFORE, 60, "%d 202s before the crash" % BEFORE)
            pg("kill", self.pdir)
            pg("promote", self.sdir)
            state["promoted"] = True
            wait_for(lambda: ok_count(True) >= AFTER, 90,
                     "%d 202s after the promotion" % AFTER)
        finally:
            state["stop"] = True
            for t in threads:
                t.join(90 * harness.SLOW)
        self.assertFalse(any(t.is_alive() for t in threads), "a sender is stuck")

        others = [a for a in answers if a[0] not in (202, 503)]
        self.assertEqual(others, [], "answers other than 202 and 503")
        bad503 = [a for a in answers if a[0] == 503 and a[1]]
        self.assertEqual(bad503, [], "503s without Retry-After or error body")
        acked = {a[1] for a in answers if a[0] == 202}
        stored = set(harness.psql(self.surl, "select uuid from alerts").split())
        self.assertEqual(acked - stored, set(), "202s missing from the new primary")
        self.assertEqual(harness.psql(self.surl, "select pg_is_in_recovery()"), "f")
        print("failover: %d answers, %d 202s, %d 503s" %
              (len(answers), len(acked), sum(1 for a in answers if a[0] == 503)),
              file=sys.stderr)


if __name__ == "__main__":
    harness.main()
