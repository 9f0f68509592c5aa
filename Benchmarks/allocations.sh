#!/usr/bin/env bash
# Allocations per event on contidd's event path (record bytes in, host-log bytes out),
# counted by a malloc counter (Benchmarks/Sources/CMallocCounter) around the path, in
# one run: "before" is the path contidd had until the shared pipeline (an owned copy of
# every event, EventAnnotator on it, String tokenizing for the rule filter,
# HostLogWriter.write(event)); "after" is EventPipeline with the host log sink, as
# contidd runs it now. Both write the same host log (checked byte for byte).
# Usage: Benchmarks/allocations.sh [RECORDS]   (default 200000 captured records)
set -euo pipefail
cd "$(dirname "$0")/.."
scratch="${SCRATCH_PATH:-.build}"
shared="${CONTID_SHARED:-$(cd .. && pwd)/shared}"
swift build -c release --scratch-path "$scratch" --product contid-bench >&2
"$scratch/release/contid-bench" live "$shared/corpus/captured-linux-6.18-raw.log" "${1:-200000}"
