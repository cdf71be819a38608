# Shell functions shared by the .deb and .rpm maintainer scripts (scripts/package.sh puts this
# file in place of the #SETUP# line). POSIX sh; no bashisms.

# make_user NAME HOME COMMENT: the service's system user, by systemd-sysusers where it exists,
# else useradd. Never changes an existing user.
make_user() {
    if command -v systemd-sysusers >/dev/null 2>&1 && [ -f "/usr/lib/sysusers.d/$1.conf" ]; then
        systemd-sysusers "/usr/lib/sysusers.d/$1.conf"
    elif ! getent passwd "$1" >/dev/null; then
        useradd --system --user-group --home-dir "$2" --no-create-home \
            --shell /usr/sbin/nologin --comment "$3" "$1"
    fi
    # The service's directory, private to it: the agent's identity, credential and spool, the
    # collector's CA and keys. Kept on upgrade and removal.
    install -d -m 0700 -o "$1" -g "$1" "$2"
}

# agent_enroll: enrolls the device with the join string given at installation, PARTA_JOIN=… in
# the environment or a file /etc/parta/join (removed once the device is enrolled), with
# PARTA_ROOM and PARTA_CLASS when set. Failing to enroll does not fail the installation.
agent_enroll() {
    join=""
    if [ -n "${PARTA_JOIN:-}" ]; then
        join="$PARTA_JOIN"
    elif [ -s /etc/parta/join ]; then
        join="@/etc/parta/join"
    fi
    [ -n "$join" ] || return 0
    if [ -e /var/lib/parta-agent/device.pem ]; then
        echo "parta-agent: already enrolled; the join string is not needed (removing /etc/parta/join)"
        rm -f /etc/parta/join
        return 0
    fi
    set --
    [ -z "${PARTA_ROOM:-}" ] || set -- "$@" --room "$PARTA_ROOM"
    [ -z "${PARTA_CLASS:-}" ] || set -- "$@" --class "$PARTA_CLASS"
    # Only the flags above set the room and class (an empty PARTA_ROOM would set an empty room).
    if env -u PARTA_ROOM -u PARTA_CLASS -u PARTA_JOIN PARTA_STATE_DIR=/var/lib/parta-agent \
        /usr/bin/parta-agent --config /etc/parta/agent.toml enroll "$@" -- "$join"; then
        # The school's token has done its work on this device: do not leave it lying around.
        rm -f /etc/parta/join
        # The release key the join string pinned, in root's keeping: the root-owned installer
        # trusts this copy, never the agent's (the agent could rewrite its own).
        if [ -s /var/lib/parta-agent/release.pub ] && [ ! -e /etc/parta/release.pub ]; then
            install -m 0644 -o root -g root /var/lib/parta-agent/release.pub /etc/parta/release.pub
        fi
    else
        echo "parta-agent: enrollment failed (above); the package is installed, the agent not started." >&2
        echo "  Fix the cause, then install again with PARTA_JOIN (or /etc/parta/join), or run" >&2
        echo "  parta-agent enroll 'parta://…' && systemctl enable --now parta-agent" >&2
    fi
}

# agent_setup: everything the agent's package does at configuration, before the service.
agent_setup() {
    make_user parta-agent /var/lib/parta-agent "Parta agent"
    if command -v systemd-tmpfiles >/dev/null 2>&1; then
        # DMI serials readable to the agent's group; /sys may be read-only in a container.
        systemd-tmpfiles --create /usr/lib/tmpfiles.d/parta-agent.conf 2>/dev/null || true
    fi
    agent_enroll
}

# agent_not_enrolled_hint: says how to finish when the device is not enrolled.
agent_not_enrolled_hint() {
    if [ ! -e /var/lib/parta-agent/device.pem ]; then
        echo "parta-agent: not enrolled, so not started. Enroll with the school's join string:"
        echo "  parta-agent enroll 'parta://…' && systemctl enable --now parta-agent"
        echo "  (or install with PARTA_JOIN='parta://…' set, or with the string in /etc/parta/join)"
    fi
}

# collector_hint: what a new collector needs before it is started.
collector_hint() {
    echo "parta-collector: set tls_names and ClickHouse in /etc/parta/collector.toml, check with"
    echo "  parta-collector --config /etc/parta/collector.toml config, then"
    echo "  systemctl enable --now parta-collector"
}
