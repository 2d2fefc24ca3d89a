#!/usr/bin/env bash
# The resolver's CPU per request on the I/O path: the protocol layer alone with a fixed reply, and
# the real daemon on cached answers (see BENCHMARKS.md, "Resolver: the protocol layer's floor").
#
#   bench/resolver/floor.sh [floor.py options]   # e.g. --transport unix --reps 5 --connections 1,16,100
#
# Builds `mtasts` and the socketmap_load example in release mode, then runs floor.py: servers on
# CPU 1, the load tool on CPU 0, loopback only (127.0.0.1:18461 or a unix socket). No root needed.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cargo build --quiet --release -p mtasts -p mtasts-resolver --bin mtasts --example socketmap_load
target="${CARGO_TARGET_DIR:-$root/target}/release"
exec python3 "$root/bench/resolver/floor.py" --load "$target/examples/socketmap_load" \
  --mtasts "$target/mtasts" "$@"
