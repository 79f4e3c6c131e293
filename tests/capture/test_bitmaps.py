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
