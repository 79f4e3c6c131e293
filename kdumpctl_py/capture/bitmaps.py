"""A dump's 1st and 2nd bitmaps, one bit per page, kept zlib-compressed window by window.

The filter decides one window of pfns at a time (`filter.dumpable_windows`);
each window's bits are packed LSB first, as the kdump-compressed format
stores them, and compressed. A dump's bitmaps are long runs, so what is held
between filtering and writing is a few bytes per window, not a bit per page:
the struct pages are read once, and the writer unpacks one window at a time
to plan its reads and write the bitmaps.
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

import numpy as np

if TYPE_CHECKING:  # numpy.typing takes a second to import in a TCG capture kernel
    import numpy.typing as npt

Bits: TypeAlias = "npt.NDArray[np.bool_]"


class Written(NamedTuple):
    """What of the 2nd bitmap has its data written: pages below `frontier` (pages are
    written in pfn order) but `unreadable` ones."""

    frontier: int
    unreadable: tuple[int, ...] = ()


class _Window(NamedTuple):
    first: int  # pfn, a multiple of 8
    pages: int
    packed1: bytes  # zlib of the packed bits; empty: all set
    packed2: bytes
    dumpable: int


class PageBitmaps:
    """What is kept per window lives in one bytearray and one array of integers, not in
    Python objects per window: a TiB of 4K pages is 4,096 windows of 2^16 pages, and the
    objects alone (a dataclass and two bytes per window: 0.1 MB per 64 GiB) made the
    saver's peak RSS grow with the dump."""

    def __init__(self, nr: int) -> None:
        self.nr = nr
        self._packed = bytearray()  # each window's two bitmaps, compressed, in order
        self._index = array("q")  # per window: pages, end of its 1st, end of its 2nd, dumpable
        self._next = 0
        self.dumpable = 0

    def add(self, first: int, present: Bits, keep: Bits) -> None:
        """The next window: pfns first..first+len(present), in order."""
        assert first % 8 == 0 and first == self._next
        self._next += len(present)
        count = int(np.count_nonzero(keep))
        if not present.all():
            self._packed += _pack(present)
        end1 = len(self._packed)
        self._packed += _pack(keep)
        self._index.extend((len(present), end1, len(self._packed), count))
        self.dumpable += count

    def _windows(self) -> Iterator[_Window]:
        first = start = 0
        index = self._index
        for i in range(0, len(index), 4):
            pages, end1, end2, count = index[i:i + 4]
            with memoryview(self._packed) as packed:  # one copy each, not a slice's and bytes'
                packed1, packed2 = bytes(packed[start:end1]), bytes(packed[end1:end2])
            yield _Window(first, pages, packed1, packed2, count)  # no view held across add()
            first, start = first + pages, end2

    def windows(self) -> Iterator[tuple[int, Bits, Bits]]:
        """(first pfn, 1st bitmap, 2nd bitmap) per window, one unpacked at a time."""
        for w in self._windows():
            yield w.first, _unpack(w.packed1, w.pages), _unpack(w.packed2, w.pages)

    def dumpable_windows(self) -> Iterator[tuple[int, Bits]]:
        for w in self._windows():
            yield w.first, _unpack(w.packed2, w.pages)

    def packed(self, second: bool, written: Written | None = None) -> Iterator[bytes]:
        """The bitmap's bytes window by window; the 2nd one cut to `written` if given."""
        for w in self._windows():
            if not second:
                yield _unpacked_bytes(w.packed1, w.pages)
            elif written is None:
                yield zlib.decompress(w.packed2)
            else:  # decompressed once, as bits, not also as bytes that are thrown away
                bits = _unpack(w.packed2, w.pages)
                bits[max(written.frontier - w.first, 0):] = False
                bad = np.array(written.unreadable, dtype=np.int64) - w.first
                bits[bad[(bad >= 0) & (bad < w.pages)]] = False
                yield np.packbits(bits, bitorder="little").tobytes()

    def runs(self, lo: int, hi: int) -> Iterator[tuple[int, int]]:
        """(first, end) pfns of each run of dumpable pages within lo..hi, a run that crosses
        a window's edge as one: work per run, one window unpacked at a time."""
        pending: tuple[int, int] | None = None
        for w in self._windows():
            a, b = max(lo, w.first), min(hi, w.first + w.pages)
            if a >= b or not w.dumpable:
                continue
            for s, e in true_runs(_unpack(w.packed2, w.pages)[a - w.first:b - w.first]):
                if pending is not None and pending[1] == a + s:
                    pending = (pending[0], a + e)
                    continue
                if pending is not None:
                    yield pending
                pending = (a + s, a + e)
        if pending is not None:
            yield pending

    def nth_dumpable(self, ranks: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The pfns of the dumpable pages of the given sorted ranks (0 = the first)."""
        out = np.zeros(len(ranks), dtype=np.int64)
        before = 0
        for w in self._windows():
            sel = (ranks >= before) & (ranks < before + w.dumpable)
            if sel.any():
                idx = np.flatnonzero(_unpack(w.packed2, w.pages))
                out[sel] = w.first + idx[ranks[sel] - before]
            before += w.dumpable
        return out


def true_runs(bits: Bits) -> list[tuple[int, int]]:
    """(start, end) of each run of True in `bits`: two numbers per run, not one per page."""
    edges = np.flatnonzero(np.diff(bits.view(np.int8), prepend=0, append=0)).tolist()
    return list(zip(edges[::2], edges[1::2], strict=True))


PACK_LEVEL = 6  # 0.4 of level 1's bytes on the synthetic machines, 0.04 ms per window more


def _pack(bits: Bits) -> bytes:
    return zlib.compress(np.packbits(bits, bitorder="little").tobytes(), PACK_LEVEL)


def _unpacked_bytes(packed: bytes, pages: int) -> bytes:
    """The packed bits of a window; empty `packed`: every page set."""
    if packed:
        return zlib.decompress(packed)
    return np.packbits(np.ones(pages, dtype=bool), bitorder="little").tobytes()


def _unpack(packed: bytes, pages: int) -> Bits:
    raw = np.frombuffer(_unpacked_bytes(packed, pages), dtype=np.uint8)
    return np.unpackbits(raw, count=pages, bitorder="little").astype(bool)
