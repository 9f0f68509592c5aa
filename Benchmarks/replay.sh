#!/usr/bin/env bash
# Replay throughput on the same >= 200 MB log, made by expanding the ENRICHED
# capture of the shared corpus, in one run:
#   wc -l                                    the floor: reading the lines
#   contid replay --format summary           every event assembled and counted
#   contid replay --format raw > /dev/null   every event assembled, attributed, annotated and written
#   ausearch --raw -m EXECVE                 the reference tool
#
#   [BASELINE=REV] Benchmarks/replay.sh [MEGABYTES]      (default 200)
#
# With BASELINE=REV, that git revision's contid (Benchmarks/build-baseline.sh) replays
# the same log in the same run, and the new/old ratios print.
# Prints MB/s and records/s for each, and the ratios contid/wc -l (targets:
# summary >= 0.5x, raw >= 0.3x) and contid/ausearch.
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-200}
SHARED=${CONTID_SHARED:-$(cd .. && pwd)/shared}
CAPTURE="$SHARED/corpus/captured-linux-6.18-enriched.log"
command -v ausearch >/dev/null || { echo "ausearch missing: apt-get install -y auditd" >&2; exit 1; }

swift build -c release --product contid >/dev/null
BIN=.build/release/contid
LOG=$(mktemp --suffix=.log)
trap 'rm -f "$LOG"' EXIT
python3 Benchmarks/expand-capture.py "$CAPTURE" "$LOG" "$MB"
BYTES=$(stat -c %s "$LOG")
cat "$LOG" >/dev/null   # every tool reads from the page cache

now() { date +%s.%N; }
# Best of 3 for each (the machine may be shared; one core each: all are single-threaded).
best() {
  local b="" t0 t1 t
  for _ in 1 2 3; do
    t0=$(now); "$@" >/dev/null; t1=$(now)
    t=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$b" ] || [ "$(echo "$t < $b" | bc -l)" = 1 ]; then b=$t; fi
  done
  echo "$b"
}
out=$("$BIN" replay --format summary "$LOG")
RECORDS=$(sed -n 's/^records=\([0-9]*\) .*/\1/p' <<<"$out")
echo "contid:   $out"
tw=$(best wc -l "$LOG")
ts=$(best "$BIN" replay --format summary "$LOG")
tr=$(best "$BIN" replay --format raw "$LOG")
if [ -n "${BASELINE:-}" ]; then
  OLD=$(bash Benchmarks/build-baseline.sh "$BASELINE")/contid
  os=$(best "$OLD" replay --format summary "$LOG")
  or=$(best "$OLD" replay --format raw "$LOG")
  cmp <("$BIN" replay --format raw "$LOG") <("$OLD" replay --format raw "$LOG") >/dev/null \
    && same="identical" || same="DIFFERENT"
fi
t0=$(now); ausearch --input "$LOG" --raw -m EXECVE >/dev/null || true; t1=$(now)
ta=$(echo "$t1 - $t0" | bc -l)

awk -v b="$BYTES" -v r="$RECORDS" -v tw="$tw" -v ts="$ts" -v tr="$tr" -v ta="$ta" 'BEGIN {
  printf "log:      %.1f MB, %d records\n", b/1e6, r
  printf "wc -l:    %.3f s  %8.1f MB/s  %11.0f records/s   (best of 3)\n", tw, b/1e6/tw, r/tw
  printf "summary:  %.3f s  %8.1f MB/s  %11.0f records/s   (replay --format summary, best of 3)\n", ts, b/1e6/ts, r/ts
  printf "raw:      %.3f s  %8.1f MB/s  %11.0f records/s   (replay --format raw > /dev/null, best of 3)\n", tr, b/1e6/tr, r/tr
  printf "ausearch: %.3f s  %8.1f MB/s  %11.0f records/s   (--raw -m EXECVE)\n", ta, b/1e6/ta, r/ta
  printf "ratio:    summary/wc -l = %.2fx   (target >= 0.5x)\n", tw/ts
  printf "ratio:    raw/wc -l = %.2fx   (target >= 0.3x)\n", tw/tr
  printf "ratio:    contid/ausearch = %.1fx   (summary; target >= 150x and >= 1000 MB/s)\n", ta/ts
}'
if [ -n "${BASELINE:-}" ]; then
  awk -v b="$BYTES" -v ts="$ts" -v tr="$tr" -v os="$os" -v or="$or" -v rev="$BASELINE" -v tw="$tw" -v same="$same" 'BEGIN {
    printf "%s summary: %.3f s  %8.1f MB/s   (ratio to wc -l %.2fx)\n", rev, os, b/1e6/os, tw/os
    printf "%s raw:     %.3f s  %8.1f MB/s   (ratio to wc -l %.2fx; raw output %s)\n", rev, or, b/1e6/or, tw/or, same
    printf "new/%s:  summary %.2fx faster, raw %.2fx faster\n", rev, os/ts, or/tr
  }'
fi
