"""The VM tier's shared fixture: crash cycles run once per session and argument set."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.vm.cycles import Cycle, make_cycles


@pytest.fixture(scope="session")
def cycles(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Cycle]:
    """Run a cycle for a set of arguments once per session; later calls reuse it."""
    return make_cycles(tmp_path_factory)
