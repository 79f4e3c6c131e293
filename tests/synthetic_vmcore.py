"""Sparse synthetic ELF vmcores of any RAM size: x86_64 (which makedumpfile accepts)
and arm64 with 64K pages.

The x86_64 file looks like /proc/vmcore of a Linux 6.1 machine (Debian 12's
VMCOREINFO offsets and numbers): RAM at 1 MiB-3 GiB and from 4 GiB on, a kernel
image at 16 MiB with its own PT_LOAD, 4-level page tables (init_top_pgt)
mapping the linear map with 1 GiB pages, the kernel image and a vmemmap with
2 MiB pages, a SPARSEMEM_EXTREME mem_section, and init_uts_ns. The vmemmap's
backing sits at the top of RAM, as memblock puts it.

The arm64 one (`arch="arm64"`) is a 6.1 kernel with 64K pages and 48-bit
virtual addresses, as Debian's arm64 kernels built with ARM64_64K_PAGES: RAM
from 1 GiB on (QEMU's virt board), 512 MiB sections, the kernel image at 1 GiB
+ 2 MiB mapped at KIMAGE_VADDR (kimage_voffset), the linear map from
PAGE_OFFSET, and 3-level page tables (swapper_pg_dir) that map the vmemmap
with 64K pages: only what kdumpctl-py translates by them.

Each section has the same plan, drawn per section from a seeded RNG: a
256-page mix of page cache (some private), anonymous, swap-cache, slab (single
and order-2 compound with tails), offline, kernel pages with random or
code-like data and kernel pages that are all zeros; free buddy blocks of every
order 0-10; and 1024-page units of free order-10 blocks, large page-cache
folios, anonymous THPs and hugetlb pages (order 9). Only what is not zero is
written, so the file is sparse: about 9.5 GB of disk for 1 TiB of x86_64 RAM.
Every x86_64 struct page carries in its flags what Debian 12's 6.1 kernel keeps
there besides the page flags (the zone and last_cpupid bits, as read from a
crash-cycle vmcore), so that no page looks empty that a real kernel's would not,
and what else a running kernel leaves there (lru lists, index, _refcount: `_in_use`);
but the struct pages of a free block past its first 64 are left as holes: no
tool decides anything on them (makedumpfile steps over the block), and they are
most of the file's size.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from tests.elfwriter import note

SIZEOF_PAGE = 64
DATA_OFFSET = 1 << 20  # file offset of physical address 0
KERNEL_SIZE = 32 << 20
HOLE = (3 << 30, 4 << 30)  # the PCI hole below 4 GiB (x86_64)
POOL_BYTES = 4 << 20  # of each kind of page content
CRASHTIME = 1764547200
RELEASE = "6.1.0-56-cloud-amd64"

PG_LRU, PG_SLAB, PG_SWAPCACHE, PG_RESERVED, PG_PRIVATE, PG_HEAD, PG_SWAPBACKED = (
    4, 9, 10, 12, 13, 16, 19)
BUDDY, OFFLINE = -129, -257
COMPOUND_DTOR, HUGETLB_DTOR, THP_DTOR = 1, 2, 3
MAX_ORDER = 11
# x86_64 flags above the page flags: last_cpupid all ones (bits 30-50), the zone from 51
ZONE_DMA, ZONE_DMA32, ZONE_NORMAL = (z << 51 | 0x7FFFFC0000000 for z in (0, 1, 2))
DMA_END, DMA32_END = 16 << 20, 4 << 30
FREE_HEAD_WRITTEN = 64  # struct pages of a free block written (the rest are holes)

PAGE_DTYPE = np.dtype({
    "names": ["flags", "chead", "dtor", "order", "mapping", "private", "mapcount", "refcount"],
    "formats": ["<u8", "<u8", "u1", "u1", "<u8", "<u8", "<i4", "<u4"],
    "offsets": [0, 8, 16, 17, 24, 40, 48, 52], "itemsize": SIZEOF_PAGE})

VMCOREINFO = """\
PAGESIZE={page}
OFFSET(uts_namespace.name)=0
LENGTH(mem_section)={roots}
SIZE(mem_section)=16
OFFSET(mem_section.section_mem_map)=0
NUMBER(SECTION_SIZE_BITS)={section_bits}
NUMBER(MAX_PHYSMEM_BITS)={physmem_bits}
SIZE(page)=64
SIZE(list_head)=16
OFFSET(page.flags)=0
OFFSET(page._refcount)=52
OFFSET(page.mapping)=24
OFFSET(page.lru)=8
OFFSET(page._mapcount)=48
OFFSET(page.private)=40
OFFSET(page.compound_dtor)=16
OFFSET(page.compound_order)=17
OFFSET(page.compound_head)=8
OFFSET(list_head.next)=0
OFFSET(list_head.prev)=8
LENGTH(zone.free_area)={free_area}
NUMBER(PG_lru)=4
NUMBER(PG_private)=13
NUMBER(PG_swapcache)=10
NUMBER(PG_swapbacked)=19
NUMBER(PG_slab)=9
NUMBER(PG_head_mask)=65536
NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129
NUMBER(HUGETLB_PAGE_DTOR)=2
NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-257
"""


@dataclass(frozen=True)
class Machine:
    """What differs between the architectures the generator makes."""

    name: str
    elf_machine: int
    page: int
    section_bits: int
    physmem_bits: int
    linear_offset: int  # virtual minus physical address in the linear map
    vmemmap: int  # the struct page of pfn 0
    image_offset: int  # virtual minus physical address in the kernel image's map
    kernel_phys: int
    ram_start: int
    free_area: int  # LENGTH(zone.free_area)
    vmcoreinfo: str  # what VMCOREINFO says beyond struct page

    @property
    def section_pages(self) -> int:
        return 1 << (self.section_bits - (self.page.bit_length() - 1))

    @property
    def roots(self) -> int:
        """LENGTH(mem_section): SPARSEMEM_EXTREME's root pointers, a page of sections each."""
        return (1 << (self.physmem_bits - self.section_bits)) // (self.page // 16)


