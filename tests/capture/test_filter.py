"""makedumpfile's page decisions, on hand-made struct page arrays."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdumpctl_py.capture import filter as filter_module
from kdumpctl_py.capture.filter import (
    DL_CACHE,
    DL_CACHE_PRIVATE,
    DL_FREE,
    DL_USER,
    KINDS,
    SKIP_ROW,
    Carry,
    FilterStats,
    PageLayout,
    _exclude_section,
    _excluded_heads,
    _walk,
    exclude_ranges,
    fill_pages,
    max_mapnr,
    mem_maps,
)
from kdumpctl_py.capture.pagetables import PageTables
from kdumpctl_py.capture.vmcore import Vmcore
from tests.synthetic_vmcore import write_vmcore

SIZEOF = 64
# Linux 6.1 x86_64 values (from a real VMCOREINFO)
NUMBERS = {"PG_lru": 4, "PG_private": 13, "PG_swapcache": 10, "PG_swapbacked": 19, "PG_slab": 9,
           "PG_head_mask": 1 << 16, "PAGE_BUDDY_MAPCOUNT_VALUE": -129,
           "PAGE_OFFLINE_MAPCOUNT_VALUE": -257, "HUGETLB_PAGE_DTOR": 2}
LAYOUT = PageLayout(4096, SIZEOF, flags=0, mapping=24, mapcount=48, private=40, compound_head=8,
                    order_offset=17, dtor_offset=16, numbers=NUMBERS, max_order=11,
                    version=(6, 1))
BUDDY, OFFLINE = -129, -257


def pages(n: int) -> np.ndarray:
    raw = np.zeros((n, SIZEOF), dtype=np.uint8)
    raw[:, 48:52] = np.frombuffer(np.int32(-1).tobytes(), np.uint8)  # _mapcount = -1
    return raw


def put(raw: np.ndarray, i: int, off: int, value: int, fmt: str = "<u8") -> None:
    raw[i, off:off + np.dtype(fmt).itemsize] = np.frombuffer(np.array(value, fmt).tobytes(),
                                                             np.uint8)


def run(raw: np.ndarray, level: int, start: int = 0) -> tuple[np.ndarray, FilterStats]:
    n = len(raw)
    keep = np.ones(start + n, dtype=bool)
    stats = FilterStats()
    _exclude_section(LAYOUT, level, start, raw.tobytes(), np.ones(n, bool), keep, Carry(),
                     stats)
    return keep[start:], stats


def test_free_buddy_block_covers_its_order() -> None:
    raw = pages(16)
    put(raw, 4, 48, BUDDY, "<i4")
    put(raw, 4, 40, 2)  # order 2: pfns 4..7
    put(raw, 5, 48, BUDDY, "<i4")  # inside the block: never looked at
    put(raw, 5, 40, 3)
    keep, stats = run(raw, DL_FREE)
    assert list(np.flatnonzero(~keep)) == [4, 5, 6, 7]
    assert stats.free == 4
    keep, _ = run(raw, DL_CACHE)
    assert keep.all()


def test_bad_buddy_order_is_kept() -> None:
    raw = pages(4)
    put(raw, 1, 48, BUDDY, "<i4")
    put(raw, 1, 40, 11)  # >= MAX_ORDER
    keep, _ = run(raw, DL_FREE)
    assert keep.all()


def test_slab_is_never_buddy_or_anon() -> None:
    raw = pages(4)
    put(raw, 0, 0, 1 << 9)  # PG_slab
    put(raw, 0, 48, BUDDY, "<i4")
    put(raw, 1, 0, 1 << 9)
    put(raw, 1, 24, 0xFFFF888000000001)  # looks anonymous
    keep, _ = run(raw, 31)
    assert keep[:2].all()


def test_cache_private_and_anon() -> None:
    raw = pages(8)
    put(raw, 0, 0, 1 << 4)  # LRU, file-backed: cache
    put(raw, 1, 0, (1 << 4) | (1 << 13))  # LRU + PG_private: private cache
    put(raw, 2, 0, 1 << 4)
    put(raw, 2, 24, 0xFFFF888000000001)  # LRU anon: user data
    put(raw, 3, 0, (1 << 19) | (1 << 10))  # swapbacked + swapcache: cache
    put(raw, 4, 0, 1 << 10)  # swapcache without swapbacked: not cache
    assert list(np.flatnonzero(~run(raw, DL_CACHE)[0])) == [0, 3]
    assert list(np.flatnonzero(~run(raw, DL_CACHE_PRIVATE)[0])) == [0, 1, 3]
    assert list(np.flatnonzero(~run(raw, DL_USER)[0])) == [2]
    keep, stats = run(raw, DL_CACHE | DL_CACHE_PRIVATE | DL_USER)
    assert list(np.flatnonzero(~keep)) == [0, 1, 2, 3]
    assert (stats.cache, stats.cache_private, stats.user) == (2, 1, 1)


def test_compound_head_takes_its_tails() -> None:
    raw = pages(8)
    put(raw, 4, 0, 1 << 16)  # head
    put(raw, 4, 24, 0xFFFF888000000001)  # anonymous THP
    raw[5, 17] = 2  # order 2 in the first tail page
    for t in (5, 6, 7):
        put(raw, t, 8, (0xFFFFEA0000000000 + 4 * SIZEOF) | 1)  # compound_head | 1
    keep, stats = run(raw, DL_USER)
    assert list(np.flatnonzero(~keep)) == [4, 5, 6, 7] and stats.user == 4
    # a tail page is never excluded on its own
    raw2 = raw.copy()
    put(raw2, 4, 24, 0)
    put(raw2, 6, 24, 0xFFFF888000000001)
    assert run(raw2, DL_USER)[0].all()


def test_hugetlb_by_destructor_and_misaligned_order() -> None:
    raw = pages(8)
    put(raw, 2, 0, 1 << 16)
    raw[3, 17] = 1  # order 1 at pfn 2: aligned
    raw[3, 16] = 2  # HUGETLB_PAGE_DTOR
    put(raw, 5, 0, 1 << 16)
    raw[6, 17] = 1  # order 1 at pfn 5: misaligned, treated as order 0
    raw[6, 16] = 2
    keep, _ = run(raw, DL_USER)
    assert list(np.flatnonzero(~keep)) == [2, 3, 5]


def test_offline_pages_go_at_any_filtering_level() -> None:
    raw = pages(2)
    put(raw, 1, 48, OFFLINE, "<i4")
    assert list(np.flatnonzero(~run(raw, DL_CACHE)[0])) == [1]


def test_exclusion_carries_across_sections() -> None:
    raw = pages(8)
    put(raw, 6, 48, BUDDY, "<i4")
    put(raw, 6, 40, 2)  # pfns 6..9, beyond this section
    keep = np.ones(16, dtype=bool)
    until = _exclude_section(LAYOUT, DL_FREE, 0, raw.tobytes(), np.ones(8, bool), keep, Carry(),
                             FilterStats())
    assert until == Carry(10, 1) and list(np.flatnonzero(~keep)) == [6, 7, 8, 9]
    nxt = pages(8)
    put(nxt, 1, 48, BUDDY, "<i4")  # pfn 9: covered by the block above, not evaluated
    put(nxt, 1, 40, 3)
    _exclude_section(LAYOUT, DL_FREE, 8, nxt.tobytes(), np.ones(8, bool), keep, until,
                     FilterStats())
    assert list(np.flatnonzero(~keep)) == [6, 7, 8, 9]


NODE_ZONE = 0xFFF << 40  # what a Debian 6.1 x86_64 kernel keeps in flags' top bits


def node_zone(raw: np.ndarray) -> None:
    raw[:, 0:8] = np.frombuffer(np.array(NODE_ZONE, "<u8").tobytes(), np.uint8)


Decided = tuple[list[bool], dict[str, int], Carry]


def both_ways(raw: np.ndarray, level: int, until: int = 0) -> tuple[Decided, ...]:
    """The decisions on `raw` with excluded blocks stepped over, and decided whole."""
    out = []
    for step_over in (True, False):
        keep = np.ones(len(raw) + 2048, dtype=bool)
        stats = FilterStats()
        carry = _exclude_section(LAYOUT, level, 0, raw.tobytes(), np.ones(len(raw), bool), keep,
                                 Carry(until, 1), stats, step_over=step_over)
        out.append((keep.tolist(), {k: getattr(stats, k) for k in KINDS}, carry))
    return tuple(out)


def test_excluded_blocks_are_stepped_over_by_their_heads() -> None:
    raw = pages(1024)
    node_zone(raw)  # nothing inside a block is passed over by its flags
    put(raw, 256, 48, BUDDY, "<i4")
    put(raw, 256, 40, 8)  # a free block of 256 pages
    put(raw, 512, 0, NODE_ZONE | 1 << 16)  # an anonymous THP of 512 pages
    put(raw, 512, 24, 0xFFFF888000000001)
    raw[513, 17] = 9
    heads, skipped = _excluded_heads(LAYOUT, 31, 0, raw.tobytes(), np.ones(1024, bool))
    assert heads is not None and skipped is not None
    assert heads.tolist() == [256, 512]
    assert np.flatnonzero(skipped).tolist() == [*range(9, 16), *range(17, 32)]
    stepped, whole = both_ways(raw, 31)
    assert stepped == whole and whole[1]["free"] == 256 and whole[1]["user"] == 512


def test_a_head_the_walk_does_not_reach_sends_the_section_back_whole() -> None:
    raw = pages(1024)
    node_zone(raw)
    put(raw, 0, 48, BUDDY, "<i4")
    put(raw, 0, 40, 7)  # pfns 0-127
    put(raw, 64, 48, BUDDY, "<i4")
    put(raw, 64, 40, 9)  # inside the block above: makedumpfile never looks at it
    put(raw, 300, 48, BUDDY, "<i4")  # but at this one, inside the 512 pages of that one
    put(raw, 300, 40, 2)
    stepped, whole = both_ways(raw, DL_FREE)
    assert stepped == whole and whole[1]["free"] == 132
    # nor does it reach one inside an exclusion carried from the section before
    stepped, whole = both_ways(raw[128:], DL_FREE, until=200)
    assert stepped == whole


Block = tuple[int, str, int]  # first pfn, kind, order
BLOCKS = st.lists(st.tuples(st.integers(0, 1023) | st.integers(0, 31).map(lambda r: r * SKIP_ROW),
                            st.sampled_from(["buddy", "thp", "cache", "slab"]),
                            st.integers(0, 10)), max_size=30)


def with_blocks(blocks: list[Block]) -> np.ndarray:
    """1,024 struct pages of a real kernel's flags, with these blocks' heads."""
    raw = pages(1024)
    node_zone(raw)
    for pfn, kind, order in blocks:
        if kind == "buddy":
            put(raw, pfn, 48, BUDDY, "<i4")
            put(raw, pfn, 40, order)
        elif kind == "thp" and pfn < 1023:
            put(raw, pfn, 0, NODE_ZONE | 1 << 16)
            put(raw, pfn, 24, 0xFFFF888000000001)
            raw[pfn + 1, 17] = order
        else:
            put(raw, pfn, 0, NODE_ZONE | (1 << 4 if kind == "cache" else 1 << 9))
    return raw


@settings(max_examples=150, deadline=None)
@given(BLOCKS, st.integers(0, 31), st.integers(0, 300))
def test_stepping_over_excluded_blocks_decides_as_the_whole_walk(
        blocks: list[Block], level: int, until: int) -> None:
    """Heads of every order at aligned and unaligned places, overlapping, inside each
    other and past the section's end: the same bitmap, counts and carry either way."""
    stepped, whole = both_ways(with_blocks(blocks), level, until)
    assert stepped == whole


