"""The one way out to an external command: every subprocess in wingen goes through `run`."""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Mapping, Sequence

from .errors import ToolError, UserError

log = logging.getLogger(__name__)


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    stream_stderr: bool = False,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv, capture stdout (and stderr unless streamed to the terminal for progress)."""
    args = list(argv)
    log.debug("$ %s", shlex.join(args))
    try:
        proc = subprocess.run(
            args,
            input=stdin,
            capture_output=not stream_stderr,
            stdout=subprocess.PIPE if stream_stderr else None,
            text=True,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise UserError(
            args[0], "command not found", f"install {args[0]} or put it on PATH"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise ToolError(args, -1, f"timed out after {timeout} s") from exc
    if check and proc.returncode != 0:
        raise ToolError(args, proc.returncode, proc.stderr or "")
    return proc
