"""Enrichment end to end: a real alertmapd (and worker-only alertmapd
processes) against a real PostgreSQL, and a stand-in provider server on
127.0.0.1 that answers as each shipped provider's documented API does.

The shipped provider files are copied with their vendor host replaced by the
stand-in's address (and short timeouts, a fast rate limit), so the request
and reply shapes tested are the shipped ones.

python3 test_enrich.py ALERTMAPD
"""

import http.server
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
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402

ROOT = harness.ROOT

# ---- the stand-in provider server ------------------------------------------


def vt_found(malicious, harmless=60):
    return {"data": {"id": "x", "type": "ip_address", "attributes": {
        "last_analysis_stats": {"malicious": malicious, "suspicious": 0, "harmless": harmless,
                                "undetected": 5, "timeout": 0},
        "reputation": -5 if malicious else 10, "country": "NL", "as_owner": "Example AS"}}}


class Stand:
    """Answers VirusTotal, AbuseIPDB, GreyNoise and URLhaus requests; records
    every request. Behaviour per value: see vt_reply()."""

    def __init__(self):
        self.lock = threading.Condition()
        self.requests = []  # dicts: vendor, path, raw, query, body, headers, value
        self.counts = {}
        self.release = threading.Event()
        self.release.set()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.handle(self, None)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                outer.handle(self, self.rfile.read(n).decode())

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def record(self, vendor, h, body, value):
        raw = h.path
        path, _, query = raw.partition("?")
        with self.lock:
            self.counts[(vendor, value)] = self.counts.get((vendor, value), 0) + 1
            n = self.counts[(vendor, value)]
            self.requests.append({"vendor": vendor, "raw": raw, "path": path, "query": query,
                                  "body": body, "headers": dict(h.headers.items()),
                                  "value": value, "time": time.monotonic()})
            self.lock.notify_all()
        return n

    def count(self, vendor, value):
        with self.lock:
            return self.counts.get((vendor, value), 0)

    def wait_count(self, vendor, value, n, timeout=20):
        deadline = time.monotonic() + timeout * harness.SLOW
        with self.lock:
            while self.counts.get((vendor, value), 0) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("stand-in: %s %s asked %d times, waited for %d" %
                                         (vendor, value, self.counts.get((vendor, value), 0), n))
                self.lock.wait(left)

    @staticmethod
    def send(h, status, obj=None, raw=None, headers=None):
        data = raw if raw is not None else json.dumps(obj).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            pass  # the client went away (a killed worker)

    def handle(self, h, body):
        path = h.path.partition("?")[0]
        q = urllib.parse.parse_qs(h.path.partition("?")[2])
        if path.startswith("/vt/api/v3/"):
            value = urllib.parse.unquote(path.rsplit("/", 1)[1])
            n = self.record("vt", h, body, value)
            return self.vt_reply(h, value, n)
        if path == "/abuse/api/v2/check":
            value = q.get("ipAddress", [""])[0]
            self.record("abuse", h, body, value)
            score = 90 if value == "203.0.113.10" else 0
            return self.send(h, 200, {"data": {
                "ipAddress": value, "isPublic": True, "ipVersion": 4, "isWhitelisted": False,
                "abuseConfidenceScore": score, "countryCode": "NL", "usageType": "Data Center",
                "isp": "Example", "domain": "example.net", "totalReports": 7 if score else 0,
                "numDistinctUsers": 3 if score else 0, "lastReportedAt": None}})
        if path.startswith("/gn/v3/community/"):
            value = path.rsplit("/", 1)[1]
            self.record("gn", h, body, value)
            if value == "203.0.113.10":
                return self.send(h, 200, {"ip": value, "noise": True, "riot": False,
                                          "classification": "malicious", "name": "unknown",
                                          "link": "https://viz.greynoise.io/ip/" + value,
                                          "last_seen": "2024-04-30", "message": "Success"})
            return self.send(h, 404, {"ip": value, "noise": False, "riot": False,
                                      "message": "IP not observed scanning the internet or "
                                                 "contained in RIOT data set."})
        if path in ("/uh/v1/host/", "/uh/v1/url/"):
            form = urllib.parse.parse_qs(body or "")
            value = (form.get("host") or form.get("url") or [""])[0]
            self.record("uh", h, body, value)
            if value == "malware.example.net":
                return self.send(h, 200, {"query_status": "ok", "host": value, "url_count": "1",
                                          "urlhaus_reference": "https://urlhaus.abuse.ch/host/x/",
                                          "blacklists": {"spamhaus_dbl": "not listed"},
                                          "urls": [{"url": "http://malware.example.net/a.exe",
                                                    "url_status": "online",
                                                    "threat": "malware_download"}]})
            return self.send(h, 200, {"query_status": "no_results"})
        if path.startswith("/probe/"):
            self.record("probe", h, body, h.path)
            return self.send(h, 200, {"ok": True})
        self.send(h, 400, {"error": "unknown path " + path})

    def vt_reply(self, h, value, n):
        if value == "203.0.113.10":
            return self.send(h, 200, vt_found(8))
        if value == "203.0.113.11":
            return self.send(h, 404, {"error": {"code": "NotFoundError",
                                                "message": "Resource not found"}})
        if value == "203.0.113.12":  # over the quota once, with Retry-After
            if n == 1:
                return self.send(h, 429, {"error": {"code": "QuotaExceededError"}},
                                 headers={"Retry-After": "2"})
            return self.send(h, 200, vt_found(0))
        if value == "203.0.113.13":
            return self.send(h, 500, {"error": {"code": "TransientError"}})
        if value == "203.0.113.14":  # slower than the timeout (1 s)
            time.sleep(2.5)
            return self.send(h, 200, vt_found(0))
        if value == "203.0.113.15":
            return self.send(h, 200, raw=b'{"data": {"attributes": ')
        if value == "203.0.113.16":
            if n <= 2:
                return self.send(h, 503, {"error": {"code": "TransientError"}})
            return self.send(h, 200, vt_found(1))
        if value == "203.0.113.20":  # held until the test releases it
            self.release.wait(30)
            return self.send(h, 200, vt_found(4))
        if value.startswith("198.18."):
            time.sleep(0.05)
            return self.send(h, 200, vt_found(0))
        return self.send(h, 404, {"error": {"code": "NotFoundError"}})


