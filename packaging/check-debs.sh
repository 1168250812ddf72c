#!/usr/bin/env bash
# CI check of the Debian packages (as root, on a machine without ipqbdb installed).
#
# 1. Builds the four packages (packaging/build-debs.sh) and a second ipqbdb-lmdb, revision 2.
# 2. Checks each package: its files (docs under its own name), that it contains only its own storage
#    engine, its DEP-5 copyright file (what the package bundles, with the licence texts), that every
#    unit's Documentation= is in the package, and that its maintainer scripts hold the unit handling
#    cargo-deb generates (deb-systemd-helper; daemons neither enabled nor started, the timer enabled).
# 3. Life cycle of ipqbdb-lmdb on this machine: install, upgrade to revision 2, remove, purge; at each
#    step the package state (dpkg -s), the user and group ipqbdb (getent), the units, their enablement
#    and the database directory (ls). After install, `systemd-analyze verify` on the installed units.
# 4. Each local-engine package in turn (ipqbdb-postgres needs a server): installs it, checks that a
#    member of the group ipqbdb (a web application) can run `ibd ban` on the database the daemons
#    use, purges it.
#
# It installs the Debian packages it needs (apt-get) and purges exactly those at the end, also on
# failure; any check that fails stops it with a line starting "check-debs.sh: FAIL".
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "check-debs.sh: FAIL: $*" >&2
    exit 1
}
step() { echo "== $*"; }

[ "$(id -u)" = 0 ] || fail "run as root: this check installs, removes and purges ipqbdb-lmdb"
for tool in apt-get dpkg dpkg-deb dpkg-query getent runuser adduser deluser; do
    command -v "$tool" > /dev/null || fail "$tool is missing (a Debian system with adduser is needed)"
done
# The life cycle creates and deletes the user ipqbdb and /var/lib/ipqbdb: never on a machine using them.
if dpkg-query -W -f '${Package} ${db:Status-Abbrev}\n' 'ipqbdb*' 2> /dev/null | grep -qv ' un *$'; then
    fail "an ipqbdb package is installed here; run this check on a machine without ipqbdb"
fi
getent passwd ipqbdb > /dev/null && fail "the user ipqbdb exists; run this check on a machine without ipqbdb"
getent group ipqbdb > /dev/null && fail "the group ipqbdb exists; run this check on a machine without ipqbdb"
[ -e /var/lib/ipqbdb ] && fail "/var/lib/ipqbdb exists; run this check on a machine without ipqbdb"

pkg=ipqbdb-lmdb
web=ibdcheckweb # the throwaway "web application" user of step 4
daemons=(ibd-judge.service ibd-parse.service ibd-parse-journal.service ibd-report.service)
units=("${daemons[@]}" ibd-retention.service ibd-retention.timer)
# Template units (one instance per interface): installed, but the maintainer scripts leave them alone.
templates=(ibd-xdp@.service)
tmp=$(mktemp -d)

