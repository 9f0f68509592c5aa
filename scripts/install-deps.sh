#!/usr/bin/env bash
# Installs what contid's build, tests and benchmarks need on a fresh Debian machine.
# Swift itself comes with the machine (/opt/swift); everything else is a Debian package.
set -euo pipefail
need=()
command -v auditctl >/dev/null || need+=(auditd)
command -v ausearch >/dev/null || need+=(auditd)
command -v runc >/dev/null || need+=(runc)
command -v podman >/dev/null || need+=(podman)
command -v unshare >/dev/null || need+=(util-linux)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v ip >/dev/null || need+=(iproute2)
command -v bc >/dev/null || need+=(bc)
command -v setpriv >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
command -v perl >/dev/null || need+=(perl)
# The fleet store's tests run ClickHouse servers of their own (scripts/clickhouse-fleet.sh).
command -v clickhouse-server >/dev/null || need+=(clickhouse-server clickhouse-client)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps the auditd package from starting its daemon: contid's tests own kernel audit.
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; trap 'rm -f /usr/sbin/policy-rc.d' EXIT; fi
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
# A packaged auditd that did start would own kernel audit; stop it (tests restore kernel state themselves).
# Not while a system test or benchmark holds the audit-state lock: that auditd is theirs.
if pgrep -x auditd >/dev/null && flock -n /run/lock/contid-audit-tests.lock true 2>/dev/null; then
  echo "stopping the running auditd: contid's system tests need the kernel audit socket" >&2
  pkill -TERM -x auditd || true
  sleep 1
fi
