"""The kernel tests' fixtures: kernel/build's patched kernels and crash cycles on them.

The arm64-lsm cycle (test_lsm_cycle.py) is opt-in, KDUMPCTL_KERNEL_LSM=1: its kernel
is built with the network, audit and five security modules, a build of its own
(kernel/README.md has its cost), which the CI's hour has no room for. So is the
riscv64 cycle (test_cycle.py's riscv64-virt kernel), KDUMPCTL_KERNEL_RISCV64=1: a
kernel built from scratch and a riscv64 guest under TCG.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.kernel import ARCH, GUEST_ABI, MARKER, build_command
from tests.vm.cycles import CRASH_CYCLE, Cycle

BUILD_TIMEOUT_S = 60 * 60  # a cold build on a busy 2-core machine
CYCLE_TIMEOUT_S = 20 * 60
# The first kernel's probes these cycles do not look at (test_matrix.py skips them too).
UNUSED_STAGES = ("snapshot", "estimate")

collect_ignore = [] if os.environ.get("KDUMPCTL_KERNEL_LSM") == "1" else ["test_lsm_cycle.py"]


def build(*args: str) -> Path:
    """Run kernel/build and return the path it prints (an Image, or build.json)."""
    r = subprocess.run(build_command(*args), capture_output=True,
                       text=True, timeout=BUILD_TIMEOUT_S, check=False)
    assert r.returncode == 0, f"kernel/build {' '.join(args)} failed:\n{r.stderr[-3000:]}"
    return Path(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def kernels() -> Callable[..., Path]:
    """(series, profile) -> its built patched Image (vmlinux, kselftest and build.json
    beside it), built when first asked for."""
    images: dict[tuple[str, str], Path] = {}

    def get(series: str, profile: str = "arm64") -> Path:
        if (series, profile) not in images:
            images[series, profile] = build("--series", series, "--profile", profile)
        return images[series, profile]

    return get


@pytest.fixture(scope="session")
def kernel_cycles(tmp_path_factory: pytest.TempPathFactory,
                  kernels: Callable[..., Path]) -> Callable[..., Cycle]:
    """(series, profile) -> the crash cycle on that kernel, run once per session. The
    kselftest runs on every profile but arm64-lsm: its cycle sets an IMA policy that
    refuses the selftest's device trees too."""
    done: dict[tuple[str, str], Cycle] = {}

    def get(series: str, profile: str = "arm64") -> Cycle:
        if (series, profile) not in done:
            out = tmp_path_factory.mktemp(f"kernel-{series}-{profile}")
            image = kernels(series, profile)
            args = ["--arch", ARCH[profile], "--kernel-image", str(image),
                    "--check-script", str(GUEST_ABI), "--dtb-marker", MARKER,
                    *[a for stage in UNUSED_STAGES for a in ("--impl", f"{stage}=skip")]]
            if profile != "arm64-lsm":
                args += ["--selftest", str(image.with_name("test_kexec_fdset"))]
            with open(out / "crash-cycle.log", "wb") as log:
                rc = subprocess.run([sys.executable, str(CRASH_CYCLE), "--out", str(out), *args],
                                    stdout=log, stderr=subprocess.STDOUT,
                                    timeout=CYCLE_TIMEOUT_S, check=False).returncode
            result_path = out / "result.json"
            result = json.loads(result_path.read_text()) if result_path.exists() else {}
            done[series, profile] = Cycle(out, rc, result)
        return done[series, profile]

    return get
