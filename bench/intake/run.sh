#!/usr/bin/env bash
# The HTTPS intake (BENCHMARKS.md, "TLS-RPT reports by HTTPS"): `intake_bench` POSTs REPORTS
# distinct reports, 32 at a time, each on a new TLS connection, into SQLite and into PostgreSQL,
# and the floor (the same connections and requests answered 405 unread), with both load
# generators (`--client full`: a sender as rustls makes one, chain verified; `--client lean`:
# the server's certificate pinned, so the client takes less of the shared CPU). ROUNDS rounds,
# every case once a round, interleaved; medians of reports (requests) per second and of p50, and
# the reports lost in all (acknowledged but not stored: must be 0).
#
#   bench/intake/run.sh [ROUNDS] [REPORTS]
#
# PostgreSQL: $TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test), a database
# this script empties (drops and recreates its public schema) before every PostgreSQL run; left
# out with a loud message when it does not answer. Everything runs on loopback.
set -euo pipefail
rounds=${1:-3}
reports=${2:-10000}
pg=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
  cargo build --release -q -p mtasts-server --example intake_bench
bin=${CARGO_TARGET_DIR:-$root/target}/release/examples/intake_bench
stores="sqlite"
if psql "$pg" -qc 'select 1' >/dev/null 2>&1; then
  stores="sqlite postgres"
else
  echo "!!! PostgreSQL at $pg does not answer: PostgreSQL left out" >&2
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq "$rounds"); do
  for client in full lean; do
    "$bin" --reports "$reports" --client "$client" --path /.well-known/mta-sts.txt |
      sed "s/^{/{\"case\":\"floor $client\",/" >>"$out"
    for s in $stores; do
      if [ "$s" = postgres ]; then
        psql "$pg" -qc 'drop schema public cascade; create schema public' >/dev/null 2>&1
        store=(--store "$pg")
      else
        store=()
      fi
      "$bin" --reports "$reports" --client "$client" "${store[@]}" |
        sed "s/^{/{\"case\":\"$s $client\",/" >>"$out"
    done
  done
  echo "round $r of $rounds done" >&2
done
python3 - "$out" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
cases = list(dict.fromkeys(r["case"] for r in runs))
print("| case | runs, per second | median | p50 (median) | lost |")
print("|---|---|---|---|---|")
med = {}
for c in cases:
    rs = [r for r in runs if r["case"] == c]
    rate = [r["requests_per_second"] if c.startswith("floor") else r["reports_per_second"] for r in rs]
    med[c] = statistics.median(rate)
    lost = "—" if c.startswith("floor") else f"{sum(r['lost'] for r in rs)} of {sum(r['acknowledged'] for r in rs)}"
    print(f"| {c} | {' / '.join(f'{x:,.0f}' for x in rate)} | **{med[c]:,.0f}** | "
          f"{statistics.median(r['p50_ms'] for r in rs):.1f} ms | {lost} |")
for c in cases:
    if not c.startswith("floor"):
        f = med["floor " + c.split()[1]]
        print(f"{c}: {med[c] / f:.0%} of its floor ({f:,.0f} requests/s)")
PY
