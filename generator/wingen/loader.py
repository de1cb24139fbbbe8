"""Read a config file into a Config, turning every failure into one UserError line."""

from __future__ import annotations

import difflib
import re
import tomllib
from datetime import date, time
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from .config import Config, Model
from .errors import UserError
from .files import read_text


def load_config(path: Path) -> Config:
    text = read_text(path, "create one with `wingen init` or pass -c FILE")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(
            str(path), f"not valid TOML: {exc}", "fix the syntax at that line"
        ) from None
    return parse_config(data)


def config_dir(config: Path) -> Path:
    """Where the config's relative paths (the Cygwin lock) start: beside it, links not followed."""
    return config.absolute().parent


def parse_config(data: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise to_user_error(exc) from None


def parse_value(kind: Any, value: object, field: str) -> Any:
    """A command-line value checked by the type the config uses for it (one rule for both)."""
    try:
        return TypeAdapter(kind, config=Model.model_config).validate_python(value)
    except ValidationError as exc:
        raise to_user_error(exc, field) from None


def to_user_error(exc: ValidationError, where: str = "") -> UserError:
    """The first error of a ValidationError as field, problem (with the value) and fix."""
    err = exc.errors(include_url=False)[0]
    loc = [where] if where else []
    loc += [str(p) for p in err["loc"]]
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
    if kind in _EXPECTED:
        return _wrong_type(_field(loc), value, _EXPECTED[kind])
    if kind in ("string_too_short", "too_short") and ctx.get("min_length") == 1:
        return UserError(_field(loc), "is empty", "give a value or leave the field out")
    if kind in ("greater_than_equal", "less_than_equal"):
        low = kind == "greater_than_equal"
        limit = ctx["ge"] if low else ctx["le"]
        return UserError(
            _field(loc),
            f"{value!r} is {'below the minimum' if low else 'above the maximum'} of {limit}",
            f"use {limit} or {'more' if low else 'less'}",
        )
    return UserError(
        _field(loc), f"{value!r}: {err['msg']}", "see `wingen schema` for what it takes"
    )


# The types TOML values must have (strict: a quoted "4096" is not a number), by pydantic's error.
_EXPECTED: dict[str, tuple[str, type]] = {
    "int_type": ("a whole number", int),
    "bool_type": ("true or false", bool),
    "string_type": ("a string", str),
    "list_type": ("a list", list),
    "model_type": ("a table", dict),
    "dict_type": ("a table", dict),
}


def _wrong_type(field: str, value: object, expected: tuple[str, type]) -> UserError:
    name, kind = expected
    if isinstance(value, date | time):  # TOML's unquoted dates and times
        shown = value.isoformat()
        return UserError(
            field, f"{shown} is an unquoted date or time, not {name}", f'quote it: "{shown}"'
        )
    as_toml = {int: r"[+-]?[0-9]+", bool: "true|false"}.get(kind)
    if isinstance(value, str) and as_toml is not None and re.fullmatch(as_toml, value):
        return UserError(field, f"{value!r} is a string", f"write it without quotes: {value}")
    return UserError(field, f"{value!r} is {_toml_kind(value)}, not {name}", f"write {name}")


def _toml_kind(value: object) -> str:
    kinds = ((bool, "a boolean"), (int, "a number"), (float, "a decimal number"),
             (str, "a string"), (list, "a list"), (dict, "a table"))  # fmt: skip
    return next((name for kind, name in kinds if isinstance(value, kind)), type(value).__name__)


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
