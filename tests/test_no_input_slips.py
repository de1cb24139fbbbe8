"""Inputs that once passed `check` and then broke `render`, `cygwin lock` or Nix (issue 10).

Each case goes through the real CLI: exit code 2, one line naming the field, nothing written.
The field lists are derived from the config models, so a new field cannot be forgotten.
"""

from __future__ import annotations

import copy
import inspect
import tomllib
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
import tomlkit
from pydantic import BaseModel

from helpers import ROOT, wingen
from wingen.config import Config
from wingen.errors import UserError
from wingen.loader import parse_config

SETUP_INI = ROOT / "tests" / "media" / "fixtures" / "setup.ini"
ZERO = "0" * 64
# A Cygwin Time Machine snapshot for XP (32-bit), as cygwin.com/install.html names it.
TIME_MACHINE_XP = "http://ctm.crouchingtigerhiddenfruitbat.org/pub/cygwin/circa/2016/08/30/104223"

# The Windows example with every optional string field present (and each list non-empty), so
# that a trailing newline can be put into each of them.
BASE: dict[str, Any] = tomllib.loads((ROOT / "examples" / "wingen.toml").read_text())
BASE["windows"]["product_key"] = "W269N-WFGWX-YVC9B-4J6C9-T83GX"  # "\n" after a key, not "generic"
BASE["windows"]["virtio_iso"] = {"name": "virtio-win-0.1.262.iso", "sha256": ZERO}
BASE["vm"]["extra_qemu_args"] = ["-usb"]
BASE["vm"]["machine_type"] = "pc-q35-9.2"
BASE["cygwin"]["packages"] = ["make"]
BASE["cygwin"]["setup"] = {"url": "https://cygwin.com/setup-x86_64.exe", "sha256": "1" * 64}


def _xp(data: dict[str, Any]) -> dict[str, Any]:
    """`data` made an XP guest (with what XP needs: a key, IDE disks, a Cygwin Time Machine)."""
    out = copy.deepcopy(data)
    del out["windows"]["virtio_iso"]
    out["windows"].update(
        edition="Windows XP Professional",
        answer_file="winnt-sif",
        product_key="BBBBB-BBBBB-BBBBB-BBBBB-BBBBB",
        firmware="bios",
        architecture="i686",
    )
    out["cygwin"]["mirror"] = TIME_MACHINE_XP
    return out


def _kinds(annotation: Any) -> set[Any]:
    """What a field annotation takes: str, int, bool, list (of str), or model classes."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _kinds(get_args(annotation)[0])
    if origin is Literal:
        return {type(a) for a in get_args(annotation)}
    if origin in (Union, types.UnionType):
        return set().union(*(_kinds(a) for a in get_args(annotation)))
    if origin is list:
        return {list} if str in get_args(annotation) else set()
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return {annotation}
    return {annotation} if annotation in (str, int, bool) else set()


@dataclass(frozen=True)
class Leaf:
    path: str  # dotted, as errors name it
    owner: str  # the model class that declares the field
    name: str
    kinds: frozenset[Any]
    default: Any


def _leaves(model: type[BaseModel], path: str = "") -> Iterator[Leaf]:
    """Every scalar or list field reachable from `model`, whether a config sets it or not."""
    for name, field in model.model_fields.items():
        here = f"{path}.{name}" if path else name
        kinds = _kinds(field.annotation)
        models = [k for k in kinds if inspect.isclass(k) and issubclass(k, BaseModel)]
        if models:
            yield from _leaves(models[0], here)
        else:
            yield Leaf(here, model.__name__, name, frozenset(kinds), field.default)


LEAVES = list(_leaves(Config))
MISSING = object()


def _get(data: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return MISSING
        data = data[part]
    return data


def _textual(leaf: Leaf) -> bool:
    return bool(leaf.kinds & {str, list})


def _with(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    *parents, last = path.split(".")
    here = out
    for part in parents:
        here = here[part]
    here[last] = value(here[last]) if callable(value) else value
    return out


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    config = tmp_path / "wingen.toml"
    config.write_text(tomlkit.dumps(data))
    return config


def _refused(proc: Any, field: str) -> str:
    """The one error line, after checking exit code 2 and that it names `field`."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {field}: "), lines[0]
    assert lines[0].endswith(")"), "the fix comes last, in parentheses"
    return str(lines[0])


