"""Synthetic machines: our dump is makedumpfile's byte for byte, whatever the window, and
saving stays inside its memory budget whatever the size of the dump (measured)."""

from __future__ import annotations

import errno
import io
import mmap
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kdumpctl_py.capture.filter import dumpable_pages, mem_maps
from kdumpctl_py.capture.pagetables import PageTables
from kdumpctl_py.capture.save import SaveOptions, save_vmcore
from kdumpctl_py.capture.vmcore import Vmcore
from tests.builders import assert_same_pages
from tests.measure import run
from tests.synthetic_vmcore import write_vmcore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def vmcore_4g(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synthetic") / "vmcore-4g"
    write_vmcore(str(path), 4 << 30)
    return path


def test_sparse(vmcore_4g: Path) -> None:
    assert vmcore_4g.stat().st_size > 4 << 30
    assert vmcore_4g.stat().st_blocks * 512 < 64 << 20


def test_struct_pages_differ_as_a_running_kernels(vmcore_4g: Path) -> None:
    """Every struct page written but a compound page's tail holds its own lru (pointing
    at itself or into a list of struct pages), so no two are alike, and a tail past the
    first its own lru.prev, as in crash-cycle vmcores; before, most were their zone bits
    alone and compressed ten times better."""
    with Vmcore(str(vmcore_4g)) as v:
        pt = PageTables(v)
        start, end, mem_map = list(mem_maps(v, pt, 1 << 20))[8]
        assert mem_map is not None
        words = np.frombuffer(pt.read(mem_map, (end - start) * 64), "<u8").reshape(-1, 8)
    lru = words[:, 1]
    own = (words[:, 0] != 0) & ((lru & 1) == 0) & (lru != 0)
    assert own.sum() > 1000
    vmemmap = mem_map - start * 64
    assert (((lru[own] - np.uint64(vmemmap)) % 64) == 8).all()
    assert ((lru[own] >= vmemmap) & (lru[own] < vmemmap + (1 << 40))).all()
    assert len(np.unique(words[own], axis=0)) == own.sum()
    # and so are the pages of struct pages that a dump holds (those that are not zeros)
    pages = words.reshape(-1, 64 * 8)
    pages = pages[pages.any(axis=1)]
    assert len(np.unique(pages, axis=0)) > 0.9 * len(pages)


def save(vmcore: Path, out: Path, limit: int, engine: str = "auto") -> Path:
    result = save_vmcore(str(vmcore), str(out), SaveOptions(31, "zlib", threads=1,
                                                           progress=False, memory_limit=limit,
                                                           zlib_engine=engine))
    assert result.directory
    return Path(result.directory) / "vmcore"


@pytest.mark.parametrize("engine", ["isal", "zlib"])
def test_same_file_as_makedumpfile_in_any_window(vmcore_4g: Path, tmp_path: Path,
                                                 engine: str) -> None:
    """The system zlib writes makedumpfile's bytes in any window; ISA-L the same headers,
    bitmaps and pages (its bytes may differ from run to run)."""
    windowed = save(vmcore_4g, tmp_path / "one-section", 1, engine)  # a 128 MiB section each
    whole = save(vmcore_4g, tmp_path / "whole", 1 << 40, engine)  # one window
    if engine == "zlib":
        assert windowed.read_bytes() == whole.read_bytes()
    else:
        assert_same_pages(windowed, whole)
    mdf = shutil.which("makedumpfile")
    if mdf is None:
        pytest.skip("makedumpfile is not installed (setup.sh installs it)")
    subprocess.run([mdf, "-c", "-d", "31", str(vmcore_4g), str(tmp_path / "mdf")], check=True,
                   capture_output=True)
    if engine == "zlib":
        assert whole.read_bytes() == (tmp_path / "mdf").read_bytes()
    else:
        assert whole.read_bytes() != (tmp_path / "mdf").read_bytes()
        assert_same_pages(whole, tmp_path / "mdf")


def test_flat_stream_is_the_same_in_any_window(vmcore_4g: Path, tmp_path: Path) -> None:
    streams = []
    for limit in (1, 1 << 40):
        out = io.BytesIO()
        save_vmcore(str(vmcore_4g), str(tmp_path), SaveOptions(31, "zlib", flat=True, threads=1,
                                                               progress=False,
                                                               memory_limit=limit,
                                                               zlib_engine="zlib"), out)
        streams.append(out.getvalue())
    assert streams[0] == streams[1]


def test_elf_format_is_the_same_in_any_window(vmcore_4g: Path, tmp_path: Path) -> None:
    """The ELF plan and its zero-page pass go window by window too (makedumpfile -E's bytes
    on a crash-cycle vmcore: tests/vm/test_oracles.py)."""
    files = []
    for limit in (1, 1 << 40):
        result = save_vmcore(str(vmcore_4g), str(tmp_path / str(limit)),
                             SaveOptions(31, format="elf", threads=1, progress=False,
                                         memory_limit=limit))
        files.append((Path(result.directory or "") / "vmcore").read_bytes())
        assert result.pages_zero == 14928 and result.pages_dumped == 11716
    assert files[0] == files[1]


def test_struct_pages_are_read_where_mmap_is_refused(vmcore_4g: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """/proc/vmcore of a kernel without mmap_vmcore, a file system without mmap: asked once,
    then the struct pages are read with pread, into the same bitmaps."""
    with Vmcore(str(vmcore_4g)) as v:
        mapped = dumpable_pages(v, 31)
    refusals = []

    def refuse(*args: object, **kwargs: object) -> mmap.mmap:
        refusals.append(args)
        raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))

    monkeypatch.setattr(mmap, "mmap", refuse)
    with Vmcore(str(vmcore_4g)) as v:
        read = dumpable_pages(v, 31)
    assert len(refusals) == 1
    assert all((a == b).all() for a, b in zip(mapped, read, strict=True))