def provider_dir(port, tmp):
    """The shipped providers, pointed at the stand-in; a probe provider whose
    URL puts the value in a path segment and a query parameter."""
    d = os.path.join(tmp, "providers")
    shutil.copytree(os.path.join(ROOT, "providers"), d)
    base = "http://127.0.0.1:%d" % port
    hosts = {"https://www.virustotal.com": base + "/vt",
             "https://api.abuseipdb.com": base + "/abuse",
             "https://api.greynoise.io": base + "/gn",
             "https://urlhaus-api.abuse.ch": base + "/uh"}
    for f in os.listdir(d):
        if not f.endswith(".yaml"):
            continue
        p = os.path.join(d, f)
        with open(p) as fh:
            text = fh.read()
        for k, v in hosts.items():
            text = text.replace(k, v)
        text = re.sub(r"(?m)^timeout: .*$", "timeout: 1s", text)
        text = re.sub(r"(?m)^rate_limit: .*$", "rate_limit: [50/s]", text)
        text = re.sub(r"(?m)^max_attempts: .*$", "max_attempts: 3", text)
        with open(p, "w") as fh:
            fh.write(text)
    with open(os.path.join(d, "probe.yaml"), "w") as fh:
        fh.write("provider: probe\nkind: http\ntypes: [account]\n"
                 "request:\n  url: %s/probe/{value}/x?v={value}&fixed=1\n"
                 "timeout: 2s\ncache_ttl: 1h\nresults: {ok: ok}\n"
                 "verdict: [{else: Benign}]\n" % base)
    return d


