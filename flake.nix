{
  description = "wingen: one typed config in, Nix out - build software inside a Windows VM";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.11";

  outputs = { self, nixpkgs }:
    let
      system = "x86_64-linux";
      pkgs = import nixpkgs { inherit system; overlays = [ self.overlays.default ]; };
      # The bundled examples, rendered and committed beside their configs (examples/*.nix), so
      # that packages and checks evaluate without import-from-derivation, as Hydra and
      # `nix flake show` require. checks.examples-rendered fails when a render is stale.
      example = file: pkgs.callPackage file { };
    in
    {
      overlays.default = import ./nix/overlay.nix;

      packages.${system} = {
        wingen = pkgs.wingen;
        default = pkgs.wingen;
        # windowsBase needs the ISO named in examples/wingen.toml in the store
        # (nix-store --add-fixed sha256 FILE); without it the build stops and says so.
        windowsBase = (example ./examples/wingen.nix).windowsBase;
        linuxBase = (example ./examples/linux.nix).linuxBase;
      };

      # lib.runInWindowsVM ./wingen.toml drv: drv's builder run inside that config's Windows VM;
      # lib.windowsRunCommand ./wingen.toml name env script: the script run in its Cygwin bash.
      # These render the config while evaluating (import from derivation): convenient for your own
      # configs, refused where IFD is off (Hydra, nixpkgs); commit a render there instead.
      lib = {
        inherit (pkgs.wingenLib) render fromConfig runInWindowsVM runInLinuxVM windowsRunCommand;
      };

      checks.${system} = {
        wingen = pkgs.wingen;
        examples-rendered = pkgs.wingenLib.checkRendered ./examples [ "wingen" "linux" ];
      };
    };
}
