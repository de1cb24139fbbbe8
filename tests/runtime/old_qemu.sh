#!/bin/sh
# Test set-up: Debian bookworm's QEMU 7.2 (older than 8.2, so without `rom` on the file memory
# backend and without mapped-ram), downloaded and unpacked beside the installed QEMU, never
# installed.  The runtime's fallbacks for old QEMU run against it for real.
# Prints the path of a wrapper that runs it (with its own modules and firmware) on stdout.
set -eu
cache=${WINGEN_OLD_QEMU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wingen-qemu-7.2}
wrapper=$cache/bin/qemu-system-x86_64
if [ ! -e "$cache/.done" ]; then
    mkdir -p "$cache/dl"
    for pkg in qemu-system-x86 qemu-system-common qemu-system-data; do
        ver=$(apt-cache madison "$pkg" | awk -F'|' '$2 ~ /^ *1:7\.2/ { gsub(/ /, "", $2); print $2; exit }')
        [ -n "$ver" ] || { echo "old_qemu.sh: no QEMU 7.2 $pkg in apt's sources (add Debian bookworm, apt-get update)" >&2; exit 1; }
        ( cd "$cache/dl" && apt-get download "$pkg=$ver" >&2 )
    done
    rm -rf "${cache:?}/root" "${cache:?}/bin"
    mkdir -p "$cache/root" "$cache/bin"
    for deb in "$cache"/dl/*.deb; do dpkg-deb -x "$deb" "$cache/root"; done
    cat >"$wrapper" <<'WRAP'
#!/bin/sh
# QEMU 7.2 unpacked from Debian bookworm: its own accelerator modules and firmware.  Paths are
# relative to this script, so the cache dir may be copied elsewhere (tests that run as another user).
root=$(cd "$(dirname "$0")/../root" && pwd)
QEMU_MODULE_DIR=$root/usr/lib/x86_64-linux-gnu/qemu exec "$root/usr/bin/qemu-system-x86_64" -L "$root/usr/share/qemu" "$@"
WRAP
    chmod 755 "$wrapper"
    touch "$cache/.done"
fi
echo "$wrapper"