ENV = {"VIRUSTOTAL_API_KEY": "vt-test-key", "ABUSEIPDB_API_KEY": "abuse-test-key",
       "GREYNOISE_API_KEY": "gn-test-key", "URLHAUS_AUTH_KEY": "uh-test-key"}
WORKER_ARGS = ["--worker-lease", "2", "--worker-poll", "1", "--worker-backoff", "1"]


def post_alert(srv, title, indicators):
    r = srv.post("/v1/ingest/generic", {"title": title, "severity": "High",
                                        "indicators": indicators})
    assert r.status == 202, r
    return harness.ingest_uuids(r)[0]


def wait_status(url, uuid, timeout=30):
    """Waits until the alert's enrichment_status leaves Pending; returns the row."""
    deadline = time.monotonic() + timeout * harness.SLOW
    while True:
        row = harness.psql(url, "select enrichment_status || '|' || coalesce(verdict, '') || '|' "
                                "|| coalesce(enrichment_error, '') from alerts "
                                "where uuid = '%s'" % uuid)
        status, verdict, error = row.split("|", 2)
        if status != "Pending":
            return status, verdict, error
        if time.monotonic() > deadline:
            raise AssertionError("alert %s still Pending after %ds" % (uuid, timeout))
        time.sleep(0.1)


def ioc_verdict(url, uuid, type_, value):
    return harness.psql(url, "select coalesce(indicator_verdicts ->> '%s:%s', '') from alerts "
                             "where uuid = '%s'" % (type_, value, uuid))


def job_of(url, uuid):
    row = harness.psql(url, "select j.status || '|' || j.attempts from enrichment_jobs j join "
                            "alerts a on a.id = j.alert_id where a.uuid = '%s'" % uuid)
    s, a = row.split("|")
    return s, int(a)


class StandTestCase(unittest.TestCase):
    """A stand-in provider server, the shipped providers pointed at it in a
    temporary directory (cls.providers), a fresh database and one alertmapd.
    A subclass sets NAME and overrides server_args / server_env, prepare
    (before the server starts: files, receivers) and after_start; whatever
    it adds to cls.closers is closed after the server stopped."""

    NAME = "enrich"

    @classmethod
    def server_args(cls):
        return ["--providers", cls.providers, "--workers", "2"] + WORKER_ARGS

    @classmethod
    def server_env(cls):
        return ENV

    @classmethod
    def prepare(cls):
        pass

    @classmethod
    def after_start(cls):
        pass

    @classmethod
    def setUpClass(cls):
        cls.closers, cls.db, cls.srv = [], None, None
        cls.stand = Stand()
        cls.tmp = tempfile.mkdtemp(prefix="alertmap-%s-" % cls.NAME.replace("_", "-"))
        try:
            cls.providers = provider_dir(cls.stand.port, cls.tmp)
            cls.prepare()
            cls.db = harness.TempDatabase(cls.NAME)
            cls.srv = harness.Server(cls.db.url, env=cls.server_env(), args=cls.server_args())
            cls.srv.start()
            cls.after_start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.srv is not None:
                cls.srv.stop()
        finally:
            for close in reversed(cls.closers):
                close()
            if cls.srv is not None:
                cls.srv.cleanup()
            if cls.db is not None:
                cls.db.drop()
            cls.stand.close()
            shutil.rmtree(cls.tmp, ignore_errors=True)


