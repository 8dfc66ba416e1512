"""Provider samples (docs/enrichment.md, "Samples"): `alertmap check` and
`alertmap test` run them and fail on a broken one with file:line:col
messages; a SIGHUP whose provider files fail a sample keeps the running
providers (the worker goes on enriching with them, as the stand-in provider
server of test_enrich.py sees), and a fixed file is then taken.

python3 test_provider_samples.py ALERTMAPD
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import test_enrich  # noqa: E402  (the stand-in provider server and its helpers)

ROOT = harness.ROOT

# The block form of the VirusTotal request headers (the samples use flow maps)
VT_HEADERS = '    x-apikey: "{secret.api_key}"\n    Accept: application/json\n'
VT_SAMPLE_HEADERS = 'headers: {x-apikey: "{secret.api_key}", Accept: application/json}'


def edit(path, old, new):
    with open(path) as f:
        text = f.read()
    assert text.count(old) == 1, "%r occurs %d times in %s" % (old, text.count(old), path)
    with open(path, "w") as f:
        f.write(text.replace(old, new))


def line_of(path, needle):
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if needle in line:
                return i
    raise AssertionError("%r not in %s" % (needle, path))


class CliTest(unittest.TestCase):
    """alertmap check / test on the shipped providers and on a broken copy."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="alertmap-psamples-")
        self.dir = os.path.join(self.tmp, "providers")
        shutil.copytree(os.path.join(ROOT, "providers"), self.dir)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_cli(self, *args):
        env = dict(os.environ)
        env.pop("ALERTMAP_PROVIDERS", None)
        return subprocess.run([harness.alertmap_cli()] + list(args), capture_output=True,
                              text=True, env=env, timeout=60 * harness.SLOW)

    def test_shipped_samples_pass(self):
        r = self.run_cli("check", "--providers", self.dir, os.path.join(ROOT, "mappings"))
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.search(r"7 providers OK \((\d+) samples pass\)", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        self.assertGreaterEqual(int(m.group(1)), 25)
        r = self.run_cli("test", "--providers", self.dir, os.path.join(ROOT, "mappings"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for name in ("virustotal", "abuseipdb", "greynoise", "urlhaus_host", "urlhaus_url",
                     "example_blocklist", "internal_ranges"):
            self.assertRegex(r.stdout, r"(?m)^PASS %s \(\d+ samples\)$" % name)
        self.assertRegex(r.stdout, r"7 providers, \d+ samples: all passed")

    def test_broken_sample_fails_with_positions(self):
        vt = os.path.join(self.dir, "virustotal.yaml")
        # the provider now asks for 9 engines before Malicious: the reply
        # recorded with 8 becomes Suspicious
        edit(vt, "  - when: {field: malicious, gte: 3}\n", "  - when: {field: malicious, gte: 9}\n")
        # and a sample expects a URL the provider does not send
        edit(vt, "        url: https://www.virustotal.com/api/v3/domains/example.com\n",
             "        url: https://www.virustotal.com/api/v3/domain/example.com\n")
        gn = os.path.join(self.dir, "greynoise.yaml")
        edit(gn, "      outcome: not_found\n      verdict: Unknown\n",
             "      outcome: found\n      verdict: Unknown\n")
        r = self.run_cli("check", "--providers", self.dir, os.path.join(ROOT, "mappings"))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        verdict_line = line_of(vt, "      verdict: Malicious")
        url_line = line_of(vt, "/api/v3/domain/example.com")
        self.assertIn("%s:%d:16: sample 'ip_malicious': verdict: expected Malicious, got "
                      "Suspicious" % (vt, verdict_line), r.stderr)
        self.assertIn("%s:%d:14: sample 'domain_benign': request url: expected "
                      "'https://www.virustotal.com/api/v3/domain/example.com', got "
                      "'https://www.virustotal.com/api/v3/domains/example.com'" % (vt, url_line),
                      r.stderr)
        self.assertRegex(r.stderr, r"%s:\d+:16: sample 'not_observed': outcome: expected found, "
                                   r"got not_found" % re.escape(gn))
        self.assertIn("alertmap check: 3 problems found", r.stderr)
        self.assertNotIn("providers OK", r.stdout)
        # alertmap test: one line per provider, the differences under it
        r = self.run_cli("test", "--providers", self.dir, os.path.join(ROOT, "mappings"))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("FAIL virustotal (2 of 6 samples)", r.stdout)
        self.assertIn("FAIL greynoise (1 of 5 samples)", r.stdout)
        self.assertIn("PASS abuseipdb (5 samples)", r.stdout)
        self.assertIn("%s:%d:14: sample 'domain_benign'" % (vt, url_line), r.stdout)
        self.assertRegex(r.stdout, r"7 providers, \d+ samples: 3 failed")

    def test_sample_errors_are_compile_errors(self):
        ab = os.path.join(self.dir, "abuseipdb.yaml")
        edit(ab, "    indicator: {type: ip, value: 203.0.113.10}\n",
             "    indicator: {type: domain, value: 203.0.113.10}\n")
        r = self.run_cli("check", "--providers", self.dir, os.path.join(ROOT, "mappings"))
        self.assertEqual(r.returncode, 1)
        n = line_of(ab, "{type: domain, value: 203.0.113.10}")
        self.assertIn("%s:%d:23: provider 'abuseipdb' does not answer type domain" % (ab, n),
                      r.stderr)


class ReloadTest(test_enrich.StandTestCase):
    """alertmapd with workers and the shipped providers pointed at the
    stand-in; the provider files are edited between SIGHUPs."""

    NAME = "psamples"

    @classmethod
    def server_args(cls):
        return ["--providers", cls.providers, "--workers", "1"] + test_enrich.WORKER_ARGS

    def events(self, name):
        return [l for l in self.srv.log_lines() if l.get("event") == name or
                l.get("msg") == name]

    def wait_log(self, name, count, timeout=20):
        deadline = time.monotonic() + timeout * harness.SLOW
        while len(self.events(name)) < count:
            if time.monotonic() > deadline:
                raise AssertionError("no %d. %s in the log:\n%s" %
                                     (count, name, self.srv.stderr()[-4000:]))
            time.sleep(0.05)

    def vt_request(self, value):
        with self.stand.lock:
            for r in self.stand.requests:
                if r["vendor"] == "vt" and r["value"] == value:
                    return r
        return None

    def enrich(self, value):
        u = test_enrich.post_alert(self.srv, "samples " + value, [{"type": "ip", "value": value}])
        status, verdict, error = test_enrich.wait_status(self.db.url, u)
        self.assertEqual((status, error), ("Enriched", ""))
        r = self.vt_request(value)
        self.assertIsNotNone(r, "VirusTotal was not asked for " + value)
        return {k.lower(): v for k, v in r["headers"].items()}

    def test_failing_sample_keeps_the_running_providers(self):
        vt = os.path.join(self.providers, "virustotal.yaml")
        self.assertEqual(self.enrich("198.18.7.1").get("x-set"), None)
        # the provider sends one more header; its sample still lists the old set
        edit(vt, VT_HEADERS, VT_HEADERS + "    X-Set: two\n")
        failed = len(self.events("providers_reload_failed"))
        self.srv.signal(signal.SIGHUP)
        self.wait_log("providers_reload_failed", failed + 1)
        err = self.srv.stderr()
        self.assertRegex(err, r"%s:\d+:\d+: sample 'ip_malicious': request header "
                              r"'X-Set: two' is sent but not expected" % re.escape(vt))
        # the secret never reaches the log
        self.assertNotIn(test_enrich.ENV["VIRUSTOTAL_API_KEY"], err)
        # the worker goes on with the old set: no X-Set header
        headers = self.enrich("198.18.7.2")
        self.assertNotIn("x-set", headers)
        self.assertEqual(headers.get("x-apikey"), test_enrich.ENV["VIRUSTOTAL_API_KEY"])
        # the sample updated as well: the reload is taken
        edit(vt, VT_SAMPLE_HEADERS, VT_SAMPLE_HEADERS[:-1] + ", X-Set: two}")
        ok = len(self.events("providers_reloaded"))
        self.srv.signal(signal.SIGHUP)
        self.wait_log("providers_reloaded", ok + 1)
        self.assertEqual(self.enrich("198.18.7.3").get("x-set"), "two")


if __name__ == "__main__":
    harness.main()
