#!/usr/bin/python3
"""Validates the shipped mappings and sample outputs against the JSON Schemas.

  validate.py [--root DIR] [--alertmap PATH]

- every mappings/*.yaml against schemas/mapping.schema.json;
- every mappings/samples/<source>/*.expected.json: each alert against
  schemas/alert.schema.json (a "$dynamic" occurred_at is replaced by a valid
  time first), an error against the error shape; the fingerprint of every alert
  recomputed from its title, source_name and indicators (design.md layout);
  indicators unique on (type, value); every payload has an expected file and
  every expected file a payload;
- with --alertmap: the output of `alertmap normalize` for every sample payload
  against the same schemas (exit 0 with alerts, or exit 2 with an error);
- broken mappings and broken alerts written below must be rejected, so the
  schemas are known to catch what they claim to catch;
- every example of docs/mapping-language.md (a ```yaml block whose first line
  is "# example: NAME") is a whole mapping that the schema accepts and, with
  --alertmap, `alertmap check` compiles; a block that also has a line
  "# error: TEXT" must be refused by the compiler with TEXT in its message
  and by the schema (unless it has "# schema: accepts", for checks a JSON
  Schema cannot express).

Needs Debian's python3-yaml and python3-jsonschema (scripts/deps installs
them). Exit 0 when everything holds, 1 otherwise; each problem is printed as
one line naming the file.
"""

import argparse
import copy
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile

try:
    import jsonschema
    import yaml
except ImportError as e:  # a clear failure, never a silent skip
    print(f"validate.py: {e}; install python3-jsonschema and python3-yaml (scripts/deps)",
          file=sys.stderr)
    sys.exit(1)

PLACEHOLDER_TIME = "2000-01-01T00:00:00Z"
problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def validator(path):
    schema = load_json(path)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=jsonschema.FormatChecker())


def schema_errors(v, instance):
    return sorted(v.iter_errors(instance), key=lambda e: list(e.absolute_path))


def report(where, errors):
    for e in errors:
        loc = "/".join(str(p) for p in e.absolute_path) or "(root)"
        problem(where, f"{loc}: {e.message[:300]}")


def fingerprint(alert):
    h = hashlib.sha256()
    h.update(alert["title"].encode() + b"\0" + alert["source_name"].encode() + b"\0")
    pairs = sorted((i["type"].encode(), i["value"].encode()) for i in alert["indicators"])
    for t, v in pairs:
        h.update(t + b"\1" + v + b"\0")
    return h.hexdigest()


def check_output(where, doc, source, alert_v, dynamic_ok):
    """Checks one normalize output ({"alerts":[...]} or {"error":{...}})."""
    keys = {"alerts", "error", "acknowledged"}
    if not isinstance(doc, dict) or len(doc) != 1 or not (keys & doc.keys()):
        problem(where, 'expected exactly one key, "alerts", "error" or "acknowledged"')
        return
    if "acknowledged" in doc:
        ack = doc["acknowledged"]
        if not isinstance(ack, dict) or ack.get("status") != "ignored" or not ack.get("rule"):
            problem(where, 'acknowledged must be {"status": "ignored", "rule": NAME, ...}')
        return
    if "error" in doc:
        err = doc["error"]
        if (not isinstance(err, dict) or set(err) != {"code", "message"}
                or not all(isinstance(err[k], str) and err[k] for k in err)):
            problem(where, 'an error must be {"code": "...", "message": "..."}')
        return
    alerts = doc["alerts"]
    if not isinstance(alerts, list) or not alerts:
        problem(where, '"alerts" must be a non-empty array')
        return
    for n, alert in enumerate(alerts):
        w = f"{where}: alerts[{n}]"
        a = copy.deepcopy(alert)
        if dynamic_ok and isinstance(a, dict) and a.get("fingerprint") == "$fingerprint":
            a["fingerprint"] = fingerprint(a)  # samples may leave it to be computed
        if dynamic_ok and isinstance(a, dict) and a.get("occurred_at") == "$dynamic":
            if a.get("occurred_at_fallback") is not True:
                problem(w, '"$dynamic" occurred_at belongs to a fallback alert')
            a["occurred_at"] = PLACEHOLDER_TIME
        errors = schema_errors(alert_v, a)
        report(w, errors)
        if errors:
            continue
        if a["source_name"] != source:
            problem(w, f"source_name {a['source_name']!r}, expected {source!r}")
        iocs = a.get("indicators")
        if iocs is None:
            problem(w, "no indicators array")
            continue
        seen = set()
        for i in iocs:
            key = (i["type"], i["value"])
            if key in seen:
                problem(w, f"indicator {key} appears twice")
            seen.add(key)
        if fingerprint(a) != a["fingerprint"]:
            problem(w, f"fingerprint {a['fingerprint']} does not match title, source and "
                       f"indicators (expected {fingerprint(a)})")