class EnrichTest(StandTestCase):
    """One alertmapd with two worker threads, the stand-in, a fresh database."""

    NAME = "enrich"

    def test_found_and_not_found(self):
        u = post_alert(self.srv, "found and not found", [
            {"type": "ip", "value": "203.0.113.10"}, {"type": "ip", "value": "203.0.113.11"}])
        status, verdict, error = wait_status(self.db.url, u)
        self.assertEqual((status, verdict, error), ("Enriched", "Malicious", ""))
        self.assertEqual(ioc_verdict(self.db.url, u, "ip", "203.0.113.10"), "Malicious")
        # VT 404, GreyNoise 404, AbuseIPDB score 0 with no reports: nothing known
        self.assertEqual(ioc_verdict(self.db.url, u, "ip", "203.0.113.11"), "Unknown")
        rows = harness.psql(self.db.url, "select provider || ':' || outcome || ':' || "
                                         "coalesce(verdict, '-') from enrichment_results where "
                                         "value = '203.0.113.11' order by provider").split()
        self.assertIn("virustotal:not_found:-", rows)
        self.assertIn("greynoise:not_found:-", rows)
        self.assertIn("abuseipdb:found:Unknown", rows)
        self.assertIn("internal_ranges:not_found:-", rows)
        self.assertEqual(job_of(self.db.url, u), ("done", 1))
        fields = json.loads(harness.psql(
            self.db.url, "select fields from enrichment_results where provider = 'virustotal' "
                         "and value = '203.0.113.10'"))
        self.assertEqual(fields["malicious"], 8)
        self.assertEqual(fields["country"], "NL")
        # the secrets went where the vendors expect them
        vt = [r for r in self.stand.requests if r["vendor"] == "vt"]
        self.assertTrue(all(r["headers"].get("x-apikey") == "vt-test-key" for r in vt))
        ab = [r for r in self.stand.requests if r["vendor"] == "abuse"]
        self.assertTrue(ab and all(r["headers"].get("Key") == "abuse-test-key" for r in ab))
        self.assertTrue(all("abuse-test-key" not in r["raw"] for r in ab))

    def test_retry_after_429(self):
        u = post_alert(self.srv, "quota", [{"type": "ip", "value": "203.0.113.12"}])
        status, verdict, _ = wait_status(self.db.url, u)
        self.assertEqual((status, verdict), ("Enriched", "Benign"))
        reqs = [r for r in self.stand.requests if r["vendor"] == "vt" and
                r["value"] == "203.0.113.12"]
        self.assertEqual(len(reqs), 2)
        self.assertGreaterEqual(reqs[1]["time"] - reqs[0]["time"], 1.9)  # Retry-After: 2
        self.assertEqual(job_of(self.db.url, u), ("done", 2))

    def test_5xx_then_success(self):
        u = post_alert(self.srv, "flaky", [{"type": "ip", "value": "203.0.113.16"}])
        status, verdict, _ = wait_status(self.db.url, u, timeout=40)
        self.assertEqual((status, verdict), ("Enriched", "Suspicious"))
        self.assertEqual(self.stand.count("vt", "203.0.113.16"), 3)

    def test_5xx_always_fails_after_the_last_attempt(self):
        u = post_alert(self.srv, "down", [{"type": "ip", "value": "203.0.113.13"}])
        status, verdict, error = wait_status(self.db.url, u, timeout=40)
        self.assertEqual(status, "Failed")
        self.assertIn("virustotal ip 203.0.113.13: HTTP 500 (after 3 attempts)", error)
        self.assertEqual(self.stand.count("vt", "203.0.113.13"), 3)
        self.assertEqual(job_of(self.db.url, u), ("failed", 3))
        self.assertEqual(verdict, "Unknown")

    def test_slower_than_timeout_fails(self):
        u = post_alert(self.srv, "slow", [{"type": "ip", "value": "203.0.113.14"}])
        status, _, error = wait_status(self.db.url, u, timeout=60)
        self.assertEqual(status, "Failed")
        self.assertIn("timeout after 1000 ms (after 3 attempts)", error)

    def test_malformed_json_fails_without_retry(self):
        u = post_alert(self.srv, "malformed", [{"type": "ip", "value": "203.0.113.15"}])
        status, _, error = wait_status(self.db.url, u)
        self.assertEqual(status, "Failed")
        self.assertIn("virustotal ip 203.0.113.15: reply is not JSON", error)
        self.assertEqual(self.stand.count("vt", "203.0.113.15"), 1)
        self.assertEqual(job_of(self.db.url, u), ("failed", 1))

    def test_cache_shared_by_alerts(self):
        u1 = post_alert(self.srv, "cache one", [{"type": "ip", "value": "198.18.0.1"}])
        wait_status(self.db.url, u1)
        n = self.stand.count("vt", "198.18.0.1")
        self.assertEqual(n, 1)
        u2 = post_alert(self.srv, "cache two", [{"type": "ip", "value": "198.18.0.1"}])
        status, verdict, _ = wait_status(self.db.url, u2)
        self.assertEqual((status, verdict), ("Enriched", "Benign"))
        self.assertEqual(self.stand.count("vt", "198.18.0.1"), 1)
        self.assertEqual(self.stand.count("abuse", "198.18.0.1"), 1)

    def test_lists_ranges_and_urlhaus(self):
        u = post_alert(self.srv, "lists", [{"type": "domain", "value": "malware.example.net"},
                                           {"type": "ip", "value": "10.20.1.2"}])
        status, verdict, _ = wait_status(self.db.url, u)
        self.assertEqual((status, verdict), ("Enriched", "Malicious"))
        self.assertEqual(ioc_verdict(self.db.url, u, "domain", "malware.example.net"), "Malicious")
        labels = json.loads(harness.psql(
            self.db.url, "select fields from enrichment_results where provider = "
                         "'internal_ranges' and value = '10.20.1.2'"))["labels"]
        self.assertEqual(labels, ["internal", "site:paris", "owner:netops"])
        bl = harness.psql(self.db.url, "select outcome from enrichment_results where provider = "
                                       "'example_blocklist' and value = 'malware.example.net'")
        self.assertEqual(bl, "found")
        uh = [r for r in self.stand.requests if r["vendor"] == "uh" and
              r["value"] == "malware.example.net"]
        self.assertEqual(uh[0]["body"], "host=malware.example.net")
        self.assertEqual(uh[0]["headers"].get("Auth-Key"), "uh-test-key")

    def test_hostile_value_stays_in_its_slot(self):
        value = "a/../b?c=d#e%f g&fixed=2"
        u = post_alert(self.srv, "hostile", [{"type": "account", "value": value}])
        status, _, _ = wait_status(self.db.url, u)
        self.assertEqual(status, "Enriched")
        stored = harness.psql(self.db.url, "select i.value from indicators i join "
                                           "alert_indicators ai on ai.indicator_id = i.id join "
                                           "alerts a on a.id = ai.alert_id where a.uuid = '%s' "
                                           "and i.type = 'account'" % u)
        self.assertTrue(any(c in stored for c in "/?#% "), stored)
        reqs = [r for r in self.stand.requests if r["vendor"] == "probe"]
        self.assertEqual(len(reqs), 1)
        raw = reqs[0]["raw"]
        path, _, query = raw.partition("?")
        segs = path.split("/")
        self.assertEqual(segs[:2], ["", "probe"])
        self.assertEqual(segs[3:], ["x"])  # exactly one segment holds the value
        self.assertEqual(urllib.parse.unquote(segs[2]), stored)
        self.assertNotIn("#", raw)
        q = urllib.parse.parse_qs(query, keep_blank_values=True)
        self.assertEqual(sorted(q), ["fixed", "v"])
        self.assertEqual(q["v"], [stored])
        self.assertEqual(q["fixed"], ["1"])

    def test_shared_indicators_under_load(self):
        """Ingest upserts the indicators every alert shares while the workers
        finish jobs of earlier alerts: no request fails (a worker that also
        locked indicator rows deadlocked with ingest)."""
        iocs = [{"type": "ip", "value": "198.18.9.%d" % k} for k in range(1, 6)]
        results = []
        lock = threading.Lock()

        def load(i):
            for n in range(25):
                r = self.srv.post("/v1/ingest/generic", {
                    "title": "shared load %d-%d" % (i, n), "severity": "Low",
                    "indicators": iocs[i % 5:] + iocs[:i % 5]})
                with lock:
                    results.append(r.status)

        harness.run_threads(8, load, timeout=180)
        self.assertEqual([s for s in results if s != 202], [])
        deadline = time.monotonic() + 60 * harness.SLOW
        while harness.psql(self.db.url, "select count(*) from alerts where title like "
                                        "'shared load %' and enrichment_status = 'Pending'") != "0":
            self.assertLess(time.monotonic(), deadline, "alerts still Pending")
            time.sleep(0.2)
        self.assertEqual(harness.psql(self.db.url, "select count(*) from alerts where title like "
                                                   "'shared load %' and enrichment_status <> "
                                                   "'Enriched'"), "0")


