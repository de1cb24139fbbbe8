"""Fixtures for the end-to-end suite: Debian's kernel, a Nix config for this machine, the render.

Every test here builds real derivations with Debian's nix-bin against the stand-in package set
(nix/standin, for tests only), so each stage boots real QEMU VMs."""

from __future__ import annotations

import subprocess
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import windows_example  # noqa: F401 -- the e2e tests import it from here

from .guest import CONFIG
from .nixdaemon import ensure_build_users, nix_conf, single_user_env, start_daemon
from .where import VmProcess, run_watching

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
STANDIN = ROOT / "nix" / "standin"
# The local machine's features: kvm, so VM stages build here (test_dispatch.py drops it).
FEATURES = ("nixos-test", "benchmark", "big-parallel", "kvm")


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
  tamperModes = f: {{ sandboxed = f "sandboxed"; unsandboxed = f "unsandboxed"; }};
  # Issue 22: four builds from one base, each saying what it sees of the others: marks on its
  # guest's disk, the names in its exchange dir.
  parallelWith = mode: builtins.genList (i:
    w.runInLinuxVM (guestDrv "{name}-par-${{mode}}-${{toString i}}" ''
    mkdir -p "$out"
    touch /var/wingen-par-${{toString i}}
    sleep 20
    ls /var | grep -c '^wingen-par-' > "$out/marks"
    grep -o 'par-${{mode}}-[0-9]' /tmp/xchg/saved-env | sort -u > "$out/xchg-names"
    ls /tmp/xchg/wingen > "$out/xchg-files"
    echo ${{toString i}} > "$out/id"
    '')) 4;
  # An input holding an absolute symlink into another store path (as symlinkJoin, buildEnv and
  # wrappers make them): the guest must read through it.
  linked = pkgs.runCommand "{name}-linked" {{ }} ''
    mkdir $out
    ln -s ${{pkgs.writeText "{name}-target" "reached through a store symlink"}} $out/link
  '';
