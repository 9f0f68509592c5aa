# Shared by the benchmarks that run audit daemons (live.sh, hostcost.sh); sourced.

# Checks that it may run (root, no auditd or contidd running), waits for the audit-state
# lock that system tests and other benchmarks take (kernel audit is one per machine;
# held until the script exits), and builds the release contidd and contid into SCRATCH.
daemon_bench_setup() {  # NAME SCRATCH
  [ "$(id -u)" = 0 ] || { echo "$1 needs root (it runs audit daemons)" >&2; exit 1; }
  exec 9>/run/lock/contid-audit-tests.lock
  flock 9
  # Checked under the lock: a system test's contidd is gone once it lets go.
  if pgrep -x auditd >/dev/null || pgrep -x contidd >/dev/null; then
    echo "an auditd or contidd is running; stop it first" >&2; exit 1
  fi
  swift build -c release --scratch-path "$2" --product contidd >&2
  swift build -c release --scratch-path "$2" --product contid >&2
}

# auditd's configuration for a run in DIR (log DIR/audit.log, RAW, INCREMENTAL_ASYNC
# every 50 records, no plugins).
write_auditd_conf() {
  local dir="$1"
  mkdir -p "$dir/plugins"
  cat > "$dir/auditd.conf" <<CONF
local_events = yes
write_logs = yes
log_file = $dir/audit.log
log_group = root
log_format = RAW
flush = INCREMENTAL_ASYNC
freq = 50
max_log_file = 500
num_logs = 5
priority_boost = 4
name_format = NONE
max_log_file_action = ROTATE
space_left = 2
space_left_action = IGNORE
admin_space_left = 1
admin_space_left_action = IGNORE
disk_full_action = IGNORE
disk_error_action = IGNORE
use_libwrap = no
plugin_dir = $dir/plugins
q_depth = 2000
overflow_action = SYSLOG
max_restarts = 10
end_of_event_timeout = 2
CONF
  chmod 640 "$dir/auditd.conf"
}

# The workload both daemon benchmarks run: fork + exec of `busybox sh -c ': >> FILE'`
# (each child appends to a watched file), paced at RATE/s for SECONDS. Replaces the
# calling shell; prints "RATE-REACHED STARTED SECONDS-TAKEN".
spawn_writers() {  # RATE SECONDS FILE
  exec perl -MTime::HiRes=time,sleep -e '
    my ($rate, $secs, $file) = @ARGV;
    $SIG{CHLD} = "IGNORE";
    my $start = time; my $n = 0;
    while (1) {
      my $due = $start + $n / $rate;
      my $now = time;
      last if $now - $start >= $secs;
      sleep($due - $now) if $due > $now;
      my $pid = fork();
      if (defined $pid && $pid == 0) { exec "/usr/bin/busybox", "sh", "-c", ": >> $file" or exit 127; }
      $n++;
    }
    my $took = time - $start;
    printf "%.0f %d %.1f\n", $n / $took, $n, $took;
  ' "$1" "$2" "$3"
}

cpu_seconds() {  # PID -> utime + stime of a live process, in seconds
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"
}

# The kernel audit state as found (enabled, backlog_limit), for restore_audit_state.
save_audit_state() {
  found_enabled=$(auditctl -s | awk '$1 == "enabled" {print $2}')
  found_backlog=$(auditctl -s | awk '$1 == "backlog_limit" {print $2}')
}

# Deletes every rule and puts enabled and backlog_limit back as found.
restore_audit_state() {
  auditctl -D >/dev/null 2>&1 || true
  auditctl -e "$found_enabled" -b "$found_backlog" >/dev/null 2>&1 || true
}

# The kernel forgets its audit daemon when the socket closes; waits for it (5 s at most).
wait_no_audit_daemon() {
  for _ in $(seq 50); do [ "$(auditctl -s | awk '$1 == "pid" {print $2}')" = 0 ] && break; sleep 0.1; done
}

# Starts BIN_DIR/contidd as the audit daemon with WORK/NAME as its log dir (state, run
# dirs beside it) and waits for its socket; sets daemon_pid. PREFIX (e.g. taskset -c 0)
# runs before it. Exits with contidd's stderr when it does not start.
start_bench_contidd() {  # BIN_DIR WORK NAME CONF RULES_DIR [PREFIX...]
  local dir="$1" work="$2" name="$3" conf="$4" rules="$5"
  shift 5
  rm -rf "$work/$name" "$work/state-$name"
  "$@" "$dir/contidd" --source netlink --config "$conf" --log-dir "$work/$name" --run-dir "$work/run-$name" \
    --state-dir "$work/state-$name" --rules-dir "$rules" 2>"$work/$name.err" &
  daemon_pid=$!
  for _ in $(seq 100); do [ -S "$work/run-$name/contid.sock" ] && break; sleep 0.1; done
  if [ ! -S "$work/run-$name/contid.sock" ] || ! kill -0 "$daemon_pid" 2>/dev/null; then
    echo "contidd ($name) did not start:" >&2; cat "$work/$name.err" >&2; exit 1
  fi
}
