"""makedumpfile's kdump-compressed format ("KDUMP   ", header version 6), read and written.

Layout (makedumpfile IMPLEMENTATION, diskdump_mod.h), in blocks of the page size:
block 0 struct disk_dump_header; block 1 struct kdump_sub_header followed by
the ELF notes (VMCOREINFO among them); then the 1st bitmap (page exists) and
the 2nd bitmap (page dumped), each padded to whole blocks; then one
page_desc per dumped page, then the page data. Zero pages share one
descriptor pointing at a single zero page written first. Bitmaps are LSB
first. An unfinished dump carries DUMP_DH_COMPRESSED_INCOMPLETE in status.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

import numpy as np

from kdumpctl_py.arch import ELF_MACHINES
from kdumpctl_py.capture.bitmaps import PageBitmaps, Written
from kdumpctl_py.capture.compress import (
    DUMP_DH_COMPRESSED_LZO,
    DUMP_DH_COMPRESSED_ZLIB,
    DUMP_DH_COMPRESSED_ZSTD,
)
from kdumpctl_py.capture.dumpdir import uts_field
from kdumpctl_py.errors import UsageError

if TYPE_CHECKING:  # numpy.typing takes a second to import in a TCG capture kernel
    import numpy.typing as npt

SIGNATURE = b"KDUMP   "
HEADER_VERSION = 6
# struct disk_dump_header on 64-bit: signature, header_version, new_utsname
# (6 x 65 bytes), pad, timeval, then nine 32-bit fields; 464 bytes with padding.
DISK_DUMP_HEADER = struct.Struct("<8si390s6xqqIiiIIIIIIi")
DISK_DUMP_HEADER_SIZE = 464
# struct kdump_sub_header on 64-bit: 104 bytes.
SUB_HEADER = struct.Struct("<QiiQQqQqQqQQQQ")
# Page data handed to the kernel's writeback at a time. Each POSIX_FADV_DONTNEED drains
# every CPU's page lists: asked after every chunk (about 130 KiB of zlib data), a 4 GiB
# machine's saves in one process took 248 ms against 231 with 2 MiB steps and 226 with
# 8 MiB (40 each, one thread); 2 % of a 64 GiB one's as a process. The page cache holds
# at most twice this of the dump.
WRITE_BEHIND = 4 << 20
PAGE_DESC = struct.Struct("<qIIQ")  # offset, size, flags, page_flags: 24 bytes

DUMP_DH_COMPRESSED_INCOMPLETE = 0x8
DUMP_DH_EXCLUDED_VMEMMAP = 0x10

PAGE_DESC_DTYPE = np.dtype([("offset", "<i8"), ("size", "<u4"), ("flags", "<u4"),
                            ("page_flags", "<u8")])


class DiskDumpHeader(NamedTuple):
    """struct disk_dump_header, the first block of a kdump-compressed file."""

    utsname: bytes  # 390 bytes: sysname, nodename, release, version, machine, domainname
    timestamp: tuple[int, int]
    status: int
    block_size: int
    sub_hdr_size: int
    bitmap_blocks: int
    max_mapnr: int
    nr_cpus: int
    header_version: int = HEADER_VERSION

    def pack(self) -> bytes:
        raw = DISK_DUMP_HEADER.pack(
            SIGNATURE, self.header_version, self.utsname, self.timestamp[0], self.timestamp[1],
            self.status, self.block_size, self.sub_hdr_size, self.bitmap_blocks,
            min(self.max_mapnr, 0xFFFFFFFF), 0, 0, 0, 0, self.nr_cpus)
        return raw.ljust(DISK_DUMP_HEADER_SIZE, b"\0")

    @property
    def release(self) -> str:
        return uts_field(self.utsname, 2)

    @property
    def machine(self) -> str:
        return uts_field(self.utsname, 4)


class SubHeader(NamedTuple):
    """struct kdump_sub_header, the block after it."""

    phys_base: int
    dump_level: int
    offset_vmcoreinfo: int
    size_vmcoreinfo: int
    offset_note: int
    size_note: int
    offset_eraseinfo: int
    size_eraseinfo: int
    max_mapnr: int

    def pack(self) -> bytes:
        # phys_base is an unsigned long in makedumpfile's header; on x86_64 with KASLR
        # VMCOREINFO's NUMBER(phys_base) is negative whenever the virtual offset
        # exceeds the physical one: store its two's complement, as makedumpfile does.
        return SUB_HEADER.pack(self.phys_base & 0xFFFFFFFFFFFFFFFF, self.dump_level, 0, 0, 0,
                               self.offset_vmcoreinfo,
                               self.size_vmcoreinfo, self.offset_note, self.size_note,
                               self.offset_eraseinfo, self.size_eraseinfo, 0, 0, self.max_mapnr)


def bitmap_blocks(max_mapnr: int, block_size: int) -> int:
    """Blocks for both bitmaps: each is max_mapnr bits rounded up to whole blocks."""
    nbytes = -(-max_mapnr // 8)
    return 2 * -(-nbytes // block_size)


@dataclass
class KdumpFile:
    """A kdump-compressed file opened for reading (headers, bitmaps, page descriptors)."""

    header: DiskDumpHeader
    sub: SubHeader
    notes: bytes
    bitmap1: npt.NDArray[np.bool_]
    bitmap2: npt.NDArray[np.bool_]
    descs_offset: int

    @property
    def incomplete(self) -> bool:
        return bool(self.header.status & DUMP_DH_COMPRESSED_INCOMPLETE)


def read_headers(f: BinaryIO, path: str) -> tuple[DiskDumpHeader, SubHeader]:
    """The two headers of the kdump-compressed file open as `f`, checked against each other.

    Nothing past the sub-header is read, so a dump cut short later still gives its notes."""
    head = f.read(DISK_DUMP_HEADER_SIZE)
    if head[:8] != SIGNATURE:
        raise UsageError(f"{path} is not a kdump-compressed file (no KDUMP signature)")
    if len(head) < DISK_DUMP_HEADER.size:
        raise UsageError(f"{path} is a kdump-compressed file cut short in its header")
    (_, version, uts, sec, usec, status, block_size, sub_blocks, bm_blocks, _, _, _,
     _, _, nr_cpus) = DISK_DUMP_HEADER.unpack_from(head)
    if version < 6 or block_size <= 0 or block_size & (block_size - 1) or block_size > 1 << 20:
        raise UsageError(f"{path}: unsupported header (version {version}, block size "
                         f"{block_size})")
    f.seek(block_size)
    sub_raw = f.read(SUB_HEADER.size)
    if len(sub_raw) < SUB_HEADER.size:
        raise UsageError(f"{path} is truncated in its sub-header")
    (phys_base, level, _, _, _, off_vi, size_vi, off_note, size_note, off_erase, size_erase,
     _, _, mapnr) = SUB_HEADER.unpack(sub_raw)
    if (size_note > sub_blocks * block_size or bm_blocks % 2
            or mapnr > bm_blocks * block_size * 4):
        raise UsageError(f"{path}: header sizes do not agree with each other")
    header = DiskDumpHeader(uts, (sec, usec), status, block_size, sub_blocks, bm_blocks, mapnr,
                            nr_cpus, version)
    sub = SubHeader(phys_base, level, off_vi, size_vi, off_note, size_note, off_erase, size_erase,
                    mapnr)
    return header, sub


def marked_incomplete(path: str) -> bool:
    """Whether `path` is a dump whose header says it is unfinished (a save cut short: a
    crash or power loss in the capture kernel): a kdump-compressed file's status, or an ELF
    file's e_flags bit 0 (makedumpfile's mark, and capture.elfdump's). Its first bytes
    alone are read."""
    from kdumpctl_py.elf import ELF_MAGIC
    from kdumpctl_py.facts.elfcore import EHDR, ELF_INCOMPLETE

    try:
        with open(path, "rb") as f:
            head = f.read(max(DISK_DUMP_HEADER.size, EHDR.size))
    except OSError:
        return False
    if head.startswith(SIGNATURE) and len(head) >= DISK_DUMP_HEADER.size:
        return bool(DISK_DUMP_HEADER.unpack_from(head)[5] & DUMP_DH_COMPRESSED_INCOMPLETE)
    return (head.startswith(ELF_MAGIC) and len(head) >= EHDR.size
            and bool(EHDR.unpack_from(head)[7] & ELF_INCOMPLETE))


def read_kdump(path: str) -> KdumpFile:
    """Read the headers and bitmaps of a kdump-compressed file (not the pages)."""
    with open(path, "rb") as f:
        header, sub = read_headers(f, path)
        block_size, sub_blocks = header.block_size, header.sub_hdr_size
        half = header.bitmap_blocks * block_size // 2
        size = os.fstat(f.fileno()).st_size
        if (sub.offset_note + sub.size_note > size
                or (1 + sub_blocks) * block_size + 2 * half > size):
            raise UsageError(f"{path} is truncated before the end of its bitmaps")
        f.seek(sub.offset_note)
        notes = f.read(sub.size_note)
        f.seek((1 + sub_blocks) * block_size)
        raw = f.read(2 * half)
        if len(raw) < 2 * half:
            raise UsageError(f"{path} is truncated in its bitmaps")
    mapnr = header.max_mapnr
    bm1 = np.unpackbits(np.frombuffer(raw[:half], np.uint8), bitorder="little")[:mapnr]
    bm2 = np.unpackbits(np.frombuffer(raw[half:], np.uint8), bitorder="little")[:mapnr]
    return KdumpFile(header, sub, notes, bm1.astype(bool), bm2.astype(bool),
                     (1 + sub_blocks + header.bitmap_blocks) * block_size)


class KdumpWriter:
    """Lay out a kdump-compressed file and fill it in page chunks, descriptors included.

    The header goes out first marked incomplete and is rewritten complete at
    the end, so a dump cut short (full disk, SIGTERM) is still readable and
    says it is incomplete; `finish(..., written)` also clears the 2nd-bitmap
    bits of pages that never got their data. The bitmaps come window by window
    from `PageBitmaps`, never whole.

    A flattened stream (`optimistic`) is written the other way round, as
    makedumpfile -F does: the header says complete from the start and is
    repeated only when the dump ends incomplete (a stream cut off has no end
    record anyway), and the 2nd bitmap goes out last, once, when the pages that
    could not be read are known (readers place records by offset, in any order).
    crash picks either record of an offset written twice, so a complete stream
    must hold each offset once.
    """

    def __init__(self, sink: Any, header: DiskDumpHeader, sub: SubHeader, notes: bytes,
                 bitmaps: PageBitmaps, zero_page: bool, optimistic: bool = False) -> None:
        bs = header.block_size
        self.optimistic = optimistic
        self.sink, self.header, self.block_size = sink, header, bs
        self.bitmaps = bitmaps
        self.notes = notes
        self.sub = sub
        self.bitmap_offset = (1 + header.sub_hdr_size) * bs
        self.descs_offset = self.bitmap_offset + header.bitmap_blocks * bs
        self.nr_dumpable = bitmaps.dumpable
        self.data_offset = self.descs_offset + PAGE_DESC.size * self.nr_dumpable
        self.zero_desc: tuple[int, int, int, int] | None = None
        if zero_page:
            self.zero_desc = (self.data_offset, bs, 0, 0)
            self.data_offset += bs
        # page data is written behind (add) from `behind` on; `asked` is where it was last
        self.behind = self.asked = self.data_offset

    def begin(self) -> None:
        first = self.header if self.optimistic else self.header._replace(
            status=self.header.status | DUMP_DH_COMPRESSED_INCOMPLETE)
        self.sink.write_at(0, first.pack())
        self.sink.write_at(self.block_size, self.sub.pack())
        if self.notes:
            self.sink.write_at(self.sub.offset_note, self.notes)
        self._write_bitmap(dumped=False)
        if not self.optimistic:
            self._write_bitmap(dumped=True)
        if self.zero_desc:
            self.sink.write_at(self.zero_desc[0], bytes(self.block_size))

    def _write_bitmap(self, dumped: bool, written: Written | None = None) -> None:
        """The 1st or 2nd bitmap as one write of its padded length, fed window by window."""
        half = self.header.bitmap_blocks * self.block_size // 2
        self.sink.write_parts(self.bitmap_offset + (half if dumped else 0), half,
                              self.bitmaps.packed(dumped, written))

    def add(self, first_index: int, descs: npt.NDArray[Any], data: list[bytes],
            size: int) -> None:
        """Descriptors for dumpable pages first_index.., and their data (`size` bytes of
        parts, appended)."""
        descs = descs.copy()
        nonzero = descs["offset"] >= 0
        descs["offset"][nonzero] += self.data_offset
        if self.zero_desc is not None:
            descs[~nonzero] = self.zero_desc
        self.sink.write_at(self.descs_offset + PAGE_DESC.size * first_index, descs.tobytes())
        self.sink.write_at(self.data_offset, data)
        self.data_offset += size
        # Page data is never written again: to disk while the next chunks are made, what
        # came since the last time and again what was asked for then (written back by now,
        # so dropped from the page cache).
        if self.data_offset - self.asked >= WRITE_BEHIND:
            self.sink.write_behind(self.behind, self.data_offset)
            self.behind, self.asked = self.asked, self.data_offset

    def finish(self, complete: bool, written: Written | None = None) -> None:
        if written is not None or self.optimistic:
            self._write_bitmap(dumped=True, written=written)
        if complete and self.optimistic:
            return
        status = self.header.status | (0 if complete else DUMP_DH_COMPRESSED_INCOMPLETE)
        self.sink.write_at(0, self.header._replace(status=status).pack())


def read_page(path: str, dump: KdumpFile, pfn: int) -> bytes | None:
    """The data of one page of a kdump-compressed file; None if it was not dumped."""
    if pfn >= len(dump.bitmap2) or not dump.bitmap2[pfn]:
        return None
    index = int(np.count_nonzero(dump.bitmap2[:pfn]))
    with open(path, "rb") as f:
        return _described_page(f.fileno(), dump, index, path)


def _described_page(fd: int, dump: KdumpFile, index: int, path: str) -> bytes:
    """The page that page descriptor `index` points at, decompressed."""
    from kdumpctl_py.capture.vmcore import MissingMemory

    page_size = dump.header.block_size
    raw = os.pread(fd, PAGE_DESC.size, dump.descs_offset + PAGE_DESC.size * index)
    if len(raw) < PAGE_DESC.size:
        raise MissingMemory(f"{path}: page descriptor {index} is past the end of the file")
    offset, size, flags, _ = PAGE_DESC.unpack(raw)
    if size > page_size or offset < 0:
        raise UsageError(f"{path}: page descriptor {index} is damaged")
    data = os.pread(fd, size, offset)
    if len(data) < size:
        raise MissingMemory(f"{path}: page {index}'s data is past the end of the file")
    try:
        return _decompress(data, flags, page_size)
    except Exception as e:  # zlib.error, zstandard.ZstdError, lzo.error: all mean damaged
        raise MissingMemory(f"{path}: page {index} does not decompress ({e})") from None


_COUNT_BLOCK = 1 << 12  # pages per precomputed count of dumped pages


class KdumpMemory:
    """A kdump-compressed file as kernel memory, for readers such as the log reader.

    Physical pages come through the descriptors; virtual addresses through the
    dump's own page tables (their root is found from VMCOREINFO), so no debug
    info and no linear-map offset are needed. A page the dump left out raises
    MissingMemory.
    """

    def __init__(self, path: str) -> None:
        from kdumpctl_py.facts.elfcore import parse_notes
        from kdumpctl_py.facts.vmcoreinfo import parse_vmcoreinfo

        self.path = path
        self.dump = read_kdump(path)
        self.page_size = self.dump.header.block_size
        info = next((n for n in parse_notes(self.dump.notes, path) if n.name == "VMCOREINFO"),
                    None)
        if info is None:
            raise UsageError(f"{path} has no VMCOREINFO note")
        self.vmcoreinfo = parse_vmcoreinfo(info.desc)
        machine = self.dump.header.machine
        if machine not in ELF_MACHINES:
            raise UsageError(f"{path}: unknown machine {machine!r} in the dump header")
        self.machine = ELF_MACHINES[machine]
        counts = np.add.reduceat(self.dump.bitmap2.astype(np.int64),
                                 np.arange(0, max(len(self.dump.bitmap2), 1), _COUNT_BLOCK))
        self._before = np.concatenate(([0], np.cumsum(counts)))  # dumped pages before block i
        self._file = open(path, "rb")
        self._tables: Any = None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> KdumpMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def page(self, pfn: int) -> bytes:
        from kdumpctl_py.capture.vmcore import MissingMemory

        bm = self.dump.bitmap2
        if pfn >= len(bm) or not bm[pfn]:
            raise MissingMemory(f"page {pfn:#x} is not in {self.path}")
        block = pfn // _COUNT_BLOCK
        index = int(self._before[block]) + int(np.count_nonzero(bm[block * _COUNT_BLOCK:pfn]))
        return _described_page(self._file.fileno(), self.dump, index, self.path)

    def read_phys(self, paddr: int, size: int) -> bytes:
        out = bytearray()
        ps = self.page_size
        while size > 0:
            page = self.page(paddr // ps)
            n = min(size, ps - paddr % ps)
            out += page[paddr % ps:paddr % ps + n]
            paddr, size = paddr + n, size - n
        return bytes(out)

    def read_phys_into(self, paddr: int, buf: memoryview) -> None:
        buf[:] = self.read_phys(paddr, len(buf))

    def read_virt(self, vaddr: int, size: int) -> bytes:
        from kdumpctl_py.capture.pagetables import PageTables

        if self._tables is None:
            self._tables = PageTables(self)
        return bytes(self._tables.read(vaddr, size))


def _decompress(data: bytes, flags: int, page_size: int) -> bytes:
    if flags & DUMP_DH_COMPRESSED_ZLIB:
        return zlib.decompress(data)
    if flags & DUMP_DH_COMPRESSED_ZSTD:
        import zstandard

        return bytes(zstandard.ZstdDecompressor().decompress(data, max_output_size=page_size))
    if flags & DUMP_DH_COMPRESSED_LZO:
        import lzo

        return bytes(lzo.decompress(data, False, page_size))
    return data
