#!/usr/bin/env bash
# Builds the Debian packages ipqbdb-lmdb, ipqbdb-sqlite, ipqbdb-redb and ipqbdb-postgres, each with only its storage
# engine compiled in, into target/debian/. Needs cargo-deb (cargo install --locked cargo-deb).
# Usage: packaging/build-debs.sh [BACKEND...]   (default: all four)
# Environment: DEB_OUTPUT, the output directory (default target/debian); DEB_REVISION, the Debian
# revision (default 1, making version 0.1.0-1); DEB_FAST=1, faster compression and larger files
# (for checks that read the packages, not for packages to ship).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb > /dev/null || {
    echo "build-debs.sh: cargo-deb is missing (cargo install --locked cargo-deb)" >&2
    exit 1
}
backends=("$@")
[ ${#backends[@]} -gt 0 ] || backends=(lmdb sqlite redb postgres)
cargo run --quiet -p ipqbdb-xtask -- docs target/docs > /dev/null
# One target directory for all variants (release-build.sh's): only the store and what links it are
# rebuilt per engine, and a variant a demo built is not built again.
export CARGO_TARGET_DIR=$PWD/target/deb-build

# The source directory of a locked dependency (its version from Cargo.lock), which the build unpacked:
# e.g. ~/.cargo/registry/src/index.crates.io-*/lmdb-master-sys-0.2.6.
crate_dir() {
    local version dirs
    version=$(awk -v name="$1" '$0 == "name = \"" name "\"" {getline; gsub(/^version = "|"$/, ""); print}' Cargo.lock)
    [ -n "$version" ] || { echo "build-debs.sh: crate $1 is not in Cargo.lock" >&2; return 1; }
    dirs=("${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$1-$version")
    [ -d "${dirs[0]}" ] || { echo "build-debs.sh: no source of $1 $version under ${CARGO_HOME:-$HOME/.cargo}/registry/src" >&2; return 1; }
    echo "${dirs[0]}"
}
# A DEP-5 licence text: indented by one space, empty lines as " .", trailing empty lines dropped.
license_text() {
    sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$1" | sed -e 's/^[[:space:]]*$/./' -e 's/^/ /'
}
# The copyright file of one package: ipqbdb's, then the C library its engine bundles and ring's
# (packaging/copyright/).
copyright() {
    local dir liblmdb
    cat packaging/copyright/header
    case $1 in
    lmdb)
        dir=$(crate_dir lmdb-master-sys)
        liblmdb=$dir/lmdb/libraries/liblmdb
        license_text "$liblmdb/LICENSE" > "$tmp/license"
        grep -q '^ The OpenLDAP Public License$' "$tmp/license" &&
            grep -q '^ *Version 2\.8,' "$tmp/license" || {
            echo "build-debs.sh: $liblmdb/LICENSE is not the OpenLDAP Public License 2.8" >&2
            return 1
        }
        sed -e "s|@CRATE@|$(basename "$dir")|g" \
            -e "s|@COPYRIGHT@|$(sed -n '1s/^Copyright //p' "$liblmdb/COPYRIGHT")|" \
            -e "/^@LICENSE@\$/{r $tmp/license" -e 'd}' packaging/copyright/lmdb
        ;;
    sqlite)
        dir=$(crate_dir libsqlite3-sys)
        sed -e "s|@CRATE@|$(basename "$dir")|g" \
            -e "s|@SQLITE_VERSION@|$(sed -n 's/^#define SQLITE_VERSION  *"\(.*\)"$/\1/p' "$dir/sqlite3/sqlite3.h")|" \
            packaging/copyright/sqlite
        ;;
    esac
    # Every package: ring's C and assembly and Mozilla's root certificates are in ibd (ibd report's TLS).
    dir=$(crate_dir ring)
    license_text "$dir/LICENSE-other-bits" > "$tmp/isc"
    grep -q 'Permission to use, copy, modify, and/or distribute this software' "$tmp/isc" || {
        echo "build-debs.sh: $dir/LICENSE-other-bits is not the ISC licence" >&2
        return 1
    }
    roots=$(crate_dir webpki-roots)
    license_text "$roots/LICENSE" > "$tmp/cdla"
    grep -q 'Community Data License Agreement - Permissive - Version 2.0' "$tmp/cdla" || {
        echo "build-debs.sh: $roots/LICENSE is not the CDLA-Permissive-2.0" >&2
        return 1
    }
    sed -e "s|@CRATE@|$(basename "$dir")|g" -e "s|@ROOTS_CRATE@|$(basename "$roots")|g" \
        -e "/^@ISC@\$/{r $tmp/isc" -e 'd}' -e "/^@CDLA@\$/{r $tmp/cdla" -e 'd}' packaging/copyright/ring
    cat packaging/copyright/footer
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p target/debian-copyright "${DEB_OUTPUT:-target/debian}"
out=$(cd "${DEB_OUTPUT:-target/debian}" && pwd)
for b in "${backends[@]}"; do
    packaging/release-build.sh "$b" > /dev/null
    copyright "$b" > target/debian-copyright/"$b"
    cargo deb --no-build --quiet -p ipqbdb-admin --variant "$b" --output "$out/" \
        ${DEB_REVISION:+--deb-revision "$DEB_REVISION"} ${DEB_FAST:+--fast}
done
ls -1 "$out"/*.deb
