"""ELF as the kernel writes it: the numbers every layer reads, and one reader of notes.

/proc/kcore, /proc/vmcore, the elfcorehdr we build, the ELF dumps we write and
vmlinux all share these; the kdump-compressed format carries ELF notes too.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

ELF_MAGIC = b"\x7fELF"
ELFCLASS64 = 2  # e_ident[4]
ELFDATA2LSB = 1  # e_ident[5]: little-endian
ET_CORE = 4
PT_LOAD = 1
PT_NOTE = 4
PF_RWX = 7
EM_X86_64 = 62
EM_AARCH64 = 183
EM_RISCV = 243
NT_PRSTATUS = 1  # name "CORE": one per CPU in a vmcore
NT_GNU_BUILD_ID = 3  # name "GNU": vmlinux's build ID


class Note(NamedTuple):
    """One ELF note: name, type and descriptor."""

    name: str
    type: int
    desc: bytes
    desc_offset: int = 0  # where desc starts in its note segment


def iter_notes(blob: bytes, little_endian: bool = True) -> Iterator[Note]:
    """The notes (Elf64_Nhdr, name and desc each padded to 4 bytes) of a bounded buffer.

    Sizes come from the file, so each is checked against what is left before
    anything is sliced. A zero header or the end of the buffer ends the list, as
    the kernel's vmcore code reads them; a note that runs past the end raises
    ValueError once the notes before it have been given.
    """
    header = struct.Struct("<III" if little_endian else ">III")
    off = 0
    while off + header.size <= len(blob):
        namesz, descsz, ntype = header.unpack_from(blob, off)
        if namesz == 0 and descsz == 0 and ntype == 0:
            return
        name_at = off + header.size
        desc_at = name_at + (namesz + 3) // 4 * 4
        if desc_at + descsz > len(blob):
            raise ValueError("a note runs past the end of its segment")
        name = blob[name_at:name_at + namesz].split(b"\0", 1)[0].decode("ascii", "replace")
        yield Note(name, ntype, blob[desc_at:desc_at + descsz], desc_at)
        off = desc_at + (descsz + 3) // 4 * 4


def notes_before_damage(blob: bytes, little_endian: bool = True) -> list[Note]:
    """The notes up to the first that runs past the end: what a reader that must go on
    (the build ID of a vmlinux, the registers of a damaged dump) can still use."""
    out: list[Note] = []
    try:
        out.extend(iter_notes(blob, little_endian))
    except ValueError:
        pass
    return out