X86_64 = Machine("x86_64", 62, 4096, 27, 46, 0xFFFF888000000000, 0xFFFFEA0000000000,
                 0xFFFFFFFF80000000, 16 << 20, 1 << 20, 11, """\
NUMBER(phys_base)=0
NUMBER(pgtable_l5_enabled)=0
KERNELOFFSET=0
NUMBER(KERNEL_IMAGE_SIZE)=1073741824
NUMBER(sme_mask)=0
""")
ARM64_KIMAGE = 0xFFFF800008000000  # KIMAGE_VADDR, 48-bit VA
ARM64_KERNEL = (1 << 30) + (2 << 20)
# 6.1 with ARM64_64K_PAGES: SECTION_SIZE_BITS 29, MAX_ORDER 14; PAGE_OFFSET 0xffff000000000000
ARM64_64K = Machine("aarch64", 183, 65536, 29, 48, 0xFFFF000000000000 - (1 << 30),
                    0xFFFFFC0000000000, ARM64_KIMAGE - ARM64_KERNEL, ARM64_KERNEL, 1 << 30, 14,
                    f"""\
NUMBER(VA_BITS)=48
NUMBER(TCR_EL1_T1SZ)=16
NUMBER(kimage_voffset)={ARM64_KIMAGE - ARM64_KERNEL:#x}
NUMBER(PHYS_OFFSET)={1 << 30:#x}
KERNELOFFSET=0
""")
MACHINES = {"x86_64": X86_64, "arm64": ARM64_64K}


@dataclass(frozen=True)
class Layout:
    """Where everything is, for `ram` bytes of RAM."""

    ram: int
    m: Machine = X86_64

    @property
    def ranges(self) -> list[tuple[int, int]]:
        if self.m is not X86_64:
            return [(self.m.ram_start, self.m.ram_start + self.ram)]
        if self.ram <= HOLE[0]:
            return [(1 << 20, self.ram)]
        return [(1 << 20, HOLE[0]), (HOLE[1], self.ram + HOLE[1] - HOLE[0])]

    @property
    def end(self) -> int:
        return self.ranges[-1][1]

    @property
    def section_bytes(self) -> int:
        return self.m.section_pages * self.m.page

    @cached_property
    def sections(self) -> list[int]:
        out: list[int] = []
        for start, end in self.ranges:
            first, last = start // self.section_bytes, -(-end // self.section_bytes)
            out.extend(s for s in range(first, last) if not out or s > out[-1])
        return out

    @cached_property
    def vmemmap_phys(self) -> int:
        """Start of the struct page arrays near the top of RAM, a section's worth each,
        aligned to 1024 pages so that no buddy block or folio of the plan straddles it."""
        align = 1024 * self.m.page
        return (self.end - len(self.sections) * self.m.section_pages * SIZEOF_PAGE) & ~(align - 1)

    def backing(self, section: int) -> int:
        return self.vmemmap_phys + self._index[section] * self.m.section_pages * SIZEOF_PAGE

    @cached_property
    def _index(self) -> dict[int, int]:
        return {s: i for i, s in enumerate(self.sections)}


