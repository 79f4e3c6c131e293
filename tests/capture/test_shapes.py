"""Every vmcore shape and kernel the save path must survive, each page read back.

Built with the test ELF writer (tests/capture/kernels.py): PT_LOADs that start
or end inside a page, that overlap, a section whose struct pages are not in
the dump, kernels older than 4.16, 5.10 without OFFSET(uts_namespace.name),
6.12 without PG_slab, arm64's phys_base and 52-bit physical addresses.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kdumpctl_py.capture.filter import Carry, PageLayout
from kdumpctl_py.capture.kdumpfile import read_kdump, read_page
from kdumpctl_py.capture.pagetables import PageTables
from kdumpctl_py.capture.save import SaveOptions, SaveResult, save_vmcore
from kdumpctl_py.capture.vmcore import Vmcore
from kdumpctl_py.facts.vmcoreinfo import VmcoreInfo, parse_vmcoreinfo
from tests.capture.kernels import COMMON, KERNELS, LINEAR, PAGE, Memory, build
from tests.elfwriter import note, vmcore_bytes

BUDDY_6_1, ANON = -129, LINEAR | 1


def save(src: Path, tmp_path: Path, level: int, **kw: object) -> SaveResult:
    return save_vmcore(str(src), str(tmp_path / "crash"),
                       SaveOptions(level, "zlib", progress=False, **kw))  # type: ignore[arg-type]


def dumped(result: SaveResult, want: dict[int, bytes]) -> set[int]:
    """The pfns the dump holds, each checked against `want`."""
    path = str(Path(result.directory or "") / result.vmcore)
    dump = read_kdump(path)
    pfns = {int(p) for p in np.flatnonzero(dump.bitmap2)}
    for pfn in pfns:
        assert read_page(path, dump, pfn) == want[pfn], f"pfn {pfn:#x}"
    return pfns


def all_pages(mem: Memory) -> dict[int, bytes]:
    return {pfn: mem.page(pfn) for pfn in range(mem.pages)}


def test_kernel_before_4_16_is_saved_with_zero_pages_filtered(tmp_path: Path) -> None:
    mem = Memory(64, "4.4")
    mem.put(40, 48, -128, "<i4")  # a free page: not recognised without the layout
    src = build(mem, tmp_path / "vmcore")
    result = save(src, tmp_path, 31)
    assert result.complete and result.dump_level == 1
    assert any("older than 4.16" in w for w in result.stats.warnings)
    assert read_kdump(str(Path(result.directory or "") / "vmcore")).sub.dump_level == 1
    want = all_pages(mem)
    assert dumped(result, want) == set(want)  # zero pages share one descriptor
    assert result.pages_zero == sum(1 for d in want.values() if not any(d))


@pytest.mark.parametrize("level", [0, 1])
def test_hwpoison_does_not_need_the_layout(tmp_path: Path, level: int) -> None:
    mem = Memory(64, "4.4")
    src = build(mem, tmp_path / "vmcore")
    result = save(src, tmp_path, level)
    assert result.complete and result.dump_level == level
    want = all_pages(mem)
    assert dumped(result, want) == set(want)


def test_5_10_utsname_follows_the_kref(tmp_path: Path) -> None:
    mem = Memory(64, "5.10")
    src = build(mem, tmp_path / "vmcore")
    result = save(src, tmp_path, 31)
    assert Path(result.directory or "").name.startswith("testhost-")
    dump = read_kdump(str(Path(result.directory or "") / "vmcore"))
    assert dump.header.release == "5.10.0-test"
    assert dump.header.utsname[:5] == b"Linux"


def test_6_12_slab_is_a_page_type(tmp_path: Path) -> None:
    mem = Memory(600, "6.12")
    mem.put(300, 48, 0xF5000000, "<u4")  # slab: kept, even with an anon-looking mapping
    mem.put(300, 24, ANON)
    mem.put(301, 0, (1 << 7) | (1 << 4))  # PG_waiters + PG_lru, anonymous: user data
    mem.put(301, 24, ANON)
    mem.put(302, 48, 0xF0000000, "<u4")  # a free order-1 block
    mem.put(302, 40, 1)
    mem.put(304, 48, 0xF5000000, "<u4")  # slab: never a free page, whatever private says
    mem.put(304, 40, 1)
    src = build(mem, tmp_path / "vmcore")
    result = save(src, tmp_path, 31)
    assert result.complete and result.dump_level == 31 and not result.stats.warnings
    want = all_pages(mem)
    assert dumped(result, want) == set(want) - {301, 302, 303}
    assert (result.stats.user, result.stats.free) == (1, 2)


def test_unreadable_section_keeps_its_pages(tmp_path: Path) -> None:
    mem = Memory(768, "6.1")
    for pfn in (260, 520):  # free pages in the second and third sections
        mem.put(pfn, 48, BUDDY_6_1, "<i4")
    src = build(mem, tmp_path / "vmcore", unmapped=range(256, 512))
    result = save(src, tmp_path, 31)
    assert result.complete and result.dump_level == 31
    (warning,) = result.stats.warnings
    assert "1 sections" in warning and "0x100-0x1ff" in warning
    want = all_pages(mem)
    assert dumped(result, want) == set(want) - {520}
    assert result.stats.unfiltered == 256


def test_a_section_that_raises_is_kept_only_when_tolerant(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kdumpctl_py.capture import filter as filter_mod

    real = filter_mod._exclude_section

    def broken(layout: PageLayout, level: int, start: int, *rest: Any) -> Carry:
        if start == 256:
            raise ValueError("a bug in the page filter")
        return real(layout, level, start, *rest)

    monkeypatch.setattr(filter_mod, "_exclude_section", broken)
    mem = Memory(768, "6.1")
    for pfn in (260, 520):
        mem.put(pfn, 48, BUDDY_6_1, "<i4")
    src = build(mem, tmp_path / "vmcore")
    with pytest.raises(ValueError):
        save(src, tmp_path, 31)
    result = save(src, tmp_path, 31, tolerant=True)
    want = all_pages(mem)
    assert dumped(result, want) == set(want) - {520}
    assert "a bug in the page filter" in result.stats.warnings[0]


@pytest.mark.parametrize("level", [0, 31])
def test_segments_starting_and_ending_inside_pages(tmp_path: Path, level: int) -> None:
    mem = Memory(64, "6.1")
    spans = [(0, 20 * PAGE + 0x800), (24 * PAGE + 0x100, 40 * PAGE - 0x200),
             (40 * PAGE + 0x300, 64 * PAGE)]
    src = build(mem, tmp_path / "vmcore", segments=spans)
    result = save(src, tmp_path, level)
    assert result.complete
    want = all_pages(mem)
    ram = bytes(mem.ram)
    want[24] = bytes(0x100) + ram[24 * PAGE + 0x100:25 * PAGE]  # zero-filled, never shifted
    want[40] = bytes(0x300) + ram[40 * PAGE + 0x300:41 * PAGE]
    got = dumped(result, want)
    # A segment's partial last page is in neither bitmap, as in makedumpfile's
    # (docs/page-filter.md); the ELF format keeps its bytes.
    assert got == set(want) - {20, 21, 22, 23, 39}
    present = read_kdump(str(Path(result.directory or "") / "vmcore")).bitmap1
    assert set(np.flatnonzero(present).tolist()) == set(want) - {20, 21, 22, 23, 39}
    elf = save(src, tmp_path / "elf", level, format="elf")
    with Vmcore(str(Path(elf.directory or "") / "vmcore")) as v:
        assert v.read_phys(20 * PAGE, 0x800) == ram[20 * PAGE:20 * PAGE + 0x800]
        assert v.read_phys(39 * PAGE, PAGE - 0x200) == ram[39 * PAGE:40 * PAGE - 0x200]
        assert v.read_phys(24 * PAGE + 0x100, 0x100) == ram[24 * PAGE + 0x100:24 * PAGE + 0x200]


@pytest.mark.parametrize("level", [0, 31])
def test_overlapping_segments_write_each_page_once(tmp_path: Path, level: int) -> None:
    mem = Memory(64, "6.1")
    spans = [(0, 30 * PAGE + 0x800), (5 * PAGE, 10 * PAGE),  # inside the first
             (25 * PAGE + 0x400, 50 * PAGE),  # straddles the end of the first
             (48 * PAGE, 64 * PAGE)]
    src = build(mem, tmp_path / "vmcore", segments=spans)
    result = save(src, tmp_path, level)
    want = all_pages(mem)
    got = dumped(result, want)
    assert got == set(want)
    assert result.pages_dumped + result.pages_zero == len(got)


def test_arm64_phys_base_is_phys_offset(tmp_path: Path) -> None:
    info = (b"OSRELEASE=6.1.0-test\nPAGESIZE=4096\nCRASHTIME=1790000000\n"
            b"NUMBER(PHYS_OFFSET)=0xffffe2dd80000000\nNUMBER(VA_BITS)=48\n")
    ram = bytes(range(256)) * (8 * PAGE // 256)
    src = tmp_path / "vmcore"
    src.write_bytes(vmcore_bytes([(0xFFFF000040000000, 0x40000000, ram, len(ram))],
                                 note(b"VMCOREINFO", 0, info), machine=183))
    result = save(src, tmp_path, 1)
    dump = read_kdump(str(Path(result.directory or "") / "vmcore"))
    assert dump.sub.phys_base == 0xFFFFE2DD80000000
    base = 0x40000000 // PAGE
    assert dumped(result, {base + i: ram[i * PAGE:(i + 1) * PAGE] for i in range(8)})


class _Phys:
    """Physical memory as a dict of 8-byte words, for page-table walks above 2^48."""

    machine = 183

    def __init__(self, page_size: int, info: str) -> None:
        self.page_size = page_size
        self.words: dict[int, int] = {}
        self._info = parse_vmcoreinfo(info)

    @property
    def vmcoreinfo(self) -> VmcoreInfo:
        return self._info

    def read_phys(self, paddr: int, size: int) -> bytes:
        return b"".join(struct.pack("<Q", self.words.get(a, 0))
                        for a in range(paddr, paddr + size, 8))

    def read_phys_into(self, paddr: int, buf: memoryview) -> None:
        buf[:] = self.read_phys(paddr, len(buf))


@pytest.mark.parametrize(("page_size", "t1sz", "encode"), [
    (65536, 16, lambda pa: (pa & ((1 << 48) - 1)) | ((pa >> 48) & 0xF) << 12),  # FEAT_LPA
    (4096, 12, lambda pa: (pa & ((1 << 50) - 1)) | ((pa >> 50) & 0x3) << 8),  # FEAT_LPA2
])
def test_arm64_52_bit_physical_addresses(page_size: int, t1sz: int,
                                         encode: Callable[[int], int]) -> None:
    info = (f"NUMBER(MAX_PHYSMEM_BITS)=52\nNUMBER(TCR_EL1_T1SZ)={t1sz}\n"
            f"SYMBOL(swapper_pg_dir)=ffff800080000000\nNUMBER(kimage_voffset)=0xffff800000000000\n")
    mem = _Phys(page_size, info)
    shift = page_size.bit_length() - 1
    stride = shift - 3
    va_bits = 64 - t1sz
    levels = -(-(va_bits - shift) // stride)
    vaddr = 0xFFFFFC0000123456 & ((1 << 64) - 1)
    tables = [0x80000000 + i * page_size for i in range(levels)]
    tables[-1] = (1 << 51) + 0x5 * page_size  # the last table lives above 2^48
    target = (1 << 50) + (3 << 48) + 0x77 * page_size
    for level, table in zip(range(levels, 0, -1), tables, strict=True):
        lshift = shift + stride * (level - 1)
        bits = min(stride, va_bits - lshift)
        index = (vaddr >> lshift) & ((1 << bits) - 1)
        nxt = tables[levels - level + 1] if level > 1 else target
        mem.words[table + index * 8] = encode(nxt) | 3
    pt = PageTables(mem)
    pt._root = tables[0]
    paddr, _ = pt.translate(vaddr)
    assert paddr == target + (vaddr & (page_size - 1))


def test_reads_above_2_48(tmp_path: Path) -> None:
    info = b"OSRELEASE=6.12.0-test\nPAGESIZE=65536\n"
    data = bytes(range(256)) * 512
    high = (1 << 48) + (5 << 16)
    src = tmp_path / "vmcore"
    src.write_bytes(vmcore_bytes([(0xFFF0000000000000, high, data, len(data))],
                                 note(b"VMCOREINFO", 0, info), machine=183))
    with Vmcore(str(src)) as v:
        assert v.read_phys(high + 0x10003, 5) == data[0x10003:0x10008]
        assert v.read_phys_filled(high - 0x10000, 0x20000) == bytes(0x10000) + data[:0x10000]


# An arm64 machine with 64K pages and FEAT_LPA: RAM at 1 GiB and just above 2^48.
PAGE64, LOW, HIGH = 1 << 16, 0x40000000, (1 << 48) + (5 << 16)
KIMAGE, VMEMMAP64, LINEAR64 = 0xFFFF800008000000, 0xFFFFFC0000000000, 0xFFFF000000000000


def lpa(pa: int) -> int:
    """A table or page descriptor for `pa` (FEAT_LPA: PA bits 51:48 in bits 15:12)."""
    return (pa & ((1 << 48) - 1)) | ((pa >> 48) & 0xF) << 12 | 3


def arm64_52_bit_vmcore(path: Path) -> tuple[dict[int, bytes], set[int]]:
    """A 6.1 arm64 vmcore of two 16-page segments, the second above 2^48, with page tables,
    SPARSEMEM_EXTREME mem_section and struct pages (the high ones, the last-level table
    that maps them and a section root above 2^48 too). Returns every page's data and the
    pfns -d 31 excludes (a free page, page cache, an anonymous page; a zero page stays in
    the 2nd bitmap with the shared zero descriptor, as makedumpfile writes it)."""
    rng = np.random.default_rng(52)
    segs = {base: bytearray(rng.integers(1, 256, 16 * PAGE64, dtype=np.uint8).tobytes())
            for base in (LOW, HIGH)}

    def put(pa: int, data: bytes) -> None:
        base = HIGH if pa >= HIGH else LOW
        segs[base][pa - base:pa - base + len(data)] = data

    def page_at(pa: int) -> None:
        put(pa, bytes(PAGE64))

    def linear(pa: int) -> int:
        return LINEAR64 + pa - LOW

    pgd, pmd, pte_low, structs_low = (LOW + i * PAGE64 for i in (1, 2, 3, 4))
    roots, sections_low = LOW + 5 * PAGE64, LOW + 6 * PAGE64
    pte_high, structs_high, sections_high = (HIGH + i * PAGE64 for i in (1, 2, 3))
    for pa in (pgd, pmd, pte_low, structs_low, roots, sections_low, pte_high, structs_high,
               sections_high):
        page_at(pa)
    put(pgd + 8 * ((VMEMMAP64 >> 42) & 63), struct.pack("<Q", lpa(pmd)))
    put(pmd + 8 * 0, struct.pack("<Q", lpa(pte_low)))
    put(pmd + 8 * 512, struct.pack("<Q", lpa(pte_high)))  # vmemmap + 2^38: pfns from 2^32
    put(pte_low + 8 * 16, struct.pack("<Q", lpa(structs_low)))  # vmemmap + 2^20: pfn 2^14
    put(pte_high, struct.pack("<Q", lpa(structs_high)))
    put(roots, struct.pack("<Q", linear(sections_low)))  # sections 0-4095
    put(roots + 8 * 128, struct.pack("<Q", linear(sections_high)))  # from 2^19
    put(sections_low + 16 * 2, struct.pack("<Q", VMEMMAP64 | 3))
    put(sections_high, struct.pack("<Q", VMEMMAP64 | 3))
    excluded = set()
    for base, structs in ((LOW, structs_low), (HIGH, structs_high)):
        first = base // PAGE64
        at = structs + (first % 1024) * 64
        for i in range(16):
            put(at + 64 * i + 48, struct.pack("<i", -1))  # _mapcount -1: an ordinary page
        kinds = {8: (0, 0, -129), 9: (1 << 4, LINEAR64 + 0x100000, -1),  # free, cache
                 10: ((1 << 4) | (1 << 19), LINEAR64 + 0x200001, -1)}  # anonymous
        for i, (flags, mapping, mapcount) in kinds.items():
            put(at + 64 * i, struct.pack("<Q", flags))
            put(at + 64 * i + 24, struct.pack("<Q", mapping))
            put(at + 64 * i + 48, struct.pack("<i", mapcount))
        page_at(base + 11 * PAGE64)
        excluded |= {first + i for i in (8, 9, 10)}
    layout = {k: v for k, v in {**COMMON, **KERNELS["6.1"]}.items()
              if k.startswith(("SIZE(page)", "OFFSET(page.", "NUMBER(PG_", "NUMBER(PAGE_",
                               "LENGTH(zone", "OSRELEASE", "CRASHTIME"))}
    info = "".join(f"{k}={v}\n" for k, v in layout.items() if v is not None) + (
        f"PAGESIZE=65536\nSYMBOL(swapper_pg_dir)={KIMAGE:x}\n"
        f"NUMBER(kimage_voffset)={KIMAGE - pgd:#x}\nNUMBER(VA_BITS)=48\n"
        f"NUMBER(TCR_EL1_T1SZ)=16\nNUMBER(MAX_PHYSMEM_BITS)=52\nNUMBER(PHYS_OFFSET)={LOW:#x}\n"
        f"SYMBOL(mem_section)={linear(roots):x}\nLENGTH(mem_section)=2048\n"
        f"SIZE(mem_section)=16\nOFFSET(mem_section.section_mem_map)=0\n"
        f"NUMBER(SECTION_SIZE_BITS)=29\n")
    path.write_bytes(vmcore_bytes([(linear(b), b, bytes(d), len(d)) for b, d in segs.items()],
                                  note(b"VMCOREINFO", 0, info.encode()), machine=183))
    pages = {(b + i * PAGE64) // PAGE64: bytes(d[i * PAGE64:(i + 1) * PAGE64])
             for b, d in segs.items() for i in range(16)}
    return pages, excluded


def read_back_sparse(path: Path) -> tuple[set[int], dict[int, bytes]]:
    """The 1st bitmap's pfns and every dumped page of a kdump file whose bitmaps are too
    big to unpack (2^32 pages): only the bitmaps' data extents are read (SEEK_DATA)."""
    import zlib

    from kdumpctl_py.capture.kdumpfile import DISK_DUMP_HEADER, PAGE_DESC

    def pfns(fd: int, start: int, size: int) -> list[int]:
        out, at, end = [], start, start + size
        while at < end:
            try:
                at = os.lseek(fd, at, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole follows
                break
            stop = min(os.lseek(fd, at, os.SEEK_HOLE), end)
            if at >= end:
                break
            bits = np.unpackbits(np.frombuffer(os.pread(fd, stop - at, at), np.uint8),
                                 bitorder="little")
            out += (np.flatnonzero(bits) + (at - start) * 8).tolist()
            at = stop
        return out

    fd = os.open(path, os.O_RDONLY)
    try:
        head = DISK_DUMP_HEADER.unpack(os.pread(fd, DISK_DUMP_HEADER.size, 0))
        block, sub_blocks, bm_blocks = head[6], head[7], head[8]
        half = bm_blocks * block // 2
        start = (1 + sub_blocks) * block
        present, dumped = pfns(fd, start, half), pfns(fd, start + half, half)
        pages = {}
        for index, pfn in enumerate(dumped):
            offset, size, flags, _ = PAGE_DESC.unpack(
                os.pread(fd, PAGE_DESC.size, start + 2 * half + PAGE_DESC.size * index))
            data = os.pread(fd, size, offset)
            pages[pfn] = zlib.decompress(data) if flags & 1 else data
    finally:
        os.close(fd)
    return set(present), pages


def test_arm64_52_bit_whole_save_through_windows(tmp_path: Path) -> None:
    """RAM above 2^48 saved at -d 31 window by window over the 2^32-page bitmaps (65,536
    windows of 2^16 pages): the page filter reads struct pages through tables above
    2^48, every page reads back as it was, and the bitmaps' zeros (512 MiB each) cost
    no disk."""
    src = tmp_path / "vmcore"
    pages, excluded = arm64_52_bit_vmcore(src)
    result = save(src, tmp_path, 31, memory_limit=64 << 20, threads=1)
    assert result.complete and result.dump_level == 31 and not result.stats.warnings
    assert result.pages_zero == 2
    path = Path(result.directory or "") / "vmcore"
    assert path.stat().st_size > 1 << 30 and path.stat().st_blocks * 512 < 8 << 20
    present, dumped = read_back_sparse(path)
    assert present == set(pages) and max(present) > 1 << 32
    assert set(dumped) == set(pages) - excluded
    for pfn, data in dumped.items():
        assert data == pages[pfn], f"pfn {pfn:#x}"
    assert read_kdump_header_level(path) == 31


def read_kdump_header_level(path: Path) -> int:
    from kdumpctl_py.capture.kdumpfile import SUB_HEADER

    with open(path, "rb") as f:
        f.seek(PAGE64)
        return int(SUB_HEADER.unpack(f.read(SUB_HEADER.size))[1])


@pytest.mark.parametrize("va_bits", [39, 48, 57])
@pytest.mark.parametrize("leaf_level", [1, 2])  # a 4 KiB page, a 2 MiB megapage
def test_riscv64_sv39_sv48_sv57(va_bits: int, leaf_level: int) -> None:
    """swapper_pg_dir's physical address is the symbol minus va_kernel_pa_offset; a PTE
    with R, W or X is a leaf, its PPN in bits 53:10 (4 KiB units)."""
    info = (f"NUMBER(VA_BITS)={va_bits}\nSYMBOL(swapper_pg_dir)=ffffffff81dcb000\n"
            "NUMBER(va_kernel_pa_offset)=0xfffffffeffe00000\n")
    mem = _Phys(4096, info)
    mem.machine = 243
    levels = {39: 3, 48: 4, 57: 5}[va_bits]
    vaddr = (0xFF1C000000000000 if va_bits == 57 else -(1 << (va_bits - 1))) + 0x123456
    vaddr &= (1 << 64) - 1
    tables = [0x81FCB000, *(0x90000000 + i * 4096 for i in range(levels - 1))]
    target = (1 << 40) + 0x600000  # 2 MiB aligned, above 2^32
    for level, table in zip(range(levels, leaf_level - 1, -1), tables, strict=False):
        index = (vaddr >> (12 + 9 * (level - 1))) & 0x1FF
        if level == leaf_level:
            mem.words[table + index * 8] = (target >> 12) << 10 | 0xCF  # V R W X A D
        else:
            mem.words[table + index * 8] = (tables[levels - level + 1] >> 12) << 10 | 1
    pt = PageTables(mem)
    paddr, left = pt.translate(vaddr)
    size = 1 << (12 + 9 * (leaf_level - 1))
    assert paddr == target + (vaddr & (size - 1)) and left == size - (vaddr & (size - 1))
