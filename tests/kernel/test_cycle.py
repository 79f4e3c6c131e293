"""VM tier: crash cycles on kernel/build's patched arm64 kernels, one per series.

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
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libfdt
import pytest

from tests.kernel import MARKER, REFUSALS
from tests.vm.cycles import Cycle, assert_good_dump
from tests.vm.harness.marker_dtb import MEMRESERVE

SERIES = ("7.3", "6.12")



def status(c: Cycle) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((c.out / "status.json").read_text())
    return data


def first_out(c: Cycle, stage: str) -> str:
    return (c.out / "results" / "first" / f"{stage}.out").read_text()


def build_info(image: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(image.with_name("build.json").read_text())
    return data


@pytest.mark.vm
@pytest.mark.parametrize("series", SERIES)
def test_patched_kernel_dumps_through_the_extended_call_with_our_dtb(
        series: str, kernel_cycles: Callable[..., Cycle],
        kernels: Callable[..., Path]) -> None:
    c = kernel_cycles(series)
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
    info = build_info(kernels(series))
    assert c.report["release"] == info["release"]
    # kernel/build compiled the series' objects again with W=1, with no warning on a
    # line the series adds (it fails the build otherwise).
    assert {"kernel/kexec_file.o", "drivers/of/kexec.o",
            "arch/arm64/kernel/machine_kexec_file.o"} <= set(info["w1_objects"])


@pytest.mark.vm
@pytest.mark.parametrize("series", SERIES)
def test_patched_kernel_refuses_bad_sets_and_changes_nothing(
        series: str, kernel_cycles: Callable[..., Cycle]) -> None:
    c = kernel_cycles(series)
    assert c.guest("check").get("rc") == 0, c.explain()
    abi = json.loads(first_out(c, "check"))
    assert abi["cases"] == REFUSALS
    assert abi["crash_loaded_before"] is False and abi["crash_loaded_after"] is False
    assert abi["types"] == "kernel initrd dtb"


@pytest.mark.vm
@pytest.mark.parametrize("series", SERIES)
def test_refused_loads_leave_the_loaded_capture_kernel_working(
        series: str, kernel_cycles: Callable[..., Cycle]) -> None:
    """Each bad extended load with a capture kernel loaded: refused, the kernel stays
    loaded, and it is the one that boots at the crash (its DTB's marker)."""
    c = kernel_cycles(series)
    assert c.guest("check-loaded").get("rc") == 0, c.explain()
    abi = json.loads(first_out(c, "check-loaded"))
    assert abi["cases"] == REFUSALS
    assert abi["crash_loaded_before"] is True and abi["crash_loaded_after"] is True
    assert_good_dump(c)
    marker = (c.out / "results" / "capture" / "capture-dt.out").read_bytes()
    assert marker.rstrip(b"\0\n") == MARKER.encode(), marker


@pytest.mark.vm
@pytest.mark.parametrize("series", SERIES)
def test_the_kselftest_passes_in_the_guest(series: str,
                                           kernel_cycles: Callable[..., Cycle]) -> None:
    c = kernel_cycles(series)
    tap = first_out(c, "selftest")
    assert c.guest("selftest").get("rc") == 0, tap
    plan = re.search(r"^1\.\.(\d+)$", tap, re.M)
    assert plan, tap
    oks = re.findall(r"^ok \d+ (.*)$", tap, re.M)
    assert len(oks) == int(plan.group(1)) and "not ok" not in tap, tap
    assert "# SKIP" not in tap, tap
    assert any("still loaded" in line for line in oks), tap


@pytest.mark.vm
@pytest.mark.parametrize("series", SERIES)
def test_the_capture_dtb_keeps_what_only_the_running_kernel_knows(
        series: str, kernel_cycles: Callable[..., Cycle]) -> None:
    """marker_dtb.py put a UEFI system table, an IMA buffer, a /reserved-memory
    node and a reservation of its own into the DTB; the running tree has none of
    them, so the capture kernel's DTB has none either, and keeps the marker."""
    c = kernel_cycles(series)
    fdt = libfdt.Fdt((c.out / "results" / "capture" / "capture.dtb").read_bytes())
    chosen = fdt.path_offset("/chosen")
    quiet = [libfdt.NOTFOUND]
    assert fdt.getprop(chosen, "kdumpctl-py,marker").as_str() == MARKER
    for name in ("linux,uefi-system-table", "linux,ima-kexec-buffer"):
        assert fdt.getprop(chosen, name, quiet) == -libfdt.NOTFOUND, name
    assert fdt.path_offset("/reserved-memory", quiet) == -libfdt.NOTFOUND
    reservations = [tuple(fdt.get_mem_rsv(i)) for i in range(fdt.num_mem_rsv())]
    assert MEMRESERVE not in reservations, reservations
    # What the kernel writes itself is there.
    assert fdt.getprop(chosen, "linux,elfcorehdr", quiet) != -libfdt.NOTFOUND
