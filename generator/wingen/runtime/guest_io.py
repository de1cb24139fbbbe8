"""What a build hands the guest through the exchange dir and takes back: the environment and
the builder going in; the guest command's exit code, its result (the phase that ended it) and the
outputs coming out. Imported only by the stages that run a command in the guest (derivation.py's
_later), so the install's runtime does not hold it."""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from .contract import (
    BUILD_SCRIPT,
    BUILDER,
    EXIT_FILE,
    GUEST_RESULT,
    GUEST_XCHG,
    HOLD_COMMAND,
    OUTPUTS_ARCHIVE,
    OUTPUTS_LIST,
    PHASES,
    SAVED_ENV,
    SETUP_FAILED,
    SHARES_FAILED,
)
from .derivation import RECORD, BuildEnv, Dirs, Record
from .stage import GuestCommandError
from .supervise import StageError

SSH_LOST = 255  # ssh's own exit code when the connection fails

# The build's own variables, which the guest sets for itself (guest-build.sh) or must not see.
NOT_HANDED_OVER = {
    "PATH", "HOME", "PWD", "OLDPWD", "SHLVL", "SHELL", "TERM", "TMPDIR", "TMP", "TEMP", "TEMPDIR",
    "NIX_BUILD_TOP", "NIX_LOG_FD", "_", "PYTHONPATH", "NIX_ATTRS_JSON_FILE", "NIX_ATTRS_SH_FILE",
}  # fmt: skip


def hold_files(rec: Record, dirs: Dirs, build: BuildEnv) -> None:
    (dirs.control / HOLD_COMMAND).write_text(rec.raw.get("hold_command", ""))


def build_files(rec: Record, dirs: Dirs, build: BuildEnv) -> None:
    hand_over(build, dirs.xchg)
    paths = "".join(f"{path}\n" for path in build.outputs().values())
    (dirs.control / OUTPUTS_LIST).write_text(paths)
    shutil.copyfile(rec["build_script"], dirs.control / BUILD_SCRIPT)
    words = " ".join(sh_quote(w) for w in [rec["builder"], *rec["args"]])
    (dirs.control / BUILDER).write_text(f"exec {words}\n")


def hand_over(build: BuildEnv, xchg: Path) -> None:
    """The derivation's environment for the guest (xchg/saved-env, POSIX sh), and the files it
    names: passAsFile files, and with __structuredAttrs .attrs.json / .attrs.sh."""
    attrs_dir = xchg / "attrs"
    attrs_dir.mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in build.env.items()
        if k not in NOT_HANDED_OVER
        and not k.startswith("wingen")
        and k != RECORD
        and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)
    }
    # passAsFile attributes live in the host's build dir: hand them over through xchg.
    for name in (build.env.get("passAsFile") or "").split():
        var = f"{name}Path"
        if var in env:
            shutil.copyfile(env[var], attrs_dir / name)
            env[var] = f"{GUEST_XCHG}/attrs/{name}"
    if build.attrs is not None:
        # As stdenv does for structured attrs: each output's path under its name ($out, …).
        for name, path in (build.attrs.get("outputs") or {}).items():
            env.setdefault(name, path)
    for var, src in (
        ("NIX_ATTRS_JSON_FILE", build.attrs_json),
        ("NIX_ATTRS_SH_FILE", build.attrs_sh),
    ):
        if src is not None:
            shutil.copyfile(src, attrs_dir / src.name)
            env[var] = f"{GUEST_XCHG}/attrs/{src.name}"
    text = "".join(f"export {k}={sh_quote(v)}\n" for k, v in sorted(env.items()))
    (xchg / SAVED_ENV).write_text(text)


def sh_quote(value: str) -> str:
    """One POSIX shell word."""
    return "'" + value.replace("'", "'\\''") + "'"


def _exit_code(dirs: Dirs) -> int:
    exit_file = dirs.xchg / EXIT_FILE
    try:
        return int(exit_file.read_text().strip())
    except (OSError, ValueError) as exc:
        raise StageError(
            "the controller ended without the guest command's exit code "
            f"({exit_file}: {exc.__class__.__name__})"
        ) from exc


def collect_prepared(rec: Record, dirs: Dirs, outputs: Mapping[str, Path]) -> None:
    """The suspend: the preparing command's exit code (the save wrote $out)."""
    code = _exit_code(dirs)
    if code == SSH_LOST:
        raise GuestCommandError(_ssh_lost("the preparing command"), 1)
    if code:
        raise StageError(f"the preparing command in the guest exited with code {code}")


def collect_outputs(rec: Record, dirs: Dirs, outputs: Mapping[str, Path]) -> None:
    """The run: the phase the guest ended in, then the outputs it packed."""
    phase, phase_code = _guest_result(dirs.control, _exit_code(dirs))
    if phase == "builder":
        raise GuestCommandError(f"the builder in the guest failed with exit code {phase_code}",
                                phase_code)  # fmt: skip
    if phase != "finished":
        raise GuestCommandError(GUEST_PHASE_FAILED[phase], 1)
    from .outputs import missing, unpack  # the run stage's alone (saved.py says why)

    archive = dirs.control / OUTPUTS_ARCHIVE
    if archive.exists():
        unpack(archive, outputs)
    absent = missing(outputs)
    if absent:
        raise GuestCommandError(
            f"the builder exited 0 without making its output {', '.join(absent)} "
            f"({', '.join(str(outputs[n]) for n in absent)})", 1
        )  # fmt: skip


# What a phase that ended the build's guest side before its end means (contract.PHASES).
GUEST_PHASE_FAILED = {
    "setup": "the build could not start in the guest: its environment or build directory "
    f"(exit {SETUP_FAILED}; the build log says which)",
    "store": "the builder wrote into the store outside its outputs (the build log names each "
    "path); only the outputs are the guest's to write",
    "outputs": "packing the outputs in the guest failed (the build log says why)",
}


def _ssh_lost(what: str) -> str:
    return f"lost the SSH connection to the guest while {what} ran (ssh exit {SSH_LOST})"


def _guest_result(control: Path, code: int) -> tuple[str, int]:
    """The phase the guest side ended in and its code; without a result written, what the
    guest command's own exit code says (contract.py)."""
    try:
        phase, number = (control / GUEST_RESULT).read_text().split()
        if phase in PHASES:
            return phase, int(number)
    except FileNotFoundError:
        pass
    except ValueError:
        raise GuestCommandError(f"the guest's result file {GUEST_RESULT} is garbled", 1) from None
    if code == SSH_LOST:
        raise GuestCommandError(_ssh_lost("the build"), 1)
    if code == SHARES_FAILED:
        raise GuestCommandError(
            f"mapping the controller's shares in the guest failed (exit {SHARES_FAILED}; the "
            "build log says which)", 1
        )  # fmt: skip
    raise GuestCommandError(
        f"the guest command ended with code {code} before the build wrote its result", 1
    )