def start_worker(db_url, providers, name_tmp, args=None, env_extra=None):
    """alertmapd --role worker (no listener); returns the Popen and its log path.
    args replaces the worker options (default: two threads, WORKER_ARGS)."""
    log = os.path.join(name_tmp, "worker-%d.log" % time.monotonic_ns())
    env = dict(os.environ)
    env.update(ENV)
    env.update(env_extra or {})
    env["ALERTMAP_SQL_DIR"] = os.path.join(ROOT, "schemas", "sql")
    fh = open(log, "ab")
    p = subprocess.Popen([harness.ALERTMAPD, "--role", "worker", "--database-url", db_url,
                          "--mappings", os.path.join(ROOT, "mappings"), "--providers", providers]
                         + (args if args is not None else ["--workers", "2"] + WORKER_ARGS),
                         stdin=subprocess.DEVNULL, stdout=fh, stderr=fh, env=env)
    fh.close()
    deadline = time.monotonic() + 20 * harness.SLOW
    while True:
        with open(log, "rb") as f:
            if b'"worker_started"' in f.read():
                return p, log
        if p.poll() is not None or time.monotonic() > deadline:
            with open(log) as f:
                raise AssertionError("worker did not start:\n" + f.read())
        time.sleep(0.05)


def stop_worker(p, log):
    p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=30 * harness.SLOW)
    with open(log) as f:
        text = f.read()
    for m in harness.SANITIZER_MARKERS:
        assert m not in text, text[-4000:]
    assert rc == 0, "worker exited %d:\n%s" % (rc, text[-4000:])


