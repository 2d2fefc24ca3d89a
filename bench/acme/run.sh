#!/usr/bin/env bash
# ACME benchmark (BENCHMARKS.md, "ACME: new domains to a valid certificate"): N new domains
# brought to a certificate by `mtasts serve`'s ACME engine against a real Pebble, on SQLite and
# (when TEST_DATABASE_URL is set) on PostgreSQL, at each concurrency given; REPS runs each, one
# JSON line per run (crates/server/examples/acme_bench.rs says what is measured).
#
#   bench/acme/run.sh [--domains 1000] [--reps 3] [--concurrency "4 16"]
#
# Installs Pebble from Debian when missing (tests/e2e/pebble/install.sh). Everything runs on
# loopback; each run is bounded by acme_bench's --timeout (900 s).
set -euo pipefail
cd "$(dirname "$0")/../.."
domains=1000 reps=3 conc="4 16"
while [ $# -gt 0 ]; do
  case "$1" in
    --domains) domains=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --concurrency) conc=$2; shift 2 ;;
    *) echo "usage: $0 [--domains N] [--reps R] [--concurrency \"C...\"]" >&2; exit 2 ;;
  esac
done
[ -x /usr/bin/pebble ] || tests/e2e/pebble/install.sh
CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
  cargo build --release -q -p mtasts-server --example acme_bench
bin=target/release/examples/acme_bench
echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) load: $(cut -d' ' -f1-3 /proc/loadavg)"
for c in $conc; do
  for r in $(seq "$reps"); do
    "$bin" --domains "$domains" --concurrency "$c"
    if [ -n "${TEST_DATABASE_URL:-}" ]; then
      db="acme_bench_$$_${c}_$r"
      psql -q "$TEST_DATABASE_URL" -c "CREATE DATABASE $db"
      base="${TEST_DATABASE_URL%/*}"
      "$bin" --domains "$domains" --concurrency "$c" --store "$base/$db" || true
      psql -q "$TEST_DATABASE_URL" -c "DROP DATABASE $db WITH (FORCE)"
    fi
  done
done
