"""Test tiers: plain `pytest` runs the quick tier; `pytest --vm` adds QEMU crash cycles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SNAPSHOTS = FIXTURES / "snapshots"
SNAPSHOT_NAMES = sorted(p.name for p in SNAPSHOTS.iterdir() if p.is_dir())


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--vm", action="store_true", help="also run the VM tier (QEMU crash cycles)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--vm"):
        return
    skip = pytest.mark.skip(reason="VM tier: run with --vm")
    for item in items:
        if item.get_closest_marker("vm"):  # the marker, not the tests/vm directory's name
            item.add_marker(skip)


def expected_facts(name: str) -> dict[str, Any]:
    """What is known to be true of a fixture machine, written when it was captured."""
    result: dict[str, Any] = json.loads((SNAPSHOTS / f"{name}.expected.json").read_text())
    return result


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.robustness import tally

    lines = tally.summary()
    if lines:
        terminalreporter.section("robustness: inputs tried and faults injected")
        for line in lines:
            terminalreporter.write_line(line)
