from __future__ import annotations

import io
import struct

import pytest

from kdumpctl_py.errors import UsageError
from kdumpctl_py.facts.kcore import NO_PADDR, PT_LOAD, PT_NOTE, parse_kcore


def note(name: bytes, ntype: int, desc: bytes) -> bytes:
    def pad(b: bytes) -> bytes:
        return b + b"\0" * (-len(b) % 4)

    return struct.pack("<III", len(name) + 1, len(desc), ntype) + pad(name + b"\0") + pad(desc)


def kcore_bytes(loads: list[tuple[int, int, int]], notes: bytes, tail: int = 4096) -> bytes:
    """A little-endian x86_64 ELF core: one PT_NOTE, then PT_LOADs (vaddr, paddr, size)."""
    phnum = 1 + len(loads)
    note_off = 64 + phnum * 56
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    ehdr = ident + struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, 64, 0, 0, 64, 56, phnum, 64, 0, 0)
    phdrs = struct.pack("<IIQQQQQQ", PT_NOTE, 0, note_off, 0, 0, len(notes), 0, 4)
    for vaddr, paddr, size in loads:
        phdrs += struct.pack("<IIQQQQQQ", PT_LOAD, 7, vaddr, vaddr, paddr, size, size, 4096)
    return ehdr + phdrs + notes + bytes(tail)


def test_layout_and_vmcoreinfo() -> None:
    notes = note(b"CORE", 1, bytes(336)) + note(b"VMCOREINFO", 0, b"PAGESIZE=4096\nOSRELEASE=6.1\n")
    loads = [(0xFFFF888000100000, 0x100000, 0x1000), (0xFFFFFFFF81000000, NO_PADDR, 4096)]
    data = kcore_bytes(loads, notes)
    k = parse_kcore(io.BytesIO(data))
    assert k.machine == 62 and k.little_endian
    assert [s.type for s in k.segments] == [PT_NOTE, PT_LOAD, PT_LOAD]
    assert k.linear_offsets == {0xFFFF888000000000}
    assert k.vmcoreinfo is not None and k.vmcoreinfo.osrelease == "6.1"
    assert [n.name for n in k.notes] == ["CORE", "VMCOREINFO"]
    assert k.skeleton_length == 64 + 3 * 56 + len(notes)
    # The skeleton alone parses to the same facts.
    assert parse_kcore(io.BytesIO(data[: k.skeleton_length])) == k


@pytest.mark.parametrize("data", [b"", b"\x7fELF", b"MZ" + bytes(200), bytes(64)])
def test_garbage_is_usage_error(data: bytes) -> None:
    with pytest.raises(UsageError):
        parse_kcore(io.BytesIO(data))
