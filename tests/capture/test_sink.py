"""Writing behind: only whole pages of final page data are handed to the kernel; a list of
parts written in gathered writes, short ones included."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import pytest

from kdumpctl_py.capture import kdumpfile as kdumpfile_mod
from kdumpctl_py.capture import save as save_mod
from kdumpctl_py.capture import sink as sink_mod
from kdumpctl_py.capture.kdumpfile import read_kdump
from kdumpctl_py.capture.save import SaveOptions, save_vmcore
from kdumpctl_py.capture.sink import FileSink, FlatSink
from tests.builders import make_vmcore

P = mmap.PAGESIZE


def advised(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    calls: list[tuple[int, int]] = []

    def fadvise(fd: int, offset: int, length: int, advice: int) -> None:
        assert advice == os.POSIX_FADV_DONTNEED
        calls.append((offset, length))

    monkeypatch.setattr(os, "posix_fadvise", fadvise)
    return calls


def test_only_whole_pages_inside_the_range(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    calls = advised(monkeypatch)
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        sink = FileSink(fd)
        sink.write_behind(1, 3 * P + 5)
        sink.write_behind(P + 1, 2 * P - 1)  # no whole page
        sink.write_behind(2 * P, 4 * P)
    finally:
        os.close(fd)
    assert calls == [(P, 2 * P), (2 * P, 2 * P)]


def test_advice_refused_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: int) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "posix_fadvise", refuse)
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        FileSink(fd).write_behind(0, 8 * P)
    finally:
        os.close(fd)


def test_a_save_writes_behind_only_page_data(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Never a page that holds headers, bitmaps or descriptors (written again at the end)."""
    src, _ = make_vmcore(tmp_path)
    monkeypatch.setattr(kdumpfile_mod, "WRITE_BEHIND", P)
    calls = advised(monkeypatch)
    result = save_vmcore(str(src), str(tmp_path / "out"),
                         SaveOptions(0, "none", threads=1, progress=False))
    path = Path(result.directory or "") / "vmcore"
    dump = read_kdump(str(path))
    descs_end = dump.descs_offset + 24 * int(dump.bitmap2.sum())
    assert calls
    for offset, length in calls:
        assert offset % P == 0 and length % P == 0 and length > 0
        assert offset >= descs_end and offset + length <= path.stat().st_size


def test_parts_are_written_whole_through_short_writes_and_iov_max(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk's parts go out in gathered writes of at most IOV_MAX buffers; a write that
    stops inside a part (a file system filling up writes what fits) goes on from there."""
    parts = [bytes([i]) * (i + 1) for i in range(40)]
    real = os.pwritev
    calls: list[int] = []

    def pwritev(fd: int, buffers: list[bytes], offset: int) -> int:
        calls.append(len(buffers))
        total = sum(map(len, buffers))
        return real(fd, [b"".join(bytes(b) for b in buffers)[:max(1, total // 3)]], offset)

    monkeypatch.setattr(os, "pwritev", pwritev)
    monkeypatch.setattr(sink_mod, "IOV_MAX", 7)
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        sink = FileSink(fd)
        sink.write_at(5, parts)
        assert sink.size == 5 + sum(map(len, parts))
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == bytes(5) + b"".join(parts)
    assert max(calls) == 7 and len(calls) > len(parts) // 7


@pytest.mark.parametrize("stops", [[2], [2, 2], [3], [1, 4]])
def test_a_short_write_at_or_inside_empty_parts_goes_on_from_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stops: list[int]) -> None:
    """Where a short write stops is found from the parts' running lengths: at the end of
    a part followed by empty ones, or inside the next, nothing is written twice or lost."""
    parts = [b"ab", b"", b"", b"cd", b"", b"efg"]
    real = os.pwritev
    left = list(stops)

    def pwritev(fd: int, buffers: list[bytes], offset: int) -> int:
        joined = b"".join(bytes(b) for b in buffers)
        return real(fd, [joined[:left.pop(0)] if left else joined], offset)

    monkeypatch.setattr(os, "pwritev", pwritev)
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        sink = FileSink(fd)
        sink.write_at(1, parts)
        assert sink.size == 1 + 7
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == b"\0abcdefg"


def test_a_flat_record_of_parts_is_one_record(tmp_path: Path) -> None:
    with open(tmp_path / "flat", "wb") as f:
        sink = FlatSink(f)
        sink.write_at(4096, [b"ab", b"", b"cde"])
        sink.write_at(0, [b""])  # nothing: no empty record
    raw = (tmp_path / "flat").read_bytes()
    assert raw[4096:] == (4096).to_bytes(8, "big") + (5).to_bytes(8, "big") + b"abcde"


def test_a_save_writes_behind_once_per_write_behind_bytes(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Advice costs the kernel a drain of every CPU's page lists: asked after every chunk it
    took 8-17 ms of a 4 GiB machine's saves in one process. So it comes once WRITE_BEHIND
    more bytes of page data are written, each time for those and again for the ones asked
    for before (written back by then, dropped now)."""
    src, _ = make_vmcore(tmp_path)
    monkeypatch.setattr(save_mod, "chunk_pages", lambda page_size: 2)  # 20 chunks of 2 pages
    monkeypatch.setattr(kdumpfile_mod, "WRITE_BEHIND", 5 * P)
    calls = advised(monkeypatch)
    save_vmcore(str(src), str(tmp_path / "out"), SaveOptions(0, "none", threads=1, progress=False))
    assert 3 <= len(calls) <= 40 // 5
    ends = [offset + length for offset, length in calls]
    assert all(b - a >= 5 * P for a, b in zip(ends, ends[1:], strict=False))
    assert calls[1][0] == calls[0][0]  # the first step again, now dropped
    # then from where the step before the last began (a page later if not on one)
    assert all(calls[i][0] - ends[i - 2] in (0, P) for i in range(2, len(calls)))
