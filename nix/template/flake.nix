{
  description = "A Windows build VM from wingen.toml, and a build inside it";

  # Where you get wingen from (a github:, git+https: or path: flake reference).
  inputs.wingen.url = "github:OWNER/wingen";
  inputs.nixpkgs.follows = "wingen/nixpkgs";

  outputs = { self, nixpkgs, wingen }:
    let
      system = "x86_64-linux";
      pkgs = import nixpkgs { inherit system; overlays = [ wingen.overlays.default ]; };
      # The render committed beside the config (`wingen render -c wingen.toml -o wingen.nix`):
      # evaluating it imports nothing built, so `nix flake show` and Hydra take it.
      vm = pkgs.callPackage ./wingen.nix { };
    in
    {
      packages.${system} = {
        inherit (vm) windowsBase;
        default = vm.windowsRunCommand "hello-windows" { greeting = "hello from"; } ''
          mkdir -p $out
          echo "$greeting $(uname -s)" > $out/hello
        '';
      };
      # nix run .#wingen -- render -c wingen.toml -o wingen.nix   (and check, shell, ...)
      apps.${system}.wingen = wingen.apps.${system}.default;
      # Fails when wingen.nix is not what wingen.toml renders to now.
      checks.${system}.rendered = pkgs.wingenLib.checkRendered ./. [ "wingen" ];
    };
}
