#!/usr/bin/env bash
# Runs the whole system test suite N times in a row (default 5), as .ci/run runs it:
# the debug test binary against the release contidd and contid, one test at a time.
# Stops at the first failed run. Prints each run's result and duration, then
# "N passed, M failed"; exits non-zero unless every run passed. Each run's output is
# kept in a temporary directory (printed at the start).
#
#   bash scripts/system-tests-repeat.sh [N]
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [N]   (N >= 1 runs of the system tests, default 5)" >&2
  exit 2
fi
if [ "$(id -u)" != 0 ]; then
  echo "the system tests drive the kernel audit subsystem: run $0 as root" >&2
  exit 1
fi
for tool in auditctl ausearch busybox setpriv python3 perl; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: run scripts/install-deps.sh first" >&2; exit 1; }
done

echo "== build: tests (debug), contidd and contid (release)"
swift build --build-tests 2>&1 | grep -E 'error|Build complete' | tail -5
[ "${PIPESTATUS[0]}" = 0 ] || { echo "build failed" >&2; exit 1; }
for product in contidd contid; do
  swift build -c release --product "$product" 2>&1 | grep -E 'error|Build of product' | tail -3
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "release build of $product failed" >&2; exit 1; }
done
export CONTID_TEST_BIN_DIR="$PWD/.build/release"

# The kernel's audit state as found; every run must leave it so (the tests restore it).
kernel_state() {
  auditctl -l
  auditctl -s | grep -E '^(enabled|failure|pid|backlog_limit|rate_limit|backlog_wait_time) '
}
found=$(kernel_state)
logs=$(mktemp -d /tmp/contid-system-tests-XXXXXX)
echo "== $runs runs of the system tests (output of each in $logs)"
passed=0 failed=0
for ((i = 1; i <= runs; i++)); do
  log="$logs/run-$i.log"
  began=$(date +%s%N)
  swift test --skip-build --filter SystemTests --no-parallel >"$log" 2>&1
  status=$?
  ms=$((($(date +%s%N) - began) / 1000000))
  duration=$(printf '%d.%01d s' $((ms / 1000)) $((ms % 1000 / 100)))
  result=$(grep -E '^[✔✘] Test run with' "$log" | tail -1)
  tests=$(sed -nE 's/^[✔✘] Test run with ([0-9]+) tests?.*/\1/p' <<<"$result")
  problem=""
  if [ "$status" != 0 ]; then
    problem="swift test exited with status $status"
  elif [ -z "$tests" ] || [ "$tests" = 0 ]; then
    problem="no system test ran"
  elif [ "$(kernel_state)" != "$found" ]; then
    problem="kernel audit state not restored: $(kernel_state | tr '\n' ';')"
  fi
  if [ -z "$problem" ]; then
    passed=$((passed + 1))
    echo "run $i/$runs: passed in $duration ($tests tests)"
  else
    failed=$((failed + 1))
    echo "run $i/$runs: FAILED in $duration: $problem; $log:"
    grep -E '^✘|recorded an issue|Caught error' "$log" | head -40
    break
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
