#!/usr/bin/env bash
# mtasts serve vs nginx (Debian) on loopback, same policy bytes, same certificate (BENCHMARKS.md,
# "serve").
#
#   bench/serve/run.sh [bench.py options]    # e.g. --reps 3 --secs 5 --idle 10000
#
# Installs nginx-light and wrk from Debian when missing, builds the serve_bench example in release
# mode, then runs bench.py in a new network and mount namespace (`unshare -n -m`): only loopback
# exists there, and /etc/hosts is bound to a file that names mta-sts.d0.test (wrk takes the name
# from the URL). Needs root.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
command -v nginx >/dev/null && command -v wrk >/dev/null || apt-get install -y -q nginx-light wrk
cargo build --quiet --release -p mtasts-server --example serve_bench
tool="${CARGO_TARGET_DIR:-$root/target}/release/examples/serve_bench"
hosts=$(mktemp)
trap 'rm -f "$hosts"' EXIT
echo "127.0.0.1 mta-sts.d0.test localhost" > "$hosts"

unshare --net --mount --propagation private -- sh -c '
  ip link set lo up
  mount --bind "$1" /etc/hosts
  shift
  ulimit -n 20000
  exec python3 "$@"
' sh "$hosts" "$root/bench/serve/bench.py" --tool "$tool" "$@"
