#!/usr/bin/env bash
# Builds contid-bench in release mode, runs the engine benchmark and compares
# its figures with the targets: >= 2,000,000 annotations/s on one core and
# <= 200 bytes per tracked process at 100,000 live processes.
# With BASELINE=REV the same benchmark of that git revision runs right after, in the
# same script (built by Benchmarks/build-baseline.sh), and the new/old ratios print.
# Usage: [BASELINE=REV] Benchmarks/engine.sh [--processes N] [--events N]
set -euo pipefail
cd "$(dirname "$0")/.."
scratch="${SCRATCH_PATH:-.build}"
shared="${CONTID_SHARED:-$(cd .. && pwd)/shared}"

swift build -c release --scratch-path "$scratch" --product contid-bench >&2
out="$("$scratch/release/contid-bench" engine --corpus "$shared/corpus/captured-linux-6.18-raw.log" "$@")"
echo "$out"

events=$(awk -F': ' '$1 == "events/s" {print $2}' <<<"$out")
bytes=$(awk -F': ' '$1 == "bytes per tracked process" {print $2}' <<<"$out")
whole=$(awk -F': ' '$1 == "whole events/s" {print $2}' <<<"$out")
pipeline=$(awk -F': ' '$1 == "pipeline events/s" {print $2}' <<<"$out")
events_target=2000000
bytes_target=200

echo "---"
awk -v v="$events" -v t="$events_target" \
    'BEGIN { printf "events/s: %d (target %d, ratio %.2f) %s\n", v, t, v / t, (v >= t ? "ok" : "BELOW TARGET") }'
if [[ "$whole" =~ ^[0-9]+$ ]]; then
    awk -v v="$whole" -v t="$events_target" \
        'BEGIN { printf "whole events/s (records built, EventAnnotator): %d (target %d, ratio %.2f) %s\n", v, t, v / t, (v >= t ? "ok" : "BELOW TARGET") }'
fi
if [[ "$pipeline" =~ ^[0-9]+$ ]]; then
    awk -v v="$pipeline" -v t="$events_target" \
        'BEGIN { printf "pipeline events/s (borrowed, EventAnnotation -> lines; the daemon'"'"'s path): %d (target %d, ratio %.2f) %s\n", v, t, v / t, (v >= t ? "ok" : "BELOW TARGET") }'
fi
if [[ "$bytes" =~ ^[0-9]+$ ]]; then
    # For memory the ratio is target / measured, so above 1 is good for both lines.
    awk -v v="$bytes" -v t="$bytes_target" \
        'BEGIN { printf "bytes/process: %d (target <= %d, ratio %.2f) %s\n", v, t, t / v, (v <= t ? "ok" : "ABOVE TARGET") }'
else
    echo "bytes/process: $bytes (mallinfo2 not available on this platform; see the rss line)"
fi

if [ -n "${BASELINE:-}" ]; then
    old_bin=$(bash Benchmarks/build-baseline.sh "$BASELINE")
    old="$("$old_bin/contid-bench" engine --corpus "$shared/corpus/captured-linux-6.18-raw.log" "$@")"
    echo "--- baseline $BASELINE"
    echo "$old"
    old_events=$(awk -F': ' '$1 == "events/s" {print $2}' <<<"$old")
    old_whole=$(awk -F': ' '$1 == "whole events/s" {print $2}' <<<"$old")
    old_bytes=$(awk -F': ' '$1 == "bytes per tracked process" {print $2}' <<<"$old")
    echo "--- new / $BASELINE"
    awk -v n="$events" -v o="$old_events" 'BEGIN { printf "events/s: %d vs %d, ratio %.2f\n", n, o, n / o }'
    if [[ "$whole" =~ ^[0-9]+$ && "$old_whole" =~ ^[0-9]+$ ]]; then
        awk -v n="$whole" -v o="$old_whole" 'BEGIN { printf "whole events/s: %d vs %d, ratio %.2f\n", n, o, n / o }'
    fi
    if [[ "$pipeline" =~ ^[0-9]+$ && "$old_whole" =~ ^[0-9]+$ ]]; then
        awk -v n="$pipeline" -v o="$old_whole" 'BEGIN { printf "per-event annotation, the daemon'"'"'s path then and now (pipeline vs %s'"'"'s whole events): %d vs %d, ratio %.2f\n", "'"$BASELINE"'", n, o, n / o }'
    fi
    if [[ "$bytes" =~ ^[0-9]+$ && "$old_bytes" =~ ^[0-9]+$ ]]; then
        awk -v n="$bytes" -v o="$old_bytes" 'BEGIN { printf "bytes/process: %d vs %d (old/new %.2f)\n", n, o, o / n }'
    fi
fi
