"""windows/map-shares.sh run by a real sh against FAKE Windows tools (net.exe, cygpath, mount):
Windows cannot run here, so these stand-ins only record their arguments. What is checked is the
script's own logic: each share mapped as the Samba guest, then mounted; retries; exit 97."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helpers import ROOT
from wingen.loader import load_config
from wingen.render import render

FAKE = {
    # cygpath -S prints the system directory; net.exe fails as many mapping calls as `fails` says.
    "cygpath": 'echo "$FAKE_DIR"',
    "net.exe": r"""
printf 'net %s\n' "$*" >> "$FAKE_DIR/log"
case "$*" in *' /delete '*) exit 2 ;; esac
n=$(cat "$FAKE_DIR/fails" 2>/dev/null || echo 0)
if [ "$n" -gt 0 ]; then echo $((n - 1)) > "$FAKE_DIR/fails"; exit 2; fi
""",
    "mount": 'printf \'mount %s\\n\' "$*" >> "$FAKE_DIR/log"',
    "umount": "exit 1",
    "sleep": "exit 0",
}


def _script(tmp: Path) -> Path:
    cfg = load_config(ROOT / "examples" / "wingen.toml")
    path = tmp / "map-shares.sh"
    path.write_text(render(cfg, tmp).files["windows/map-shares.sh"])
    return path


def _run(tmp: Path, fails: int) -> tuple[int, list[str]]:
    fake = tmp / "fake"
    fake.mkdir()
    for name, body in FAKE.items():
        (fake / name).write_text("#!/bin/sh\n" + body)
        (fake / name).chmod(0o755)
    (fake / "fails").write_text(str(fails))
    env = {"PATH": f"{fake}:/usr/bin:/bin", "FAKE_DIR": str(fake)}
    proc = subprocess.run(["sh", str(_script(tmp))], env=env, capture_output=True, text=True)
    log = (fake / "log").read_text().splitlines() if (fake / "log").exists() else []
    return proc.returncode, log


def test_maps_each_share_as_guest_then_mounts_it(tmp_path: Path) -> None:
    code, log = _run(tmp_path, fails=0)
    assert code == 0
    assert [line for line in log if "/delete" not in line] == [
        r"net use S: \\192.168.0.2\nixstore  /user:guest /persistent:no",
        "mount -f -o binary,noacl S:/ /nix/store",
        r"net use X: \\192.168.0.2\xchg  /user:guest /persistent:no",
        "mount -f -o binary,noacl X:/ /tmp/xchg",
    ]


@pytest.mark.parametrize(("fails", "code"), [(3, 0), (25, 97)])
def test_retries_then_gives_up_with_97(tmp_path: Path, fails: int, code: int) -> None:
    got, log = _run(tmp_path, fails=fails)
    assert got == code
    tries = [line for line in log if line.startswith(r"net use S: \\")]
    assert len(tries) == (fails + 1 if code == 0 else 20)