class WorkerProcessTest(StandTestCase):
    """alertmapd without workers ingests; worker-only processes enrich."""

    NAME = "workers"

    @classmethod
    def server_args(cls):
        return ["--workers", "0"]

    def test_killed_worker_job_is_reclaimed(self):
        self.stand.release.clear()
        a, alog = start_worker(self.db.url, self.providers, self.tmp)
        try:
            u = post_alert(self.srv, "killed mid-job", [{"type": "ip", "value": "203.0.113.20"}])
            self.stand.wait_count("vt", "203.0.113.20", 1)
            a.kill()  # SIGKILL while the provider request is in flight
            a.wait(timeout=10)
            self.assertEqual(job_of(self.db.url, u)[0], "running")
            self.stand.release.set()
            b, blog = start_worker(self.db.url, self.providers, self.tmp)
            try:
                status, verdict, _ = wait_status(self.db.url, u)
            finally:
                stop_worker(b, blog)
        finally:
            self.stand.release.set()
            if a.poll() is None:
                a.kill()
        self.assertEqual((status, verdict), ("Enriched", "Malicious"))
        self.assertEqual(job_of(self.db.url, u), ("done", 2))
        self.assertEqual(self.stand.count("vt", "203.0.113.20"), 2)
        self.assertEqual(harness.psql(self.db.url, "select count(*) from enrichment_results "
                                                   "where provider = 'virustotal' and value = "
                                                   "'203.0.113.20'"), "1")

    def test_two_workers_share_the_queue(self):
        a, alog = start_worker(self.db.url, self.providers, self.tmp)
        b, blog = start_worker(self.db.url, self.providers, self.tmp)
        try:
            uuids = [post_alert(self.srv, "shared %d" % i, [{"type": "ip",
                                                             "value": "198.18.1.%d" % i}])
                     for i in range(1, 31)]
            for u in uuids:
                self.assertEqual(wait_status(self.db.url, u)[0], "Enriched")
        finally:
            stop_worker(a, alog)
            stop_worker(b, blog)
        for i in range(1, 31):
            self.assertEqual(self.stand.count("vt", "198.18.1.%d" % i), 1)
        attempts = harness.psql(self.db.url, "select string_agg(distinct attempts::text, ',') "
                                             "from enrichment_jobs j join alerts a on "
                                             "a.id = j.alert_id where a.title like 'shared %'")
        self.assertEqual(attempts, "1")
        pids = set(harness.psql(self.db.url, "select distinct split_part(claimed_by, ':', 2) "
                                             "from enrichment_jobs j join alerts a on "
                                             "a.id = j.alert_id where a.title like 'shared %'")
                   .split())
        self.assertEqual(pids, {str(a.pid), str(b.pid)})


