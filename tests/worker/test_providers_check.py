#!/usr/bin/python3
"""tests/worker/test_providers_check.py ALERTMAP - the shipped provider files
against schemas/provider.schema.json (and broken ones rejected by it), and
`alertmap check --providers`: the shipped providers pass, a broken file is
reported as file:line:col with every problem at once.

Needs Debian's python3-yaml and python3-jsonschema (scripts/deps)."""
import copy
import glob
import json
import os
import subprocess
import sys
import tempfile
import unittest

import jsonschema
import yaml

ROOT = os.environ.get("ALERTMAP_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
ALERTMAP = None


def schema():
    with open(os.path.join(ROOT, "schemas", "provider.schema.json"), encoding="utf-8") as f:
        return json.load(f)


def shipped():
    out = {}
    for p in sorted(glob.glob(os.path.join(ROOT, "providers", "*.yaml"))):
        with open(p, encoding="utf-8") as f:
            out[os.path.basename(p)] = yaml.safe_load(f)
    return out


class SchemaTest(unittest.TestCase):
    def test_shipped_valid(self):
        v = jsonschema.Draft7Validator(schema())
        files = shipped()
        self.assertGreaterEqual(len(files), 7)
        for name, doc in files.items():
            errs = [e.message for e in v.iter_errors(doc)]
            self.assertEqual(errs, [], name)

    def test_broken_rejected(self):
        v = jsonschema.Draft7Validator(schema())
        vt = shipped()["virustotal.yaml"]
        broken = []
        b = copy.deepcopy(vt); b["kind"] = "ftp"; broken.append(b)
        b = copy.deepcopy(vt); b["request"]["url"] = {"ip": "https://{value}.example/x"}; broken.append(b)
        b = copy.deepcopy(vt); b["verdict"][0]["then"] = "Evil"; broken.append(b)
        b = copy.deepcopy(vt); b["rate_limit"] = "4 per minute"; broken.append(b)
        b = copy.deepcopy(vt); b["colour"] = "red"; broken.append(b)
        b = copy.deepcopy(vt); del b["results"]; broken.append(b)
        b = copy.deepcopy(shipped()["internal_ranges.yaml"]); b["ranges"][0]["labels"] = []; broken.append(b)
        for i, doc in enumerate(broken):
            self.assertFalse(v.is_valid(doc), "broken document %d was accepted" % i)


class CheckTest(unittest.TestCase):
    def run_check(self, *args, env=None):
        e = dict(os.environ)
        e.pop("ALERTMAP_PROVIDERS", None)
        e.update(env or {})
        return subprocess.run([ALERTMAP, "check"] + list(args), capture_output=True, text=True,
                              env=e, timeout=60)

    def test_shipped_pass(self):
        r = self.run_check("--providers", os.path.join(ROOT, "providers"),
                           os.path.join(ROOT, "mappings"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("7 providers OK", r.stdout)

    def test_environment_names_the_folder(self):
        r = self.run_check(os.path.join(ROOT, "mappings"),
                           env={"ALERTMAP_PROVIDERS": os.path.join(ROOT, "providers")})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("providers OK", r.stdout)

    def test_errors_at_positions(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "p.yaml"), "w") as f:
                f.write("provider: p\nkind: http\ntypes: [ip]\n"
                        "request:\n  url: https://h.example/{valu}\n"
                        "results: {a: 'x[?'}\n"
                        "verdict:\n  - when: {field: a, gte: many}\n    then: Malicious\n")
            with open(os.path.join(d, "q.yaml"), "w") as f:
                f.write("provider: q\nkind: list\ntypes: [ip]\nfile: missing.txt\n")
            r = self.run_check("--providers", d, os.path.join(ROOT, "mappings"))
        self.assertEqual(r.returncode, 1)
        lines = [l for l in r.stderr.splitlines() if ".yaml:" in l]
        self.assertTrue(any("p.yaml:5:26:" in l and "unknown template hole" in l for l in lines),
                        r.stderr)
        self.assertTrue(any("p.yaml:6:" in l and "bad path" in l for l in lines), r.stderr)
        self.assertTrue(any("q.yaml:4:7:" in l and "cannot read list file" in l for l in lines),
                        r.stderr)


if __name__ == "__main__":
    ALERTMAP = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
