"""VM tier: arm64 on ACPI, as servers boot: Debian's qemu-efi-aarch64 on `-machine
virt,acpi=on` starts the kernel's EFI stub, which makes the only device tree there is
(/chosen with linux,uefi-*; no memory node). kdumpctl-py builds the capture DTB from it,
and the capture kernel must find its memory and ACPI tables through EFI again.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable

import pytest

from tests.vm.cycles import (
    Cycle,
    assert_capture_memory_from_efi,
    assert_efi_acpi_boot,
    assert_good_dump,
)

UEFI = ("--arch", "arm64", "--firmware", "uefi")


@pytest.mark.vm
@pytest.mark.cycle(*UEFI)
def test_arm64_acpi_cycle(cycles: Callable[..., Cycle]) -> None:
    c = cycles(*UEFI)
    assert_good_dump(c)
    assert c.result["firmware"] == "uefi"
    first = (c.out / "console-first.log").read_text(errors="replace")
    capture = (c.out / "console-capture.log").read_text(errors="replace")
    for log in (first, capture):
        assert_efi_acpi_boot(log)
    with tarfile.open(c.out / "snapshot.tar.gz") as tar:
        member = tar.extractfile("snapshot/proc/iomem")
        assert member is not None
        iomem = member.read().decode()
    assert_capture_memory_from_efi(capture, iomem)