# ---- agent dispatch ----------------------------------------------------------

SIGNING = {"OK_AGENT_SECRET": "s3cret-ok", "FLAKY_AGENT_SECRET": "s3cret-flaky",
           "DOWN_AGENT_SECRET": "s3cret-down"}


class Receiver:
    """Agent endpoints: /ok accepts, /flaky fails three times then accepts,
    /down always fails. Every request's signature is verified as
    docs/dispatch.md tells receivers to."""

    SECRETS = {"/ok": "s3cret-ok", "/flaky": "s3cret-flaky", "/down": "s3cret-down"}

    def __init__(self):
        self.lock = threading.Condition()
        # (path, valid signature, status answered, body, X-Alertmap-Delivery)
        self.got = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                valid = outer.verify(self.path, self.headers.get("X-Alertmap-Signature", ""),
                                     body)
                with outer.lock:
                    tries = sum(1 for g in outer.got if g[0] == self.path)
                    status = outer.answer(self.path, tries) if valid else 401
                    outer.got.append((self.path, valid, status, body,
                                      self.headers.get("X-Alertmap-Delivery")))
                    outer.lock.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, path, tries):
        """The status for a request with a valid signature, the tries-th
        (from 0) to path; called with the lock held."""
        if path == "/down" or (path == "/flaky" and tries < 3):
            return 500
        return 200

    def received(self, path):
        with self.lock:
            return [g for g in self.got if g[0] == path]

    def verify(self, path, header, body):
        """t=TS,v1=HEX: HMAC-SHA256(secret, TS + "." + body), TS within 5 minutes."""
        import hashlib
        import hmac
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        if "t" not in parts or "v1" not in parts:
            return False
        if abs(time.time() - int(parts["t"])) > 300:
            return False
        want = hmac.new(self.SECRETS[path].encode(), parts["t"].encode() + b"." + body,
                        hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, parts["v1"])

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def delivery(url, uuid, target):
    row = harness.psql(url, "select d.status || '|' || d.attempts || '|' || "
                            "coalesce(d.last_status::text, '') || '|' || "
                            "coalesce(d.last_error, '') from dispatch_deliveries d join alerts a on "
                            "a.id = d.alert_id where a.uuid = '%s' and d.target = '%s'"
                       % (uuid, target))
    return row.split("|") if row else None


def wait_delivery(url, uuid, target, states, timeout=60):
    deadline = time.monotonic() + timeout * harness.SLOW
    while True:
        d = delivery(url, uuid, target)
        if d and d[0] in states:
            return d
        if time.monotonic() > deadline:
            raise AssertionError("delivery %s/%s: %r after %ds" % (uuid, target, d, timeout))
        time.sleep(0.1)


