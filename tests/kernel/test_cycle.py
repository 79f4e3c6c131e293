"""VM tier: crash cycles on kernel/build's patched arm64 kernels, one per series (and,
opt-in with KDUMPCTL_KERNEL_RISCV64=1, the 7.3 series' riscv64-virt kernel).

Each series (kernel/patches/7.3 on Debian's linux-source-7.3, kernel/patches/6.12
on linux-source-6.12) is built from one config fragment with its patches and its
kselftest, and the objects the series touches are compiled again with W=1 (a
warning on a line the series adds fails the build). kernel/build caches the
kernels (a cold build takes minutes, see kernel/README.md). Each cycle boots the
Image under QEMU with no modules, runs
`kdumpctl-py status`, guest_abi.py (stage `check`), `kdumpctl-py start --dtb`
with a DTB carrying a marker and what the merge rules drop (marker_dtb.py), then,
with that capture kernel loaded, guest_abi.py again (`check-loaded`) and the
kselftest (`selftest`): every refusal must leave the loaded kernel loaded. Then it
crashes: the capture kernel that boots is the one loaded first (its marker), and
the dump is saved and analysed with the build's vmlinux (no DWARF: the release,
the panic message and the kernel's own Call Trace come from VMCOREINFO, kallsyms
and the log).

Run with `pytest --vm tests/kernel`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libfdt
import pytest

from tests.kernel import ARCH, MARKER, REFUSALS
from tests.vm.cycles import Cycle, assert_good_dump
from tests.vm.harness.marker_dtb import MEMRESERVE, RESERVED_NODE

# (series, kernel/build profile): both series on arm64, and with
# KDUMPCTL_KERNEL_RISCV64=1 (opt-in, see conftest.py) 7.3 on riscv64.
CYCLES = [pytest.param("7.3", "arm64", id="7.3"), pytest.param("6.12", "arm64", id="6.12")]
if os.environ.get("KDUMPCTL_KERNEL_RISCV64") == "1":
    CYCLES.append(pytest.param("7.3", "riscv64-virt", id="7.3-riscv64"))



def status(c: Cycle) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((c.out / "status.json").read_text())
    return data


def first_out(c: Cycle, stage: str) -> str:
    return (c.out / "results" / "first" / f"{stage}.out").read_text()


def build_info(image: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(image.with_name("build.json").read_text())
    return data


@pytest.mark.vm
@pytest.mark.parametrize("series,profile", CYCLES)
def test_patched_kernel_dumps_through_the_extended_call_with_our_dtb(
        series: str, profile: str, kernel_cycles: Callable[..., Cycle],
        kernels: Callable[..., Path]) -> None:
    c = kernel_cycles(series, profile)
    assert_good_dump(c)
    s = status(c)
    assert s["load_paths"]["extended"] == "available"
    # status is given no device tree, so auto would load with the plain call; start --dtb
    # hands one over, through the extended call.
    assert s["method"] == "file", s["method_why"]
    assert "capture kernel loaded with extended" in first_out(c, "load")
    # The capture kernel booted with the DTB the guest passed: /chosen has the marker.
    marker = (c.out / "results" / "capture" / "capture-dt.out").read_bytes()
    assert marker.rstrip(b"\0\n") == MARKER.encode(), marker
    info = build_info(kernels(series, profile))
    assert c.report["release"] == info["release"]
    # kernel/build compiled the series' objects again with W=1, with no warning on a
    # line the series adds (it fails the build otherwise).
    arch = ARCH[profile].replace("riscv64", "riscv")
    assert {"kernel/kexec_file.o", "drivers/of/kexec.o",
            f"arch/{arch}/kernel/machine_kexec_file.o"} <= set(info["w1_objects"])


@pytest.mark.vm
@pytest.mark.parametrize("series,profile", CYCLES)
def test_patched_kernel_refuses_bad_sets_and_changes_nothing(
        series: str, profile: str, kernel_cycles: Callable[..., Cycle]) -> None:
    c = kernel_cycles(series, profile)
    assert c.guest("check").get("rc") == 0, c.explain()
    abi = json.loads(first_out(c, "check"))
    assert abi["cases"] == REFUSALS
    assert abi["crash_loaded_before"] is False and abi["crash_loaded_after"] is False
    assert abi["types"] == "kernel initrd dtb"


@pytest.mark.vm
@pytest.mark.parametrize("series,profile", CYCLES)
def test_refused_loads_leave_the_loaded_capture_kernel_working(
        series: str, profile: str, kernel_cycles: Callable[..., Cycle]) -> None:
    """Each bad extended load with a capture kernel loaded: refused, the kernel stays
    loaded, and it is the one that boots at the crash (its DTB's marker)."""
    c = kernel_cycles(series, profile)
    assert c.guest("check-loaded").get("rc") == 0, c.explain()
    abi = json.loads(first_out(c, "check-loaded"))
    assert abi["cases"] == REFUSALS
    assert abi["crash_loaded_before"] is True and abi["crash_loaded_after"] is True
    assert_good_dump(c)
    marker = (c.out / "results" / "capture" / "capture-dt.out").read_bytes()
    assert marker.rstrip(b"\0\n") == MARKER.encode(), marker


@pytest.mark.vm
@pytest.mark.parametrize("series,profile", CYCLES)
def test_the_kselftest_passes_in_the_guest(series: str, profile: str,
                                           kernel_cycles: Callable[..., Cycle]) -> None:
    c = kernel_cycles(series, profile)
    tap = first_out(c, "selftest")
    assert c.guest("selftest").get("rc") == 0, tap
    plan = re.search(r"^1\.\.(\d+)$", tap, re.M)
    assert plan, tap
    oks = re.findall(r"^ok \d+ (.*)$", tap, re.M)
    assert len(oks) == int(plan.group(1)) and "not ok" not in tap, tap
    assert "# SKIP" not in tap, tap
    assert any("still loaded" in line for line in oks), tap


@pytest.mark.vm
@pytest.mark.parametrize("series,profile", CYCLES)
def test_the_capture_dtb_keeps_what_only_the_running_kernel_knows(
        series: str, profile: str, kernel_cycles: Callable[..., Cycle]) -> None:
    """marker_dtb.py put a UEFI system table, an IMA buffer, a /reserved-memory
    node and a reservation of its own into the DTB; the running tree has none of
    them, so the capture kernel's DTB has none either, and keeps the marker."""
    c = kernel_cycles(series, profile)
    fdt = libfdt.Fdt((c.out / "results" / "capture" / "capture.dtb").read_bytes())
    chosen = fdt.path_offset("/chosen")
    quiet = [libfdt.NOTFOUND]
    assert fdt.getprop(chosen, "kdumpctl-py,marker").as_str() == MARKER
    for name in ("linux,uefi-system-table", "linux,ima-kexec-buffer"):
        assert fdt.getprop(chosen, name, quiet) == -libfdt.NOTFOUND, name
    # Our /reserved-memory child is gone; riscv64's running tree has the node (OpenSBI's).
    assert fdt.path_offset(RESERVED_NODE, quiet) == -libfdt.NOTFOUND
    if ARCH[profile] == "arm64":
        assert fdt.path_offset("/reserved-memory", quiet) == -libfdt.NOTFOUND
    reservations = [tuple(fdt.get_mem_rsv(i)) for i in range(fdt.num_mem_rsv())]
    assert MEMRESERVE not in reservations, reservations
    # What the kernel writes itself is there.
    assert fdt.getprop(chosen, "linux,elfcorehdr", quiet) != -libfdt.NOTFOUND
