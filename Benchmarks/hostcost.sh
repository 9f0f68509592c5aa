#!/usr/bin/env bash
# The host's own cost of auditing: the fork+exec rate a spawner reaches (it asks for
# RATE/s for SECONDS s; each child execs busybox sh, which appends to a watched
# file) with audit switched off, under auditd (RAW) and under contidd, all in one
# run on the same machine. The user's rules are one file watch, as in live.sh;
# auditd gets the same kernel rules contidd loads (the watch + contidd's default
# namespace tracking rules). With BASELINE=REV the contidd of that git revision is
# measured too (built into .build-baseline-REV), e.g. BASELINE=4b45108 for the
# contidd that audited every fork, exec and exit.
# Also measured: a floor (audit on with the same rules, Benchmarks/audit-sink.py reading
# and discarding every record, and again also subscribed to the proc connector): what
# auditing these rules costs the host with a consumer that does nothing but read (its
# own recv per record is in the figure, so a daemon that batches can come out above it).
# Prints each rate, events logged and attributed, and the ratios to audit off
# (target >= 0.9 for contidd) and to the floor. Needs root, auditd installed and not running.
# Restores kernel audit state. Each round measures every case once, in turn (ROUNDS,
# default 3), so a drift of the machine hits all alike; the ratios are of the sums.
# Usage: [BASELINE=REV] [ROUNDS=N] Benchmarks/hostcost.sh [RATE] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source Benchmarks/daemon-bench.sh
rate="${1:-2500}"
seconds="${2:-20}"
scratch="${SCRATCH_PATH:-.build}"

daemon_bench_setup hostcost.sh "$scratch"
bin="$scratch/release"
baseline_bin=""
if [ -n "${BASELINE:-}" ]; then baseline_bin=$(bash Benchmarks/build-baseline.sh "$BASELINE"); fi

work="$(mktemp -d /tmp/contid-hostcost-XXXXXX)"
chmod 755 "$work"
watched="$work/watched"
: > "$watched"
found_enabled=$(auditctl -s | awk '$1 == "enabled" {print $2}')
found_backlog=$(auditctl -s | awk '$1 == "backlog_limit" {print $2}')

