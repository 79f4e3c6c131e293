from __future__ import annotations

import subprocess
from itertools import pairwise
from pathlib import Path

import pytest

from kdumpctl_py.errors import KdumpError, UsageError
from kdumpctl_py.facts.kernel_image import probe
from kdumpctl_py.facts.view import SystemView
from kdumpctl_py.plan.elfcorehdr import decode
from kdumpctl_py.plan.purgatory import arm64_purgatory
from kdumpctl_py.plan.segments import ClassicPlan, plan_classic
from tests.builders import arm64_image, arm64_snapshot, riscv_image
from tests.conftest import FIXTURES, SNAPSHOTS

BASE_DTB = (FIXTURES / "dtb/qemu-virt-arm64.dtb").read_bytes()


def plan(tmp_path: Path, initrd: bytes | None = b"\x07" * 5_000_000,
         image_size: int = 0x2000000) -> ClassicPlan:
    kernel = arm64_image(image_size)
    return plan_classic(arm64_snapshot(tmp_path), probe(kernel), kernel, initrd,
                        "console=ttyAMA0 reset_devices", BASE_DTB, lambda n: b"\x5a" * n)


def test_layout_follows_the_kernel_rules(tmp_path: Path) -> None:
    p = plan(tmp_path)
    names = [s.name for s in p.segments]
    assert names == ["kernel", "initrd", "dtb", "purgatory", "elfcorehdr"]
    region = p.region
    assert (region.start, region.end) == (0x6FE00000, 0x7FDFFFFF)
    kernel = p.segment("kernel")
    assert kernel.mem == 0x6FE00000 and kernel.memsz == 0x2000000  # 2 MiB aligned, text_offset 0
    for s in p.segments:
        assert s.mem % 4096 == 0 and s.memsz % 4096 == 0
        assert region.start <= s.mem and s.end <= region.end + 1
    ends = sorted((s.mem, s.end) for s in p.segments)
    assert all(a[1] <= b[0] for a, b in pairwise(ends))
    elf = p.segment("elfcorehdr")
    assert elf.end == region.end + 1  # top of the region
    assert decode(elf.data).loads  # a real header
    dtb = p.segment("dtb")
    assert dtb.mem // (2 << 20) == (dtb.mem + len(dtb.data) - 1) // (2 << 20)
    assert p.entry == p.segment("purgatory").mem
    assert p.segment("purgatory").data == arm64_purgatory(dtb.mem, kernel.mem)


def test_dtb_points_at_the_segments(tmp_path: Path) -> None:
    p = plan(tmp_path)
    dts = subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", "-"], input=p.dtb,
                         capture_output=True, check=True).stdout.decode()
    initrd, elf = p.segment("initrd"), p.segment("elfcorehdr")
    assert f"linux,initrd-start = <0x00 {initrd.mem:#010x}>" in dts
    assert f"linux,initrd-end = <0x00 {initrd.mem + 5_000_000:#010x}>" in dts
    assert f"linux,elfcorehdr = <0x00 {elf.mem:#010x} 0x00 {len(elf.data):#x}>" in dts
    assert "linux,usable-memory-range = <0x00 0x6fe00000 0x00 0x10000000>" in dts
    assert 'bootargs = "console=ttyAMA0 reset_devices"' in dts


def test_too_small_region_says_so(tmp_path: Path) -> None:
    with pytest.raises(KdumpError, match="crash region .* cannot hold"):
        plan(tmp_path, initrd=b"\0" * (250 << 20))


def test_riscv64_has_no_purgatory_and_its_dtb_is_the_first_fdt(tmp_path: Path) -> None:
    """machine_kexec_prepare() takes the first segment with an FDT header as the DTB and
    enters the Image's first byte; setup_bootmem() reserves the Image to 2 MiB."""
    view = SystemView(SNAPSHOTS / "debian13-riscv64")
    kernel = riscv_image(0x1E6C000)
    p = plan_classic(view, probe(kernel), kernel, b"\x07" * 5_000_000, "console=ttyS0",
                     None, lambda n: b"\x5a" * n)
    assert [s.name for s in p.segments] == ["kernel", "initrd", "dtb", "elfcorehdr"]
    k = p.segment("kernel")
    assert k.mem == p.region.start == 0xACC00000 == p.entry
    assert k.memsz == 0x2000000  # 0x1E6C000 rounded up to 2 MiB
    fdts = [s for s in p.segments if s.data[:4] == b"\xd0\x0d\xfe\xed"]
    assert fdts[0].name == "dtb"
    assert p.segment("initrd").mem == k.end


def test_riscv64_wants_a_riscv_image(tmp_path: Path) -> None:
    view = SystemView(SNAPSHOTS / "debian13-riscv64")
    kernel = arm64_image()
    with pytest.raises(UsageError, match="needs riscv image, not arm64-image"):
        plan_classic(view, probe(kernel), kernel, None, "", None)
