#!/bin/sh
# `mtasts report summary` over a year of synthetic reports for 10,000 domains (BENCHMARKS.md,
# "report summary at a provider's scale"): wall time and peak RSS of the common queries, 3 runs
# each, medians.
#
#   bench/report-summary/run.sh [DIR] [DOMAINS] [DAYS] [REPORTERS]
#
# Builds the release binary, makes DIR/store.db (`mtasts store migrate`), fills it with gen.py
# (once; kept for reruns), then times each query.
set -eu
cd "$(dirname "$0")/../.."
dir=${1:-/tmp/report-summary}
domains=${2:-10000}
days=${3:-365}
reporters=${4:-2}
mkdir -p "$dir"
CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
  cargo build --release -q -p mtasts
bin=target/release/mtasts
store="sqlite:$dir/store.db"
if [ ! -s "$dir/store.db" ]; then
  "$bin" store migrate --store "$store" > /dev/null
  python3 bench/report-summary/gen.py "$dir/store.db" --domains "$domains" --days "$days" \
    --reporters "$reporters"
fi
echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) load: $(cut -d' ' -f1-3 /proc/loadavg); store $(du -h "$dir/store.db" | cut -f1)"
# The "now" of the data is 2026-01-01: spans are given as times.
run() {
  label=$1; shift
  for i in 1 2 3; do
    /usr/bin/time -f "%e %M" -o "$dir/time" "$bin" report summary "$@" --store "$store" \
      > "$dir/out" 2>/dev/null
    echo "$label $(cat "$dir/time") $(wc -c < "$dir/out")"
  done
}
run "one-domain-90d-json" --domain d4242.example --since 2025-10-03T00:00:00Z --format json
run "one-domain-year-json" --domain d4242.example --since 2025-01-01T00:00:00Z --format json
run "all-domains-14d-json" --since 2025-12-18T00:00:00Z --format json
run "all-domains-14d-csv" --since 2025-12-18T00:00:00Z --format csv
run "all-domains-year-csv" --since 2025-01-01T00:00:00Z --format csv
