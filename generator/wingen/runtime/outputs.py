"""A build's outputs, from the archive the guest packed (guest-build.sh) into their store paths.

The guest builds its outputs on its own disk and packs them with its own tar, which reads them
as the builder wrote them: Linux's busybox tar, Cygwin's GNU tar (which turns Cygwin's symlinks,
system-file or native, and its private-use-character names back into what they mean). Here each
member is checked and made by hand: only under an output's path, no `..`, and only what the Nix
store can hold (directories, files, symlinks). Hard links become copies (a NAR has no hard links);
modes keep only the execute bit (the store keeps no other). Anything else fails the build with
its name, rather than arrive different.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from .supervise import StageError


def unpack(archive: Path, outputs: Mapping[str, Path]) -> None:
    """Make each output the archive holds (members named `<output's basename>/…`)."""
    by_base = {path.name: path for path in outputs.values()}
    made: dict[str, Path] = {}
    # utf-8 with surrogateescape: any name's bytes survive into os calls unchanged.
    with tarfile.open(archive, encoding="utf-8", errors="surrogateescape") as tar:
        for member in tar:
            dest = _destination(member.name, by_base)
            try:
                _make(tar, member, dest, made)
            except OSError as exc:
                raise StageError(f"cannot make {member.name!r} of the outputs: {exc}") from exc
            made[PurePosixPath(member.name).as_posix()] = dest


def _make(
    tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path, made: Mapping[str, Path]
) -> None:
    if member.isdir():
        dest.mkdir(mode=0o755, exist_ok=True)
    elif member.isreg():
        _write(tar, member, dest)
    elif member.issym():
        dest.symlink_to(member.linkname)
    elif member.islnk():
        source = made.get(PurePosixPath(member.linkname).as_posix())
        if source is None:
            raise StageError(
                f"the outputs' archive links {member.name!r} to {member.linkname!r}, "
                "which it does not hold"
            )
        shutil.copy2(source, dest, follow_symlinks=False)
    else:
        raise StageError(
            f"the output holds {member.name!r}, a {_kind(member)}, which the Nix store cannot hold"
        )


def missing(outputs: Mapping[str, Path]) -> list[str]:
    """The outputs the builder did not make."""
    return [name for name, path in outputs.items() if not os.path.lexists(path)]


def _destination(name: str, by_base: Mapping[str, Path]) -> Path:
    parts = PurePosixPath(name).parts
    if parts and parts[0] == ".":
        parts = parts[1:]
    if not parts or parts[0] == "/" or ".." in parts or parts[0] not in by_base:
        raise StageError(f"the outputs' archive holds {name!r}, which is not under an output")
    dest = by_base[parts[0]].joinpath(*parts[1:])
    # Never through a symlink the archive made: a member below one would land outside.
    for above in list(dest.parents)[: len(parts) - 1]:
        if above.is_symlink():
            raise StageError(f"the outputs' archive holds {name!r} below a symlink")
    return dest


def _write(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> None:
    source = tar.extractfile(member)
    assert source is not None  # a regular member always has data
    mode = 0o755 if member.mode & 0o111 else 0o644
    with source, dest.open("xb") as out:  # x: a second member of one name fails
        shutil.copyfileobj(source, out)
    dest.chmod(mode)


def _kind(member: tarfile.TarInfo) -> str:
    if member.isfifo():
        return "FIFO"
    if member.ischr() or member.isblk():
        return "device file"
    return f"tar member of type {member.type!r}"
