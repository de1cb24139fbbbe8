{
  # FOR TESTS ONLY: the stand-in package set as a flake, to pass as
  #   --override-input nixpkgs path:./nix/standin --impure
  description = "wingen test stand-in for nixpkgs (Debian host tools; not a real package set)";
  outputs = { self }: {
    legacyPackages.x86_64-linux = import ./. { };
  };
}
