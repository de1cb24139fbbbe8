# FOR TESTS ONLY: the nixpkgs names windows-media.nix uses, made from this machine's Debian tools
# (single-user Nix, sandbox off, no nixpkgs). The full stand-in set lives in nix/standin (e2e).
{ system ? "x86_64-linux" }:
let
  hostPath = "/usr/bin:/usr/sbin:/bin:/sbin";
  runCommand = name: env: buildCommand:
    derivation ({
      inherit name system buildCommand;
      builder = "/bin/bash";
      args = [ "-e" "-c" "eval \"$buildCommand\"" ];
      PATH = hostPath;
      passAsFile = [ ];
    } // env);
  hostTools = name: progs: runCommand "standin-${name}" { inherit progs; } ''
    mkdir -p $out/bin
    for p in $progs; do
      for d in /usr/bin /usr/sbin; do
        if [ -e "$d/$p" ]; then ln -s "$d/$p" "$out/bin/$p"; continue 2; fi
      done
      echo "stand-in ${name}: host program $p not found" >&2; exit 1
    done
  '';
in
{
  inherit runCommand;
  writeText = name: text: runCommand name { inherit text; passAsFile = [ "text" ]; } ''
    cp "$textPath" "$out"
  '';
  # nixpkgs' requireFile: fixed-output, succeeds only when the file was added by hand.
  requireFile = { name, sha256, message ? "add ${name} to the store", hashMode ? "flat" }:
    derivation {
      inherit name system message;
      builder = "/bin/sh";
      args = [ "-c" "printf '%s\\n' \"$message\" >&2; exit 1" ];
      outputHashMode = hashMode;
      outputHashAlgo = "sha256";
      outputHash = sha256;
    };
  # Nix's own builtin:fetchurl (handles file:// URLs, sha256 and sha512).
  fetchurl = args: import <nix/fetchurl.nix> args;
  dosfstools = hostTools "dosfstools" [ "mkfs.fat" ];
  mtools = hostTools "mtools" [ "mcopy" "mdir" "mtype" ];
  xorriso = hostTools "xorriso" [ "xorriso" ];
}
