# Shared by the benchmarks that run auditd: its configuration for a run in DIR
# (log DIR/audit.log, RAW, INCREMENTAL_ASYNC every 50 records, no plugins).
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
