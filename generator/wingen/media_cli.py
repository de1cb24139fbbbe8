"""Commands about install media (`wingen cygwin lock`, `wingen prefetch`), kept apart from cli.py."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the media commands to the main app."""
