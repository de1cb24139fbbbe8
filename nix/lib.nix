# Glue between a wingen config file and the Nix it renders (import from derivation):
#   render config             -> a store dir holding default.nix and its scripts
#   fromConfig config         -> the rendered expression, called with pkgs (installed, base, runInVM…)
#   runInWindowsVM config drv -> drv built inside the revived Windows VM of that config
#   runInLinuxVM config drv   -> the same for a Linux-guest config
{ pkgs }:

rec {
  # The config's text goes into the store on its own (a path to it may be a symlink).
  render = config: pkgs.runCommand "wingen-rendered" { } ''
    mkdir -p $out
    ${pkgs.wingen}/bin/wingen render -c ${pkgs.writeText "wingen.toml" (builtins.readFile config)} -o $out
  '';

  fromConfig = config: pkgs.callPackage "${render config}/default.nix" { };

  windowsBase = config: (fromConfig config).windowsBase;
  linuxBase = config: (fromConfig config).linuxBase;
  runInWindowsVM = config: (fromConfig config).runInWindowsVM;
  runInLinuxVM = config: (fromConfig config).runInLinuxVM;
}
