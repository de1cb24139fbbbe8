"""Render a Config into the Nix expression and the files it embeds (scripts, answer files, runtime).

Every value reaches its target through an escaping filter (escape.py); StrictUndefined makes a
misspelt name an error instead of an empty string. Templates under `templates/`:
- `default.nix.j2`: the expression (partials in `nix/`);
- `scripts/**.j2`: files for every guest; `windows/**.j2`, `linux/**.j2`: files for that guest only.
A file template renders to the path without `.j2`; the expression takes each as `embed(path)`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from . import __version__
from .config import Config
from .escape import FILTERS, nix_ind, nix_str
from .kmodules import FOR_VM as KMODULES
from .media import check_files, media_context
from .nixnames import names_for, optional_names
from .runtime.contract import STRINGS as CONTRACT
from .runtime.spec import SCALARS, STRUCTURED
from .runtime_subset import stripped, subset
from .shares import (
    CIFS_OPTIONS,
    CONTROLLER_SHARES,
    DRIVE_LETTERS,
    HOLD_SHARE,
    LINUX_STORE_LOWER,
    LINUX_STORE_UPPER,
    SHARES,
    WINDOWS_OUTPUTS,
    XCHG,
)

PACKAGE = Path(__file__).resolve().parent
EXPRESSION = "default.nix.j2"
FILE_DIRS = ("scripts",)


def templates_dir() -> Path:
    """Templates ship inside the wheel as wingen/templates; a checkout keeps them at the top."""
    packaged = PACKAGE / "templates"
    if packaged.is_dir():
        return packaged
    return PACKAGE.parents[1] / "templates"


def runtime_dir() -> Path:
    return PACKAGE / "runtime"


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept between runs (compiling them is most of a render's time).
    Jinja keys each entry by the template's source, so an edited template is compiled anew.
    Inside a Nix build (the flake renders there) nothing is cached: $HOME must stay absent."""
    if "NIX_BUILD_TOP" in os.environ:
        return None
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    if not base.parent.is_dir():
        return None
    directory = base / "wingen" / f"jinja-{__version__}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # no writable cache: render all the same, only slower
    return jinja2.FileSystemBytecodeCache(str(directory))


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return env


@dataclass(frozen=True)
class Rendered:
    """The expression and the files it embeds, keyed by their relative path."""

    expression: str
    files: Mapping[str, str] = field(default_factory=dict)


def file_templates(cfg: Config) -> list[str]:
    names = environment().list_templates(extensions=["j2"])
    dirs = (*FILE_DIRS, cfg.guest)
    return sorted(n for n in names if n.split("/", 1)[0] in dirs)


@dataclass(frozen=True)
class Runtime:
    """A runtime the rendered Nix builds: the directory its files go under among the rendered
    files, its Nix binding, and, for a subset (runtime_subset.py), the module it serves and the
    guests that use it."""

    top: str
    binding: str
    entry: str = ""  # "": the whole runtime
    guests: tuple[str, ...] = ("linux", "windows")


# The whole one (suspend, run, wingen shell), and subsets for what must not change with code it
# does not run: the install, and the Windows ISO's reader (edition check, no-prompt copy).
RUNTIMES = (
    Runtime("runtime", "runtime"),
    Runtime("install-runtime", "installRuntime", entry="__main__"),
    Runtime("iso-runtime", "isoRuntime", entry="winiso", guests=("windows",)),
)


def runtime_files(guest: str = "windows") -> dict[str, str]:
    """The runtime helper's sources, embedded so the sandbox needs only a bare python3."""
    root = runtime_dir()
    if not root.is_dir():
        return {}
    modules = {path.stem: path.read_text(encoding="utf-8") for path in sorted(root.glob("*.py"))}
    files = {}
    for rt in RUNTIMES:
        if guest not in rt.guests:
            continue
        if rt.entry:
            part = {"__init__.py": stripped(modules["__init__"]), **subset(modules, rt.entry)}
        else:
            part = {f"{name}.py": text for name, text in modules.items()}
        files[f"{rt.top}/wingen/__init__.py"] = ""
        for name, text in sorted(part.items()):
            files[f"{rt.top}/wingen/runtime/{name}"] = text
    return files


def base_context(cfg: Config, config_dir: Path) -> dict[str, Any]:
    ctx = {
        "cfg": cfg,
        "version": __version__,
        "names": names_for(cfg.guest),
        "optional_names": optional_names(),
        "config_dir": config_dir,
        "shares": SHARES,
        "controller_shares": CONTROLLER_SHARES,
        "hold_share": HOLD_SHARE,
        "cifs_options": CIFS_OPTIONS,
        "drive_letters": DRIVE_LETTERS,
        "xchg": XCHG,
        # Where a build's outputs are made in the guest (shares.py).
        "store_lower": LINUX_STORE_LOWER,
        "store_upper": LINUX_STORE_UPPER,
        "outputs_dir": WINDOWS_OUTPUTS,
        "kmodules": KMODULES,  # each Linux VM's kernel modules (kmodules.py)
        # The runtime's VM fields (runtime/spec.py): vmRecord's arguments, the guest's settings.
        "vm_scalars": SCALARS,
        "vm_structured": [name for name in STRUCTURED if name != "restore"],
        "contract": CONTRACT,  # the lines guests and the runtime share (runtime/contract.py)
        "runtimes": [rt for rt in RUNTIMES if cfg.guest in rt.guests],
    }
    ctx.update(media_context(cfg, config_dir))  # `win`, `cygwin` for Windows guests (media.py)
    return ctx


def render(cfg: Config, config_dir: Path = Path(), *, separate_files: bool = False) -> Rendered:
    """Render everything for cfg. With separate_files the expression reads its embedded files
    from beside itself (`-o DIR`); otherwise it holds them inline (one file on stdout)."""
    env = environment()
    ctx = base_context(cfg, config_dir)
    files = runtime_files(cfg.guest)
    for name in file_templates(cfg):
        files[name.removesuffix(".j2")] = env.get_template(name).render(ctx)
    check_files(cfg, files)  # answer files Windows would reject fail here (media.py)
    expression = env.get_template(EXPRESSION).render(
        ctx, files=files, embed=_embedder(files, separate_files)
    )
    return Rendered(expression, files)


def _embedder(files: Mapping[str, str], separate: bool) -> Callable[[str], str]:
    def embed(path: str) -> str:
        """A Nix expression whose value is the text of the rendered file at `path`."""
        if path not in files:
            raise jinja2.TemplateError(f"embed: no rendered file {path!r}")
        if separate:
            return f"(builtins.readFile (./. + {nix_str('/' + path)}))"
        return "''\n" + nix_ind(files[path]) + "''"

    return embed
