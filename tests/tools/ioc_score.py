#!/usr/bin/env python3
"""Scores `alertmap extract` against a case file of indicator records.

    tests/tools/ioc_score.py BINARY CASES.json [--rules FILE] [--failures]
                             [--only PREFIX] [--jobs N] [--json OUT]

A case file is one JSON array of records {id, text, expect, forbid, note,
origin}: `expect` lists [type, value] pairs that must be reported, `forbid`
pairs that must not. Each text is given to `BINARY extract --compact` on
stdin. A case passes when the run exits 0 within 2 s, every expected pair is
reported and no forbidden pair is. IPs are compared as parsed addresses, urls
exactly, every other type case-insensitively; forbidden pairs are compared
case-insensitively (ips as addresses).

Prints the cases passed by origin (the id prefix before the first '-') and
the pairs satisfied by type (expected and forbidden pairs together), then
with --failures each failing case with what was missing, what was forbidden
but reported, and what was reported. Exit status 0 when every case passes,
1 otherwise, 2 on a usage error.
"""
import argparse
import concurrent.futures
import ipaddress
import json
import os
import subprocess
import sys

TIMEOUT_S = 2.0


def norm(kind, value, exact_urls):
    if kind == "ip":
        try:
            return ipaddress.ip_address(value).compressed
        except ValueError:
            return value.lower()
    if kind == "url" and exact_urls:
        return value
    return value.lower()


def run_case(binary, rules, case):
    cmd = [binary, "extract", "--compact"]
    if rules:
        cmd += ["--rules", rules]
    try:
        p = subprocess.run(cmd, input=case["text"].encode("utf-8"),
                           capture_output=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": "timeout", "found": []}
    if p.returncode != 0:
        return {"error": "exit %d: %s" % (p.returncode,
                                           p.stderr.decode("utf-8", "replace").strip()),
                "found": []}
    try:
        found = [(o["type"], o["value"]) for o in json.loads(p.stdout)]
    except (ValueError, KeyError, TypeError) as e:
        return {"error": "bad output: %s" % e, "found": []}
    return {"error": None, "found": found}


def judge(case, res):
    exact = {(t, norm(t, v, True)) for t, v in res["found"]}
    loose = {(t, norm(t, v, False)) for t, v in res["found"]}
    missing = [[t, v] for t, v in case["expect"] if (t, norm(t, v, True)) not in exact]
    present = [[t, v] for t, v in case["forbid"] if (t, norm(t, v, False)) in loose]
    ok = res["error"] is None and not missing and not present
    return ok, missing, present


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary", help="the alertmap executable")
    ap.add_argument("cases", help="a case file (JSON array of records)")
    ap.add_argument("--rules", help="indicator rule file passed to extract")
    ap.add_argument("--failures", action="store_true", help="list every failing case")
    ap.add_argument("--only", help="score only the ids starting with this prefix")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--json", help="also write the scores as JSON to this file")
    args = ap.parse_args()

    with open(args.cases, encoding="utf-8") as f:
        cases = json.load(f)
    if args.only:
        cases = [c for c in cases if c["id"].startswith(args.only)]

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as ex:
        results = list(ex.map(lambda c: run_case(args.binary, args.rules, c), cases))

    by_origin = {}
    by_type = {}
    failures = []
    for case, res in zip(cases, results):
        ok, missing, present = judge(case, res)
        origin = case["id"].split("-", 1)[0]
        o = by_origin.setdefault(origin, [0, 0])
        o[0] += ok
        o[1] += 1
        for t, _ in case["expect"]:
            by_type.setdefault(t, [0, 0])[1] += 1
        for t, _ in case["forbid"]:
            by_type.setdefault(t, [0, 0])[1] += 1
        bad = {(t, v) for t, v in missing} | {(t, v) for t, v in present}
        if res["error"] is None:
            for t, v in case["expect"] + case["forbid"]:
                if (t, v) not in bad:
                    by_type[t][0] += 1
        if not ok:
            failures.append((case, res, missing, present))

    total = sum(o[0] for o in by_origin.values())
    print("cases: %d/%d" % (total, len(cases)))
    print("by origin: " + ", ".join("%s %d/%d" % (k, v[0], v[1])
                                     for k, v in sorted(by_origin.items())))
    print("by type:   " + ", ".join("%s %d/%d" % (k, v[0], v[1])
                                     for k, v in sorted(by_type.items())))
    if args.failures:
        for case, res, missing, present in failures:
            print("\nFAIL %s (%s)" % (case["id"], case["origin"]))
            print("  text:     %s" % json.dumps(case["text"], ensure_ascii=False)[:400])
            if res["error"]:
                print("  error:    %s" % res["error"])
            if missing:
                print("  missing:  %s" % json.dumps(missing, ensure_ascii=False))
            if present:
                print("  forbidden but found: %s" % json.dumps(present, ensure_ascii=False))
            print("  found:    %s" % json.dumps(res["found"], ensure_ascii=False)[:600])
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"cases": [total, len(cases)], "by_origin": by_origin,
                       "by_type": by_type,
                       "failures": [c["id"] for c, _, _, _ in failures]}, f, indent=1)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
