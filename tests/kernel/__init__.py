"""Tests of kernel/: the patch series, the build script, and crash cycles on its kernels."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "kernel" / "build"


def build_command(*args: str) -> list[str]:
    """kernel/build's command line for a patched build with `args` (series, profile, ...)."""
    return [sys.executable, str(BUILD), "--patched", *args]

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
