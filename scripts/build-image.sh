#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the container image (Dockerfile) as IMAGE (default voice-otp:local) and prints its size
# and build time. `make image` runs it.
#
# With a Docker engine that answers, `docker build`. Otherwise buildah (Debian's package, no
# engine, no registry): the Dockerfile's FROM (debian:12-slim) is made locally with mmdebstrap
# from the Debian mirror apt already uses, kept as a tarball under build/image/ (made once per
# work tree: a fresh clone makes it anew, a second run reuses it), imported and tagged, and then
# `buildah bud --isolation chroot`.
#
# OTP_VERSION is passed to the build (the programs' --version); by default `git describe`.
# OTP_IMAGE_ENGINE=docker|buildah forces one. Needs root for buildah and mmdebstrap.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=${IMAGE:-voice-otp:local}
BASE_TAG=docker.io/library/debian:12-slim
CACHE=${OTP_IMAGE_CACHE:-$ROOT/build/image}
VERSION=${OTP_VERSION:-$("$ROOT/scripts/version.sh")}

log() { echo "build-image: $*" >&2; }
die() { log "$*"; exit 1; }

engine=${OTP_IMAGE_ENGINE:-}
if [[ -z "$engine" ]]; then
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        engine=docker
    else
        engine=buildah
    fi
fi

# The first URI apt uses for suite $1 (one-line sources.list entries, then deb822 .sources).
apt_uri() {
    local suite=$1 uri
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        sed -e 's/\[[^]]*\]//' | awk -v s="$suite" '$1 == "deb" && $3 == s { print $2; exit }')
    if [[ -z "$uri" ]]; then
        uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v s="$suite" '
            BEGIN { RS = "" }
            { uri = ""; ok = 0; n = split($0, l, "\n")
              for (i = 1; i <= n; i++) {
                  if (l[i] ~ /^URIs:/) { split(l[i], a, " "); uri = a[2] }
                  if (l[i] ~ /^Suites:/) { m = split(l[i], b, " ")
                      for (j = 2; j <= m; j++) if (b[j] == s) ok = 1 } }
              if (ok && uri != "") { print uri; exit } }')
    fi
    echo "$uri"
}

# Makes (once) and imports the Debian 12 base as BASE_TAG, unless the image there is the one
# imported from this tarball.
buildah_base() {
    local tar=$CACHE/debian-12-slim.tar idfile=$CACHE/debian-12-slim.id ctr id
    mkdir -p "$CACHE"
    if [[ ! -s "$tar" ]]; then
        command -v mmdebstrap >/dev/null || die "mmdebstrap missing: run scripts/install-deps.sh"
        local main security
        main=$(apt_uri bookworm)
        security=$(apt_uri bookworm-security)
        main=${main:-http://deb.debian.org/debian}
        security=${security:-http://deb.debian.org/debian-security}
        log "making the debian:12-slim base with mmdebstrap from $main"
        # minbase, merged /usr, no manuals, docs (but copyrights), locales or info pages:
        # the size of Debian's own bookworm-slim.
        mmdebstrap --quiet --variant=minbase --format=tar \
            --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
            --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/doc/*' \
            --dpkgopt='path-include=/usr/share/doc/*/copyright' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            --dpkgopt='path-exclude=/usr/share/info/*' \
            --aptopt='Acquire::Languages "none"' \
            bookworm "$tar.tmp" \
            "deb $main bookworm main" "deb $main bookworm-updates main" \
            "deb $security bookworm-security main" >"$CACHE/mmdebstrap.log" 2>&1 ||
            { tail -20 "$CACHE/mmdebstrap.log" >&2; die "mmdebstrap failed (log $CACHE/mmdebstrap.log)"; }
        mv "$tar.tmp" "$tar"
        rm -f "$idfile"
    fi
    id=$(buildah inspect --type image --format '{{.FromImageID}}' "$BASE_TAG" 2>/dev/null || true)
    if [[ -z "$id" || ! -s "$idfile" || "$(cat "$idfile")" != "$id" ]]; then
        log "importing $tar as $BASE_TAG"
        ctr=$(buildah from scratch)
        buildah add --quiet "$ctr" "$tar" / >/dev/null
        buildah config --cmd '["bash"]' "$ctr"
        buildah commit --quiet --rm "$ctr" "$BASE_TAG" >/dev/null
        buildah inspect --type image --format '{{.FromImageID}}' "$BASE_TAG" >"$idfile"
    fi
}

start=$(date +%s)
case "$engine" in
docker)
    docker build --build-arg OTP_VERSION="$VERSION" -t "$IMAGE" "$ROOT"
    size=$(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }')
    ;;
buildah)
    command -v buildah >/dev/null || die "buildah missing: run scripts/install-deps.sh"
    buildah_base
    old=$(buildah inspect --type image --format '{{.FromImageID}}' "$IMAGE" 2>/dev/null || true)
    buildah bud --quiet --isolation chroot --build-arg OTP_VERSION="$VERSION" \
        -t "$IMAGE" "$ROOT" >"$CACHE/bud.log" 2>&1 ||
        { tail -30 "$CACHE/bud.log" >&2; die "buildah bud failed (log $CACHE/bud.log)"; }
    # The image this build replaced, now nameless: keep the storage from growing.
    new=$(buildah inspect --type image --format '{{.FromImageID}}' "$IMAGE")
    if [[ -n "$old" && "$old" != "$new" ]]; then
        buildah rmi "$old" >/dev/null 2>&1 || true
    fi
    size=$(buildah images --noheading --format '{{.Size}}' "$IMAGE")
    ;;
*)
    die "OTP_IMAGE_ENGINE must be docker or buildah, not '$engine'"
    ;;
esac
echo "image $IMAGE (version $VERSION, $engine): $size, built in $(($(date +%s) - start)) s"
