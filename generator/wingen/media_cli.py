"""Media commands (`wingen cygwin lock`, `wingen prefetch`), kept apart from cli.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from .config import MEDIA_FIELDS as FIELDS
from .config import Config, Cygwin, MirrorUrl
from .errors import UserError
from .files import write_atomic
from .loader import config_dir, load_config, parse_value

# The commands import their modules (tomlkit, the setup.ini parser) only when they run:
# `wingen render` should not pay for them.

# The guest needs these whatever the config asks for: sshd and its service runner for the
# bootstrap, tar for packing a build's outputs (guest-build.sh; it is in category Base too).
REQUIRED_PACKAGES = ("openssh", "cygrunsrv", "tar")
ConfigOpt = Annotated[Path, typer.Option("-c", "--config", help="The config file.")]


def read_setup_ini(path: Path) -> str:
    """setup.ini as mirrors serve it: plain, or compressed as setup.xz / setup.bz2."""
    import bz2
    import lzma

    try:
        data = path.read_bytes()
        if data.startswith(b"\xfd7zXZ"):
            data = lzma.decompress(data)
        elif data.startswith(b"BZh"):
            data = bz2.decompress(data)
        elif data.startswith(b"\x28\xb5\x2f\xfd"):
            raise UserError(
                str(path), "is zstd-compressed (setup.zst)", "use setup.ini, setup.xz or setup.bz2"
            )
        return data.decode("utf-8")
    except FileNotFoundError:
        raise UserError(
            str(path), "no such file", "download <mirror>/x86_64/setup.ini and pass its path"
        ) from None
    except (OSError, UnicodeDecodeError, lzma.LZMAError, ValueError) as exc:
        raise UserError(str(path), f"cannot be read: {exc}", "pass the setup.ini") from None


def lock(
    setup_ini: Annotated[
        Path, typer.Option("--setup-ini", help="setup.ini from a Cygwin mirror (<arch>/setup.ini).")
    ],
    packages: Annotated[
        list[str] | None,
        typer.Argument(help="Packages to lock besides the config's cygwin.packages."),
    ] = None,
    mirror: Annotated[
        str | None, typer.Option("--mirror", help="Mirror URL (default: the config's).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Lock file (default: cygwin.lock_file, which must lie in the config's directory).",
        ),
    ] = None,
    config: ConfigOpt = Path("wingen.toml"),
) -> None:
    """Resolve packages (+ category Base, transitively) in setup.ini and write the lock file."""
    cfg: Config | None = None
    if output is None or config.exists():
        cfg = load_config(config)
    target = output if output is not None else _lock_path(config, cfg)
    if mirror is not None:
        mirror_url = parse_value(MirrorUrl, mirror, "--mirror")
    else:
        mirror_url = cfg.cygwin.mirror if cfg is not None else Cygwin().mirror
    text = read_setup_ini(setup_ini)
    wanted = {*REQUIRED_PACKAGES, *(packages or [])}
    if cfg is not None:
        wanted |= set(cfg.cygwin.all_packages)
    from .cygwin.lock import ARCH_DIRS, dumps, make_lock

    result = make_lock(text, sorted(wanted), mirror_url, str(setup_ini))
    if cfg is not None and cfg.windows is not None:
        want_arch = ARCH_DIRS[cfg.windows.architecture]
        if result.arch != want_arch:
            raise UserError(
                str(setup_ini),
                f"is for {result.arch}, the guest is {cfg.windows.architecture}",
                f"use the setup.ini from the mirror's {want_arch}/ folder",
            )
    write_atomic(target, dumps(result))
    size = sum(p.install.size for p in result.packages)
    typer.echo(
        f"wrote {target}: {len(result.packages)} packages ({size / 2**20:.1f} MiB) "
        f"for {', '.join(result.requested)}",
        err=True,
    )


def _lock_path(config: Path, cfg: Config | None) -> Path:
    """cygwin.lock_file beside the config; only -o may send the lock elsewhere."""
    assert cfg is not None
    lock_file = cfg.cygwin.lock_file
    rel = Path(os.path.normpath(lock_file))
    if rel.is_absolute() or rel.parts[:1] == ("..",):
        raise UserError(
            "cygwin.lock_file",
            f"{lock_file!r} is outside the config's directory {str(config_dir(config))!r}",
            f"give a path inside it, or name the file with -o {lock_file} to write it there",
        )
    return config_dir(config) / rel


def prefetch_cmd(
    source: Annotated[str, typer.Argument(help="A local file (ISO, installer) or a URL.")],
    write: Annotated[
        bool, typer.Option("--write", help="Record name/url and sha256 in the config.")
    ] = False,
    field: Annotated[
        str, typer.Option("--field", help=f"Which config field --write sets: {', '.join(FIELDS)}.")
    ] = "windows.iso",
    config: ConfigOpt = Path("wingen.toml"),
) -> None:
    """Hash a file or URL with nix-prefetch-url (adding it to the store); print name and sha256."""
    if write and field not in FIELDS:
        raise UserError("--field", f"{field!r} is not a media field", f"use one of {list(FIELDS)}")
    from .prefetch import prefetch, write_field

    got = prefetch(source)
    typer.echo(f"{got.name} {got.sha256}")
    if got.store_path:
        typer.echo(f"added to the store as {got.store_path}", err=True)
    if write:
        write_field(config, field, got)
        typer.echo(f"wrote {field} to {config}", err=True)


def register(app: typer.Typer) -> None:
    """Add the media commands to the main app."""
    cygwin_app = typer.Typer(no_args_is_help=True, help="The offline Cygwin package set.")
    cygwin_app.command("lock")(lock)
    app.add_typer(cygwin_app, name="cygwin")
    app.command("prefetch")(prefetch_cmd)
