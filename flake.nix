{
  description = "wingen: one typed config in, Nix out - build software inside a Windows VM";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";

  outputs = { self, nixpkgs }:
    let
      system = "x86_64-linux";
      pkgs = import nixpkgs { inherit system; overlays = [ self.overlays.default ]; };
      wl = pkgs.wingenLib;
    in
    {
      overlays.default = import ./nix/overlay.nix;

      packages.${system} = {
        wingen = pkgs.wingen;
        default = pkgs.wingen;
        # The bundled examples. windowsBase needs the ISO named in examples/wingen.toml in the
        # store (nix-store --add-fixed sha256 FILE); without it the build stops and says so.
        windowsBase = wl.windowsBase ./examples/wingen.toml;
        linuxBase = wl.linuxBase ./examples/linux.toml;
      };

      # lib.runInWindowsVM ./wingen.toml drv: drv's builder run inside that config's Windows VM;
      # lib.windowsRunCommand ./wingen.toml name env script: the script run in its Cygwin bash.
      lib = {
        inherit (wl) render fromConfig runInWindowsVM runInLinuxVM windowsRunCommand;
      };

      checks.${system} = {
        wingen = pkgs.wingen;
        render-windows = wl.render ./examples/wingen.toml;
        render-linux = wl.render ./examples/linux.toml;
      };
    };
}
