#!/usr/bin/env bash
# Replay throughput: contid replay --format summary against ausearch on the same
# >= 200 MB log, made by expanding the ENRICHED capture of the shared corpus.
#
#   Benchmarks/replay.sh [MEGABYTES]      (default 200)
#
# Prints MB/s and records/s for both tools and the ratio contid/ausearch.
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
cat "$LOG" >/dev/null   # both tools read from the page cache

now() { date +%s.%N; }
# contid: best of 3 (one core: the replay is single-threaded)
best=""
for _ in 1 2 3; do
  t0=$(now); out=$("$BIN" replay --format summary "$LOG"); t1=$(now)
  t=$(echo "$t1 - $t0" | bc -l)
  if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
done
RECORDS=$(sed -n 's/^records=\([0-9]*\) .*/\1/p' <<<"$out")
echo "contid:   $out"
t0=$(now); ausearch --input "$LOG" --raw -m EXECVE >/dev/null || true; t1=$(now)
ta=$(echo "$t1 - $t0" | bc -l)

awk -v b="$BYTES" -v r="$RECORDS" -v tc="$best" -v ta="$ta" 'BEGIN {
  printf "log:      %.1f MB, %d records\n", b/1e6, r
  printf "contid:   %.3f s  %8.1f MB/s  %11.0f records/s   (replay --format summary, best of 3)\n", tc, b/1e6/tc, r/tc
  printf "ausearch: %.3f s  %8.1f MB/s  %11.0f records/s   (--raw -m EXECVE)\n", ta, b/1e6/ta, r/ta
  printf "ratio:    contid/ausearch = %.1fx   (target >= 150x and >= 1000 MB/s)\n", ta/tc
}'
