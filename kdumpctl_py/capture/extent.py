"""Whether a dump file is as long as its own headers say: a copy cut short is called that.

A dump cut short (`head -c`, a full disk, an interrupted copy) otherwise fails
later and far from the cause: a page that does not decompress, a note that is
not there, or nothing at all. The ELF program headers, and the kdump-compressed
headers, bitmaps and page descriptors, say how long the file must be; only
headers and the descriptor table are read, never the pages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from kdumpctl_py.capture.kdumpfile import (
    DISK_DUMP_HEADER,
    PAGE_DESC,
    PAGE_DESC_DTYPE,
    SIGNATURE,
    SUB_HEADER,
)
from kdumpctl_py.elf import ELF_MAGIC, ELFCLASS64, PT_NOTE
from kdumpctl_py.facts.elfcore import EHDR, PHDR


@dataclass(frozen=True)
class Truncation:
    size: int  # bytes in the file
    expected: int  # bytes its headers describe (a lower bound unless exact)
    exact: bool
    in_headers: bool  # cut before its notes, bitmaps or page descriptors end

    def __str__(self) -> str:
        of = self.expected if self.exact else f"at least {self.expected}"
        return f"truncated at {self.size} of {of} bytes"


def truncation(path: str) -> Truncation | None:
    """How far short of its headers' length the dump at `path` is; None if whole, unreadable
    or not a dump this module knows."""
    return examine(path)[0]


def examine(path: str) -> tuple[Truncation | None, int | None]:
    """`truncation`, and the first page descriptor of a kdump-compressed file that no
    writer makes (data larger than a page, or at a negative offset), if any: libkdumpfile
    maps what a descriptor points at, and a reader of a huge one dies of SIGBUS."""
    bad = None
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if head.startswith(ELF_MAGIC + bytes([ELFCLASS64])):  # no 32-bit vmcores here
                need, exact, headers = _elf_extent(f.fileno(), size)
            elif head == SIGNATURE:
                need, exact, headers, bad = _kdump_extent(f.fileno(), size)
            else:
                return None, None
    except OSError:
        return None, None
    return (Truncation(size, need, exact, size < headers) if size < need else None), bad


def _elf_extent(fd: int, size: int) -> tuple[int, bool, int]:
    """The end of the furthest segment (or of the headers, if they are cut short), whether
    that is known exactly, and the end of the headers and notes."""
    ehdr = os.pread(fd, EHDR.size, 0)
    if len(ehdr) < EHDR.size:
        return EHDR.size, False, EHDR.size
    fields = EHDR.unpack(ehdr)
    phoff, phentsize, phnum = fields[5], fields[9], fields[10]
    table_end = phoff + phnum * phentsize
    if table_end > size or phentsize < PHDR.size:
        return max(table_end, size + 1), False, max(table_end, size + 1)
    raw = os.pread(fd, phnum * phentsize, phoff)
    ends, headers = [table_end], table_end
    for i in range(phnum):
        p_type, _, offset, _, _, filesz, _, _ = PHDR.unpack_from(raw, i * phentsize)
        ends.append(offset + filesz)
        if p_type == PT_NOTE:
            headers = max(headers, offset + filesz)
    return max(ends), True, headers


def _kdump_extent(fd: int, size: int) -> tuple[int, bool, int, int | None]:
    """The end of the furthest page, note or header block of a kdump-compressed file,
    whether that is known exactly, the end of everything but the pages, and the first
    damaged page descriptor (see `examine`)."""
    head = os.pread(fd, DISK_DUMP_HEADER.size, 0)
    if len(head) < DISK_DUMP_HEADER.size:
        return DISK_DUMP_HEADER.size, False, DISK_DUMP_HEADER.size, None
    block_size, sub_blocks, bm_blocks = DISK_DUMP_HEADER.unpack(head)[6:9]
    if block_size <= 0:  # damaged, not short: read_kdump says so
        return DISK_DUMP_HEADER.size, False, DISK_DUMP_HEADER.size, None
    sub = os.pread(fd, SUB_HEADER.size, block_size)
    if len(sub) < SUB_HEADER.size:
        return block_size + SUB_HEADER.size, False, block_size + SUB_HEADER.size, None
    fields = SUB_HEADER.unpack(sub)
    blocks_end = (1 + sub_blocks + bm_blocks) * block_size
    ends = [blocks_end, fields[5] + fields[6], fields[7] + fields[8], fields[9] + fields[10]]
    if blocks_end > size:
        return max(ends), False, max(ends), None
    half = bm_blocks * block_size // 2
    bitmap2 = np.frombuffer(os.pread(fd, half, (1 + sub_blocks) * block_size + half), np.uint8)
    dumped = int(np.unpackbits(bitmap2, bitorder="little")[:fields[-1]].sum())
    headers = max(*ends, blocks_end + dumped * PAGE_DESC.size)
    if headers > size:
        return headers, False, headers, None
    descs = np.frombuffer(os.pread(fd, dumped * PAGE_DESC.size, blocks_end), PAGE_DESC_DTYPE)
    damaged = np.flatnonzero((descs["size"] > block_size) | (descs["offset"] < 0))
    bad = int(damaged[0]) if len(damaged) else None
    good = descs if bad is None else np.delete(descs, damaged)
    pages_end = int((good["offset"] + good["size"].astype(np.int64)).max()) if len(good) else 0
    return max(headers, pages_end), True, headers, bad