def check_mappings(root, mapping_v):
    sources = {}
    files = sorted(glob.glob(os.path.join(root, "mappings", "*.yaml")))
    if not files:
        problem(os.path.join(root, "mappings"), "no mapping files")
    for path in files:
        with open(path, encoding="utf-8") as f:
            try:
                doc = yaml.safe_load(f)
            except yaml.YAMLError as e:
                problem(path, f"not YAML: {e}")
                continue
        errors = schema_errors(mapping_v, doc)
        report(path, errors)
        if not errors:
            folder = doc.get("samples", os.path.join("samples", doc["source"]))
            sources[doc["source"]] = os.path.join(os.path.dirname(path), folder)
    return sources


def check_samples(sources, alert_v, alertmap, mappings_dir):
    for source, folder in sorted(sources.items()):
        payloads = sorted(p for p in glob.glob(os.path.join(folder, "*.json"))
                          if not p.endswith((".expected.json", ".headers.json")))
        if not payloads:
            problem(folder, f"mapping '{source}' has no sample payloads")
        for exp in sorted(glob.glob(os.path.join(folder, "*.expected.json"))):
            if not os.path.exists(exp[: -len(".expected.json")] + ".json"):
                problem(exp, "expected output without a payload")
        for p in payloads:
            exp = p[: -len(".json")] + ".expected.json"
            if not os.path.exists(exp):
                problem(p, "payload without an .expected.json")
                continue
            try:
                check_output(exp, load_json(exp), source, alert_v, True)
            except (ValueError, OSError) as e:
                problem(exp, f"unreadable: {e}")
            if alertmap:
                run_normalize(alertmap, mappings_dir, source, p, alert_v)


def run_normalize(alertmap, mappings_dir, source, payload, alert_v):
    where = f"alertmap normalize {source} {os.path.basename(payload)}"
    cmd = [alertmap, "normalize", "--mappings", mappings_dir]
    hdrs = payload[: -len(".json")] + ".headers.json"
    if os.path.exists(hdrs):
        for k, v in sorted(load_json(hdrs).items()):
            cmd += ["--header", f"{k}: {v}"]
    r = subprocess.run(cmd + [source, payload], capture_output=True, text=True, timeout=60)
    if r.returncode not in (0, 2):
        problem(where, f"exit {r.returncode}: {r.stderr.strip()[:300]}")
        return
    try:
        doc = json.loads(r.stdout)
    except ValueError as e:
        problem(where, f"output is not JSON ({e}): {r.stdout[:200]!r}")
        return
    if (r.returncode == 2) != ("error" in doc):
        problem(where, f"exit {r.returncode} does not fit the output {r.stdout[:200]!r}")
    check_output(where, doc, source, alert_v, False)


