# FOR TESTS ONLY. A stand-in for the few nixpkgs names wingen's rendered Nix uses, made from this
# machine's Debian tools, so the rendered expression builds with Debian's nix-bin (single-user,
# `sandbox = false`, no network, no nixpkgs). Nothing here is a real package: most entries are
# symlinks into /usr. Signatures follow nixpkgs so the rendered Nix is the same for both.
#
# The controller VM sees only what is shared into it. Its tools here live in the host's /usr, so the
# stand-in qemu adds a read-only 9p share of /usr (tag `usr`) to the controller, which the rendered
# preinit mounts like any extra tag. Tools that run inside the guest's own disk (busybox, dropbear) are
# self-contained copies (static busybox; dropbear with its libraries and loader in FHS places).
#
# Impure on purpose (pass --impure to flakes): the kernel comes from WINGEN_STANDIN_KERNEL (the dir
# tests/e2e/setup.sh prints) and wingen's own Python from WINGEN_STANDIN_PYTHON (a python3 that has
# wingen's dependencies installed). Like nixpkgs it takes `overlays`.
{ kernelRoot ? builtins.getEnv "WINGEN_STANDIN_KERNEL"
, hostPython ? builtins.getEnv "WINGEN_STANDIN_PYTHON"
, system ? "x86_64-linux"
, overlays ? [ ]
, config ? { }
, ...
}:
let
  hostPath = "/usr/bin:/usr/sbin:/bin:/sbin";

  # builtins-only runCommand: the script runs under bash with the host's tools on PATH.
  runCommand = name: env: buildCommand:
    derivation ({
      inherit name system buildCommand;
      builder = "/bin/bash";
      args = [ "-e" "-c" "eval \"$buildCommand\"" ];
      PATH = hostPath;
      passAsFile = [ ];
    } // builtins.removeAttrs env [ "passthru" "meta" ]) // (env.passthru or { });

  writeTextFile = { name, text, executable ? false, destination ? "" }:
    runCommand name { inherit text executable destination; passAsFile = [ "text" ]; } ''
      target="$out$destination"
      mkdir -p "$(dirname "$target")"
      cp "$textPath" "$target"
      if [ "$executable" = 1 ]; then chmod +x "$target"; fi
    '';

  # A package whose bin/ links to host programs (found in /usr/bin or /usr/sbin).
  hostTools = name: progs: runCommand "standin-${name}" { inherit progs; } ''
    mkdir -p $out/bin
    for p in $progs; do
      for d in /usr/bin /usr/sbin; do
        if [ -e "$d/$p" ]; then ln -s "$d/$p" "$out/bin/$p"; continue 2; fi
      done
      echo "stand-in ${name}: host program $p not found (apt-get install it)" >&2; exit 1
    done
  '';

  # Without a kernel dir the set still evaluates (for eval-only tests); building `linux` fails.
  kernelVersion =
    if kernelRoot == "" then "0.0.0-no-kernel"
    else builtins.head (builtins.attrNames (builtins.readDir "${kernelRoot}/lib/modules"));

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
      shell = "/bin/bash";
      hostPlatform = { inherit system; isx86_64 = true; };
      mkDerivation = { name, buildCommand, ... }@a:
        runCommand name (builtins.removeAttrs a [ "name" "buildCommand" ]) buildCommand;
    };
    runtimeShell = "/bin/bash";

    writeText = name: text: writeTextFile { inherit name text; };
    writeScript = name: text: writeTextFile { inherit name text; executable = true; };
    writeShellScript = name: text:
      writeTextFile { inherit name; executable = true; text = "#!/bin/bash\n" + text; };

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

    qemu = runCommand "standin-qemu" { } ''
      mkdir -p $out/bin
      ln -s /usr/bin/qemu-img $out/bin/qemu-img
      # The controller (the VM given the host store as 9p tag `store`) also gets the host's /usr,
      # where this stand-in set's smbd and ssh live with their libraries.
      cat > $out/bin/qemu-system-x86_64 <<'EOF'
      #!/bin/sh
      for a in "$@"; do
        case $a in
          *mount_tag=store*)
            exec /usr/bin/qemu-system-x86_64 "$@" \
              -virtfs local,path=/usr,security_model=none,readonly=on,mount_tag=usr ;;
        esac
      done
      exec /usr/bin/qemu-system-x86_64 "$@"
      EOF
      chmod +x $out/bin/qemu-system-x86_64
    '';

    vde2 = hostTools "vde2" [ "vde_switch" ];
    samba = hostTools "samba" [ "smbd" "nmbd" ];
    openssh = hostTools "openssh" [ "ssh" "ssh-keygen" ];
    socat = hostTools "socat" [ "socat" ];
    zstd = hostTools "zstd" [ "zstd" ];
    gzip = hostTools "gzip" [ "gzip" "gunzip" ];
    cpio = hostTools "cpio" [ "cpio" ];
    dosfstools = hostTools "dosfstools" [ "mkfs.fat" "mkfs.vfat" ];
    mtools = hostTools "mtools" [ "mcopy" "mmd" "mdir" ];
    xorriso = hostTools "xorriso" [ "xorriso" ];
    wimlib = hostTools "wimlib" [ "wimlib-imagex" ];  # Debian's wimtools
    # nixpkgs' OVMF.fd: FV/OVMF_CODE.fd and FV/OVMF_VARS.fd (Debian's `ovmf` package).
    OVMF.fd = runCommand "standin-OVMF-fd" { } ''
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
    coreutils = runCommand "standin-coreutils" { } ''
      mkdir -p $out/bin
      for p in $(dpkg -L coreutils | grep '^/usr/bin/\|^/bin/'); do
        [ -f "$p" ] && ln -sf "$p" "$out/bin/$(basename "$p")"
      done
    '';
    bash = hostTools "bash" [ "bash" ];
    python3 = runCommand "standin-python3" { } ''
      mkdir -p $out/bin
      ln -s /usr/bin/python3 $out/bin/python3
    '';

    # Static/self-contained builds for what runs outside the store (initrds, the guest's own disk).
    pkgsStatic = {
      busybox = runCommand "standin-busybox-static" { } ''
        mkdir -p $out/bin
        cp /bin/busybox $out/bin/busybox
        for a in $(/bin/busybox --list); do
          [ "$a" = busybox ] || ln -s busybox "$out/bin/$a"
        done
      '';
      # Debian's dropbear is dynamic: ship it with its libraries and loader at the FHS paths it
      # expects, so copying this tree onto a root filesystem gives a working dropbear.
      dropbear = runCommand "standin-dropbear-selfcontained" { } ''
        mkdir -p $out/bin $out/lib/x86_64-linux-gnu $out/lib64
        for p in /usr/sbin/dropbear /usr/bin/dropbearkey; do
          cp "$p" $out/bin/
          for l in $(ldd "$p" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p'); do
            cp -L "$l" $out/lib/x86_64-linux-gnu/
          done
        done
        cp -L /lib64/ld-linux-x86-64.so.2 $out/lib64/
      '';
    };

    # nixpkgs' `linux`: bzImage plus lib/modules/<modDirVersion> with modules.dep (Debian's
    # postinst would run depmod; busybox's depmod does it here).
    linux = runCommand "standin-linux-${kernelVersion}" {
      passthru = { modDirVersion = kernelVersion; version = kernelVersion; };
    } ''
      if [ -z "${kernelRoot}" ]; then
        echo "stand-in linux: set WINGEN_STANDIN_KERNEL to the dir tests/e2e/setup.sh prints" >&2
        exit 1
      fi
      mkdir -p $out/lib/modules
      cp ${kernelRoot}/boot/vmlinuz-${kernelVersion} $out/bzImage
      cp -r ${kernelRoot}/lib/modules/${kernelVersion} $out/lib/modules/
      /bin/busybox depmod -b $out ${kernelVersion}
    '';

    # nixpkgs' makeModulesClosure: the modules (and their dependencies) under
    # $out/lib/modules/<version>, plus $out/insmod-list in load order.
    makeModulesClosure = { kernel, rootModules, firmware ? null, allowMissing ? false }:
      runCommand "standin-modules-closure" { inherit rootModules allowMissing; } ''
        version=${kernel.modDirVersion}
        src=${kernel}/lib/modules/$version
        dep=$src/modules.dep
        : > order
        visit() {  # $1: module path relative to the version dir; dependencies first
          grep -qxF "$1" order && return 0
          for d in $(sed -n "s|^$1: *||p" $dep); do visit "$d"; done
          echo "$1" >> order
        }
        for m in $rootModules; do
          rel=$(sed -n "s|^\(\(.*/\)\?$m\.ko[^:]*\):.*|\1|p" $dep | head -n 1)
          if [ -z "$rel" ]; then
            rel=$(sed -n "s|^\(\(.*/\)\?$(echo $m | tr _ -)\.ko[^:]*\):.*|\1|p" $dep | head -n 1)
          fi
          if [ -z "$rel" ]; then
            if grep -q "/$m.ko" $src/modules.builtin; then continue; fi
            [ "$allowMissing" = 1 ] && continue
            echo "module $m not found" >&2; exit 1
          fi
          visit "$rel"
        done
        mkdir -p $out/lib/modules/$version
        while read -r rel; do
          mkdir -p "$out/lib/modules/$version/$(dirname "$rel")"
          cp "$src/$rel" "$out/lib/modules/$version/$rel"
          echo "$out/lib/modules/$version/$rel" >> $out/insmod-list
        done < order
        cp $src/modules.builtin $out/lib/modules/$version/
        /bin/busybox depmod -b $out $version
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
