"""meson install: installs into a DESTDIR, then runs the installed alertmapd
against a throw-away PostgreSQL with only installed files, checks the
installed defaults (shipped and operator mappings), the man pages against
--help, and the systemd unit with systemd-analyze.

    python3 test_install.py MESON BUILD_DIR

Needs ALERTMAP_TEST_PGHOST (scripts/test sets it). A missing database,
meson or systemd-analyze is a failure, never a skip.
"""

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest


def shipped_sources():
    """The sources of the mapping files the source tree ships (one per file)."""
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    return sorted(os.path.splitext(os.path.basename(p))[0]
                  for p in glob.glob(os.path.join(root, "mappings", "*.yaml")))


sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402

MESON = None
BUILD = None
ROOT = harness.ROOT


def introspect_dirs():
    r = subprocess.run([MESON, "introspect", BUILD, "--buildoptions"], capture_output=True,
                       text=True, timeout=120, check=True)
    opts = {o["name"]: o["value"] for o in json.loads(r.stdout)}
    prefix = opts["prefix"]

    def under(name):
        return os.path.join(prefix, opts[name])  # an absolute value wins, as in meson

    return {"prefix": prefix, "bindir": under("bindir"), "sbindir": under("sbindir"),
            "datadir": os.path.join(under("datadir"), "alertmap"),
            "sysconfdir": os.path.join(under("sysconfdir"), "alertmap"),
            "mandir": under("mandir")}


