"""The kernel tests' fixtures: kernel/build's patched kernels and crash cycles on them.

The arm64-lsm cycle (test_lsm_cycle.py) is opt-in, KDUMPCTL_KERNEL_LSM=1: its kernel
is built with the network, audit and five security modules, a build of its own
(kernel/README.md has its cost), which the CI's hour has no room for. So is the
riscv64 cycle (test_cycle.py's riscv64-virt kernel), KDUMPCTL_KERNEL_RISCV64=1: a
kernel built from scratch and a riscv64 guest under TCG.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.kernel import build_module
from tests.lane import Lane
from tests.vm.cycles import Cycle

collect_ignore = [] if os.environ.get("KDUMPCTL_KERNEL_LSM") == "1" else ["test_lsm_cycle.py"]


@pytest.fixture(scope="session")
def kernels(lane: Lane) -> Callable[..., Path]:
    """(series, profile) -> its built patched Image (vmlinux, kselftest and build.json
    beside it), built when first asked for, or ahead by the VM tier's lane."""
    return lambda series, profile="arm64": lane.take(("kernel", series, profile))


@pytest.fixture(scope="session")
def kernel_objects(lane: Lane) -> Callable[[str, str], Path]:
    """(series, profile) -> the build.json of a build of the series' objects only."""
    return lambda series, profile: lane.take(("objects", series, profile))


@pytest.fixture(scope="session")
def kernel_source(request: pytest.FixtureRequest, lane: Lane) -> Callable[[str], Path]:
    """series -> kernel/build's unpacked linux-source, with checkpatch. With --vm the
    lane's arm64 build of the series unpacks it first; without, the test skips unless a
    build has left it in the cache."""

    def get(series: str) -> Path:
        if request.config.getoption("--vm"):
            lane.take(("kernel", series, "arm64"))
        package = f"linux-source-{series}"
        trees = sorted((build_module().cache_root() / package / "src").glob(f"*/{package}"))
        trees = [t for t in trees if (t / "scripts" / "checkpatch.pl").exists()]
        if not trees:
            pytest.skip(f"no unpacked {package}: run kernel/build --series {series}")
        source: Path = trees[-1]
        return source

    return get


@pytest.fixture(scope="session")
def kernel_cycles(lane: Lane) -> Callable[..., Cycle]:
    """(series, profile) -> the crash cycle on that kernel, run once per session."""
    return lambda series, profile="arm64": lane.take(("kernel-cycle", series, profile))
