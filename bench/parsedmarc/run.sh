#!/usr/bin/env bash
# Compares mtasts's TLS-RPT JSON parser with parsedmarc's on the same files (see BENCHMARKS.md).
#
#   bench/parsedmarc/run.sh [ROUNDS] [ITERATIONS] [ENTRY]
#
# ENTRY is `json` (default: parsedmarc.parse_smtp_tls_report_json vs our parse_report_json, over
# the report JSON files) or `file` (parsedmarc.parse_report_file, its entry point for a report file
# or mail, vs our parse_reports, over the JSON files and the report mails).
#
# Creates a throwaway virtualenv (bench/.venv, gitignored; or $VENV) with parsedmarc pinned,
# builds the report_throughput example in release mode, keeps only the report JSON files under
# tests/data/tlsrpt/ that BOTH parsers accept, then runs the two benchmarks interleaved ROUNDS
# times (default 5) with ITERATIONS passes each (default 2000) and prints the medians and the
# ratio.
set -euo pipefail

PARSEDMARC_VERSION=11.1.0
rounds=${1:-5}
iterations=${2:-2000}
entry=${3:-json}

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
venv=${VENV:-$root/bench/.venv}

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import parsedmarc, importlib.metadata as m; assert m.version('parsedmarc') == '$PARSEDMARC_VERSION'" 2>/dev/null; then
  "$venv/bin/pip" install --quiet "parsedmarc==$PARSEDMARC_VERSION"
fi
py="$venv/bin/python"

cargo build --quiet --release -p mtasts-core --example report_throughput
ours="${CARGO_TARGET_DIR:-$root/target}/release/examples/report_throughput"

if [ "$entry" = file ]; then
  mapfile -t all < <(find tests/data/tlsrpt -name '*.json' -o -name '*.eml' | sort)
else
  mapfile -t all < <(find tests/data/tlsrpt -name '*.json' | sort)
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$ours" --entry "$entry" --list-accepted "${all[@]}" 2>"$tmp/ours.rejected" | sort >"$tmp/ours"
"$py" bench/parsedmarc/bench.py --entry "$entry" --list-accepted "${all[@]}" 2>"$tmp/theirs.rejected" | sort >"$tmp/theirs"
mapfile -t files < <(comm -12 "$tmp/ours" "$tmp/theirs")

echo "parsedmarc $PARSEDMARC_VERSION ($("$py" --version 2>&1)) vs mtasts-core $(git rev-parse --short HEAD)"
echo "entry point: $entry; ${#all[@]} files under tests/data/tlsrpt/; both accept ${#files[@]}; only those are timed."
sed 's/^/  /' "$tmp/ours.rejected" "$tmp/theirs.rejected"
echo "$rounds rounds x $iterations iterations, interleaved:"

for ((r = 1; r <= rounds; r++)); do
  "$ours" --entry "$entry" -n "$iterations" "${files[@]}" | tee -a "$tmp/ours.runs"
  "$py" bench/parsedmarc/bench.py --entry "$entry" -n "$iterations" "${files[@]}" | tee -a "$tmp/theirs.runs"
done

median() {
  sed -n 's/.*reports_per_s=\([0-9.]*\).*/\1/p' "$1" | sort -g | awk '{ v[NR] = $1 }
    END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
m_ours=$(median "$tmp/ours.runs")
m_theirs=$(median "$tmp/theirs.runs")
echo
printf '%-12s %16s\n' parser 'median reports/s'
printf '%-12s %16.0f\n' mtasts "$m_ours" parsedmarc "$m_theirs"
awk -v a="$m_ours" -v b="$m_theirs" 'BEGIN { printf "ratio        %15.1fx\n", a / b }'
