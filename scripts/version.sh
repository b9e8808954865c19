#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Prints the release version the programs report (--version, otp_build_info).
# In a git work tree: `git describe` of the last release tag vN.N.N without its "v"
# (1.2.0, or 1.2.0-3-gabc1234 three commits past it, with -dirty for uncommitted changes);
# before the first tag, 0.0.0-<commits>-g<hash>. Outside git (a source tarball from
# `make dist`): the VERSION file beside the Makefile. Neither: an error.
# --commit: the version of the last commit, without -dirty (what `make dist` packs).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
dirty_flag=--dirty
if [ "${1:-}" = --commit ]; then
    dirty_flag=
fi
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1 &&
    [ "$(git -C "$root" rev-parse --show-toplevel)" = "$root" ]; then
    if v=$(git -C "$root" describe --tags --match 'v[0-9]*' $dirty_flag 2>/dev/null); then
        echo "${v#v}"
    else
        dirty=
        if [ -n "$dirty_flag" ] && ! git -C "$root" diff --quiet HEAD 2>/dev/null; then
            dirty=-dirty
        fi
        echo "0.0.0-$(git -C "$root" rev-list --count HEAD)-g$(git -C "$root" rev-parse --short HEAD)$dirty"
    fi
elif [ -s "$root/VERSION" ]; then
    head -n 1 "$root/VERSION"
else
    echo "version.sh: neither a git work tree nor a VERSION file in $root" >&2
    exit 1
fi
