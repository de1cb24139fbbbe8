"""vm.cpu_model: a portable named default, and a name that is no QEMU model name refused."""

from __future__ import annotations

import pytest

from wingen.config import VM
from wingen.errors import UserError
from wingen.loader import parse_config


def test_default_is_a_portable_named_model() -> None:
    assert VM().cpu_model == "Nehalem-v1"


@pytest.mark.parametrize("bad", ["Nehalem v1", "-cpu", "host,+vmx", "Nehalem-v1\n"])
def test_bad_cpu_model_names_the_field(bad: str) -> None:
    with pytest.raises(UserError) as info:
        parse_config({"guest": "linux", "vm": {"cpu_model": bad}})
    assert "vm.cpu_model" in str(info.value)
