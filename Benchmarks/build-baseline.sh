#!/usr/bin/env bash
# Builds contidd, contid and contid-bench of git revision REV (release) into
# .build-baseline-REV, from a worktree of its own, and prints the binaries' folder:
# the "before" side of a benchmark run side by side with the current build.
# Usage: Benchmarks/build-baseline.sh REV
set -euo pipefail
cd "$(dirname "$0")/.."
rev=$(git rev-parse --short "${1:?usage: build-baseline.sh REV}")
top=$PWD
tree="$top/.build-baseline-$rev/src"
if [ ! -d "$tree" ]; then
  mkdir -p "$top/.build-baseline-$rev"
  git worktree add -f --detach "$tree" "$rev" >&2
fi
for product in contidd contid contid-bench; do
  (cd "$tree" && swift build -c release --scratch-path "$top/.build-baseline-$rev/build" --product "$product" 2>&1 | grep -E 'error|Build of' >&2) || true
done
echo "$top/.build-baseline-$rev/build/release"
