"""Faults while saving: a real full disk at many points, SIGTERM, through the CLI.

Each must leave a dump that kdumpctl-py can read back and that says it is
incomplete, and a non-zero exit status.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kdumpctl_py.capture.kdumpfile import read_kdump, read_page
from tests.builders import PAGE, make_vmcore, tmpfs
from tests.elfwriter import note, vmcore_bytes
from tests.robustness.tally import record


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 200 KiB tmpfs: writing a dump into it runs out of space for real."""
    with tmpfs(tmp_path / "fs", "200k") as mnt:
        yield mnt


def cli(*argv: str, **kw: object) -> subprocess.CompletedProcess[str]:
    out: subprocess.CompletedProcess[str] = subprocess.run(  # type: ignore[call-overload]
        [sys.executable, "-m", "kdumpctl_py", *argv], capture_output=True, text=True, **kw)
    return out


def dumps_in(target: Path) -> list[Path]:
    return [p for p in target.glob("*/*") if p.name in ("vmcore", "vmcore-incomplete")]


@pytest.mark.parametrize("check", [True, False], ids=["space-check", "no-space-check"])
@pytest.mark.parametrize("filler_kib", [0, 20, 60, 100, 140, 170])
def test_full_disk_at_many_points(tmp_path: Path, small_fs: Path, filler_kib: int,
                                  check: bool) -> None:
    src, want = make_vmcore(tmp_path)
    if filler_kib:
        (small_fs / "filler").write_bytes(os.urandom(filler_kib * 1024))
    out = cli("save", "--vmcore", str(src), "--target", str(small_fs / "crash"),
              "--dump-level", "0", "--compress", "none", "--no-progress",
              *([] if check else ["--no-space-check"]))
    record("save: ENOSPC", "injected")
    dumps = dumps_in(small_fs / "crash")
    if out.returncode == 0:  # it fitted: the dump must be whole
        record("save: ENOSPC", "fitted")
        (dump,) = dumps
        assert dump.name == "vmcore" and not read_kdump(str(dump)).incomplete
        return
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kdumpctl-py: error: "), out.stderr
    assert out.returncode == 1
    if not dumps:  # refused up front: the space check saw it coming
        assert "free but the dump needs" in err[0]
        record("save: ENOSPC", "refused before writing")
        return
    (dump,) = dumps
    assert dump.name == "vmcore-incomplete"
    kd = read_kdump(str(dump))
    assert kd.incomplete
    for pfn in np.flatnonzero(kd.bitmap2):
        assert read_page(str(dump), kd, int(pfn)) == want[int(pfn)]
    record("save: ENOSPC", "incomplete, readable")


def test_sigterm_mid_dump(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    ram = rng.integers(0, 256, 3000 * PAGE, dtype=np.uint8).tobytes()  # slow to compress
    info = (b"OSRELEASE=6.1.0-test\nPAGESIZE=4096\nCRASHTIME=1790000000\n")
    src = tmp_path / "vmcore"
    src.write_bytes(vmcore_bytes([(0xFFFF888000000000, 0, ram, len(ram))],
                                 note(b"VMCOREINFO", 0, info)))
    proc = subprocess.Popen([sys.executable, "-m", "kdumpctl_py", "save", "--vmcore", str(src),
                             "--target", str(tmp_path / "crash"), "--dump-level", "0",
                             "--compress", "zlib", "--threads", "1", "--no-progress"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size > 6 << 20 for p in dumps_in(tmp_path / "crash")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    record("save: SIGTERM", "injected")
    assert proc.returncode == 1, err
    assert err.strip().startswith("kdumpctl-py: error: interrupted")
    (dump,) = dumps_in(tmp_path / "crash")
    assert dump.name == "vmcore-incomplete"
    kd = read_kdump(str(dump))
    assert kd.incomplete and 0 < kd.bitmap2.sum() < 3000
    for pfn in np.flatnonzero(kd.bitmap2)[-3:]:
        assert read_page(str(dump), kd, int(pfn)) == ram[pfn * PAGE:(pfn + 1) * PAGE]
