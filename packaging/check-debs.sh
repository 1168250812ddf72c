#!/usr/bin/env bash
# CI check of the Debian packages: builds all three, checks their contents and that each contains
# only its own storage engine, installs ipqbdb-lmdb, runs `ibd config` and `ibd-ban`, then purges it.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb > /dev/null || cargo install --locked --quiet cargo-deb
rm -rf target/debian
packaging/build-debs.sh > /dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; dpkg --purge ipqbdb-lmdb > /dev/null 2>&1 || true' EXIT
required=(
    ./usr/sbin/ibd ./usr/sbin/ibd-parse ./usr/sbin/ibd-judge
    ./usr/sbin/ibd-ban ./usr/sbin/ibd-del ./usr/sbin/ibd-white ./usr/sbin/ibd-config ./usr/sbin/ibd-category
    ./etc/ipqbdb-pcre.conf ./etc/ipqbdb-connkill.cmd ./etc/ipqbdb/ipqbdb.toml
    ./lib/systemd/system/ibd-judge.service ./lib/systemd/system/ibd-parse.service
    ./lib/systemd/system/ibd-retention.timer
    ./usr/share/man/man8/ibd-judge.8.gz ./usr/share/man/man8/ibd-ban.8.gz
    ./usr/share/bash-completion/completions/ibd
    ./usr/share/doc/ipqbdb/examples/iptables-drop.rules
)
for b in lmdb sqlite redb; do
    deb=$(ls target/debian/ipqbdb-"$b"_*.deb)
    dpkg-deb -c "$deb" | awk '{print $6}' > "$tmp/list"
    for f in "${required[@]}"; do
        grep -qx "$f" "$tmp/list" || { echo "$deb lacks $f"; exit 1; }
    done
    rm -rf "$tmp/x"; dpkg-deb -x "$deb" "$tmp/x"
    compiled=$("$tmp/x/usr/sbin/ibd" config --config /dev/null | awk '$1 == "backends-compiled" {print $2}')
    [ "$compiled" = "$b" ] || { echo "$deb: backends-compiled $compiled, expected $b"; exit 1; }
    echo "$deb: $(wc -l < "$tmp/list") entries, engine $compiled: ok"
done
dpkg -i target/debian/ipqbdb-lmdb_*.deb > /dev/null
ibd config | tee "$tmp/config"
grep -qx "backends-compiled lmdb" "$tmp/config"
grep -qx "config-file /etc/ipqbdb/ipqbdb.toml" "$tmp/config"
ibd-ban --db-dir "$tmp/db" -c 0 192.0.2.1 | grep -q "reached 100%"
getent passwd ipqbdb > /dev/null || { echo "postinst did not create the ipqbdb user"; exit 1; }
if command -v systemd-analyze > /dev/null; then
    systemd-analyze verify --man=no /lib/systemd/system/ibd-*.service /lib/systemd/system/ibd-*.timer
    echo "systemd-analyze verify: the installed units are valid"
fi
echo "installed ipqbdb-lmdb: ibd config and ibd-ban work"
