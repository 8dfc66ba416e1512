#!/usr/bin/env python3
"""CLI tests of `alertmap keys create|list|revoke` against the test PostgreSQL
(ALERTMAP_TEST_PGHOST, set by scripts/test; a missing cluster is a failure).

usage: test_keys.py PATH-TO-ALERTMAP
Checks what an operator sees (stdout, stderr, exit status) and what the
database keeps (a prefix and HMAC-SHA256(pepper, token), never the token).
"""
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.environ.get("ALERTMAP_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SQL_DIR = os.path.join(ROOT, "schemas", "sql")
PGHOST = os.environ.get("ALERTMAP_TEST_PGHOST")
DEFAULT_PEPPER = b"alertmap-api-key-v1"
TOKEN_RE = re.compile(r"amk_([a-z2-7]{8})_[a-z2-7]{52}")

ALERTMAP = None
failures = []


def check(cond, what, *context):
    if not cond:
        failures.append(what)
        print("FAIL:", what)
        for c in context:
            print("    " + str(c).replace("\n", "\n    "))
    else:
        print("ok:  ", what)


def db_url(name):
    return "postgresql:///%s?host=%s&user=alertmap" % (name, PGHOST)


def psql(url, sql):
    r = subprocess.run(["psql", url, "-XAtqv", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("psql failed on %r: %s" % (sql, r.stderr))
    return r.stdout.strip()


def run(*args, env=None, cwd=None, url=None):
    e = dict(os.environ)
    for k in ("DATABASE_URL", "ALERTMAP_SQL_DIR", "ALERTMAP_KEY_PEPPER"):
        e.pop(k, None)
    if url is not None:
        e["DATABASE_URL"] = url
    if env:
        e.update(env)
    p = subprocess.run([ALERTMAP, "keys", *args], capture_output=True, env=e,
                       cwd=cwd or tempfile.gettempdir(), timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_usage():
    rc, out, err = run("--help")
    check(rc == 0, "keys --help exits 0", rc, err)
    for word in ("create", "list", "revoke", "--scope", "--source", "--expires", "DATABASE_URL",
                 "ALERTMAP_KEY_PEPPER", "once"):
        check(word in out, "keys --help mentions %s" % word, out)
    p = subprocess.run([ALERTMAP, "--help"], capture_output=True, text=True)
    check("keys create|list|revoke" in p.stdout, "alertmap --help lists keys", p.stdout)
    p = subprocess.run([ALERTMAP, "help", "keys"], capture_output=True, text=True)
    check(p.returncode == 0 and "alertmap keys create" in p.stdout, "alertmap help keys", p.stdout)
    p = subprocess.run([ALERTMAP, "nope"], capture_output=True, text=True)
    check("keys" in p.stderr, "an unknown command lists keys among the commands", p.stderr)

    rc, out, err = run("list")
    check(rc == 2 and "DATABASE_URL" in err, "no DATABASE_URL: exit 2 naming it", rc, err)
    url = "postgresql:///unused?host=/nonexistent"
    for args, what, needle in [
            ((), "no action", "which action"),
            (("frobnicate",), "unknown action", "unknown action"),
            (("create", "--scope", "read"), "create without --name", "--name"),
            (("create", "--name", "x"), "create without --scope", "--scope"),
            (("create", "--name", "x", "--scope", "root"), "unknown scope", "bad --scope"),
            (("create", "--name", "x", "--scope", "read,read"), "repeated scope", "bad --scope"),
            (("create", "--name", "x", "--scope", "ingest", "--source", "a,,b"),
             "empty source", "bad --source"),
            (("create", "--name", "x", "--scope", "read", "--expires", "30"),
             "expiry without a unit", "bad --expires"),
            (("create", "--name", "x", "--scope", "read", "--expires", "-1d"),
             "negative expiry", "bad --expires"),
            (("revoke",), "revoke without a key", "revoke takes one"),
            (("revoke", "1", "2"), "revoke with two keys", "revoke takes one"),
            (("list", "extra"), "list with an argument", "unexpected argument"),
            (("list", "--name", "x"), "list with --name", "for create"),
            (("revoke", "--json", "1"), "revoke with --json", "--json is for"),
            (("create", "--bogus"), "unknown option", "unknown option"),
    ]:
        rc, out, err = run(*args, url=url)
        check(rc == 2 and needle in err, "usage error: %s (exit 2, says %r)" % (what, needle),
              rc, err)


def test_database(tmp):
    admin = db_url("postgres")
    name = "am_cli_keys_%s" % uuid.uuid4().hex[:10]
    psql(admin, 'create database "%s"' % name)
    url = db_url(name)
    try:
        run_database_tests(url, tmp)
    finally:
        psql(admin, 'drop database if exists "%s" with (force)' % name)


def run_database_tests(url, tmp):
    # an empty database and no migrations at hand: a clear refusal
    rc, out, err = run("list", url=url, cwd=tmp)
    check(rc == 1 and "no API key table" in err and "alertmapd" in err,
          "without migrations: exit 1 and a hint", rc, err)

    # --sql-dir (or ALERTMAP_SQL_DIR) applies them first, as alertmapd does
    rc, out, err = run("list", url=url, cwd=tmp, env={"ALERTMAP_SQL_DIR": SQL_DIR})
    check(rc == 0 and "no keys" in err, "list on a migrated database: no keys", rc, out, err)
    versions = psql(url, "select string_agg(version::text, ',' order by version) "
                         "from schema_migrations")
    check(versions.startswith("1,2"), "migrations 001 and 002 applied", versions)
    check(psql(url, "select count(*) from information_schema.columns where "
                    "table_name = 'alerts' and column_name = 'updated_by_key'") == "1",
          "alerts.updated_by_key exists")

    # create: the token alone on stdout, the details on stderr
    rc, out, err = run("create", "--name", "splunk prod", "--scope", "ingest",
                       "--source", "splunk,generic", "--expires", "30d",
                       url=url, env={"ALERTMAP_SQL_DIR": SQL_DIR})
    lines = out.splitlines()
    check(rc == 0 and len(lines) == 1 and TOKEN_RE.fullmatch(lines[0]) is not None,
          "create prints one token (amk_ + 8 + _ + 52 base32 chars)", rc, out, err)
    token = lines[0] if lines else ""
    prefix = TOKEN_RE.fullmatch(token).group(1) if TOKEN_RE.fullmatch(token) else "?"
    check("created key" in err and "amk_" + prefix in err and "shown only now" in err
          and token not in err, "create says what it made on stderr, without the token", err)

    row = psql(url, "select id, prefix, encode(hash, 'hex'), array_to_string(scopes, ','),"
                    " array_to_string(sources, ','),"
                    " extract(epoch from expires_at - now())::int"
                    " from api_keys where prefix = '%s'" % prefix).split("|")
    check(len(row) == 6, "the key has a row", row)
    if len(row) == 6:
        want = hmac.new(DEFAULT_PEPPER, token.encode(), hashlib.sha256).hexdigest()
        check(row[2] == want, "the row keeps HMAC-SHA256(default pepper, token)", row[2], want)
        check(row[3] == "ingest" and row[4] == "splunk,generic", "scopes and sources stored", row)
        check(abs(int(row[5]) - 30 * 86400) < 120, "expires in 30 days", row[5])
    dump = psql(url, "select coalesce(string_agg(row_to_json(k)::text, ''), '') from api_keys k")
    check(token[13:] not in dump and token not in dump, "the secret is nowhere in the table")

    # --json and a pepper of our own
    rc, out, err = run("create", "--name", "reader", "--scope", "read,write", "--json", url=url,
                       env={"ALERTMAP_KEY_PEPPER": "s3cret-pepper"})
    try:
        created = json.loads(out)
    except ValueError:
        created = {}
    check(rc == 0 and TOKEN_RE.fullmatch(created.get("token", "")) is not None
          and created.get("scopes") == ["read", "write"] and created.get("sources") is None
          and created.get("expires_at") is None and isinstance(created.get("id"), int)
          and created.get("prefix") == created.get("token", "")[:12],
          "create --json", rc, out, err)
    if created.get("token"):
        h = psql(url, "select encode(hash, 'hex') from api_keys where id = %d" % created["id"])
        want = hmac.new(b"s3cret-pepper", created["token"].encode(), hashlib.sha256).hexdigest()
        check(h == want, "ALERTMAP_KEY_PEPPER is the HMAC key", h, want)
        ids = psql(url, "select count(distinct pepper_id) from api_keys")
        check(ids == "2", "each pepper has its own id", ids)

    # list
    rc, out, err = run("list", url=url)
    check(rc == 0 and out.splitlines()[0].split()[:3] == ["ID", "PREFIX", "STATE"],
          "list prints a table", rc, out, err)
    mine = [l for l in out.splitlines() if "amk_" + prefix in l]
    check(len(mine) == 1 and "active" in mine[0] and "splunk,generic" in mine[0]
          and "splunk prod" in mine[0] and "ingest" in mine[0], "list shows the key", out)
    check(token not in out and (not created.get("token") or created["token"] not in out),
          "list shows no token")
    rc, out, err = run("list", "--json", url=url)
    keys = json.loads(out) if rc == 0 else []
    check([k["name"] for k in keys] == ["reader", "splunk prod"], "list --json, newest first",
          out)
    check(all(set(k) == {"id", "name", "prefix", "scopes", "sources", "expires_at",
                         "created_at", "last_used_at", "revoked_at", "state"} for k in keys),
          "list --json fields (no hash)", out)

    # revoke by prefix, again, by id, unknown, junk
    rc, out, err = run("revoke", "amk_" + prefix, url=url)
    check(rc == 0 and out.startswith("revoked key"), "revoke by prefix", rc, out, err)
    rc, out, err = run("revoke", prefix, url=url)
    check(rc == 0 and "already revoked" in out, "revoking again: exit 0, already revoked",
          rc, out, err)
    state = psql(url, "select revoked_at is not null from api_keys where prefix = '%s'" % prefix)
    check(state == "t", "revoked_at set", state)
    rc, out, err = run("list", "--json", url=url)
    states = {k["prefix"]: k["state"] for k in json.loads(out)}
    check(states.get("amk_" + prefix) == "revoked", "list shows revoked", states)
    if created.get("id"):
        rc, out, err = run("revoke", str(created["id"]), url=url)
        check(rc == 0 and out.startswith("revoked key %d" % created["id"]), "revoke by id",
              rc, out, err)
    rc, out, err = run("revoke", "424242", url=url)
    check(rc == 1 and "no key" in err, "unknown id: exit 1", rc, err)
    rc, out, err = run("revoke", "amk_zzzzzzzz", url=url)
    check(rc == 1 and "no key" in err, "unknown prefix: exit 1", rc, err)
    rc, out, err = run("revoke", "amk_NOT-A-KEY", url=url)
    check(rc == 2 and "neither" in err, "junk: usage error", rc, err)

    # an expiry that has passed shows as expired
    psql(url, "update api_keys set expires_at = now() - interval '1 minute', revoked_at = null"
              " where prefix = '%s'" % prefix)
    rc, out, err = run("list", "--json", url=url)
    states = {k["prefix"]: k["state"] for k in json.loads(out)}
    check(states.get("amk_" + prefix) == "expired", "list shows expired", states)

    # the database is gone: exit 1 and the reason
    rc, out, err = run("list", url=db_url("am_no_such_database_%d" % os.getpid()))
    check(rc == 1 and "does not exist" in err, "unreachable database: exit 1 with reason",
          rc, err)


def main():
    global ALERTMAP
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    ALERTMAP = os.path.abspath(sys.argv[1])
    if not PGHOST or not os.path.isdir(PGHOST):
        print("FAIL: ALERTMAP_TEST_PGHOST is not set or not a directory: run through "
              "./scripts/test, or scripts/pg start DIR and export "
              "ALERTMAP_TEST_PGHOST=DIR/socket", file=sys.stderr)
        return 1
    test_usage()
    with tempfile.TemporaryDirectory() as tmp:
        test_database(tmp)
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
