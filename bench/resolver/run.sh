#!/usr/bin/env bash
# mtasts resolver vs postfix-mta-sts-resolver (SMR) on the same test internet (see BENCHMARKS.md,
# "Resolver").
#
#   bench/resolver/run.sh [bench.py options]     # e.g. --reps 3 --duration 4 --connections 1,16,64,100
#
# Makes a throwaway virtualenv (bench/.venv-smr, gitignored; or $VENV) with the latest
# postfix-mta-sts-resolver from PyPI (and uvloop, which its daemon uses when present, as its README
# recommends), builds `mtasts`, `testnet-serve` and the socketmap_load example in release mode,
# then runs bench.py inside a new network and mount namespace (`unshare -n -m`): only loopback
# exists there, so nothing can leave the machine. bench.py starts the test internet on standard
# ports, both daemons pinned to CPU 1, the load tool and test servers on CPU 0, and prints Markdown
# tables. Needs root (unshare, ports 53 and 443). Set BENCH_RAW=FILE for the raw JSON, BENCH_LOGS=DIR
# to keep our daemon's log; `--ours-args=--no-dane` passes extra options to `mtasts resolver`.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
venv=${VENV:-$root/bench/.venv-smr}

if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
  apt-get install -y -q python3-venv
fi
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ ! -x "$venv/bin/mta-sts-daemon" ]; then
  "$venv/bin/pip" install --quiet --upgrade 'postfix-mta-sts-resolver[uvloop]'
fi

cargo build --quiet --release -p mtasts -p mtasts-testnet --bin mtasts --bin testnet-serve
cargo build --quiet --release -p mtasts-resolver --example socketmap_load
target="${CARGO_TARGET_DIR:-$root/target}/release"

exec unshare --net --mount --propagation private -- \
  python3 "$root/bench/resolver/bench.py" \
  --mtasts "$target/mtasts" \
  --testnet-serve "$target/testnet-serve" \
  --load "$target/examples/socketmap_load" \
  --smr "$venv/bin/mta-sts-daemon" \
  "$@"