in
w // {{
  ok = w.runInLinuxVM (guestDrvWith {{
    note = "passed as a file"; passAsFile = [ "note" ]; inherit linked;
  }} "{name}-ok" ''
    echo "building in $(uname -n)"
    mkdir -p "$out"
    echo "written in the guest" > "$out/result.txt"
    uname -r > "$out/kernel"
    cp "$notePath" "$out/note"
    cat "$linked/link" > "$out/via-link"
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
  # What the kernel runs to load a module it asks for, and that modprobe loading one by name
  # from the closure's (rewritten) indexes: unloaded first, then loaded again.
  modprobe = w.runInLinuxVM (guestDrv "{name}-modprobe" ''
    mkdir -p "$out"
    cat /proc/sys/kernel/modprobe > "$out/helper"
    modprobe -r des_generic
    grep -c '^des_generic ' /proc/modules > "$out/after-remove" || true
    modprobe des_generic
    grep -c '^des_generic ' /proc/modules > "$out/after-load"
  '');
  unsandboxed = w.runInLinuxVM (guestDrv "{name}-unsandboxed" "echo in the guest; mkdir $out");
  # Issue 19: outputs as the builder made them (two outputs; links, modes, reserved names).
  shapes = w.runInLinuxVM (guestDrvWith {{ outputs = [ "out" "dev" ]; }} "{name}-shapes" ''
    mkdir -p "$out/bin"
    printf '#!/bin/sh\necho hi\n' > "$out/bin/tool"
    chmod 755 "$out/bin/tool"
    echo plain > "$out/data"
    ln -s bin/tool "$out/rel"
    ln -s "$out/bin/tool" "$out/abs"
    echo colon > "$out/a:b"
    echo question > "$out/a?b"
    echo "the dev output" > "$dev"
  '');
  # Issue 19: a builder that writes into an input store path, and one that adds to the store.
  # Each carries the session's name, so the sandboxed and unsandboxed builds are distinct.
  tamperInput = tamperModes (mode: w.runInLinuxVM (guestDrvWith {{
    victim = pkgs.writeText "{name}-victim" "as built";
  }} "{name}-tamper-input-${{mode}}" ''
    echo tampered > "$victim" && echo "the guest wrote into $victim"
    mkdir "$out"
  ''));
  tamperStore = tamperModes (mode: w.runInLinuxVM (guestDrv "{name}-tamper-store-${{mode}}" ''
    touch /nix/store/{name}-intruder-${{mode}} && echo "the guest added to the store"
    mkdir "$out"
  ''));
  # Issue 20: the builder's own code, even where it is one the guest command uses itself.
  exit97 = w.runInLinuxVM (guestDrv "{name}-exit-97" "exit 97");
  exit98 = w.runInLinuxVM (guestDrv "{name}-exit-98" "exit 98");
  exit255 = w.runInLinuxVM (guestDrv "{name}-exit-255" "exit 255");
  # Issue 22: four builds from one base at once (sandboxed or not).
  parallel = {{ sandboxed = parallelWith "sandboxed"; unsandboxed = parallelWith "unsandboxed"; }};
  # Issue 20: the SSH connection ends while the builder runs (no result is ever written).
  lostSsh = w.runInLinuxVM (guestDrv "{name}-lost-ssh" "killall dropbear; sleep 600; mkdir $out");
  # Not a VM stage: what a builder may do to the store it reads from.
  storeProbe = guestDrvWith {{ input = pkgs.writeText "{name}-in" "as built"; }} "{name}-probe" ''
    echo "$(/usr/bin/id -u) $(/usr/bin/stat -c %U:%a $input)" > $out
    if echo x >> $input; then echo "wrote into the store" >> $out; fi
  '';
}} // rec {{
  nosshBase = w.suspend {{ prepare = "kill $(cat /run/dropbear.pid)"; }};
  failingPrepare = w.suspend {{ prepare = "echo preparing; exit 4"; }};
  nossh = w.runInVMWith nosshBase (guestDrv "{name}-nossh" "mkdir $out");
}}
"""


@dataclass
class NixRun:
    returncode: int
    output: str
    seconds: float
    vms: set[VmProcess]  # the QEMU processes seen while it ran: who ran them, and where
    most_at_once: int = 0  # the most derivations seen running VMs at the same moment


@dataclass
class E2E:
    dir: Path
    env: dict[str, str]  # a client of the session's nix-daemon
    root_env: dict[str, str]  # root on the store directly, unsandboxed
    name: str
    kernel_root: Path
    timings: dict[str, float] = field(default_factory=dict)
    placements: dict[str, str] = field(default_factory=dict)

    def build(
        self,
        attr: str,
        *extra: str,
        top: str = "top.nix",
        timeout: float = 600,
        env: dict[str, str] | None = None,
        link: str | None = None,
    ) -> NixRun:
        """nix-build one attribute of a file in the test dir; output is stdout+stderr together.
        The result link is dir/attr unless named."""
        t0 = time.monotonic()
        cmd = ["nix-build", str(self.dir / top), "-A", attr, "-o", str(self.dir / (link or attr))]
        cmd += extra
        proc, vms, most = run_watching(cmd, env or self.env, self.name, timeout)
        for vm in vms:
            self.placements[vm.drv] = vm.describe()
        return NixRun(proc.returncode, proc.stdout, time.monotonic() - t0, vms, most)

    def instantiate(self, attr: str, top: str = "top.nix") -> tuple[str, str]:
        """The derivation of one attribute, and its output path (built or not)."""
        drv = stdout_of(self.env, "nix-instantiate", str(self.dir / top), "-A", attr).strip()
        return drv, stdout_of(self.env, "nix-store", "--query", "--outputs", drv).strip()

    def repaired_inputs(self, attr: str, top: str = "top.nix") -> list[str]:
        """The built store paths an attribute's build reads, each as the store registered it.
        Suites that run older code as root on this shared store may have modified some (Python
        wrote __pycache__ into the runtime's): those are repaired first."""
        drv, _ = self.instantiate(attr, top)
        closure = stdout_of(self.env, "nix-store", "-qR", drv).split()
        paths = stdout_of(self.env, "nix-store", "-q", "--outputs", *closure).split()
        unbuilt = stdout_of(self.env, "nix-store", "--check-validity", "--print-invalid", *paths)
        inputs = sorted(set(paths) - set(unbuilt.split()))
        for path in modified(self.root_env, inputs):
            stdout_of(self.root_env, "nix-store", "--repair-path", path)
        return inputs

    def variant(self, suffix: str, config: str = "") -> str:
        """A top file like top.nix for a config named <name>-<suffix> (`config` replaces the
        default one): every derivation in it is new, so every stage really runs."""
        name = f"{self.name}-{suffix}"
        expr = render_linux(config or CONFIG.format(name=name), self.dir, f"{suffix}.nix")
        top = f"top-{suffix}.nix"
        write_top(self.dir / top, expr, self.kernel_root, name)
        return top


def stdout_of(env: dict[str, str], *cmd: str) -> str:
    """A command's stdout; it must succeed (its stderr is the failure message)."""
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{cmd}: {proc.stderr}"
    return proc.stdout


def modified(env: dict[str, str], paths: list[str]) -> list[str]:
    """The store paths whose contents differ from what the store registered for them."""
    check = [["nix-store", "--verify-path", p] for p in paths]
    return [c[-1] for c in check if subprocess.run(c, env=env, capture_output=True).returncode]


def render_linux(config: str, dir: Path, file: str) -> Path:
    from wingen.loader import parse_config
    from wingen.render import render

    cfg = parse_config(tomllib.loads(config))
    (dir / file).write_text(render(cfg, dir).expression, encoding="utf-8")
    return dir / file


def write_top(path: Path, rendered: Path, kernel_root: Path, name: str) -> None:
    path.write_text(
        TOP.format(standin=STANDIN, kernel=f'"{kernel_root}"', rendered=rendered, name=name),
        encoding="utf-8",
    )


TIMINGS: dict[str, float] = {}
PLACEMENTS: dict[str, str] = {}


@pytest.fixture(scope="session")
def kernel_root() -> Path:
    proc = subprocess.run(
        ["sh", str(HERE / "setup.sh")], stdout=subprocess.PIPE, text=True, check=True
    )
    return Path(proc.stdout.strip())


# Per package, not per session: its nix-daemon must be gone before other tests count processes.
@pytest.fixture(scope="package")
def e2e(kernel_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    d = tmp_path_factory.mktemp("e2e")
    # A fresh name each session: every stage derivation is new, so each one really runs.
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    rendered = render_linux(CONFIG.format(name=name), d, "linux.nix")
    write_top(d / "top.nix", rendered, kernel_root, name)
    # Builds go through a nix-daemon of this session's own: sandboxed, as nixbld users.
    ensure_build_users()
    daemon = start_daemon(nix_conf(d / "nix-conf", kernel_root, system_features=FEATURES), d)
    try:
        root_env = single_user_env(d / "nix-conf-single-user")
        yield E2E(d, daemon.env, root_env, name, kernel_root, TIMINGS, PLACEMENTS)
    finally:
        daemon.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("e2e stage wall times")
        for stage, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{stage:<40} {seconds:6.1f} s")
    if PLACEMENTS:
        terminalreporter.section("e2e: where each VM stage ran (QEMU's owner and sandbox)")
        for drv, where in PLACEMENTS.items():
            terminalreporter.write_line(f"{drv:<32} {where}")
