"""Which pages of a dump to keep: makedumpfile's dump levels, from VMCOREINFO alone.

The dump-level bits are makedumpfile's -d: 1 zero pages, 2 non-private page
cache, 4 all page cache, 8 user data (anonymous and hugetlbfs), 16 free pages.
Decisions follow makedumpfile's __exclude_unnecessary_pages() page for page,
including its order of tests and its walk, which skips the rest of a block
once a compound head or a free buddy block is excluded: the bitmaps this
module produces equal makedumpfile's on the same input. The per-page tests
are numpy expressions over one memory section of struct pages at a time, so
memory stays bounded by the section size, not the dump size; the bitmaps
come window by window (`dumpable_windows`), makedumpfile's cyclic mode.

Zero pages are found while the page data is read (`zero_pages`), not from
struct page.

Where struct pages cannot be used, nothing is refused: with no known layout
(kernels before 4.16, VMCOREINFO without struct page) every page is kept
but zero pages, and a section whose struct pages cannot be read keeps all its
pages; both are said in `FilterStats.warnings`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

import numpy as np

from kdumpctl_py.capture.pagetables import PageTables
from kdumpctl_py.capture.vmcore import MissingMemory, Vmcore
from kdumpctl_py.errors import KdumpError
from kdumpctl_py.facts.vmcoreinfo import VmcoreInfo, release_version

if TYPE_CHECKING:  # numpy.typing takes a second to import in a TCG capture kernel
    import numpy.typing as npt

DL_ZERO, DL_CACHE, DL_CACHE_PRIVATE, DL_USER, DL_FREE = 1, 2, 4, 8, 16
PGMM_CACHED = 512  # makedumpfile reads struct pages in blocks of 512
SECTION_MAP_MASK = ~((1 << 5) - 1) & ((1 << 64) - 1)  # SECTION_MAP_LAST_BIT = 1 << 5
SECTION_MARKED_PRESENT = 1
KERNEL_4_16 = (4, 16)
# What a VMCOREINFO may say and still be believed: struct page is 56-80 bytes on every
# 64-bit kernel of these years; sections are 2^24 (ppc64) to 2^29 bytes (arm64, 64K pages).
MIN_STRUCT_PAGE, MAX_STRUCT_PAGE = 32, 256
MAX_SECTION_BITS = 40

Bits: TypeAlias = "npt.NDArray[np.bool_]"
STRUCT_PAGE_LEVELS = DL_CACHE | DL_CACHE_PRIVATE | DL_USER | DL_FREE
PAGE_TYPE_BASE = 0xF0000000  # Linux 4.16-6.11: a type is a cleared bit under this base


class StructPagesUnknown(KdumpError):
    """VMCOREINFO does not say enough about struct page to decide on pages by it."""


class PageLayout(NamedTuple):
    """struct page as VMCOREINFO describes it, and the values that mark page kinds."""

    page_size: int
    sizeof_page: int
    flags: int
    mapping: int
    mapcount: int | None
    private: int | None
    compound_head: int | None
    order_offset: int  # in the first tail page; 0 = unknown
    dtor_offset: int
    numbers: dict[str, int]
    max_order: int | None  # LENGTH(zone.free_area)
    version: tuple[int, int]

    def number(self, name: str) -> int | None:
        return self.numbers.get(name)


def page_layout(info: VmcoreInfo) -> PageLayout:
    need = {"SIZE(page)": info.size("page"), "OFFSET(page.flags)": info.offset("page.flags"),
            "OFFSET(page.mapping)": info.offset("page.mapping")}
    missing = [k for k, v in need.items() if v is None]
    if missing:
        raise StructPagesUnknown(f"VMCOREINFO lacks {', '.join(missing)}")
    sizeof_page = info.size("page")
    assert sizeof_page is not None
    if not MIN_STRUCT_PAGE <= sizeof_page <= MAX_STRUCT_PAGE:
        raise StructPagesUnknown(f"VMCOREINFO SIZE(page)={sizeof_page} is not the size of a "
                                 "struct page")
    # Linux 6.3+ moved the order and destructor into struct folio, past the head page.
    folio_order, folio_dtor = info.offset("folio._folio_order"), info.offset("folio._folio_dtor")
    order = (folio_order - sizeof_page if folio_order is not None
             else info.offset("page.compound_order") or 0)
    dtor = (folio_dtor - sizeof_page if folio_dtor is not None
            else info.offset("page.compound_dtor") or 0)
    names = ("PG_lru", "PG_private", "PG_swapcache", "PG_swapbacked", "PG_slab", "PG_head_mask",
             "PG_hwpoison", "PG_hugetlb", "PG_buddy", "PAGE_BUDDY_MAPCOUNT_VALUE",
             "PAGE_OFFLINE_MAPCOUNT_VALUE", "PAGE_SLAB_MAPCOUNT_VALUE",
             "PAGE_HUGETLB_MAPCOUNT_VALUE", "PAGE_UNACCEPTED_MAPCOUNT_VALUE", "HUGETLB_PAGE_DTOR")
    numbers = {n: v for n in names if (v := info.number(n)) is not None}
    version = release_version(info.osrelease) or (0, 0)
    if version < KERNEL_4_16:
        raise StructPagesUnknown(f"the struct page layout of kernels older than 4.16 "
                                 f"({info.osrelease}) is not known")
    offsets = {k: info.offset(f"page.{k}") for k in ("_mapcount", "private", "compound_head")}
    fields = {"flags": need["OFFSET(page.flags)"], "mapping": need["OFFSET(page.mapping)"],
              **offsets}
    for name, at in fields.items():
        if at is not None and not 0 <= at <= sizeof_page - 4:
            raise StructPagesUnknown(f"VMCOREINFO OFFSET(page.{name})={at} is outside a struct "
                                     f"page of {sizeof_page} bytes")
    return PageLayout(info.page_size or 4096, sizeof_page, need["OFFSET(page.flags)"] or 0,
                      need["OFFSET(page.mapping)"] or 0, offsets["_mapcount"],
                      offsets["private"], offsets["compound_head"], order, dtor, numbers,
                      info.length("zone.free_area"), version)


def max_mapnr(vmcore: Vmcore) -> int:
    end = max((s.paddr + s.memsz for s in vmcore.core.loads), default=0)
    return -(-end // vmcore.page_size)


def present_pages(vmcore: Vmcore, nr: int, first: int = 0) -> Bits:
    """makedumpfile's 1st bitmap for pfns first..nr (create_bitmap_from_memhole): the
    pages from the one a PT_LOAD starts in up to the one it ends in, that one left out
    unless it ends on a page boundary (docs/page-filter.md: a segment's partial pages)."""
    shift = vmcore.page_size.bit_length() - 1
    bits = np.zeros(nr - first, dtype=bool)
    for s in vmcore.core.loads:
        _mark(bits, first, s.paddr >> shift, (s.paddr + s.memsz) >> shift)
    return bits


def nodata_pages(vmcore: Vmcore, nr: int, first: int = 0) -> Bits:
    """Pages wholly past p_filesz of a segment (exclude_nodata_pages); but not a page
    another segment holds whole, which makedumpfile would leave out."""
    ps = vmcore.page_size
    shift = ps.bit_length() - 1
    bits = np.zeros(nr - first, dtype=bool)
    whole = np.zeros(nr - first, dtype=bool)
    for s in vmcore.core.loads:
        end = s.paddr + s.memsz
        _mark(bits, first, -(-(s.paddr + s.filesz) // ps), -(-end // ps))
        _mark(whole, first, -(-s.paddr // ps), (s.paddr + s.filesz) >> shift)
    return bits & ~whole


def in_segments(vmcore: Vmcore, nr: int, first: int = 0) -> Bits:
    """Pages whose first byte a PT_LOAD covers (makedumpfile's is_in_segs)."""
    ps = vmcore.page_size
    bits = np.zeros(nr - first, dtype=bool)
    for s in vmcore.core.loads:
        _mark(bits, first, -(-s.paddr // ps), -(-(s.paddr + s.memsz) // ps))
    return bits


def _mark(bits: Bits, first: int, lo: int, hi: int) -> None:
    """Set pfns lo..hi in `bits`, which holds pfns from `first` on."""
    lo, hi = max(lo - first, 0), min(hi - first, len(bits))
    if lo < hi:
        bits[lo:hi] = True


Section = tuple[int, int, int | None]  # first pfn, end pfn, address of its struct pages


def mem_maps(vmcore: Vmcore, pt: PageTables, nr: int) -> Iterator[Section]:
    """(first pfn, end pfn, virtual address of its struct pages) per present SPARSEMEM section;
    None for the address where the section's own entry cannot be read. What it needs (the
    roots) is read now, and raises now; each section's entry is read as it is reached, so
    nothing is held per section (a TiB has 8,192)."""
    info = vmcore.vmcoreinfo
    root_sym = info.symbol("mem_section")
    section_bits, physmem_bits = info.number("SECTION_SIZE_BITS"), info.number("MAX_PHYSMEM_BITS")
    size_sec, off_map = info.size("mem_section"), info.offset("mem_section.section_mem_map")
    roots = info.length("mem_section")
    if None in (root_sym, section_bits, physmem_bits, size_sec, off_map, roots):
        raise StructPagesUnknown("VMCOREINFO does not describe SPARSEMEM")
    assert root_sym is not None and section_bits is not None and physmem_bits is not None
    assert size_sec is not None and off_map is not None and roots is not None
    shift = vmcore.page_size.bit_length() - 1
    if not (shift < section_bits <= MAX_SECTION_BITS and section_bits < physmem_bits <= 64
            and 0 < size_sec <= vmcore.page_size and 0 <= off_map <= size_sec - 8
            and roots > 0):
        raise StructPagesUnknown(
            f"VMCOREINFO's SPARSEMEM numbers do not fit together (SECTION_SIZE_BITS "
            f"{section_bits}, MAX_PHYSMEM_BITS {physmem_bits}, SIZE(mem_section) {size_sec}, "
            f"OFFSET(mem_section.section_mem_map) {off_map}, LENGTH(mem_section) {roots})")
    per_section = 1 << (section_bits - shift)
    nr_sections = -(-nr // per_section)
    per_root = vmcore.page_size // size_sec
    extreme = roots == -(-(1 << (physmem_bits - section_bits)) // per_root)
    sizeof_page = info.size("page") or 64

    # Only the roots of sections below max_mapnr: riscv64's MAX_PHYSMEM_BITS of 56 makes the
    # whole root array 2^22 pointers (32 MiB), which the capture kernel cannot spare.
    wanted = min(roots, -(-nr_sections // per_root)) if extreme else 0
    root_ptrs = list(struct.unpack(f"<{wanted}Q", vmcore.read_virt(root_sym, 8 * wanted))
                     ) if wanted else []

    def each() -> Iterator[Section]:
        for sec in range(nr_sections):
            if extreme:
                root = root_ptrs[sec // per_root] if sec // per_root < len(root_ptrs) else 0
                if not root:
                    continue
                addr = root + (sec % per_root) * size_sec
            else:
                addr = root_sym + sec * size_sec
            start = sec * per_section
            try:
                (coded,) = struct.unpack("<Q", vmcore.read_virt(addr + off_map, 8))
            except MissingMemory:
                yield start, min(start + per_section, nr), None
                continue
            if not coded & SECTION_MARKED_PRESENT:
                continue
            mem_map = ((coded & SECTION_MAP_MASK) + start * sizeof_page) & ((1 << 64) - 1)
            yield start, min(start + per_section, nr), mem_map

    return each()


def zero_pages(chunk: bytes, page_size: int) -> Bits:
    """A bool per page of `chunk`: True where the page is all zeros."""
    words = np.frombuffer(chunk, dtype=np.uint64).reshape(-1, page_size // 8)
    return np.asarray(~words.any(axis=1))


def fill_pages(chunk: bytes | bytearray | memoryview,
               page_size: int) -> tuple[npt.NDArray[np.uint64], Bits]:
    """The first 8-byte word of each page of `chunk`, and True where the page is nothing
    but that word repeated (a zero page is 0 repeated): such pages are compressed once."""
    words = np.frombuffer(chunk, dtype=np.uint64).reshape(-1, page_size // 8)
    first = words[:, 0].copy()
    # The last word first: most pages of data differ there, and only the rest are read
    # whole, by two reductions (a page is one word when its least word is its greatest):
    # all of them when they are many (zero pages, on most machines), else a copy of those.
    same = words[:, -1] == first
    maybe = np.flatnonzero(same)
    if 4 * len(maybe) > len(same):
        return first, np.asarray(words.min(axis=1) == words.max(axis=1))
    few = words[maybe]
    same[maybe] = few.min(axis=1) == few.max(axis=1)
    return first, same


@dataclass
class FilterStats:
    """Pages the filter excluded, by makedumpfile's kinds, and what it had to say."""

    free: int = 0
    cache: int = 0
    cache_private: int = 0
    user: int = 0
    hwpoison: int = 0
    offline: int = 0
    struct_pages: bool = True  # False: no decision by struct page was made at all
    unfiltered: int = 0  # pages kept because their struct pages could not be read
    warnings: list[str] = field(default_factory=list)

    def level_written(self, dump_level: int) -> int:
        """The dump level the bitmap really has: zero pages only when struct pages were not used."""
        return dump_level if self.struct_pages else dump_level & ~STRUCT_PAGE_LEVELS


def _field(raw: bytes | memoryview, stride: int, offset: int, dtype: str,
           n: int, at: npt.NDArray[np.intp] | None = None) -> npt.NDArray[Any]:
    """Field at `offset` of each of n structs of `stride` bytes, a view without a copy, or
    of the structs `at` only, gathered; zeros past the end of `raw` (the first tail page
    of the section's last page)."""
    fit = min(n, max(0, (len(raw) - offset - np.dtype(dtype).itemsize) // stride + 1))
    view = np.ndarray((fit,), dtype=dtype, buffer=raw, offset=offset, strides=(stride,))
    if fit == n:
        return view if at is None else view[at]
    if at is None:
        return np.concatenate((view, np.zeros(n - fit, dtype=dtype)))
    out = np.zeros(len(at), dtype=dtype)
    inside = at < fit
    out[inside] = view[at[inside]]
    return out


Window = tuple[int, Bits, Bits]  # first pfn, then the 1st and 2nd bitmaps from it on
SECTION_PAGES_DEFAULT = 1 << 15
STRUCT_PAGES_BLOCK = 16 * PGMM_CACHED  # struct pages read and decided at once: 512 KiB
SKIP_ROW = 32  # struct pages inside excluded blocks are stepped over by rows of 32 (2 KiB)
# Mapped and decided at once: 2 MiB, a whole section of 4K pages. A block costs a few
# hundred numpy calls whatever it holds, and on most sections few pages are left to decide
# once the excluded blocks are stepped over; the pages that are, DECIDE_PAGES at a time,
# so that the temporaries (the filter's peak memory) stay those of 1 MiB blocks. The 64
# GiB synthetic vmcore's filter: 0.61 s with 1 MiB blocks, 0.39 s so, peak RSS the same.
MAPPED_BLOCK = 64 * PGMM_CACHED
DECIDE_PAGES = 4096


def dumpable_pages(vmcore: Vmcore, dump_level: int, stats: FilterStats | None = None,
                   struct_pages: bool = True, tolerant: bool = False) -> tuple[Bits, Bits]:
    """makedumpfile's 1st and 2nd bitmaps (zero pages still in the 2nd), whole: one byte
    per page, for tests and small dumps; saving goes window by window."""
    ((_, present, keep),) = dumpable_windows(vmcore, dump_level, stats, struct_pages, tolerant,
                                             window=max_mapnr(vmcore))
    return present, keep


def section_pages(vmcore: Vmcore) -> int:
    """Pages per SPARSEMEM section: windows are made of whole sections."""
    bits = vmcore.vmcoreinfo.number("SECTION_SIZE_BITS")
    shift = vmcore.page_size.bit_length() - 1
    return (1 << (bits - shift) if bits and shift < bits <= MAX_SECTION_BITS
            else SECTION_PAGES_DEFAULT)


def window_pages(vmcore: Vmcore, window: int) -> int:
    """`window` rounded up to whole sections, at least one."""
    per = max(section_pages(vmcore), 8)
    return max(per, -(-window // per) * per)


def dumpable_windows(vmcore: Vmcore, dump_level: int, stats: FilterStats | None = None,
                     struct_pages: bool = True, tolerant: bool = False,
                     window: int = SECTION_PAGES_DEFAULT) -> Iterator[Window]:
    """makedumpfile's 1st and 2nd bitmaps window by window (its cyclic mode), in pfn order,
    each window `window` pages rounded up to whole sections, the last one shorter.

    `struct_pages=False` makes no decision by struct page (pages of every kind
    kept); `tolerant` keeps the pages of a section whose decisions raised
    anything, not only of one whose struct pages are missing from the dump.
    Each struct page is read once; a block excluded across a window's end
    carries into the next (`Carry`)."""
    nr = max_mapnr(vmcore)
    step = window_pages(vmcore, window)
    stats = stats if stats is not None else FilterStats()
    plan = _struct_page_plan(vmcore, dump_level, stats, struct_pages, nr)
    carry = Carry()
    # the struct pages of a block that is not mapped, read into the same pages each time
    # (never resized: the previous block's views may still be alive)
    buf = bytearray()
    failed: list[str] = []
    nfailed = 0
    section = next(plan[2], None) if plan is not None else None
    for ws in range(0, max(nr, 1), step):
        we = min(ws + step, nr)
        present = present_pages(vmcore, we, ws)
        keep = present & ~nodata_pages(vmcore, we, ws)
        if plan is not None:
            layout, pt, sections = plan
            segs = in_segments(vmcore, we, ws)
            carry_into(keep, ws, carry, stats)
            while section is not None and section[0] < we:
                start, end, mem_map = section
                section = next(sections, None)
                lo, hi = start - ws, end - ws
                try:
                    if mem_map is None:
                        raise MissingMemory("its mem_section entry is not in the dump")
                    for a, b, raw in _blocks(vmcore, pt, layout, mem_map, present[lo:hi], buf):
                        carry = _exclude_section(layout, dump_level, start + a, raw,
                                                 segs[lo + a:lo + b], keep, carry, stats, ws)
                        del raw  # its mapping goes before the next block's is made
                except Exception as e:  # noqa: BLE001 - the capture kernel keeps what it cannot decide
                    if not (tolerant or isinstance(e, MissingMemory)):
                        raise
                    stats.unfiltered += int(np.count_nonzero(keep[lo:hi]))
                    nfailed += 1
                    if len(failed) < FAILED_NAMED:
                        failed.append(f"{start:#x}-{end - 1:#x} ({e})")
        yield ws, present, keep
    if nfailed:
        stats.warnings.append(f"struct pages of {nfailed} sections could not be used, their "
                              f"pages are kept: pfns {'; '.join(failed)}"
                              + ("; ..." if nfailed > FAILED_NAMED else ""))


FAILED_NAMED = 4  # sections whose failure the warning names
_Plan = tuple[PageLayout, PageTables, Iterator[Section]]


def _struct_page_plan(vmcore: Vmcore, dump_level: int, stats: FilterStats, struct_pages: bool,
                      nr: int) -> _Plan | None:
    """The layout, page tables and sections to decide by, or None (said in the warnings)."""
    info = vmcore.vmcoreinfo
    wanted = bool(dump_level & STRUCT_PAGE_LEVELS)
    if not wanted and info.number("PG_hwpoison") is None:
        return None
    written = dump_level & ~STRUCT_PAGE_LEVELS
    if not struct_pages:
        stats.struct_pages = False
        if wanted:
            stats.warnings.append(f"struct pages not read: every page but zero pages kept "
                                  f"(-d {written})")
        return None
    try:
        layout = page_layout(info)
        pt = PageTables(vmcore)
        return layout, pt, mem_maps(vmcore, pt, nr)
    except KdumpError as e:  # no layout, no page tables, unreadable section roots
        stats.struct_pages = False
        stats.warnings.append(f"{e}: every page but zero pages kept (-d {written})" if wanted
                              else f"{e}: hwpoisoned pages cannot be recognised and are read")
        return None


def _blocks(vmcore: Vmcore, pt: PageTables, layout: PageLayout, mem_map: int, covered: Bits,
            buf: bytearray) -> Iterator[tuple[int, int, memoryview]]:
    """A section's struct pages block by block, (first, end, struct pages) with pfns from
    the section's first: where one mapping of the dump holds MAPPED_BLOCK of them, a view
    of it (no copy, and the decisions' numpy calls paid per larger block); else
    STRUCT_PAGES_BLOCK, read into `buf` for the pfns some PT_LOAD covers (zeros between)."""
    size = layout.sizeof_page
    a = 0
    while a < len(covered):
        b = min(a + MAPPED_BLOCK, len(covered))
        raw = None
        if covered[a:b].all():
            raw = _mapped(vmcore, pt, mem_map + a * size, (b - a) * size)
        if raw is None:
            b = min(a + STRUCT_PAGES_BLOCK, len(covered))
            raw = _read(pt, mem_map + a * size, covered[a:b], buf, size)
        yield a, b, raw
        a = b


def _mapped(vmcore: Vmcore, pt: PageTables, vaddr: int, size: int) -> memoryview | None:
    """`size` bytes at `vaddr` as a view of the mapped dump, if one mapping holds them."""
    paddr, left = pt.translate(vaddr)
    return vmcore.phys_view(paddr, size) if left >= size else None


def _read(pt: PageTables, vaddr: int, covered: Bits, buf: bytearray, size: int) -> memoryview:
    """The struct pages at `vaddr`, read for the pfns `covered` (zeros between) straight
    into `buf`, the walk's one buffer of a whole block, made at its first use."""
    if not buf:
        buf.extend(bytes(STRUCT_PAGES_BLOCK * size))
    view = memoryview(buf)[:len(covered) * size]
    if covered.all():
        pt.read_into(vaddr, view)
        return view
    np.frombuffer(view, dtype=np.uint8).fill(0)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], covered.astype(np.int8), [0]))))
    for a, b in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        pt.read_into(vaddr + a * size, view[a * size:b * size])
    return view


def page_type_is(mapcount: npt.NDArray[np.int32], value: int) -> Bits:
    """Whether `_mapcount` (page_type) holds the page type `value` names, as the kernel tests it:
    the top byte from 6.12 (PGTY_x << 24), a cleared bit under PAGE_TYPE_BASE before."""
    v = value & 0xFFFFFFFF
    mc = mapcount.astype(np.int64) & 0xFFFFFFFF
    if not v & 0xFFFFFF:
        return np.asarray((mc >> 24) == (v >> 24))
    flag = ~v & 0xFFFFFFFF
    return np.asarray((mc & (PAGE_TYPE_BASE | flag)) == PAGE_TYPE_BASE)


KINDS = ("free", "cache", "cache_private", "user", "hwpoison", "offline")  # labels 1..6


class Carry(NamedTuple):
    """An exclusion running past what was decided so far: pfns up to `until`, of kind `kind`
    (makedumpfile's pending exclude_range at the end of a cycle)."""

    until: int = 0
    kind: int = 0


def _exclude_section(
        layout: PageLayout, dump_level: int, start: int, raw_bytes: bytes | memoryview,
        in_segs: Bits, keep: Bits, carry: Carry, stats: FilterStats, base: int = 0,
        step_over: bool = True) -> Carry:
    """Decide on one section's pages from its struct pages; clear what goes from `keep`
    (which holds pfns from `base` on) and return the exclusion that runs past it.

    makedumpfile's walk steps over the block of a page it excludes (a free block, a
    compound page) without looking inside; so are the struct pages inside the excluded
    blocks whose heads sit at a row's start (buddy blocks and compound pages of 2^n pages
    start at multiples of 2^n) left unread, but for the head's row: on a real kernel most
    pages are in such blocks, and every struct page there has flags (its node and zone)
    that the busy test cannot pass over. Should such a head not be reached by the walk
    after all (a block before it covering it), the section is decided again whole."""
    total = len(in_segs)
    heads, skipped = (_excluded_heads(layout, dump_level, start, raw_bytes, in_segs)
                      if step_over else (None, None))
    at = _busy(layout, raw_bytes, in_segs, skipped)
    if not len(at):
        return carry
    first, end, kind = _excluded(layout, dump_level, start, raw_bytes, total, at)
    active = _walk(first, end, carry.until)
    if heads is not None and not _all_in(start + heads, first[active]):
        return _exclude_section(layout, dump_level, start, raw_bytes, in_segs, keep, carry,
                                stats, base, step_over=False)
    return exclude_ranges(first[active], end[active], kind[active], keep, base, carry, stats)


def _excluded(layout: PageLayout, dump_level: int, start: int, raw: bytes | memoryview,
              total: int, at: npt.NDArray[np.intp]) -> tuple[npt.NDArray[np.int64],
                                                             npt.NDArray[np.int64],
                                                             npt.NDArray[np.int8]]:
    """The pages `at` that makedumpfile excludes: first pfn, end and kind of each block,
    decided DECIDE_PAGES at a time, whose temporaries (about 100 bytes a page) are what
    the filter's peak memory is made of on a section of busy pages."""
    parts = []
    for i in range(0, len(at), DECIDE_PAGES):
        piece = at[i:i + DECIDE_PAGES]
        kind, nr_pages = _decide(layout, dump_level, start, raw, total, piece)
        chosen = np.flatnonzero(kind)
        first = start + piece[chosen].astype(np.int64)
        parts.append((first, first + nr_pages[chosen], kind[chosen]))
    first_, end_, kind_ = zip(*parts, strict=True)
    return np.concatenate(first_), np.concatenate(end_), np.concatenate(kind_)


def _all_in(values: npt.NDArray[np.int64], sorted_: npt.NDArray[np.int64]) -> bool:
    """Whether every one of `values` is in the ascending `sorted_` (np.isin sorts both)."""
    at = np.minimum(np.searchsorted(sorted_, values), max(len(sorted_) - 1, 0))
    return bool(len(sorted_)) and bool((sorted_[at] == values).all())


def _excluded_heads(layout: PageLayout, dump_level: int, start: int, raw: bytes | memoryview,
                    in_segs: Bits) -> tuple[npt.NDArray[np.intp], Bits] | tuple[None, None]:
    """The excluded blocks of two SKIP_ROWs or more whose heads start a row, found by
    deciding on the rows' first pages alone: the heads (from the block's first page), and
    per SKIP_ROW pages whether they lie inside one of them past its head's row (never
    read, never decided); (None, None) when there is nothing to step over."""
    total = len(in_segs)
    if total % SKIP_ROW or start % SKIP_ROW:
        return None, None
    aligned = np.arange(0, total, SKIP_ROW)
    aligned = aligned[in_segs[aligned]]
    if not len(aligned):
        return None, None
    kind, nr_pages = _decide(layout, dump_level, start, raw, total, aligned)
    big = (kind != 0) & (nr_pages >= 2 * SKIP_ROW)
    heads, spans = aligned[big], nr_pages[big]
    if not len(heads):
        return None, None
    rows = total // SKIP_ROW
    marks = np.zeros(rows + 1, dtype=np.int64)  # +1 where skipped rows begin, -1 where they end
    np.add.at(marks, np.minimum(heads // SKIP_ROW + 1, rows), 1)
    np.add.at(marks, np.minimum((heads + spans) // SKIP_ROW, rows), -1)
    return heads, np.cumsum(marks[:-1]) > 0


def _busy(layout: PageLayout, raw: bytes | memoryview, in_segs: Bits,
          skipped: Bits | None) -> npt.NDArray[np.intp]:
    """The pages of a block that some test below can exclude, but those in `skipped`
    rows (whose struct pages are not read)."""
    total = len(in_segs)
    size = layout.sizeof_page

    def whole(offset: int | None, dtype: str) -> npt.NDArray[Any]:
        if offset is None:
            return np.zeros(total, dtype=dtype)
        return _field(raw, size, offset, dtype, total)

    def kept(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return a if rows is None else a.reshape(-1, SKIP_ROW)[rows].ravel()

    rows = None if skipped is None else np.flatnonzero(~skipped)
    # Only pages with something set can be excluded: no flag, no anonymous mapping and a
    # _mapcount of -1 or 0 (no page type) passes every test below, and so does a tail
    # page or one outside the segments, so the tests run on the rest only. (A real
    # kernel keeps node and zone in every page's flags: there only tail pages and pages
    # outside the segments are passed over here.)
    # Each field is tested in place, one pass over the block's struct pages (read from
    # memory by the first, from the cache by the others), with temporaries of a byte or
    # four per page: the low byte of `mapping` and of `compound_head` holds the bit tested.
    busy = kept(whole(layout.flags, "<u8")) != 0
    busy |= (kept(whole(layout.mapping, "u1")) & 1).view(bool)
    busy |= (kept(whole(layout.mapcount, "<u4")) + np.uint32(1)) > 1  # neither -1 nor 0
    busy &= (kept(whole(layout.compound_head, "u1")) & 1) == 0
    busy &= kept(in_segs)
    at = np.flatnonzero(busy)
    if rows is None:
        return at
    return rows[at // SKIP_ROW] * SKIP_ROW + at % SKIP_ROW


# One vectorised pass of makedumpfile's __exclude_unnecessary_pages() over the pages `at`
# of a block: each branch below is a kernel version's way of telling one page kind (flags,
# page types, compound order and destructor), and every mask feeds the one if/else chain
# of decide() calls in makedumpfile's order; apart, a dozen arrays would travel between
# functions and the chain would no longer read against makedumpfile's.
def _decide(  # noqa: C901 - makedumpfile's decision chain, as one dispatch
        layout: PageLayout, dump_level: int, start: int, raw_bytes: bytes | memoryview,
        total: int, at: npt.NDArray[np.intp]) -> tuple[npt.NDArray[np.int8],
                                                       npt.NDArray[np.int64]]:
    """What makedumpfile decides for each page `at` of a block of `total` struct pages
    from pfn `start`: its kind (0 = keep, else KINDS' number) and the pages it excludes."""
    size = layout.sizeof_page
    num = layout.numbers
    n = len(at)

    def field(offset: int | None, dtype: str, page: int = 0) -> npt.NDArray[Any]:
        if offset is None:
            return np.zeros(n, dtype=dtype)
        return _field(raw_bytes, size, page * size + offset, dtype, total, at)

    flags = field(layout.flags, "<u8")
    mapping = field(layout.mapping, "<u8")
    mapcount = field(layout.mapcount, "<i4")
    private = field(layout.private, "<u8")
    pfn = start + at.astype(np.int64)

    def bit(name: str) -> npt.NDArray[np.bool_]:
        b = num.get(name)
        if b is None:
            return np.zeros(n, dtype=bool)
        return np.asarray((flags & np.uint64(1 << b)) != 0)

    def mapcount_is(name: str) -> npt.NDArray[np.bool_]:
        v = num.get(name)  # NUMBER() may print a page type either signed or not
        return (np.asarray(mapcount.view(np.uint32) == (v & 0xFFFFFFFF)) if v is not None
                else np.zeros(n, dtype=bool))

    # Compound heads: order and destructor sit in the first tail page.
    head = (flags & np.uint64(num.get("PG_head_mask", 0))) != 0
    head &= (pfn % PGMM_CACHED) != PGMM_CACHED - 1
    head &= at != total - 1  # its tail page is in the next block; heads are order-aligned
    order = np.zeros(n, dtype=np.int64)
    hugetlb = np.zeros(n, dtype=bool)
    if "PAGE_HUGETLB_MAPCOUNT_VALUE" in num or "PG_hugetlb" in num:
        flags1 = field(layout.flags, "<u8", page=1)
        order = np.where(head, (flags1 & np.uint64(0xFF)).astype(np.int64), 0)
        if "PAGE_HUGETLB_MAPCOUNT_VALUE" in num:
            hugetlb = head & mapcount_is("PAGE_HUGETLB_MAPCOUNT_VALUE")
        else:
            hugetlb = head & ((flags1 & np.uint64(1 << num["PG_hugetlb"])) != 0)
    else:
        if layout.order_offset:
            order = np.where(head, field(layout.order_offset, "u1", page=1).astype(np.int64), 0)
        if layout.dtor_offset and "HUGETLB_PAGE_DTOR" in num:
            dtor = field(layout.dtor_offset, "u1", page=1).astype(np.int64)
            hugetlb = head & (dtor == num["HUGETLB_PAGE_DTOR"])
    bad = (order >= 64) | ((pfn & ((np.int64(1) << np.minimum(order, 62)) - 1)) != 0)
    order = np.where(bad, 0, order)

    # 6.10 made slab a page type (PAGE_SLAB_MAPCOUNT_VALUE) and dropped PG_slab.
    slab = bit("PG_slab")
    if "PAGE_SLAB_MAPCOUNT_VALUE" in num:
        slab |= page_type_is(mapcount, num["PAGE_SLAB_MAPCOUNT_VALUE"])
    anon = ((mapping & np.uint64(1)) != 0) & ~slab
    lru, swapcache = bit("PG_lru"), bit("PG_swapcache")
    swapbacked = bit("PG_swapbacked") if "PG_swapbacked" in num else np.ones(n, dtype=bool)
    cache = lru | (swapbacked & swapcache)
    private_flag = bit("PG_private")

    # The if/else chain of makedumpfile, as one label per page (0 = keep).
    kind = np.zeros(n, dtype=np.int8)
    nr_pages = np.left_shift(np.int64(1), order)
    undecided = np.ones(n, dtype=bool)  # tail pages and pages outside segments: not in `at`

    def decide(mask: npt.NDArray[np.bool_], label: int) -> None:
        nonlocal undecided
        sel = undecided & mask
        kind[sel] = label
        undecided = undecided & ~mask

    if dump_level & DL_FREE and "PAGE_BUDDY_MAPCOUNT_VALUE" in num and layout.private is not None:
        buddy = mapcount_is("PAGE_BUDDY_MAPCOUNT_VALUE") & ~slab
        max_order = layout.max_order
        bad_order = buddy & (private >= np.uint64(max_order)) if max_order else np.zeros(n, bool)
        undecided &= ~bad_order  # makedumpfile warns and moves on
        good = buddy & ~bad_order
        nr_pages = np.where(good & undecided,
                            np.left_shift(np.int64(1), np.minimum(private, 62).astype(np.int64)),
                            nr_pages)
        decide(good, 1)
        if "PAGE_UNACCEPTED_MAPCOUNT_VALUE" in num and max_order:
            unacc = mapcount_is("PAGE_UNACCEPTED_MAPCOUNT_VALUE")
            nr_pages = np.where(unacc & undecided, np.int64(1) << (max_order - 1), nr_pages)
            decide(unacc, 1)
    if dump_level & DL_CACHE:
        decide(cache & ~private_flag & ~anon, 2)
    if dump_level & DL_CACHE_PRIVATE:
        decide(cache & ~anon & private_flag, 3)
        decide(cache & ~anon, 2)
    if dump_level & DL_USER:
        decide(anon | hugetlb, 4)
    if "PG_hwpoison" in num:
        decide(bit("PG_hwpoison"), 5)
    if "PAGE_OFFLINE_MAPCOUNT_VALUE" in num:
        decide(~slab & mapcount_is("PAGE_OFFLINE_MAPCOUNT_VALUE"), 6)

    return kind, nr_pages


def _walk(first: npt.NDArray[np.int64], end: npt.NDArray[np.int64], until: int) -> Bits:
    """Which excluded blocks makedumpfile's walk reaches: one that starts inside a block
    excluded before it is never looked at. Vectorised: a block is reached when it starts
    at or past the end of every reached block before it, resolved from the front."""
    active = np.ones(len(first), dtype=bool)
    lo, cover = 0, until
    while lo < len(first):
        ends = np.where(active[lo:], end[lo:], 0)
        before = np.maximum.accumulate(np.concatenate(([cover], ends)))[:-1]
        new = first[lo:] >= before
        differ = np.flatnonzero(new != active[lo:])
        active[lo:] = new
        if not len(differ):
            break
        # everything up to the first change was decided on a settled prefix
        settled = lo + int(differ[0]) + 1
        cover = max(cover, int(np.max(end[lo:settled][active[lo:settled]], initial=0)))
        lo = settled
    return active


def exclude_ranges(first: npt.NDArray[np.int64], end: npt.NDArray[np.int64],
                   kind: npt.NDArray[np.int8], keep: Bits, base: int, carry: Carry,
                   stats: FilterStats) -> Carry:
    """Clear the disjoint, ordered ranges first..end from `keep` (pfns from `base` on),
    counting what each clears by kind; return the one that runs past `keep`, if any."""
    if not len(first):
        return carry
    lo = np.clip(first - base, 0, len(keep))
    hi = np.clip(end - base, 0, len(keep))
    a = int(lo[0])
    # The ranges' edges in order from `a`, lo hi lo hi ...: each range, and the gap after
    # it, is one segment, which numpy sums and fills whole (a running count over every
    # page, numpy's cumsum, cost ten times as much).
    edges = np.empty(2 * len(lo), dtype=np.int64)
    edges[0::2], edges[1::2] = lo - a, hi - a
    span = int(edges[-1])
    part = keep[a:a + span]
    # What each range clears: its kept pages. reduceat gives an empty segment the page at
    # its start, hence the where; one page of padding keeps every edge inside the array.
    padded = np.zeros(span + 1, dtype=np.uint8)
    padded[:span] = part
    inside = np.add.reduceat(padded, edges, dtype=np.int64)[0::2]
    counts = np.bincount(kind, weights=np.where(hi > lo, inside, 0), minlength=len(KINDS) + 1)
    for i, name in enumerate(KINDS, 1):
        setattr(stats, name, getattr(stats, name) + int(counts[i]))
    gaps = np.zeros(len(edges), dtype=bool)
    gaps[1::2] = True
    part &= np.repeat(gaps, np.diff(edges, append=span))
    last = int(np.argmax(end))
    until = int(end[last])
    return Carry(until, int(kind[last])) if until > carry.until else carry


def carry_into(keep: Bits, base: int, carry: Carry, stats: FilterStats) -> None:
    """Apply the part of an exclusion begun before `keep` (pfns from `base` on) that falls in it."""
    if carry.until > base:
        exclude_ranges(np.array([base], np.int64), np.array([carry.until], np.int64),
                       np.array([carry.kind], np.int8), keep, base, Carry(), stats)