@pytest.fixture(scope="module")
def vmcore_arm64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synthetic") / "vmcore-arm64-64k-4g"
    write_vmcore(str(path), 4 << 30, arch="arm64")
    return path


def test_arm64_64k_pages_same_file_in_any_window_and_threads(vmcore_arm64: Path,
                                                               tmp_path: Path) -> None:
    """A 64K-page arm64 machine (its vmemmap translated through swapper_pg_dir with a 64K
    granule): a window of one 512 MiB section and one window write the same bytes, at one
    thread and at two; struct pages decide (free, cache, user pages counted)."""
    files = []
    for limit, threads in ((1, 1), (1 << 40, 1), (1, 2)):
        result = save_vmcore(str(vmcore_arm64), str(tmp_path / f"{limit}-{threads}"),
                             SaveOptions(31, "zlib", threads=threads, progress=False,
                                         memory_limit=limit, zlib_engine="zlib"))
        files.append((Path(result.directory or "") / "vmcore").read_bytes())
        stats = result.stats
        assert result.pages_total == (5 << 30) >> 16  # RAM from 1 GiB
        assert stats.struct_pages and not stats.warnings
        assert stats.free and stats.cache and stats.user and result.pages_dumped
    assert files[0] == files[1] == files[2]


@pytest.mark.parametrize(("arch", "gib", "threads", "limit"),
                         [("x86_64", 1, 1, 56 << 20), ("x86_64", 32, 1, 56 << 20),
                          ("arm64", 1, 2, 56 << 20), ("arm64", 16, 2, 56 << 20)])
def test_peak_memory_stays_under_the_budget(tmp_path: Path, arch: str, gib: int, threads: int,
                                            limit: int) -> None:
    """Measured: x86_64 at one thread, and 64K-page arm64 with two compression threads
    (their chunks are CHUNK_BYTES whatever the page size) under the smallest budget
    save takes, MIN_LIMIT."""
    vmcore = tmp_path / "vmcore"
    write_vmcore(str(vmcore), gib << 30, arch=arch)
    m = run([sys.executable, "-m", "kdumpctl_py", "save", "--vmcore", str(vmcore), "--target",
             str(tmp_path / "out"), "--compress", "zlib", "--threads", str(threads),
             "--no-progress", "--memory-limit", str(limit)],
            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert m.status == 0, m.stderr
    assert 0 < m.peak_rss < limit, f"peak RSS {m.peak_rss >> 20} MiB, budget {limit >> 20} MiB"
