# Glue between a wingen config file and the Nix it renders (import from derivation):
#   render config             -> a store dir holding default.nix and its scripts
#   fromConfig config         -> the rendered expression, called with pkgs (installed, base, runInVM…)
#   runInWindowsVM config drv -> drv built inside the revived Windows VM of that config
#   runInLinuxVM config drv   -> the same for a Linux-guest config
#   windowsRunCommand config name env script -> runCommand's shape, script run in Cygwin's bash
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
}
