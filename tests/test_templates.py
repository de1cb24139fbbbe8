"""No template splices a raw value: every output expression ends in an escaping filter."""

from __future__ import annotations

import jinja2
from jinja2 import nodes

from wingen.escape import FILTERS
from wingen.render import environment, templates_dir

# Calls that produce already-escaped Nix (embed) are allowed as whole outputs.
ESCAPED_CALLS = {"embed"}


def _raw_outputs(source: str) -> list[str]:
    tree = environment().parse(source)
    # A macro's own outputs are checked where it is defined, so calling one is safe.
    safe_calls = ESCAPED_CALLS | {m.name for m in tree.find_all(nodes.Macro)}
    bad = []
    for output in tree.find_all(nodes.Output):
        for node in output.nodes:
            if isinstance(node, nodes.TemplateData):
                continue
            if isinstance(node, nodes.Filter) and node.name in FILTERS:
                continue
            if (
                isinstance(node, nodes.Call)
                and isinstance(node.node, nodes.Name)
                and node.node.name in safe_calls
            ):
                continue
            bad.append(f"line {node.lineno}")
    return bad


def test_every_template_escapes_every_value() -> None:
    names = environment().list_templates(extensions=["j2"])
    assert "default.nix.j2" in names
    problems = {}
    for name in names:
        source = (templates_dir() / name).read_text()
        raw = _raw_outputs(source)
        if raw:
            problems[name] = raw
    assert problems == {}


def test_the_checker_catches_a_raw_splice() -> None:
    assert _raw_outputs("x = {{ cfg.name }};") == ["line 1"]
    assert _raw_outputs("x = {{ cfg.name | upper }};") == ["line 1"]
    assert _raw_outputs("x = {{ cfg.name | nix_str }};") == []
    macro = "{% macro m(v) %}{{ v | xml }}{% endmacro %}"
    assert _raw_outputs(macro + "{{ m(cfg.name) }}") == []
    assert _raw_outputs("{% macro m(v) %}{{ v }}{% endmacro %}{{ m(1) }}") == ["line 1"]


def test_undefined_names_are_errors() -> None:
    try:
        environment().from_string("{{ nope | nix }}").render()
    except jinja2.UndefinedError:
        return
    raise AssertionError("StrictUndefined must refuse unknown names")
