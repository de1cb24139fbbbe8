# nixpkgs overlay: `wingen` (the generator) and `wingenLib` (render a config, run in its VM).
final: prev: {
  wingen = final.callPackage ./wingen.nix { };
  wingenLib = import ./lib.nix { pkgs = final; };
}
