# FOR TESTS ONLY. The stand-in's kernel, built the way nixpkgs builds its kernels, so that the e2e
# suite boots what users boot and not Debian's prebuilt kernel, whose built-ins hide every module our
# VMs would miss:
#   - the config is `make allnoconfig` plus kernel.config: nixpkgs' choices for what our VMs use, and
#     every driver, filesystem and crypto algorithm they need as a module, as nixpkgs' autoModules
#     makes every tristate it is not told otherwise;
#   - modules xz-compressed and stripped (common-config.nix: MODULE_COMPRESS_XZ; kernel/build.nix:
#     INSTALL_MOD_STRIP=1), with depmod's indexes;
#   - the unstripped ELF vmlinux with the PVH entry note kept beside the bzImage (build.nix copies
#     it to `dev`).
# The result is laid out as a kernel root (boot/vmlinuz-V, boot/vmlinux-V, lib/modules/V), the
# shape default.nix's `kernelRoot` takes; default.nix splits it into nixpkgs' outputs.
#
# Built from Debian's kernel source package (`linux-source-6.12`, /usr/src), taken into the store by
# its content: the same tarball gives the same store path, so a machine builds it once (≈5 min on 2
# cores) and later runs reuse it. Built with this machine's compiler, outside any sandbox need: the
# build reads only /usr, /bin and the source.
{ source ? /usr/src/linux-source-6.12.tar.xz
, config ? ./kernel.config
, system ? "x86_64-linux"
}:
derivation {
  name = "standin-kernel-6.12";
  inherit system config;
  src = builtins.path { path = source; name = "linux-source-6.12.tar.xz"; };
  builder = "/bin/sh";
  PATH = "/usr/bin:/usr/sbin:/bin:/sbin";
  # Reproducible, as nixpkgs' kernel build sets them.
  KBUILD_BUILD_TIMESTAMP = "Thu Jan  1 00:00:01 UTC 1970";
  KBUILD_BUILD_USER = "wingen";
  KBUILD_BUILD_HOST = "standin";
  args = [ "-ec" ''
    mkdir src && cd src
    tar -xf "$src" --strip-components=1
    KCONFIG_ALLCONFIG="$config" make -s allnoconfig
    # Every line asked for must be in the result: a symbol that this source lacks, or whose
    # dependency is missing from kernel.config, would otherwise be dropped without a word.
    missing=$(grep '^CONFIG_' "$config" | while read -r line; do
      grep -qxF "$line" .config || echo "$line"
    done)
    if [ -n "$missing" ]; then
      echo "standin kernel: kernel.config asks for what the configuration could not take:" >&2
      echo "$missing" >&2
      exit 1
    fi
    jobs=$(nproc)
    make -s -j"$jobs" bzImage modules
    version=$(make -s kernelrelease)
    mkdir -p "$out/boot"
    cp arch/x86/boot/bzImage "$out/boot/vmlinuz-$version"
    cp vmlinux "$out/boot/vmlinux-$version"
    cp .config "$out/boot/config-$version"
    make -s INSTALL_MOD_PATH="$out" INSTALL_MOD_STRIP=1 modules_install
    rm -f "$out/lib/modules/$version/build" "$out/lib/modules/$version/source"
  '' ];
}