def clean_env(**extra):
    """The environment of a process that must not see the source tree."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ALERTMAP_") and k != "DATABASE_URL"
           and not k.endswith("_WEBHOOK_SECRET") and ROOT not in v}  # PWD, MESON_*
    for k, v in extra.items():
        assert ROOT not in v, "variable %s points into the source tree: %s" % (k, v)
    env.update(extra)
    return env


class Daemon:
    """An alertmapd started from argv (already complete but for --listen)."""

    def __init__(self, argv, cwd, env):
        self.port = harness.free_port()
        self.errpath = os.path.join(cwd, "alertmapd.stderr")
        self.err = open(self.errpath, "wb")
        argv = list(argv) + ["--listen", "127.0.0.1:%d" % self.port]
        for a in argv:
            assert ROOT not in a, "argument points into the source tree: %s" % a
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.err, stderr=self.err)

    def stderr(self):
        with open(self.errpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout * harness.SLOW
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("alertmapd exited with %d; stderr:\n%s" %
                                     (self.proc.returncode, self.stderr()))
            try:
                if harness.request(self.port, "GET", "/healthz", timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("no /healthz within %ds; stderr:\n%s" %
                             (timeout * harness.SLOW, self.stderr()))

    def log(self, event):
        for line in self.stderr().splitlines():
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if isinstance(v, dict) and v.get("event") == event:
                return v
        raise AssertionError("no %r log line; stderr:\n%s" % (event, self.stderr()))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30 * harness.SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise AssertionError("alertmapd did not exit on SIGTERM")
        self.err.close()
        if self.proc.returncode != 0:
            raise AssertionError("alertmapd exited with %d; stderr:\n%s" %
                                 (self.proc.returncode, self.stderr()))
        for m in harness.SANITIZER_MARKERS:
            if m in self.stderr():
                raise AssertionError("sanitizer report:\n" + self.stderr()[-6000:])


class InstallTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="alertmap-install-")
        cls.destdir = os.path.join(cls.tmp, "dest")
        r = subprocess.run([MESON, "install", "-C", BUILD, "--no-rebuild", "--quiet",
                            "--destdir", cls.destdir], capture_output=True, text=True,
                           timeout=300)
        if r.returncode != 0:
            raise AssertionError("meson install failed (%d):\n%s%s" %
                                 (r.returncode, r.stdout, r.stderr))
        cls.dirs = introspect_dirs()
        cls.d = {k: cls.destdir + v for k, v in cls.dirs.items()}  # the same, in DESTDIR
        cls.alertmapd = os.path.join(cls.d["sbindir"], "alertmapd")
        cls.alertmap = os.path.join(cls.d["bindir"], "alertmap")
        cls.work = os.path.join(cls.tmp, "cwd")  # an unrelated working directory
        os.mkdir(cls.work)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_tool(self, argv, **kw):
        return subprocess.run(argv, capture_output=True, text=True, timeout=120,
                              cwd=self.work, env=clean_env(), **kw)

    # ---- what is installed ---------------------------------------------------

    def test_installed_files(self):
        for exe in (self.alertmapd, self.alertmap):
            self.assertTrue(os.access(exe, os.X_OK), exe)
        share = self.d["datadir"]

        def tree(top):
            out = set()
            for dirpath, _, files in os.walk(top):
                for f in files:
                    out.add(os.path.relpath(os.path.join(dirpath, f), top))
            return out

        # the mappings with their rule file and samples, and the schemas, as in the source
        for name in ("mappings", "schemas"):
            want = {p for p in tree(os.path.join(ROOT, name))
                    if not p.endswith(("~", ".swp", "meson.build"))}
            got = tree(os.path.join(share, name))
            self.assertEqual(got, want, "%s/%s" % (self.dirs["datadir"], name))
        for rel in ("mappings/rules/indicators.yaml", "schemas/sql/001_init.sql",
                    "schemas/alert.schema.json", "schemas/mapping.schema.json",
                    "mappings/samples/generic/rich.json"):
            with open(os.path.join(ROOT, rel), "rb") as a, \
                    open(os.path.join(share, rel), "rb") as b:
                self.assertEqual(a.read(), b.read(), rel)
        self.assertTrue(os.path.isfile(self.unit_path()))
        for page in ("man1/alertmap.1", "man8/alertmapd.8"):
            self.assertTrue(os.path.isfile(os.path.join(self.d["mandir"], page)), page)
        # the operator's directory is the operator's: installing must not create it
        self.assertFalse(os.path.exists(os.path.join(self.d["sysconfdir"], "mappings")))

    def test_installed_defaults(self):
        r = self.run_tool([self.alertmapd, "--help"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("mappings  %s/mappings" % self.dirs["datadir"], r.stdout)
        self.assertIn("sql-dir   %s/schemas/sql" % self.dirs["datadir"], r.stdout)
        self.assertIn("%s/mappings when that directory" % self.dirs["sysconfdir"], r.stdout)
        self.assertNotIn(ROOT, r.stdout)
        r = self.run_tool([self.alertmap, "--help"])
        self.assertIn("this copy: %s/mappings" % self.dirs["datadir"], r.stdout)
        self.assertNotIn(ROOT, r.stdout)
        # the same programs in the build tree take the source tree, from any cwd
        r = self.run_tool([os.path.join(BUILD, "h2o-glue", "alertmapd"), "--help"])
        self.assertIn("mappings  %s/mappings" % ROOT, r.stdout)
        self.assertIn("sql-dir   %s/schemas/sql" % ROOT, r.stdout)
        r = self.run_tool([os.path.join(BUILD, "cli", "alertmap"), "check"])
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_installed_cli_runs_installed_samples(self):
        r = self.run_tool([self.alertmap, "test", os.path.join(self.d["datadir"], "mappings")])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"%d mappings, \d+ samples: all passed" % len(shipped_sources()))

    def test_man_pages_describe_every_option(self):
        with open(os.path.join(self.d["mandir"], "man8", "alertmapd.8")) as f:
            page8 = f.read().replace("\\-", "-")
        r = self.run_tool([self.alertmapd, "--help"])
        words = set(re.findall(r"(--[a-z][a-z-]+|\b[A-Z][A-Z_]+_[A-Z]+\b|SIG[A-Z]+)", r.stdout))
        self.assertGreater(len(words), 15, words)
        for w in sorted(words):
            self.assertIn(w, page8, "alertmapd(8) does not mention %s" % w)
        for p in (self.dirs["datadir"] + "/mappings", self.dirs["sysconfdir"] + "/mappings",
                  self.dirs["datadir"] + "/schemas/sql", self.dirs["sysconfdir"] +
                  "/alertmapd.env"):
            self.assertIn(p, page8)
        with open(os.path.join(self.d["mandir"], "man1", "alertmap.1")) as f:
            page1 = f.read().replace("\\-", "-")
        for cmd in ("check", "test", "normalize", "extract"):
            r = self.run_tool([self.alertmap, "help", cmd])
            self.assertEqual(r.returncode, 0, r.stderr)
            for w in set(re.findall(r"--[a-z][a-z-]+", r.stdout)):
                self.assertIn(w, page1, "alertmap(1) does not mention %s (%s)" % (w, cmd))
            self.assertIn(".B %s" % cmd, page1)
        self.assertIn("ALERTMAP_MAPPINGS", page1)

    # ---- the installed server ------------------------------------------------

    def make_key(self, db):
        """An ingest+read+admin key made by the installed alertmap (its migrations
        from the DESTDIR, as the prefix does not hold them)."""
        r = self.run_tool([self.alertmap, "keys", "create", "--name", "install-test",
                           "--scope", "ingest,read,admin", "--database-url", db.url, "--sql-dir",
                           os.path.join(self.d["datadir"], "schemas", "sql")])
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.strip()

    def ingest_and_read_back(self, d, key):
        """Posts the installed generic/rich.json sample and reads it back."""
        sdir = os.path.join(self.d["datadir"], "mappings", "samples", "generic")
        with open(os.path.join(sdir, "rich.json"), "rb") as f:
            payload = f.read()
        with open(os.path.join(sdir, "rich.expected.json")) as f:
            expected = json.load(f)["alerts"][0]
        r = harness.request(d.port, "POST", "/v1/ingest/generic", payload, key=None)
        self.assertEqual(r.status, 401, "no key: %r" % r)
        r = harness.request(d.port, "POST", "/v1/ingest/generic", payload, key=key)
        self.assertEqual(r.status, 202, r)
        uuid = r.json["data"]["alert_uuid"]
        r = harness.request(d.port, "GET", "/v1/alerts/" + uuid, key=key)
        self.assertEqual(r.status, 200, r)
        got = r.json["data"]
        for k in ("title", "severity", "source_name", "fingerprint", "occurred_at", "tags"):
            self.assertEqual(got.get(k), expected[k], k)
        self.assertEqual(sorted((i["type"], i["value"]) for i in got["indicators"]),
                         sorted((i["type"], i["value"]) for i in expected["indicators"]))
        self.assertEqual(got.get("raw_payload"), json.loads(payload))

    def test_installed_server_with_explicit_paths(self):
        db = harness.TempDatabase("install")
        d = None
        try:
            mappings = os.path.join(self.d["datadir"], "mappings")
            # the service manager's socket (Type=notify): READY=1 once it serves
            notify_path = os.path.join(self.tmp, "notify")
            notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            notify.bind(notify_path)
            notify.settimeout(30 * harness.SLOW)
            env = clean_env(ALERTMAP_SQL_DIR=os.path.join(self.d["datadir"], "schemas", "sql"),
                            NOTIFY_SOCKET=notify_path)
            key = self.make_key(db)
            # generic takes the key without its signature secret
            d = Daemon([self.alertmapd, "--database-url", db.url, "--mappings", mappings,
                        "--unsigned-sources", "generic"], self.work, env)
            try:
                msg = notify.recv(4096)
            except socket.timeout:
                raise AssertionError("no READY=1 on NOTIFY_SOCKET; stderr:\n" + d.stderr())
            self.assertEqual(msg, b"READY=1")
            # ready means serving: no wait between the two
            self.assertEqual(harness.request(d.port, "GET", "/healthz").status, 200)
            start = d.log("starting")
            self.assertEqual(start.get("mappings"), mappings)
            self.assertEqual(start.get("mappings_from"), "--mappings")
            self.assertEqual(start.get("sql_dir"), env["ALERTMAP_SQL_DIR"])
            self.ingest_and_read_back(d, key)
            d.stop()
            d = None
            self.assertEqual(notify.recv(4096), b"STOPPING=1")
            notify.close()
        finally:
            if d:
                d.stop()
            db.drop()

    # The installed defaults for real: in a private mount namespace the DESTDIR's
    # prefix is mounted over the prefix, so the installed alertmapd runs at its
    # installed path and finds everything by its defaults alone.
    def in_prefix(self, db):
        if self.dirs["prefix"] in ("/", "/usr"):
            self.skipTest("mounting the DESTDIR over the prefix %s would hide the system; "
                          "this check needs a build with another prefix (the default "
                          "/usr/local)" % self.dirs["prefix"])
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            self.skipTest("needs root and unshare(1) for a private mount namespace; the "
                          "same installed files were checked with explicit paths")
        exe = os.path.join(self.dirs["sbindir"], "alertmapd")
        script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                self.d["prefix"], self.dirs["prefix"], exe, "--database-url", db.url,
                "--unsigned-sources", "generic"]

    def test_installed_defaults_shipped_then_operator(self):
        db = harness.TempDatabase("installdef")
        d = None
        operator = os.path.join(self.d["sysconfdir"], "mappings")
        try:
            argv = self.in_prefix(db)
            key = self.make_key(db)
            d = Daemon(argv, self.work, clean_env())
            d.wait_ready()
            start = d.log("starting")
            self.assertEqual(start.get("mappings"), self.dirs["datadir"] + "/mappings")
            self.assertIn("shipped", start.get("mappings_from"))
            self.assertEqual(start.get("sql_dir"), self.dirs["datadir"] + "/schemas/sql")
            self.assertEqual(d.log("migrated").get("sql_dir"), start["sql_dir"])
            self.ingest_and_read_back(d, key)
            names = sorted(s["name"] for s in
                           harness.request(d.port, "GET", "/v1/sources", key=key).json["data"])
            self.assertEqual(names, shipped_sources())
            d.stop()
            d = None

            # an operator directory with only the generic mapping replaces the shipped one
            shipped = os.path.join(self.d["datadir"], "mappings")
            os.makedirs(os.path.join(operator, "samples"))
            shutil.copy(os.path.join(shipped, "generic.yaml"), operator)
            shutil.copytree(os.path.join(shipped, "rules"), os.path.join(operator, "rules"))
            shutil.copytree(os.path.join(shipped, "samples", "generic"),
                            os.path.join(operator, "samples", "generic"))
            d = Daemon(argv, self.work, clean_env())
            d.wait_ready()
            start = d.log("starting")
            self.assertEqual(start.get("mappings"), self.dirs["sysconfdir"] + "/mappings")
            self.assertIn("operator", start.get("mappings_from"))
            names = [s["name"] for s in
                     harness.request(d.port, "GET", "/v1/sources", key=key).json["data"]]
            self.assertEqual(names, ["generic"])
            self.ingest_and_read_back(d, key)
        finally:
            if d:
                d.stop()
            db.drop()
            shutil.rmtree(os.path.dirname(operator), ignore_errors=True)

    # ---- the systemd unit ----------------------------------------------------

    def unit_path(self):
        return os.path.join(self.d["prefix"], "lib", "systemd", "system", "alertmapd.service")

    def test_unit_file(self):
        with open(self.unit_path()) as f:
            text = f.read()
        keys = {}
        for line in text.splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                keys.setdefault(k, []).append(v)
        exe = os.path.join(self.dirs["sbindir"], "alertmapd")
        self.assertEqual(keys["ExecStart"], [exe])
        self.assertTrue(os.access(self.destdir + exe, os.X_OK))
        self.assertEqual(keys["ExecReload"], ["/bin/kill -HUP $MAINPID"])
        self.assertEqual(keys["EnvironmentFile"], ["-%s/alertmapd.env" % self.dirs["sysconfdir"]])
        for k, v in (("DynamicUser", "yes"), ("ProtectSystem", "strict"),
                     ("ProtectHome", "yes"), ("PrivateTmp", "yes"), ("NoNewPrivileges", "yes"),
                     ("CapabilityBoundingSet", ""), ("Type", "notify"), ("NotifyAccess", "main"),
                     ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6")):
            self.assertEqual(keys.get(k), [v], k)
        self.assertIn("@system-service", keys["SystemCallFilter"])
        self.assertNotIn("MemoryDenyWriteExecute", keys)  # PCRE2's JIT needs it off

        sa = shutil.which("systemd-analyze")
        self.assertIsNotNone(sa, "systemd-analyze is missing (Debian package systemd; "
                             "scripts/deps installs it)")
        # verify checks that ExecStart exists on this machine and runs man(1) for
        # Documentation=man:alertmapd(8); both are installed in the DESTDIR only, so
        # the copy verified here differs from the installed unit in ExecStart alone,
        # and MANPATH points into the DESTDIR.
        vdir = os.path.join(self.tmp, "verify")
        os.makedirs(vdir, exist_ok=True)
        copy = os.path.join(vdir, "alertmapd.service")
        with open(copy, "w") as f:
            f.write(text.replace("ExecStart=" + exe, "ExecStart=" + self.destdir + exe))
        env = dict(os.environ, MANPATH=self.d["mandir"], SYSTEMD_LOG_LEVEL="notice")
        r = subprocess.run([sa, "verify", copy], capture_output=True, text=True, timeout=120,
                           env=env)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, "systemd-analyze verify:\n" + out)
        self.assertNotIn("alertmapd.service", out, "systemd-analyze verify warns:\n" + out)
        r = subprocess.run([sa, "security", "--offline=yes", "--threshold=20", copy],
                           capture_output=True, text=True, timeout=120, env=env)
        m = re.search(r"Overall exposure level for alertmapd.service: ([0-9.]+)", r.stdout)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        print("systemd-analyze security: exposure %s" % m.group(1), file=sys.stderr)
        self.assertLessEqual(float(m.group(1)), 2.0, r.stdout)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


def main():
    global MESON, BUILD
    if len(sys.argv) < 3:
        print("usage: test_install.py MESON BUILD_DIR [unittest args]", file=sys.stderr)
        sys.exit(2)
    MESON, BUILD = sys.argv[1], os.path.abspath(sys.argv[2])
    build = os.path.basename(BUILD.rstrip("/"))
    if "san" in build:
        harness.SLOW = 3.0
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)


if __name__ == "__main__":
    main()