# --- item 10: a trailing newline in every string field -----------------------------------------


NEWLINE_LEAVES = [f for f in LEAVES if _textual(f) and _get(BASE, f.path) is not MISSING]


def test_the_base_config_has_every_string_field() -> None:
    textual = {(f.owner, f.name) for f in LEAVES if _textual(f)}
    covered = {(f.owner, f.name) for f in NEWLINE_LEAVES}
    assert not textual - covered, f"give these a valid value in BASE: {textual - covered}"
    assert parse_config(BASE)  # and it is valid as it stands


def _newline(value: Any) -> Any:
    return [value[0] + "\n", *value[1:]] if isinstance(value, list) else value + "\n"


@pytest.mark.parametrize("path", [f.path for f in NEWLINE_LEAVES])
def test_trailing_newline_is_refused(path: str, tmp_path: Path) -> None:
    config = _write(tmp_path, _with(BASE, path, _newline))
    item = "[0]" if isinstance(_get(BASE, path), list) else ""  # lists name the item
    _refused(wingen("check", "-c", str(config)), path + item)


def test_cygwin_lock_refuses_a_mirror_with_a_trailing_newline(tmp_path: Path) -> None:
    out = tmp_path / "l.json"
    proc = wingen(
        "cygwin", "lock", "--setup-ini", str(SETUP_INI), "--mirror", "https://m.example/c\n",
        "-o", str(out), "make",
    )  # fmt: skip
    _refused(proc, "--mirror")
    assert not out.exists()


# --- item 11: check refuses what render would, render never prints a traceback ----------------


@pytest.mark.parametrize("field", ["user", "password"])
def test_xp_account_with_a_line_break(field: str, tmp_path: Path) -> None:
    data = _with(_xp(BASE), f"windows.account.{field}", "win\ngen")
    config = _write(tmp_path, data)
    _refused(wingen("check", "-c", str(config)), f"windows.account.{field}")
    out = tmp_path / "out.nix"
    _refused(wingen("render", "-c", str(config), "-o", str(out)), f"windows.account.{field}")
    assert not out.exists()