# Debian packages this check installed (new after each of its apt-get installs), purged at the end.
installed_by_us=()
apt_updated=
installed_packages() {
    dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' | awk '$1 == "ii" {print $2}' | sort
}
apt_install() {
    local before
    [ -n "$apt_updated" ] || { apt-get update -qq > /dev/null; apt_updated=1; }
    before=$(installed_packages)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" > /dev/null ||
        fail "apt-get install $* failed"
    mapfile -t -O ${#installed_by_us[@]} installed_by_us < <(comm -13 <(echo "$before") <(installed_packages))
}
cleanup() {
    local status=$?
    set +e
    if getent passwd "$web" > /dev/null; then
        deluser --quiet "$web" > /dev/null
    fi
    if dpkg-query -W -f '${db:Status-Abbrev}' "$pkg" 2> /dev/null | grep -qv '^un'; then
        dpkg --purge "$pkg" > /dev/null
    fi
    # What this check installed and is still there (ipqbdb-lmdb, installed by apt-get too, was purged above).
    mapfile -t left < <(comm -12 <(printf '%s\n' "${installed_by_us[@]}" | sort) <(installed_packages))
    if [ ${#left[@]} -gt 0 ]; then
        if DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${left[@]}" > /dev/null; then
            echo "purged what this check installed: ${left[*]}"
        else
            echo "check-debs.sh: could not purge what it installed: ${left[*]}" >&2
            status=1
        fi
    fi
    rm -rf "$tmp"
    exit $status
}
trap cleanup EXIT

step "tools"
command -v cargo-deb > /dev/null || cargo install --locked --quiet cargo-deb || fail "cargo install cargo-deb failed"
command -v systemd-analyze > /dev/null || apt_install systemd
# The copyright files are checked with python3-debian's DEP-5 parser (debian.copyright).
/usr/bin/python3 -c 'import debian.copyright' 2> /dev/null || apt_install python3-debian
/usr/bin/python3 -c 'import debian.copyright' || fail "python3-debian does not import"
echo "cargo-deb $(cargo deb --version | awk '{print $2}'), $(systemd-analyze --version | head -1)"

step "build"
# Faster compression (larger files): nothing checked here depends on it.
export DEB_FAST=1
rm -rf target/debian
packaging/build-debs.sh > /dev/null
# Kept in target/debian-upgrade for packaging/check-units.sh.
rm -rf target/debian-upgrade
DEB_OUTPUT=target/debian-upgrade DEB_REVISION=2 packaging/build-debs.sh lmdb > /dev/null
deb1=$(ls target/debian/"$pkg"_*-1_*.deb)
deb2=$(ls target/debian-upgrade/"$pkg"_*-2_*.deb)
ls -1 target/debian/*.deb "$deb2"

# Every Documentation= of every ipqbdb unit under ROOT names a man page or file that exists under ROOT.
check_documentation() {
    local root=$1 unit doc page section file n=0
    for unit in "$root"/usr/lib/systemd/system/ibd-*; do
        # A drop-in directory (ibd-judge.service.d, the postgres package's) is no unit.
        [ -f "$unit" ] || continue
        grep -q '^Documentation=' "$unit" || fail "${unit#"$root"}: no Documentation="
        for doc in $(sed -n 's/^Documentation=//p' "$unit"); do
            case $doc in
            man:*\([1-9]\))
                page=${doc#man:}
                section=${page##*(}
                section=${section%)}
                page=${page%(*}
                file=/usr/share/man/man$section/$page.$section.gz
                ;;
            file:/*) file=${doc#file:} ;;
            *) fail "${unit#"$root"}: Documentation=$doc is neither man:PAGE(N) nor file:/PATH" ;;
            esac
            [ -e "$root$file" ] || fail "${unit#"$root"}: Documentation=$doc, but there is no $file"
            n=$((n + 1))
        done
    done
    echo "$n Documentation= entries resolve"
}

# The DEP-5 copyright file: parsed strictly; prints "Files<TAB>License" per files paragraph and
# "LICENSE<TAB>name<TAB>first line of text" per licence text; fails on a licence without text.
dep5() {
    /usr/bin/python3 - "$1" << 'EOF'
import re, sys
from debian.copyright import Copyright
with open(sys.argv[1], encoding="utf-8") as f:
    c = Copyright(f, strict=True)
texts = {p.license.synopsis: p.license.text for p in c.all_license_paragraphs()}
for p in c.all_files_paragraphs():
    print("\t".join([" ".join(p.files), p.license.synopsis]))
    if p.license.text:
        texts[p.license.synopsis] = p.license.text
    for name in re.split(r"\s+(?:and|or)\s+", p.license.synopsis):
        if not texts.get(name):
            sys.exit(f"{sys.argv[1]}: licence {name} of {' '.join(p.files)} has no text")
for name, text in texts.items():
    print("\t".join(["LICENSE", name, text.strip().splitlines()[0].strip()]))
EOF
}

step "package contents"
required=(
    ./usr/sbin/ibd ./usr/sbin/ibd-parse ./usr/sbin/ibd-judge ./usr/sbin/ibd-xdp
    ./usr/sbin/ibd-ban ./usr/sbin/ibd-del ./usr/sbin/ibd-white ./usr/sbin/ibd-config ./usr/sbin/ibd-category
    ./usr/sbin/ibd-descr ./usr/sbin/ibd-report
    ./etc/ipqbdb-pcre.conf ./etc/ipqbdb-connkill.cmd ./etc/ipqbdb/ipqbdb.toml
    "${units[@]/#/./usr/lib/systemd/system/}" "${templates[@]/#/./usr/lib/systemd/system/}"
    ./usr/share/man/man8/ibd-judge.8.gz ./usr/share/man/man8/ibd-ban.8.gz ./usr/share/man/man8/ibd-stats.8.gz
    ./usr/share/bash-completion/completions/ibd
)
for b in lmdb sqlite redb postgres; do
    deb=$(ls target/debian/ipqbdb-"$b"_*.deb)
    name=ipqbdb-$b
    dpkg-deb -c "$deb" | awk '{print $6}' > "$tmp/list"
    for f in "${required[@]}" ./usr/share/doc/$name/copyright ./usr/share/doc/$name/README.md \
        ./usr/share/doc/$name/UPGRADING.md \
        ./usr/share/doc/$name/examples/iptables-drop.rules ./usr/share/doc/$name/examples/grafana-ipqbdb.json; do
        grep -qx "$f" "$tmp/list" || fail "$deb lacks $f"
    done
    ! grep -E '^\./usr/share/doc/.*[^/]$' "$tmp/list" | grep -v "^\./usr/share/doc/$name/" ||
        fail "$deb has documentation outside /usr/share/doc/$name/"
    ! grep -E '^\./lib/' "$tmp/list" || fail "$deb installs under /lib (units belong in /usr/lib/systemd/system)"
    rm -rf "$tmp/x" "$tmp/ctl"
    dpkg-deb -x "$deb" "$tmp/x"
    dpkg-deb -e "$deb" "$tmp/ctl"
    compiled=$("$tmp/x/usr/sbin/ibd" config --config /dev/null | awk '$1 == "backends-compiled" {print $2}')
    [ "$compiled" = "$b" ] || fail "$deb: backends-compiled $compiled, expected $b"

    # Copyright: ipqbdb everywhere, plus what the engine bundles, each licence with its text.
    dep5 "$tmp/x/usr/share/doc/$name/copyright" > "$tmp/dep5" || fail "$deb: copyright is not valid DEP-5"
    grep -qxF "$(printf '*\tGPL-3.0-or-later')" "$tmp/dep5" || fail "$deb: copyright lacks Files: * GPL-3.0-or-later"
    grep -qF "$(printf 'LICENSE\tGPL-3.0-or-later\t')" "$tmp/dep5" || fail "$deb: copyright lacks the GPL paragraph"
    case $b in
    lmdb)
        grep -qE $'^lmdb-master-sys-[0-9.]+/lmdb/libraries/liblmdb/\\*\tOLDAP-2\\.8$' "$tmp/dep5" ||
            fail "$deb: copyright lacks the bundled LMDB (OLDAP-2.8)"
        grep -qxF "$(printf 'LICENSE\tOLDAP-2.8\tThe OpenLDAP Public License')" "$tmp/dep5" ||
            fail "$deb: copyright lacks the text of the OpenLDAP Public License"
        grep -q '^ *Version 2\.8, 17 August 2003$' "$tmp/x/usr/share/doc/$name/copyright" ||
            fail "$deb: the OpenLDAP Public License in copyright is not version 2.8"
        ;;
    sqlite)
        grep -qE $'^libsqlite3-sys-[0-9.]+/sqlite3/\\*\tpublic-domain$' "$tmp/dep5" ||
            fail "$deb: copyright lacks the bundled SQLite (public-domain)"
        ;;
    esac
    grep -qE $'^ring-[0-9.]+/\\*\tISC and Apache-2\\.0$' "$tmp/dep5" ||
        fail "$deb: copyright lacks ring (ISC and Apache-2.0), compiled into ibd"
    grep -qE $'^webpki-roots-[0-9.]+/\\*\tCDLA-Permissive-2\\.0$' "$tmp/dep5" ||
        fail "$deb: copyright lacks webpki-roots (CDLA-Permissive-2.0), compiled into ibd"
    [ "$b" = lmdb ] || ! grep -q OLDAP "$tmp/dep5" || fail "$deb: copyright lists LMDB, which it does not bundle"
    [ "$b" = sqlite ] || ! grep -q public-domain "$tmp/dep5" || fail "$deb: copyright lists SQLite, which it does not bundle"
    licences=$(awk -F '\t' '$1 == "LICENSE" {print $2}' "$tmp/dep5" | paste -sd ' ')

    docs=$(check_documentation "$tmp/x")
    # TCP for the units that open the database: the postgres package's drop-ins, and only there.
    dropins=$(grep -c '^\./usr/lib/systemd/system/ibd-[^/]*\.d/postgres-network\.conf$' "$tmp/list" || true)
    if [ "$b" = postgres ]; then
        [ "$dropins" = 5 ] || fail "$deb: $dropins postgres-network.conf drop-ins, expected 5"
    else
        [ "$dropins" = 0 ] || fail "$deb: has postgres-network.conf drop-ins (its units must stay without network)"
    fi

    # Maintainer scripts: the unit handling generated by cargo-deb, and the user's and data's fate.
    for s in postinst prerm postrm; do
        [ -x "$tmp/ctl/$s" ] || fail "$deb: no executable $s"
        grep -q '^# Automatically added by cargo-deb' "$tmp/ctl/$s" || fail "$deb: $s has no generated section"
        ! grep -q '#DEBHELPER#' "$tmp/ctl/$s" || fail "$deb: $s still holds #DEBHELPER#"
        sh -n "$tmp/ctl/$s" || fail "$deb: $s is not a valid shell script"
    done
    for u in "${daemons[@]}"; do
        # postinst-systemd-dont-enable: re-enables only what the administrator had enabled.
        grep -qx "	if deb-systemd-helper debian-installed $u; then" "$tmp/ctl/postinst" ||
            fail "$deb: postinst does not handle $u as installed-but-not-enabled"
    done
    grep -qx '	if deb-systemd-helper --quiet was-enabled ibd-retention.timer; then' "$tmp/ctl/postinst" &&
        grep -qx '		deb-systemd-helper enable ibd-retention.timer >/dev/null || true' "$tmp/ctl/postinst" ||
        fail "$deb: postinst does not enable ibd-retention.timer"
    ! grep -q 'debian-installed ibd-retention.timer' "$tmp/ctl/postinst" ||
        fail "$deb: postinst handles ibd-retention.timer as not enabled"
    ! grep -qE '(deb-systemd-invoke|systemctl) .*\bstart\b' "$tmp/ctl/postinst" ||
        fail "$deb: postinst starts a unit"
    grep -q 'deb-systemd-invoke $_dh_action\|deb-systemd-invoke try-restart' "$tmp/ctl/postinst" ||
        fail "$deb: postinst does not restart the running units on upgrade"
    grep -q 'systemctl --system daemon-reload' "$tmp/ctl/postinst" || fail "$deb: postinst has no daemon-reload"
    grep -q 'adduser --system --group' "$tmp/ctl/postinst" || fail "$deb: postinst does not create the user ipqbdb"
    for u in "${units[@]}"; do
        grep -E '^\s*deb-systemd-invoke stop ' "$tmp/ctl/prerm" | grep -qF -- " $u" ||
            fail "$deb: prerm does not stop $u"
    done
    for u in "${daemons[@]}" ibd-retention.timer; do # the units with an [Install] section
        grep -E '^\s*deb-systemd-helper purge ' "$tmp/ctl/postrm" | grep -qF -- " $u" ||
            fail "$deb: postrm does not purge the enablement state of $u"
    done
    grep -q 'systemctl --system daemon-reload' "$tmp/ctl/postrm" || fail "$deb: postrm has no daemon-reload"
    grep -q '^    rm -rf /var/lib/ipqbdb$' "$tmp/ctl/postrm" && grep -q 'deluser --quiet --system ipqbdb' "$tmp/ctl/postrm" ||
        fail "$deb: postrm purge does not remove the database and the user"
    echo "$name: $(wc -l < "$tmp/list") entries, engine $compiled, licences $licences, $docs, unit handling generated: ok"
done

# The state of the package, its user and group, units and database directory on this machine.
# dpkg -s: "STATUS VERSION", or "not-installed".
dpkg_status() {
    dpkg -s "$pkg" 2> /dev/null | awk '/^Status: / {sub(/^Status: /, ""); s = $0} /^Version: / {v = $2}
        END {if (s == "") print "not-installed"; else print s, v}'
}
show_state() {
    echo "  dpkg -s: $(dpkg_status)"
    echo "  getent: $(getent passwd ipqbdb || echo 'no user ipqbdb'); $(getent group ipqbdb || echo 'no group ipqbdb')"
    echo "  units: $(find /usr/lib/systemd/system/ -maxdepth 1 -name 'ibd-*' -printf '%f\n' | sort | paste -sd ' ')"
    echo "  enabled: $(find /etc/systemd/system -name 'ibd-*' -printf '%P -> %l\n' 2> /dev/null | paste -sd ' ' || true)"
    if [ -e /var/lib/ipqbdb ]; then
        echo "  ls /var/lib/ipqbdb: $(stat -c '%A %U:%G' /var/lib/ipqbdb): $(ls -A /var/lib/ipqbdb | paste -sd ' ')"
    else
        echo "  ls /var/lib/ipqbdb: absent"
    fi
}
expect_status() {
    [ "$(dpkg_status)" = "$1" ] || fail "dpkg -s $pkg: expected '$1', got '$(dpkg_status)'"
}
expect_user() {
    local entry
    entry=$(getent passwd ipqbdb) || fail "no user ipqbdb"
    [ "$(echo "$entry" | cut -d: -f3)" -lt 1000 ] || fail "ipqbdb is not a system user: $entry"
    [ "$(echo "$entry" | cut -d: -f6)" = /var/lib/ipqbdb ] || fail "ipqbdb's home is not /var/lib/ipqbdb: $entry"
    getent group ipqbdb > /dev/null || fail "no group ipqbdb"
    [ "$(id -gn ipqbdb)" = ipqbdb ] || fail "ipqbdb's primary group is not ipqbdb"
}
expect_units() {
    local u wants
    for u in "${units[@]}" "${templates[@]}"; do
        [ -f /usr/lib/systemd/system/"$u" ] || fail "/usr/lib/systemd/system/$u is missing"
    done
    # Installed but not enabled: the administrator enables the firewall daemons; the timer is enabled.
    for u in "${daemons[@]}"; do
        [ -z "$(find /etc/systemd/system -name "$u" 2> /dev/null)" ] || fail "$u is enabled or masked"
    done
    wants=/etc/systemd/system/timers.target.wants/ibd-retention.timer
    [ -L $wants ] && [ "$(readlink -f $wants)" = "$(readlink -f /usr/lib/systemd/system/ibd-retention.timer)" ] ||
        fail "ibd-retention.timer is not enabled (no $wants)"
    grep -q deb-systemd-helper /var/lib/dpkg/info/"$pkg".postinst || fail "the installed postinst lacks deb-systemd-helper"
    grep -q deb-systemd-helper /var/lib/dpkg/info/"$pkg".postrm || fail "the installed postrm lacks deb-systemd-helper"
}
# The database directory as systemd creates it for the units (StateDirectory=, StateDirectoryMode=).
make_state_dir() {
    install -d -m 2770 -o ipqbdb -g ipqbdb /var/lib/ipqbdb
}
# `ibd ban` as the user ipqbdb with the units' umask, as the daemons and the retention timer run.
ban_as_ipqbdb() {
    runuser -u ipqbdb -- sh -c "umask 007 && exec ibd ban --db-dir /var/lib/ipqbdb -r check-debs $1" > /dev/null ||
        fail "ibd ban $1 as the user ipqbdb failed"
}
listed() {
    runuser -u ipqbdb -- ibd del --db-dir /var/lib/ipqbdb --ls | grep -qw -- "$1"
}

step "install $(basename "$deb1")"
apt_install "$PWD/$deb1"
expect_status "install ok installed $(dpkg-deb -f "$deb1" Version)"
expect_user
expect_units
[ ! -e /var/lib/ipqbdb ] || fail "the package created /var/lib/ipqbdb (systemd's StateDirectory= does)"
ibd config > "$tmp/config"
grep -qx "backends-compiled lmdb" "$tmp/config" || fail "ibd config: not backends-compiled lmdb"
grep -qx "config-file /etc/ipqbdb/ipqbdb.toml" "$tmp/config" || fail "ibd config: not config-file /etc/ipqbdb/ipqbdb.toml"
ibd-ban --db-dir "$tmp/db" -c 0 192.0.2.1 | grep -q "reached 100%" || fail "ibd-ban -c 0 did not reach 100%"
check_documentation "" > /dev/null
echo "installed units: every Documentation= resolves"
systemd-analyze verify --man=no "${units[@]/#//usr/lib/systemd/system/}" "${templates[@]/#//usr/lib/systemd/system/}" ||
    fail "systemd-analyze verify refuses an installed unit"
echo "systemd-analyze verify: the installed units are valid"
make_state_dir
ban_as_ipqbdb 192.0.2.7
listed 192.0.2.7 || fail "192.0.2.7 is not in the database after ibd ban"
show_state

step "upgrade to $(basename "$deb2")"
dpkg -i "$deb2" > /dev/null || fail "dpkg -i $deb2 (upgrade) failed"
expect_status "install ok installed $(dpkg-deb -f "$deb2" Version)"
expect_user
expect_units
listed 192.0.2.7 || fail "the upgrade lost the database"
show_state

step "remove"
dpkg --remove "$pkg" > /dev/null || fail "dpkg --remove $pkg failed"
expect_status "deinstall ok config-files $(dpkg-deb -f "$deb2" Version)"
expect_user
for u in "${units[@]}" "${templates[@]}"; do
    [ ! -e /usr/lib/systemd/system/"$u" ] || fail "remove left /usr/lib/systemd/system/$u"
done
for u in "${daemons[@]}" ibd-retention.timer; do # masked by the generated postrm until purge or reinstall
    [ "$(readlink /etc/systemd/system/"$u")" = /dev/null ] || fail "remove did not mask $u"
done
[ -f /var/lib/ipqbdb/ipqbdb-backend ] && [ -s /var/lib/ipqbdb/lmdb/data.mdb ] || fail "remove did not keep the database"
grep -q deb-systemd-helper /var/lib/dpkg/info/"$pkg".postrm || fail "the kept postrm lacks deb-systemd-helper"
show_state

step "purge"
dpkg --purge "$pkg" > /dev/null || fail "dpkg --purge $pkg failed"
expect_status not-installed
! getent passwd ipqbdb > /dev/null || fail "purge left the user ipqbdb"
! getent group ipqbdb > /dev/null || fail "purge left the group ipqbdb"
[ ! -e /var/lib/ipqbdb ] || fail "purge left /var/lib/ipqbdb"
[ -z "$(find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled \
    /var/lib/systemd/deb-systemd-helper-masked -name '*ibd-*' 2> /dev/null)" ] ||
    fail "purge left unit state: $(find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-* -name '*ibd-*')"
[ ! -e /var/lib/dpkg/info/"$pkg".postrm ] || fail "purge left the maintainer scripts"
show_state

step "a web application in the group ipqbdb runs ibd ban (each package)"
# Each package in turn: install, the database directory as systemd makes it, a first ban by the user
# ipqbdb with the units' umask, then a ban by a member of the group ipqbdb; purge. Every engine is
# tried before the verdict, so a failure names all the engines that fail.
refused=()
for b in lmdb sqlite redb; do
    deb=$(ls target/debian/ipqbdb-"$b"_*.deb)
    dpkg -i "$deb" > /dev/null || fail "dpkg -i $deb failed"
    make_state_dir
    ban_as_ipqbdb 192.0.2.8
    adduser --system --no-create-home --quiet "$web"
    adduser --quiet "$web" ipqbdb # as the README says for www-data
    if runuser -u "$web" -- ibd ban --db-dir /var/lib/ipqbdb -r check-debs-web 192.0.2.9 > /dev/null; then
        listed 192.0.2.9 || fail "ipqbdb-$b: the web application's ban is not in the database"
        echo "ipqbdb-$b: ibd ban as ipqbdb (umask 007), then as $web (member of ipqbdb): both banned"
    else
        refused+=("ipqbdb-$b (not group-writable: $(find /var/lib/ipqbdb ! -perm -g+w -printf '%m %P, ' | sed 's/, $//'))")
    fi
    deluser --quiet "$web" > /dev/null
    dpkg --purge "ipqbdb-$b" > /dev/null || fail "dpkg --purge ipqbdb-$b failed"
    ! getent passwd ipqbdb > /dev/null && [ ! -e /var/lib/ipqbdb ] || fail "purge left the user ipqbdb or /var/lib/ipqbdb"
done
[ ${#refused[@]} -eq 0 ] || fail "a member of the group ipqbdb cannot run ibd ban with: ${refused[*]}"
