"""The extended call's discovery: the kernel's list of fd types, read before any probe."""

from __future__ import annotations

from kdumpctl_py.load.extended import extended_from_types


def test_the_types_file_decides_without_a_call() -> None:
    assert extended_from_types("kernel initrd dtb") == "available"
    assert extended_from_types("kernel initrd dtb future") == "available"
    # A kernel that takes sets but no device tree offers nothing this project uses.
    assert extended_from_types("kernel initrd") == "missing"
    assert extended_from_types("") == "missing"
    # No file: the caller falls back to the errno probe.
    assert extended_from_types(None) is None
