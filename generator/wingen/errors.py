"""One error root; the CLI maps these to exit codes, nothing else does."""

from __future__ import annotations


class WingenError(Exception):
    """Any failure wingen reports to its user."""


class UserError(WingenError):
    """Bad input: names the field, the problem and how to fix it (exit code 2)."""

    def __init__(self, field: str, problem: str, fix: str) -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(f"{field}: {problem} ({fix})")


class ToolError(WingenError):
    """An external command failed; carries argv, exit code and the tail of its stderr."""

    def __init__(self, argv: list[str], returncode: int, stderr: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
        tail = " | ".join(stderr.strip().splitlines()[-5:])
        super().__init__(f"{argv[0]} exited with {returncode}: {tail or 'no output'}")
