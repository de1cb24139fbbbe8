"""The lines the guests' scripts and the runtime share, declared once.

The templates get them as ``contract`` in their Jinja context (render.py) and write them through
their target's escaping filter; the runtime reads the VMs' serial consoles for them.  A rename here
is one edit: nothing else spells these strings.
"""

from __future__ import annotations

import re

# A guest (or the controller) that fails writes one line to its serial console that *begins* with
# this prefix, then the reason: the runtime ends whatever stage it is in within about a second,
# with that reason.  Only a line's start counts, so text that merely contains it is never taken.
FAILED = "WINGEN-FAILED:"

# The install stage's positive sign, for every guest: the line its installer prints, alone, once
# the disk is complete.  An install succeeds only if the guest printed it before QEMU exited 0; a
# power-off without it (an installer that died, a Setup that gave up) fails the stage.
INSTALL_DONE = "WINGEN-INSTALL-DONE"

# The Linux guest's init, booted from its disk: up, and the SSH server started.
GUEST_READY = "WINGEN-GUEST-READY"

# The controller in the suspend stage: smbd up, a shell held in the guest, no 9p share mounted.
CONTROLLER_READY = "wingen-controller: ready to be saved"

# The revived controller, told `shell` (wingen shell), on its second serial port just before the
# session's bytes: the host shows what follows it.
SHELL_START = "wingen-controller: shell"

# --- a build's guest side (guest-build.sh) and the runtime's collect, through xchg/wingen -------
# The runtime writes OUTPUTS_LIST (each output's store path, one per line). The guest builds the
# outputs on its own disk, packs them into OUTPUTS_ARCHIVE (tar: links, modes and names kept) and
# ends by writing GUEST_RESULT: "PHASE CODE", the last phase it ran and how that ended.
OUTPUTS_LIST = "output-paths"
OUTPUTS_ARCHIVE = "outputs.tar"
GUEST_RESULT = "guest-result"
# Phases: "setup" (the build's environment and directory), "builder", "store" (the builder wrote
# into the store outside its outputs), "outputs" (packing them), "finished" (all packed).
PHASES = ("setup", "builder", "store", "outputs", "finished")
# Exit codes the guest command uses itself, before or around the builder. Mapping the shares runs
# before xchg is there to hold a result: its code, with no result written, says so.
SHARES_FAILED = 97
SETUP_FAILED = 98

# --- the exchange dir's files, as the runtime, the controller and the guests spell them --------
GUEST_XCHG = "/tmp/xchg"  # where the guest and the controller see the exchange dir
SAVED_ENV = "saved-env"  # xchg/: the derivation's environment for the guest (POSIX sh)
EXIT_FILE = "in-vm-exit"  # xchg/: the guest command's exit code, as the controller saw it
CONTROL_DIR = "wingen"  # xchg/wingen/: the rest
SSH_DEADLINE = "ssh-deadline"  # seconds the controller waits for the guest's SSH (TCG-scaled)
GUEST_COMMAND = "guest-command"  # what the controller runs in the guest
HOLD_COMMAND = "hold-command"  # what it runs just before the save (suspend)
BUILD_SCRIPT = "build.sh"  # guest-build.sh, for the guest command to run (run)
BUILDER = "builder"  # `exec BUILDER ARGS…` for guest-build.sh to source (run)
BUILD_LOG = "build.log"  # the guest command's output, live
FAILURE = "failure"  # the controller's reason, when it fails

# What the templates see as `contract`: every string and number above.
STRINGS: dict[str, str | int] = {
    name: value
    for name, value in dict(globals()).items()
    if name.isupper() and isinstance(value, str | int)
}


def line_pattern(line: str) -> str:
    """A wait pattern (Python re, MULTILINE) that matches `line` alone on a line."""
    return "^" + re.escape(line) + "$"


def failure_reason(line: str) -> str | None:
    """The reason a serial console line reports, if it is a failure line."""
    text = line.replace("\r", "").strip()
    if not text.startswith(FAILED):
        return None
    return text[len(FAILED) :].strip() or "(no reason given)"
