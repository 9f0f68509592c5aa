#!/usr/bin/env bash
# A walkthrough on the live kernel: contidd in a temporary directory, a watch rule,
# a container and a nested one registered with `contid set`, refusals, and the
# resulting trail read back with ausearch and contid replay. Leaves nothing behind.
set -euo pipefail
BIN=${1:-$(cd "$(dirname "$0")/.." && pwd)/.build/release}
work=$(mktemp -d /tmp/contid-demo-XXXXXX)
chmod 755 "$work"
mkdir -p "$work/rules.d"
: > "$work/watched"
echo "-w $work/watched -p wa -k demo" > "$work/rules.d/10-demo.rules"
"$BIN/contidd" --log-dir "$work/log" --run-dir "$work/run" --state-dir "$work/state" --rules-dir "$work/rules.d" 2>"$work/contidd.err" &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null; wait $daemon 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do [ -S "$work/run/contid.sock" ] && break; sleep 0.1; done
export CONTID_RUN_DIR="$work/run"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@" || true; }

step "a container (ID 123456) whose first process writes to a watched file, starts a"
echo "   grandchild that writes too, and registers its own child as a nested container (ID 7)"
mkfifo "$work/go" "$work/go2"
(
  read -r _ < "$work/go"
  echo from-the-container >> "$work/watched"
  sh -c "echo from-a-grandchild >> $work/watched"
  ( read -r _ < "$work/go2"; echo from-the-nested-container >> "$work/watched" ) &
  b=$!
  printf '$ contid set %s 7        (run inside the container)\n' "$b"
  "$BIN/contid" set "$b" 7
  "$BIN/contid" get "$b"
  echo go > "$work/go2"
  wait "$b"
) &
c=$!
show "$BIN/contid" set "$c" 123456
show "$BIN/contid" get "$c"
echo go > "$work/go"
wait "$c"

step "refusals come from the checks, with their errno"
sleep 30 & s=$!
show "$BIN/contid" set "$s" 42
show "$BIN/contid" set "$s" 43
show setpriv --reuid 65534 --regid 65534 --clear-groups "$BIN/contid" set "$s" 44
show sh -c "\"$BIN/contid\" set \$\$ 45"   # a self-set
kill "$s"

sleep 1
step "the trail: ausearch -k demo reads contid's log, CONTAINER_ID records attached"
show ausearch --input "$work/log/audit.log" -k demo --format raw
step "contid replay --format json re-attributes the same trail offline"
"$BIN/contid" replay --format json "$work/log/audit.log" | grep '"contid":"' | cut -c1-160
step "every registration attempt, recorded (CONTAINER_OP through the kernel)"
grep -E '^type=(CONTAINER_OP|NS_INFO)' "$work/log/audit.log"