@settings(max_examples=100, deadline=None)
@given(BLOCKS, st.integers(0, 31), st.integers(0, 300), st.integers(1, 100))
def test_deciding_in_pieces_decides_as_at_once(blocks: list[Block], level: int, until: int,
                                               piece: int) -> None:
    """A section's busy pages are decided DECIDE_PAGES at a time (a section of 4K pages
    holds 32,768): pieces of any size, a tail page's head in the piece before, decide
    as one call over all of them."""
    raw = with_blocks(blocks)
    with mock.patch.object(filter_module, "DECIDE_PAGES", piece):
        pieces = both_ways(raw, level, until)
    with mock.patch.object(filter_module, "DECIDE_PAGES", 1 << 20):
        assert both_ways(raw, level, until) == pieces


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(1, 64)), max_size=40),
       st.integers(0, 50))
def test_walk_is_makedumpfiles_sequential_walk(blocks: list[tuple[int, int]], until: int) -> None:
    blocks = sorted(set(blocks), key=lambda b: b[0])
    seen: set[int] = set()
    blocks = [b for b in blocks if not (b[0] in seen or seen.add(b[0]))]  # type: ignore[func-returns-value]
    first = np.array([b[0] for b in blocks], dtype=np.int64)
    end = first + np.array([b[1] for b in blocks], dtype=np.int64)
    want, cover = [], until
    for p, e in zip(first.tolist(), end.tolist(), strict=True):
        want.append(p >= cover)
        cover = e if p >= cover else cover
    assert _walk(first, end, until).tolist() == want


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(1, 6)), min_size=1,
                max_size=12),
       st.integers(0, 30), st.integers(1, 200), st.integers(0, 2**32 - 1), st.integers(0, 120))
