#!/usr/bin/env bash
# The fleet store, measured in one run on a generated trail (Benchmarks/container-trail.py):
#   1. rows/s one `contid ingest` inserts, pinned to one core (taskset), RowBinary;
#   2. the row formats on the first ROWS_FORMATS events: RowBinary, TabSeparated, JSONEachRow
#      (rows/s and the ingest's CPU seconds; the server's share is on the other core);
#   3. a --contid query over all EVENTS rows (ClickHouseQuery's SQL: FINAL, the sorting key)
#      against reading the same events from the file: `contid replay --format raw | grep`
#      (until `contid search` exists).
#
#   Benchmarks/clickhouse.sh [EVENTS]        (default 10000000: about 4 GB of log)
#
# Two ClickHouse servers on loopback (scripts/clickhouse-fleet.sh) under a temp dir,
# stopped at the end. Needs clickhouse-server (scripts/install-clickhouse.sh) and taskset.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-10000000}
ROWS_FORMATS=${ROWS_FORMATS:-1000000}
flock /tmp/contid-build.lock swift build -c release --product contid >/dev/null
BIN=$PWD/.build/release/contid
WORK=$(mktemp -d /tmp/contid-chbench-XXXXXX)
trap 'scripts/clickhouse-fleet.sh stop "$WORK/fleet" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
scripts/clickhouse-fleet.sh start "$WORK/fleet" "${CH_BASE_PORT:-19123}" >/dev/null
. "$WORK/fleet/env"
URL="http://$CH_USER:$CH_PASSWORD@${CH1_URL#http://}"
q() { curl -sS --fail-with-body "$CH1_URL/" --data-binary "$1"; }
now() { date +%s.%N; }

echo "generating $EVENTS events..."
python3 Benchmarks/container-trail.py "$WORK/trail.log" "$EVENTS" --node bench-a
LINES_FORMATS=$(( ROWS_FORMATS * 3 ))
head -n "$LINES_FORMATS" "$WORK/trail.log" > "$WORK/formats.log"
cat "$WORK/trail.log" > /dev/null  # from the page cache for every reader
MB=$(( $(stat -c %s "$WORK/trail.log") / 1000000 ))

echo
echo "== row formats ($(wc -l < "$WORK/formats.log") lines, one ingest on core 0)"
for f in RowBinary TabSeparated JSONEachRow; do
    q "TRUNCATE TABLE contid.events_local"
    t0=$(now)
    TIMEFORMAT="%U %S"
    cpu=$( { time taskset -c 0 "$BIN" ingest --clickhouse "$URL" --no-progress --row-format "$f" "$WORK/formats.log" 2>/dev/null; } 2>&1 | tail -1)
    t1=$(now)
    rows=$(q "SELECT count() FROM contid.events_local FINAL")
    awk -v f="$f" -v r="$rows" -v t0="$t0" -v t1="$t1" -v cpu="$cpu" 'BEGIN {
        split(cpu, c, " "); printf "%-13s %9d rows  %8.0f rows/s  ingest CPU %.2f s (%.2f us/row)\n", f, r, r / (t1 - t0), c[1] + c[2], (c[1] + c[2]) * 1e6 / r }'
done

echo
echo "== one ingest, $EVENTS events ($MB MB), RowBinary, core 0"
q "TRUNCATE TABLE contid.events_local"
t0=$(now)
taskset -c 0 "$BIN" ingest --clickhouse "$URL" --no-progress "$WORK/trail.log" 2>&1 | tail -1
t1=$(now)
ROWS=$(q "SELECT count() FROM contid.events_local FINAL")
awk -v r="$ROWS" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "ingest: %d rows in %.1f s = %.0f rows/s\n", r, t1 - t0, r / (t1 - t0) }'
q "OPTIMIZE TABLE contid.events_local FINAL" >/dev/null || true

echo
echo "== --contid 1004 over $ROWS rows"
SQL="SELECT count() FROM contid.events FINAL WHERE contid = '1004'"
RAW="SELECT raw FROM contid.events FINAL WHERE contid = '1004' ORDER BY time, ms, host, serial FORMAT TabSeparatedRaw"
best=""
for _ in 1 2 3; do
    t0=$(now); n=$(curl -sS "$CH2_URL/" --data-binary "$RAW" | grep -c ' contid=1004$'); t1=$(now)
    t=$(echo "$t1 - $t0" | bc -l); if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
done
echo "clickhouse (Distributed, FINAL, events' raw lines out): $n events in $best s"
t0=$(now); m=$("$BIN" replay --format raw --no-progress "$WORK/trail.log" | grep -c ' contid=1004$'); t1=$(now)
tf=$(echo "$t1 - $t0" | bc -l)
echo "files (contid replay --format raw | grep): $m events in $tf s"
echo "count check: $(q "$SQL") rows"
awk -v a="$best" -v b="$tf" 'BEGIN { printf "ratio files/clickhouse: %.1fx\n", b / a }'
[ "$n" = "$m" ] || { echo "MISMATCH: clickhouse $n, files $m" >&2; exit 1; }