def test_an_internal_error_is_one_line_without_v(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A wingen bug (simulated: render raises) still ends in one line naming what failed."""
    from wingen import cli

    def broken(*_: Any, **__: Any) -> None:
        raise KeyError("windows/autounattend.xml")

    monkeypatch.setattr(cli, "render", broken)
    config = _write(tmp_path, BASE)
    for verbose in ([], ["-v"]):
        monkeypatch.setattr("sys.argv", ["wingen", *verbose, "render", "-c", str(config)])
        with pytest.raises(SystemExit) as exit_:
            cli.main()
        assert exit_.value.code == 1
        err = capsys.readouterr().err
        assert ("Traceback" in err) == bool(verbose), err
        last = err.strip().splitlines()[-1]
        assert last.startswith("error: internal error: KeyError: 'windows/autounattend.xml'"), last
        assert "-v" in last


# --- item 12: account.user's error is a sentence ------------------------------------------------


@pytest.mark.parametrize(
    ("user", "named"), [("win;gen", "';'"), ("a[b]", "'['"), ("tab\there", "tab"), ("...", "dots")]
)
def test_account_user_error_names_the_characters(user: str, named: str, tmp_path: Path) -> None:
    config = _write(tmp_path, _with(BASE, "windows.account.user", user))
    line = _refused(wingen("check", "-c", str(config)), "windows.account.user")
    assert named in line
    assert "pattern" not in line


# --- item 13: extra_qemu_args that bypass the clash list or break the runtime ------------------


@pytest.mark.parametrize(
    "args",
    [
        ["-readconfig", "more.cfg"],
        ["-S"],
        ["--S"],
        ["-set", "drive.disk.file=/etc/passwd"],
        ["-writeconfig", "out.cfg"],
        ["-preconfig"],
        ["-loadvm", "snap"],
        ["-daemonize"],
        ["-incoming", "defer"],
        ["-pidfile", "x.pid"],
        ["-action", "shutdown=pause"],
        ["-run-with", "user=nobody"],
        ["-runas", "nobody"],
        ["-version"],
    ],
    ids=" ".join,
)
def test_extra_qemu_args_that_break_the_runtime(args: list[str], tmp_path: Path) -> None:
    config = _write(tmp_path, _with(BASE, "vm.extra_qemu_args", ["-usb", *args]))
    line = _refused(wingen("check", "-c", str(config)), "vm.extra_qemu_args")
    assert repr(args[0]) in line


def test_extra_qemu_args_that_are_fine() -> None:
    fine = ["-usb", "-device", "virtio-rng-pci", "-s", "-global", "kvm-pit.lost_tick_policy=delay"]
    assert parse_config(_with(BASE, "vm.extra_qemu_args", fine)).vm.extra_qemu_args == fine


# --- item 14: strict numbers and booleans -------------------------------------------------------


def test_a_quoted_number_is_refused(tmp_path: Path) -> None:
    config = _write(tmp_path, _with(BASE, "vm.memory_mib", "4096"))
    line = _refused(wingen("check", "-c", str(config)), "vm.memory_mib")
    assert "'4096'" in line


def _valid(leaf: Leaf) -> int:
    """A number the field accepts: BASE's, else its default, else 1 (windows.image_index)."""
    value = _get(BASE, leaf.path)
    value = leaf.default if value is MISSING else value
    return value if isinstance(value, int) else 1


# What TOML gives that a strict field refuses: the value quoted, as a float, as the other type.
STRICT = [(f.path, w) for f in LEAVES if int in f.kinds for w in (str(_valid(f)), float(_valid(f)))]
STRICT += [(f.path, w) for f in LEAVES if bool in f.kinds for w in ("true", 1)]


@pytest.mark.parametrize(("path", "wrong"), STRICT)
def test_numbers_and_booleans_are_strict(path: str, wrong: Any) -> None:
    with pytest.raises(UserError) as err:
        parse_config(_with(BASE, path, wrong))
    assert err.value.field == path, str(err.value)


def test_the_strict_field_list_is_not_empty() -> None:
    assert {"vm.memory_mib", "deadlines.install", "windows.image_index"} <= {p for p, _ in STRICT}


# --- item 15: cygwin lock writes only beside the config, unless -o says otherwise --------------


@pytest.mark.parametrize("where", ["../outside.lock.json", "ABS", "sub/../../outside.lock.json"])
def test_cygwin_lock_refuses_a_lock_file_outside(where: str, tmp_path: Path) -> None:
    here = tmp_path / "project"
    here.mkdir()
    target = str(tmp_path / "abs.lock.json") if where == "ABS" else where
    config = _write(here, _with(BASE, "cygwin.lock_file", target))
    proc = wingen("cygwin", "lock", "--setup-ini", str(SETUP_INI), "-c", str(config))
    line = _refused(proc, "cygwin.lock_file")
    assert "-o" in line
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["project", "wingen.toml"]
    # Named explicitly with -o, the same file is written.
    out = Path(target) if where == "ABS" else here / target
    proc = wingen(
        "cygwin", "lock", "--setup-ini", str(SETUP_INI), "-c", str(config), "-o", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()


def test_cygwin_lock_writes_into_a_subdirectory(tmp_path: Path) -> None:
    (tmp_path / "locks").mkdir()
    config = _write(tmp_path, _with(BASE, "cygwin.lock_file", "locks/cygwin.lock.json"))
    proc = wingen("cygwin", "lock", "--setup-ini", str(SETUP_INI), "-c", str(config))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "locks" / "cygwin.lock.json").is_file()


# --- item 16: one validation for check, render and cygwin lock ---------------------------------

ONE_VALIDATION = {
    "XP time zone": (
        lambda d: _with(_xp(d), "windows.time_zone", "Mars Standard Time"),
        "windows.time_zone",
    ),
    "mirror": (
        lambda d: _with(d, "cygwin.mirror", "mirrors.kernel.org/sourceware/cygwin"),
        "cygwin.mirror",
    ),
}


@pytest.mark.parametrize("name", sorted(ONE_VALIDATION))
def test_check_render_and_lock_refuse_alike(name: str, tmp_path: Path) -> None:
    change, field = ONE_VALIDATION[name]
    config = _write(tmp_path, change(BASE))
    check = _refused(wingen("check", "-c", str(config)), field)
    render = _refused(wingen("render", "-c", str(config)), field)
    lock = _refused(
        wingen("cygwin", "lock", "--setup-ini", str(SETUP_INI), "-c", str(config)), field
    )
    assert check == render == lock
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wingen.toml"]