def test_exclude_ranges_is_the_plain_page_by_page_clearing(
        specs: list[tuple[int, int, int]], base: int, length: int, seed: int,
        until: int) -> None:
    """Disjoint ordered ranges, empty ones, ones that touch, that start before `keep` or end
    past it: each clears its pages and counts the kept ones it cleared by kind."""
    first, end, kind, at = [], [], [], base - 20
    for gap, size, k in specs:
        first.append(at + gap)
        end.append(at + gap + size)
        kind.append(k)
        at = end[-1]
    keep = np.random.default_rng(seed).random(length) < 0.7
    want, counts = keep.copy(), dict.fromkeys(KINDS, 0)
    for f, e, k in zip(first, end, kind, strict=True):
        for pfn in range(max(f, base), min(e, base + length)):
            counts[KINDS[k - 1]] += int(want[pfn - base])
            want[pfn - base] = False
    stats = FilterStats()
    carry = exclude_ranges(np.array(first, np.int64), np.array(end, np.int64),
                           np.array(kind, np.int8), keep, base, Carry(until, 2), stats)
    assert keep.tolist() == want.tolist()
    assert {k: getattr(stats, k) for k in KINDS} == counts
    last = int(np.argmax(end))
    assert carry == (Carry(end[last], kind[last]) if end[last] > until else Carry(until, 2))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**64 - 1),
                          st.sampled_from(["fill", "last", "mid", "any"]), st.integers(1, 510)),
                min_size=1, max_size=12))