class DispatchTest(StandTestCase):

    NAME = "dispatch"

    @classmethod
    def prepare(cls):
        cls.recv = Receiver()
        cls.closers.append(cls.recv.close)
        cls.tdir = os.path.join(cls.tmp, "targets")
        os.mkdir(cls.tdir)
        base = "http://127.0.0.1:%d" % cls.recv.port
        with open(os.path.join(cls.tdir, "ok.yaml"), "w") as f:
            f.write("target: ok-agent\nurl: %s/ok\nsecret: OK_AGENT_SECRET\nwhen: enriched\n"
                    "filters:\n  min_severity: High\n  verdicts: [Malicious, Suspicious]\n"
                    % base)
        with open(os.path.join(cls.tdir, "flaky.yaml"), "w") as f:
            f.write("target: flaky-agent\nurl: %s/flaky\nsecret: FLAKY_AGENT_SECRET\n"
                    "when: ingested\nbackoff: 1s\nmax_attempts: 6\n"
                    "filters: {sources: [generic], tags: [dispatch-test]}\n" % base)
        with open(os.path.join(cls.tdir, "down.yaml"), "w") as f:
            f.write("target: down-agent\nurl: %s/down\nsecret: DOWN_AGENT_SECRET\n"
                    "when: ingested\nbackoff: 1s\nmax_attempts: 3\n"
                    "filters: {tags: [dispatch-test]}\n" % base)

    @classmethod
    def server_env(cls):
        return dict(ENV, **SIGNING)

    @classmethod
    def server_args(cls):
        return (["--providers", cls.providers, "--targets", cls.tdir, "--workers", "2"] +
                WORKER_ARGS)

    def post(self, title, severity, indicators, tags):
        r = self.srv.post("/v1/ingest/generic", {"title": title, "severity": severity,
                                                 "indicators": indicators, "tags": tags})
        self.assertEqual(r.status, 202, r)
        return harness.ingest_uuids(r)[0]

    def test_signed_deliveries_retries_and_failure(self):
        u = self.post("dispatch malicious", "High", [{"type": "ip", "value": "203.0.113.10"}],
                      ["dispatch-test"])
        ok = wait_delivery(self.db.url, u, "ok-agent", ("delivered", "failed"))
        self.assertEqual(ok[:3], ["delivered", "1", "200"])
        flaky = wait_delivery(self.db.url, u, "flaky-agent", ("delivered", "failed"))
        self.assertEqual(flaky[:3], ["delivered", "4", "200"])
        down = wait_delivery(self.db.url, u, "down-agent", ("delivered", "failed"))
        self.assertEqual(down, ["failed", "3", "500", "HTTP 500"])
        with self.recv.lock:
            got = list(self.recv.got)
        self.assertTrue(got and all(g[1] for g in got), "a signature did not verify")
        self.assertEqual([g[2] for g in got if g[0] == "/flaky"], [500, 500, 500, 200])
        self.assertEqual([g[2] for g in got if g[0] == "/down"], [500, 500, 500])
        bodies = [json.loads(g[3]) for g in got if g[0] == "/ok"]
        self.assertEqual(len(bodies), 1)
        b = bodies[0]
        self.assertEqual(b["uuid"], u)
        self.assertEqual(b["verdict"], "Malicious")
        self.assertEqual(b["enrichment_status"], "Enriched")
        ind = [i for i in b["indicators"] if i["value"] == "203.0.113.10"][0]
        self.assertEqual(ind["verdict"], "Malicious")
        providers = {e["provider"]: e for e in ind["enrichment"]}
        self.assertEqual(providers["virustotal"]["verdict"], "Malicious")
        self.assertEqual(providers["virustotal"]["result"]["malicious"], 8)
        import jsonschema
        with open(os.path.join(ROOT, "schemas", "dispatch.schema.json")) as f:
            jsonschema.validate(b, json.load(f))

    def test_filters(self):
        u = self.post("dispatch low", "Low", [{"type": "ip", "value": "203.0.113.10"}],
                      ["other"])
        self.assertEqual(wait_status(self.db.url, u)[0], "Enriched")
        # Low is under min_severity; the tag filters of the other two do not match
        self.assertEqual(harness.psql(self.db.url, "select count(*) from dispatch_deliveries d join "
                                                   "alerts a on a.id = d.alert_id where "
                                                   "a.uuid = '%s'" % u), "0")


if __name__ == "__main__":
    harness.main()