class _Image:
    """The kernel image region: page tables, mem_section, init_uts_ns, code."""

    def __init__(self, m: Machine) -> None:
        self.m = m
        self.buf = bytearray(KERNEL_SIZE)
        self.next = 12 << 20  # below: code and data; above: the structures

    def alloc(self, size: int) -> int:
        page = self.m.page
        phys = self.m.kernel_phys + self.next
        self.next += -(-size // page) * page
        assert self.next <= KERNEL_SIZE
        return phys

    def virt(self, phys: int) -> int:
        return self.m.image_offset + phys

    def put(self, phys: int, data: bytes) -> None:
        at = phys - self.m.kernel_phys
        self.buf[at:at + len(data)] = data

    def u64_at(self, phys: int) -> int:
        return int(struct.unpack_from("<Q", self.buf, phys - self.m.kernel_phys)[0])

    def u64(self, phys: int, value: int) -> None:
        self.put(phys, struct.pack("<Q", value))


def _table(img: _Image, parent: int, index: int, addr_mask: int, flags: int) -> int:
    """The table entry `index` of `parent` points at, made (a page of zeros) if none."""
    entry = img.u64_at(parent + 8 * index)
    if entry:
        return entry & addr_mask
    child = img.alloc(img.m.page)
    img.u64(parent + 8 * index, child | flags)
    return child


def _page_tables(img: _Image, layout: Layout) -> int:
    """init_top_pgt: the linear map (1 GiB pages), vmemmap and kernel map (2 MiB pages)."""
    m = img.m
    pgd = img.alloc(m.page)
    pse = 0xE3  # present|rw|accessed|dirty|PSE

    def table_for(parent: int, index: int) -> int:
        return _table(img, parent, index, 0x000FFFFFFFFFF000, 0x63)

    for gib in range(-(-layout.end // (1 << 30))):
        va = m.linear_offset + (gib << 30)
        pud = table_for(pgd, (va >> 39) & 511)
        img.u64(pud + 8 * ((va >> 30) & 511), (gib << 30) | pse)
    for sec in layout.sections:
        va = m.vmemmap + sec * m.section_pages * SIZEOF_PAGE
        pud = table_for(pgd, (va >> 39) & 511)
        pmd = table_for(pud, (va >> 30) & 511)
        img.u64(pmd + 8 * ((va >> 21) & 511), layout.backing(sec) | pse)
    pud = table_for(pgd, (m.image_offset >> 39) & 511)
    pmd = table_for(pud, (m.image_offset >> 30) & 511)
    for i in range(512):
        img.u64(pmd + 8 * i, (i << 21) | pse)
    return pgd


def _page_tables_arm64_64k(img: _Image, layout: Layout) -> int:
    """swapper_pg_dir with a 64K granule and 48-bit VAs (levels 1-3: VA bits 47:42, 41:29,
    28:16), mapping each section's struct pages with 64K pages."""
    m = img.m
    pgd = img.alloc(m.page)
    page = 0x403  # valid|page|AF

    def table_for(parent: int, index: int) -> int:
        return _table(img, parent, index, 0x0000FFFFFFFF0000, 0x3)  # valid|table

    per_section = m.section_pages * SIZEOF_PAGE
    for sec in layout.sections:
        for at in range(0, per_section, m.page):
            va = m.vmemmap + sec * per_section + at
            pmd = table_for(pgd, (va >> 42) & 0x3F)
            pte = table_for(pmd, (va >> 29) & 0x1FFF)
            img.u64(pte + 8 * ((va >> 16) & 0x1FFF), (layout.backing(sec) + at) | page)
    return pgd


def _mem_section(img: _Image, layout: Layout) -> int:
    m = img.m
    roots = img.alloc(m.roots * 8)
    per_root = m.page // 16
    for sec in layout.sections:
        r = sec // per_root
        root = img.u64_at(roots + 8 * r)
        if not root:
            root = img.virt(img.alloc(m.page))
            img.u64(roots + 8 * r, root)
        # present | has mem_map | online | early; the map is pfn-relative, so vmemmap itself
        img.u64(root - m.image_offset + 16 * (sec % per_root), m.vmemmap | 0xF)
    return img.virt(roots)


def _uts(img: _Image, host: str) -> int:
    addr = img.alloc(img.m.page)
    fields = ("Linux", host, RELEASE, "#1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1", img.m.name,
              "(none)")
    img.put(addr, b"".join(f.encode().ljust(65, b"\0") for f in fields))
    return img.virt(addr)


class _Pools:
    """Page contents: random, code-like (about 2:1 with zlib) and slab-like (about 4:1)."""

    def __init__(self, rng: np.random.Generator, m: Machine) -> None:
        self.size = m.page
        n = POOL_BYTES
        self.random = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        code = rng.choice(np.array([0x48, 0x89, 0x8B, 0xE8, 0x0F, 0x85, 0xC3, 0x00, 0xFF, 0x41,
                                    0x55, 0x5D], np.uint8), n)
        noise = rng.random(n) < 0.3
        code[noise] = rng.integers(0, 256, int(noise.sum()), dtype=np.uint8)
        self.code = code.tobytes()
        slab = np.zeros((n // 8,), dtype=np.uint64)
        kinds = rng.integers(0, 4, len(slab))
        ptrs = m.linear_offset + (rng.integers(0, 1 << 26, len(slab), dtype=np.uint64)
                                  << np.uint64(6))
        slab = np.where(kinds == 0, ptrs, np.where(kinds == 1, rng.integers(0, 4096, len(slab)),
                                                  0)).astype(np.uint64)
        self.slab = slab.tobytes()

    def page(self, pool: bytes, rng: np.random.Generator) -> bytes:
        at = int(rng.integers(0, len(pool) // self.size)) * self.size
        return pool[at:at + self.size]


# group kinds of the 256-page mix, 4 pages each, with their weights
MIX = (("cache", 28), ("anon", 22), ("free2", 20), ("slab_compound", 10), ("slab", 6),
       ("kernel_random", 3), ("kernel_code", 3), ("kernel_zero", 5), ("swapcache", 2),
       ("offline", 1))
BULK = (("free10", 55), ("cache_folio", 20), ("thp", 15), ("hugetlb", 10))


def _choose(rng: np.random.Generator, table: tuple[tuple[str, int], ...], n: int) -> list[str]:
    names = [k for k, _ in table]
    w = np.array([v for _, v in table], dtype=float)
    return [names[i] for i in rng.choice(len(names), n, p=w / w.sum())]


Planned = tuple[npt.NDArray[np.void], list[tuple[int, bytes]]]


class _Section:
    """One section's struct pages being filled in, and (pfn, data) of its pages with data."""

    def __init__(self, sec: int, m: Machine) -> None:
        self.m = m
        self.base = sec * m.section_pages
        self.pages = np.zeros(m.section_pages, dtype=PAGE_DTYPE)
        self.data: list[tuple[int, bytes]] = []
        self.mapping_file = m.linear_offset + 0x10000000 + (sec << 12)
        self.mapping_anon = m.linear_offset + 0x20000000 + (sec << 12) + 1
        self.free: list[tuple[int, int]] = []  # (first page, order) of each free block
        self.compounds: list[tuple[int, int]] = []  # (head, order) of each compound page

    def vaddr(self, i: int) -> int:
        return self.m.vmemmap + (self.base + i) * SIZEOF_PAGE

    def buddy(self, i: int, order: int) -> None:
        self.pages["mapcount"][i] = BUDDY
        self.pages["private"][i] = order
        self.free.append((i, order))

    def compound(self, i: int, order: int, flags: int, mapping: int, dtor: int,
                 tails: bool) -> None:
        pages = self.pages
        self.compounds.append((i, order))
        pages["flags"][i] = flags | (1 << PG_HEAD)
        pages["mapping"][i] = mapping
        pages["mapcount"][i] = -1
        pages["order"][i + 1] = order
        pages["dtor"][i + 1] = dtor
        pages["chead"][i + 1] = self.vaddr(i) | 1
        if tails:
            pages["chead"][i + 2:i + (1 << order)] = self.vaddr(i) | 1

    def fill(self, i: int, pool: bytes, pools: _Pools, rng: np.random.Generator) -> None:
        self.data.extend((self.base + i + k, pools.page(pool, rng)) for k in range(4))


def _section(sec: int, m: Machine, rng: np.random.Generator, pools: _Pools,
             reserved: list[tuple[int, int]]) -> Planned:
    """The struct pages of one section, and (pfn, data) of its pages that hold data."""
    s = _Section(sec, m)
    s.pages["mapcount"][:256] = -1
    for g, kind in enumerate(_choose(rng, MIX, 64)):
        _small(s, 4 * g, kind, rng, pools)
    # free buddy blocks of every order
    s.buddy(256, 8)
    s.buddy(512, 9)
    at = 1024
    for order in (9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0):
        s.buddy(at, order)
        at += 1 << order
    for u, kind in enumerate(_choose(rng, BULK, (m.section_pages - 2048) // 1024)):
        _bulk(s, 2048 + 1024 * u, kind)
    # kernel memory (image, vmemmap): reserved, whatever the plan says
    base, pages = s.base, s.pages
    for start, end in reserved:
        lo, hi = max(start, base) - base, min(end, base + m.section_pages) - base
        if lo < hi:
            pages[lo:hi] = np.zeros(1, dtype=PAGE_DTYPE)
            pages["flags"][lo:hi] = 1 << PG_RESERVED
            pages["mapcount"][lo:hi] = -1
            s.data = [(p, d) for p, d in s.data if not base + lo <= p < base + hi]
    _in_use(s)
    if m is X86_64:
        _zone_flags(s)
    return pages, s.data


def _zone_flags(s: _Section) -> None:
    """Set each struct page's zone and last_cpupid bits, but inside free blocks past their
    first FREE_HEAD_WRITTEN pages."""
    addr = (s.base + np.arange(len(s.pages), dtype=np.uint64)) * np.uint64(s.m.page)
    zone = np.where(addr < DMA_END, np.uint64(ZONE_DMA),
                    np.where(addr < DMA32_END, np.uint64(ZONE_DMA32), np.uint64(ZONE_NORMAL)))
    zone[_in_free_blocks(s, FREE_HEAD_WRITTEN)] = 0
    s.pages["flags"] |= zone


def _in_free_blocks(s: _Section, past: int = 0) -> npt.NDArray[np.bool_]:
    """The struct pages of free blocks, of each block from its `past`th page on: with
    FREE_HEAD_WRITTEN, the ones left unwritten (holes)."""
    inside = np.zeros(len(s.pages), dtype=bool)
    for i, order in s.free:
        inside[i + past:i + (1 << order)] = True
    return inside


LIST_POISON2 = 0xDEAD000000000122  # a slab's slab_list.prev (POISON_POINTER_DELTA on x86_64)


def _in_use(s: _Section) -> None:
    """What a running kernel leaves in the struct pages beside what the filters read, as
    a Debian 12 crash-cycle vmcore has it: lru pointing at itself (memmap_init's
    INIT_LIST_HEAD), LRU pages linked into lists in no particular order with an index and
    a memcg, free blocks' heads linked into free lists, slab pages their freelist, and
    _refcount. Without it the struct pages of a section are nearly all alike and compress
    to a tenth of what a real kernel's do. Fields a filter decides by (flags, mapping,
    _mapcount, private, the compound ones) are left as planned: so a compound page's
    tails, past the first, get only the lru.prev that a crash-cycle vmcore's hugetlb
    tails keep (their own address), and the holes past a free block's first
    FREE_HEAD_WRITTEN struct pages stay holes (less to compress than a kernel would
    leave). Drawn from the section's own RNG, so the plan of the sections after it does
    not change."""
    rng = np.random.default_rng(s.base)
    n = len(s.pages)
    words = s.pages.view("<u8").reshape(n, 8)
    lru = np.uint64(s.vaddr(0) + 8) + np.arange(n, dtype=np.uint64) * np.uint64(SIZEOF_PAGE)
    tail = np.zeros(n, dtype=bool)
    later = np.zeros(n, dtype=bool)  # tails past the first, which holds order and dtor there
    for i, order in s.compounds:
        tail[i + 1:i + (1 << order)] = True
        later[i + 2:i + (1 << order)] = True
    free = _in_free_blocks(s)
    own = ~tail & ~_in_free_blocks(s, FREE_HEAD_WRITTEN)
    words[own, 1] = lru[own]
    words[own, 2] = lru[own]
    words[later, 2] = lru[later]  # a tail keeps the lru.prev it was made with
    flags = s.pages["flags"]
    on_lru = own & ~free & ((flags & ((1 << PG_LRU) | (1 << PG_SWAPCACHE))) != 0)
    _link(words, lru, rng.permutation(np.flatnonzero(on_lru)))
    heads = np.array([i for i, _ in s.free], dtype=np.intp)
    _link(words, lru, rng.permutation(heads))
    count = int(on_lru.sum())
    words[on_lru, 4] = rng.integers(0, 1 << 20, count, dtype=np.uint64)  # index
    words[on_lru, 7] = np.uint64(s.m.linear_offset + 0x50000000)  # memcg_data
    slab = own & ((flags & (1 << PG_SLAB)) != 0)
    words[slab, 1] = 0
    words[slab, 2] = np.uint64(LIST_POISON2)
    words[slab, 4] = np.uint64(s.m.linear_offset + 0x60000000) + (
        rng.integers(0, 1 << 24, int(slab.sum()), dtype=np.uint64) << np.uint64(6))
    refcount = s.pages["refcount"]
    refcount[own & ~free] = 1
    refcount[on_lru] += rng.integers(0, 2, count, dtype=np.uint32)


def _link(words: npt.NDArray[np.uint64], lru: npt.NDArray[np.uint64],
          order: npt.NDArray[np.intp]) -> None:
    """The struct pages `order` as one circular list through their lru."""
    if len(order):
        words[order, 1] = lru[np.roll(order, -1)]
        words[order, 2] = lru[np.roll(order, 1)]


def _small(s: _Section, i: int, kind: str, rng: np.random.Generator, pools: _Pools) -> None:
    """Four pages from i of one MIX kind."""
    pages, sl = s.pages, slice(i, i + 4)
    if kind == "cache":
        private = rng.random(4) < 0.15
        pages["flags"][sl] = (1 << PG_LRU) | np.where(private, 1 << PG_PRIVATE, 0)
        pages["mapping"][sl] = s.mapping_file
    elif kind == "anon":
        pages["flags"][sl] = (1 << PG_LRU) | (1 << PG_SWAPBACKED)
        pages["mapping"][sl] = s.mapping_anon
    elif kind == "swapcache":
        pages["flags"][sl] = (1 << PG_SWAPCACHE) | (1 << PG_SWAPBACKED)
        pages["mapping"][sl] = s.mapping_anon
    elif kind == "free2":
        pages["mapcount"][sl] = 0  # inside the block: never looked at
        s.buddy(i, 2)
    elif kind == "slab_compound":
        s.compound(i, 2, 1 << PG_SLAB, s.m.linear_offset + 0x30000000, COMPOUND_DTOR, True)
        s.fill(i, pools.slab, pools, rng)
    elif kind == "slab":
        pages["flags"][sl] = 1 << PG_SLAB
        pages["mapping"][sl] = s.m.linear_offset + 0x30000000
        s.fill(i, pools.slab, pools, rng)
    elif kind == "offline":
        pages["mapcount"][sl] = OFFLINE
    else:
        pages["flags"][sl] = 1 << PG_RESERVED
        pool = {"kernel_random": pools.random, "kernel_code": pools.code}.get(kind)
        if pool is not None:
            s.fill(i, pool, pools, rng)


def _bulk(s: _Section, i: int, kind: str) -> None:
    """1024 pages from i of one BULK kind: free, or two order-9 compounds."""
    if kind == "free10":
        s.buddy(i, 10)
        return
    flags, mapping, dtor = {
        "cache_folio": (1 << PG_LRU, s.mapping_file, COMPOUND_DTOR),
        "thp": ((1 << PG_LRU) | (1 << PG_SWAPBACKED), s.mapping_anon, THP_DTOR),
    }.get(kind, (0, s.m.linear_offset + 0x40000000, HUGETLB_DTOR))
    for h in (i, i + 512):
        s.compound(h, 9, flags, mapping, dtor, False)


SPARSE_BLOCK = 4096  # the file system's block: what is all zeros is left a hole


def _write_sparse(fd: int, offset: int, buf: bytes | memoryview) -> None:
    """Write only the 4 KiB blocks of `buf` that are not all zeros."""
    view = np.frombuffer(buf, dtype=np.uint64).reshape(-1, SPARSE_BLOCK // 8)
    nonzero = view.any(axis=1)
    if not nonzero.any():
        return
    edges = np.flatnonzero(np.diff(np.concatenate(([0], nonzero.astype(np.int8), [0]))))
    mv = memoryview(buf)
    for a, b in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        os.pwrite(fd, mv[a * SPARSE_BLOCK:b * SPARSE_BLOCK], offset + a * SPARSE_BLOCK)


def _elf_header(layout: Layout, notes: bytes) -> bytes:
    m = layout.m
    loads = [(m.image_offset + m.kernel_phys, m.kernel_phys, KERNEL_SIZE)]
    loads += [(m.linear_offset + a, a, b - a) for a, b in layout.ranges]
    phnum = 1 + len(loads)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    ehdr = ident + struct.pack("<HHIQQQIHHHHHH", 4, m.elf_machine, 1, 0, 64, 0, 0, 64, 56, phnum,
                               64, 0, 0)
    note_off = 64 + 56 * phnum
    phdrs = struct.pack("<IIQQQQQQ", 4, 0, note_off, 0, 0, len(notes), len(notes), 0)
    for vaddr, paddr, size in loads:
        phdrs += struct.pack("<IIQQQQQQ", 1, 7, DATA_OFFSET + paddr, vaddr, paddr, size, size, 0)
    head = ehdr + phdrs + notes
    assert len(head) <= DATA_OFFSET
    return head


def write_vmcore(path: str, ram: int, seed: int = 1, arch: str = "x86_64") -> None:
    """Write a sparse vmcore of `ram` bytes of RAM (whole sections: 128 MiB on x86_64,
    512 MiB on arm64) to `path`."""
    m = MACHINES[arch]
    layout = Layout(ram, m)
    rng = np.random.default_rng(seed)
    pools = _Pools(rng, m)
    img = _Image(m)
    img.put(m.kernel_phys, pools.code[:4 << 20] + pools.slab[:2 << 20] + pools.random[:1 << 20])
    pgd = (_page_tables if m is X86_64 else _page_tables_arm64_64k)(img, layout)
    mem_section = _mem_section(img, layout)
    uts = _uts(img, f"synthetic-{ram >> 30}g")
    tables = (f"SYMBOL(init_top_pgt)={img.virt(pgd):x}\n" if m is X86_64 else "")
    info = (f"OSRELEASE={RELEASE}\n"
            + VMCOREINFO.format(page=m.page, roots=m.roots, section_bits=m.section_bits,
                                physmem_bits=m.physmem_bits, free_area=m.free_area)
            + m.vmcoreinfo
            + f"SYMBOL(init_uts_ns)={uts:x}\nSYMBOL(mem_section)={mem_section:x}\n"
            f"SYMBOL(_stext)={img.virt(m.kernel_phys):x}\n" + tables
            + f"SYMBOL(swapper_pg_dir)={img.virt(pgd):x}\nCRASHTIME={CRASHTIME}\n")
    notes = note(b"CORE", 1, bytes(336)) + note(b"VMCOREINFO", 0, info.encode())
    ps = m.page
    reserved = [(m.kernel_phys // ps, (m.kernel_phys + KERNEL_SIZE) // ps),
                (layout.vmemmap_phys // ps, layout.end // ps)]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.pwrite(fd, _elf_header(layout, notes), 0)
        for sec in layout.sections:
            pages, data = _section(sec, m, rng, pools, reserved)
            _write_sparse(fd, DATA_OFFSET + layout.backing(sec), pages.tobytes())
            for pfn, page in data:
                if any(a <= pfn * ps < b for a, b in layout.ranges):
                    os.pwrite(fd, page, DATA_OFFSET + pfn * ps)
        _write_sparse(fd, DATA_OFFSET + m.kernel_phys, bytes(img.buf))
        os.ftruncate(fd, DATA_OFFSET + layout.end)
    finally:
        os.close(fd)
