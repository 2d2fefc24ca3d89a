#!/bin/sh
# Peak RSS and wall time of `mtasts report parse` on each input written by gen.py.
#
#   python3 bench/report-memory/gen.py /tmp/report-memory
#   sh bench/report-memory/run.sh target/debug/mtasts /tmp/report-memory [cap-MiB]
#
# Each run is capped at cap-MiB of address space (default 6144) with prlimit, so an unbounded
# parser aborts on allocation failure instead of taking the machine down. Prints one Markdown row
# per input: name, size, exit code, wall time, peak RSS, what was printed to stderr (first line).
set -u
bin=${1:?usage: run.sh MTASTS-BINARY DIR [CAP-MIB]}
dir=${2:?usage: run.sh MTASTS-BINARY DIR [CAP-MIB]}
cap=${3:-6144}
printf '| input | size (bytes) | exit | wall (s) | peak RSS (MiB) | reports | stderr (first line, cut) |\n'
printf '| --- | ---: | ---: | ---: | ---: | ---: | --- |\n'
for f in "$dir"/*; do
    name=$(basename "$f")
    size=$(wc -c < "$f")
    prlimit --as=$((cap * 1024 * 1024)) /usr/bin/time -v -o /tmp/report-memory-time.$$ \
        "$bin" --format json report parse "$f" > /tmp/report-memory-out.$$ 2> /tmp/report-memory-err.$$
    code=$?
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' /tmp/report-memory-time.$$ |
        awk -F: '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }')
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' /tmp/report-memory-time.$$)
    reports=$(grep -c '"report-id"' /tmp/report-memory-out.$$)
    err=$(head -c 300 /tmp/report-memory-err.$$ | head -n 1 | cut -c1-110 | tr '|' '/')
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$size" "$code" "$wall" \
        "$((rss / 1024))" "$reports" "$err"
done
rm -f /tmp/report-memory-time.$$ /tmp/report-memory-out.$$ /tmp/report-memory-err.$$
