"""./scripts/run: the curl example it prints works as printed (with the
development API key it makes on first start, kept in a file of mode 0600 and
reused on the next start), the README's example too, a request without the
key is refused, and Ctrl-C stops alertmapd and the private PostgreSQL
cleanly."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class RunScriptTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="alertmap-it-run-")
        self.proc = None
        self.out = []
        self.db = None

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.proc:
            self.reader.join(10)
            if not self.reader.is_alive():
                self.proc.stdout.close()
            self.err.close()
        if self.db:
            self.db.drop()
        pg = os.path.join(self.tmp, "pg")
        if os.path.isdir(os.path.join(pg, "data")):
            subprocess.run([os.path.join(harness.ROOT, "scripts", "pg"), "stop", pg],
                           capture_output=True, timeout=120)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, env):
        self.port = harness.free_port()
        e = dict(os.environ)
        e.pop("DATABASE_URL", None)
        e.update(env)
        e["ALERTMAP_LISTEN"] = "127.0.0.1:%d" % self.port
        # never the developer's own var/dev-api-key
        self.keyfile = os.path.join(self.tmp, "var", "dev-api-key")
        e["ALERTMAP_DEV_KEY_FILE"] = self.keyfile
        e.pop("ALERTMAP_UNSIGNED_SOURCES", None)
        # the build tree this test belongs to (BUILD/h2o-glue/alertmapd)
        e["ALERTMAP_BUILD_DIR"] = os.path.dirname(os.path.dirname(harness.ALERTMAPD))
        self.errpath = os.path.join(self.tmp, "stderr")
        self.err = open(self.errpath, "wb")
        self.proc = subprocess.Popen([os.path.join(harness.ROOT, "scripts", "run")],
                                     stdout=subprocess.PIPE, stderr=self.err,
                                     stdin=subprocess.DEVNULL, env=e,
                                     start_new_session=True)

        def reader():
            for line in self.proc.stdout:
                self.out.append(line.decode("utf-8", "replace"))
        self.reader = threading.Thread(target=reader, daemon=True)
        self.reader.start()

    def stderr(self):
        with open(self.errpath, "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    def example(self):
        """The indented lines after 'Try it', as printed."""
        deadline = time.monotonic() + 300 * harness.SLOW
        while time.monotonic() < deadline:
            text = "".join(self.out)
            if "Try it" in text:
                after = text.split("Try it", 1)[1].split("\n")[1:]
                lines, ended = [], False
                for line in after:
                    if line.startswith("  ") and line.strip():
                        lines.append(line.strip())
                    elif lines:
                        ended = True
                        break
                if ended:
                    return lines
            self.assertIsNone(self.proc.poll(), "scripts/run exited early; stdout:\n%s\n"
                              "stderr:\n%s" % (text, self.stderr()))
            time.sleep(0.2)
        self.fail("scripts/run printed no example; stderr:\n" + self.stderr())

    def wait_healthy(self):
        deadline = time.monotonic() + 60 * harness.SLOW
        while time.monotonic() < deadline:
            self.assertIsNone(self.proc.poll(), "scripts/run exited: " + self.stderr())
            try:
                if harness.request(self.port, "GET", "/healthz", timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.fail("alertmapd of scripts/run never became healthy: " + self.stderr())

    def dev_key(self):
        """The key the script printed, checked against its file."""
        text = "".join(self.out)
        m = re.search(r"Development API key \(every scope, kept in (\S+)\): (amk_\S+)", text)
        self.assertIsNotNone(m, text)
        self.assertEqual(m.group(1), self.keyfile)
        with open(self.keyfile, encoding="utf-8") as f:
            self.assertEqual(f.read().strip(), m.group(2))
        self.assertEqual(os.stat(self.keyfile).st_mode & 0o777, 0o600)
        return m.group(2)

    def check_example(self):
        lines = self.example()
        self.assertTrue(any("curl" in x for x in lines), lines)
        self.wait_healthy()
        key = self.dev_key()
        self.assertTrue(all("cat %s" % self.keyfile in x for x in lines if "curl" in x), lines)
        # without the key: refused
        r = harness.request(self.port, "POST", "/v1/ingest/generic",
                            harness.generic_payload("no key"), key=None)
        self.assertEqual((r.status, r.json["error"]["code"]), (401, "UNAUTHORIZED"), r)
        self.assertEqual(harness.request(self.port, "GET", "/v1/alerts", key=key).status, 200)
        r = subprocess.run(["bash", "-c", "\n".join(lines)], capture_output=True, text=True,
                           timeout=60, cwd=harness.ROOT)
        self.assertEqual(r.returncode, 0, r.stderr)
        outs = [x for x in r.stdout.split("\n") if x.strip()]
        self.assertEqual(len(outs), 2, r.stdout)
        answer = json.loads(outs[0])
        u = answer["data"]["alert_uuid"]
        alert = json.loads(outs[1])["data"]
        self.assertEqual(alert["uuid"], u)
        m = re.search(r"@(\S+)\.json", "\n".join(lines))
        self.assertIsNotNone(m, "the example posts no sample file")
        with open(m.group(1) + ".expected.json", encoding="utf-8") as f:
            expected = json.load(f)
        self.assertEqual(alert["title"], expected["alerts"][0]["title"])
        self.assertEqual(alert["source_name"], "generic")

    def readme_example(self):
        """Runs the first sh block of the README's "Try it" section, as printed
        but for the port."""
        with open(os.path.join(harness.ROOT, "README.md"), encoding="utf-8") as f:
            text = f.read()
        section = text.split("\n## Try it", 1)[1].split("\n## ", 1)[0]
        block = section.split("```sh\n", 1)[1].split("```", 1)[0]
        self.assertIn("127.0.0.1:8080", block)
        block = block.replace("127.0.0.1:8080", "127.0.0.1:%d" % self.port)
        self.assertIn("var/dev-api-key", block)
        block = block.replace("var/dev-api-key", self.keyfile)
        r = subprocess.run(["bash", "-c", block], capture_output=True, text=True, timeout=60,
                           cwd=harness.ROOT)
        self.assertEqual(r.returncode, 0, r.stderr)
        outs = [x for x in r.stdout.split("\n") if x.strip()]
        self.assertEqual(len(outs), 2, r.stdout)
        u = json.loads(outs[0])["data"]["alert_uuid"]
        alert = json.loads(outs[1])["data"]
        self.assertEqual((alert["uuid"], alert["source_name"], alert["status"]),
                         (u, "generic", "Open"))
        # as the README says: no providers, so it is settled at ingest
        self.assertEqual((alert["enrichment_status"], alert["verdict"]), ("Enriched", "Unknown"))

    def interrupt(self):
        # Ctrl-C in a terminal: SIGINT to the whole foreground process group
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            rc = self.proc.wait(60 * harness.SLOW)
        except subprocess.TimeoutExpired:
            self.fail("scripts/run did not stop on SIGINT")
        self.assertEqual(rc, 0, self.stderr())
        with self.assertRaises(OSError):
            harness.request(self.port, "GET", "/healthz", timeout=2)

    def test_with_database_url(self):
        self.db = harness.TempDatabase("runscript")
        self.start({"DATABASE_URL": self.db.url})
        self.check_example()
        self.readme_example()
        self.interrupt()
        self.assertNotIn("starting a private PostgreSQL", self.stderr())
        self.assertEqual(int(harness.psql(self.db.url, "select count(*) from alerts")), 1)

    def test_private_postgres(self):
        pg = os.path.join(self.tmp, "pg")
        self.start({"ALERTMAP_PG_DIR": pg})
        self.check_example()
        first = self.dev_key()
        sock = os.path.join(pg, "socket")
        self.assertTrue(any(f.startswith(".s.PGSQL") for f in os.listdir(sock)))
        self.interrupt()
        self.assertFalse(any(f.startswith(".s.PGSQL") for f in os.listdir(sock)),
                         "the private PostgreSQL is still running")
        # the second start keeps the key: the database still knows it
        self.reader.join(10)
        self.proc.stdout.close()
        self.err.close()
        self.out = []
        self.start({"ALERTMAP_PG_DIR": pg})
        self.check_example()
        self.assertEqual(self.dev_key(), first)
        self.assertNotIn("created a development API key", self.stderr())
        self.interrupt()


if __name__ == "__main__":
    harness.main()
