#!/usr/bin/env bash
# Parta on this machine in one command: installs dependencies, builds, starts a private ClickHouse,
# the collector and an agent for this machine, creates the web UI's `admin` account (password in
# .run/admin-password) and prints the URL to open.
#
#   scripts/quickstart.sh          # start (or restart) everything
#   scripts/quickstart.sh status   # what runs, and the devices the collector knows
#   scripts/quickstart.sh stop     # stop everything (data stays in .run/)
#
# Settings (environment): PARTA_QS_SCHOOL (default 74-0001), PARTA_QS_HTTP_PORT (8080),
# PARTA_QS_QUIC_PORT (4433), PARTA_QS_CLICKHOUSE_PORT (18123), PARTA_QS_INTERVAL (10s).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN="$ROOT/.run"
SCHOOL=${PARTA_QS_SCHOOL:-74-0001}
HTTP_PORT=${PARTA_QS_HTTP_PORT:-8080}
QUIC_PORT=${PARTA_QS_QUIC_PORT:-4433}
CH_PORT=${PARTA_QS_CLICKHOUSE_PORT:-18123}
INTERVAL=${PARTA_QS_INTERVAL:-10s}
BIN="$ROOT/target/release"
API="http://127.0.0.1:$HTTP_PORT"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }
stop_proc() {
    if alive "$1"; then kill "$(cat "$RUN/$1.pid")"; for _ in $(seq 1 50); do alive "$1" || break; sleep 0.1; done; fi
    rm -f "$RUN/$1.pid"
}

collector_env() {
    export PARTA_CLICKHOUSE_URL="http://127.0.0.1:$CH_PORT" PARTA_CLICKHOUSE_DATABASE=parta \
        PARTA_DATA_DIR="$RUN/collector" PARTA_QUIC_LISTEN="127.0.0.1:$QUIC_PORT" \
        PARTA_SPEEDTEST_LISTEN="127.0.0.1:$((QUIC_PORT + 1))" \
        PARTA_HTTP_LISTEN="127.0.0.1:$HTTP_PORT"
}

case "${1:-start}" in
stop)
    stop_proc agent; stop_proc collector
    "$ROOT/scripts/clickhouse.sh" stop "$RUN/clickhouse"
    say "stopped (data kept in $RUN)"; exit 0 ;;
status)
    for p in collector agent; do alive "$p" && echo "$p: running (pid $(cat "$RUN/$p.pid"))" || echo "$p: stopped"; done
    curl -sf -H "Authorization: Bearer $(cat "$RUN/api-token" 2>/dev/null)" "$API/api/v1/devices" && echo \
        || echo "collector API not reachable at $API"
    exit 0 ;;
start) ;;
*) echo "usage: quickstart.sh [start|status|stop]" >&2; exit 2 ;;
esac

say "installing dependencies (Debian packages, once)"
"$ROOT/scripts/install-deps.sh"

say "building Parta (release)"
(cd "$ROOT" && cargo build --release --locked --bins -q)

mkdir -p "$RUN/collector" "$RUN/agent"
# The account and token commands log to setup.log; a failure says where to look.
trap 'echo "quickstart failed; the last setup messages are in $RUN/setup.log" >&2' ERR
stop_proc agent; stop_proc collector

say "starting ClickHouse"
"$ROOT/scripts/clickhouse.sh" start "$RUN/clickhouse" "$CH_PORT" "$((CH_PORT + 877))"

say "starting the collector"
collector_env
nohup "$BIN/parta-collector" serve </dev/null >"$RUN/collector.log" 2>&1 &
echo $! >"$RUN/collector.pid"
for _ in $(seq 1 300); do
    curl -sf "$API/healthz" >/dev/null && break
    alive collector || { tail -n 20 "$RUN/collector.log" >&2; exit 1; }
    sleep 0.1
done

# A fresh join string on every start (the previous token is revoked); the agent enrolls with it
# again (--force: the same key, so the same device while the database keeps it; a new one if
# .run/clickhouse was wiped).
if [ -s "$RUN/agent/enroll-token" ]; then
    "$BIN/parta-collector" token revoke "$(cat "$RUN/agent/enroll-token")" >/dev/null 2>&1 || true
fi
say "creating a join string for school $SCHOOL"
(umask 077
 "$BIN/parta-collector" token create --school "$SCHOOL" --collector "127.0.0.1:$QUIC_PORT" \
     --comment quickstart 2>>"$RUN/setup.log" >"$RUN/agent/token-and-join"
 head -n1 "$RUN/agent/token-and-join" >"$RUN/agent/enroll-token"
 sed -n 2p "$RUN/agent/token-and-join" >"$RUN/agent/join"
 rm -f "$RUN/agent/token-and-join")
say "enrolling this machine with the join string"
"$BIN/parta-agent" --config "$RUN/agent.toml" --state-dir "$RUN/agent" enroll --force "@$RUN/agent/join" >>"$RUN/setup.log" 2>&1

# The web UI's admin account, once; an API token for this script's own checks on every start.
if [ ! -s "$RUN/admin-password" ]; then
    say "creating the web UI account admin (password in $RUN/admin-password)"
    (umask 077; head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$RUN/admin-password")
    "$BIN/parta-collector" user add admin --role admin --password-stdin <"$RUN/admin-password" 2>>"$RUN/setup.log"
fi
if [ -s "$RUN/api-token" ]; then
    "$BIN/parta-collector" api-token revoke "$(cat "$RUN/api-token")" >/dev/null 2>&1 || true
fi
(umask 077; "$BIN/parta-collector" api-token create --user admin --comment quickstart 2>>"$RUN/setup.log" >"$RUN/api-token") || {
    # The database was wiped since the password was made: make the account again.
    "$BIN/parta-collector" user add admin --role admin --password-stdin <"$RUN/admin-password" 2>>"$RUN/setup.log"
    (umask 077; "$BIN/parta-collector" api-token create --user admin --comment quickstart 2>>"$RUN/setup.log" >"$RUN/api-token")
}

say "starting an agent for this machine (every $INTERVAL)"
PARTA_INTERVAL="$INTERVAL" nohup "$BIN/parta-agent" --config "$RUN/agent.toml" run </dev/null >"$RUN/agent.log" 2>&1 &
echo $! >"$RUN/agent.pid"

for _ in $(seq 1 300); do
    if curl -sf -H "Authorization: Bearer $(cat "$RUN/api-token")" "$API/api/v1/devices" | grep -q '"count":[1-9]'; then
        say "Parta is running"
        echo "  open:     $API/   (login admin, password: $(cat "$RUN/admin-password"))"
        echo "  API:      curl -H \"Authorization: Bearer \$(cat $RUN/api-token)\" $API/api/v1/devices"
        echo "  metrics:  $API/metrics"
        echo "  logs:     $RUN/collector.log  $RUN/agent.log"
        echo "  stop:     scripts/quickstart.sh stop"
        exit 0
    fi
    alive agent || { tail -n 20 "$RUN/agent.log" >&2; exit 1; }
    sleep 0.2
done
echo "the agent's first report did not arrive within 60 s; see $RUN/agent.log and $RUN/collector.log" >&2
exit 1