# Cases the schemas must reject: each is (what, document).
GOOD_MAPPING = {"source": "demo", "fields": {"title": "title"}}
BAD_MAPPINGS = [
    ("misspelled top-level key", {"source": "demo", "feilds": {"title": "t"}}),
    ("no fields", {"source": "demo"}),
    ("no title", {"source": "demo", "fields": {"severity": "s"}}),
    ("unknown field", {"source": "demo", "fields": {"title": "t", "titel": "t"}}),
    ("bad source name", {"source": "Demo Source", "fields": {"title": "t"}}),
    ("two tests in one match rule",
     {"source": "demo", "match": [{"object": "a", "any": ["b"]}], "fields": {"title": "t"}}),
    ("match is a mapping", {"source": "demo", "match": {"object": "a"}, "fields": {"title": "t"}}),
    ("expression with path and const",
     {"source": "demo", "fields": {"title": {"path": "a", "const": "b"}}}),
    ("expression without a source", {"source": "demo", "fields": {"title": {"default": "x"}}}),
    ("map of lists", {"source": "demo", "fields": {"title": "t", "severity": {"path": "s", "map": {"a": ["b"]}}}}),
    ("unknown time format",
     {"source": "demo", "fields": {"title": "t", "occurred_at": {"path": "x", "time": "rfc822"}}}),
    ("unknown indicator type",
     {"source": "demo", "fields": {"title": "t"}, "indicators": [{"path": "a", "type": "ipv4"}]}),
    ("each without value",
     {"source": "demo", "fields": {"title": "t"}, "indicators": [{"each": "a[*]", "type": "ip"}]}),
    ("scan with a bad type",
     {"source": "demo", "fields": {"title": "t"}, "indicators": [{"scan": "all", "types": ["mac"]}]}),
    ("unknown signature scheme",
     {"source": "demo", "fields": {"title": "t"},
      "signature": {"scheme": "hmac-md5", "header": "X-Sig", "secret_env": "S"}}),
    ("hmac without header",
     {"source": "demo", "fields": {"title": "t"},
      "signature": {"scheme": "hmac-sha256", "secret_env": "S"}}),
    ("signature without secret_env",
     {"source": "demo", "fields": {"title": "t"}, "signature": {"scheme": "token", "header": "X"}}),
    ("query_param on an hmac scheme",
     {"source": "demo", "fields": {"title": "t"},
      "signature": {"scheme": "hmac-sha256", "header": "X", "query_param": "t", "secret_env": "S"}}),
    ("header on query-token",
     {"source": "demo", "fields": {"title": "t"},
      "signature": {"scheme": "query-token", "header": "X", "secret_env": "S"}}),
    ("max_skew without timestamp_header",
     {"source": "demo", "fields": {"title": "t"},
      "signature": {"scheme": "hmac-sha256", "header": "X", "secret_env": "S", "max_skew": 60}}),
    ("'all' in a one-value field",
     {"source": "demo", "fields": {"title": {"all": ["a", "b"]}}}),
    ("'time' outside a time value",
     {"source": "demo", "fields": {"title": {"path": "a", "time": "iso8601"}}}),
    ("a range with from and min",
     {"source": "demo", "fields": {"title": "t", "severity": {
         "path": "s", "ranges": [{"from": 1, "min": 1, "value": "Low"}]}}}),
    ("'else' without 'when'",
     {"source": "demo", "fields": {"title": {"path": "a", "else": "b"}}}),
    ("an unknown disposition",
     {"source": "demo", "fields": {"title": "t"},
      "disposition": [{"if": {"present": "a"}, "then": "close"}]}),
    ("an unknown decode format",
     {"source": "demo", "fields": {"title": "t"}, "decode": [{"path": "m", "as": "gzip"}]}),
    ("secret written as a value",
     {"source": "demo", "fields": {"title": "t"},
      "signature": {"scheme": "token", "header": "X", "secret_env": "s3cr3t value!"}}),
]
GOOD_ALERT = {
    "title": "t", "severity": "High", "occurred_at": "2024-05-01T10:00:00.5Z",
    "occurred_at_fallback": False, "source_name": "demo", "description": None, "tags": [],
    "detection_rule_ref": None,
    "fingerprint": "0" * 64,
    "indicators": [{"type": "ip", "value": "192.0.2.1", "source_field": "src"}],
}
BAD_ALERTS = [
    ("unknown severity", {"severity": "Severe"}),
    ("offset instead of Z", {"occurred_at": "2024-05-01T12:00:00+02:00"}),
    ("zero fraction printed", {"occurred_at": "2024-05-01T10:00:00.1234567Z"}),
    ("uppercase fingerprint", {"fingerprint": "A" * 64}),
    ("unknown key", {"titel": "t"}),
    ("tags not an array", {"tags": "a,b"}),
    ("unknown indicator type", {"indicators": [{"type": "ipv4", "value": "1", "source_field": "x"}]}),
    ("indicator without source_field", {"indicators": [{"type": "ip", "value": "192.0.2.1"}]}),
    ("empty optional field", {"src_ip": ""}),
    ("unknown status", {"status": "Done"}),
]


