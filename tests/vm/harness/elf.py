"""Just enough ELF64 reading for the guest build: DT_NEEDED, PT_INTERP, one section.

The harness runs on the host's plain Python, so this uses struct rather than
pyelftools. Only little-endian ELF64 is handled: both guest architectures are.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB, DT_RPATH, DT_RUNPATH = 0, 1, 5, 15, 29

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_DYN = struct.Struct("<qQ")


class NotElf64(ValueError):
    """The bytes are not a little-endian ELF64 file."""


@dataclass(frozen=True)
class Dynamic:
    """What the dynamic loader needs to run a file."""

    interp: str | None
    needed: tuple[str, ...]
    runpath: tuple[str, ...]
    machine: int


def is_elf(head: bytes) -> bool:
    return head[:4] == b"\x7fELF"


def _header(data: bytes) -> tuple[int, ...]:
    if len(data) < _EHDR.size or not is_elf(data) or data[4] != 2 or data[5] != 1:
        raise NotElf64("not a little-endian ELF64 file")
    return _EHDR.unpack_from(data, 0)


def _program_headers(data: bytes) -> tuple[list[tuple[int, int, int]], str | None,
                                           tuple[int, int] | None]:
    """(vaddr, offset, filesz) of each PT_LOAD, the PT_INTERP path, and PT_DYNAMIC's
    (offset, size)."""
    h = _header(data)
    phoff, phentsize, phnum = h[5], h[9], h[10]
    loads: list[tuple[int, int, int]] = []
    interp = None
    dynamic_at = None
    for i in range(phnum):
        p_type, _flags, off, vaddr, _pa, filesz, _memsz, _al = _PHDR.unpack_from(
            data, phoff + i * phentsize
        )
        if p_type == PT_LOAD:
            loads.append((vaddr, off, filesz))
        elif p_type == PT_INTERP:
            interp = data[off:off + filesz].split(b"\0", 1)[0].decode()
        elif p_type == PT_DYNAMIC:
            dynamic_at = off, filesz
    return loads, interp, dynamic_at


def dynamic(data: bytes) -> Dynamic:
    """Read PT_INTERP and the DT_NEEDED/RUNPATH strings of an executable or library."""
    machine = _header(data)[2]
    loads, interp, dynamic_at = _program_headers(data)
    if dynamic_at is None:
        return Dynamic(interp, (), (), machine)
    dyn_off, dyn_size = dynamic_at
    entries = [_DYN.unpack_from(data, dyn_off + i) for i in range(0, dyn_size, _DYN.size)]
    strtab_vaddr = next((v for t, v in entries if t == DT_STRTAB), None)
    if strtab_vaddr is None:
        return Dynamic(interp, (), (), machine)
    strtab = next(
        (off + strtab_vaddr - va for va, off, sz in loads if va <= strtab_vaddr < va + sz),
        None,
    )
    if strtab is None:
        raise NotElf64("DT_STRTAB is outside every PT_LOAD")

    def string(at: int) -> str:
        start = strtab + at
        return data[start:data.index(b"\0", start)].decode()

    needed, runpath = [], []
    for tag, val in entries:
        if tag == DT_NULL:
            break
        if tag == DT_NEEDED:
            needed.append(string(val))
        elif tag in (DT_RPATH, DT_RUNPATH):
            runpath += string(val).split(":")
    return Dynamic(interp, tuple(needed), tuple(runpath), machine)


def section(data: bytes, name: str) -> bytes | None:
    """The contents of the section called `name` (e.g. a module's .modinfo)."""
    h = _header(data)
    shoff, shentsize, shnum, shstrndx = h[6], h[11], h[12], h[13]
    if shoff == 0 or shnum == 0:
        return None
    headers = [_SHDR.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
    names_off = headers[shstrndx][4]
    for sh_name, _type, _flags, _addr, off, size, *_ in headers:
        start = names_off + sh_name
        if data[start:data.index(b"\0", start)].decode() == name:
            return data[off:off + size]
    return None


def modinfo(data: bytes) -> dict[str, list[str]]:
    """key=value pairs of a kernel module's .modinfo section (keys may repeat)."""
    info: dict[str, list[str]] = {}
    raw = section(data, ".modinfo") or b""
    for item in raw.split(b"\0"):
        key, sep, value = item.decode(errors="replace").partition("=")
        if sep:
            info.setdefault(key, []).append(value)
    return info
