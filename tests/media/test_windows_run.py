"""runInWindowsVM and windowsRunCommand, instantiated by real Nix against the stand-in set: a
derivation with a Linux builder (a store path, or nixpkgs' stdenv.mkDerivation) is refused at
evaluation with one line naming windowsRunCommand; windowsRunCommand gives a run stage whose guest
side execs Cygwin's bash on the script. The README's example is evaluated as written."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from helpers import ROOT, env, windows_example
from wingen.loader import load_config
from wingen.render import render

pytestmark = pytest.mark.nix
STANDIN = ROOT / "nix" / "standin" / "default.nix"


def rendered(tmp: Path) -> Path:
    config = windows_example(tmp / "cfg")
    out = tmp / "default.nix"
    out.write_text(render(load_config(config), config.parent).expression)
    return out


def instantiate(tmp: Path, body: str) -> subprocess.CompletedProcess[str]:
    top = tmp / "top.nix"
    top.write_text(
        f"let pkgs = import {STANDIN} {{ }}; vm = pkgs.callPackage {rendered(tmp)} {{ }};\n"
        f"in {body}\n"
    )
    return subprocess.run(
        ["nix-instantiate", str(top)], capture_output=True, text=True, env=env(), check=False
    )


LINUX_BUILDERS = {
    # nixpkgs' stdenv.mkDerivation: builder = stdenv.shell (a store path), attrs carry `stdenv`
    "stdenv": 'derivation { name = "hello"; system = "x86_64-linux"; builder = "/bin/bash"; '
    'args = [ "-e" ./x ]; stdenv = pkgs.coreutils; }',
    "store builder": 'derivation { name = "hello"; system = "x86_64-linux"; '
    'builder = "${pkgs.bash}/bin/bash"; args = [ "-c" "true" ]; }',
}


@pytest.mark.parametrize("kind", sorted(LINUX_BUILDERS))
@pytest.mark.parametrize("entry", ["vm.runInWindowsVM", "vm.runInVM"])
def test_linux_builder_refused_at_evaluation(tmp_path: Path, kind: str, entry: str) -> None:
    proc = instantiate(tmp_path, f"{entry} ({LINUX_BUILDERS[kind]})")
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert re.match(
        r"error: wingen: runInWindowsVM: hello's builder \S+ is a Linux program .* use "
        r"windowsRunCommand name env script, whose script runs in Cygwin's bash$",
        errors[0],
    ), errors[0]


def test_windows_run_command_runs_the_script_in_cygwin_bash(tmp_path: Path) -> None:
    script = 'echo "$greeting" > $out'
    proc = instantiate(
        tmp_path, f"vm.windowsRunCommand \"hi\" {{ greeting = \"hey\"; }} ''{script}''"
    )
    assert proc.returncode == 0, proc.stderr
    drv = json.loads(
        subprocess.run(["nix", "show-derivation", proc.stdout.strip()], capture_output=True,
                       text=True, env=env(), check=True).stdout
    )  # fmt: skip
    (attrs,) = drv.values()
    e = attrs["env"]
    assert e["wingenStage"] == "run"
    assert e["origBuilder"] == "/bin/bash"  # Cygwin's, in the guest
    words = re.fullmatch(r"'-e' '(/nix/store/[a-z0-9]{32}-hi-script\.sh)'", e["origArgs"])
    assert words, e["origArgs"]
    (script_drv,) = [d for d in attrs["inputDrvs"] if d.endswith("-hi-script.sh.drv")]
    subprocess.run(
        ["nix-store", "--realise", script_drv], capture_output=True, env=env(), check=True
    )
    assert Path(words.group(1)).read_text() == script
    assert e["greeting"] == "hey"
    assert e["out"].endswith("-hi")


def test_readme_example_evaluates(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```nix\n(let\n  vm = pkgs\.callPackage \./default\.nix \{ \};.*?)```",
                      readme, re.S)  # fmt: skip
    assert block and "windowsRunCommand" in block.group(1)
    body = block.group(1).split("in\n", 1)[1]
    proc = instantiate(tmp_path, body)
    assert proc.returncode == 0, proc.stderr
