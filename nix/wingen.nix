# wingen itself, packaged for nixpkgs (callPackage ./wingen.nix { }).
{ lib, python3Packages }:

python3Packages.buildPythonApplication {
  pname = "wingen";
  version = "0.1.0";
  pyproject = true;
  src = lib.cleanSource ../.;
  build-system = [ python3Packages.hatchling ];
  dependencies = with python3Packages; [ jinja2 pydantic typer tomlkit tzlocal ];
  pythonImportsCheck = [ "wingen" ];
  meta = {
    description = "One typed config in, Nix out: build software inside a Windows VM, reproducibly";
    license = lib.licenses.mit;
    mainProgram = "wingen";
  };
}
