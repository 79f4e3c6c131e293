"""x86_64 vmcores with real struct pages, for the page filter end to end.

`build` lays out physical memory the way the filter reads it: page tables
under init_top_pgt mapping the vmemmap with 4K pages, a flat (non-EXTREME)
mem_section array in the linear map, one struct page of 64 bytes per pfn, and
VMCOREINFO as the kernel version in question writes it. The struct page
offsets are 6.1's (flags 0, compound_head 8, mapping 24, private 40,
_mapcount 48).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tests.elfwriter import note, vmcore_bytes

PAGE = 4096
LINEAR = 0xFFFF888000000000
KTEXT = 0xFFFFFFFF80000000
VMEMMAP = 0xFFFFEA0000000000
SECTION_BITS = 20  # 256 pfns a section: several sections in a few MiB
PER_SECTION = 1 << (SECTION_BITS - 12)
SIZEOF_PAGE = 64
# Physical pages the builder uses for its own structures.
PGT, UTS, MEMSEC = 1, 8, 9
TABLES = 2  # pfns 2..7: PDPT, PD, PT, spare
STRUCTS = 16  # struct pages from pfn 16 on
UTSNAME = b"".join(f.ljust(65, b"\0") for f in (b"Linux", b"testhost", b"KERNEL", b"#1 SMP",
                                                   b"x86_64", b"(none)"))

COMMON = {"PAGESIZE": "4096", "CRASHTIME": "1790000000",
          "SYMBOL(init_uts_ns)": f"{LINEAR + UTS * PAGE:x}",
          "SYMBOL(mem_section)": f"{LINEAR + MEMSEC * PAGE:x}", "LENGTH(mem_section)": "1",
          "SIZE(mem_section)": "16", "OFFSET(mem_section.section_mem_map)": "0",
          "NUMBER(SECTION_SIZE_BITS)": str(SECTION_BITS), "NUMBER(MAX_PHYSMEM_BITS)": "46",
          "SYMBOL(init_top_pgt)": f"{KTEXT + PGT * PAGE:x}", "NUMBER(phys_base)": "0",
          "SYMBOL(swapper_pg_dir)": f"{KTEXT + PGT * PAGE:x}", "KERNELOFFSET": "0",
          "NUMBER(pgtable_l5_enabled)": "0",
          "SIZE(page)": "64", "OFFSET(page.flags)": "0", "OFFSET(page._mapcount)": "48",
          "OFFSET(page.private)": "40", "OFFSET(page.mapping)": "24",
          "OFFSET(page.compound_head)": "8", "NUMBER(PG_lru)": "4", "NUMBER(PG_private)": "13",
          "NUMBER(PG_swapcache)": "10", "NUMBER(PG_swapbacked)": "19",
          "NUMBER(PG_head_mask)": "65536", "LENGTH(zone.free_area)": "11"}
# What each kernel's kernel/vmcore_info.c (crash_core.c before 6.5) adds or leaves out.
KERNELS: dict[str, dict[str, str | None]] = {
    "4.4": {"OSRELEASE": "4.4.0-test", "NUMBER(PG_slab)": "7", "NUMBER(PG_hwpoison)": "23",
            "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)": "-128",
            "OFFSET(page._mapcount)": None, "OFFSET(page.compound_head)": None},
    "5.10": {"OSRELEASE": "5.10.0-test", "NUMBER(PG_slab)": "9", "NUMBER(PG_hwpoison)": "23",
             "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)": "-129",
             "NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)": "-257"},
    "6.1": {"OSRELEASE": "6.1.0-test", "NUMBER(PG_slab)": "9", "NUMBER(PG_hwpoison)": "23",
            "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)": "-129",
            "NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)": "-257",
            "OFFSET(uts_namespace.name)": "0"},
    # 6.12: no PG_slab; page types in the top byte of page_type (PGTY_x << 24).
    "6.12": {"OSRELEASE": "6.12.0-test", "NUMBER(PG_hwpoison)": "22",
             "NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)": str(np.int32(np.uint32(0xF5000000))),
             "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)": str(np.int32(np.uint32(0xF0000000))),
             "NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)": str(np.int32(np.uint32(0xF1000000))),
             "NUMBER(PAGE_HUGETLB_MAPCOUNT_VALUE)": str(np.int32(np.uint32(0xF4000000))),
             "OFFSET(uts_namespace.name)": "0"},
}


@dataclass
class Memory:
    """Physical memory and struct pages of a test kernel, before it becomes a vmcore."""

    pages: int
    kernel: str = "6.1"
    ram: bytearray = field(init=False)
    structs: np.ndarray[Any, Any] = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.pages)
        self.ram = bytearray(rng.integers(1, 256, self.pages * PAGE, dtype=np.uint8).tobytes())
        self.ram[:STRUCTS * PAGE] = bytes(STRUCTS * PAGE)
        self.structs = np.zeros((self.pages, SIZEOF_PAGE), dtype=np.uint8)
        self.put_all(48, -1, "<i4")  # _mapcount -1: an ordinary page

    def put(self, pfn: int, offset: int, value: int, fmt: str = "<u8") -> None:
        width = np.dtype(fmt).itemsize
        self.structs[pfn, offset:offset + width] = np.frombuffer(
            np.array(value).astype(fmt).tobytes(), np.uint8)

    def put_all(self, offset: int, value: int, fmt: str) -> None:
        for pfn in range(self.pages):
            self.put(pfn, offset, value, fmt)

    def page(self, pfn: int) -> bytes:
        return bytes(self.ram[pfn * PAGE:(pfn + 1) * PAGE])


def build(mem: Memory, path: Path, unmapped: range = range(0),
          segments: list[tuple[int, int]] | None = None) -> Path:
    """Write `mem` as a vmcore; struct pages of pfns in `unmapped` get no vmemmap mapping;
    `segments` are (first byte, end byte) of the PT_LOADs (default: all of memory)."""
    ram = mem.ram
    nstruct = -(-mem.pages * SIZEOF_PAGE // PAGE)
    assert STRUCTS + nstruct <= mem.pages
    ram[STRUCTS * PAGE:STRUCTS * PAGE + mem.structs.size] = mem.structs.tobytes()
    ram[UTS * PAGE:UTS * PAGE + PAGE] = bytes(PAGE)
    uts = UTSNAME.replace(b"KERNEL".ljust(65, b"\0"),
                          f"{mem.kernel}.0-test".encode().ljust(65, b"\0"))
    # Before 5.11 the name follows a kref; from 5.11 it comes first, and its offset is exported.
    uts_at = UTS * PAGE + (0 if "OFFSET(uts_namespace.name)" in KERNELS[mem.kernel] else 4)
    ram[uts_at:uts_at + len(uts)] = uts

    def entry(table: int, index: int, value: int) -> None:
        struct.pack_into("<Q", ram, table * PAGE + index * 8, value)

    pdpt, pd, pt = TABLES, TABLES + 1, TABLES + 2
    entry(PGT, (VMEMMAP >> 39) & 511, pdpt * PAGE | 3)
    entry(pdpt, (VMEMMAP >> 30) & 511, pd * PAGE | 3)
    entry(pd, (VMEMMAP >> 21) & 511, pt * PAGE | 3)
    for i in range(nstruct):
        first = i * PAGE // SIZEOF_PAGE
        if first in unmapped:
            continue
        entry(pt, i, (STRUCTS + i) * PAGE | 3)
    for sec in range(-(-mem.pages // PER_SECTION)):
        struct.pack_into("<QQ", ram, MEMSEC * PAGE + 16 * sec, VMEMMAP | 1, 0)
    values = {**COMMON, **KERNELS[mem.kernel]}
    info = "".join(f"{k}={v}\n" for k, v in values.items() if v is not None).encode()
    spans = segments or [(0, mem.pages * PAGE)]
    segs = [(LINEAR + a, a, bytes(ram[a:b]), b - a) for a, b in spans]
    notes = note(b"CORE", 1, bytes(336)) + note(b"VMCOREINFO", 0, info)
    path.write_bytes(vmcore_bytes(segs, notes))
    return path
