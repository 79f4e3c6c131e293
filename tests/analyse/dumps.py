"""Real crash-cycle dumps on this machine, for the integration tests (never committed).

KDUMPCTL_VMCORES (default /root/vmcores) holds ARCH/dumps/*/vmcore as the VM
harness leaves them; the vmlinux with DWARF is whichever file under the
harness's cache (KDUMPCTL_VMLINUX_DIR, default ~/.cache/kdumpctl-py/vm/vmlinux)
has the dump's build ID. Tests skip when either is absent.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from kdumpctl_py.analyse.debuginfo import elf_build_id

VMCORES = Path(os.environ.get("KDUMPCTL_VMCORES", "/root/vmcores"))
VMLINUX_DIR = Path(os.environ.get(
    "KDUMPCTL_VMLINUX_DIR", os.path.expanduser("~/.cache/kdumpctl-py/vm/vmlinux")))
ARCHES = ("x86", "arm64")


@dataclass(frozen=True)
class Dump:
    arch: str
    vmcore: Path
    vmlinux: Path | None
    build_id: str | None
    release: str | None


def _vmcoreinfo(vmcore: Path) -> tuple[str | None, str | None]:
    from kdumpctl_py.capture.vmcore import Vmcore

    with Vmcore(str(vmcore)) as v:
        return v.vmcoreinfo.build_id, v.vmcoreinfo.osrelease


@functools.cache
def _vmlinux_ids() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted(VMLINUX_DIR.glob("*/vmlinux")):
        try:
            bid = elf_build_id(path)
        except (OSError, ValueError):
            continue
        if bid:
            out[bid] = path
    return out


@functools.cache
def find_dump(arch: str) -> Dump | None:
    found = sorted((VMCORES / arch / "dumps").glob("*/vmcore"))
    if not found:
        return None
    vmcore = found[-1]
    bid, release = _vmcoreinfo(vmcore)
    return Dump(arch, vmcore, _vmlinux_ids().get(bid or ""), bid, release)


def need_dump(arch: str, vmlinux: bool = True) -> Dump:
    pytest.importorskip("drgn")
    dump = find_dump(arch)
    if dump is None:
        pytest.skip(f"no {arch} crash-cycle dump under {VMCORES}/{arch}/dumps")
    if vmlinux and dump.vmlinux is None:
        pytest.skip(f"no vmlinux with build ID {dump.build_id} under {VMLINUX_DIR}")
    return dump


def compressed_copy(dump: Dump, into: Path) -> Path:
    """The dump as makedumpfile -c -d 31 writes it (kdump-compressed, zlib)."""
    if shutil.which("makedumpfile") is None:
        pytest.skip("makedumpfile is not installed")
    out = into / f"{dump.arch}.kdump"
    if not out.exists():
        subprocess.run(["makedumpfile", "-c", "-d", "31", str(dump.vmcore), str(out)],
                       check=True, capture_output=True)
    return out
