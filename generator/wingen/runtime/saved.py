"""A stage's saved states: reviving its VMs from them, checking they fit, saving them.

Only stages with a state import this (stage.py imports it where it is needed), so the install
stage's runtime does not hold it: an edit here leaves the installed guest's derivation as it is
(render.py gives the install only the modules it imports).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import mapped_ram, qemu_caps
from .snapshot import Incoming, check_meta, save
from .spec import Step, VMSpec
from .supervise import StageError, log

if TYPE_CHECKING:
    from .stage import Stage


def check_revivable(stage: Stage, vm: VMSpec) -> None:
    """The state was saved from a VM like this one (snapshot.check_meta)."""
    assert vm.restore is not None
    check_meta(vm.restore.path, {**stage.state_meta(vm), "compression": vm.restore.compression})


def revive(stage: Stage) -> None:
    """Load every VM that has a state at the same time, then continue them together: the
    guest does not run (and take the CPU) while the controller still loads."""
    started = time.monotonic()
    incoming: list[Incoming] = []
    try:
        for vm in stage.vms.values():
            r = vm.spec.restore
            if r is not None:
                incoming.append(
                    Incoming.begin(
                        vm.client(),
                        r.path,
                        r.compression,
                        sup=stage.sup,
                        tools=stage.spec.tools,
                        deadline=stage.deadline(vm.spec.restore_deadline),
                        name=vm.name,
                    )
                )
        for each in incoming:
            each.finish(cont=False)
    finally:
        for each in incoming:
            each.close()
    for each in incoming:
        each.client.execute("cont")
    if incoming:
        names = ", ".join(each.name for each in incoming)
        log(f"revive: {names} running after {time.monotonic() - started:.2f} s")


def save_vm(stage: Stage, step: Step) -> None:
    """Save one running VM's state where the step says, with what a revive checks beside it."""
    from .stage import QUIT_BUDGET, host_cpu_flags

    vm = stage.vms[step.target]
    if vm.exit_code() is not None:
        raise StageError(f"VM {vm.name} is not running ({vm.status()})")
    caps = qemu_caps.probe_client(vm.client())  # kept with the state, and decides the format
    save(
        vm.client(),
        Path(step.to),
        step.compression,
        sup=stage.sup,
        deadline=stage.deadline(step.deadline),
        tools=stage.spec.tools,
        ram_file=vm.ram_file if vm.spec.template else None,
        name=vm.name,
        meta={
            **stage.state_meta(vm.spec),
            "host_cpu_flags": host_cpu_flags(),
            "qemu_caps": qemu_caps.record(stage.spec.qemu, caps),
        },
        fsync=step.fsync,
        quit_budget=stage.deadline(QUIT_BUDGET),
        mapped=mapped_ram.wanted(step.compression, caps),
    )
    if vm.proc is not None:
        budget = stage.deadline(QUIT_BUDGET)
        try:
            vm.proc.wait(budget)
        except subprocess.TimeoutExpired as exc:
            raise StageError(
                f"VM {vm.name}: QEMU still running {budget:g} s after the save and quit"
            ) from exc
