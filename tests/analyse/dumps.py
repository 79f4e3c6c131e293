"""Real crash-cycle dumps on this machine, for the integration tests (never committed).

KDUMPCTL_VMCORES (default /root/vmcores) holds ARCH/dumps/*/vmcore as the VM
harness leaves them; the vmlinux with DWARF is whichever file under the
harness's cache (KDUMPCTL_VMLINUX_DIR, default ~/.cache/kdumpctl-py/vm/vmlinux)
has the dump's build ID. Tests skip when either is absent.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    format: str  # as the harness saved it: ELF or kdump-compressed


def _vmcoreinfo(vmcore: Path) -> tuple[str | None, str | None, str]:
    from kdumpctl_py.analyse.program import open_core

    _prog, fmt, info = open_core(str(vmcore))
    return info.build_id, info.osrelease, fmt


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
    bid, release, fmt = _vmcoreinfo(vmcore)
    return Dump(arch, vmcore, _vmlinux_ids().get(bid or ""), bid, release, fmt)


def need_dump(arch: str, vmlinux: bool = True) -> Dump:
    pytest.importorskip("drgn")
    dump = find_dump(arch)
    if dump is None:
        pytest.skip(f"no {arch} crash-cycle dump under {VMCORES}/{arch}/dumps")
    if vmlinux and dump.vmlinux is None:
        pytest.skip(f"no vmlinux with build ID {dump.build_id} under {VMLINUX_DIR}")
    return dump


def dump_as(dump: Dump, fmt: str, into: Path) -> Path:
    """The dump in format `fmt`: as saved, or an ELF one copied by makedumpfile -c -d 31
    (kdump-compressed, zlib); skips when that cannot be had."""
    if dump.format == fmt:
        return dump.vmcore
    if fmt != "kdump-compressed":
        pytest.skip(f"the {dump.arch} dump was saved {dump.format}; no {fmt} copy is made")
    if shutil.which("makedumpfile") is None:
        pytest.skip("makedumpfile is not installed")
    out = into / f"{dump.arch}.kdump"
    if not out.exists():
        r = subprocess.run(["makedumpfile", "-c", "-d", "31", str(dump.vmcore), str(out)],
                           capture_output=True, text=True)
        if r.returncode != 0:  # makedumpfile reads only its own host's arch
            pytest.skip(f"makedumpfile cannot compress the {dump.arch} dump: "
                        f"{r.stdout.strip()[-200:]}")
    return out


def assert_reads_like_the_kernel(report: dict[str, Any]) -> None:
    """An analyse --json report of a crash-cycle dump shows every CPU's backtrace (arm64
    marks the CPUs it stops offline), and each func+off/size whose function the log's own
    Call Trace names has the kernel's size: the distance to the next symbol."""
    cpus = report["cpus"]
    assert sorted(c["cpu"] for c in cpus) == list(range(report["cpus_present"])), cpus
    assert all(c["backtrace"] for c in cpus), cpus
    logged = {}
    for line in report["log"]["tail"]:
        for name, size in re.findall(r"\s([\w.]+)\+0x[0-9a-f]+/0x([0-9a-f]+)", line["text"]):
            logged[name] = int(size, 16)
    frames = report["backtrace"] + [f for c in cpus for f in c["backtrace"]]
    ours = {f["symbol"]: f["size"] for f in frames if f["size"] and f["symbol"] in logged}
    assert len(ours) >= 5, (logged, frames)
    assert ours == {name: logged[name] for name in ours}
