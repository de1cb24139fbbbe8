"""Issue 19 and issue 20 item 2 on the Linux guest, by real nix-build: outputs arrive as the
builder made them, nothing but the outputs is the guest's to write (sandboxed or not), and a
failed build names the phase that ended it.

Runs after test_pipeline.py (file order), whose base it reuses."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from .conftest import CONFIG, E2E, modified, render_linux, stdout_of, write_top

pytestmark = pytest.mark.e2e


def test_outputs_arrive_as_the_builder_made_them(e2e: E2E) -> None:
    run = e2e.build("shapes")
    assert run.returncode == 0, run.output
    out = (e2e.dir / "shapes").resolve()
    assert (out / "rel").readlink() == Path("bin/tool")
    assert (out / "abs").readlink() == out / "bin" / "tool"
    assert (out / "abs").read_text() == "#!/bin/sh\necho hi\n"
    assert stat.S_IMODE((out / "bin" / "tool").stat().st_mode) == 0o555
    assert stat.S_IMODE((out / "data").stat().st_mode) == 0o444
    assert (out / "a:b").read_text() == "colon\n"
    assert (out / "a?b").read_text() == "question\n"
    assert sorted(p.name for p in out.iterdir()) == ["a:b", "a?b", "abs", "bin", "data", "rel"]
    # Both outputs came from the one build: the second is there without another.
    again = e2e.build("shapes.dev", "--max-jobs", "0", link="shapes")  # links shapes-dev
    assert again.returncode == 0, again.output
    dev = (e2e.dir / "shapes-dev").resolve()
    assert dev.read_text() == "the dev output\n"
    # The store took them as they are: their hashes are what was registered.
    assert modified(e2e.env, [str(out), str(dev)]) == []


@pytest.mark.parametrize("mode", ["sandboxed", "unsandboxed"])
@pytest.mark.parametrize("attr", ["tamperInput", "tamperStore"])
def test_the_guest_cannot_change_the_store(e2e: E2E, attr: str, mode: str) -> None:
    env = e2e.env if mode == "sandboxed" else e2e.root_env
    inputs = e2e.repaired_inputs(f"{attr}.{mode}")
    run = e2e.build(f"{attr}.{mode}", env=env)
    assert run.returncode != 0, run.output
    assert "the builder wrote into the store outside its outputs" in run.output
    # The build log's last line (nix-build prints its own error below it) is the reason.
    lines = run.output.splitlines()
    log = lines[: next(i for i, line in enumerate(lines) if line.startswith("error: builder"))]
    assert "stage failed: the builder wrote into the store outside its outputs" in log[-1], log
    if attr == "tamperInput":
        named = re.search(r"outside its outputs: (/nix/store/\S+-victim)$", run.output, re.M)
        assert named, run.output
        victim = named.group(1)
        assert stdout_of(e2e.root_env, "nix-store", "--verify-path", victim) == ""
        assert Path(victim).read_text() == "as built"
    else:
        assert re.search(r"outside its outputs: /nix/store/e2e-\w+-intruder", run.output)
        assert not list(Path("/nix/store").glob(f"{e2e.name}-intruder-*"))
    assert modified(e2e.root_env, inputs) == []


@pytest.mark.parametrize("code", [97, 98, 255])
def test_the_builders_code_is_the_builders(e2e: E2E, code: int) -> None:
    """97 and 98 are the guest command's own codes for the shares and the setup, 255 is ssh's
    for a lost connection: from the builder, each is the builder's."""
    run = e2e.build(f"exit{code}")
    assert run.returncode != 0
    assert f"the builder in the guest failed with exit code {code}" in run.output, run.output


def test_a_lost_ssh_connection_is_said(e2e: E2E) -> None:
    run = e2e.build("lostSsh")
    assert run.returncode != 0
    assert "lost the SSH connection to the guest while the build ran" in run.output, run.output


def test_a_failed_share_mapping_is_said(e2e: E2E) -> None:
    """A guest that cannot map a share (here: told a name the controller does not serve, by an
    edit of the render) ends with that reason, not as a builder's failure."""
    rendered = render_linux(CONFIG.format(name=e2e.name), e2e.dir, "noshare.nix")
    text = rendered.read_text()
    assert text.count("map xchg /tmp/xchg\n") == 1, "the mapping's line moved"
    rendered.write_text(text.replace("map xchg /tmp/xchg\n", "map nosuchshare /tmp/xchg\n"))
    write_top(e2e.dir / "top-noshare.nix", rendered, e2e.kernel_root, e2e.name)
    # The base is this session's (only the run's guest command changed); the builder would fail
    # with exit code 3, but never runs.
    run = e2e.build("fail", top="top-noshare.nix", link="noshare", timeout=300)
    assert run.returncode != 0
    assert "cannot mount //192.168.0.2/nosuchshare" in run.output, run.output
    assert "mapping the controller's shares in the guest failed (exit 97" in run.output
