"""The headers and notes of an ELF core file, never its data.

Two such files matter: /proc/kcore, the running kernel as an ELF core, whose
program headers give the linear map and whose notes carry VMCOREINFO; and a
vmcore, whose notes hold each CPU's registers and VMCOREINFO. A snapshot keeps
only the first `skeleton_length` bytes of /proc/kcore: the ELF header, the
program headers and the notes.
"""

from __future__ import annotations

import errno
import struct
from typing import BinaryIO, NamedTuple

from kdumpctl_py.elf import (
    ELF_MAGIC,
    ELFCLASS64,
    ELFDATA2LSB,
    ET_CORE,
    PT_LOAD,
    PT_NOTE,
    Note,
    iter_notes,
)
from kdumpctl_py.errors import UsageError
from kdumpctl_py.facts.vmcoreinfo import VmcoreInfo, parse_vmcoreinfo

# Notes of /proc/kcore are a few KiB; refuse absurd sizes from a damaged file.
MAX_NOTES = 1 << 20
NO_PADDR = (1 << 64) - 1  # kcore marks non-linear segments with p_paddr = -1


class Segment(NamedTuple):
    """One Elf64_Phdr."""

    type: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    flags: int = 0
    align: int = 0


EHDR = struct.Struct("<16sHHIQQQIHHHHHH")  # Elf64_Ehdr, little-endian
ELF_INCOMPLETE = 1  # e_flags of a dump cut short (makedumpfile's convention)
PHDR = struct.Struct("<IIQQQQQQ")  # Elf64_Phdr


def pack_core(machine: int, segments: list[Segment], e_flags: int = 0) -> bytes:
    """An ELF64 little-endian ET_CORE header with its program headers right after it."""
    ident = ELF_MAGIC + bytes([ELFCLASS64, ELFDATA2LSB, 1, 0]) + bytes(8)  # EV_CURRENT, SYSV
    out = EHDR.pack(ident, ET_CORE, machine, 1, 0, EHDR.size, 0, e_flags, EHDR.size, PHDR.size,
                    len(segments), 0, 0, 0)
    return out + b"".join(PHDR.pack(p.type, p.flags, p.offset, p.vaddr, p.paddr, p.filesz,
                                    p.memsz, p.align) for p in segments)


class ElfCore(NamedTuple):
    """An ELF core file's headers: machine, byte order, segments and notes."""

    machine: int
    little_endian: bool
    segments: tuple[Segment, ...]
    notes: tuple[Note, ...]
    skeleton_length: int

    @property
    def loads(self) -> list[Segment]:
        return [s for s in self.segments if s.type == PT_LOAD]

    @property
    def vmcoreinfo(self) -> VmcoreInfo | None:
        for note in self.notes:
            if note.name == "VMCOREINFO":
                return parse_vmcoreinfo(note.desc)
        return None


def parse_elf_core(stream: BinaryIO, what: str, read_notes: bool = True) -> ElfCore:
    """Read the ELF header, program headers and notes of a core file (or its skeleton).

    Without `read_notes` the notes are not looked for in the file: an
    elfcorehdr's PT_NOTEs point at physical memory, not into the file.

    Only ELF64 little-endian ET_CORE files exist here (the kernel writes no
    other), so the two fixed-size headers are unpacked directly: pyelftools
    costs 70 ms to import on the path of every `start`, and the tests read the
    same files back with it.
    """
    head = stream.read(EHDR.size)
    if len(head) < EHDR.size or head[:4] != ELF_MAGIC:
        raise UsageError(f"{what} is not an ELF file")
    if head[4] != ELFCLASS64 or head[5] != ELFDATA2LSB:
        raise UsageError(f"{what} is not a 64-bit little-endian ELF core file")
    _, e_type, machine, _, _, phoff, _, _, _, phentsize, phnum, _, _, _ = EHDR.unpack(head)
    if e_type != ET_CORE:
        raise UsageError(f"{what} is not an ELF core file (e_type {e_type})")
    if phnum and phentsize != PHDR.size:
        raise UsageError(f"{what}: program headers of {phentsize} bytes, not {PHDR.size}")
    table = _read_at(stream, phoff, phnum * PHDR.size)
    if len(table) < phnum * PHDR.size:
        raise UsageError(f"{what} is truncated in its program headers")
    segments: list[Segment] = []
    notes: list[Note] = []
    end = phoff + phnum * PHDR.size
    for i in range(phnum):
        ptype, flags, off, vaddr, paddr, filesz, memsz, align = PHDR.unpack_from(table,
                                                                                 i * PHDR.size)
        segments.append(Segment(ptype, off, vaddr, paddr, filesz, memsz, flags, align))
        if ptype == PT_NOTE and read_notes:
            if filesz > MAX_NOTES:
                raise UsageError(f"{what}: note segment of {filesz} bytes is implausible")
            blob = _read_at(stream, off, filesz)
            if len(blob) < filesz:
                raise UsageError(f"{what} is truncated in its notes")
            notes.extend(parse_notes(blob, what))
            end = max(end, off + filesz)
    return ElfCore(machine, True, tuple(segments), tuple(notes), end)


def _read_at(stream: BinaryIO, offset: int, size: int) -> bytes:
    """`size` bytes at `offset`, fewer where the file ends first, none at an offset no file
    can have (past 2^63, or past the file system's largest file: EINVAL): a damaged
    header's offsets are then "truncated", as any other past the end."""
    try:
        stream.seek(offset)
    except (OverflowError, ValueError):
        return b""
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        return b""
    return stream.read(size)


def parse_notes(blob: bytes, what: str) -> list[Note]:
    """The notes of a vmcore or kcore note segment; one error line naming `what` if damaged."""
    try:
        return list(iter_notes(blob))
    except ValueError as e:
        raise UsageError(f"{what}: {e}") from None

