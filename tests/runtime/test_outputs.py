"""A build's outputs from the guest's archive (runtime/outputs.py), with the archivers the guests
run: busybox tar (the Linux guest) and GNU tar (Cygwin's tar is GNU tar). Cygwin's tar reads
Cygwin's own forms back (a system-file or native symlink is a symlink to it, a private-use
character in a name is the character Windows reserves: Cygwin User's Guide, "Symbolic links" and
"Special characters in filenames"), so what it packs is the tree as the builder made it; here the
archive crosses the process boundary the same way, from real tar to the runtime's unpack."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from wingen.runtime.outputs import missing, unpack
from wingen.runtime.supervise import StageError

# Every character Windows reserves in a name, each in a name of its own.
RESERVED = ':*?"<>|'
TARS = {
    "busybox": ["busybox", "tar"],
    "gnu": ["tar", "--format=gnu"],
}


def builder_tree(store: Path) -> dict[str, Path]:
    """What a builder makes: two outputs, links relative and absolute, an executable, a hard
    link, names Windows reserves, a deep path, an output that is a single file."""
    out = store / "aaaa-demo"
    dev = store / "bbbb-demo-dev"
    (out / "bin").mkdir(parents=True)
    tool = out / "bin" / "tool"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    (out / "bin" / "data").write_text("plain\n")
    (out / "link").symlink_to("bin/tool")
    (out / "abs").symlink_to(f"{out}/bin/tool")
    (out / "dangling").symlink_to("/nix/store/zzzz-elsewhere/x")
    os.link(tool, out / "bin" / "tool-hard")
    for ch in RESERVED:
        (out / f"a{ch}b").write_text(ch)
    deep = out.joinpath(*["d" * 60] * 3)
    deep.mkdir(parents=True)
    (deep / ("f" * 120)).write_text("deep\n")
    dev.write_text("a single-file output\n")
    return {"out": out, "dev": dev}


def pack(tar: list[str], store: Path, outputs: dict[str, Path], archive: Path) -> None:
    names = [p.name for p in outputs.values()]
    subprocess.run([*tar, "-C", str(store), "-cf", str(archive), *names], check=True)


@pytest.mark.parametrize("tar", sorted(TARS))
def test_outputs_arrive_as_the_builder_made_them(tmp_path: Path, tar: str) -> None:
    if shutil.which(TARS[tar][0]) is None:
        pytest.fail(f"{TARS[tar][0]} is not installed (.ci/run installs it)")
    made = builder_tree(tmp_path / "guest")
    archive = tmp_path / "outputs.tar"
    pack(TARS[tar], tmp_path / "guest", made, archive)
    store = tmp_path / "store"
    store.mkdir()
    outputs = {name: store / path.name for name, path in made.items()}
    unpack(archive, outputs)
    assert missing(outputs) == []
    out = outputs["out"]
    assert (out / "link").readlink() == Path("bin/tool")
    assert (out / "abs").readlink() == made["out"] / "bin" / "tool"
    assert (out / "dangling").readlink() == Path("/nix/store/zzzz-elsewhere/x")
    assert (out / "bin" / "tool").stat().st_mode & 0o111 == 0o111
    assert (out / "bin" / "data").stat().st_mode & 0o111 == 0
    assert (out / "bin" / "tool-hard").read_text() == (out / "bin" / "tool").read_text()
    assert (out / "bin" / "tool-hard").stat().st_mode & 0o111 == 0o111
    for ch in RESERVED:
        assert (out / f"a{ch}b").read_text() == ch
    assert (out.joinpath(*["d" * 60] * 3) / ("f" * 120)).read_text() == "deep\n"
    assert outputs["dev"].read_text() == "a single-file output\n"
    got = sorted(str(p.relative_to(store)) for p in store.rglob("*"))
    want = sorted(str(p.relative_to(tmp_path / "guest")) for p in (tmp_path / "guest").rglob("*"))
    assert got == want


def test_an_output_not_made_is_missing(tmp_path: Path) -> None:
    outputs = {"out": tmp_path / "x-out", "lib": tmp_path / "x-lib"}
    (tmp_path / "x-lib").symlink_to("nowhere")  # a dangling symlink is an output made
    assert missing(outputs) == ["out"]


def archive_of(tmp_path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    path = tmp_path / "outputs.tar"
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    return info


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([member("../etc/passwd")], "not under an output"),
        ([member("/etc/passwd")], "not under an output"),
        ([member("other-path/x")], "not under an output"),
        ([member("aaaa-demo/../../x")], "not under an output"),
        (
            [member("aaaa-demo", tarfile.DIRTYPE), member("aaaa-demo/l", tarfile.SYMTYPE, "/"),
             member("aaaa-demo/l/x")],
            "below a symlink",
        ),
        ([member("aaaa-demo", tarfile.FIFOTYPE)], "a FIFO, which the Nix store cannot hold"),
        ([member("aaaa-demo", tarfile.CHRTYPE)], "a device file"),
        ([member("aaaa-demo", tarfile.LNKTYPE, "aaaa-demo/nothing")], "which it does not hold"),
    ],
)  # fmt: skip
def test_an_archive_that_would_land_elsewhere_or_differ_fails(
    tmp_path: Path, members: list[tarfile.TarInfo], message: str
) -> None:
    archive = archive_of(tmp_path, *((m, b"x" if m.isreg() else b"") for m in members))
    store = tmp_path / "store"
    store.mkdir()
    with pytest.raises(StageError, match=message):
        unpack(archive, {"out": store / "aaaa-demo"})
    assert not (tmp_path / "etc").exists() and not Path("/x").exists()


def test_modes_keep_only_the_execute_bit(tmp_path: Path) -> None:
    setuid = member("aaaa-demo")
    setuid.mode = 0o4777
    archive = archive_of(tmp_path, (setuid, b"x"))
    unpack(archive, {"out": tmp_path / "aaaa-demo"})
    assert stat.S_IMODE((tmp_path / "aaaa-demo").stat().st_mode) == 0o755
