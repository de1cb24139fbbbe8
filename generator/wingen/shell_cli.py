"""`wingen shell`: the base the user's own Nix file builds, revived, with a terminal in its guest.

The record of a run stage (the same Nix file, the same nixpkgs, the config's render) says what to
revive; its input derivations (the base among them) are built by `nix-store -r` when missing, as
the build itself would; the runtime (wingen.runtime.shell) does the rest outside any sandbox.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from .errors import UserError
from .loader import config_dir, load_config
from .process import run

# A run stage of any builder: only its record (the `wingen` attribute) and inputs are used.
PROBE = '(derivation { name = "wingen-shell"; system = "x86_64-linux"; builder = "/bin/sh"; })'
STAGES = """let
  f = import {file};
  s = if builtins.isFunction f then (import <nixpkgs> {{ }}).callPackage {file} {{ }} else f;
in s.runInVM {probe}"""


def run_drv(file: Path) -> str:
    """The .drv of a run stage in the stages `file` gives (a set, or callPackage-style)."""
    expr = STAGES.format(file=json.dumps(str(file.resolve())), probe=PROBE)
    return run(["nix-instantiate", "-E", expr]).stdout.strip().splitlines()[-1]


def record_of(drv: str) -> str:
    """Its record, and every input built (the base, QEMU, the kernels, the scripts)."""
    inputs = [
        p
        for p in run(["nix-store", "-q", "--references", drv]).stdout.split()
        if p.endswith(".drv")
    ]
    run(["nix-store", "-r", "--no-gc-warning", *inputs], stream_stderr=True)
    return run(["nix-store", "-q", "--binding", "wingen", drv]).stdout.strip()


def register(app: typer.Typer) -> None:
    @app.command()
    def shell(
        config: Annotated[Path, typer.Option("-c", "--config", help="The config file.")] = Path(
            "wingen.toml"
        ),
        file: Annotated[
            Path | None,
            typer.Option(
                "-f",
                "--file",
                help="The Nix file you build the stages from: its value (a set) or "
                "callPackage-style (called with <nixpkgs>); default: the config's render "
                "beside it (wingen.toml -> wingen.nix)",
            ),
        ] = None,
        xchg: Annotated[
            Path | None,
            typer.Option(help="The exchange dir the guest sees (default: a fresh, removed one)"),
        ] = None,
    ) -> None:
        """A shell in a revived copy of the config's base (sh on the Linux guest, Cygwin bash on
        Windows), with the store and an exchange dir mounted as in a build; all is torn down
        when the shell exits."""
        from .runtime.derivation import parse_record
        from .runtime.shell import run_shell

        cfg = load_config(config)
        nix_file = file or config_dir(config) / (config.stem + ".nix")
        if not nix_file.is_file():
            raise UserError(
                "--file",
                f"{nix_file} does not exist",
                f"render it (wingen render -c {config} -o {nix_file}) or name yours with --file",
            )
        rec = parse_record(record_of(run_drv(nix_file)))
        work = Path(tempfile.mkdtemp(prefix="wingen-shell-"))
        try:
            code = run_shell(rec, work, cfg.guest, xchg=xchg.resolve() if xchg else None)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            if xchg is not None:
                shutil.rmtree(xchg / "wingen", ignore_errors=True)
        sys.stdout.flush()
        raise typer.Exit(code)
