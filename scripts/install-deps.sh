#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian 12 packages that building, testing and the demo need.
# Idempotent: when everything is present it only asks dpkg and exits (well under a second).
# Only when something is missing does it run `apt-get update` once and install what is missing,
# as root directly or through sudo.
#
# OTP_SKIP_DEPS=1 skips the whole check (for machines that manage packages another way).
set -euo pipefail

PACKAGES=(
    build-essential g++ pkg-config
    librdkafka-dev libcurl4-openssl-dev libjansson-dev libsodium-dev libmicrohttpd-dev libgnutls28-dev libpq-dev
    libphonenumber-dev
    postgresql-15 postgresql-client-15
    clang clang-format libclang-rt-14-dev
    espeak-ng sox wrk libxml2-utils
    python3 python3-pytest python3-psycopg python3-confluent-kafka python3-jsonschema
    chromium chromium-driver python3-selenium python3-yaml
    ca-certificates git
    prometheus docker-compose systemd
    buildah mmdebstrap
)
# The OpenAPI linter (tests/tools, @redocly/cli) runs on Node.js. A node from elsewhere
# (NodeSource) is fine; only without one are Debian's nodejs and npm installed.
if ! command -v npm >/dev/null 2>&1; then
    PACKAGES+=(nodejs npm)
fi

if [[ "${OTP_SKIP_DEPS:-}" == 1 ]]; then
    exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "install-deps: dpkg-query not found; this script supports Debian 12 only." >&2
    echo "install-deps: install these packages yourself: ${PACKAGES[*]}" >&2
    exit 1
fi

# A package counts as present only when dpkg says "install ok installed"
# (not "deinstall ok config-files", not half-configured).
missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

echo "install-deps: missing packages: ${missing[*]}" >&2

if [[ $(id -u) -eq 0 ]]; then
    as_root=(env)
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo env)
else
    echo "install-deps: not root and sudo is not installed; as root run:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get update
"${as_root[@]}" DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"

# Say so plainly if apt-get finished but something is still not there.
still=()
for pkg in "${missing[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        still+=("$pkg")
    fi
done
if [[ ${#still[@]} -gt 0 ]]; then
    echo "install-deps: still missing after apt-get install: ${still[*]}" >&2
    exit 1
fi
echo "install-deps: installed ${missing[*]}" >&2
