#!/usr/bin/env python3
"""corpus_check.py - runs the shipped mappings over a corpus of real webhook
payloads and reports, per source, how many normalize as their expect.json says.

    tests/tools/corpus_check.py --alertmap build/cli/alertmap \\
        --mappings mappings --corpus ../shared/corpus/real [--verbose] [--min N]

The corpus folder holds one sub-folder per source (README.md, SOURCE.md,
expect.json, provenance.json and one *.json request body per file). A mapping
is checked against the folder named like its `source:` (source: guardduty <->
corpus/guardduty); a folder without a mapping counts every payload as failed.

Each payload runs through `alertmap normalize` (ingest time fixed, so a missing
event time is visible as occurred_at_fallback). A payload passes when it is
accepted and every claim of its expect.json entry holds:

  title            equal to the alert's title;
  occurred_at      the same instant as the alert's occurred_at, within 1 ms,
                   and the alert did not fall back to the ingest time;
  severity_vendor  the vendor's raw value, turned into alertmap's level by the
                   vendor scale of that source (SCALES below, from SOURCE.md);
                   the alert's severity must be that level;
  indicators_some  every (type, value) pair is among the alert's indicators:
                   ip compared as addresses, url exactly, the rest ignoring case;
  alerts           a batch: exactly one alert per entry, compared in order; a
                   batch-level "title" (Grafana's notification title) is the
                   title of every alert whose entry states none.

An empty entry claims nothing: the payload passes when it is accepted,
acknowledged or cleanly rejected (INVALID_PAYLOAD). A payload with claims
passes only when accepted. Output of the form {"acknowledged": {...}} (a
delivery answered 200 and not stored, see docs/language-additions.md) passes
an empty entry and fails any entry with claims.

Request headers: some senders say what a body is only in a header
(X-GitHub-Event). request_headers() reads them from provenance.json; they are
passed to `alertmap normalize --header NAME:VALUE` once the CLI has that
option (its --help mentions --header), and ignored before.

Exit status: 0 when at least --min payloads pass (default 0), 1 otherwise,
2 on a usage error.
"""

import argparse
import datetime
import ipaddress
import json
import os
import re
import subprocess
import sys

NOW = "2024-05-01T10:00:00Z"

# Vendor severity scales, one per corpus source, as data. Each scale has
# "words" (case-insensitive vendor words -> alertmap level) and/or "ranges"
# (half-open [from, below) numeric ranges -> level); a number is looked up in
# the ranges, a string first in the words and then, when it reads as a number,
# in the ranges. A vendor value the scale does not know has no expected level
# and fails the payload (say so in the scale rather than guess).
LEVELS = ("Pending", "Informational", "Low", "Medium", "High", "Critical")
INF = float("inf")

