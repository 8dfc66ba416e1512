#!/usr/bin/env python3
"""bench/ingest - alertmapd's ingest speed against PostgreSQL's own limit.

Run through bench/ingest/run (which builds alertmapd and the load generator).
See bench/README.md for what each phase measures and how."""
import argparse
import base64
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.join(ROOT, "bench", "ingest")
IS_ROOT = os.geteuid() == 0
HZ = os.sysconf("SC_CLK_TCK")

# Phase durations (seconds) per mode: reference pgbench runs, wrk at full
# speed, each open-loop level, each read query, and the alerts stored
# before the growth measurements.
MODES = {
    "smoke": dict(pgbench=2, full=2, warm=1, level=1.5, read=0.5, fills=[0, 3000], pairs=1,
                  heavy_alerts=40, heavy_lead=1.5, heavy_tail=0.5, heavy_repeat=2),
    "quick": dict(pgbench=5, full=5, warm=1, level=4, read=2, fills=[0, 200000],
                  heavy_alerts=400),
    "default": dict(pgbench=10, full=10, warm=2, level=10, read=3, fills=[0, 1000000],
                    heavy_alerts=400),
    "long": dict(pgbench=10, full=10, warm=2, level=10, read=3,
                 fills=[0, 1000000, 5000000], heavy_alerts=400),
}


def log(msg):
    print("bench/ingest: " + msg, file=sys.stderr, flush=True)


def as_pg(cmd):
    return (["runuser", "-u", "postgres", "--"] + cmd) if IS_ROOT else cmd


# ---- payloads --------------------------------------------------------------------

def elastic_template():
    """A realistic Elastic Security alert of about 2.5 KB (flat kibana.alert.*
    keys as a Kibana webhook connector sends them, ECS fields nested), with
    __N__ in the rule name and __IP__ as the last octet of source.ip."""
    rule_uuid = "5b1a0f52-3c9d-4e8a-9f6b-2d7c1e0a4b39"
    doc = {
        "@timestamp": "2026-11-30T14:03:27.512Z",
        "kibana.alert.rule.name": "Suspicious PowerShell Execution __N__",
        "kibana.alert.rule.uuid": rule_uuid,
        "kibana.alert.rule.rule_id": "c2b9a1e7-42f0-4d6e-8b35-0f9e6a7d1c24",
        "kibana.alert.rule.severity": "high",
        "kibana.alert.rule.risk_score": 73,
        "kibana.alert.rule.description": (
            "Identifies PowerShell started with an encoded command or a download cradle, "
            "a technique commonly used by attackers to run payloads fetched from the network."),
        "kibana.alert.rule.tags": ["Domain: Endpoint", "OS: Windows", "Use Case: Threat Detection",
                                   "Tactic: Execution", "Data Source: Elastic Defend"],
        "kibana.alert.rule.type": "query",
        "kibana.alert.rule.threat": [{
            "framework": "MITRE ATT&CK",
            "tactic": {"id": "TA0002", "name": "Execution",
                       "reference": "https://attack.mitre.org/tactics/TA0002/"},
            "technique": [{"id": "T1059.001", "name": "PowerShell",
                           "reference": "https://attack.mitre.org/techniques/T1059/001/"}]}],
        "kibana.alert.severity": "high",
        "kibana.alert.risk_score": 73,
        "kibana.alert.status": "active",
        "kibana.alert.workflow_status": "open",
        "kibana.alert.start": "2026-11-30T14:03:29.104Z",
        "kibana.alert.uuid": "9e3f6c1d2b7a48e5a0c4f18d3b6e2a71",
        "kibana.alert.reason": (
            "process event with process powershell.exe, parent process winword.exe, "
            "by CORP\\jdoe on WS-0231 created high alert Suspicious PowerShell Execution."),
        "kibana.alert.original_time": "2026-11-30T14:03:27.512Z",
        "kibana.space_ids": ["default"],
        "event": {"kind": "signal", "category": ["process"], "type": ["start"],
                  "action": "start", "module": "endpoint", "dataset": "endpoint.events.process"},
        "host": {"name": "WS-0231", "hostname": "ws-0231", "ip": ["10.20.31.131"],
                 "os": {"name": "Windows", "version": "10.0", "family": "windows"}},
        "user": {"name": "jdoe", "domain": "CORP"},
        "process": {
            "name": "powershell.exe", "pid": 7412,
            "executable": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
            "command_line": ("powershell.exe -NoProfile -ExecutionPolicy Bypass -EncodedCommand "
                             "SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMA"),
            "hash": {"sha256": "de96a6e69944335375dc1ac238336066889d9ffc7d73628ef4fe1b1b160ab32c"},
            "parent": {"name": "winword.exe", "pid": 5120,
                       "executable": "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE"},
        },
        "source": {"ip": "185.220.101.__IP__", "port": 49712},
        "destination": {"ip": "10.20.31.131", "port": 443, "domain": "update-cdn.example.com"},
        "url": {"full": "https://update-cdn.example.com/dl/stage2.ps1"},
        "agent": {"type": "endpoint", "version": "8.11.1",
                  "id": "7d2c0b8e-9a41-4f3e-b6d5-1c8e2f0a9b47"},
        "ecs": {"version": "8.11.0"},
    }
    return json.dumps(doc, separators=(",", ":"))


