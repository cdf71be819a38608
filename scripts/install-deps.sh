#!/usr/bin/env bash
# Installs what Parta's quick start and test suite need on a Debian-family machine.
# Idempotent: installs only what is missing; runs `apt-get update` once, only if needed.
#
#   scripts/install-deps.sh            # runtime + test dependencies
#
# Installs: clickhouse-server (Debian's, 18.16), curl, dbus-daemon (private buses for the fake
# logind of the usage tests), tzdata, snmpd + snmp (net-snmp daemon and tools for the SNMP
# tests), prometheus-snmp-exporter (the SNMP benchmark baseline), prometheus (promtool checks the
# collector's /metrics), dnsmasq-base (the resolver
# the ЕСПД tests start), iproute2 (namespaces, shaping), openssl (test certificates),
# libreoffice-calc-nogui (the compliance tests open the XLSX exports), chromium + chromium-driver
# (the web UI's browser tests drive headless Chromium over WebDriver), python3 with chdb-core (in-process modern
# ClickHouse for schema tests), ansible (PyPI; the playbook test), cargo-fuzz (fuzz smoke runs), rpm + lintian + debootstrap +
# help2man + binutils (scripts/package.sh builds the packages; the tests install them into a
# Debian root that debootstrap makes once, cached in /var/cache/parta-test).
set -euo pipefail

log() { printf '[install-deps] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        log "not root and no sudo: cannot install system packages"; fi
fi

missing=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in clickhouse-server clickhouse-client curl python3 python3-pip ca-certificates systemd dbus-daemon tzdata snmpd snmp prometheus-snmp-exporter prometheus dnsmasq-base iproute2 openssl libreoffice-calc-nogui chromium chromium-driver rpm lintian debootstrap help2man binutils; do
    have_pkg "$pkg" || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    # The clickhouse-server package tries to start a system-wide server; Parta runs private
    # instances on their own ports, so a refusal to start it (containers) is harmless.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! python3 -c 'import chdb' >/dev/null 2>&1; then
    log "installing chdb-core (modern ClickHouse in process, for schema tests)"
    python3 -m pip install --quiet --disable-pip-version-check 'chdb-core==26.9.0' 2>/dev/null \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'chdb-core==26.9.0'
fi

if ! python3 -c 'import ansible_collections.community.general' >/dev/null 2>&1; then
    log "installing ansible (the tests run the agent's playbook against a Debian root)"
    python3 -m pip install --quiet --disable-pip-version-check 'ansible==12.3.0' 2>/dev/null \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'ansible==12.3.0'
fi

if command -v cargo >/dev/null 2>&1 && ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz (fuzz smoke runs)"
    cargo install --quiet --locked cargo-fuzz
fi

log "ok: $(/usr/sbin/clickhouse-server --version 2>/dev/null | head -n1 || echo clickhouse-server installed)"