SCALES = {
    # github/SOURCE.md: code scanning security_severity_level low/medium/high/
    # critical, else rule.severity none/note/warning/error (a linter level:
    # error is the strongest); Dependabot medium, advisory database moderate.
    "github": {"words": {"low": "Low", "medium": "Medium", "moderate": "Medium",
                         "high": "High", "critical": "Critical",
                         "none": "Informational", "note": "Low",
                         "warning": "Medium", "error": "High"}},
    # alertmanager/SOURCE.md: labels.severity is free text (critical, major,
    # warning, ...); the words of mappings/alertmanager.yaml.
    "alertmanager": {"words": {"critical": "Critical", "high": "High", "major": "High",
                               "error": "High", "page": "High", "warning": "Medium",
                               "warn": "Medium", "medium": "Medium", "minor": "Low",
                               "low": "Low", "info": "Informational",
                               "informational": "Informational", "notice": "Informational",
                               "none": "Informational"}},
    # grafana/SOURCE.md: no severity by default; a rule's severity label is
    # read like Alertmanager's.
    "grafana": {"words": {"critical": "Critical", "high": "High", "major": "High",
                          "error": "High", "warning": "Medium", "medium": "Medium",
                          "minor": "Low", "low": "Low", "info": "Informational"}},
    # pagerduty/SOURCE.md: urgency and priority are not severities; expect.json
    # claims none. P1..P5 is read like Opsgenie's should a claim appear.
    "pagerduty": {"words": {"p1": "Critical", "p2": "High", "p3": "Medium", "p4": "Low",
                            "p5": "Informational"}},
    # opsgenie/SOURCE.md: priority P1..P5 (P1 highest); Zulip's capture has the
    # integer 3, read as P3.
    "opsgenie": {"words": {"p1": "Critical", "p2": "High", "p3": "Medium", "p4": "Low",
                           "p5": "Informational"},
                 "ranges": [(1, 2, "Critical"), (2, 3, "High"), (3, 4, "Medium"),
                            (4, 5, "Low"), (5, 6, "Informational")]},
    # splunk/SOURCE.md: ES urgency informational/low/medium/high/critical/unknown.
    "splunk": {"words": {"informational": "Informational", "info": "Informational",
                         "low": "Low", "medium": "Medium", "high": "High",
                         "critical": "Critical", "unknown": "Pending"}},
    # sentry/SOURCE.md: level fatal/error/warning/info/debug.
    "sentry": {"words": {"fatal": "Critical", "error": "High", "warning": "Medium",
                         "info": "Informational", "debug": "Informational"}},
    # falco/SOURCE.md: priority Emergency, Alert, Critical, Error, Warning,
    # Notice, Informational, Debug (syslog levels, highest first).
    "falco": {"words": {"emergency": "Critical", "alert": "Critical", "critical": "Critical",
                        "error": "High", "warning": "Medium", "notice": "Low",
                        "informational": "Informational", "info": "Informational",
                        "debug": "Informational"}},
    # suricata/SOURCE.md: alert.severity integer, 1 = highest (1 High, 2
    # Medium, 3 Low; 4 and above, used by few rule sets, Informational).
    "suricata": {"ranges": [(1, 2, "High"), (2, 3, "Medium"), (3, 4, "Low"),
                            (4, 256, "Informational")]},
    # zeek/SOURCE.md: no severity in Zeek.
    "zeek": {},
    # sentinel/SOURCE.md: properties.severity High/Medium/Low/Informational.
    "sentinel": {"words": {"high": "High", "medium": "Medium", "low": "Low",
                           "informational": "Informational"}},
    # elastic/SOURCE.md: kibana.alert.severity low/medium/high/critical.
    "elastic": {"words": {"low": "Low", "medium": "Medium", "high": "High",
                          "critical": "Critical"}},
    # guardduty/SOURCE.md: a number 1.0-10.0; Low < 4, Medium 4-6.9, High 7-8.9,
    # Critical 9-10.
    "guardduty": {"ranges": [(0, 4, "Low"), (4, 7, "Medium"), (7, 9, "High"),
                             (9, 10.000001, "Critical")]},
    # crowdstrike/SOURCE.md: SeverityName when present; numeric Severity is 1-5
    # in the legacy DetectionSummaryEvent and 0-100 in EPP (30 Low, 70 High).
    # A number above 5 is read on the EPP scale (Falcon's steps are 10, 30, 50,
    # 70, 90), 1-5 on the legacy one.
    "crowdstrike": {"words": {"informational": "Informational", "low": "Low",
                              "medium": "Medium", "high": "High", "critical": "Critical"},
                    "ranges": [(1, 2, "Informational"), (2, 3, "Low"), (3, 4, "Medium"),
                               (4, 5, "High"), (5, 6, "Critical"),
                               (6, 20, "Informational"), (20, 40, "Low"),
                               (40, 60, "Medium"), (60, 80, "High"), (80, 101, "Critical")]},
    # okta/SOURCE.md: severity DEBUG/INFO/WARN/ERROR.
    "okta": {"words": {"debug": "Informational", "info": "Informational", "warn": "Medium",
                       "error": "High"}},
    # datadog/SOURCE.md: none in the default template ($ALERT_PRIORITY P1..P5
    # only when the user adds it).
    "datadog": {"words": {"p1": "Critical", "p2": "High", "p3": "Medium", "p4": "Low",
                          "p5": "Informational"}},
    # gcp_scc/SOURCE.md: finding.severity CRITICAL/HIGH/MEDIUM/LOW, absent in
    # older findings (SEVERITY_UNSPECIFIED is the API's "not set").
    "gcp_scc": {"words": {"critical": "Critical", "high": "High", "medium": "Medium",
                          "low": "Low", "severity_unspecified": "Pending"}},
    # ms_graph_security/SOURCE.md: informational/low/medium/high (lowercase);
    # unknown is the API's "not set".
    "ms_graph_security": {"words": {"informational": "Informational", "low": "Low",
                                    "medium": "Medium", "high": "High",
                                    "unknown": "Pending"}},
    # defender_endpoint/SOURCE.md: Informational/Low/Medium/High.
    "defender_endpoint": {"words": {"informational": "Informational", "low": "Low",
                                    "medium": "Medium", "high": "High",
                                    "unspecified": "Pending"}},
}


