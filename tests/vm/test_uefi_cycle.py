"""VM tier: arm64 on ACPI, as servers boot: Debian's qemu-efi-aarch64 on `-machine
virt,acpi=on` starts the kernel's EFI stub, which makes the only device tree there is
(/chosen with linux,uefi-*; no memory node). kdumpctl-py builds the capture DTB from it,
and the capture kernel must find its memory and ACPI tables through EFI again.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Callable

import pytest

from tests.vm.cycles import Cycle, assert_good_dump


@pytest.mark.vm
def test_arm64_acpi_cycle(cycles: Callable[..., Cycle]) -> None:
    c = cycles("--arch", "arm64", "--firmware", "uefi")
    assert_good_dump(c)
    assert c.result["firmware"] == "uefi"
    first = (c.out / "console-first.log").read_text(errors="replace")
    capture = (c.out / "console-capture.log").read_text(errors="replace")
    for log in (first, capture):
        # Booted through EFI with ACPI, never from a device tree's machine description.
        assert re.search(r"^\[ *[\d.]+\] efi: EFI v[\d.]+ by EDK II", log, re.M)
        assert re.search(r"^\[ *[\d.]+\] efi: .*ACPI 2\.0=0x", log, re.M)
        assert re.search(r"^\[ *[\d.]+\] ACPI: RSDP 0x", log, re.M)
        assert "Machine model:" not in log
    # The EFI memory map gave the capture kernel its memory, which
    # linux,usable-memory-range then capped to the crash region.
    nodes = re.findall(r"node   0: \[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\]", capture)
    reserved = re.search(r"crashkernel reserved: (0x[0-9a-f]+) - (0x[0-9a-f]+)", first)
    assert nodes and reserved
    crash = (int(reserved.group(1), 16), int(reserved.group(2), 16) - 1)
    ranges = [(int(a, 16), int(b, 16)) for a, b in nodes]
    assert crash in ranges
    # The rest are the EFI map's no-map regions (runtime services, firmware), which
    # memblock_cap_memory_range keeps: none may be the crashed kernel's System RAM.
    with tarfile.open(c.out / "snapshot.tar.gz") as tar:
        member = tar.extractfile("snapshot/proc/iomem")
        assert member is not None
        iomem = member.read().decode()
    ram = [(int(a, 16), int(b, 16)) for a, b in
           re.findall(r"^([0-9a-f]+)-([0-9a-f]+) : System RAM$", iomem, re.M)]
    for start, end in ranges:
        if (start, end) != crash:
            assert all(end < lo or start > hi for lo, hi in ram), (hex(start), hex(end))
