#!/usr/bin/env bash
# The live daemon benchmark: the same workload (about RATE exec/s for SECONDS s:
# each child execs busybox sh, which opens a watched file for writing) under the
# same rules (contid's tracking rules + one watch), once with auditd
# (log_format = RAW) and once with contidd. Prints each daemon's CPU seconds
# (utime + stime from /proc/PID/stat), the events each logged, the kernel's lost
# delta for each, and the ratio contidd/auditd (target <= 1.0).
# Needs root, auditd installed and not running. Restores kernel audit state.
# With BASELINE=REV the contidd of that git revision runs the same workload too.
# Usage: [BASELINE=REV] Benchmarks/live.sh [RATE] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source Benchmarks/daemon-bench.sh
rate="${1:-1000}"
seconds="${2:-30}"
scratch="${SCRATCH_PATH:-.build}"

daemon_bench_setup live.sh "$scratch"
contidd="$scratch/release/contidd"

work="$(mktemp -d /tmp/contid-live-XXXXXX)"
chmod 755 "$work"
watched="$work/watched"
: > "$watched"
found_enabled=$(auditctl -s | awk '$1 == "enabled" {print $2}')
found_backlog=$(auditctl -s | awk '$1 == "backlog_limit" {print $2}')

restore() {
  for p in $(pgrep -x auditd) $(pgrep -x contidd); do kill -TERM "$p" 2>/dev/null || true; done
  sleep 1
  auditctl -D >/dev/null 2>&1 || true
  auditctl -e "$found_enabled" -b "$found_backlog" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap restore EXIT

rules="-a always,exit -F arch=b64 -S clone,fork,vfork,execve,exit_group,unshare,setns,execveat,clone3 -k contid-track
-a always,exit -F arch=b32 -S fork,execve,clone,vfork,exit_group,unshare,setns,execveat,clone3 -k contid-track
-w $watched -p wa -k bench"

# The workload: the spawner of daemon-bench.sh, paced at RATE/s.
workload() {
  spawn_writers "$rate" "$seconds" "$watched" | awk '{ printf "workload: %d execs in %.1f s\n", $2, $3 > "/dev/stderr" }'
}

lost() { auditctl -s | awk '$1 == "lost" {print $2}'; }

# --- auditd -----------------------------------------------------------------
write_auditd_conf "$work/auditd"
auditctl -D >/dev/null
auditctl -b 8192 >/dev/null
while read -r line; do auditctl $line >/dev/null; done <<<"$rules"
auditd -n -c "$work/auditd" >"$work/auditd.out" 2>&1 &
auditd_pid=$!
sleep 2
lost0=$(lost)
(workload)
sleep 2
auditd_cpu=$(cpu_seconds "$auditd_pid")
auditd_lost=$(( $(lost) - lost0 ))
kill -TERM "$auditd_pid"; wait "$auditd_pid" 2>/dev/null || true
auditd_events=$(cat "$work"/auditd/audit.log* | grep -c 'key="bench"' || true)
auditctl -D >/dev/null
auditctl -e "$found_enabled" -b "$found_backlog" >/dev/null

# --- contidd ----------------------------------------------------------------
# The same kernel rules as auditd had: tracking_rules = all (contidd's default,
# namespaces, asks the kernel for far fewer records; Benchmarks/hostcost.sh measures that).
mkdir -p "$work/rules.d"
printf -- '-w %s -p wa -k bench\n' "$watched" > "$work/rules.d/10-bench.rules"
printf 'max_log_file = 500\nnum_logs = 5\nflush = incremental_async\nfreq = 50\nbacklog_limit = 8192\n' > "$work/baseline.conf"
{ cat "$work/baseline.conf"; echo 'tracking_rules = all'; } > "$work/contidd.conf"
run_contidd() {  # BIN_DIR NAME CONF -> "cpu lost events attributed"
  local dir="$1" name="$2" conf="$3"
  "$dir/contidd" --source netlink --config "$conf" --log-dir "$work/$name" --run-dir "$work/run-$name" \
    --state-dir "$work/state-$name" --rules-dir "$work/rules.d" --log-format raw 2>"$work/$name.err" &
  local pid=$!
  for _ in $(seq 100); do [ -S "$work/run-$name/contid.sock" ] && break; sleep 0.1; done
  sleep 1
  local l0; l0=$(lost)
  # The workload runs in a registered container, so every event it causes is annotated
  # (record=1 + CONTAINER_ID): contidd does strictly more than auditd.
  rm -f "$work/go"; mkfifo "$work/go"
  ( read -r _ < "$work/go"; workload ) &
  local wpid=$!
  "$dir/contid" --run-dir "$work/run-$name" set "$wpid" 4242 >&2
  echo go > "$work/go"
  wait "$wpid"
  sleep 2
  local cpu; cpu=$(cpu_seconds "$pid")
  local lost_n=$(( $(lost) - l0 ))
  kill -TERM "$pid"; wait "$pid" || true
  grep -E 'losses|processes=' "$work/$name.err" | sed 's/^/  /' >&2 || true
  echo "$cpu $lost_n $(cat "$work/$name"/audit.log* | grep -c 'key="bench"' || true) $(cat "$work/$name"/audit.log* | grep -c '^type=CONTAINER_ID' || true)"
}
read -r contidd_cpu contidd_lost contidd_events contidd_attributed < <(run_contidd "$(dirname "$contidd")" contidd "$work/contidd.conf")
if [ -n "${BASELINE:-}" ]; then
  base_bin=$(bash Benchmarks/build-baseline.sh "$BASELINE")
  read -r base_cpu base_lost base_events base_attributed < <(run_contidd "$base_bin" baseline "$work/baseline.conf")
fi

echo "workload: ~${rate} exec/s for ${seconds} s, rules: tracking (clone..clone3, b64+b32) + one watch"
echo "auditd  (RAW):  cpu ${auditd_cpu} s, events ${auditd_events}, kernel lost ${auditd_lost}"
echo "contidd (raw):  cpu ${contidd_cpu} s, events ${contidd_events} (${contidd_attributed} CONTAINER_ID records), kernel lost ${contidd_lost}"
awk -v c="$contidd_cpu" -v a="$auditd_cpu" \
  'BEGIN { r = (a > 0 ? c / a : 0); printf "ratio contidd/auditd: %.2f (target <= 1.0) %s\n", r, (r <= 1.0 ? "ok" : "ABOVE TARGET") }'
if [ -n "${BASELINE:-}" ]; then
  echo "contidd ${BASELINE}: cpu ${base_cpu} s, events ${base_events} (${base_attributed} CONTAINER_ID records), kernel lost ${base_lost}"
  awk -v c="$base_cpu" -v a="$auditd_cpu" 'BEGIN { printf "ratio contidd %s/auditd: %.2f\n", "'"$BASELINE"'", (a > 0 ? c / a : 0) }'
fi
