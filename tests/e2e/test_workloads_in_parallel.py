"""Issue 22 item 1: four builds revived from one base at the same time, as a build farm runs a
jobset, by real nix-build -j4: sandboxed through the daemon and unsandboxed as root, from a
compressed and from a template base. Each gets its own outputs, and none sees another's
exchange dir or disk overlay (each guest marks its own disk, then looks for the others' marks).

Runs after test_pipeline.py and test_template_mode.py (file order), whose bases it reuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import E2E

pytestmark = pytest.mark.e2e

TEMPLATE = '[snapshot]\ncompression = "zstd"', '[snapshot]\nmode = "template"'  # as there


def check_four(e2e: E2E, link: str, mode: str) -> None:
    outs = sorted(e2e.dir.glob(f"{link}*"))
    assert len(outs) == 4, outs
    ids = []
    for out in (p.resolve() for p in outs):
        ids.append((out / "id").read_text().strip())
        assert (out / "marks").read_text().strip() == "1", out  # its own mark alone
        names = (out / "xchg-names").read_text().split()
        assert names == [f"par-{mode}-{ids[-1]}"], names  # its own environment alone
        files = set((out / "xchg-files").read_text().split())
        assert {"builder", "build.sh", "guest-command"} <= files, files
    assert sorted(ids) == ["0", "1", "2", "3"]


@pytest.mark.parametrize("snapshot", ["compressed", "template"])
@pytest.mark.parametrize("mode", ["sandboxed", "unsandboxed"])
def test_four_builds_from_one_base_at_once(e2e: E2E, snapshot: str, mode: str) -> None:
    top, base_link = "top.nix", "base"
    if snapshot == "template":
        from .conftest import CONFIG

        config = CONFIG.format(name=f"{e2e.name}-template").replace(*TEMPLATE)
        top, base_link = e2e.variant("template", config), "template-base"
    # The base first, on its own (the suite's, or test_template_mode.py's): the four builds then
    # share it, and the time below is theirs alone.
    base = e2e.build("base", top=top, link=base_link, timeout=900)
    assert base.returncode == 0, base.output
    env = e2e.env if mode == "sandboxed" else e2e.root_env
    if mode == "unsandboxed":
        e2e.repaired_inputs(f"parallel.{mode}.0", top=top)  # the four share their inputs
    link = f"par-{snapshot}-{mode}"
    run = e2e.build(f"parallel.{mode}", "-j4", top=top, link=link, env=env, timeout=900)
    assert run.returncode == 0, run.output
    e2e.timings[f"4 revives + builds at once, {snapshot}, {mode} (nix-build)"] = run.seconds
    # All four ran their VMs at the same moment (the builder sleeps 20 s in each guest).
    assert run.most_at_once == 4, run.most_at_once
    check_four(e2e, link, mode)
    assert all(Path(p).exists() for p in e2e.dir.glob(f"{link}*"))
