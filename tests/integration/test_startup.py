"""Start-up that fails after the database and the store are up: a listen
address already in use exits 1 with a message naming the address, cleanly
(no sanitizer report, no crash in the stop of a half-started server)."""

import os
import socket
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class StartupTest(harness.ServerTestCase):

    def test_port_in_use(self):
        busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        try:
            s = harness.Server(self.db.url)
            self.servers.append(s)
            s.port = port
            s.start(wait=False)
            try:
                rc = s.proc.wait(timeout=30 * harness.SLOW)
            except subprocess.TimeoutExpired:
                self.fail("alertmapd kept running on a port in use")
            err = s.stderr()
            s.proc = None
            self.assertEqual(rc, 1, err)
            self.assertIn("cannot listen on 127.0.0.1:%d" % port, err)
            self.assertIn("Address already in use", err)
            for m in harness.SANITIZER_MARKERS:
                self.assertNotIn(m, err)
            events = [line.get("event") for line in s.log_lines()]
            self.assertIn("startup_failed", events)
            self.assertNotIn("listening", events)
        finally:
            busy.close()
        # the port is free again: the class's own server still answers
        self.assertEqual(self.srv.get("/healthz").status, 200)


if __name__ == "__main__":
    harness.main()
