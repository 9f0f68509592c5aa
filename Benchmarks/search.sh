#!/usr/bin/env bash
# contid search / report / index on one generated log of >= 1 GB (Benchmarks/gen-log.py:
# the corpus capture repeated, 200 containers living for spans of its time), in one run.
# Each line: seconds, MB/s, and the ratios to `wc -l FILE` (the floor) and to the stock tool:
#   contid search -k KEY                    vs  ausearch -if FILE -k KEY --raw
#   contid search --contid X (no index)     container 1000001 lives through 1% of the log's time
#   contid search --contid X (with index)   plus the share of the log's bytes it read
#   contid report                           vs  aureport -if FILE --summary
#
#   Benchmarks/search.sh [MEGABYTES] [KEY]     (defaults 1100, etcread)
#
# Targets (issue 10): without the index >= 0.5x wc -l for every query; with it, < 5% of the
# bytes read and >= 10x faster than without. contid runs are best of 3, the stock tools once
# (they take minutes on a gigabyte). All read from the page cache.
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-1100}
KEY=${2:-etcread}
command -v ausearch >/dev/null || { echo "ausearch missing: apt-get install -y auditd" >&2; exit 1; }
flock /tmp/contid-build.lock swift build -c release --product contid >/dev/null
BIN=.build/release/contid
LOG=$(mktemp --suffix=.log)
trap 'rm -f "$LOG" "$LOG.cidx"' EXIT
python3 Benchmarks/gen-log.py "$LOG" "$MB"
BYTES=$(stat -c %s "$LOG")
cat "$LOG" >/dev/null

now() { date +%s.%N; }
once() { local t0 t1; t0=$(now); "$@" >/dev/null 2>&1 || true; t1=$(now); echo "$t1 - $t0" | bc -l; }
best() {
  local b="" t
  for _ in 1 2 3; do
    t=$(once "$@")
    if [ -z "$b" ] || [ "$(echo "$t < $b" | bc -l)" = 1 ]; then b=$t; fi
  done
  echo "$b"
}
line() {  # name seconds [reference-seconds reference-name]
  awk -v n="$1" -v t="$2" -v b="$BYTES" -v w="$TW" -v r="${3:-}" -v rn="${4:-}" 'BEGIN {
    printf "%-34s %8.3f s %9.1f MB/s   %5.2fx wc -l", n, t, b/1e6/t, w/t
    if (r != "") printf "   %7.1fx %s", r/t, rn
    printf "\n" }'
}
TW=$(best wc -l "$LOG")
printf "log: %.1f MB, %d lines\n" "$(echo "$BYTES/1000000" | bc -l)" "$(wc -l <"$LOG")"
line "wc -l" "$TW"

rm -f "$LOG.cidx"
TK=$(best "$BIN" search --no-progress "$LOG" -k "$KEY")
TA=$(once ausearch -if "$LOG" -k "$KEY" --raw)
line "contid search -k $KEY" "$TK" "$TA" "ausearch"
line "ausearch -k $KEY --raw" "$TA"
n1=$("$BIN" search --no-progress "$LOG" -k "$KEY" | wc -l); n2=$(ausearch -if "$LOG" -k "$KEY" --raw 2>/dev/null | wc -l)
echo "  lines out: contid $n1, ausearch $n2 (ausearch splits a few events and adds 0x1D to none here)"

TC=$(best "$BIN" search --no-progress --no-index "$LOG" --contid 1000001)
line "contid search --contid (no index)" "$TC"
t0=$(now); "$BIN" index "$LOG" >/dev/null; t1=$(now)
TI=$(echo "$t1 - $t0" | bc -l)
line "contid index (build)" "$TI"
echo "  index: $(stat -c %s "$LOG.cidx") bytes"
TX=$(best "$BIN" search --no-progress "$LOG" --contid 1000001)
line "contid search --contid (index)" "$TX" "$TC" "no index"
cmp <("$BIN" search --no-progress --no-index "$LOG" --contid 1000001) <("$BIN" search --no-progress "$LOG" --contid 1000001) \
  && echo "  same events with and without the index" || echo "  DIFFERENT with the index"
READ=$("$BIN" search --no-progress --stats "$LOG" --contid 1000001 2>&1 >/dev/null | sed -n 's/.*read=\([0-9]*\).*/\1/p')
[ -n "$READ" ] && awk -v r="$READ" -v b="$BYTES" 'BEGIN { printf "  bytes read with the index: %d of %d (%.2f%%)\n", r, b, 100*r/b }'

TR=$(best "$BIN" report --no-progress "$LOG")
TAR=$(once aureport -if "$LOG" --summary)
line "contid report" "$TR" "$TAR" "aureport --summary"
line "aureport --summary" "$TAR"
