#!/bin/sh
# Test set-up for the end-to-end suite: prints a kernel root (boot/vmlinuz-*, lib/modules/*) on
# stdout, for the stand-in package set's `kernelRoot`.
#   setup.sh          the stand-in kernel, built as nixpkgs builds its kernels (nix/standin/kernel.nix)
#                     from Debian's linux-source-6.12: a store path, built once per machine (≈5 min)
#   setup.sh debian   Debian's prebuilt kernel package, unpacked, for the tests about it: fetched
#                     into a cache dir, never `apt-get install`ed (that would touch the host's
#                     systemd/udev)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
case ${1:-strict} in
strict)
    conf=$(mktemp -d)
    trap 'rm -rf "$conf"' EXIT
    # Sandboxed, as build users, like the suite's own daemon: the build sees only the source and
    # the Debian tool directories.
    printf '%s\n' 'sandbox = true' 'extra-sandbox-paths = /bin /usr /lib /lib64 /etc/alternatives' \
        'build-users-group = nixbld' 'substituters =' > "$conf/nix.conf"
    NIX_CONF_DIR=$conf nix-build --no-out-link "$here/../../nix/standin/kernel.nix"
    ;;
debian)
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
    ;;
*)
    echo "usage: setup.sh [strict|debian]" >&2
    exit 2
    ;;
esac
