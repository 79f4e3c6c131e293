"""Tests of kernel/: the patch series, the build script, and crash cycles on its kernels."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

from tests.lane import Job, Lane, Spawn, run
from tests.vm.cycles import Cycle, run_crash_cycle

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "kernel" / "build"


BUILD_TIMEOUT_S = 60 * 60  # a cold build on a busy 2-core machine
CYCLE_TIMEOUT_S = 20 * 60
# The first kernel's probes these cycles do not look at (test_matrix.py skips them too).
UNUSED_STAGES = ("snapshot", "estimate")


def build_job(series: str, profile: str, *args: str) -> Job:
    """The lane's job (tests/lane.py) for a patched build of kernel/build: the path it
    prints (an Image, or build.json). kernel/build caches what it built."""

    def job(spawn: Spawn) -> Path:
        argv = [sys.executable, str(BUILD), "--patched", "--series", series, "--profile",
                profile, *args]
        r = run(spawn, argv, BUILD_TIMEOUT_S, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True)
        assert r.returncode == 0, f"kernel/build {' '.join(argv[3:])} failed:\n{r.stderr[-3000:]}"
        return Path(r.stdout.strip().splitlines()[-1])

    return job


def cycle_job(series: str, profile: str, lane: Lane,
              tmp_path_factory: pytest.TempPathFactory) -> Job:
    """The lane's job for the crash cycle on a patched kernel, which it takes from the
    lane's build job. The kselftest runs on every profile but arm64-lsm: its cycle sets
    an IMA policy that refuses the selftest's device trees too."""

    def job(spawn: Spawn) -> Cycle:
        image: Path = lane.take(("kernel", series, profile))
        out = tmp_path_factory.mktemp(f"kernel-{series}-{profile}")
        args = ["--arch", ARCH[profile], "--kernel-image", str(image),
                "--check-script", str(GUEST_ABI), "--dtb-marker", MARKER,
                *[a for stage in UNUSED_STAGES for a in ("--impl", f"{stage}=skip")]]
        if profile != "arm64-lsm":
            args += ["--selftest", str(image.with_name("test_kexec_fdset"))]
        return run_crash_cycle(spawn, out, args, CYCLE_TIMEOUT_S)

    return job

# The guest's check script (crash-cycle --check-script) and the /chosen marker the
# cycles' DTB carries (--dtb-marker).
GUEST_ABI = Path(__file__).with_name("guest_abi.py")
MARKER = "issue-19.capture-dtb"
# The harness's architecture of each kernel/build profile the cycles boot.
ARCH = {"arm64": "arm64", "arm64-lsm": "arm64", "riscv64-virt": "riscv64"}

# What a kernel with the series answers to each refusal in guest_abi.py.
REFUSALS = {
    "null set (the probe)": "EFAULT",
    "more than 8 entries": "EINVAL",
    "unknown type": "EINVAL",
    "kernel twice": "EINVAL",
    "no kernel": "EINVAL",
    "kernel_fd argument": "EINVAL",
    "initrd_fd argument": "EINVAL",
    "with unload": "EINVAL",
    "no-initramfs with an initrd": "EINVAL",
    "negative fd": "EBADF",
    "closed fd": "EBADF",
    "closed kernel fd": "EBADF",
    "dtb not an fdt": "EINVAL",
    "dtb over 2 MiB": "EFBIG",
    "dtb shorter than its totalsize": "EINVAL",
    "dtb root without cells": "EINVAL",
}


@cache
def build_module() -> ModuleType:
    """kernel/build (a script without .py) imported as a module."""
    loader = importlib.machinery.SourceFileLoader("kernel_build", str(BUILD))
    spec = importlib.util.spec_from_loader("kernel_build", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["kernel_build"] = module
    loader.exec_module(module)
    return module
