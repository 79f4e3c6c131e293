"""Small ELF core files for tests: a /proc/kcore skeleton with chosen segments and notes."""

from __future__ import annotations

import struct

from kdumpctl_py.elf import PT_LOAD, PT_NOTE


def note(name: bytes, ntype: int, desc: bytes) -> bytes:
    def pad(b: bytes) -> bytes:
        return b + b"\0" * (-len(b) % 4)

    return struct.pack("<III", len(name) + 1, len(desc), ntype) + pad(name + b"\0") + pad(desc)


def _ehdr(machine: int, phnum: int) -> bytes:
    """Elf64_Ehdr of a little-endian ET_CORE with its program headers right after it."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    return ident + struct.pack("<HHIQQQIHHHHHH", 4, machine, 1, 0, 64, 0, 0, 64, 56, phnum,
                               64, 0, 0)


def kcore_bytes(loads: list[tuple[int, int, int]], notes: bytes, machine: int = 62,
                tail: int = 4096) -> bytes:
    """A little-endian ELF64 core: one PT_NOTE, then PT_LOADs given as (vaddr, paddr, size)."""
    phnum = 1 + len(loads)
    note_off = 64 + phnum * 56
    ehdr = _ehdr(machine, phnum)
    phdrs = struct.pack("<IIQQQQQQ", PT_NOTE, 0, note_off, 0, 0, len(notes), 0, 4)
    for vaddr, paddr, size in loads:
        phdrs += struct.pack("<IIQQQQQQ", PT_LOAD, 7, vaddr, vaddr, paddr, size, size, 4096)
    return ehdr + phdrs + notes + bytes(tail)


def vmcore_bytes(segments: list[tuple[int, int, bytes, int]], notes: bytes,
                 machine: int = 62) -> bytes:
    """An ELF64 vmcore: PT_NOTE, then PT_LOADs (vaddr, paddr, data, memsz) laid out after it."""
    phnum = 1 + len(segments)
    note_off = 64 + phnum * 56
    ehdr = _ehdr(machine, phnum)
    phdrs = struct.pack("<IIQQQQQQ", PT_NOTE, 0, note_off, 0, 0, len(notes), 0, 0)
    body = notes
    offset = note_off + len(notes)
    for vaddr, paddr, data, memsz in segments:
        phdrs += struct.pack("<IIQQQQQQ", PT_LOAD, 7, offset, vaddr, paddr, len(data), memsz, 0)
        body += data
        offset += len(data)
    return ehdr + phdrs + body
