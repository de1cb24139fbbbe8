"""Fixtures for the end-to-end suite: Debian's kernel, a Nix config for this machine, the render.

Every test here builds real derivations with Debian's nix-bin against the stand-in package set
(nix/standin, for tests only), so each stage boots real QEMU VMs."""

from __future__ import annotations

import os
import subprocess
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import windows_example  # noqa: F401 -- the e2e tests import it from here

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
STANDIN = ROOT / "nix" / "standin"

# Short deadlines so a failure ends quickly; the runtime scales them x3 under TCG.
CONFIG = """\
name = "{name}"
guest = "linux"

[vm]
memory_mib = 256
cpus = 1
disk_size_gib = 1
acceleration = "auto"
controller_memory_mib = 384

[snapshot]
compression = "zstd"

[deadlines]
install = 120
boot = 60
ssh = 10
build = 120
"""

# The test derivations, built through the revive stage. `ok` writes files into $out; `fail`
# exits 3; `nossh` runs in a snapshot whose guest SSH server was stopped before the save.
TOP = """\
let
  pkgs = import {standin} {{ kernelRoot = {kernel}; }};
  w = pkgs.callPackage {rendered} {{ }};
  guestDrvWith = extra: name: script: derivation ({{
    inherit name;
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" script ];
  }} // extra);
  guestDrv = guestDrvWith {{ }};
in
w // {{
  ok = w.runInLinuxVM (guestDrvWith {{ note = "passed as a file"; passAsFile = [ "note" ]; }}
    "{name}-ok" ''
    echo "building in $(uname -n)"
    mkdir -p "$out"
    echo "written in the guest" > "$out/result.txt"
    uname -r > "$out/kernel"
    cp "$notePath" "$out/note"
  '');
  fail = w.runInLinuxVM (guestDrv "{name}-fail" "echo about to fail; exit 3");
  # Attributes reach a structured-attrs builder only as $NIX_ATTRS_JSON_FILE / _SH_FILE.
  structured = w.runInLinuxVM (guestDrvWith {{
    __structuredAttrs = true;
    greeting = "it's structured";
    words = [ "a" "b c" ];
  }} "{name}-structured" ''
    out=$(sed -n 's/.*"out":"\\([^"]*\\)".*/\\1/p' "$NIX_ATTRS_JSON_FILE")
    mkdir -p "$out"
    cp "$NIX_ATTRS_JSON_FILE" "$out/attrs.json"
    cp "$NIX_ATTRS_SH_FILE" "$out/attrs.sh"
    uname -n > "$out/host"
  '');
  featureless = w.runInLinuxVM (guestDrv "{name}-featureless" "mkdir $out");
}} // rec {{
  nosshBase = w.suspend {{ prepare = "kill $(cat /run/dropbear.pid)"; }};
  nossh = w.runInVMWith nosshBase (guestDrv "{name}-nossh" "mkdir $out");
}}
"""


@dataclass
class NixRun:
    returncode: int
    output: str
    seconds: float


@dataclass
class E2E:
    dir: Path
    env: dict[str, str]
    name: str
    timings: dict[str, float] = field(default_factory=dict)

    def build(self, attr: str, *extra: str, top: str = "top.nix", timeout: float = 600) -> NixRun:
        """nix-build one attribute of a file in the test dir; output is stdout+stderr together."""
        t0 = time.monotonic()
        link = str(self.dir / attr)
        proc = subprocess.run(
            ["nix-build", str(self.dir / top), "-A", attr, "-o", link, *extra],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        return NixRun(proc.returncode, proc.stdout, time.monotonic() - t0)


TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="session")
def kernel_root() -> Path:
    proc = subprocess.run(
        ["sh", str(HERE / "setup.sh")], stdout=subprocess.PIPE, text=True, check=True
    )
    return Path(proc.stdout.strip())


@pytest.fixture(scope="session")
def e2e(kernel_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    from wingen.loader import parse_config
    from wingen.render import render

    d = tmp_path_factory.mktemp("e2e")
    # A fresh name each session: every stage derivation is new, so each one really runs.
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    cfg = parse_config(tomllib.loads(CONFIG.format(name=name)))
    (d / "linux.nix").write_text(render(cfg, d).expression, encoding="utf-8")
    (d / "top.nix").write_text(
        TOP.format(standin=STANDIN, kernel=f'"{kernel_root}"', rendered=d / "linux.nix", name=name),
        encoding="utf-8",
    )
    conf = d / "nix-conf"
    conf.mkdir()
    (conf / "nix.conf").write_text(
        "sandbox = false\nbuild-users-group =\nsubstituters =\n"
        "experimental-features = nix-command flakes\n",
        encoding="utf-8",
    )
    env = {**os.environ, "NIX_CONF_DIR": str(conf)}
    env.pop("NIX_REMOTE", None)
    yield E2E(d, env, name, TIMINGS)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("e2e stage wall times")
        for stage, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{stage:<40} {seconds:6.1f} s")
