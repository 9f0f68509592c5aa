#!/bin/sh
# Installs Debian's ClickHouse (18.16) for contid's fleet store and its tests; the
# system service is left stopped: scripts/clickhouse-fleet.sh runs servers of its own.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y clickhouse-server clickhouse-client curl