restore() {
  for p in $(pgrep -x auditd) $(pgrep -x contidd) $(pgrep -f Benchmarks/audit-sink.py); do kill -TERM "$p" 2>/dev/null || true; done
  sleep 1
  auditctl -D >/dev/null 2>&1 || true
  auditctl -e "$found_enabled" -b "$found_backlog" >/dev/null 2>&1 || true
  if [ -n "${KEEP_LOGS:-}" ]; then mkdir -p "$KEEP_LOGS"; cp "$work"/*.err* "$KEEP_LOGS"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap restore EXIT

# The spawner of daemon-bench.sh, asking RATE/s; prints the rate reached and the processes started.
spawner() { spawn_writers "$rate" "$seconds" "$watched" | cut -d' ' -f1,2; }

# Waits until nothing the spawner started is left (children finish after it stops).
settle() { for _ in $(seq 100); do pgrep -f "busybox sh -c : >> $watched" >/dev/null || break; sleep 0.1; done; sleep 1; }

measure_off() {
  auditctl -D >/dev/null
  auditctl -e 0 >/dev/null
  local r; r=$(spawner)
  settle
  echo "$r"
}


measure_auditd() {  # -> "rate n events"
  rm -f "$work"/auditd/audit.log*
  auditctl -b 8192 >/dev/null
  auditctl -w "$watched" -p wa -k bench >/dev/null
  auditctl -a always,exit -F arch=b64 -S unshare,setns -k contid-track >/dev/null
  auditctl -a always,exit -F arch=b32 -S unshare,setns -k contid-track >/dev/null
  auditctl -a always,exit -F arch=b64 -S clone -F 'a0&0x7e020000' -k contid-track >/dev/null
  auditctl -a always,exit -F arch=b32 -S clone -F 'a0&0x7e020000' -k contid-track >/dev/null
  auditd -n -c "$work/auditd" >"$work/auditd.out" 2>&1 &
  local pid=$!
  sleep 2
  local r; r=$(spawner)
  settle
  local cpu; cpu=$(cpu_seconds "$pid")
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  # The kernel forgets its audit daemon when the socket closes; wait for it.
  for _ in $(seq 50); do [ "$(auditctl -s | awk '$1 == "pid" {print $2}')" = 0 ] && break; sleep 0.1; done
  auditctl -D >/dev/null
  auditctl -e "$found_enabled" -b "$found_backlog" >/dev/null
  # Printed last: the caller reads this line through a pipe and goes on at once.
  echo "$r $(cat "$work"/auditd/audit.log* | grep -c 'key="bench"' || true) $cpu"
}

measure_floor() {  # [--connector] -> "rate n records": the kernel's own cost (same rules, a daemon that discards)
  auditctl -e 1 -b 8192 >/dev/null
  auditctl -w "$watched" -p wa -k bench >/dev/null
  auditctl -a always,exit -F arch=b64 -S unshare,setns -k contid-track >/dev/null
  auditctl -a always,exit -F arch=b32 -S unshare,setns -k contid-track >/dev/null
  auditctl -a always,exit -F arch=b64 -S clone -F 'a0&0x7e020000' -k contid-track >/dev/null
  auditctl -a always,exit -F arch=b32 -S clone -F 'a0&0x7e020000' -k contid-track >/dev/null
  python3 Benchmarks/audit-sink.py "$@" >"$work/sink.out" 2>&1 &
  local pid=$!
  for _ in $(seq 50); do [ "$(auditctl -s | awk '$1 == "pid" {print $2}')" = "$pid" ] && break; sleep 0.1; done
  local r; r=$(spawner)
  settle
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  for _ in $(seq 50); do [ "$(auditctl -s | awk '$1 == "pid" {print $2}')" = 0 ] && break; sleep 0.1; done
  auditctl -D >/dev/null
  auditctl -e "$found_enabled" -b "$found_backlog" >/dev/null
  echo "$r $(cat "$work/sink.out")"
}

mkdir -p "$work/rules.d"
printf -- '-w %s -p wa -k bench\n' "$watched" > "$work/rules.d/10-bench.rules"
printf 'max_log_file = 500\nnum_logs = 5\nflush = incremental_async\nfreq = 50\nbacklog_limit = 8192\n' > "$work/contidd.conf"
run_contidd() {  # BIN_DIR NAME -> "rate n events attributed"
  local dir="$1" name="$2"
  rm -rf "$work/$name" "$work/state-$name"
  "$dir/contidd" --source netlink --config "$work/contidd.conf" --log-dir "$work/$name" --run-dir "$work/run-$name" \
    --state-dir "$work/state-$name" --rules-dir "$work/rules.d" --log-format raw 2>"$work/$name.err" &
  local pid=$!
  for _ in $(seq 100); do [ -S "$work/run-$name/contid.sock" ] && break; sleep 0.1; done
  if [ ! -S "$work/run-$name/contid.sock" ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "contidd ($name) did not start:" >&2; cat "$work/$name.err" >&2; exit 1
  fi
  sleep 1
  rm -f "$work/go"; mkfifo "$work/go"
  ( read -r _ < "$work/go"; spawner > "$work/$name.rate" ) &
  local wpid=$!
  if ! "$dir/contid" --run-dir "$work/run-$name" set "$wpid" 4242 >&2; then
    kill "$wpid" 2>/dev/null; echo "registering the spawner with contidd ($name) failed" >&2; cat "$work/$name.err" >&2; exit 1
  fi
  echo go > "$work/go"
  wait "$wpid"
  settle
  local cpu; cpu=$(cpu_seconds "$pid")
  kill -TERM "$pid"; wait "$pid" || true
  cp "$work/$name.err" "$work/$name.err.$round" 2>/dev/null || true
  local events attributed
  events=$(cat "$work/$name"/audit.log* | grep -c 'key="bench"' || true)
  attributed=$(cat "$work/$name"/audit.log* | grep -c '^type=CONTAINER_ID.* contid=4242$' || true)
  echo "$(cat "$work/$name.rate") $events $attributed $cpu"
}
write_auditd_conf "$work/auditd"
rounds=${ROUNDS:-3}
declare -a OFF FLOOR CFLOOR AUD NEW BASE
summary=""
for round in $(seq "$rounds"); do
  read -r off_rate off_n < <(measure_off)
  read -r floor_rate floor_n floor_records < <(measure_floor)
  read -r cfloor_rate cfloor_n cfloor_msgs < <(measure_floor --connector)
  read -r auditd_rate auditd_n auditd_events auditd_cpu < <(measure_auditd)
  read -r contidd_rate contidd_n contidd_events contidd_attr contidd_cpu < <(run_contidd "$bin" contidd) || true
  [ -n "${contidd_attr:-}" ] || { echo "round $round: the contidd run failed (above)" >&2; exit 1; }
  line="round $round: audit off ${off_rate}/s | kernel floor ${floor_rate}/s ($floor_records records read and discarded), with the proc connector ${cfloor_rate}/s ($cfloor_msgs messages) | auditd ${auditd_rate}/s ($auditd_events events, cpu ${auditd_cpu} s) | contidd ${contidd_rate}/s ($contidd_events events, $contidd_attr attributed to 4242, cpu ${contidd_cpu} s)"
  OFF+=("$off_rate"); FLOOR+=("$floor_rate"); CFLOOR+=("$cfloor_rate"); AUD+=("$auditd_rate"); NEW+=("$contidd_rate")
  if [ -n "$baseline_bin" ]; then
    read -r base_rate base_n base_events base_attr base_cpu < <(run_contidd "$baseline_bin" baseline) || true
    [ -n "${base_attr:-}" ] || { echo "round $round: the baseline contidd run failed (above)" >&2; exit 1; }
    line="$line | contidd $BASELINE ${base_rate}/s ($base_events events, $base_attr attributed, cpu ${base_cpu} s)"
    BASE+=("$base_rate")
  fi
  echo "$line" >&2
  summary="$summary$line"$'\n'
done
sum() { local t=0; for v in "$@"; do t=$((t + v)); done; echo "$t"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
off_sum=$(sum "${OFF[@]}")
echo "spawner asking ${rate}/s for ${seconds} s, ${rounds} rounds (each: audit off, kernel floor, floor + connector, auditd, contidd${BASELINE:+, contidd $BASELINE}); rules: one watch (+ contidd's namespace tracking rules: unshare, setns, clone with CLONE_NEW*)"
printf '%s' "$summary"
echo "audit off:  $((off_sum / rounds))/s on average"
echo "kernel floor: $(( $(sum "${FLOOR[@]}") / rounds ))/s   ratio to audit off $(ratio "$(sum "${FLOOR[@]}")" "$off_sum") (audit on with the same rules, a minimal consumer that reads and discards: its own CPU per record counts too)"
echo "  + connector: $(( $(sum "${CFLOOR[@]}") / rounds ))/s   ratio to audit off $(ratio "$(sum "${CFLOOR[@]}")" "$off_sum") (the same, also subscribed to the proc connector as contidd is)"
echo "auditd:     $(( $(sum "${AUD[@]}") / rounds ))/s   ratio to audit off $(ratio "$(sum "${AUD[@]}")" "$off_sum")"
echo "contidd:    $(( $(sum "${NEW[@]}") / rounds ))/s   ratio to audit off $(ratio "$(sum "${NEW[@]}")" "$off_sum") (target >= 0.90), to the kernel floor $(ratio "$(sum "${NEW[@]}")" "$(sum "${FLOOR[@]}")")"
if [ -n "$baseline_bin" ]; then
  echo "contidd $BASELINE: $(( $(sum "${BASE[@]}") / rounds ))/s   ratio to audit off $(ratio "$(sum "${BASE[@]}")" "$off_sum")"
fi
