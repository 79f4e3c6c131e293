from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

from kdumpctl_py.elf import PT_LOAD, PT_NOTE
from kdumpctl_py.errors import UsageError
from kdumpctl_py.facts.elfcore import NO_PADDR, parse_elf_core
from tests.elfwriter import kcore_bytes, note


def test_layout_and_vmcoreinfo() -> None:
    notes = note(b"CORE", 1, bytes(336)) + note(b"VMCOREINFO", 0, b"PAGESIZE=4096\nOSRELEASE=6.1\n")
    loads = [(0xFFFF888000100000, 0x100000, 0x1000), (0xFFFFFFFF81000000, NO_PADDR, 4096)]
    data = kcore_bytes(loads, notes)
    k = parse_elf_core(io.BytesIO(data), "test core")
    assert k.machine == 62 and k.little_endian
    assert [s.type for s in k.segments] == [PT_NOTE, PT_LOAD, PT_LOAD]
    assert k.vmcoreinfo is not None and k.vmcoreinfo.osrelease == "6.1"
    assert [n.name for n in k.notes] == ["CORE", "VMCOREINFO"]
    assert k.skeleton_length == 64 + 3 * 56 + len(notes)
    # The skeleton alone parses to the same facts.
    assert parse_elf_core(io.BytesIO(data[: k.skeleton_length]), "skeleton") == k


@pytest.mark.parametrize("data", [b"", b"\x7fELF", b"MZ" + bytes(200), bytes(64)])
def test_garbage_is_usage_error(data: bytes) -> None:
    with pytest.raises(UsageError):
        parse_elf_core(io.BytesIO(data), "test core")


@pytest.mark.parametrize("phoff", [1 << 62, (1 << 63) - 1, 1 << 63, (1 << 64) - 1])
def test_offsets_no_file_can_have_are_truncation(tmp_path: Path, phoff: int) -> None:
    """A damaged header's offset past what the file system can seek to (EINVAL) or past
    2^63 is one error line, as a file cut short, not an OSError or a ValueError."""
    data = bytearray(kcore_bytes([(0xFFFF888000000000, 0, 0x1000)], b""))
    struct.pack_into("<Q", data, 32, phoff)  # e_phoff
    path = tmp_path / "core"
    path.write_bytes(bytes(data))
    with open(path, "rb") as f, pytest.raises(UsageError, match="truncated"):
        parse_elf_core(f, "test core")
