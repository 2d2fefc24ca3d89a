#!/usr/bin/env bash
# mtasts check vs checkdmarc 6 on the same scenario domains of the test internet (see BENCHMARKS.md).
#
#   bench/checkdmarc/run.sh [REPS]
#
# Makes a throwaway virtualenv (bench/.venv-checkdmarc, gitignored; or $VENV) with checkdmarc 6
# from PyPI, builds `mtasts` and `testnet-serve` in release mode, then runs bench.py inside a new
# network and mount namespace (`unshare -n -m`): only the loopback interface exists there, so
# neither tool can reach anything outside the machine, whatever it tries. Inside, bench.py
# points /etc/resolv.conf at the testnet's DNS (a bind mount visible only in the namespace),
# starts `testnet-serve --standard-ports` (DNS on 53, MX hosts on 25, policy hosts on 443), and
# times both tools over the whole scenario set REPS times (default 5), interleaved. Needs root
# (for unshare and the low ports).
set -euo pipefail

reps=${1:-5}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
venv=${VENV:-$root/bench/.venv-checkdmarc}

if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
  apt-get install -y -q python3-venv
fi
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import importlib.metadata as m; v = m.version('checkdmarc'); assert v.startswith('6.'), v" 2>/dev/null; then
  "$venv/bin/pip" install --quiet 'checkdmarc>=6,<7'
fi

cargo build --quiet --release -p mtasts -p mtasts-testnet --bin mtasts --bin testnet-serve
target="${CARGO_TARGET_DIR:-$root/target}/release"

exec unshare --net --mount --propagation private -- \
  python3 "$root/bench/checkdmarc/bench.py" \
  --reps "$reps" \
  --mtasts "$target/mtasts" \
  --testnet-serve "$target/testnet-serve" \
  --checkdmarc "$venv/bin/checkdmarc"
