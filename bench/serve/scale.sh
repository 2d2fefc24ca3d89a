#!/usr/bin/env bash
# `mtasts serve` hosting 10 vs 10,000 domains with certificates, through the binary and the SQLite
# store: start-up time, resident memory, new-connection fetch p50/p99 (BENCHMARKS.md, "10 vs 10,000
# hosted domains through `mtasts serve`").
#
#   bench/serve/scale.sh [scale.py options]    # e.g. --runs 5 --secs 10 --domains 10,10000
#
# Builds the `mtasts` binary and the serve_bench example in release mode (set
# CARGO_PROFILE_RELEASE_LTO / _CODEGEN_UNITS to trade build time for the shipped profile), fills
# one SQLite store per domain count with `serve_bench populate` (the domain operations, one
# testnet certificate and key per domain; not timed) in a temporary directory (SCALE_DIR to keep
# and reuse one: a store already there is used as is), then runs scale.py in a new network
# namespace (`unshare -n`: only loopback exists, so nothing can reach another machine). Needs
# root for unshare.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cargo build --quiet --release -p mtasts --bin mtasts -p mtasts-server --example serve_bench
bin="${CARGO_TARGET_DIR:-$root/target}/release"

counts=10,10000
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [[ ${args[i]} == --domains ]] && counts=${args[i + 1]}
done

if [[ -n ${SCALE_DIR:-} ]]; then
  dir=$SCALE_DIR
  mkdir -p "$dir"
else
  dir=$(mktemp -d /tmp/serve-scale.XXXXXX)
  trap 'rm -rf "$dir"' EXIT
fi
for n in ${counts//,/ }; do
  # One PKI root per store; scale.py verifies one fetch per store against it.
  if [[ ! -e $dir/store-$n.db ]]; then
    echo "populating $dir/store-$n.db with $n domains" >&2
    "$bin/examples/serve_bench" populate --store "sqlite:$dir/store-$n.db" --domains "$n" \
      --dir "$dir/pki-$n" >&2
  fi
done

echo "uptime before: $(uptime)"
unshare --net -- sh -c '
  ip link set lo up
  ulimit -n 20000
  exec python3 "$@"
' sh "$root/bench/serve/scale.py" --mtasts "$bin/mtasts" --tool "$bin/examples/serve_bench" \
  --dir "$dir" "$@"
echo "uptime after: $(uptime)"
