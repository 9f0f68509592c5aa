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
