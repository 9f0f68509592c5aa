#!/usr/bin/env bash
# What namespace tracking costs (issue 11), in one run:
#   1. The destruction check with 1,000 live namespaces that no task uses (each made by
#      `unshare --net=FILE sleep` in a registered container, so contidd learns its handle
#      while the sleep lives; then the sleeps are killed and only the bind mount keeps it
#      alive, so contidd must keep probing it: open_by_handle_at until ESTALE): contidd's CPU
#      over IDLE seconds of an idle stream, against the same contidd idle with none of
#      them, as a share of one core (target: under 1% of a core).
#   2. A fork storm (the spawner of daemon-bench.sh: fork + exec of busybox sh appending to
#      a watched file, asking RATE/s for SECONDS) under contidd with tracking_rules =
#      namespaces (unshare, setns, clone with CLONE_NEW*) and = none, PAIRS paired runs in
#      alternating order; the median of the pairs' rate ratios (target: within 5%).
# Needs root, auditd installed and not running. Restores kernel audit state.
# Usage: [PAIRS=5] [IDLE=30] Benchmarks/ns.sh [NAMESPACES] [RATE] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source Benchmarks/daemon-bench.sh
count="${1:-1000}"
rate="${2:-3000}"
seconds="${3:-10}"
pairs="${PAIRS:-5}"
idle="${IDLE:-30}"
scratch="${SCRATCH_PATH:-.build}"

daemon_bench_setup ns.sh "$scratch"
bin="$scratch/release"
work="$(mktemp -d /tmp/contid-ns-XXXXXX)"
chmod 755 "$work"
watched="$work/watched"
: > "$watched"
save_audit_state
daemon_pid=""

restore() {
  [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  if mountpoint -q "$work/ns" 2>/dev/null; then
    for f in "$work"/ns/n*; do umount "$f" 2>/dev/null || true; done
    umount "$work/ns" 2>/dev/null || true
  fi
  restore_audit_state
  rm -rf "$work"
}
trap restore EXIT

mkdir -p "$work/rules.d"
printf -- '-w %s -p wa -k bench\n' "$watched" > "$work/rules.d/10-bench.rules"

start_contidd() {  # NAME TRACKING -> sets daemon_pid
  local name="$1" tracking="$2"
  printf 'backlog_limit = 8192\ntracking_rules = %s\n' "$tracking" > "$work/$name.conf"
  start_bench_contidd "$bin" "$work" "$name" "$work/$name.conf" "$work/rules.d"
  sleep 1
}

stop_contidd() {
  kill -TERM "$daemon_pid"; wait "$daemon_pid" || true
  daemon_pid=""
  wait_no_audit_daemon
}

status_of() {  # NAME KEY -> the counter from `contid status`
  "$bin/contid" --run-dir "$work/run-$1" status | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'
}

# --- 1. the destruction check with COUNT live namespaces ---------------------------
start_contidd check namespaces
cpu_a=$(cpu_seconds "$daemon_pid")
sleep "$idle"
cpu_b=$(cpu_seconds "$daemon_pid")

mkdir -p "$work/ns"
mount -t tmpfs tmpfs "$work/ns"
mount --make-private "$work/ns"
rm -f "$work/go"; mkfifo "$work/go"
( read -r _ < "$work/go"
  for i in $(seq "$count"); do : > "$work/ns/n$i"; unshare --net="$work/ns/n$i" busybox sleep 3600 & done
  wait ) > /dev/null 2>&1 &
maker=$!
"$bin/contid" --run-dir "$work/run-check" set "$maker" 4343 >&2
echo go > "$work/go"
# Every namespace known while its sleep lives; then the sleeps go and only the mounts hold them.
for _ in $(seq 600); do
  known=$(status_of check namespaces_known)
  [ "${known:-0}" -ge "$count" ] && break
  sleep 0.1
done
pkill -KILL -f "busybox sleep 3600" || true
wait "$maker" 2>/dev/null || true
for _ in $(seq 300); do
  candidates=$(status_of check namespace_candidates)
  [ "${candidates:-0}" -ge "$count" ] && break
  sleep 0.1
done
# Past the first probes (every 250 ms, then every second) to the steady state: each long-lived
# candidate probed every 2 s (NamespaceWatch.longLivedAfter).
sleep 15
candidates=$(status_of check namespace_candidates)
destroyed_before=$(status_of check namespaces_destroyed)
probes_a=$(status_of check namespace_probes)
cpu_c=$(cpu_seconds "$daemon_pid")
sleep "$idle"
cpu_d=$(cpu_seconds "$daemon_pid")
probes_b=$(status_of check namespace_probes)
known=$(status_of check namespaces_known)
destroyed_after=$(status_of check namespaces_destroyed)
stop_contidd
for f in "$work"/ns/n*; do umount "$f" 2>/dev/null || true; done

share() { awk -v a="$1" -v b="$2" -v t="$idle" 'BEGIN { printf "%.2f", (b - a) / t * 100 }'; }
idle_none=$(share "$cpu_a" "$cpu_b")
idle_many=$(share "$cpu_c" "$cpu_d")
echo "destruction check: contidd idle with no extra namespace ${idle_none}% of a core; with ${known} known, ${candidates} candidates (${count} made, alive, no task) ${idle_many}% of a core; $((probes_b - probes_a)) probes in ${idle}s; destroyed meanwhile $((destroyed_after - destroyed_before)) (expected 0)"
echo "destruction check cost: $(awk -v a="$idle_many" -v b="$idle_none" 'BEGIN { printf "%.2f", a - b }')% of a core (target < 1%)"

# --- 2. a fork storm with and without namespace tracking ---------------------------
settle() { for _ in $(seq 100); do pgrep -f "busybox sh -c : >> $watched" >/dev/null || break; sleep 0.1; done; sleep 1; }
storm() {  # TRACKING -> the rate the spawner reached
  start_contidd "storm-$1" "$1"
  local r; r=$(spawn_writers "$rate" "$seconds" "$watched" | cut -d' ' -f1)
  settle
  stop_contidd
  echo "$r"
}
ratios=()
for p in $(seq "$pairs"); do
  if [ $((p % 2)) = 1 ]; then with=$(storm namespaces); without=$(storm none)
  else without=$(storm none); with=$(storm namespaces); fi
  r=$(awk -v a="$with" -v b="$without" 'BEGIN { printf "%.3f", a / b }')
  ratios+=("$r")
  echo "pair $p: tracking_rules=namespaces ${with}/s, none ${without}/s, ratio $r" >&2
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')
echo "fork storm (asking ${rate}/s for ${seconds}s, ${pairs} pairs): with namespace tracking / without, median ratio ${median} (target within 0.95..1.05); pairs: ${ratios[*]}"
