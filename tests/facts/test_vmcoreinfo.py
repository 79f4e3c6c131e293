from __future__ import annotations

import pytest

from kdumpctl_py.errors import UsageError
from kdumpctl_py.facts.vmcoreinfo import parse_vmcoreinfo

TEXT = b"""OSRELEASE=6.1.0-27-cloud-arm64
BUILD-ID=0123abcd
PAGESIZE=4096
SYMBOL(_stext)=ffff800008010000
SIZE(page)=64
OFFSET(page.flags)=0
NUMBER(VA_BITS)=48
NUMBER(PG_offline)=-257
NUMBER(kimage_voffset)=0xffff7fffbfe00000
KERNELOFFSET=7b0000000
\0\0\0"""


def test_typed_access() -> None:
    vi = parse_vmcoreinfo(TEXT)
    assert vi.osrelease == "6.1.0-27-cloud-arm64"
    assert vi.page_size == 4096
    assert vi.symbol("_stext") == 0xFFFF800008010000
    assert vi.size("page") == 64
    assert vi.offset("page.flags") == 0
    assert vi.number("PG_offline") == -257
    assert vi.number("kimage_voffset") == 0xFFFF7FFFBFE00000
    assert vi.kernel_offset == 0x7B0000000
    assert vi.symbol("_text") is None


def test_bad_values_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        parse_vmcoreinfo(b"no equals sign\n")
    with pytest.raises(UsageError):
        _ = parse_vmcoreinfo(b"PAGESIZE=big\n").page_size
    with pytest.raises(UsageError):
        parse_vmcoreinfo(b"A=1\n" * 20000)
