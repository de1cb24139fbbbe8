# FOR TESTS ONLY. A stand-in for the few nixpkgs names wingen's rendered Nix uses, made from this
# machine's Debian tools, so the rendered expression builds with Debian's nix-bin (single-user,
# `sandbox = false`, no network, no nixpkgs). Nothing here is a real package: most entries are
# symlinks into /usr. Signatures follow nixpkgs so the rendered Nix is the same for both.
#
# The controller VM runs from a disk image of its closure, as with nixpkgs, so what runs there
# (samba, openssh) is self-contained here too: the host's programs with their libraries and loader
# copied into the store path and patched to find them there (as nixpkgs' own binaries do), nothing
# pointing into /usr. Tools that run inside the guest's own disk (busybox, dropbear) are
# self-contained copies too (static busybox; dropbear with its libraries and loader in FHS places).
#
# At least as strict as nixpkgs where the rendered Nix depends on it: bash has no programmable
# completion (no compgen), the kernel's modules sit in a separate `modules` output (nixos-25.11 and
# later; `splitKernelModules = false` gives 24.05's layout), makeModulesClosure resolves names as
# modprobe does and fails on one the kernel lacks, and dropbear's sbin is a symlink to bin.
#
# Impure on purpose (pass --impure to flakes): the kernel comes from WINGEN_STANDIN_KERNEL (the dir
# tests/e2e/setup.sh prints) and wingen's own Python from WINGEN_STANDIN_PYTHON (a python3 that has
# wingen's dependencies installed). Under pure evaluation both are empty: the set still evaluates.
# Like nixpkgs it takes `overlays`.
{ kernelRoot ? builtins.getEnv "WINGEN_STANDIN_KERNEL"
, hostPython ? builtins.getEnv "WINGEN_STANDIN_PYTHON"
, splitKernelModules ? true
, system ? "x86_64-linux"
, overlays ? [ ]
, config ? { }
, ...
}:
let
  hostPath = "/usr/bin:/usr/sbin:/bin:/sbin";

  # nixpkgs' bash is built --disable-readline, which removes programmable completion: compgen,
  # complete and compopt do not exist ("command not found", exit 127). Debian's bash, with those
  # builtins disabled before any script runs (BASH_ENV is read by every non-interactive bash).
  strictBash = derivation {
    name = "standin-bash";
    inherit system;
    builder = "/bin/sh";
    args = [ "-ec" ''
      /bin/mkdir -p $out/bin $out/lib
      printf '%s\n' 'enable -n compgen complete compopt' 'unset BASH_ENV' > $out/lib/no-completion.sh
      printf '%s\n' '#!/bin/sh' "BASH_ENV=$out/lib/no-completion.sh exec /bin/bash \"\$@\"" > $out/bin/bash
      /bin/chmod +x $out/bin/bash
      /bin/ln -s bash $out/bin/sh
    '' ];
  };

  # builtins-only runCommand: the script runs under that bash, with PATH as given.
  runCommandWithPath = path: name: env: buildCommand:
    derivation ({
      inherit name system buildCommand;
      builder = "${strictBash}/bin/bash";
      args = [ "-e" "-c" "eval \"$buildCommand\"" ];
      PATH = path;
      passAsFile = [ ];
    } // builtins.removeAttrs env [ "passthru" "meta" ]) // (env.passthru or { });

  # The stand-in's own packages are made from the host's tools.
  hostRunCommand = runCommandWithPath hostPath;

  # Programs named, not asked of dpkg: the build sandbox does not see its database.
  coreutilsProgs = [
    "arch" "b2sum" "base32" "base64" "basename" "basenc" "cat" "chcon" "chgrp" "chmod" "chown"
    "cksum" "comm" "cp" "csplit" "cut" "date" "dd" "df" "dir" "dircolors" "dirname" "du"
    "echo" "env" "expand" "expr" "factor" "false" "fmt" "fold" "groups" "head" "hostid" "id"
    "install" "join" "link" "ln" "logname" "ls" "md5sum" "mkdir" "mkfifo" "mknod" "mktemp"
    "mv" "nice" "nl" "nohup" "nproc" "numfmt" "od" "paste" "pathchk" "pinky" "pr" "printenv"
    "printf" "ptx" "pwd" "readlink" "realpath" "rm" "rmdir" "runcon" "seq" "sha1sum"
    "sha224sum" "sha256sum" "sha384sum" "sha512sum" "shred" "shuf" "sleep" "sort" "split"
    "stat" "stdbuf" "stty" "sum" "sync" "tac" "tail" "tee" "test" "timeout" "touch" "tr"
    "true" "truncate" "tsort" "tty" "uname" "unexpand" "uniq" "unlink" "users" "vdir" "wc"
    "who" "whoami" "yes"
  ];
  # What nixpkgs' runCommand (stdenvNoCC) puts on PATH, and no more: coreutils, findutils,
  # diffutils, sed, grep, awk, tar, gzip, bzip2, xz, make, patch, bash. Everything else the
  # rendered Nix runs must come from a package it names (cpio, zstd, busybox...).
  stdenvTools = hostRunCommand "standin-stdenv-tools" {
    progs = coreutilsProgs ++ [ "find" "xargs" "cmp" "diff" "diff3" "sed" "grep" "tar" "gzip"
      "gunzip" "zcat" "bzip2" "bunzip2" "bzcat" "xz" "unxz" "xzcat" "make" "patch" ];
  } ''
    mkdir -p $out/bin
    for p in $progs; do
      [ -e "/usr/bin/$p" ] || { echo "stand-in stdenv: /usr/bin/$p not found" >&2; exit 1; }
      ln -s "/usr/bin/$p" "$out/bin/$p"
    done
    ln -s /usr/bin/[ $out/bin/[
    ln -s /usr/bin/mawk $out/bin/awk
    ln -s ${strictBash}/bin/bash $out/bin/bash
    ln -s bash $out/bin/sh
  '';
  runCommand = runCommandWithPath "${stdenvTools}/bin";

  writeTextFile = { name, text, executable ? false, destination ? "" }:
    runCommand name { inherit text executable destination; passAsFile = [ "text" ]; } ''
      target="$out$destination"
      mkdir -p "$(dirname "$target")"
      cp "$textPath" "$target"
      if [ "$executable" = 1 ]; then chmod +x "$target"; fi
    '';

  # A package whose bin/ links to host programs (found in /usr/bin or /usr/sbin).
  hostTools = name: progs: hostRunCommand "standin-${name}" { inherit progs; } ''
    mkdir -p $out/bin
    for p in $progs; do
      for d in /usr/bin /usr/sbin; do
        if [ -e "$d/$p" ]; then ln -s "$d/$p" "$out/bin/$p"; continue 2; fi
      done
      echo "stand-in ${name}: host program $p not found (apt-get install it)" >&2; exit 1
    done
  '';

  # Shell words: the shared libraries the host program at shell word `prog` loads (ldd's "=>").
  hostLibsOf = prog: "$(ldd ${prog} | sed -n 's/.*=> \\(\\/[^ ]*\\) .*/\\1/p')";

  # Host programs copied into the store with every library they load and the loader, patched
  # (patchelf: interpreter and RUNPATH) to find them there: a closure that runs with no /usr, as
  # nixpkgs' packages do. (Plugins a program dlopens by an absolute /usr path are not copied:
  # smbd needs none of its own for the controller's shares.)
  selfContained = name: progs: hostRunCommand "standin-${name}-selfcontained" { inherit progs; } ''
    mkdir -p $out/bin $out/lib
    for p in $progs; do
      src=
      for d in /usr/bin /usr/sbin; do [ -e "$d/$p" ] && src=$d/$p && break; done
      [ -n "$src" ] || { echo "stand-in ${name}: host program $p not found (apt-get install it)" >&2; exit 1; }
      cp "$src" $out/bin/
      for l in ${hostLibsOf ''"$src"''}; do
        [ -e "$out/lib/''${l##*/}" ] || cp -L "$l" $out/lib/
      done
    done
    cp -L /lib64/ld-linux-x86-64.so.2 $out/lib/
    chmod -R u+w $out
    for f in $out/bin/*; do
      patchelf --set-interpreter $out/lib/ld-linux-x86-64.so.2 --set-rpath $out/lib "$f"
    done
    for f in $out/lib/*; do
      case ''${f##*/} in ld-linux*|libc.so*) continue ;; esac
      patchelf --set-rpath $out/lib "$f"
    done
  '';

  # Without a kernel dir the set still evaluates (for eval-only tests); building `linux` fails.
  kernelVersion =
    if kernelRoot == "" then "0.0.0-no-kernel"
    else builtins.head (builtins.attrNames (builtins.readDir "${kernelRoot}/lib/modules"));

  # The host python3 (nixpkgs: python3 without packages).
  hostPython3 = hostRunCommand "standin-python3" { } ''
    mkdir -p $out/bin
    ln -s /usr/bin/python3 $out/bin/python3
  '';

  base = self: {
    inherit system runCommand writeTextFile;
    lib = {
      cleanSource = src: builtins.path { path = src; name = "source"; };
      licenses.mit = "MIT";
    };

    # nixpkgs' buildPythonApplication, reduced to what nix/wingen.nix needs: wingen runs from its
    # source tree with a host python3 that has its dependencies.
    python3Packages = {
      hatchling = null; jinja2 = null; pydantic = null; typer = null; tomlkit = null;
      # The flake's devShell's test tools: the host python (WINGEN_STANDIN_PYTHON) has them.
      pytest = null; pytest-timeout = null; hypothesis = null; mypy = null; pycdlib = null;
      buildPythonApplication = { pname, version, src, meta ? { }, ... }:
        runCommand "${pname}-${version}" { inherit src; python = hostPython; } ''
          if [ -z "$python" ]; then
            echo "stand-in: set WINGEN_STANDIN_PYTHON to a python3 with wingen's dependencies" >&2
            exit 1
          fi
          mkdir -p $out/bin $out/lib
          cp -r $src/generator $src/templates $out/lib/
          cat > $out/bin/${pname} <<EOF
          #!/bin/sh
          PYTHONPATH=$out/lib/generator exec $python -B -c 'import sys; from wingen.cli import main; sys.argv[0] = "wingen"; main()' "\$@"
          EOF
          chmod +x $out/bin/${pname}
        '';
    };

    callPackage = fn: args:
      let f = if builtins.isFunction fn then fn else import fn;
      in f (builtins.intersectAttrs (builtins.functionArgs f) self // args);
    pkgs = self;

    stdenv = {
      shell = "${strictBash}/bin/bash";
      hostPlatform = { inherit system; isx86_64 = true; };
      mkDerivation = { name, buildCommand, ... }@a:
        runCommand name (builtins.removeAttrs a [ "name" "buildCommand" ]) buildCommand;
    };
    runtimeShell = "${strictBash}/bin/bash";

    writeText = name: text: writeTextFile { inherit name text; };
    writeScript = name: text: writeTextFile { inherit name text; executable = true; };
    writeShellScript = name: text:
      writeTextFile { inherit name; executable = true; text = "#!${strictBash}/bin/bash\n" + text; };

    # nixpkgs' mkShell: an environment for `nix develop`, not meant to be built.
    mkShell = { packages ? [ ], name ? "nix-shell", ... }@a:
      runCommand name ((builtins.removeAttrs a [ "packages" "name" ]) // {
        nativeBuildInputs = packages ++ (a.nativeBuildInputs or [ ]);
      }) ''
        echo "This derivation is not meant to be built, unless you want to capture the dependency closure." > $out
      '';
    ruff = hostTools "ruff" [ "ruff" ];
    shellcheck = hostTools "shellcheck" [ "shellcheck" ];

    # nixpkgs' requireFile: a fixed-output derivation that only succeeds when the file was added to
    # the store by hand (nix-store --add-fixed); otherwise it prints how to add it.
    requireFile = { name, sha256 ? null, hash ? null, message ? null, url ? null, hashMode ? "flat" }:
      derivation {
        inherit name system;
        builder = "/bin/sh";
        args = [ "-c" "printf '\\n***\\n%s\\n***\\n\\n' \"$message\" >&2; exit 1" ];
        message = if message != null then message else ''
          Unfortunately, we cannot download file ${name} automatically.
          Please go to ${toString url} to download it yourself, and add it to the Nix store
          using either
            nix-store --add-fixed sha256 ${name}
          or
            nix-prefetch-url --type sha256 file:///path/to/${name}'';
        outputHashMode = hashMode;
        outputHashAlgo = "sha256";
        outputHash = if hash != null then hash else sha256;
      };

    # nixpkgs' qemu_kvm: QEMU built for the host's own architecture only, as vmTools uses it.
    qemu_kvm = hostRunCommand "standin-qemu-kvm" { } ''
      mkdir -p $out/bin
      ln -s /usr/bin/qemu-img $out/bin/qemu-img
      ln -s qemu-system-x86_64 $out/bin/qemu-kvm
      ln -s /usr/bin/qemu-system-x86_64 $out/bin/qemu-system-x86_64
    '';

    vde2 = hostTools "vde2" [ "vde_switch" ];
    samba = selfContained "samba" [ "smbd" ];
    openssh = selfContained "openssh" [ "ssh" "ssh-keygen" ];
    # nixpkgs' current name only (pkgs/by-name/sq/squashfs-tools), not the older squashfsTools
    # nixpkgs still has beside it: a render that asked for the old name alone would fail here.
    squashfs-tools = hostTools "squashfs-tools" [ "mksquashfs" "unsquashfs" ];
    # nixpkgs' closureInfo: $out/store-paths lists the closure of rootPaths, one per line, sorted.
    # Read from exportReferencesGraph's files (path, deriver, count, that many references).
    closureInfo = { rootPaths }: hostRunCommand "closure-info" {
      exportReferencesGraph = builtins.concatLists
        (builtins.genList (i: [ "graph-${toString i}" (builtins.elemAt rootPaths i) ])
          (builtins.length rootPaths));
    } ''
      mkdir -p $out
      awk 'state == 0 { print; state = 1; next }
           state == 1 { state = 2; next }
           state == 2 { left = $1; state = left > 0 ? 3 : 0; next }
           state == 3 { if (--left == 0) state = 0 }' graph-* | sort -u > $out/store-paths
    '';
    socat = hostTools "socat" [ "socat" ];
    zstd = hostTools "zstd" [ "zstd" ];
    gzip = hostTools "gzip" [ "gzip" "gunzip" ];
    cpio = hostTools "cpio" [ "cpio" ];
    dosfstools = hostTools "dosfstools" [ "mkfs.fat" "mkfs.vfat" ];
    mtools = hostTools "mtools" [ "mcopy" "mmd" "mdir" ];
    xorriso = hostTools "xorriso" [ "xorriso" ];
    wimlib = hostTools "wimlib" [ "wimlib-imagex" ];  # Debian's wimtools
    # nixpkgs' OVMF.fd: FV/OVMF_CODE.fd and FV/OVMF_VARS.fd (Debian's `ovmf` package).
    OVMF.fd = hostRunCommand "standin-OVMF-fd" { } ''
      mkdir -p $out/FV
      for f in CODE VARS; do
        for src in /usr/share/OVMF/OVMF_''${f}_4M.fd /usr/share/OVMF/OVMF_''${f}.fd; do
          if [ -e "$src" ]; then cp "$src" "$out/FV/OVMF_$f.fd"; continue 2; fi
        done
        echo "stand-in OVMF: /usr/share/OVMF/OVMF_$f*.fd not found (apt-get install ovmf)" >&2
        exit 1
      done
    '';
    # nixpkgs' fetchurl, for file:// and pinned URLs (the builtin fetcher, no curl needed).
    fetchurl = { url, sha256 ? "", sha512 ? "", hash ? "", name ? baseNameOf url, ... }:
      import <nix/fetchurl.nix> { inherit url name sha256 sha512 hash; };
    coreutils = hostTools "coreutils" coreutilsProgs;
    bash = strictBash;
    # nixpkgs' python3.withPackages: the packages are looked up by name (a missing one fails
    # evaluation, as in nixpkgs); the host python that has them stands in for the environment.
    python3 = hostPython3 // {
      withPackages = f: builtins.seq (builtins.deepSeq (f self.python3Packages) null)
        (hostRunCommand "standin-python3-env" { python = hostPython; } ''
          mkdir -p $out/bin
          ln -s "''${python:-/usr/bin/python3}" $out/bin/python3
        '');
    };

    # Static/self-contained builds for what runs outside the store (initrds, the guest's own disk).
    pkgsStatic = {
      busybox = hostRunCommand "standin-busybox-static" { } ''
        mkdir -p $out/bin
        cp /bin/busybox $out/bin/busybox
        for a in $(/bin/busybox --list); do
          [ "$a" = busybox ] || ln -s busybox "$out/bin/$a"
        done
        ln -s bin $out/sbin  # stdenv's move-sbin hook, as for dropbear
      '';
      # Debian's dropbear is dynamic: ship it with its libraries and loader at the FHS paths it
      # expects, so copying this tree onto a root filesystem gives a working dropbear. Laid out as
      # nixpkgs' build is: programs in bin, and sbin a symlink to bin (stdenv's move-sbin hook).
      dropbear = hostRunCommand "standin-dropbear-selfcontained" { } ''
        mkdir -p $out/bin $out/lib/x86_64-linux-gnu $out/lib64
        for p in /usr/sbin/dropbear /usr/bin/dropbearkey; do
          cp "$p" $out/bin/
          for l in ${hostLibsOf ''"$p"''}; do
            cp -L "$l" $out/lib/x86_64-linux-gnu/
          done
        done
        cp -L /lib64/ld-linux-x86-64.so.2 $out/lib64/
        ln -s bin $out/sbin
      '';
    };

    # nixpkgs' `linux`: bzImage in `out`; lib/modules/<modDirVersion> (compressed, with depmod's
    # indexes, as the kernel's install makes them) in the `modules` output, or in `out` as on nixos-24.05;
    # the uncompressed ELF `vmlinux` in `dev` (nixpkgs' kernel build: `cp vmlinux $dev/`).
    linux = hostRunCommand "standin-linux-${kernelVersion}" {
      outputs = [ "out" "dev" ] ++ (if splitKernelModules then [ "modules" ] else [ ]);
      passthru = { modDirVersion = kernelVersion; version = kernelVersion; };
    } ''
      if [ -z "${kernelRoot}" ]; then
        echo "stand-in linux: set WINGEN_STANDIN_KERNEL to the dir tests/e2e/setup.sh prints" >&2
        exit 1
      fi
      mkdir -p $out
      cp ${kernelRoot}/boot/vmlinuz-${kernelVersion} $out/bzImage
      mkdir -p $dev
      # The kernel built here (kernel.nix) keeps its vmlinux, as nixpkgs' build does. Debian ships
      # none: unpack the bzImage's payload as the kernel's scripts/extract-vmlinux does (each
      # compressor's magic, decompressed from there; the first ELF found wins).
      if [ -f ${kernelRoot}/boot/vmlinux-${kernelVersion} ]; then
        cp ${kernelRoot}/boot/vmlinux-${kernelVersion} $dev/vmlinux
      else
      unpack() {
        for at in $(LC_ALL=C grep -aboF "$(printf "$1")" $out/bzImage | cut -d: -f1); do
          tail -c +$((at + 1)) $out/bzImage | $2 > $dev/vmlinux 2> /dev/null || true
          [ "$(head -c 4 $dev/vmlinux)" = "$(printf '\177ELF')" ] && return 0
        done
        return 1
      }
      unpack '\3757zXZ' 'xz -dc' || unpack '(\265/\375' 'zstd -dc' || unpack '\037\213\010' 'gzip -dc' || {
        echo "stand-in linux: no xz, zstd or gzip payload holding an ELF kernel in the bzImage" >&2
        exit 1
      }
      fi
      mods=''${modules:-$out}
      mkdir -p $mods/lib/modules
      cp -r ${kernelRoot}/lib/modules/${kernelVersion} $mods/lib/modules/
      # The kernel built here comes as nixpkgs' does: stripped, unsigned, xz-compressed. Debian's
      # (kept for the tests about it) is made alike: unsigned, as nixpkgs' kernels ship them
      # (MODULE_SIG = no in common-config.nix; INSTALL_MOD_STRIP=1 strips them), which also drops
      # the appended signature whose check costs every insmod under TCG; and compressed, though
      # with zstd, not nixpkgs' xz (MODULE_COMPRESS_XZ): xz takes minutes on its ~4000 modules.
      chmod -R u+w $mods/lib/modules
      find $mods/lib/modules -name '*.ko' -exec strip --strip-debug {} +
      find $mods/lib/modules -name '*.ko' -exec zstd -q --rm {} +
      depmod -b $mods ${kernelVersion}
    '';

    # nixpkgs' makeModulesClosure (pkgs/build-support/kernel/modules-closure.{nix,sh}), same
    # contract: `kernel` is a tree with lib/modules/<version>; each root module is resolved by
    # modprobe (names, aliases such as crc32c, dependencies first); a name the kernel lacks fails
    # the build unless allowMissing; a kernel without lib/modules fails with nixpkgs' message.
    # $out holds lib/modules/<version> (with depmod's indexes) and insmod-list in load order.
    makeModulesClosure = { kernel, firmware, rootModules, allowMissing ? false, allowEmpty ? false
                         , extraFirmwarePaths ? [ ] }:
      hostRunCommand "${kernel.name}-shrunk" {
        inherit kernel firmware rootModules;
        allowMissing = if allowMissing then "1" else "";
        allowedReferences = [ "out" ];  # as nixpkgs': nothing of the kernel stays referenced
      } ''
        if [ ! -d "$kernel/lib/modules" ]; then
          if [ -z "$rootModules" ] || [ -n "$allowMissing" ]; then mkdir -p $out; exit 0; fi
          echo "Required modules: $rootModules"
          echo "Can not derive a closure of kernel modules because no modules were provided."
          exit 1
        fi
        version=$(cd $kernel/lib/modules && ls -d *)
        mkdir -p $out/lib/modules/$version
        for module in $rootModules; do
          if ! deps=$(modprobe --config no-config -d $kernel --set-version "$version" \
              --show-depends "$module"); then
            echo "root module $module: not found"
            [ -n "$allowMissing" ] && continue
            exit 1
          fi
          while read -r cmd path _; do
            case $cmd in
              builtin) ;;
              insmod)
                target=$out/lib/modules/''${path#$kernel/lib/modules/}
                [ -e "$target" ] && continue
                mkdir -p "$(dirname "$target")"
                cp "$path" "$target"
                echo "$target" >> $out/insmod-list ;;
              *) echo "unexpected modprobe output: $cmd $path"; exit 1 ;;
            esac
          done <<< "$deps"
        done
        cd "$firmware"  # nixpkgs copies the modules' firmware from there
        for f in modules.order modules.builtin; do cp $kernel/lib/modules/$version/$f $out/lib/modules/$version/; done
        depmod -b $out -a $version
        rm $out/lib/modules/$version/modules.order $out/lib/modules/$version/modules.builtin
      '';
  };
  # Overlays as in nixpkgs: each one sees the final set and the set before it.
  withOverlays = builtins.foldl'
    (before: overlay: final: let prev = before final; in prev // overlay final prev)
    base
    overlays;
  fix = f: let x = f x; in x;
in
fix withOverlays
