#!/bin/bash
# A fleet of two ClickHouse servers on loopback, for contid's fleet store (issue 12).
#
#   scripts/clickhouse-fleet.sh start DIR [BASE_PORT]   two servers, tables created, DIR/env written
#   scripts/clickhouse-fleet.sh stop DIR                both stopped, DIR removed
#   scripts/clickhouse-fleet.sh kill DIR N              server N (1|2) killed with SIGKILL (fault tests)
#   scripts/clickhouse-fleet.sh restart DIR N           server N started again on its data
#   scripts/clickhouse-fleet.sh status DIR              which servers answer
#
# Server N listens on 127.0.0.1 only: HTTP BASE+10*(N-1), native TCP +1, interserver +2
# (BASE_PORT defaults to 18123). Each has its config, data, logs and pid file under DIR/sN.
# Both hold contid.events_local (packaging/clickhouse/events_local.sql) and contid.events,
# the Distributed table over the two as two shards (cluster contid_fleet). Users: default
# (no password) and contid (password $CLICKHOUSE_FLEET_PASSWORD, default "contid").
# DIR/env holds CH1_URL, CH2_URL, CH_USER, CH_PASSWORD for scripts and tests.
# Needs Debian's clickhouse-server (scripts/install-clickhouse.sh).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
ddl="$here/packaging/clickhouse"
server=${CLICKHOUSE_SERVER:-$(command -v clickhouse-server || echo /usr/bin/clickhouse-server)}

usage() { sed -n '3,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
die() { echo "clickhouse-fleet: $*" >&2; exit 1; }

port_of() { # DIR N KIND(http|tcp|inter)
    base=$(cat "$1/base_port")
    off=$(( ($2 - 1) * 10 ))
    case $3 in http) echo $((base + off));; tcp) echo $((base + off + 1));; inter) echo $((base + off + 2));; esac
}

write_config() { # DIR N
    d="$1/s$2"
    mkdir -p "$d/data" "$d/tmp" "$d/user_files" "$d/log" "$d/format_schemas"
    cat > "$d/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>$d/log/server.log</log><errorlog>$d/log/server.err.log</errorlog><size>100M</size><count>2</count></logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$(port_of "$1" "$2" http)</http_port>
    <tcp_port>$(port_of "$1" "$2" tcp)</tcp_port>
    <interserver_http_port>$(port_of "$1" "$2" inter)</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <path>$d/data/</path>
    <tmp_path>$d/tmp/</tmp_path>
    <user_files_path>$d/user_files/</user_files_path>
    <format_schema_path>$d/format_schemas/</format_schema_path>
    <users_config>$d/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <max_concurrent_queries>50</max_concurrent_queries>
    <remote_servers>
        <contid_fleet>
            <shard><replica><host>127.0.0.1</host><port>$(port_of "$1" 1 tcp)</port></replica></shard>
            <shard><replica><host>127.0.0.1</host><port>$(port_of "$1" 2 tcp)</port></replica></shard>
        </contid_fleet>
    </remote_servers>
</yandex>
XML
    cat > "$d/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>4000000000</max_memory_usage><load_balancing>random</load_balancing></default></profiles>
    <users>
        <default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default>
        <contid><password>${CLICKHOUSE_FLEET_PASSWORD:-contid}</password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></contid>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
}

start_one() { # DIR N
    d="$1/s$2"
    "$server" --config-file="$d/config.xml" --pid-file="$d/server.pid" --daemon >>"$d/log/stdout.log" 2>&1 \
        || die "server $2 did not start (see $d/log)"
    url="http://127.0.0.1:$(port_of "$1" "$2" http)/"
    i=0
    until [ "$(curl -s "${url}ping" 2>/dev/null)" = "Ok." ]; do
        i=$((i + 1))
        [ $i -le 300 ] || die "server $2 does not answer on $url after 30 s (see $d/log/server.err.log)"
        sleep 0.1
    done
}

query() { # DIR N SQL-FILE-OR-TEXT
    curl -sS --fail-with-body "http://127.0.0.1:$(port_of "$1" "$2" http)/" --data-binary "$3" >/dev/null \
        || die "server $2 refused: $(printf %s "$3" | head -c 200)"
}

# Runs each statement of an SQL file (split at ';' ending a line; '--' comments dropped).
run_file() { # DIR N FILE
    sed 's/--.*$//' "$3" | awk 'BEGIN{RS=";[ \t]*\n"} { gsub(/^[ \t\n]+|[ \t\n]+$/, ""); if (length($0)) printf "%s%c", $0, 0 }' \
        | while IFS= read -r -d '' stmt; do query "$1" "$2" "$stmt"; done
}

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || usage
case $cmd in
start)
    [ ! -e "$dir/s1/server.pid" ] || die "$dir already holds a fleet (stop it first)"
    [ -x "$server" ] || die "no clickhouse-server ($server); run scripts/install-clickhouse.sh"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    echo "${3:-18123}" > "$dir/base_port"
    for n in 1 2; do write_config "$dir" $n; start_one "$dir" $n; done
    for n in 1 2; do run_file "$dir" $n "$ddl/events_local.sql"; run_file "$dir" $n "$ddl/events_distributed.sql"; done
    cat > "$dir/env" <<ENV
CH1_URL=http://127.0.0.1:$(port_of "$dir" 1 http)
CH2_URL=http://127.0.0.1:$(port_of "$dir" 2 http)
CH_USER=contid
CH_PASSWORD=${CLICKHOUSE_FLEET_PASSWORD:-contid}
ENV
    cat "$dir/env"
    ;;
stop)
    for n in 1 2; do
        p="$dir/s$n/server.pid"
        [ -s "$p" ] || continue
        pid=$(cat "$p")
        kill "$pid" 2>/dev/null || true
        i=0
        while kill -0 "$pid" 2>/dev/null; do
            i=$((i + 1)); [ $i -le 100 ] || { kill -9 "$pid" 2>/dev/null || true; break; }
            sleep 0.1
        done
    done
    rm -rf "$dir"
    ;;
kill)
    n=${3:?server number}
    pid=$(cat "$dir/s$n/server.pid") || die "no server $n in $dir"
    kill -9 "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    rm -f "$dir/s$n/server.pid"
    ;;
restart)
    n=${3:?server number}
    start_one "$dir" "$n"
    ;;
status)
    for n in 1 2; do
        url="http://127.0.0.1:$(port_of "$dir" $n http)/"
        if [ "$(curl -s "${url}ping")" = "Ok." ]; then echo "server $n: up ($url)"; else echo "server $n: down ($url)"; fi
    done
    ;;
*) usage ;;
esac
