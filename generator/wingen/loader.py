"""Read a config file into a Config, turning every failure into one UserError line."""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .config import Config
from .errors import UserError


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(
            str(path), "no such file", "create one with `wingen init` or pass -c FILE"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(
            str(path), f"cannot be read: {reason}", "check the path and its permissions"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(
            str(path), f"not valid TOML: {exc}", "fix the syntax at that line"
        ) from None
    return parse_config(data)


def parse_config(data: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise to_user_error(exc, data) from None


def to_user_error(exc: ValidationError, data: dict[str, Any]) -> UserError:
    """The first error of a ValidationError as field, problem (with the value) and fix."""
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err["loc"]]
    ctx = err.get("ctx") or {}
    kind = err["type"]
    value = err.get("input")
    if kind == "wingen":
        if "at" in ctx:
            loc = [*loc, ctx["at"]]
        return UserError(_field(loc), ctx["problem"], ctx["fix"])
    if kind == "extra_forbidden":
        parent = _known_fields(loc[:-1])
        close = difflib.get_close_matches(loc[-1], parent, n=1)
        fix = (
            f"did you mean {close[0]!r}?"
            if close
            else "remove it; `wingen schema` lists the fields"
        )
        return UserError(_field(loc), "unknown field", fix)
    if kind == "missing":
        return UserError(_field(loc), "is required", "add it; `wingen init` writes an example")
    if kind == "literal_error":
        return UserError(_field(loc), f"{value!r} is not allowed", f"use one of {ctx['expected']}")
    return UserError(
        _field(loc), f"{value!r}: {err['msg']}", "see `wingen schema` for what it takes"
    )


def _field(loc: list[str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "config"


def _known_fields(loc: list[str]) -> list[str]:
    """Field names of the model at `loc`, for "did you mean" hints."""
    model: Any = Config
    for part in loc:
        if part.isdigit():
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        ann = field.annotation
        for arg in getattr(ann, "__args__", (ann,)):
            if hasattr(arg, "model_fields"):
                model = arg
                break
        else:
            return []
    return list(model.model_fields)
