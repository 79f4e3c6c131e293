"""The command line's seams are typed: each module's register() takes the Commands action."""

from __future__ import annotations

import importlib

import pytest

from kdumpctl_py.cli import COMMANDS


@pytest.mark.parametrize("name", COMMANDS)
def test_register_takes_commands(name: str) -> None:
    module = importlib.import_module(f"kdumpctl_py.cli.{name.replace('-', '_')}")
    assert module.register.__annotations__ == {"sub": "Commands", "return": "None"}