def heavy_alertmanager(n_alerts, tag):
    """The heavy request: an Alertmanager notification of n_alerts alerts,
    each naming 900 distinct IPs in its description (400 x 900: 4.3 MB)."""
    alerts = []
    for i in range(n_alerts):
        ips = " ".join("10.%d.%d.%d" % (i // 2, (i % 2) * 4 + j // 256, j % 256)
                       for j in range(900))
        alerts.append({
            "status": "firing",
            "labels": {"alertname": "HostScan-%s-%d" % (tag, i), "instance": "10.250.%d.%d:9100"
                       % (i // 250, i % 250 + 1), "job": "node", "severity": "warning"},
            "annotations": {"summary": "Port scan from many hosts %s-%d" % (tag, i),
                            "description": "Hosts seen scanning: " + ips},
            "startsAt": "2026-11-30T14:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph",
            "fingerprint": "%016x" % i})
    body = {"version": "4", "groupKey": "{}:{alertname=\"HostScan\"}", "status": "firing",
            "receiver": "alertmap", "groupLabels": {"alertname": "HostScan"},
            "commonLabels": {"job": "node"}, "commonAnnotations": {},
            "externalURL": "http://alertmanager.example:9093", "alerts": alerts}
    return json.dumps(body, separators=(",", ":")).encode()


# ---- processes and /proc ------------------------------------------------------------

def proc_ticks(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])  # utime + stime
    except (OSError, IndexError):
        return None


def reaped_ticks(pid):
    """CPU ticks of pid's children that exited and were waited for (cutime +
    cstime): the backends of clients that disconnected, for the postmaster."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[13]) + int(rest[14])
    except (OSError, IndexError):
        return 0


def proc_status(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])  # kB
    except OSError:
        pass
    return None


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def machine_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:8]]
    return v[0] + v[1] + v[2] + v[5] + v[6], sum(v)  # busy, total


class Cpu:
    """CPU ticks of alertmapd and of every process of the cluster between
    start() and stop(), per process so that backends that come and go count."""

    def __init__(self, bench):
        self.b = bench

    def snap(self):
        pg = {p: proc_ticks(p) for p in [self.b.postmaster] + children(self.b.postmaster)}
        return proc_ticks(self.b.daemon.pid) or 0, pg, machine_ticks(), time.monotonic()

    def start(self):
        self.s0 = self.snap()

    def stop(self, alerts):
        a1, pg1, m1, t1 = self.snap()
        a0, pg0, m0, t0 = self.s0
        am = (a1 - a0) / HZ
        pg = sum((v or 0) - (pg0.get(p) or 0) for p, v in pg1.items()) / HZ
        wall = t1 - t0
        busy = (m1[0] - m0[0]) / max(1, m1[1] - m0[1])
        per = (lambda s: round(s * 1e6 / alerts, 1)) if alerts else (lambda s: None)
        return {"wall_s": round(wall, 2), "alertmapd_cpu_s": round(am, 2),
                "postgres_cpu_s": round(pg, 2),
                "alertmapd_cores": round(am / wall, 2), "postgres_cores": round(pg / wall, 2),
                "alertmapd_us_per_alert": per(am), "postgres_us_per_alert": per(pg),
                "postgres_share": round(pg / (am + pg), 3) if am + pg > 0 else None,
                "machine_busy": round(busy, 3)}


class Bench:
    def __init__(self, args, mode):
        self.args = args
        self.m = MODES[mode]
        self.mode = mode
        self.work = tempfile.mkdtemp(prefix="alertmap-bench-ingest.")
        os.chmod(self.work, 0o755)
        self.pgdir = os.path.join(self.work, "pg")
        self.daemon = None
        self.daemon_log = None
        self.daemon_db = None
        self.db_key = {}  # database -> "Authorization: Bearer KEY"
        self.filled = {}  # database -> alerts filled with SQL
        self.postmaster = None
        self.tag = "%x" % int(time.time())
        self.res = {"mode": mode, "argv": sys.argv[1:], "started_at": datetime.datetime.now(datetime.timezone.utc)
                    .strftime("%Y-%m-%dT%H:%M:%SZ")}

    # -- PostgreSQL --
    def pg_start(self):
        out = subprocess.run([os.path.join(ROOT, "scripts", "pg"), "start", self.pgdir, "postgres"],
                             check=True, capture_output=True, text=True)
        self.sock = os.path.join(self.pgdir, "socket")
        with open(os.path.join(self.pgdir, "data", "postmaster.pid")) as f:
            self.postmaster = int(f.readline())
        self.res["postgres"] = {
            "version": self.sql("postgres", "show server_version"),
            "fsync": self.sql("postgres", "show fsync"),
            "synchronous_commit": self.sql("postgres", "show synchronous_commit"),
            "shared_buffers": self.sql("postgres", "show shared_buffers")}
        del out

    def pg_stop(self):
        subprocess.run([os.path.join(ROOT, "scripts", "pg"), "stop", self.pgdir],
                       capture_output=True)

    def url(self, db):
        return "postgresql:///%s?host=%s&user=alertmap" % (db, self.sock)

    def psql(self, db, script, timeout=3600):
        r = subprocess.run(as_pg(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.sock,
                                  "-U", "alertmap", "-d", db, "-tA", "-f", "-"]),
                           input=script, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("psql on %s failed: %s" % (db, r.stderr.strip()))
        return r.stdout.strip()

    def sql(self, db, query):
        return self.psql(db, query + ";\n")

    def createdb(self, db):
        self.db_key.pop(db, None)
        self.filled.pop(db, None)
        self.sql("postgres", 'drop database if exists "%s"' % db)
        self.sql("postgres", 'create database "%s"' % db)

    # -- alertmapd --
    def daemon_start(self, db):
        port_sock = socket.socket()
        port_sock.bind(("127.0.0.1", 0))
        self.port = port_sock.getsockname()[1]
        port_sock.close()
        env = dict(os.environ)
        for k in list(env):
            if k.endswith("_WEBHOOK_SECRET") or k.startswith("ALERTMAP_"):
                del env[k]
        env["ALERTMAP_SQL_DIR"] = os.path.join(ROOT, "schemas", "sql")
        # The benchmark measures ingest, not the rate limits or signatures:
        # the sources it posts to take its API key, and no bucket applies.
        env["ALERTMAP_UNSIGNED_SOURCES"] = "elastic,alertmanager"
        env["ALERTMAP_RATE_PER_KEY"] = "off"
        env["ALERTMAP_RATE_PER_SOURCE"] = "off"
        env.update(json.loads(self.args.env or "{}"))
        self.daemon_db = db
        self.daemon_log = open(os.path.join(self.work, "alertmapd-%s.log" % db), "a")
        self.daemon = subprocess.Popen(
            # a long request deadline: the heavy phase measures how long the
            # writer stalls the others, which the default 5 s deadline would
            # turn into 503s (docs/security.md, Request deadline)
            [self.args.alertmapd, "--listen", "127.0.0.1:%d" % self.port,
             "--database-url", self.url(db), "--mappings", os.path.join(ROOT, "mappings"),
             "--request-deadline", "5m"],
            env=env, stdout=self.daemon_log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                raise RuntimeError("alertmapd exited: " + open(self.daemon_log.name).read()[-2000:])
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/healthz")
                healthy = c.getresponse().status == 200
            except OSError:
                healthy = False
            if healthy:
                self.api_key(db)
                return
            time.sleep(0.1)
        raise RuntimeError("alertmapd did not become healthy")

    def api_key(self, db):
        """Once per run: an API key with every scope, made with the alertmap
        CLI in the database alertmapd has just migrated, sent by every client
        (unless --header already sends a credential)."""
        if any(h.split(":", 1)[0].strip().lower() in ("authorization", "x-api-key")
               for h in self.args.header) or db in self.db_key:
            return
        cli = self.args.alertmap or os.path.join(
            os.path.dirname(os.path.dirname(os.path.abspath(self.args.alertmapd))), "cli", "alertmap")
        r = subprocess.run([cli, "keys", "create", "--name", "bench-" + db,
                            "--scope", "ingest,read,write,admin", "--database-url", self.url(db)],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("alertmap keys create failed: " + r.stderr.strip())
        self.db_key[db] = "Authorization: Bearer " + r.stdout.strip()

    def headers(self):
        """--header's, and the API key of the database alertmapd runs on."""
        key = self.db_key.get(self.daemon_db)
        return self.args.header + ([key] if key else [])

    def daemon_stop(self):
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(30)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        self.daemon = None

    def http(self, method, path, body=None, timeout=300):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Content-Type": "application/json"}
        for h in self.headers():
            k, v = h.split(":", 1)
            headers[k.strip()] = v.strip()
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    # -- load --
    def wrk(self, seconds, path, template, tag, connections=32):
        cmd = ["wrk", "-t2", "-c%d" % connections, "-d%ds" % seconds, "--latency",
               "-s", os.path.join(HERE, "post.lua")]
        for h in self.headers():
            cmd += ["-H", h]
        cmd += ["http://127.0.0.1:%d" % self.port, "--", template, path, tag]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120).stdout
        m = re.search(r"^WRKRESULT (.*)$", out, re.M)
        if not m:
            raise RuntimeError("wrk gave no result:\n" + out)
        r = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
        ok = r["requests"] - r["non2xx"]
        return {"requests": r["requests"], "ok": ok, "non2xx": r["non2xx"],
                "socket_errors": r["connect"] + r["read"] + r["write"] + r["timeout"],
                "duration_s": round(r["duration_us"] / 1e6, 3),
                "rate": round(ok / (r["duration_us"] / 1e6), 1),
                "latency_ms": {"p50": r["p50_us"] / 1e3, "p90": r["p90_us"] / 1e3,
                               "p99": r["p99_us"] / 1e3, "max": r["max_us"] / 1e3}}

    def loadgen(self, rate, seconds, connections=32, raw=None, method="POST", path=None,
                paths=None, body=None, tag=None, background=False, grace=None):
        cmd = [self.args.loadgen, "--port", str(self.port), "--rate", "%.2f" % rate,
               "--duration", "%.2f" % seconds, "--connections", str(connections),
               "--method", method]
        if path:
            cmd += ["--path", path]
        if paths:
            cmd += ["--paths", paths]
        if body:
            cmd += ["--body", body]
        if tag:
            cmd += ["--tag", tag]
        if raw:
            cmd += ["--raw", raw]
        if grace is not None:
            cmd += ["--grace", str(grace)]
        for h in self.headers():
            cmd += ["--header", h]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        if background:
            return p
        return self.loadgen_result(p, seconds + 120)

    @staticmethod
    def loadgen_result(p, timeout):
        out, _ = p.communicate(timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError("loadgen failed (%d)" % p.returncode)
        return json.loads(out)

    def rss(self):
        return {"rss_mb": round((proc_status(self.daemon.pid, "VmRSS") or 0) / 1024, 1),
                "peak_rss_mb": round((proc_status(self.daemon.pid, "VmHWM") or 0) / 1024, 1)}

    # ---- phases ------------------------------------------------------------------
    def write_templates(self):
        tpl = elastic_template()
        self.template = os.path.join(self.work, "elastic.json")
        with open(self.template, "w") as f:
            f.write(tpl)
        self.sample_payload = tpl.replace("__N__", "0").replace("__IP__", "1")
        self.res["payload"] = {"source": "elastic", "bytes": len(self.sample_payload)}

    def phase_reference(self):
        ref = self.args.reference
        d = self.m["pgbench"]
        lit = self.sample_payload.replace("'", "''")
        out = {}
        for name, script, clients, extra, per_tx in (
                ("batched", "batch.sql", 2, [], 100),
                ("naive", "one.sql", 32, ["--max-tries", "10"], 1)):
            db = "ref_" + name
            self.createdb(db)
            with open(os.path.join(ref, "schema.sql")) as f:
                self.psql(db, f.read())
            with open(os.path.join(ref, script)) as f:
                text = f.read().replace("$PAYLOAD", lit)
            path = os.path.join(self.work, script)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o644)
            cmd = as_pg(["pgbench", "-n", "-h", self.sock, "-U", "alertmap", "-c", str(clients),
                         "-j", "2", "-T", str(d)] + extra + ["-f", path, db])
            log("reference %s: %s" % (name, " ".join(cmd[cmd.index("pgbench"):])))
            pg0 = {p_: proc_ticks(p_) for p_ in [self.postmaster] + children(self.postmaster)}
            r0 = reaped_ticks(self.postmaster)
            m0 = machine_ticks()
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=d + 120)
            pg1 = {p_: proc_ticks(p_) for p_ in [self.postmaster] + children(self.postmaster)}
            r1 = reaped_ticks(self.postmaster)
            m1 = machine_ticks()
            m = re.search(r"^tps = ([0-9.]+)", r.stdout, re.M)
            if r.returncode != 0 or not m:
                raise RuntimeError("pgbench failed:\n" + r.stdout + r.stderr)
            failed = re.search(r"number of failed transactions: (\d+)", r.stdout)
            alerts = int(self.sql(db, "select count(*) from alerts"))
            # PostgreSQL's CPU per alert in the reference itself, so that the
            # end-to-end figure can be read against it (docs/performance.md)
            # pgbench's backends have exited by now: the postmaster reaped
            # their CPU time into its cutime/cstime
            pg_s = (sum((v or 0) - (pg0.get(p_) or 0) for p_, v in pg1.items())
                    + r1 - r0) / HZ
            out[name] = {"clients": clients, "alerts_per_tx": per_tx, "seconds": d,
                         "tps": float(m.group(1)), "rate": round(float(m.group(1)) * per_tx, 1),
                         "failed_tx": int(failed.group(1)) if failed else 0,
                         "alerts_stored": alerts,
                         "postgres_us_per_alert": round(pg_s * 1e6 / alerts, 1) if alerts else None,
                         "machine_busy": round((m1[0] - m0[0]) / max(1, m1[1] - m0[1]), 3)}
            log("  %.0f alerts/s; PostgreSQL %s us/alert, machine busy %.0f %%" % (
                out[name]["rate"], out[name]["postgres_us_per_alert"],
                100 * out[name]["machine_busy"]))
            self.sql("postgres", 'drop database "%s"' % db)
        self.res["reference"] = out

    def phase_e2e(self):
        m = self.m
        path = "/v1/ingest/elastic"
        st, data = self.http("POST", path, self.sample_payload.replace("Execution 0", "Execution smoke-" + self.tag))
        if st != 202:
            raise RuntimeError("a smoke ingest answered %d: %s" % (st, data[:300]))
        self.wrk(m["warm"], path, self.template, self.tag + "w")
        cpu = Cpu(self)
        cpu.start()
        full = self.wrk(m["full"], path, self.template, self.tag + "f")
        full["cpu"] = cpu.stop(full["ok"])
        full.update(self.rss())
        log("end to end, wrk -t2 -c32: %.0f alerts/s, p99 %.1f ms, non-2xx %d"
            % (full["rate"], full["latency_ms"]["p99"], full["non2xx"]))
        levels = []
        for frac in (0.25, 0.5, 0.75):
            rate = max(1.0, frac * full["rate"])
            cpu.start()
            r = self.loadgen(rate, m["level"], body=self.template, path=path,
                             tag="%sl%d" % (self.tag, int(frac * 100)))
            r["fraction"] = frac
            r["cpu"] = cpu.stop(r["ok"])
            levels.append(r)
            log("  at %d %% (%.0f/s offered, %.0f/s done): p50 %.1f p90 %.1f p99 %.1f max %.1f ms, "
                "non-2xx %d, errors %d" % (frac * 100, rate, r["achieved_rate"],
                                         r["latency_ms"]["p50"], r["latency_ms"]["p90"],
                                         r["latency_ms"]["p99"], r["latency_ms"]["max"],
                                         r["non2xx"], r["errors"]))
        ref = self.res.get("reference", {})
        e2e = {"full": full, "levels": levels, "rss_after_ordinary_load": self.rss(),
               "alerts_stored": int(self.sql("am_e2e", "select count(*) from alerts")),
               "answered_2xx": 1 + full["ok"] + sum(l["ok"] for l in levels),
               # every request is a new alert: none may have been deduplicated
               "deduplicated": int(self.sql("am_e2e", "select coalesce(sum(duplicate_count), 0)"
                                                      " from alerts"))}
        if ref:
            e2e["ratio_to_batched"] = round(full["rate"] / ref["batched"]["rate"], 3)
            e2e["ratio_to_naive"] = round(full["rate"] / ref["naive"]["rate"], 3)
        e2e["non2xx_total"] = full["non2xx"] + sum(l["non2xx"] + l["errors"] for l in levels)
        self.res["e2e"] = e2e

    def phase_heavy(self):
        """Normal senders at 50 % of full speed; after a few seconds one heavy
        Alertmanager request, repeated heavy_repeat times a second apart.
        The others' latency while a heavy request runs (every request whose
        life overlaps one) is compared with the others' latency in the same
        run while none runs: one heavy request that is refused in 0.1 s
        overlaps a few hundred others, whose p99 is their third-worst;
        pooling the repeats makes the figure a measurement, and the baseline
        from the same run keeps the machine's drift out of the ratio."""
        full = self.res["e2e"]["full"]["rate"]
        rate = max(1.0, 0.5 * full)
        body = heavy_alertmanager(self.m["heavy_alerts"], self.tag)
        raw = os.path.join(self.work, "heavy.raw")
        lead, tail, cap = self.m.get("heavy_lead", 3.0), self.m.get("heavy_tail", 2.0), 180.0
        repeat, gap = self.m.get("heavy_repeat", 5), self.m.get("heavy_gap", 1.0)
        p = self.loadgen(rate, cap * repeat, body=self.template, path="/v1/ingest/elastic",
                         tag=self.tag + "h", raw=raw, background=True, grace=120)
        time.sleep(lead)
        windows, answers = [], []
        for i in range(repeat):
            if i:
                time.sleep(gap)
            t0 = time.monotonic_ns()
            try:
                st, data = self.http("POST", "/v1/ingest/alertmanager", body, timeout=cap)
            except (OSError, http.client.HTTPException) as e:
                st, data = 0, str(e).encode()
            windows.append((t0, time.monotonic_ns()))
            answers.append((st, data))
        time.sleep(tail)
        # stop the schedule; the requests queued meanwhile are still sent and waited for
        p.send_signal(signal.SIGTERM)
        summary = self.loadgen_result(p, 180)
        t_end = time.monotonic_ns()
        recs = []
        with open(raw) as f:
            for line in f:
                s_, _, d, code = (int(x) for x in line.split())
                recs.append((s_, d or t_end, code if d else -1))

        def stats(sel):
            lat = sorted((d - s_) / 1e6 for s_, d, _ in sel)
            if not lat:
                return {"requests": 0}
            q = lambda p_: lat[min(len(lat) - 1, int(p_ / 100 * len(lat)))]
            return {"requests": len(lat), "p50_ms": round(q(50), 2), "p99_ms": round(q(99), 2),
                    "max_ms": round(lat[-1], 2),
                    "non2xx": sum(1 for _, _, c in sel if c >= 0 and not 200 <= c < 300),
                    "unfinished": sum(1 for _, _, c in sel if c < 0)}

        def overlaps(r):
            return any(r[1] > t0 and r[0] <= t1 for t0, t1 in windows)
        during = [r for r in recs if overlaps(r)]
        outside = [r for r in recs if not overlaps(r)]
        alone = next((l for l in self.res["e2e"]["levels"] if l["fraction"] == 0.5), None)
        statuses = sorted({st for st, _ in answers})
        st = answers[0][0] if len(statuses) == 1 else 0
        secs = [(t1 - t0) / 1e9 for t0, t1 in windows]
        h = {"body_bytes": len(body), "alerts": self.m["heavy_alerts"], "ips_per_alert": 900,
             "repeats": repeat, "statuses": statuses, "status": st,
             "seconds": round(max(secs), 2), "seconds_each": [round(x, 2) for x in secs],
             "others_rate": round(rate, 1),
             "others_outside": stats(outside), "others_during": stats(during),
             "others_whole_run": {k: summary[k] for k in ("ok", "non2xx", "errors", "unfinished")},
             "longest_wait_ms": round(max(((d - s_) / 1e6 for s_, d, _ in recs), default=0), 2),
             "rss_after": self.rss()}
        if st not in (202, 413, 422):
            h["answer"] = "; ".join(d[:300].decode(errors="replace") for _, d in answers)
        base = h["others_outside"].get("p99_ms")
        h["others_p99_without_ms"] = base
        if alone:
            h["level_50_alone_p99_ms"] = alone["latency_ms"]["p99"]
        if base and h["others_during"].get("p99_ms") is not None:
            h["p99_ratio"] = round(h["others_during"]["p99_ms"] / base, 2)
        log("heavy request (%d bytes) x%d: %s in up to %.1f s; others' p99 %s ms during vs %s ms "
            "outside (same run; %d and %d requests), longest wait %.0f ms" % (
                len(body), repeat, "/".join(str(x) for x in statuses), h["seconds"],
                h["others_during"].get("p99_ms"), base, h["others_during"]["requests"],
                h["others_outside"].get("requests", 0), h["longest_wait_ms"]))
        self.res["heavy"] = h

    # -- growth: ingest rate and the read API as the table grows --
    # Filled alerts are spread over the shipped sources and the severities
    # with the skew of a real installation (a few busy sources, Critical
    # rare), ingested one a second going back in time from the oldest alert
    # already stored, and mostly dealt with: 85 % closed (with the times of
    # each transition), 10 % still open, the rest in triage or escalated.
    SOURCES = (["elastic"] * 35 + ["sentinel"] * 20 + ["splunk"] * 15 + ["crowdstrike"] * 10
               + ["defender_endpoint"] * 7 + ["guardduty"] * 5 + ["alertmanager"] * 3
               + ["wazuh"] * 2 + ["suricata"] * 1 + ["okta"] * 1 + ["github"] * 1)
    SEVERITIES = (["Informational"] * 15 + ["Low"] * 30 + ["Medium"] * 35 + ["High"] * 15
                  + ["Critical"] * 5)

    def fill(self, db, target):
        """Adds alerts with SQL until db holds target of them, shaped like
        what the writer stores: a UUIDv7 of the ingest time, a SHA-256
        fingerprint, the Elastic payload with its own rule name and source
        IP, normalized fields, 2-6 indicator links each (positions 1..k) to
        indicators shared across alerts (hot values drawn far more often than
        cold ones), a finished enrichment job and the verdict it left, and a
        few alerts with duplicates folded in. Returns the seconds it took."""
        have = self.filled.get(db, 0)  # alerts filled so far (ingested ones not counted)
        n = target - have
        if n <= 0:
            return 0.0, 0.0
        self.filled[db] = target
        log("filling %s with %d alerts (SQL)" % (db, n))
        t = time.monotonic()
        lit = self.sample_payload.replace("'", "''").replace(
            "Suspicious PowerShell Execution 0", "__RULE__").replace("185.220.101.1", "__IP__")
        # Indexes that back no constraint, and the uuid's unique constraint
        # (its keys arrive out of order: the fill goes back in time), are
        # dropped during the fill and built again after it: much faster than
        # maintaining them row by row. The indicators' (type, value) stays:
        # the fill's upsert needs it to find the values already stored.
        idx = self.psql(db, """select pg_get_indexdef(i.indexrelid) || ';' || i.indexrelid::regclass
            from pg_index i where i.indrelid in ('alerts'::regclass, 'alert_indicators'::regclass,
            'enrichment_jobs'::regclass, 'indicators'::regclass)
            and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid);""")
        defs = [l.rsplit(";", 1) for l in idx.splitlines() if l]
        cons = self.psql(db, """select conrelid::regclass || ';' || conname || ';' ||
            pg_get_constraintdef(oid) from pg_constraint where contype = 'u'
            and conrelid = 'alerts'::regclass and conname = 'alerts_uuid_key';""")
        cdefs = [l.split(";", 2) for l in cons.splitlines() if l]
        pools = {  # indicator pools per extraction position, by the final table size
            "src": max(500, target // 4),      # external source IPs
            "host": max(100, target // 200),   # internal hosts (10.x)
            "dom": max(200, target // 10),     # domains
            "url": max(500, target // 2),      # URLs
            "hash": max(100, target // 20),    # file hashes
            "acct": max(50, target // 500),    # accounts
        }
        v = dict(pools, lit=lit, tag=self.tag, lo=have + 1, hi=target,
                 sources="'{%s}'" % ",".join(self.SOURCES),
                 nsrc=len(self.SOURCES), sevs="'{%s}'" % ",".join(self.SEVERITIES),
                 nsev=len(self.SEVERITIES))
        script = ["set session_replication_role = replica;",  # no FK or NOTIFY triggers
                  "set maintenance_work_mem = '256MB';", "set work_mem = '128MB';"]
        script += ["drop index %s;" % name for _, name in defs]
        script += ["alter table %s drop constraint %s;" % (rel, name) for rel, name, _ in cdefs]
        script.append(string.Template(r"""
-- the indicator pools: (pool, k) -> indicator id
create temp table pool (p int2, k int4, type text, value text, id int8);
insert into pool (p, k, type, value)
  select 1, k, 'ip', (11 + k / 16777216 % 200) || '.' || (k / 65536) % 256 || '.' || (k / 256) % 256
         || '.' || k % 256 from generate_series(1, $src) k
  union all select 2, k, 'ip', '10.' || (k / 65536) % 256 || '.' || (k / 256) % 256 || '.' || k % 256
         from generate_series(1, $host) k
  union all select 3, k, 'domain', 'h' || k || '.cdn-' || k % 97 || '.example.com'
         from generate_series(1, $dom) k
  union all select 4, k, 'url', 'https://dl' || k % 1000 || '.example.net/p/' || md5('u' || k)
         from generate_series(1, $url) k
  union all select 5, k, 'hash_sha256', encode(sha256(('f' || k)::bytea), 'hex')
         from generate_series(1, $hash) k
  union all select 6, k, 'account', 'corp\user' || k from generate_series(1, $acct) k;

-- the alerts, one a second back in time from the oldest one stored
create temp table fill_base as
  select coalesce(max(id), 0) as base, coalesce(min(ingested_at), now()) as oldest from alerts;
create temp table fa as
  select *, (substr(ms, 1, 8) || '-' || substr(ms, 9, 4) || '-7' || substr(m, 1, 3) || '-'
             || substr('89ab', 1 + h % 4, 1) || substr(m, 4, 3) || '-' || substr(m, 7, 12))::uuid
            as u
  from (select *, lpad(to_hex((extract(epoch from t) * 1000)::int8), 12, '0') as ms
        from (select g, (select oldest from fill_base) - ($hi - g + 1) * interval '1 second' as t,
                     random() as r1, random() as r2, random() as r3, random() as r4,
                     hashint4(g) & 2147483647 as h, md5('$tag-' || g) as m
              from generate_series($lo, $hi) g) x) y;
create temp table fk as  -- the indicators of each alert: position -> (pool, k)
  select g, pos, p, k from (
    select g, pos, p,
           1 + floor(power(r, 3) * (case p when 1 then $src when 2 then $host when 3 then $dom
                     when 4 then $url when 5 then $hash else $acct end))::int4 as k
    from (select g, pos, 1 + (pos - 1 + g) % 6 as p, random() as r
          from fa, generate_series(1, 2 + h % 5) pos) x) y;
-- only the values drawn become indicators
insert into indicators (type, value, first_seen, last_seen)
  select type, value, now() - interval '90 days', now() - interval '1 day' from pool
  where (p, k) in (select distinct p, k from fk)
  on conflict do nothing;
update pool set id = i.id from indicators i where i.type = pool.type and i.value = pool.value;
create unique index on pool (p, k);
analyze pool;
create temp table fi as
  select fk.g, fk.pos, pool.id, pool.type, pool.value
  from fk join pool on pool.p = fk.p and pool.k = fk.k;
create index on fi (g, pos);

insert into alerts (uuid, title, severity, occurred_at, source_name, description, status,
                    enrichment_status, tags, raw_payload, detection_rule_ref, fields, fingerprint,
                    duplicate_count, last_duplicate_at, ingested_at, updated_at, triaged_at,
                    escalated_at, closed_at, close_classification, verdict, enriched_at)
  select u, rule || ' on ws-' || lpad((h % 4000)::text, 4, '0'),
         ($sevs::text[])[1 + floor(r2 * $nsev)::int],
         t - (h % 300) * interval '1 second', src, 'Detection rule ' || rule || ' matched.',
         st, case when r4 < 0.02 then 'Failed' else 'Enriched' end,
         (array['{Endpoint,Execution}', '{Network}', '{Identity,Cloud}', '{}'])[1 + h % 4]::text[],
         replace(replace('$lit', '__RULE__', rule), '__IP__', (h % 250 + 1)::text)::json,
         'rule-' || (h % 500), jsonb_build_object('src_ip', '185.220.101.' || (h % 250 + 1),
         'dst_ip', '10.20.' || h % 200 || '.' || h % 250, 'dst_hostname',
         'ws-' || lpad((h % 4000)::text, 4, '0'), 'actor_username', 'user' || h % 2000),
         encode(sha256(convert_to(m, 'UTF8')), 'hex'),
         case when r4 < 0.08 then 1 + h % 50 else 0 end,
         case when r4 < 0.08 then t + (h % 3600) * interval '1 second' end,
         t, coalesce(closed, t + interval '2 seconds'),
         case when st <> 'Open' then t + interval '10 minutes' end,
         case when st = 'Escalated' or (st = 'Closed' and r3 < 0.1) then t + interval '30 minutes' end,
         closed,
         case when st = 'Closed' then (array['false_positive', 'false_positive', 'false_positive',
              'benign_positive', 'benign_positive', 'true_positive', 'undetermined'])[1 + h % 7] end,
         case when r4 < 0.02 then null when r3 < 0.03 then 'Malicious' when r3 < 0.13 then 'Suspicious'
              when r3 < 0.53 then 'Benign' else 'Unknown' end,
         case when r4 >= 0.02 then t + interval '2 seconds' end
  from (select fa.*, ($sources::text[])[1 + floor(r1 * $nsrc)::int] as src,
               case when r3 < 0.85 then 'Closed' when r3 < 0.95 then 'Open'
                    when r3 < 0.97 then 'Triaging' else 'Escalated' end as st,
               case when r3 < 0.85 then t + (1 + h % 48) * interval '1 hour' end as closed,
               'Rule ' || (h % 500) as rule
        from fa) s
  order by g;
create temp table fid as
  select a.id, fa.g from alerts a join fa on fa.u = a.uuid where a.id > (select base from fill_base);
insert into alert_indicators (alert_id, indicator_id, source_field, position)
  select fid.id, fi.id, (array['source.ip', 'host.ip', 'destination.domain', 'url.full',
         'process.hash.sha256', 'user.name'])[1 + (fi.pos - 1 + fi.g) % 6], fi.pos
  from fid join fi on fi.g = fid.g
  on conflict do nothing;  -- the same indicator drawn twice for one alert
insert into enrichment_jobs (alert_id, status, attempts, created_at, claimed_at, finished_at,
                             next_attempt_at, claimed_by)
  select id, case when enrichment_status = 'Failed' then 'failed' else 'done' end, 1,
         ingested_at, ingested_at + interval '1 second', ingested_at + interval '2 seconds',
         ingested_at, 'worker-1'
  from alerts where id > (select base from fill_base);
-- the provider cache of the source IPs (the worker's enrichment_results)
insert into enrichment_results (provider, type, value, outcome, verdict, fields, fetched_at,
                                expires_at)
  select 'abuseipdb', type, value, 'found', (array['Benign', 'Unknown', 'Suspicious',
         'Malicious'])[1 + k % 4], '{"abuseConfidenceScore": 12}', now() - interval '1 day',
         now() + interval '6 days'
  from pool where p = 1 and id is not null on conflict do nothing;
""").substitute(v))
        script += ["alter table %s add constraint %s %s;" % (rel, name, d) for rel, name, d in cdefs]
        script += [d + ";" for d, _ in defs]
        self.psql(db, "\n".join(script))
        fill_s = round(time.monotonic() - t, 1)
        t = time.monotonic()
        self.psql(db, "vacuum analyze;")  # as an operator would after a bulk load
        vacuum_s = round(time.monotonic() - t, 1)
        # The fill leaves gigabytes of dirty pages in shared_buffers and the
        # page cache; written back during the measurement they would slow
        # every WAL flush, which a long-running installation does not see.
        self.sql(db, "checkpoint")
        os.sync()
        return fill_s, vacuum_s

    def read_paths(self, db):
        """The read API requests: the list with each filter (common and rare
        values), pages reached by following next_cursor from the top, pages
        deep in the table (cursors of random stored alerts), and single
        alerts by uuid."""
        since = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)) \
            .strftime("%Y-%m-%dT%H:%M:%SZ")
        week = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=7)) \
            .strftime("%Y-%m-%dT%H:%M:%SZ")
        kinds = {
            "list": ["/v1/alerts"],
            "list_limit500": ["/v1/alerts?limit=500"],
            "source_name": ["/v1/alerts?source_name=sentinel"],          # 20 % of the filled
            "source_rare": ["/v1/alerts?source_name=github"],            # 1 %
            "severity": ["/v1/alerts?severity=Critical"],                # 5 %
            "status": ["/v1/alerts?status=Escalated"],                   # 3 %
            "since": ["/v1/alerts?since=" + since],                      # the live ingests
            "since_week": ["/v1/alerts?since=" + week + "&severity=Critical"],
            "combined": ["/v1/alerts?source_name=elastic&severity=High&status=Open"],
            "combined_rare": ["/v1/alerts?source_name=sentinel&severity=Critical&status=Open"],
        }
        for name, first in (("cursor", "/v1/alerts"), ("cursor_severity", "/v1/alerts?severity=High")):
            pages, p = [], first
            for _ in range(20):
                st, data = self.http("GET", p)
                if st != 200:
                    raise RuntimeError("GET %s answered %d: %s" % (p, st, data[:200]))
                cur = json.loads(data).get("meta", {}).get("next_cursor")
                if not cur:
                    break
                sep = "&" if "?" in first else "?"
                p = first + sep + "cursor=" + urlquote(cur)
                pages.append(p)
            if pages:
                kinds[name] = pages
        sample = "tablesample system (1)" if int(self.sql(
            db, "select reltuples from pg_class where relname = 'alerts'").split(".")[0]) > 100000 else ""
        rows = self.sql(db, "select uuid, (extract(epoch from ingested_at) * 1000000)::int8 || '.' || id"
                            " from alerts %s order by random() limit 500" % sample).split()
        uuids = [l.split("|")[0] for l in rows]
        cursors = [base64.urlsafe_b64encode(l.split("|")[1].encode()).decode().rstrip("=")
                   for l in rows]
        if cursors:  # a page at a random depth of the table, plain and filtered
            kinds["cursor_deep"] = ["/v1/alerts?cursor=" + c for c in cursors]
            kinds["cursor_deep_severity"] = ["/v1/alerts?severity=Critical&cursor=" + c
                                             for c in cursors]
            kinds["cursor_deep_source"] = ["/v1/alerts?source_name=sentinel&cursor=" + c
                                           for c in cursors]
        if uuids:
            kinds["get_uuid"] = ["/v1/alerts/" + u for u in uuids]
        return kinds

    def measure_reads(self, db):
        out = {}
        for kind, paths in self.read_paths(db).items():
            pf = os.path.join(self.work, "paths-%s.txt" % kind)
            with open(pf, "w") as f:
                f.write("\n".join(paths) + "\n")
            r = self.loadgen(50, self.m["read"], connections=4, method="GET", paths=pf)
            # latency: from the scheduled time (queueing included when the
            # answers are slower than the schedule); service: from the send
            out[kind] = {"p50_ms": r["latency_ms"]["p50"], "p99_ms": r["latency_ms"]["p99"],
                         "max_ms": r["latency_ms"]["max"],
                         "service_p50_ms": r["service_ms"]["p50"],
                         "service_p99_ms": r["service_ms"]["p99"],
                         "achieved_rate": r["achieved_rate"], "requests": r["responses"],
                         "non2xx": r["non2xx"] + r["errors"]}
        return out

    def ingest_run(self, db, label):
        """alertmapd on db: warm-up, then wrk at full speed with the CPU split."""
        self.daemon_start(db)
        self.wrk(self.m["warm"], "/v1/ingest/elastic", self.template, self.tag + "w" + label)
        cpu = Cpu(self)
        q = ("select wal_records || ' ' || wal_fpi || ' ' || wal_bytes || ' ' || "
             "(select blks_read || ' ' || blks_hit from pg_stat_database where datname = '%s') || ' ' || "
             "(select checkpoints_timed + checkpoints_req from pg_stat_bgwriter) from pg_stat_wal" % db)
        s0 = [int(x) for x in self.sql(db, q).split()]
        cpu.start()
        w = self.wrk(self.m["full"], "/v1/ingest/elastic", self.template, self.tag + label)
        w["cpu"] = cpu.stop(w["ok"])
        time.sleep(0.6)  # backends publish their statistics when idle, at most every 0.5 s
        s1 = [int(x) for x in self.sql(db, q).split()]
        d = [b_ - a_ for a_, b_ in zip(s0, s1)]
        n = max(1, w["ok"])
        # where the database's work per alert goes: WAL (full-page images
        # follow a checkpoint, one per page first touched), and the reads
        # that missed shared_buffers
        w["db"] = {"wal_bytes_per_alert": round(d[2] / n), "wal_fpi_per_alert": round(d[1] / n, 2),
                   "wal_records_per_alert": round(d[0] / n, 1),
                   "shared_buffer_misses_per_alert": round(d[3] / n, 1),
                   "shared_buffer_hits_per_alert": round(d[4] / n, 1), "checkpoints": d[5]}
        log("    %s: %.0f alerts/s; per alert: %d WAL bytes, %.2f full-page images, %.1f buffer"
            " misses, %.0f hits; %d checkpoints" % (db, w["rate"], w["db"]["wal_bytes_per_alert"],
                                                   w["db"]["wal_fpi_per_alert"],
                                                   w["db"]["shared_buffer_misses_per_alert"],
                                                   w["db"]["shared_buffer_hits_per_alert"], d[5]))
        return w

    def phase_growth(self):
        """For each step: fill the table up to the step's count, then ingest
        at full speed on it and on an empty database, alternately (pairs
        rounds, so that a neighbour's load hits both alike), and the read API.
        The rate at N against the rate at 0 is the median of the pairs'
        ratios."""
        db, empty = "am_growth", "am_growth0"
        self.createdb(db)
        self.daemon_start(db)  # migrations
        steps = []
        pairs = self.m.get("pairs", 2)
        for target in self.m["fills"]:
            self.daemon_stop()  # the fill runs alone
            fill_s, vacuum_s = self.fill(db, target)
            stored = int(self.sql(db, "select count(*) from alerts"))
            runs, empties, ratios = [], [], []
            for i in range(pairs if target else 1):
                if target:
                    self.daemon_stop()
                    self.createdb(empty)
                    e = self.ingest_run(empty, "g0-%d-%d" % (target, i))
                    empties.append(e)
                    self.daemon_stop()
                w = self.ingest_run(db, "g%d-%d" % (target, i))
                runs.append(w)
                if target and empties[-1]["rate"]:
                    ratios.append(w["rate"] / empties[-1]["rate"])
                log("  %d stored, round %d: %.0f alerts/s%s" % (
                    stored, i + 1, w["rate"], " (empty database: %.0f)" % empties[-1]["rate"]
                    if target else ""))
            stored_read = int(self.sql(db, "select count(*) from alerts"))
            reads = self.measure_reads(db)
            size = self.sql(db, "select pg_size_pretty(pg_database_size(current_database()))")
            sizes = dict(l.split("|") for l in self.sql(
                db, "select relname, pg_size_pretty(pg_relation_size(oid)) from pg_class where relname"
                    " in ('alerts', 'alert_indicators', 'indicators', 'enrichment_jobs') or (relkind = 'i'"
                    " and relname ~ '^(alerts|alert_ind|indicators|enrichment_jobs)') order by 1").splitlines())
            idx = self.sql(db, "select pg_size_pretty(sum(pg_relation_size(indexrelid))) from pg_index"
                               " where indrelid in ('alerts'::regclass, 'alert_indicators'::regclass,"
                               " 'indicators'::regclass, 'enrichment_jobs'::regclass)")
            best = sorted(runs, key=lambda r_: r_["rate"])[len(runs) // 2]
            st_ = {"stored_alerts": stored, "fill_seconds": fill_s, "vacuum_analyze_seconds": vacuum_s,
                   "database_size": size, "table_sizes": sizes, "index_size": idx,
                   "stored_alerts_at_read": stored_read, "ingest": best,
                   "ingest_runs": [r_["rate"] for r_ in runs], "read": reads}
            if target:
                st_["empty_runs"] = [e["rate"] for e in empties]
                st_["pair_ratios"] = [round(x, 3) for x in ratios]
            steps.append(st_)
            log("with %d alerts stored: ingest %.0f alerts/s (p99 %.1f ms); read p99 %s" % (
                stored, best["rate"], best["latency_ms"]["p99"],
                ", ".join("%s %.1f ms" % (k, v["p99_ms"]) for k, v in reads.items())))
        base = steps[0]["ingest"]["rate"]
        for s_ in steps:
            if "pair_ratios" in s_ and s_["pair_ratios"]:
                r_ = sorted(s_["pair_ratios"])
                s_["ingest_vs_empty"] = round((r_[(len(r_) - 1) // 2] + r_[len(r_) // 2]) / 2, 3)
            else:
                s_["ingest_vs_empty"] = round(s_["ingest"]["rate"] / base, 3) if base else None
        self.daemon_stop()
        self.sql("postgres", 'drop database if exists "%s"' % empty)
        self.res["growth"] = steps

    def run(self, phases):
        self.write_templates()
        self.pg_start()
        try:
            if "reference" in phases:
                self.phase_reference()
            if "e2e" in phases or "heavy" in phases:
                self.createdb("am_e2e")
                self.daemon_start("am_e2e")
                self.phase_e2e()
                if "heavy" in phases:
                    self.phase_heavy()
                self.daemon_stop()
            if "growth" in phases:
                self.phase_growth()
        finally:
            self.daemon_stop()
            self.pg_stop()
        self.res["finished_at"] = datetime.datetime.now(datetime.timezone.utc) \
            .strftime("%Y-%m-%dT%H:%M:%SZ")


def urlquote(s):
    from urllib.parse import quote
    return quote(s, safe="")


# ---- report ------------------------------------------------------------------------

def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    return {"cores": os.cpu_count(), "cpu": cpu, "loadavg_at_end": [float(x) for x in load]}


def report(res):
    p = print
    p("alertmap ingest benchmark (%s, mode %s)" % (res["started_at"], res["mode"]))
    mc = res["machine"]
    p("  machine: %d cores, %s; load average at the end %s" % (
        mc["cores"], mc["cpu"], " ".join(str(x) for x in mc["loadavg_at_end"])))
    pg = res.get("postgres", {})
    p("  PostgreSQL %s, fsync=%s, synchronous_commit=%s, shared_buffers=%s; payload: Elastic "
      "alert of %d bytes" % (pg.get("version"), pg.get("fsync"), pg.get("synchronous_commit"),
                             pg.get("shared_buffers"), res["payload"]["bytes"]))
    p("")
    ref = res.get("reference")
    if ref:
        p("  %-62s %10s" % ("figure", "alerts/s"))
        p("  %-62s %10.0f" % ("PostgreSQL, reference rows, 100 alerts/transaction, 2 clients",
                              ref["batched"]["rate"]))
        p("  %-62s %10.0f" % ("PostgreSQL, reference rows, 1 alert/transaction, 32 clients",
                              ref["naive"]["rate"]))
        if ref["batched"].get("postgres_us_per_alert"):
            p("  (PostgreSQL CPU per alert: batched %s us, naive %s us; machine busy %.0f / %.0f %%)"
              % (ref["batched"]["postgres_us_per_alert"], ref["naive"]["postgres_us_per_alert"],
                 100 * ref["batched"]["machine_busy"], 100 * ref["naive"]["machine_busy"]))
    e = res.get("e2e")
    if e:
        f = e["full"]
        p("  %-62s %10.0f   (p50 %.1f, p99 %.1f ms)" % (
            "alertmapd end to end, wrk -t2 -c32", f["rate"], f["latency_ms"]["p50"],
            f["latency_ms"]["p99"]))
        if "ratio_to_batched" in e:
            p("")
            p("  end to end / batched limit: %.2f   (target >= 0.70)" % e["ratio_to_batched"])
            p("  end to end / naive:         %.2f   (target >= 2)" % e["ratio_to_naive"])
        p("  non-2xx answers (full speed and levels): %d" % e["non2xx_total"])
        p("")
        p("  open-loop latency (fixed schedule, 32 connections, from the scheduled time):")
        p("  %8s %10s %10s %8s %8s %8s %9s %8s" % ("load", "offered/s", "done/s", "p50 ms",
                                                  "p90 ms", "p99 ms", "max ms", "non-2xx"))
        for l in e["levels"]:
            lm = l["latency_ms"]
            p("  %7d%% %10.0f %10.0f %8.1f %8.1f %8.1f %9.1f %8d" % (
                l["fraction"] * 100, l["offered_rate"], l["achieved_rate"], lm["p50"], lm["p90"],
                lm["p99"], lm["max"], l["non2xx"] + l["errors"]))
        c = f["cpu"]
        p("")
        p("  CPU at full speed: alertmapd %.2f cores (%s us/alert), PostgreSQL %.2f cores (%s us/alert);"
          " PostgreSQL's share %.0f %%; machine busy %.0f %%" % (
              c["alertmapd_cores"], c["alertmapd_us_per_alert"], c["postgres_cores"],
              c["postgres_us_per_alert"], 100 * (c["postgres_share"] or 0), 100 * c["machine_busy"]))
        r = e["rss_after_ordinary_load"]
        p("  alertmapd RSS: peak %.1f MB after ordinary load (target <= 64 MB)" % r["peak_rss_mb"])
    h = res.get("heavy")
    if h:
        p("")
        p("  heavy request: Alertmanager body of %d bytes (%d alerts x %d IPs), %d times -> %d in"
          " up to %.1f s," % (h["body_bytes"], h["alerts"], h["ips_per_alert"],
                             h.get("repeats", 1), h["status"], h["seconds"]))
        p("    others at 50 %% (%.0f/s): p99 %s ms while one ran, %s ms while none did (x%s);"
          " longest wait %.0f ms;"
          " peak RSS after %.1f MB" % (h["others_rate"], h["others_during"].get("p99_ms"),
                                       h["others_p99_without_ms"], h.get("p99_ratio"),
                                       h["longest_wait_ms"], h["rss_after"]["peak_rss_mb"]))
    g = res.get("growth")
    if g:
        p("")
        p("  growth: ingest at full speed and read-API p99 (ms) with alerts already stored")
        kinds = list(g[-1]["read"].keys())
        p("  %10s %9s %7s  %s" % ("stored", "alerts/s", "vs 0", " ".join("%9s" % k[:9] for k in kinds)))
        for s in g:
            p("  %10d %9.0f %7.2f  %s" % (s["stored_alerts"], s["ingest"]["rate"],
                                        s["ingest_vs_empty"] or 0,
                                        " ".join("%9.1f" % s["read"].get(k, {}).get("p99_ms", float("nan"))
                                                 for k in kinds)))
        for s in g:
            p("")
            p("  read API with %d alerts stored (%s), 50 requests/s on 4 connections:" % (
                s["stored_alerts_at_read"], s["database_size"]))
            p("  %-16s %8s %8s %8s %12s %12s %8s" % ("query", "p50 ms", "p99 ms", "max ms",
                                                   "service p50", "service p99", "done/s"))
            for k, v in s["read"].items():
                p("  %-16s %8.1f %8.1f %8.1f %12.1f %12.1f %8.1f" % (
                    k, v["p50_ms"], v["p99_ms"], v["max_ms"], v.get("service_p50_ms", 0),
                    v.get("service_p99_ms", 0), v.get("achieved_rate", 0)))


def markdown(res):
    """The figures of a result file as Markdown tables (for docs/performance.md)."""
    p = print
    mc, pg = res["machine"], res.get("postgres", {})
    p("`bench/ingest/run%s`, %s, %d cores (%s), load average %s at the end; PostgreSQL %s "
      "(fsync=%s, synchronous_commit=%s, shared_buffers=%s); Elastic alert of %d bytes; took %.0f s."
      % ("" if res["mode"] == "default" else " --" + res["mode"], res["started_at"], mc["cores"],
         mc["cpu"], " / ".join(str(x) for x in mc["loadavg_at_end"]),
         pg.get("version", "?").split()[0], pg.get("fsync"), pg.get("synchronous_commit"),
         pg.get("shared_buffers"), res["payload"]["bytes"], res["seconds"]))
    ref, e = res.get("reference"), res.get("e2e")
    p("")
    p("| figure | alerts/s |")
    p("|---|---:|")
    if ref:
        p("| PostgreSQL, reference rows, 100 alerts per transaction, 2 clients | %s |"
          % "{:,.0f}".format(ref["batched"]["rate"]))
        p("| PostgreSQL, reference rows, one transaction per alert, 32 clients | %s |"
          % "{:,.0f}".format(ref["naive"]["rate"]))
        if ref["batched"].get("postgres_us_per_alert"):
            p("| PostgreSQL CPU per alert in the reference: batched / naive | %s / %s µs |"
              % (ref["batched"]["postgres_us_per_alert"], ref["naive"]["postgres_us_per_alert"]))
    if e:
        f = e["full"]
        p("| alertmapd end to end, wrk -t2 -c32 (p50 %.1f ms, p99 %.1f ms) | %s |"
          % (f["latency_ms"]["p50"], f["latency_ms"]["p99"], "{:,.0f}".format(f["rate"])))
        if ref:
            p("")
            p("End to end / batched limit **%.2f** (target ≥ 0.70); end to end / naive **%.2f** "
              "(target ≥ 2); non-2xx answers: %d." % (e["ratio_to_batched"], e["ratio_to_naive"],
                                                      e["non2xx_total"]))
        p("")
        p("| load | offered/s | done/s | p50 ms | p90 ms | p99 ms | max ms | non-2xx |")
        p("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for l in e["levels"]:
            lm = l["latency_ms"]
            p("| %d %% | %.0f | %.0f | %.1f | %.1f | %.1f | %.1f | %d |" % (
                l["fraction"] * 100, l["offered_rate"], l["achieved_rate"], lm["p50"], lm["p90"],
                lm["p99"], lm["max"], l["non2xx"] + l["errors"]))
        c = f["cpu"]
        p("")
        p("CPU at full speed (%.1f s): alertmapd %.2f cores = %s µs per alert; PostgreSQL (all "
          "processes of the cluster) %.2f cores = %s µs per alert, %.0f %% of the two; whole "
          "machine %.0f %% busy. alertmapd peak RSS %.1f MB after the ordinary load." % (
              c["wall_s"], c["alertmapd_cores"], c["alertmapd_us_per_alert"], c["postgres_cores"],
              c["postgres_us_per_alert"], 100 * (c["postgres_share"] or 0), 100 * c["machine_busy"],
              e["rss_after_ordinary_load"]["peak_rss_mb"]))
    h = res.get("heavy")
    if h:
        p("")
        p("| heavy request | |")
        p("|---|---:|")
        p("| Alertmanager body, %d alerts × %d IPs | %s bytes |" % (
            h["alerts"], h["ips_per_alert"], "{:,}".format(h["body_bytes"])))
        p("| sent, its answer, longest time | %d times, %d, %.1f s |" % (
            h.get("repeats", 1), h["status"], h["seconds"]))
        p("| other senders at 50 %% (%.0f/s): p99 while none ran (same run) | %.1f ms |" % (
            h["others_rate"], h["others_p99_without_ms"]))
        p("| their p50 / p99 while one ran (%d requests) | %s / %s ms (×%s) |" % (
            h["others_during"]["requests"], h["others_during"].get("p50_ms"),
            h["others_during"].get("p99_ms"), h.get("p99_ratio")))
        p("| longest wait of another request | %.0f ms |" % h["longest_wait_ms"])
        p("| alertmapd peak RSS after it | %.1f MB |" % h["rss_after"]["peak_rss_mb"])
    g = res.get("growth")
    if g:
        p("")
        p("| alerts stored | database (indexes) | fill + VACUUM ANALYZE | ingest alerts/s, rounds |"
          " empty database, same rounds | rate at N / rate at 0 (rounds) | WAL bytes / alert |"
          " full-page images / alert | shared-buffer misses / alert |")
        p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for s_ in g:
            d = s_["ingest"].get("db", {})
            p("| %s | %s (%s) | %.0f + %.0f s | %s | %s | **%.2f** (%s) | %s | %s | %s |" % (
                "{:,}".format(s_["stored_alerts"]), s_["database_size"], s_.get("index_size", "?"),
                s_["fill_seconds"], s_.get("vacuum_analyze_seconds", 0),
                ", ".join("%.0f" % x for x in s_.get("ingest_runs", [s_["ingest"]["rate"]])),
                ", ".join("%.0f" % x for x in s_.get("empty_runs", [])) or "–",
                s_["ingest_vs_empty"] or 0, ", ".join("%.2f" % x for x in s_.get("pair_ratios", []))
                or "–", "{:,}".format(d.get("wal_bytes_per_alert", 0)), d.get("wal_fpi_per_alert", "?"),
                d.get("shared_buffer_misses_per_alert", "?")))
        kinds = list(g[-1]["read"].keys())
        p("")
        p("Read API, 50 requests/s on 4 connections, p99 from the scheduled time "
          "(service time p50 / p99 from the send in brackets), ms:")
        p("")
        p("| query | " + " | ".join("%s stored" % "{:,}".format(s_["stored_alerts_at_read"])
                                    for s_ in g) + " |")
        p("|---|" + "---:|" * len(g))
        for k in kinds:
            cells = []
            for s_ in g:
                v = s_["read"].get(k)
                cells.append("%.1f (%.1f / %.1f)" % (v["p99_ms"], v.get("service_p50_ms", 0),
                                                   v.get("service_p99_ms", 0)) if v else "–")
            p("| %s | %s |" % (k, " | ".join(cells)))


def checks(res):
    """Sanity of a run (for --check and the test suite): every figure is
    positive and every request was answered 2xx."""
    bad = []
    for name, r in res.get("reference", {}).items():
        if not r["rate"] > 0:
            bad.append("reference %s: no transactions" % name)
    e = res.get("e2e")
    if e:
        if not e["full"]["rate"] > 0:
            bad.append("end to end: no 2xx answers")
        if e["non2xx_total"] or e["full"]["socket_errors"]:
            bad.append("end to end: %d non-2xx, %d socket errors" % (e["non2xx_total"],
                                                                    e["full"]["socket_errors"]))
        # wrk does not count the requests in flight when it stops (committed all the same)
        if e["alerts_stored"] < e["answered_2xx"]:
            bad.append("end to end: %d alerts stored, fewer than the %d answered 2xx"
                       % (e["alerts_stored"], e["answered_2xx"]))
        if e.get("deduplicated"):
            bad.append("end to end: %d requests were deduplicated (titles not unique)"
                       % e["deduplicated"])
        for l in e["levels"]:
            if l["unfinished"] or l["errors"] or l["non2xx"]:
                bad.append("level %d %%: %d non-2xx, %d errors, %d unfinished" % (
                    l["fraction"] * 100, l["non2xx"], l["errors"], l["unfinished"]))
    h = res.get("heavy")
    # The heavy body is either stored (202) or refused by a per-request limit
    # (413/422 LIMIT_EXCEEDED, --max-indicators and friends): both are
    # bounded answers; what the check guards is the other senders.
    if h and (h["status"] not in (202, 413, 422) or h["others_whole_run"]["non2xx"]
              or h["others_whole_run"]["errors"]):
        bad.append("heavy request: answered %d, others %d non-2xx, %d errors" % (
            h["status"], h["others_whole_run"]["non2xx"], h["others_whole_run"]["errors"]))
    for st in res.get("growth", []):
        if not st["ingest"]["rate"] > 0 or st["ingest"]["non2xx"]:
            bad.append("growth %d: ingest failed" % st["stored_alerts"])
        for k, v in st["read"].items():
            if v["non2xx"] or not v["requests"]:
                bad.append("growth %d: read %s: %d non-2xx of %d" % (st["stored_alerts"], k,
                                                                    v["non2xx"], v["requests"]))
    return bad


def plot(res, png):
    e = res.get("e2e")
    if not e or not shutil.which("gnuplot"):
        return False
    data = png[:-4] + ".dat"
    with open(data, "w") as f:
        f.write("# offered alerts/s  p50 p90 p99 max (ms)\n")
        for l in e["levels"]:
            lm = l["latency_ms"]
            f.write("%.1f %.3f %.3f %.3f %.3f\n" % (l["offered_rate"], lm["p50"], lm["p90"],
                                                     lm["p99"], lm["max"]))
    full = e["full"]
    fulldat = png[:-4] + "-full.dat"
    with open(fulldat, "w") as f:
        f.write("%.1f %.3f %.3f\n" % (full["rate"], full["latency_ms"]["p50"], full["latency_ms"]["p99"]))
    title = "alertmapd ingest latency vs offered load (%s, %d cores, load avg %.1f)" % (
        res["started_at"][:10], res["machine"]["cores"], res["machine"]["loadavg_at_end"][0])
    script = """set terminal png size 900,560
set output '%(png)s'
set title "%(title)s"
set xlabel 'offered load (alerts/s); full speed (wrk, closed loop) = %(full).0f/s'
set ylabel 'latency from the scheduled send time (ms)'
set logscale y
set key left top
set grid
set xrange [0:%(xmax).0f]
set arrow from %(full).0f, graph 0 to %(full).0f, graph 1 nohead dt 2
plot '%(data)s' using 1:2 with linespoints title 'p50', \\
     '%(data)s' using 1:3 with linespoints title 'p90', \\
     '%(data)s' using 1:4 with linespoints title 'p99', \\
     '%(data)s' using 1:5 with linespoints title 'max', \\
     '%(fulldat)s' using 1:2 with points pt 7 ps 1.5 title 'full speed p50 (wrk)', \\
     '%(fulldat)s' using 1:3 with points pt 9 ps 1.5 title 'full speed p99 (wrk)', \\
     20 with lines dt 3 title 'p99 target 20 ms'
""" % {"png": png, "title": title, "full": full["rate"], "xmax": full["rate"] * 1.1,
       "data": data, "fulldat": fulldat}
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        log("gnuplot failed: " + r.stderr)
        return False
    return True


def main():
    ap = argparse.ArgumentParser(prog="bench/ingest/run")
    ap.add_argument("reference", nargs="?", default=os.path.join(ROOT, "..", "shared", "bench",
                                                                 "reference"))
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_const", dest="mode", const="quick")
    g.add_argument("--smoke", action="store_const", dest="mode", const="smoke")
    g.add_argument("--long", action="store_const", dest="mode", const="long")
    ap.add_argument("--phases", default="reference,e2e,heavy,growth")
    ap.add_argument("--alertmapd")
    ap.add_argument("--alertmap", help="the alertmap CLI (default: cli/alertmap beside alertmapd's build dir)")
    ap.add_argument("--loadgen")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--header", action="append", default=[],
                    help="extra request header, e.g. 'Authorization: Bearer KEY'")
    ap.add_argument("--env", help="JSON object of extra environment variables for alertmapd")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless every figure is positive and every answer 2xx")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--markdown", metavar="JSON", help="print a result file as Markdown and exit")
    args = ap.parse_args()
    if args.markdown:
        with open(args.markdown) as f:
            markdown(json.load(f))
        return 0
    mode = args.mode or "default"
    if not args.alertmapd or not args.loadgen:
        ap.error("--alertmapd and --loadgen are required (bench/ingest/run passes them)")
    phases = set(args.phases.split(","))
    need = ["wrk", "psql"] + (["pgbench"] if "reference" in phases else [])
    missing = [t for t in need if not shutil.which(t)]
    if missing:
        print("bench/ingest: %s not installed (scripts/deps installs them)" % ", ".join(missing),
              file=sys.stderr)
        return 1
    if "reference" in phases:
        for f in ("schema.sql", "batch.sql", "one.sql"):
            if not os.path.isfile(os.path.join(args.reference, f)):
                sys.exit("bench/ingest: no %s in %s (give the reference folder)" % (f, args.reference))
    b = Bench(args, mode)
    t = time.monotonic()
    ok = False
    try:
        b.run(phases)
        ok = True
    finally:
        if args.keep or not ok:
            log("kept %s" % b.work)
        else:
            shutil.rmtree(b.work, ignore_errors=True)
    res = b.res
    res["machine"] = machine()
    res["seconds"] = round(time.monotonic() - t, 1)
    os.makedirs(args.out, exist_ok=True)
    stamp = res["started_at"].replace(":", "").replace("-", "")
    out = os.path.join(args.out, "ingest-%s-%s.json" % (mode, stamp))
    with open(out, "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")
    shutil.copyfile(out, os.path.join(args.out, "ingest-%s.json" % mode))
    png = os.path.join(args.out, "ingest-%s-latency.png" % mode)
    report(res)
    print("")
    print("  results: %s" % out)
    if not args.no_plot and plot(res, png):
        print("  plot:    %s" % png)
    print("  took %.0f s" % res["seconds"])
    bad = checks(res)
    for b_ in bad:
        print("  check FAILED: " + b_)
    if args.check:
        if bad:
            return 1
        print("  checks: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
