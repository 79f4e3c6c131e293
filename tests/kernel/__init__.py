"""Tests of kernel/: the patch series, the build script, and crash cycles on its kernels."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

BUILD = Path(__file__).resolve().parents[2] / "kernel" / "build"


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
