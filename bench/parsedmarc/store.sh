#!/usr/bin/env bash
# The parse-and-store path against parsedmarc's (BENCHMARKS.md, "TLS-RPT reports: parse and
# store"): `mtasts report import DIR --store sqlite:...` (sniff, parse, store each report once,
# committed) against `parsedmarc --offline -o OUT DIR` (its file input, JSON output), on the same
# corpus, in one run, ROUNDS times interleaved; medians and the ratio.
#
#   bench/parsedmarc/store.sh [ROUNDS] [COPIES]
#
# The corpus: the report JSON files of tests/data/tlsrpt/ that parsedmarc accepts (16 of 17),
# each written COPIES times (default 125: 2,000 reports) with its report-id made unique, so that
# neither tool can skip a duplicate. Both run inside `unshare -n` (no network at all) when root.
# parsedmarc comes from PyPI in a throwaway virtualenv (bench/.venv, gitignored; or $VENV).
set -euo pipefail
PARSEDMARC_VERSION=11.1.0
rounds=${1:-3}
copies=${2:-125}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
venv=${VENV:-$root/bench/.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import importlib.metadata as m; assert m.version('parsedmarc') == '$PARSEDMARC_VERSION'" 2>/dev/null ||
  "$venv/bin/pip" install --quiet "parsedmarc==$PARSEDMARC_VERSION"
CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 cargo build --release -q -p mtasts
ours=${CARGO_TARGET_DIR:-$root/target}/release/mtasts
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
python3 - "$work/corpus" "$copies" <<'PY'
import json, pathlib, sys
out, copies = pathlib.Path(sys.argv[1]), int(sys.argv[2])
n = 0
for i, f in enumerate(sorted(pathlib.Path("tests/data/tlsrpt").rglob("*.json"))):
    if f.name == "rpt03.json":  # parsedmarc: "Missing required policy field: 'policy-domain'"
        continue
    doc = json.loads(f.read_bytes())
    base = doc.get("report-id", "r")
    for k in range(copies):
        doc["report-id"] = f"{base}-{i}-{k}"
        (out / f"{n:06d}.json").write_text(json.dumps(doc))
        n += 1
print(f"{n} report files", file=sys.stderr)
PY
total=$(ls "$work/corpus" | wc -l)
isolate=()
[ "$(id -u)" = 0 ] && command -v unshare >/dev/null && isolate=(unshare -n)
echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) load: $(cut -d' ' -f1-3 /proc/loadavg); $total reports; isolation: ${isolate[*]:-none}"
for r in $(seq "$rounds"); do
  rm -f "$work"/s.db*
  /usr/bin/time -f "%e %M %U %S" -o "$work/t" "${isolate[@]}" "$ours" report import "$work/corpus" \
    --store "sqlite:$work/s.db" --format json > "$work/ours.json"
  stored=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['stored'])" "$work/ours.json")
  echo "mtasts $(cat "$work/t") stored=$stored" | tee -a "$work/log"
  rm -rf "$work/out"
  /usr/bin/time -f "%e %M %U %S" -o "$work/t" "${isolate[@]}" "$venv/bin/parsedmarc" --offline -s \
    -o "$work/out" "$work/corpus" > /dev/null 2>&1 || true
  got=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))))" "$work/out/smtp_tls.json" 2>/dev/null || echo 0)
  echo "parsedmarc $(cat "$work/t") reports=$got" | tee -a "$work/log"
done
# Medians: wall seconds, CPU seconds (user + system, all threads), peak RSS; and the ratios.
python3 - "$work/log" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    tool, wall, rss, user, system = line.split()[:5]
    runs.setdefault(tool, []).append((float(wall), float(user) + float(system), int(rss)))
med = {t: [statistics.median(r[i] for r in rs) for i in range(3)] for t, rs in runs.items()}
for t, (wall, cpu, rss) in med.items():
    print(f"median {t}: wall {wall:.2f} s, cpu {cpu:.2f} s, peak {rss / 1024:.0f} MiB")
(w1, c1, _), (w2, c2, _) = med["mtasts"], med["parsedmarc"]
print(f"ratio (parsedmarc / mtasts): wall {w2 / w1:.1f}x, cpu {c2 / c1:.1f}x")
PY
