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
