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

      # nix run github:…/wingen -- render -c wingen.toml
      apps.${system}.default = {
        type = "app";
        program = "${pkgs.wingen}/bin/wingen";
      };

      # nix develop: what `bash tests/run.sh` runs (ruff, mypy, pytest) and the tools the VM
      # tests start.
      devShells.${system}.default = pkgs.mkShell {
        packages = [
          (pkgs.python3.withPackages (ps: with ps; [
            jinja2 pydantic typer tomlkit tzlocal pytest pytest-timeout hypothesis mypy pycdlib
          ]))
          pkgs.ruff pkgs.shellcheck pkgs.qemu_kvm pkgs.vde2 pkgs.socat pkgs.zstd pkgs.samba
          pkgs.openssh pkgs.xorriso pkgs.mtools pkgs.dosfstools pkgs.wimlib pkgs.cpio
          pkgs.squashfs-tools
        ];
      };

      # nix flake init -t github:…/wingen: a config, its committed render, a flake using them.
      templates.default = {
        path = ./nix/template;
        description = "A Windows build VM from wingen.toml (rendered, committed) and a build in it";
      };

      checks.${system} = {
        wingen = pkgs.wingen;
        examples-rendered = pkgs.wingenLib.checkRendered ./examples [ "wingen" "linux" ];
        template-rendered = pkgs.wingenLib.checkRendered ./nix/template [ "wingen" ];
      };
    };
}
