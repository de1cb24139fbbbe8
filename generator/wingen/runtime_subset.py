"""The runtime as one stage needs it: only the modules its entry point imports, without comments,
docstrings or blank lines.

The install stage takes this instead of the whole runtime, so that upgrading wingen keeps an
installed guest (hours of Windows setup) unless code the install runs changed: an edit to a
comment or a docstring, to a module only later stages import (saved.py, outputs.py: they are
imported inside the functions that use them), or to wingen's version leaves it as it was.
Tracebacks from this copy have other line numbers than the source; its code is the same.

Only the standard library's tokenize and ast, whose positions do not change between Python
versions (an ast.unparse would: its output is not stable across them).
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Iterator, Mapping

PACKAGE = "wingen.runtime"


def module_imports(source: str) -> set[str]:
    """The runtime modules a module imports when it is loaded: its top-level imports, not those
    inside functions or under `if TYPE_CHECKING:` (annotations only)."""
    found: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE + "."):
            found.add((node.module or "").removeprefix(PACKAGE + ".").split(".")[0])
    return found


def closure(modules: Mapping[str, str], entry: str) -> list[str]:
    """The modules `entry` loads, itself included (names without .py), sorted."""
    seen: set[str] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in seen or name not in modules:
            continue
        seen.add(name)
        todo.extend(module_imports(modules[name]) - seen)
    return sorted(seen)


def stripped(source: str) -> str:
    """The module's code alone: comments, docstrings and blank lines out (a docstring that is a
    body's only statement becomes `...`)."""
    lines = source.splitlines()
    drop: set[int] = set()  # 0-based line numbers
    cut: dict[int, int] = {}  # line -> column a comment starts at
    inside: set[int] = set()  # lines a multi-line string goes on over: kept exactly
    for tok in _tokens(source):
        if tok.type == tokenize.COMMENT:
            cut[tok.start[0] - 1] = tok.start[1]
        elif tok.end[0] > tok.start[0] and tok.type not in (tokenize.NL, tokenize.NEWLINE):
            inside.update(range(tok.start[0], tok.end[0]))  # all but the string's first line
    for node, body in _docstrings(ast.parse(source)):
        first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
        if len(body) == 1:  # the body needs a statement: the docstring's place keeps one
            lines[first] = " " * node.col_offset + "..."
            drop.update(range(first + 1, last + 1))
        else:
            drop.update(range(first, last + 1))
    out = []
    for i, line in enumerate(lines):
        if i in drop:
            continue
        if i in cut:
            line = line[: cut[i]]
        if i in inside:
            out.append(line)
        elif line.strip():
            out.append(line.rstrip())
    return "\n".join(out) + "\n"


def subset(modules: Mapping[str, str], entry: str) -> dict[str, str]:
    """name.py -> stripped source, for the modules `entry` loads."""
    return {f"{name}.py": stripped(modules[name]) for name in closure(modules, entry)}


def _tokens(source: str) -> Iterator[tokenize.TokenInfo]:
    return tokenize.generate_tokens(io.StringIO(source).readline)


def _docstrings(tree: ast.Module) -> Iterator[tuple[ast.stmt, list[ast.stmt]]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            first = body[0] if body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                yield first, body