def test_fill_pages_finds_exactly_the_pages_of_one_repeated_word(
        specs: list[tuple[int, str, int]]) -> None:
    """Checked against the plain definition, with pages that differ only in their last
    word or in one word inside (the fast path looks at the last word first)."""
    words = np.zeros((len(specs), 512), dtype=np.uint64)
    rng = np.random.default_rng(len(specs))
    for i, (word, kind, at) in enumerate(specs):
        words[i] = word
        if kind == "last":
            words[i, -1] ^= np.uint64(1)
        elif kind == "mid":
            words[i, at] ^= np.uint64(1 << 63)
        elif kind == "any":
            words[i] = rng.integers(0, 2**63, 512, dtype=np.uint64)
    first, same = fill_pages(words.tobytes(), 4096)
    assert first.tolist() == words[:, 0].tolist()
    assert same.tolist() == [bool((row == row[0]).all()) for row in words]


def test_mem_maps_reads_only_the_roots_below_max_mapnr(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A SPARSEMEM_EXTREME root array is read only as far as the dump's pfns reach:
    riscv64's (MAX_PHYSMEM_BITS 56) is 32 MiB. The roots are read at once (a failure
    there is known before any window), each section's entry only when it is reached (a
    TiB's 8,192 sections are not held)."""
    path = tmp_path / "vmcore"
    write_vmcore(str(path), 1 << 30)
    reads: list[tuple[int, int]] = []
    with Vmcore(str(path)) as v:
        real = v.read_virt

        def spy(addr: int, size: int) -> bytes:
            reads.append((addr, size))
            return real(addr, size)

        monkeypatch.setattr(v, "read_virt", spy)
        nr = max_mapnr(v)
        each = mem_maps(v, PageTables(v), nr)
        assert len(reads) == 1
        sections = [next(each)]
        assert len(reads) == 2
        sections += list(each)
        root_sym = v.vmcoreinfo.symbol("mem_section")
        assert v.vmcoreinfo.length("mem_section") == 2048
    assert [size for addr, size in reads if addr == root_sym] == [8]
    assert [s[0] for s in sections] == [i << 15 for i in range(-(-nr >> 15))]
    assert all(s[2] is not None for s in sections)
