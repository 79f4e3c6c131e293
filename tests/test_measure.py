"""The benchmarks' measurement of a child: what it read from disk tells a stall on the
disk from the tool's own work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.measure import run

SIZE = 16 << 20


def test_disk_read_counts_page_cache_misses_only(tmp_path: Path) -> None:
    if os.major(tmp_path.stat().st_dev) == 0:  # tmpfs and other file systems on no device
        pytest.skip(f"{tmp_path} is on no block device")
    data = tmp_path / "data"
    with open(data, "wb") as f:
        f.write(os.urandom(SIZE))
        f.flush()
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)  # clean: dropped
    cold = run(["cat", str(data)])
    warm = run(["cat", str(data)])
    assert cold.status == warm.status == 0
    assert cold.disk_read >= SIZE
    assert warm.disk_read < SIZE // 16
