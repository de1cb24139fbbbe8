# Glue between a wingen config file and the Nix it renders.
#   render config             -> a store dir holding default.nix and its scripts
#   fromConfig config         -> the rendered expression, called with pkgs (installed, base, runInVM…)
#   runInWindowsVM config drv -> drv built inside the revived Windows VM of that config
#   runInLinuxVM config drv   -> the same for a Linux-guest config
#   windowsRunCommand config name env script -> runCommand's shape, script run in Cygwin's bash
#   checkRendered dir names   -> a check that dir/NAME.nix is what dir/NAME.toml renders to now
# fromConfig, the runIn* functions and windowsRunCommand import the render while evaluating (import
# from derivation): where that is refused (allow-import-from-derivation = false: Hydra, nixpkgs,
# `nix flake show`), commit `wingen render -c NAME.toml -o NAME.nix` and callPackage that instead.
{ pkgs }:

rec {
  # The config's directory goes along (it may hold the Cygwin lock file); the config itself is
  # copied by its text, since the path to it may be a symlink.
  render = config:
    let
      dir = builtins.path { path = dirOf config; name = "wingen-config-dir"; };
      file = baseNameOf config;
    in
    pkgs.runCommand "wingen-rendered" { } ''
      cp -r ${dir} cfg
      chmod -R u+w cfg
      rm -f cfg/${file}
      cp ${pkgs.writeText "wingen.toml" (builtins.readFile config)} cfg/${file}
      mkdir -p $out
      ${pkgs.wingen}/bin/wingen render -c cfg/${file} -o $out
    '';

  fromConfig = config: pkgs.callPackage "${render config}/default.nix" { };

  windowsBase = config: (fromConfig config).windowsBase;
  linuxBase = config: (fromConfig config).linuxBase;
  runInWindowsVM = config: (fromConfig config).runInWindowsVM;
  runInLinuxVM = config: (fromConfig config).runInLinuxVM;
  windowsRunCommand = config: (fromConfig config).windowsRunCommand;

  # Fails, with the diff, when a committed render differs from a fresh one. The configs are
  # copied by their text, as in render (the examples are symlinks).
  checkRendered = dir: names:
    pkgs.runCommand "wingen-renders-current" { } (''
      cp -r ${builtins.path { path = dir; name = "wingen-examples"; }} cfg
      chmod -R u+w cfg
    '' + builtins.concatStringsSep "" (map (n: ''
      rm -f cfg/${n}.toml
      cp ${pkgs.writeText "${n}.toml" (builtins.readFile (dir + "/${n}.toml"))} cfg/${n}.toml
      ${pkgs.wingen}/bin/wingen render -c cfg/${n}.toml -o fresh-${n}.nix
      diff -u cfg/${n}.nix fresh-${n}.nix || {
        echo "${n}.nix is stale: run wingen render -c ${n}.toml -o ${n}.nix beside it" >&2
        exit 1
      }
    '') names) + ''
      touch $out
    '');
}
