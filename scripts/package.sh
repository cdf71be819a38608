#!/usr/bin/env bash
# Builds Parta's packages into target/packages/: parta-agent and parta-collector as .deb
# (Astra Linux, Debian) and .rpm (ALT Linux, RED OS), from release binaries.
#
#   scripts/package.sh
#
# Environment:
#   PARTA_PKG_VERSION=0.1.0    the packages' version (default: the workspace's)
#   PARTA_PKG_RELEASE=1        the packages' release (Debian revision, RPM release)
#   PARTA_PKG_FORMATS="deb rpm"  which formats
#   PARTA_PKG_BIN_DIR=DIR      package the binaries in DIR instead of building target/release
#   PARTA_PKG_OUT=DIR          where the packages go (default target/packages)
#   PARTA_PKG_STRIP=0          package the binaries unstripped (e.g. signed with Astra's bsign)
#   PARTA_PKG_COMPRESS=fast    gzip -1 instead of xz (the tests package debug binaries)
# Needs dpkg-deb, rpmbuild and help2man (Debian's dpkg, rpm and help2man packages; scripts/install-deps.sh installs
# them). Prints each package with its size; the last lines are the packages' paths.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

log() { printf '[package] %s\n' "$*" >&2; }

VERSION=${PARTA_PKG_VERSION:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)}
RELEASE=${PARTA_PKG_RELEASE:-1}
FORMATS=${PARTA_PKG_FORMATS:-deb rpm}
if [ "${PARTA_PKG_COMPRESS:-}" = fast ]; then
    DEB_COMPRESS=(-Zgzip -z1); RPM_PAYLOAD=w1.gzdio
else
    DEB_COMPRESS=(-Zxz); RPM_PAYLOAD=w6.xzdio
fi
OUT=${PARTA_PKG_OUT:-$ROOT/target/packages}
case "$VERSION" in
    *[!0-9A-Za-z.+~]* | "") log "PARTA_PKG_VERSION $VERSION: only digits, letters, . + ~"; exit 2 ;;
esac
case "$RELEASE" in
    *[!0-9A-Za-z.]* | "") log "PARTA_PKG_RELEASE $RELEASE: only digits, letters, ."; exit 2 ;;
esac
# Reproducible: every date and mtime is the last commit's.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

if [ -n "${PARTA_PKG_BIN_DIR:-}" ]; then
    BIN=$PARTA_PKG_BIN_DIR
else
    log "building release binaries"
    cargo build --locked --release -p parta-agent -p parta-collector
    BIN=$ROOT/target/release
fi
for b in parta-agent parta-collector; do
    [ -x "$BIN/$b" ] || { log "no $BIN/$b"; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/parta-package.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

# The maintainer scripts with the shared functions in place of their #SETUP# line.
with_setup() {
    awk -v setup="installers/packages/common/setup.sh" \
        '$0 == "#SETUP#" { while ((getline l < setup) > 0) print l; close(setup); next } { print }' "$1"
}

# The lowest glibc the binary needs (its newest GLIBC_x.y symbol version).
glibc_needed() {
    objdump -T "$1" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n1
}

summary() {
    case "$1" in
        parta-agent) echo "equipment telemetry agent for school devices" ;;
        parta-collector) echo "receives Parta agents' reports, stores them in ClickHouse, serves the UI" ;;
    esac
}

