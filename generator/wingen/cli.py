"""The command line: thin; all work happens in the modules it calls."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from . import __version__, media_cli, shell_cli
from .config import Config
from .errors import UserError, WingenError
from .files import write_atomic, write_tree
from .loader import config_dir, load_config
from .media import cygwin_missing
from .render import render, templates_dir
from .snapshot_cost import snapshot_cost

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Typed config in, Nix out: build software inside a Windows VM.",
    pretty_exceptions_enable=False,
)
_state = {"verbose": False}

ConfigOpt = Annotated[Path, typer.Option("-c", "--config", help="The config file.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wingen {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _state["verbose"] = verbose


def warnings(cfg: Config, config_dir: Path) -> list[str]:
    out = []
    win = cfg.windows
    if win is not None and win.product_key not in ("none", "generic"):
        out.append(
            "windows.product_key: a custom key ends up world-readable in the Nix store "
            '(use "generic" to install and activate later)'
        )
    missing = cygwin_missing(cfg, config_dir)
    if missing is not None:
        out.append(f"{missing}; until then the Windows stages cannot build")
    return out


def _load(path: Path) -> Config:
    cfg = load_config(path)
    for line in warnings(cfg, config_dir(path)):
        typer.echo(f"warning: {line}", err=True)
    return cfg


@app.command()
def init(
    config: ConfigOpt = Path("wingen.toml"),
    guest: Annotated[str, typer.Option(help="windows or linux")] = "windows",
) -> None:
    """Write a commented example config (never overwrites)."""
    if guest not in ("windows", "linux"):
        raise UserError("--guest", f"{guest!r} is not a guest kind", "use windows or linux")
    if config.exists():
        raise UserError(str(config), "already exists", "remove it or pass -c NEW-FILE")
    example = (templates_dir() / "init" / f"{guest}.toml").read_text(encoding="utf-8")
    write_atomic(config, example)
    typer.echo(f"wrote {config}", err=True)


@app.command()
def check(config: ConfigOpt = Path("wingen.toml")) -> None:
    """Validate the config and say what it describes."""
    cfg = _load(config)
    render(cfg, config_dir(config))  # whatever `render` would refuse, `check` refuses too
    what = (
        f"{cfg.windows.edition or f'image #{cfg.windows.image_index}'} ({cfg.windows.firmware})"
        if cfg.windows
        else "Linux test guest"
    )
    typer.echo(f"{config}: ok: {cfg.name}: {what}, {cfg.vm.memory_mib} MiB, {cfg.vm.cpus} CPUs")
    typer.echo(f"snapshot: {snapshot_cost(cfg)}")


@app.command("render")
def render_cmd(
    config: ConfigOpt = Path("wingen.toml"),
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            help="A .nix file, or a directory (existing, or ending in /)",
        ),
    ] = None,
) -> None:
    """Render the Nix expression (to stdout unless -o)."""
    cfg = _load(config)
    base = config_dir(config)
    if output is None:
        sys.stdout.write(render(cfg, base).expression)
        return
    target = Path(output)
    if target.is_dir() or output.endswith("/"):
        result = render(cfg, base, separate_files=True)
        write_tree(target, {"default.nix": result.expression, **result.files})
        typer.echo(f"wrote {target / 'default.nix'} and {len(result.files)} files", err=True)
    else:
        write_atomic(target, render(cfg, base).expression)
        typer.echo(f"wrote {target}", err=True)


@app.command()
def schema() -> None:
    """Print the config's JSON Schema (for editors)."""
    import json

    typer.echo(json.dumps(Config.model_json_schema(), indent=2))


media_cli.register(app)
shell_cli.register(app)


def main() -> None:
    try:
        app(standalone_mode=False)
    except WingenError as exc:
        _fail(exc, f"error: {exc}", 2 if isinstance(exc, UserError) else 1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as exc:
        # Usage errors from the (vendored) click inside typer: it prints them, we exit 2.
        show = getattr(exc, "show", None)
        if show is not None and hasattr(exc, "exit_code"):
            show()
            sys.exit(2)
        # Anything else is a wingen bug: one line that says what failed, the traceback with -v.
        _fail(
            exc,
            f"error: internal error: {type(exc).__name__}: {exc} "
            "(a wingen bug: run again with -v and report the traceback)",
            1,
        )


def _fail(exc: BaseException, line: str, code: int) -> NoReturn:
    if _state["verbose"]:
        traceback.print_exception(exc)
    typer.echo(" ".join(line.split()), err=True)  # one line, whatever the message holds
    sys.exit(code)


if __name__ == "__main__":
    main()
