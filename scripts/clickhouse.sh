#!/usr/bin/env bash
# A private ClickHouse server in a directory of its own, on its own ports.
#
#   scripts/clickhouse.sh start DIR [HTTP_PORT] [TCP_PORT]   # default ports 18123 19000
#   scripts/clickhouse.sh stop DIR
#   scripts/clickhouse.sh config DIR [HTTP_PORT] [TCP_PORT]  # only write DIR/config.xml, users.xml
#
# Used by the quick start; the test harness writes its servers' configuration with `config` and
# runs them itself (it needs to kill and restart them).
set -euo pipefail

cmd=${1:?usage: clickhouse.sh start|stop|config DIR [HTTP_PORT] [TCP_PORT]}
dir=$(mkdir -p "${2:?directory}" && cd "$2" && pwd)
http_port=${3:-18123}
tcp_port=${4:-19000}
pidfile="$dir/clickhouse.pid"

server_bin() {
    for b in /usr/sbin/clickhouse-server /usr/bin/clickhouse-server; do
        [ -x "$b" ] && { echo "$b"; return; }
    done
    echo "clickhouse-server is not installed: run scripts/install-deps.sh" >&2
    exit 1
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

write_config() {
    mkdir -p "$dir/log"
    cat > "$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$dir/log/server.log</log><errorlog>$dir/log/err.log</errorlog><size>100M</size><count>3</count></logger>
  <http_port>$http_port</http_port>
  <tcp_port>$tcp_port</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <user_files_path>$dir/user_files/</user_files_path>
  <format_schema_path>$dir/format_schemas/</format_schema_path>
  <mark_cache_size>536870912</mark_cache_size>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
</yandex>
XML
    cat > "$dir/users.xml" <<'XML'
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>8000000000</max_memory_usage></default><readonly><readonly>1</readonly></readonly></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
}

case "$cmd" in
config)
    write_config
    ;;
start)
    if running; then echo "ClickHouse already running (pid $(cat "$pidfile"))"; exit 0; fi
    if curl -s -o /dev/null "http://127.0.0.1:$http_port/"; then
        echo "port $http_port is already in use by another server; choose another port" >&2
        exit 1
    fi
    write_config
    bin=$(server_bin)
    cd "$dir"
    nohup "$bin" --config-file="$dir/config.xml" </dev/null >"$dir/log/stdout.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 300); do
        if curl -sf "http://127.0.0.1:$http_port/?query=SELECT%201" >/dev/null; then
            echo "ClickHouse $(curl -s "http://127.0.0.1:$http_port/?query=SELECT%20version()") on http://127.0.0.1:$http_port (data in $dir)"
            exit 0
        fi
        running || { echo "ClickHouse exited; see $dir/log" >&2; exit 1; }
        sleep 0.1
    done
    echo "ClickHouse did not answer within 30 s; see $dir/log" >&2
    exit 1
    ;;
stop)
    if running; then kill "$(cat "$pidfile")"; for _ in $(seq 1 100); do running || break; sleep 0.1; done; fi
    rm -f "$pidfile"
    ;;
*)
    echo "usage: clickhouse.sh start|stop|config DIR [HTTP_PORT] [TCP_PORT]" >&2; exit 2 ;;
esac
