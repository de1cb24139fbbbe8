#!/bin/sh
# Test set-up for the end-to-end suite: fetch Debian's kernel package into a cache dir and unpack it.
# Never `apt-get install` a kernel here (it would touch the host's systemd/udev); download + extract only.
# Prints the unpacked root (holding boot/vmlinuz-* and lib/modules/*) on stdout.
set -eu
cache=${WINGEN_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wingen-e2e}
abi=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: linux-image-\(.*-amd64\)$/\1/p' | head -n 1)
[ -n "$abi" ] || { echo "setup.sh: cannot resolve linux-image-amd64's ABI name (apt-get update?)" >&2; exit 1; }
root=$cache/kernel-$abi
if [ ! -e "$root/.done" ]; then
    mkdir -p "$cache/dl"
    ( cd "$cache/dl" && apt-get download "linux-image-$abi" >&2 )
    rm -rf "$root"
    mkdir -p "$root"
    dpkg-deb -x "$cache/dl/linux-image-${abi}"_*.deb "$root"
    touch "$root/.done"
fi
echo "$root"