def self_check(mapping_v, alert_v):
    report("self-check: a minimal mapping", schema_errors(mapping_v, GOOD_MAPPING))
    for what, doc in BAD_MAPPINGS:
        if not schema_errors(mapping_v, doc):
            problem("self-check: mapping.schema.json", f"accepts a mapping with {what}")
    report("self-check: a minimal alert", schema_errors(alert_v, GOOD_ALERT))
    missing = {k: v for k, v in GOOD_ALERT.items() if k != "title"}
    if not schema_errors(alert_v, missing):
        problem("self-check: alert.schema.json", "accepts an alert without a title")
    for what, change in BAD_ALERTS:
        doc = dict(GOOD_ALERT, **change)
        if not schema_errors(alert_v, doc):
            problem("self-check: alert.schema.json", f"accepts an alert with {what}")


def doc_examples(path):
    """(name, line, text, error or None, schema_accepts) of every example block."""
    out = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```yaml" and i + 1 < len(lines) and \
                lines[i + 1].startswith("# example:"):
            start = i + 1
            j = start
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            block = lines[start:j]
            name = block[0][len("# example:"):].strip()
            err = next((b[len("# error:"):].strip() for b in block if b.startswith("# error:")),
                       None)
            accepts = any(b.strip() == "# schema: accepts" for b in block)
            out.append((name, start + 1, "\n".join(block) + "\n", err, accepts))
            i = j
        i += 1
    return out


def check_doc_examples(root, mapping_v, alertmap, tmp):
    doc = os.path.join(root, "docs", "mapping-language.md")
    examples = doc_examples(doc)
    if not examples:
        problem(doc, "no '# example:' blocks")
    rules = os.path.join(root, "mappings", "rules", "indicators.yaml")
    for name, line, text, err, accepts in examples:
        where = f"{doc}:{line}: example {name}"
        try:
            y = yaml.safe_load(text)
        except yaml.YAMLError as e:
            problem(where, f"not YAML: {e}")
            continue
        errors = schema_errors(mapping_v, y)
        if err is None:
            report(where, errors)
        elif not errors and not accepts:
            problem(where, "the schema accepts an example that shows an error")
        elif errors and accepts:
            problem(where, f"marked '# schema: accepts' but the schema refuses it: {errors[0]}")
        if not alertmap:
            continue
        f = os.path.join(tmp, name.replace(" ", "_") + ".yaml")
        with open(f, "w", encoding="utf-8") as out:
            out.write(text)
        r = subprocess.run([alertmap, "check", "--rules", rules, f], capture_output=True,
                           text=True, timeout=60)
        if err is None and r.returncode != 0:
            problem(where, f"does not compile: {r.stderr.strip()[:400]}")
        elif err is not None and (r.returncode == 0 or err not in r.stderr):
            problem(where, f"expected the error {err!r}, got: {r.stderr.strip()[:400]}")
    return len(examples)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.environ.get("ALERTMAP_SOURCE_ROOT", "."),
                    help="source tree (default $ALERTMAP_SOURCE_ROOT or .)")
    ap.add_argument("--alertmap", help="also validate the output of this alertmap binary")
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    try:
        mapping_v = validator(os.path.join(root, "schemas", "mapping.schema.json"))
        alert_v = validator(os.path.join(root, "schemas", "alert.schema.json"))
    except (OSError, ValueError, jsonschema.SchemaError) as e:
        print(f"validate.py: cannot load the schemas: {e}", file=sys.stderr)
        return 1
    self_check(mapping_v, alert_v)
    sources = check_mappings(root, mapping_v)
    check_samples(sources, alert_v, args.alertmap, os.path.join(root, "mappings"))
    with tempfile.TemporaryDirectory() as tmp:
        nexamples = check_doc_examples(root, mapping_v, args.alertmap, tmp)
    for p in problems:
        print(p)
    nsamples = sum(len(glob.glob(os.path.join(f, "*.expected.json"))) for f in sources.values())
    print(f"validate.py: {len(sources)} mappings, {nsamples} samples, "
          f"{nexamples} doc examples, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