# stage NAME SYSTEMD_DIR: the files of one package under $WORK/NAME-SYSTEMD_DIR-root.
stage() {
    local name=$1 unitdir=$2 short=${1#parta-}
    local d=$WORK/$name-${unitdir//\//_}
    install -D -m 0755 "$BIN/$name" "$d/usr/bin/$name"
    # Symbols are of no use on a school PC. PARTA_PKG_STRIP=0 packages the binaries as given
    # (binaries signed for Astra Linux's ЗПС: stripping would break their signature).
    if [ "${PARTA_PKG_STRIP:-1}" != 0 ]; then
        strip --strip-unneeded --remove-section=.comment --remove-section=.note "$d/usr/bin/$name"
    fi
    local unit
    for unit in installers/systemd/"$name".service installers/systemd/"$name"-*.service installers/systemd/"$name"-*.path; do
        [ -f "$unit" ] && install -D -m 0644 "$unit" "$d$unitdir/$(basename "$unit")"
    done
    install -D -m 0644 "installers/sysusers.d/$name.conf" "$d/usr/lib/sysusers.d/$name.conf"
    if [ -f "installers/tmpfiles.d/$name.conf" ]; then
        install -D -m 0644 "installers/tmpfiles.d/$name.conf" "$d/usr/lib/tmpfiles.d/$name.conf"
    fi
    install -D -m 0644 "installers/config/$short.toml" "$d/etc/parta/$short.toml"
    install -D -m 0644 README.md "$d/usr/share/doc/$name/README.md"
    install -D -m 0644 installers/README.md "$d/usr/share/doc/$name/SERVICE.md"
    # The manual page is the binary's own --help (help2man).
    mkdir -p "$d/usr/share/man/man1"
    help2man --no-info --version-string="$VERSION" --name="$(summary "$name")" "$BIN/$name" \
        | gzip -9n > "$d/usr/share/man/man1/$name.1.gz"
    echo "$d"
}

deb_changelog() {
    local name=$1 version=$2
    local when
    when=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
    printf '%s (%s) stable; urgency=medium\n\n  * Release %s (git %s).\n\n -- Parta developers <parta@parta.example.ru>  %s\n' \
        "$name" "$version" "$VERSION" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$when"
}

build_deb() {
    local name=$1 d
    d=$(stage "$name" /lib/systemd/system)
    local version="$VERSION-$RELEASE"
    local doc=$d/usr/share/doc/$name
    deb_changelog "$name" "$version" | gzip -9n > "$doc/changelog.Debian.gz"
    install -m 0644 installers/packages/deb/copyright "$doc/copyright"
    install -D -m 0644 "installers/packages/deb/$name.lintian-overrides" "$d/usr/share/lintian/overrides/$name"
    mkdir -p "$d/DEBIAN"
    for s in postinst prerm postrm; do
        with_setup "installers/packages/deb/$name.$s" > "$d/DEBIAN/$s"
        chmod 0755 "$d/DEBIAN/$s"
    done
    echo "/etc/parta/${name#parta-}.toml" > "$d/DEBIAN/conffiles"
    local glibc size
    glibc=$(glibc_needed "$d/usr/bin/$name")
    size=$(du -k -s --exclude=DEBIAN "$d" | cut -f1)
    sed -e "s/@VERSION@/$version/" -e "s/@GLIBC@/$glibc/" -e "s/@SIZE@/$size/" \
        "installers/packages/deb/$name.control" > "$d/DEBIAN/control"
    (cd "$d" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$d/DEBIAN/md5sums"
    find "$d" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    chmod -R go-w "$d"
    local deb="$OUT/${name}_${version}_amd64.deb"
    dpkg-deb --root-owner-group "${DEB_COMPRESS[@]}" --build "$d" "$deb" >/dev/null
    log "$(basename "$deb"): $(du -h "$deb" | cut -f1) (needs glibc >= $glibc)"
    DONE+=("$deb")
}

build_rpms() {
    local top=$WORK/rpmbuild stage_all=$WORK/rpm-root
    mkdir -p "$top"/{BUILD,RPMS,SPECS,SOURCES,SRPMS} "$stage_all"
    for name in parta-agent parta-collector; do
        local d
        d=$(stage "$name" /usr/lib/systemd/system)
        cp -a "$d/." "$stage_all/"
    done
    with_setup installers/packages/rpm/parta.spec.in \
        | sed -e "s/@VERSION@/$VERSION/" -e "s/@RELEASE@/$RELEASE/" -e "s#@STAGE@#$stage_all#" \
        > "$top/SPECS/parta.spec"
    rpmbuild --quiet -bb "$top/SPECS/parta.spec" \
        --define "_topdir $top" \
        --define "_rpmdir $OUT" \
        --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
        --define "use_source_date_epoch_as_buildtime 1" \
        --define "clamp_mtime_to_source_date_epoch 1" \
        --define "_buildhost parta-build" \
        --define "_binary_payload $RPM_PAYLOAD" >/dev/null
    for name in parta-agent parta-collector; do
        local rpm="$OUT/$name-$VERSION-$RELEASE.x86_64.rpm"
        [ -f "$rpm" ] || { log "rpmbuild made no $rpm"; exit 1; }
        log "$(basename "$rpm"): $(du -h "$rpm" | cut -f1)"
        DONE+=("$rpm")
    done
}

DONE=()
for f in $FORMATS; do
    case "$f" in
        deb) build_deb parta-agent; build_deb parta-collector ;;
        rpm) build_rpms ;;
        *) log "unknown format $f (deb, rpm)"; exit 2 ;;
    esac
done
printf '%s\n' "${DONE[@]}"
