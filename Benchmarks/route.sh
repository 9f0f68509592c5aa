#!/usr/bin/env bash
# Routing's cost (issue 9), in one run: 100 containers, 100 readers, 200 rules, against
# the same workload with routing off.
#
# Workload: CONTAINERS registered containers (busybox sh, IDs 5001...), each opening a
# watched file OPENS times from the shell itself (`: < FILE`: no fork; one event of
# SYSCALL, CWD, PATH, PROCTITLE records each). contidd is pinned to CPU 0, the workload
# to CPU 1.
#   off: no route or ingress rules, no readers: the host log alone;
#   on:  200 rules (100 route rules, one per container, `-F contid=ID -F key=rbench
#        -F dest=host,container`, in ID order so that an event walks half of them on
#        average; 100 ingress rules on containers that do not exist, checked first:
#        every event walks all of them), and one reader per container (a host reader
#        asking for its contid, Benchmarks/route-readers.py, all in one process).
# Prints for each: events written to the host log, contidd's CPU seconds, events routed
# per CPU second (on one core), the host log's latency (kernel timestamp to the line in
# the file, p50/p99) and, with routing on, the readers' latency and what they received;
# then the ratios on/off.
# Needs root, auditd installed and not running. Restores kernel audit state.
# Usage: Benchmarks/route.sh [CONTAINERS] [OPENS]
set -euo pipefail
cd "$(dirname "$0")/.."
source Benchmarks/daemon-bench.sh
containers="${1:-100}"
opens="${2:-400}"
scratch="${SCRATCH_PATH:-.build}"

daemon_bench_setup route.sh "$scratch"
bin="$scratch/release"
work="$(mktemp -d /tmp/contid-route-XXXXXX)"
chmod 755 "$work"
mkdir -p "$work/w"
: > "$work/w/file"
save_audit_state
daemon_pid=""
helpers=()

restore() {
  for p in "${helpers[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  restore_audit_state
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap restore EXIT

rules() {  # MODE -> the rules directory's text
  echo "-w $work/w -p rwa -k rbench"
  if [ "$1" = on ]; then
    for i in $(seq 100); do echo "-a never,ingress -F contid=$((9000 + i)) -F msgtype=CWD"; done
    for i in $(seq 100); do echo "-a always,route -F contid=$((5000 + i)) -F key=rbench -F dest=host,container"; done
  fi
}

run() {  # MODE -> "events cpu rate host_p50 host_p99 | reader summary"
  local mode="$1"
  rm -rf "$work/rules-$mode"
  mkdir -p "$work/rules-$mode"
  rules "$mode" > "$work/rules-$mode/10-bench.rules"
  printf 'backlog_limit = 65536\nreader_queue = 65536\n' > "$work/$mode.conf"
  start_bench_contidd "$bin" "$work" "$mode" "$work/$mode.conf" "$work/rules-$mode" taskset -c 0
  # The containers, waiting for the go.
  rm -f "$work/go"; mkfifo "$work/go"
  local pids=()
  for i in $(seq "$containers"); do
    taskset -c 1 busybox sh -c "read x < $work/go; i=0; while [ \$i -lt $opens ]; do : < $work/w/file; i=\$((i + 1)); done" &
    pids+=($!)
    "$bin/contid" --run-dir "$work/run-$mode" set "$!" $((5000 + i)) >/dev/null
  done
  # The host log's tailer; the readers (routing on).
  rm -f "$work/$mode".ready*
  taskset -c 1 python3 Benchmarks/route-readers.py --tail "$work/$mode/audit.log" --ready "$work/$mode.ready-tail" --out "$work/$mode.tail" &
  local tailer=$!; helpers+=("$tailer")
  local reader=""
  if [ "$mode" = on ]; then
    local args=()
    for i in $(seq "$containers"); do args+=(--contid $((5000 + i))); done
    taskset -c 1 python3 Benchmarks/route-readers.py --socket "$work/run-$mode/reader.sock" "${args[@]}" \
      --ready "$work/$mode.ready-readers" --out "$work/$mode.readers" &
    reader=$!; helpers+=("$reader")
    for _ in $(seq 100); do [ -e "$work/$mode.ready-readers" ] && break; sleep 0.1; done
    [ -e "$work/$mode.ready-readers" ] || { echo "the readers did not subscribe" >&2; cat "$work/$mode.err" >&2; exit 1; }
  fi
  for _ in $(seq 100); do [ -e "$work/$mode.ready-tail" ] && break; sleep 0.1; done
  sleep 1
  local cpu0; cpu0=$(cpu_seconds "$daemon_pid")
  for _ in "${pids[@]}"; do echo go; done > "$work/go" &
  wait "${pids[@]}"
  # Until the host log holds every event (or 60 s).
  local want=$((containers * opens)) have=0
  for _ in $(seq 600); do
    have=$(cat "$work/$mode"/audit.log* 2>/dev/null | grep -c 'key="rbench"' || true)
    [ "$have" -ge "$want" ] && break
    sleep 0.1
  done
  sleep 1
  local cpu1; cpu1=$(cpu_seconds "$daemon_pid")
  kill -TERM "$tailer"; wait "$tailer" || true
  if [ -n "$reader" ]; then kill -TERM "$reader"; wait "$reader" || true; fi
  local lost; lost=$("$bin/contid" --run-dir "$work/run-$mode" status | tr ' ' '\n' | awk -F= '$1 == "kernel_lost" {print $2}')
  kill -TERM "$daemon_pid"; wait "$daemon_pid" || true; daemon_pid=""
  wait_no_audit_daemon
  local cpu; cpu=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')
  local rate; rate=$(awk -v n="$have" -v c="$cpu" 'BEGIN { printf "%.0f", (c > 0 ? n / c : 0) }')
  echo "$have $cpu $rate ${lost:-?} $(cat "$work/$mode.tail") | $( [ -n "$reader" ] && cat "$work/$mode.readers" || echo none)"
}

echo "route.sh: $containers containers x $opens opens ($((containers * opens)) events), contidd on CPU 0, workload on CPU 1"
off=$(run off)
on=$(run on)
field() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2; exit}'; }
read -r off_n off_cpu off_rate off_lost _ <<<"$off"
read -r on_n on_cpu on_rate on_lost _ <<<"$on"
echo "routing off: $off_n events in the host log, kernel lost $off_lost, contidd cpu ${off_cpu}s -> ${off_rate} events/s on one core; host log latency p50 $(field "${off%%|*}" p50_ms) ms p99 $(field "${off%%|*}" p99_ms) ms"
echo "routing on (200 rules, $containers readers): $on_n events in the host log, kernel lost $on_lost, contidd cpu ${on_cpu}s -> ${on_rate} events/s on one core; host log latency p50 $(field "${on%%|*}" p50_ms) ms p99 $(field "${on%%|*}" p99_ms) ms"
echo "  readers: ${on#*| }"
echo "ratio on/off: events per cpu second $(awk -v a="$on_rate" -v b="$off_rate" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
