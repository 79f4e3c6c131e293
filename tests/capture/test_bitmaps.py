"""Bitmaps held per window: what goes in comes out, cut to what was written."""

from __future__ import annotations

import numpy as np

from kdumpctl_py.capture.bitmaps import PageBitmaps, Written, true_runs


def filled(windows: int, size: int, seed: int = 0) -> tuple[PageBitmaps, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    present = rng.random(windows * size - 3) < 0.9
    keep = present & (rng.random(len(present)) < 0.3)
    bm = PageBitmaps(len(present))
    for first in range(0, len(present), size):
        bm.add(first, present[first:first + size], keep[first:first + size])
    return bm, present, keep


def test_round_trip_and_packed_bytes() -> None:
    bm, present, keep = filled(5, 64)
    windows = list(bm.windows())
    assert np.concatenate([p for _, p, _ in windows]).tolist() == present.tolist()
    assert np.concatenate([k for _, _, k in windows]).tolist() == keep.tolist()
    assert bm.dumpable == int(keep.sum())
    assert b"".join(bm.packed(True)) == np.packbits(keep, bitorder="little").tobytes()


def test_written_cuts_the_second_bitmap() -> None:
    bm, _, keep = filled(4, 64)
    cut = keep.copy()
    cut[150:] = False
    bad = int(np.flatnonzero(keep)[3])
    cut[bad] = False
    got = b"".join(bm.packed(True, Written(150, (bad,))))
    assert got == np.packbits(cut, bitorder="little").tobytes()


def test_nth_dumpable() -> None:
    bm, _, keep = filled(6, 128, seed=3)
    idx = np.flatnonzero(keep)
    ranks = np.array([0, 5, len(idx) // 2, len(idx) - 1], dtype=np.int64)
    assert bm.nth_dumpable(ranks).tolist() == idx[ranks].tolist()


def test_runs_join_across_windows_and_clip() -> None:
    """Runs of dumpable pages, as (first, end), whatever the windows and the range asked."""
    bm, _, keep = filled(7, 64, seed=5)
    keep_runs = true_runs(keep)
    assert list(bm.runs(0, len(keep))) == keep_runs
    for lo, hi in ((0, 1), (63, 65), (10, 300), (128, 128), (200, len(keep) + 50)):
        want = [(max(a, lo), min(b, hi)) for a, b in keep_runs if a < hi and b > lo]
        assert list(bm.runs(lo, hi)) == want
    whole = PageBitmaps(256)
    for first in range(0, 256, 64):
        whole.add(first, np.ones(64, bool), np.ones(64, bool))
    assert list(whole.runs(0, 256)) == [(0, 256)]


def test_held_memory_does_not_grow_by_objects_per_window() -> None:
    """A TiB of 4K pages is 4,096 windows of 2^16 pages: what they hold is their compressed
    bits and 32 bytes each (a dataclass and two bytes objects per window held 0.1 MB per
    64 GiB more, 1.6 MB per TiB); an all-present 1st bitmap holds nothing."""
    import tracemalloc

    size, windows = 1 << 16, 4096
    present = np.ones(size, dtype=bool)
    keep = np.zeros(size, dtype=bool)
    keep[1000:1300] = keep[5000:5004] = keep[40000:41024] = True
    tracemalloc.start()
    try:
        bm = PageBitmaps(size * windows)
        for i in range(windows):
            bm.add(i * size, present, keep)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_window = len(_pack_len(keep)) + 32
    assert held < windows * per_window * 1.3, held
    assert all(np.array_equal(p, present) for _, p, _ in bm.windows())
    assert b"".join(bm.packed(False)) == np.packbits(np.ones(size * windows, bool),
                                                     bitorder="little").tobytes()


def _pack_len(bits: np.ndarray) -> bytes:
    import zlib

    from kdumpctl_py.capture.bitmaps import PACK_LEVEL

    return zlib.compress(np.packbits(bits, bitorder="little").tobytes(), PACK_LEVEL)
