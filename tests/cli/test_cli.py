#!/usr/bin/env python3
"""CLI tests: run the built `alertmap` binary the way a user does and check
what a user would check (stdout, stderr, exit status).

usage: test_cli.py GROUP PATH-TO-ALERTMAP
GROUP is one of: usage, check, test, normalize, extract.
Needs ALERTMAP_SOURCE_ROOT (set by meson) for the shipped mappings and the
fixtures in tests/cli/data.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.environ.get("ALERTMAP_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "tests", "cli", "data")
GOOD = os.path.join(DATA, "good")
BROKEN = os.path.join(DATA, "broken")
SHIPPED = os.path.join(ROOT, "mappings")
RULES = os.path.join(SHIPPED, "rules", "indicators.yaml")
NOW = "2024-06-01T00:00:00Z"

ALERTMAP = None
failures = []


def run(*args, stdin=None, env=None, cwd=None):
    e = dict(os.environ)
    e.pop("ALERTMAP_MAPPINGS", None)
    if env:
        e.update(env)
    p = subprocess.run([ALERTMAP, *args], input=stdin, capture_output=True, env=e, cwd=cwd,
                       timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def check(cond, what, *context):
    if not cond:
        failures.append(what)
        print("FAIL:", what)
        for c in context:
            print("    " + str(c).replace("\n", "\n    "))
    else:
        print("ok:  ", what)


def fingerprint(title, source, indicators):
    h = hashlib.sha256()
    h.update(title.encode() + b"\0" + source.encode() + b"\0")
    for t, v in sorted(((i["type"], i["value"]) for i in indicators),
                       key=lambda x: (x[0].encode(), x[1].encode())):
        h.update(t.encode() + b"\x01" + v.encode() + b"\0")
    return h.hexdigest()


def shipped_sources():
    return sorted(f for f in os.listdir(SHIPPED) if f.endswith((".yaml", ".yml")))


# ---- usage -------------------------------------------------------------------

def group_usage():
    rc, out, err = run("--help")
    check(rc == 0, "--help exits 0", rc, err)
    for word in ("check", "test", "normalize", "extract", "Exit status", "ALERTMAP_MAPPINGS"):
        check(word in out, f"--help mentions {word}", out)
    check(re.search(r"^\s*2\s+normalize rejected", out, re.M) is not None,
          "--help documents exit status 2", out)

    rc, out, err = run("--version")
    check(rc == 0 and re.fullmatch(r"alertmap \d+\.\d+\.\d+\n", out) is not None,
          "--version prints 'alertmap X.Y.Z'", rc, out, err)
    rc2, out2, _ = run("-V")
    check(rc2 == 0 and out2 == out, "-V is --version", out2)

    for cmd in ("check", "test", "normalize", "extract"):
        rc, out, err = run(cmd, "--help")
        check(rc == 0 and out.startswith(f"usage: alertmap {cmd}"),
              f"{cmd} --help prints its usage", rc, out, err)
        check("Exit status" in out, f"{cmd} --help documents exit status", out)
        rc2, out2, _ = run("help", cmd)
        check(rc2 == 0 and out2 == out, f"'help {cmd}' equals '{cmd} --help'")

    for opt in ("--now", "--provenance", "--mappings", "--raw", "--rules"):
        check(opt in run("normalize", "--help")[1], f"normalize --help documents {opt}")
    check("--types" in run("extract", "--help")[1], "extract --help documents --types")

    rc, out, err = run()
    check(rc == 2 and "usage: alertmap" in err, "no command: usage on stderr, exit 2", rc, err)
    rc, out, err = run("frobnicate")
    check(rc == 2 and "unknown command 'frobnicate'" in err, "unknown command exits 2", rc, err)
    rc, out, err = run("check", "-x")
    check(rc == 2 and "unknown option '-x'" in err, "unknown short option exits 2", rc, err)
    rc, out, err = run("check", "--bogus")
    check(rc == 2 and "unknown option '--bogus'" in err, "unknown option exits 2", rc, err)
    rc, out, err = run("normalize", "--mappings", GOOD)
    check(rc == 2 and "missing SOURCE" in err, "normalize without SOURCE exits 2", rc, err)
    rc, out, err = run("normalize", "demo", "a.json", "b.json")
    check(rc == 2 and "too many arguments" in err, "normalize with 3 args exits 2", rc, err)
    rc, out, err = run("normalize", "--now", "yesterday", "demo")
    check(rc == 2 and "--now needs an RFC 3339 time" in err, "bad --now exits 2", rc, err)
    rc, out, err = run("normalize", "--now")
    check(rc == 2 and "needs a value" in err, "--now without value exits 2", rc, err)
    rc, out, err = run("extract", "--types", "ip,ipv4", stdin=b"1.2.3.4")
    check(rc == 2 and "unknown indicator type 'ipv4'" in err, "unknown --types exits 2", rc, err)
    rc, out, err = run("help", "nothing")
    check(rc == 2, "help for an unknown command exits 2", rc)


# ---- check -------------------------------------------------------------------

def group_check():
    n = len(shipped_sources())
    rc, out, err = run("check", SHIPPED)
    check(rc == 0 and out == f"{n} mappings OK\n" and err == "",
          f"check of the shipped mappings: '{n} mappings OK'", rc, out, err)

    rc2, out2, err2 = run("check", cwd=ROOT)
    check((rc2, out2) == (rc, out), "check defaults to ./mappings", rc2, out2, err2)
    rc2, out2, err2 = run("check", env={"ALERTMAP_MAPPINGS": SHIPPED}, cwd="/")
    check((rc2, out2) == (rc, out), "check defaults to $ALERTMAP_MAPPINGS", rc2, out2, err2)

    rc, out, err = run("check", "--rules", RULES, GOOD)
    check(rc == 0 and out == "2 mappings OK\n", "check of a fixture directory", rc, out, err)
    rc, out, err = run("check", "--rules", RULES, os.path.join(GOOD, "demo.yaml"))
    check(rc == 0 and out == "1 mapping OK\n", "check of one file", rc, out, err)
    rc, out, err = run("check", "--rules", RULES, GOOD, os.path.join(SHIPPED, "generic.yaml"))
    check(rc == 0 and out == "3 mappings OK\n", "check of a directory and a file", rc, out, err)

    broken = os.path.join(BROKEN, "broken.yaml")
    rc, out, err = run("check", "--rules", RULES, BROKEN)
    check(rc == 1, "check of a broken mapping exits 1", rc, out, err)
    check(out == "", "nothing on stdout when check fails", out)
    diags = [l for l in err.splitlines() if re.match(r".*broken\.yaml:\d+:\d+: ", l)]
    check(len(diags) >= 4, "every problem of the file is reported at once", err)
    check(any(l.endswith("broken.yaml:3:1: unknown key 'feilds' (expected one of: source, "
                         "display_name, signature, match, split, fields, indicators, samples)")
              or re.search(r"broken\.yaml:3:1: unknown key 'feilds'", l) for l in diags),
          "unknown key reported at 3:1", err)
    check(any(re.search(r"broken\.yaml:5:\d+: 'match' must be a list, got a mapping", l)
              for l in diags), "mistyped key reported on line 5", err)
    check(any(re.search(r"broken\.yaml:7:\d+: unknown indicator type 'ipv4'", l)
              for l in diags), "unknown indicator type reported on line 7", err)
    check(any(re.search(r"broken\.yaml:8:\d+: named group 'user' is not an indicator type", l)
              for l in diags), "bad named group reported on line 8", err)
    check(any(l.endswith("broken.yaml:10:11: unknown signature scheme 'hmac-md5' (expected one "
                         "of: hmac-sha256, hmac-sha1, token, query-token)") for l in diags),
          "signature scheme error at 10:11", err)
    check(any(re.search(r"broken\.yaml:12:15: 'secret_env' must name an environment variable", l)
              for l in diags), "secret_env error at 12:15", err)
    check("my secret value" not in err, "a secret pasted into a mapping is not echoed", err)
    lines = [int(re.search(r"broken\.yaml:(\d+):", l).group(1)) for l in diags]
    check(lines == sorted(lines), "diagnostics are sorted by position", err)
    check(re.search(r"alertmap check: \d+ problems? found", err) is not None,
          "a summary line counts the problems", err)

    rc, out, err = run("check", "--rules", RULES, broken, GOOD)
    check(rc == 1 and "broken.yaml:3:1:" in err, "one broken path fails the whole check", rc,
          err)

    rc, out, err = run("check", "/nonexistent/alertmap-mappings")
    check(rc == 1 and "/nonexistent/alertmap-mappings: cannot read" in err,
          "a missing path is an error", rc, err)

    with tempfile.TemporaryDirectory() as tmp:
        rules = os.path.join(tmp, "bad-rules.yaml")
        with open(rules, "w") as f:
            f.write("rules: [\n")
        rc, out, err = run("check", "--rules", rules, GOOD)
        check(rc == 1 and "bad-rules.yaml:" in err, "a broken rule file is reported", rc, err)


# ---- test --------------------------------------------------------------------

def group_test():
    rc, out, err = run("test", SHIPPED)
    n = len(shipped_sources())
    check(rc == 0, "the shipped mappings pass their samples", rc, out, err)
    for src in shipped_sources():
        name = src.rsplit(".", 1)[0]
        check(re.search(rf"^PASS {re.escape(name)} \(\d+ samples?\)$", out, re.M) is not None,
              f"a PASS line for {name}", out)
    check(re.search(rf"^{n} mappings, \d+ samples: all passed$", out, re.M) is not None,
          "a summary line", out)

    rc, out, err = run("test", "--rules", RULES, GOOD)
    check(rc == 0 and "PASS demo (2 samples)" in out and "PASS batch (1 sample)" in out,
          "fixture samples pass", rc, out, err)

    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "m")
        shutil.copytree(GOOD, d)
        exp = os.path.join(d, "samples", "demo", "basic.expected.json")
        with open(exp) as f:
            doc = json.load(f)
        doc["alerts"][0]["severity"] = "Low"
        doc["alerts"][0]["tags"] = ["c2"]
        with open(exp, "w") as f:
            json.dump(doc, f, indent=2)
        rc, out, err = run("test", "--rules", RULES, d)
        check(rc == 1, "a mismatching sample exits 1", rc, out, err)
        check("FAIL demo (1 of 2 samples)" in out, "a FAIL line names the mapping", out)
        check("PASS batch (1 sample)" in out, "other mappings still run", out)
        check("basic.expected.json" in out, "the diff names the expected file", out)
        check("severity" in out and "Critical" in out and "Low" in out,
              "the diff shows the field, expected and actual values", out)
        check(re.search(r"^2 mappings, 3 samples: 1 failed in 1 mapping$", out, re.M)
              is not None, "the summary counts the failure", out)

        # a sample without expected output is a failure too, not silently skipped
        os.remove(exp)
        rc, out, err = run("test", "--rules", RULES, d)
        check(rc == 1 and "FAIL demo" in out, "a missing expected file fails", rc, out, err)

    rc, out, err = run("test", "--rules", RULES, BROKEN)
    check(rc == 1 and "broken.yaml:3:1:" in err and "do not compile" in err,
          "test of a broken mapping exits 1 with diagnostics", rc, out, err)


# ---- normalize -----------------------------------------------------------------

def normalize(*args, stdin=None, mappings=GOOD):
    return run("normalize", "--mappings", mappings, "--rules", RULES, "--now", NOW, *args,
               stdin=stdin)


def group_normalize():
    basic = os.path.join(GOOD, "samples", "demo", "basic.json")
    rc, out, err = normalize("demo", basic)
    check(rc == 0, "normalize of a good payload exits 0", rc, out, err)
    doc = json.loads(out) if rc == 0 else {"alerts": [{}]}
    check(list(doc) == ["alerts"] and len(doc["alerts"]) == 1, "{\"alerts\":[one alert]}", out)
    a = doc["alerts"][0]
    keys = list(a)
    check(keys[:8] == ["title", "severity", "occurred_at", "occurred_at_fallback",
                       "source_name", "description", "tags", "detection_rule_ref"]
          and keys[-2:] == ["fingerprint", "indicators"], "keys in the documented order", keys)
    check(a.get("title") == "Beacon to known C2", "title", a)
    check(a.get("severity") == "Critical", "severity through the map", a)
    check(a.get("occurred_at") == "2024-05-01T10:00:00.25Z"
          and a.get("occurred_at_fallback") is False, "occurred_at in UTC with Z", a)
    check(a.get("tags") == ["c2", "network"], "tags", a)
    check(a.get("detection_rule_ref") == "R-7", "detection_rule_ref", a)
    check(a.get("src_ip") == "10.0.0.5" and "dst_ip" not in a, "optional fields when set", a)
    iocs = a.get("indicators", [])
    check([(i["type"], i["value"], i["source_field"]) for i in iocs] ==
          [("ip", "203.0.113.9", "dst"),
           ("hash_sha256", "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9",
            "file.sha256"),
           ("ip", "10.0.0.5", "src_ip")], "indicators in extraction order, canonical", iocs)
    check(a.get("fingerprint") == fingerprint(a.get("title", ""), "demo", iocs),
          "fingerprint as specified", a.get("fingerprint"))
    check(out.startswith('{\n  "alerts": [\n    {\n      "title"'), "pretty-printed output",
          out[:80])
    with open(os.path.join(GOOD, "samples", "demo", "basic.expected.json")) as f:
        check(doc == json.load(f), "equal to the sample's expected output")

    with open(basic, "rb") as f:
        body = f.read()
    rc2, out2, _ = normalize("demo", "-", stdin=body)
    check(rc2 == 0 and out2 == out, "'-' reads stdin", rc2)
    rc2, out2, _ = normalize("demo", stdin=body)
    check(rc2 == 0 and out2 == out, "no FILE reads stdin", rc2)
    rc2, out2, _ = normalize("--compact", "demo", basic)
    check(rc2 == 0 and "\n" not in out2.rstrip("\n") and json.loads(out2) == doc,
          "--compact prints one line", out2)

    rc, out, err = normalize("--provenance", "demo", basic)
    p = json.loads(out)["alerts"][0] if rc == 0 else {}
    prov = p.get("provenance", {})
    check(rc == 0 and isinstance(prov, dict) and "demo.yaml" in prov.get("title", ""),
          "--provenance names the rule of each field", out)
    check(all("origin" in i for i in p.get("indicators", [{}])),
          "--provenance adds an origin per indicator", p.get("indicators"))
    rc, out, err = normalize("--raw", "demo", basic)
    check(rc == 0 and json.loads(out)["alerts"][0].get("raw_payload") == json.loads(body),
          "--raw adds the payload", rc, err)

    # fixed ingest time when the payload has no event time
    rc, out, err = normalize("demo", stdin=b'{"title": "t", "level": "High"}')
    a = json.loads(out)["alerts"][0] if rc == 0 else {}
    check(a.get("occurred_at") == NOW and a.get("occurred_at_fallback") is True,
          "--now is the fallback time, flagged", out, err)
    check(a.get("severity") == "High" and a.get("description") is None and a.get("tags") == []
          and a.get("indicators") == [], "absent fields are null/empty", a)
    rc, out, err = normalize("demo", stdin=b'{"title": "t", "time": "2024-02-30T00:00:00Z"}')
    a = json.loads(out)["alerts"][0] if rc == 0 else {}
    check(a.get("occurred_at") == NOW and a.get("occurred_at_fallback") is True,
          "an invalid event time falls back, flagged", out, err)
    rc, out, err = normalize("demo", stdin=b'{"title": "t", "time": "1714557600123"}')
    a = json.loads(out)["alerts"][0] if rc == 0 else {}
    check(a.get("occurred_at") == "2024-05-01T10:00:00.123Z", "epoch ms string", out, err)

    # split: one alert per element
    rc, out, err = normalize("batch", os.path.join(GOOD, "samples", "batch", "two.json"))
    alerts = json.loads(out)["alerts"] if rc == 0 else []
    check(rc == 0 and [x["title"] for x in alerts] == ["first", "Unnamed event"],
          "split yields one alert per element", out, err)

    # rejected payloads: error JSON on stdout, exit 2
    def rejected(what, code, payload=None, source="demo", msg=None):
        rc, out, err = normalize(source, stdin=payload if payload is not None else b"{}")
        try:
            doc = json.loads(out)
        except ValueError:
            doc = {}
        e = doc.get("error", {}) if isinstance(doc, dict) else {}
        ok = rc == 2 and list(doc) == ["error"] and e.get("code") == code and \
            isinstance(e.get("message"), str) and e["message"] != ""
        if msg is not None:
            ok = ok and re.search(msg, e.get("message", "")) is not None
        check(ok, what, rc, out, err)

    rejected("match failure: INVALID_PAYLOAD naming the rule", "INVALID_PAYLOAD",
             b'{"level": "High"}', msg=r"has-title.*demo\.yaml:\d+")
    rejected("invalid JSON: INVALID_JSON", "INVALID_JSON", b'{"title": ', msg=r"line 1")
    rejected("empty input: INVALID_JSON", "INVALID_JSON", b"")
    rejected("an array: INVALID_PAYLOAD", "INVALID_PAYLOAD", b"[1, 2]", msg="got an array")
    rejected("a string: INVALID_PAYLOAD", "INVALID_PAYLOAD", b'"x"', msg="got a string")
    rejected("unknown source: UNKNOWN_SOURCE", "UNKNOWN_SOURCE", b'{"title":"t"}', "nope",
             msg=r"unknown source 'nope' \(known: batch, demo\)")
    rejected("split without the array", "INVALID_PAYLOAD", b'{"x": 1}', "batch")
    deep = b'{"title":"t","a":' + b"[" * 5000 + b"]" * 5000 + b"}"
    rc, out, err = normalize("demo", stdin=deep)
    check(rc == 2 and json.loads(out or "{}").get("error", {}).get("code") in
          ("INVALID_JSON", "LIMIT_EXCEEDED", "INVALID_PAYLOAD"),
          "deeply nested payload is rejected, not a crash", rc, out, err)

    rc, out, err = normalize("demo", "/nonexistent/payload.json")
    check(rc == 1 and "/nonexistent/payload.json" in err and out == "",
          "an unreadable payload file exits 1", rc, out, err)
    rc, out, err = normalize("demo", stdin=b"{}", mappings=BROKEN)
    check(rc == 1 and "broken.yaml:3:1:" in err and out == "",
          "broken mappings: diagnostics, exit 1", rc, out, err)

    # the shipped samples through the CLI equal their expected files
    for src in shipped_sources():
        name = src.rsplit(".", 1)[0]
        sdir = os.path.join(SHIPPED, "samples", name)
        if not os.path.isdir(sdir):
            continue
        for fn in sorted(os.listdir(sdir)):
            if not fn.endswith(".json") or fn.endswith(".expected.json"):
                continue
            rc, out, err = run("normalize", "--mappings", SHIPPED, "--now", NOW, name,
                               os.path.join(sdir, fn))
            with open(os.path.join(sdir, fn[:-5] + ".expected.json")) as f:
                want = json.load(f)
            got = json.loads(out) if out else None
            check(rc == (2 if "error" in want else 0) and matches(got, want),
                  f"shipped sample {name}/{fn}", rc, out, err)


def matches(got, want):
    if want == "$dynamic":
        return True
    if isinstance(want, dict):
        return isinstance(got, dict) and list(got) == list(want) and \
            all(matches(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and \
            all(matches(g, w) for g, w in zip(got, want))
    return got == want and type(got) == type(want)


# ---- extract -------------------------------------------------------------------

def group_extract():
    text = (b"Beacon to hxxps://evil-cdn[.]example[.]com/payload.exe from 203.0.113.9:4444;\n"
            b"dropper invoice.pdf version 10.2.3.4.5 hash "
            b"D41D8CD98F00B204E9800998ECF8427E, mail billing[at]example.com\n")
    rc, out, err = run("extract", "--rules", RULES, stdin=text)
    check(rc == 0, "extract exits 0", rc, out, err)
    found = json.loads(out) if rc == 0 else []
    pairs = [(x.get("type"), x.get("value")) for x in found]
    check(all(list(x) == ["type", "value"] for x in found), "entries are {type, value}", found)
    for want in [("url", "https://evil-cdn.example.com/payload.exe"),
                 ("domain", "evil-cdn.example.com"), ("ip", "203.0.113.9"),
                 ("hash_md5", "d41d8cd98f00b204e9800998ecf8427e"),
                 ("email", "billing@example.com")]:
        check(want in pairs, f"finds {want[0]} {want[1]}", pairs)
    check(not any(v in ("invoice.pdf", "10.2.3.4", "2.3.4.5") for _, v in pairs),
          "no file names or version strings", pairs)
    check(len(pairs) == len(set(pairs)), "de-duplicated", pairs)

    rc, out, err = run("extract", "--rules", RULES, "--types", "ip,hash_md5", stdin=text)
    types = {x["type"] for x in json.loads(out)} if rc == 0 else set()
    check(rc == 0 and types == {"ip", "hash_md5"}, "--types filters", out, err)

    rc, out, err = run("extract", "--rules", RULES, stdin=b"nothing to see here")
    check(rc == 0 and json.loads(out) == [], "no indicators: []", rc, out, err)
    rc, out, err = run("extract", "--rules", RULES, "--compact", stdin=b"")
    check(rc == 0 and out == "[]\n", "empty input, --compact: []", rc, out, err)

    with tempfile.NamedTemporaryFile(suffix=".txt") as f:
        f.write(text)
        f.flush()
        rc2, out2, _ = run("extract", "--rules", RULES, f.name)
        rc3, out3, _ = run("extract", "--rules", RULES, stdin=text)
        check(rc2 == 0 and out2 == out3, "a FILE argument works like stdin", out2)

    rc2, out2, err2 = run("extract", stdin=text, env={"ALERTMAP_MAPPINGS": SHIPPED}, cwd="/")
    check(rc2 == 0 and out2 == out3, "default rules from $ALERTMAP_MAPPINGS", rc2, err2)
    rc2, out2, err2 = run("extract", stdin=text, cwd=ROOT)
    check(rc2 == 0 and out2 == out3, "default rules from ./mappings", rc2, err2)
    rc, out, err = run("extract", "--rules", "/nonexistent/rules.yaml", stdin=text)
    check(rc == 1 and "/nonexistent/rules.yaml" in err, "a missing rule file exits 1", rc, err)


def main():
    global ALERTMAP
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    group, ALERTMAP = sys.argv[1], os.path.abspath(sys.argv[2])
    groups = {"usage": group_usage, "check": group_check, "test": group_test,
              "normalize": group_normalize, "extract": group_extract}
    if group not in groups:
        print(f"unknown group {group}")
        return 2
    groups[group]()
    print(f"{len(failures)} failed" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
