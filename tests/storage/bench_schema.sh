#!/usr/bin/env bash
# tests/storage/bench_schema.sh - the ingest cost of each schema variant
# (schema_variants/*.sql, applied after the migrations), measured with
# bench_writer on a fresh database per run, the variants interleaved with
# the plain schema so that a shared, noisy machine affects all alike. Not a
# test; the figures are in docs/performance.md.
#
#   tests/storage/bench_schema.sh BUILD_DIR PGHOST [ALERTS] [ROUNDS] [VARIANT...]
#
# Prints one JSON line per run (bench_writer's) on stdout.
set -euo pipefail
build=$1; host=$2; n=${3:-20000}; rounds=${4:-2}; shift $(( $# < 4 ? $# : 4 ))
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/../.." && pwd)
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=("$here"/schema_variants/*.sql)
admin="postgresql:///postgres?host=$host&user=alertmap"
run() { # variant file or ""
  local db="bench_schema_$$"
  psql "$admin" -qXc "set client_min_messages=warning" -c "drop database if exists $db" -c "create database $db" >/dev/null
  local x=(); [ -n "$1" ] && x=(-x "$1")
  "$build/tests/storage/bench_writer" "postgresql:///$db?host=$host&user=alertmap" \
    "$root/schemas/sql" -n "$n" -p "$root/mappings/samples/elastic/alert-flat.json" "${x[@]}" || true
  psql "$admin" -qXc "drop database $db with (force)" >/dev/null
}
for r in $(seq "$rounds"); do
  for v in "${variants[@]}"; do
    run ""
    run "$v"
  done
done