def expected_level(source, vendor):
    """alertmap's level for a vendor severity value, or None when unknown."""
    scale = SCALES.get(source, {})
    if isinstance(vendor, bool):
        vendor = str(vendor).lower()
    if isinstance(vendor, str):
        w = scale.get("words", {}).get(vendor.strip().lower())
        if w is not None:
            return w
        try:
            vendor = float(vendor)
        except ValueError:
            return None
    if isinstance(vendor, (int, float)):
        for lo, hi, level in scale.get("ranges", []):
            if lo <= vendor < hi:
                return level
    return None


_TIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?"
                   r"(Z|z|[+-]\d\d:?\d\d)?$")


def instant_ns(text):
    """Nanoseconds since the epoch of an RFC 3339 time, or None."""
    if not isinstance(text, str):
        return None
    m = _TIME.match(text.strip())
    if not m:
        return None
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    try:
        base = datetime.datetime(y, mo, d, h, mi, s, tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    off = 0
    z = m.group(8)
    if z and z not in ("Z", "z"):
        digits = z[1:].replace(":", "")
        off = (int(digits[:2]) * 60 + int(digits[2:])) * 60 * (1 if z[0] == "+" else -1)
    frac = int((m.group(7) or "").ljust(9, "0") or 0)
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    secs = (base - epoch) // datetime.timedelta(seconds=1) - off
    return secs * 1_000_000_000 + frac


def same_indicator(kind, want, got):
    if kind == "ip":
        try:
            return ipaddress.ip_address(want) == ipaddress.ip_address(got)
        except ValueError:
            return False
    if kind == "url":
        return want == got
    return want.casefold() == got.casefold()


def check_alert(source, claim, alert, batch_title=None):
    """Mismatches (list of text) between one expect.json claim and one alert."""
    bad = []
    title = claim.get("title", batch_title)
    if title is not None and alert.get("title") != title:
        bad.append("title: expected %r, got %r" % (title, alert.get("title")))
    if "occurred_at" in claim:
        want, got = instant_ns(claim["occurred_at"]), instant_ns(alert.get("occurred_at"))
        if alert.get("occurred_at_fallback"):
            bad.append("occurred_at: expected %s, got the ingest time (occurred_at_fallback)"
                       % claim["occurred_at"])
        elif want is None or got is None or abs(want - got) > 1_000_000:
            bad.append("occurred_at: expected %s, got %s" % (claim["occurred_at"],
                                                             alert.get("occurred_at")))
    if "severity_vendor" in claim:
        level = expected_level(source, claim["severity_vendor"])
        if level is None:
            bad.append("severity: vendor value %r is not on the %s scale of corpus_check.py"
                       % (claim["severity_vendor"], source))
        elif alert.get("severity") != level:
            bad.append("severity: vendor %r is %s, got %s" % (claim["severity_vendor"], level,
                                                              alert.get("severity")))
    iocs = alert.get("indicators") or []
    for kind, value in claim.get("indicators_some", []):
        if not any(i.get("type") == kind and isinstance(i.get("value"), str)
                   and same_indicator(kind, value, i["value"]) for i in iocs):
            bad.append("indicator missing: %s %s" % (kind, value))
    return bad


def check_payload(source, claim, out):
    """Mismatches of one normalize output against its expect.json entry."""
    if out is None:
        return ["alertmap normalize failed (no JSON on stdout)"]
    if "acknowledged" in out:
        return [] if not claim else ["acknowledged without storing, but expect.json claims "
                                     "an alert"]
    if "error" in out:
        err = out["error"]
        if not claim and err.get("code") == "INVALID_PAYLOAD":
            return []
        return ["rejected: %s: %s" % (err.get("code"), err.get("message"))]
    alerts = out.get("alerts") or []
    if not claim:
        return []
    if "alerts" in claim:
        want = claim["alerts"]
        if len(alerts) != len(want):
            return ["batch: expected %d alerts, got %d" % (len(want), len(alerts))]
        bad = []
        for i, (c, a) in enumerate(zip(want, alerts)):
            bad += ["alerts[%d].%s" % (i, m)
                    for m in check_alert(source, c, a, claim.get("title"))]
        return bad
    if len(alerts) != 1:
        return ["expected one alert, got %d" % len(alerts)]
    return check_alert(source, claim, alerts[0])


_KIND_HEADER = re.compile(r"\b([A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)+): ([A-Za-z0-9_.-]+)")


def request_headers(provenance, name):
    """Headers the sender would have sent with this body, from provenance.json
    ("kind": "webhook body (X-GitHub-Event: code_scanning_alert)")."""
    for p in provenance:
        if p.get("name") == name:
            return dict(_KIND_HEADER.findall(p.get("kind", "")))
    return {}


def mapping_sources(mappings):
    """{source name: mapping file} of the mappings directory."""
    out = {}
    for f in sorted(os.listdir(mappings)):
        if not f.endswith((".yaml", ".yml")):
            continue
        path = os.path.join(mappings, f)
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                m = re.match(r"source\s*:\s*['\"]?([a-z0-9][a-z0-9_-]*)", line)
                if m:
                    out[m.group(1)] = path
                    break
    return out


def cli_takes_headers(alertmap):
    r = subprocess.run([alertmap, "normalize", "--help"], capture_output=True, text=True)
    return "--header" in r.stdout


def normalize(args, source, path, headers, with_headers):
    cmd = [args.alertmap, "normalize", "--mappings", args.mappings, "--now", NOW, "--compact"]
    if with_headers:
        for k, v in sorted(headers.items()):
            cmd += ["--header", "%s:%s" % (k, v)]
    cmd += [source, path]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return None


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--alertmap", required=True, help="the alertmap CLI binary")
    ap.add_argument("--mappings", required=True, help="mappings directory")
    ap.add_argument("--corpus", required=True, help="folder laid out like corpus/real")
    ap.add_argument("--verbose", "-v", action="store_true", help="list every mismatch")
    ap.add_argument("--min", type=int, default=0, help="fail when fewer payloads pass")
    ap.add_argument("--source", action="append", help="check only this corpus folder")
    args = ap.parse_args(argv)

    mapped = mapping_sources(args.mappings)
    with_headers = cli_takes_headers(args.alertmap)
    folders = sorted(d for d in os.listdir(args.corpus)
                     if os.path.isfile(os.path.join(args.corpus, d, "expect.json")))
    if args.source:
        folders = [d for d in folders if d in args.source]
    total = passed = 0
    rows = []
    for src in folders:
        d = os.path.join(args.corpus, src)
        with open(os.path.join(d, "expect.json"), encoding="utf-8") as fh:
            expect = json.load(fh)
        prov = []
        if os.path.isfile(os.path.join(d, "provenance.json")):
            with open(os.path.join(d, "provenance.json"), encoding="utf-8") as fh:
                prov = json.load(fh)
        n = ok = accepted = 0
        notes = []
        for f in sorted(expect):
            n += 1
            if src not in mapped:
                notes.append("%s: no mapping with source: %s" % (f, src))
                continue
            hdrs = request_headers(prov, f[:-5])
            out = normalize(args, src, os.path.join(d, f), hdrs, with_headers)
            if out is not None and "alerts" in out:
                accepted += 1
            bad = check_payload(src, expect[f], out)
            if bad:
                notes += ["%s: %s" % (f, b) for b in bad]
            else:
                ok += 1
        total += n
        passed += ok
        rows.append((src, n, accepted, ok, "yes" if src in mapped else "-"))
        if args.verbose and notes:
            for line in notes:
                print("  %s/%s" % (src, line))
    print("%-18s %8s %8s %8s %8s" % ("source", "payloads", "accepted", "correct", "mapping"))
    for r in rows:
        print("%-18s %8d %8d %8d %8s" % r)
    print("%-18s %8d %8s %8d" % ("total", total, "", passed))
    print("corpus: %d/%d payloads normalize as expected" % (passed, total))
    return 0 if passed >= args.min else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
