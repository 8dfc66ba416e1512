"""Shared harness of the alertmap integration tests.

Every test module runs a real alertmapd binary over HTTP on 127.0.0.1 against a
real PostgreSQL. Nothing is mocked.

Inputs (set by tests/integration/meson.build and scripts/test):
  argv[1]                     path of the built alertmapd binary
  ALERTMAP_SOURCE_ROOT        the source tree (mappings/, schemas/sql, scripts/pg)
  ALERTMAP_TEST_PGHOST        socket directory of a running PostgreSQL where the
                              user 'alertmap' is a trust-authenticated superuser

A missing database is a failure, never a skip.

API keys: every Server creates a key with every scope (ingest, read, write,
admin) through the real `alertmap keys create` (the CLI beside alertmapd in
the build tree), and request() sends it as "Authorization: Bearer" to that
server's port unless the request names its own Authorization or X-API-Key
header, or passes key=None (no key) or key="amk_..." (another key). The
shipped sources are opted out of their (unset) signature secrets with
ALERTMAP_UNSIGNED_SOURCES, so that they take the key, unless a test sets
that variable itself.
"""

import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid as uuidlib

sys.dont_write_bytecode = True

ALERTMAPD = None
ROOT = os.environ.get("ALERTMAP_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
PGHOST = os.environ.get("ALERTMAP_TEST_PGHOST", "")

# Sanitizer builds are slower; every wait is scaled by this factor (set in main()).
SLOW = 1.0

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")


def main():
    """Entry point of every test module: python3 test_x.py ALERTMAPD [unittest args]."""
    global ALERTMAPD
    args = sys.argv[1:]
    if args and not args[0].startswith("-"):
        ALERTMAPD = os.path.abspath(args.pop(0))
    else:
        ALERTMAPD = os.environ.get("ALERTMAPD")
    if not ALERTMAPD or not os.access(ALERTMAPD, os.X_OK):
        print("harness: the alertmapd binary is required as the first argument "
              "(or ALERTMAPD); got %r" % ALERTMAPD, file=sys.stderr)
        sys.exit(1)
    global SLOW
    build = os.path.basename(os.environ.get("ALERTMAP_BUILD_ROOT", "").rstrip("/"))
    if "san" in build or os.environ.get("ALERTMAP_TEST_SLOW"):
        SLOW = 3.0
    unittest.main(argv=[sys.argv[0]] + args, verbosity=2)


# ---- PostgreSQL ------------------------------------------------------------


def require_pghost():
    if not PGHOST or not os.path.isdir(PGHOST):
        raise AssertionError(
            "ALERTMAP_TEST_PGHOST is not set or not a directory (%r): the integration tests "
            "need a running PostgreSQL; run them through ./scripts/test, or start one with "
            "'scripts/pg start DIR' and export ALERTMAP_TEST_PGHOST=DIR/socket" % PGHOST)


def db_url(name, host=None):
    return "postgresql:///%s?host=%s&user=alertmap" % (name, host or PGHOST)


def psql(url, sql, timeout=30):
    """Runs one SQL statement with the psql CLI; returns stdout stripped."""
    r = subprocess.run(["psql", url, "-XAtqv", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError("psql failed (%d) on %r: %s" % (r.returncode, sql, r.stderr))
    return r.stdout.strip()


def psql_json(url, sql):
    out = psql(url, sql)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


class TempDatabase:
    """A fresh database in the shared test cluster, dropped by drop()."""

    def __init__(self, label):
        require_pghost()
        self.name = "am_%s_%s" % (re.sub(r"[^a-z0-9]", "", label.lower())[:20],
                                  uuidlib.uuid4().hex[:10])
        self.admin = db_url("postgres")
        psql(self.admin, 'create database "%s"' % self.name)
        self.url = db_url(self.name)

    def drop(self):
        try:
            psql(self.admin, 'drop database if exists "%s" with (force)' % self.name)
        except AssertionError as e:
            print("harness: could not drop %s: %s" % (self.name, e), file=sys.stderr)


class PrivateCluster:
    """A cluster of our own (scripts/pg), for tests that stop the database."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="alertmap-it-pg-")
        self.url = None

    def start(self):
        r = subprocess.run([os.path.join(ROOT, "scripts", "pg"), "start", self.dir, "alertmap"],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError("scripts/pg start failed: %s" % r.stderr)
        self.url = r.stdout.strip().splitlines()[-1]
        return self.url

    def stop(self):
        subprocess.run([os.path.join(ROOT, "scripts", "pg"), "stop", self.dir],
                       capture_output=True, text=True, timeout=120)

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def count_rows(url):
    """Rows of every application table (all public tables but the migration
    bookkeeping and the running workers' announcements), as a dict, to show that a rejected request wrote nothing;
    and "enrichment_followups", the alerts' jobs and settled alerts."""
    sql = ("select table_name, (xpath('/row/c/text()', query_to_xml(format("
           "'select count(*) as c from %I', table_name), false, true, '')))[1]::text "
           "from information_schema.tables where table_schema = 'public' and "
           "table_type = 'BASE TABLE' and table_name not in ('schema_migrations', "
           "'enrichment_nodes') order by 1")
    out = {}
    for line in psql(url, sql).splitlines():
        name, n = line.split("|")
        out[name] = int(n)
    if not out:
        raise AssertionError("no application tables: did alertmapd migrate the database?")
    out["enrichment_followups"] = followups(url)
    return out


# An alert's enrichment is recorded either as its job or, when no live
# worker had work for it, by being written Enriched at ingest with no job
# ("settled", docs/enrichment.md). A follow-up is either.
FOLLOWUPS_SQL = ("(select count(*) from enrichment_jobs j where j.alert_id = a.id) + "
                 "(select count(*) from alerts s where s.id = a.id and s.enrichment_status = "
                 "'Enriched' and not exists (select 1 from enrichment_jobs k where k.alert_id = s.id))")


def followup_count(url, alert_uuid):
    """1 for a stored alert whose enrichment is recorded once."""
    return int(psql(url, "select %s from alerts a where a.uuid = '%s'" % (FOLLOWUPS_SQL, alert_uuid)))


def followups(url):
    """Follow-ups of every stored alert (see followup_count)."""
    return int(psql(url, "select coalesce(sum(%s), 0) from alerts a" % FOLLOWUPS_SQL))


def alert_uuids_in_db(url):
    return set(psql(url, "select uuid from alerts").split())


# ---- API keys ----------------------------------------------------------------

# The key request() sends by default to a port (set by Server.start).
KEYS = {}
DEFAULT_KEY = object()
ALL_SCOPES = "ingest,read,write,admin"


def alertmap_cli():
    """The alertmap CLI of the build tree alertmapd belongs to."""
    return os.path.join(os.path.dirname(os.path.dirname(ALERTMAPD)), "cli", "alertmap")


def create_key(url, name="harness", scopes=ALL_SCOPES, sources=None, expires=None, env=None):
    """A new API key on the database at url (the CLI applies the migrations
    first); returns the CLI's JSON: {"id", "token", "prefix", ...}."""
    argv = [alertmap_cli(), "keys", "create", "--name", name, "--scope", scopes, "--json",
            "--database-url", url, "--sql-dir", os.path.join(ROOT, "schemas", "sql")]
    if sources:
        argv += ["--source", sources]
    if expires:
        argv += ["--expires", expires]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, **(env or {})))
    if r.returncode != 0:
        raise AssertionError("alertmap keys create failed (%d): %s" % (r.returncode, r.stderr))
    return json.loads(r.stdout)


def revoke_key(url, which):
    r = subprocess.run([alertmap_cli(), "keys", "revoke", which, "--database-url", url],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("alertmap keys revoke failed (%d): %s" % (r.returncode, r.stderr))


# ---- HTTP ------------------------------------------------------------------


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.raw = body
        try:
            self.json = json.loads(body.decode("utf-8")) if body else None
        except (ValueError, UnicodeDecodeError):
            self.json = None

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "<%d %s>" % (self.status, self.raw[:600].decode("utf-8", "replace"))


def request(port, method, path, body=None, headers=None, timeout=60, conn=None,
            chunked=False, key=DEFAULT_KEY):
    """One HTTP request to 127.0.0.1:port. body may be bytes, str or a JSON value.
    key: the API key sent as Authorization: Bearer (default: the key of the
    server on port, see KEYS; None: none); never when headers carry
    Authorization or X-API-Key already.
    Returns a Response; raises OSError/HTTPException on transport errors."""
    if body is not None and not isinstance(body, (bytes, str)) and not chunked:
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    if key is DEFAULT_KEY:
        key = KEYS.get(port)
    if key and not any(k.lower() in ("authorization", "x-api-key") for k in hdrs):
        hdrs["Authorization"] = "Bearer " + key
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout * SLOW)
    try:
        if chunked:
            c.request(method, path, body=body, headers=hdrs, encode_chunked=True)
        else:
            c.request(method, path, body=body, headers=hdrs)
        r = c.getresponse()
        data = r.read()
        return Response(r.status, r.getheaders(), data)
    finally:
        if own:
            c.close()


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- alertmapd -------------------------------------------------------------


class Server:
    """A real alertmapd on a free 127.0.0.1 port, with a private copy of the
    shipped mappings (so tests can edit them) and its stderr captured."""

    def __init__(self, database_url, env=None, mappings=None, args=None, key=None):
        self.tmp = tempfile.mkdtemp(prefix="alertmap-it-")
        self.mappings = os.path.join(self.tmp, "mappings")
        shutil.copytree(mappings or os.path.join(ROOT, "mappings"), self.mappings)
        self.database_url = database_url
        self.port = free_port()
        self.stderr_path = os.path.join(self.tmp, "alertmapd.stderr")
        self.env = dict(os.environ)
        # The tests decide which webhook secrets exist.
        for k in list(self.env):
            if k.endswith("_WEBHOOK_SECRET"):
                del self.env[k]
        self.env["ALERTMAP_SQL_DIR"] = os.path.join(ROOT, "schemas", "sql")
        # the shipped sources take the harness key without their (unset)
        # signature secrets; tests of the policy set the variable themselves
        self.env["ALERTMAP_UNSIGNED_SOURCES"] = ",".join(sorted(shipped_sources()))
        self.env.update(env or {})
        self.key = key  # the token request() sends; made at start() when None
        self.args = list(args or [])
        self.proc = None

    def start(self, wait=True):
        if self.key is None:
            self.key = create_key(self.database_url, name="harness-%d" % self.port,
                                  env={k: v for k, v in self.env.items()
                                       if k == "ALERTMAP_KEY_PEPPER"})["token"]
        KEYS[self.port] = self.key
        self._err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(
            [ALERTMAPD, "--listen", "127.0.0.1:%d" % self.port, "--database-url",
             self.database_url, "--mappings", self.mappings] + self.args,
            stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err, env=self.env,
            cwd=self.tmp)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout * SLOW
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("alertmapd exited with %d before answering /healthz; "
                                     "stderr:\n%s" % (self.proc.returncode, self.stderr()))
            try:
                r = request(self.port, "GET", "/healthz", timeout=2)
                if r.status == 200:
                    return
                last = r
            except (OSError, http.client.HTTPException) as e:
                last = e
            time.sleep(0.1)
        raise AssertionError("alertmapd did not answer GET /healthz with 200 within %ds "
                             "(last: %r); stderr:\n%s" % (timeout * SLOW, last, self.stderr()))

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_lines(self):
        """stderr as JSON objects (lines that are not JSON are returned as
        {"_text": line} so nothing is hidden)."""
        out = []
        for line in self.stderr().splitlines():
            try:
                v = json.loads(line)
                out.append(v if isinstance(v, dict) else {"_text": line})
            except ValueError:
                out.append({"_text": line})
        return out

    def signal(self, sig):
        self.proc.send_signal(sig)

    def post(self, path, body, **kw):
        return request(self.port, "POST", path, body, **kw)

    def get(self, path, **kw):
        return request(self.port, "GET", path, **kw)

    def patch(self, path, body, **kw):
        return request(self.port, "PATCH", path, body, **kw)

    def stop(self, test=None, timeout=30):
        """SIGTERM, then require exit code 0 and a clean sanitizer report."""
        if self.proc is None:
            return
        problems = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                problems.append("alertmapd did not exit within %ds of SIGTERM" %
                                (timeout * SLOW))
        rc = self.proc.returncode
        self._err.close()
        err = self.stderr()
        if rc != 0 and not problems:
            problems.append("alertmapd exited with %d after SIGTERM" % rc)
        for m in SANITIZER_MARKERS:
            if m in err:
                problems.append("sanitizer report in stderr (%s)" % m)
                break
        self.proc = None
        if problems:
            raise AssertionError("; ".join(problems) + "\nstderr (tail):\n" + err[-6000:])

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if getattr(self, "_err", None) is not None and not self._err.closed:
            self._err.close()
        if os.environ.get("ALERTMAP_TEST_KEEP"):
            print("harness: kept %s" % self.tmp, file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# ---- mappings and samples --------------------------------------------------


def shipped_mapping_files(mdir=None):
    mdir = mdir or os.path.join(ROOT, "mappings")
    return sorted(os.path.join(mdir, f) for f in os.listdir(mdir)
                  if f.endswith((".yaml", ".yml")) and os.path.isfile(os.path.join(mdir, f)))


def mapping_source(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"""source:\s*["']?([a-z0-9][a-z0-9_-]*)""", line)
            if m:
                return m.group(1)
    raise AssertionError("%s has no top-level 'source:'" % path)


def shipped_sources():
    """{source name: mapping file path} of the shipped mappings."""
    return {mapping_source(p): p for p in shipped_mapping_files()}


def top_level_block(path, key):
    """Text of a top-level key's value (flow or block style), or None."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"%s\s*:" % re.escape(key), line):
            block = [line.split(":", 1)[1]]
            for nxt in lines[i + 1:]:
                if nxt and not nxt[0].isspace() and not nxt.startswith("#"):
                    break
                block.append(nxt)
            return "\n".join(block)
    return None


def signature_spec(path):
    """The signature block of a mapping as a dict (header, prefix, scheme,
    encoding, secret_env list, timestamp_header), or None."""
    text = top_level_block(path, "signature")
    if text is None:
        return None

    def scalar(key):
        m = re.search(r"""\b%s\s*:\s*(?:"([^"]*)"|'([^']*)'|([^,}\s#]+))""" % key, text)
        if not m:
            return None
        return next(g for g in m.groups() if g is not None)

    envs = []
    m = re.search(r"\bsecret_env\s*:\s*\[([^\]]*)\]", text)
    if m:
        envs = [e.strip().strip("'\"") for e in m.group(1).split(",") if e.strip()]
    else:
        m = re.search(r"\bsecret_env\s*:\s*\n((?:\s+-\s*\S+\s*\n?)+)", text)
        if m:
            envs = re.findall(r"-\s*['\"]?([A-Za-z0-9_]+)", m.group(1))
        elif scalar("secret_env"):
            envs = [scalar("secret_env")]
    return {"scheme": scalar("scheme") or "hmac-sha256", "header": scalar("header"),
            "prefix": scalar("prefix") or "", "encoding": scalar("encoding") or "hex",
            "secret_env": envs, "timestamp_header": scalar("timestamp_header"),
            "query_param": scalar("query_param") or "token",
            "signature_param": scalar("signature_param"),
            "timestamp_param": scalar("timestamp_param"), "signed_text": scalar("signed_text")}


def sign(spec, secret, body, prefix=True, ts=None):
    """Headers that sign body (bytes) according to spec."""
    import base64
    algo = hashlib.sha1 if spec["scheme"] == "hmac-sha1" else hashlib.sha256
    msg = body
    headers = {}
    if spec.get("timestamp_header"):
        ts = str(int(time.time())) if ts is None else ts
        msg = ts.encode() + b"." + body
        headers[spec["timestamp_header"]] = ts
    if spec.get("timestamp_param"):
        ts = str(int(time.time())) if ts is None else ts
        msg = ts.encode() + b"." + body
    if spec.get("signed_text"):
        msg = spec["signed_text"].replace("{timestamp}", ts or "").encode()
        msg = msg.replace(b"{body}", body)
    mac = hmac.new(secret.encode(), msg, algo).digest()
    text = base64.b64encode(mac).decode() if spec["encoding"] == "base64" else mac.hex()
    text = (spec["prefix"] if prefix else "") + text
    if spec.get("signature_param"):
        text = "%s=%s" % (spec["signature_param"], text)
        if spec.get("timestamp_param"):
            text = "%s=%s,%s" % (spec["timestamp_param"], ts, text)
    headers[spec["header"]] = text
    return headers


def samples(source):
    """[(name, payload bytes, expected JSON)] of mappings/samples/<source>."""
    d = os.path.join(ROOT, "mappings", "samples", source)
    out = []
    if not os.path.isdir(d):
        return out
    for f in sorted(os.listdir(d)):
        if not f.endswith(".json") or f.endswith(".expected.json"):
            continue
        exp = os.path.join(d, f[:-5] + ".expected.json")
        if not os.path.exists(exp):
            continue
        with open(os.path.join(d, f), "rb") as fh:
            payload = fh.read()
        with open(exp, encoding="utf-8") as fh:
            expected = json.load(fh)
        out.append((f, payload, expected))
    return out


def accepted_sample(source):
    """The first sample that is stored as a new alert as it is: not refused,
    not resolved or ignored by a disposition, sent without request headers."""
    d = os.path.join(ROOT, "mappings", "samples", source)
    for name, payload, expected in samples(source):
        if "alerts" not in expected or any("disposition" in a for a in expected["alerts"]):
            continue
        if os.path.exists(os.path.join(d, name[:-5] + ".headers.json")):
            continue
        return name, payload, expected
    raise AssertionError("source %s ships no accepted sample payload" % source)


def match_expected(expected, actual, where="$"):
    """Returns a list of differences; "$dynamic" in expected matches anything."""
    if expected == "$dynamic":
        return []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return ["%s: expected an object, got %r" % (where, actual)]
        diffs = []
        for k, v in expected.items():
            if k not in actual:
                diffs.append("%s.%s: missing (expected %r)" % (where, k, v))
            else:
                diffs.extend(match_expected(v, actual[k], "%s.%s" % (where, k)))
        return diffs
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return ["%s: expected %r, got %r" % (where, expected, actual)]
        diffs = []
        for i, (e, a) in enumerate(zip(expected, actual)):
            diffs.extend(match_expected(e, a, "%s[%d]" % (where, i)))
        return diffs
    if expected != actual:
        return ["%s: expected %r, got %r" % (where, expected, actual)]
    return []


def ingest_uuids(resp):
    """alert uuids of a 202 answer: data.alerts[*].alert_uuid for a request
    that carried several alerts, else data.alert_uuid."""
    data = (resp.json or {}).get("data") or {}
    if isinstance(data, dict) and isinstance(data.get("alerts"), list):
        return [a.get("alert_uuid") for a in data["alerts"]]
    if isinstance(data, dict) and data.get("alert_uuid"):
        return [data["alert_uuid"]]
    if isinstance(data, list):
        return [a.get("alert_uuid") for a in data]
    raise AssertionError("no alert_uuid in the 202 answer: %r" % resp)


def generic_payload(title, **extra):
    """A payload for the generic source, built from its first accepted sample
    with a new title (so each one is a distinct alert)."""
    _, payload, _ = accepted_sample("generic")
    obj = json.loads(payload)
    set_title(obj, title)
    obj.update(extra)
    return obj


def set_title(obj, title):
    if "title" in obj:
        obj["title"] = title
    elif "name" in obj:
        obj["name"] = title
    else:
        obj["title"] = title


def run_threads(n, target, timeout):
    """Runs target(i) in n threads, joins with a bound; fails if any is stuck."""
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout * SLOW
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    stuck = sum(1 for t in threads if t.is_alive())
    if stuck:
        raise AssertionError("%d of %d client threads still running after %ds" %
                             (stuck, n, timeout * SLOW))


class PrivateClusterTestCase(unittest.TestCase):
    """A test that stops and starts the database: each test gets a
    PrivateCluster of its own (self.cluster, started) and may put the Server
    it starts in self.srv; both are stopped and removed afterwards."""

    def setUp(self):
        self.cluster = PrivateCluster()
        self.srv = None
        self.cluster.start()

    def tearDown(self):
        try:
            if self.srv:
                self.srv.stop()
        finally:
            if self.srv:
                self.srv.cleanup()
            self.cluster.destroy()


class ServerTestCase(unittest.TestCase):
    """Base class: one fresh database and one alertmapd per test class."""

    server_env = {}
    server_args = []

    @classmethod
    def setUpClass(cls):
        cls.db = TempDatabase(cls.__name__)
        cls.servers = []
        try:
            cls.srv = cls.start_server(env=cls.server_env, args=cls.server_args)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start_server(cls, env=None, args=None, url=None, wait=True):
        s = Server(url or cls.db.url, env=env, args=args)
        cls.servers.append(s)
        s.start(wait=wait)
        return s

    @classmethod
    def tearDownClass(cls):
        errors = []
        for s in getattr(cls, "servers", []):
            try:
                s.stop()
            except AssertionError as e:
                errors.append(str(e))
            finally:
                s.cleanup()
        if getattr(cls, "db", None):
            cls.db.drop()
        if errors:
            raise AssertionError("\n".join(errors))

    def assertError(self, resp, status, code=None):
        self.assertEqual(resp.status, status, resp)
        self.assertIsInstance(resp.json, dict, "error body is not JSON: %r" % resp)
        err = resp.json.get("error")
        self.assertIsInstance(err, dict, "no error object: %r" % resp)
        self.assertIsInstance(err.get("code"), str, resp)
        self.assertIsInstance(err.get("message"), str, resp)
        self.assertTrue(err["message"], resp)
        if code:
            self.assertEqual(err["code"], code, resp)
        return err
