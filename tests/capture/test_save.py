from __future__ import annotations

import errno
import gc
import os
import stat
import subprocess
import sys
import zlib
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from kdumpctl_py.capture import save as save_mod
from kdumpctl_py.capture.budget import MIN_LIMIT
from kdumpctl_py.capture.dumpdir import TargetError
from kdumpctl_py.capture.kdumpfile import PAGE_DESC_DTYPE, read_kdump, read_page
from kdumpctl_py.capture.save import IncompleteDump, SaveOptions, save_vmcore
from kdumpctl_py.capture.sink import FileSink, FlatSink
from kdumpctl_py.capture.vmcore import Vmcore
from kdumpctl_py.errors import KdumpError
from tests.builders import PAGE, fails_closing_every_fd, make_vmcore, unreadable_page
from tests.localserver import tmpfs


@pytest.mark.parametrize("compress", ["zlib", "zstd", "lzo", "none"])
@pytest.mark.parametrize("level", [0, 1])
def test_round_trip(tmp_path: Path, compress: str, level: int) -> None:
    src, want = make_vmcore(tmp_path)
    result = save_vmcore(str(src), str(tmp_path / "crash"),
                         SaveOptions(level, compress, progress=False))
    assert result.complete and result.directory
    d = Path(result.directory)
    assert d.name == "testhost-2026-09-21-14:13:20"
    assert sorted(p.name for p in d.iterdir()) == ["vmcore", "vmcore-dmesg.txt"]
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((d / "vmcore").stat().st_mode) == 0o600
    dump = read_kdump(str(d / "vmcore"))
    assert not dump.incomplete and dump.header.release == "6.1.0-test"
    assert dump.header.nr_cpus == 2 and dump.sub.dump_level == level
    dumped = set(np.flatnonzero(dump.bitmap2))
    assert dumped == set(want)  # pages past p_filesz are not dumped
    for pfn, data in want.items():
        assert read_page(str(d / "vmcore"), dump, pfn) == data
    zeros = sum(1 for d2 in want.values() if not any(d2))
    assert result.pages_zero == (zeros if level else 0)
    assert result.pages_dumped == len(want) - result.pages_zero


@pytest.mark.parametrize("level", [0, 1, 31])
def test_counts_are_pages_written_in_either_format(tmp_path: Path, level: int) -> None:
    """kdump and ELF count alike: pages whose data is written, and zero pages left out."""
    src, want = make_vmcore(tmp_path)
    results = [save_vmcore(str(src), str(tmp_path / fmt), SaveOptions(level, "zlib", format=fmt,
                                                                       progress=False))
               for fmt in ("kdump", "elf")]
    zeros = sum(1 for d in want.values() if not any(d)) if level & 1 else 0
    for r in results:
        assert (r.pages_dumped, r.pages_zero) == (len(want) - zeros, zeros)


def test_a_read_only_target_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, _ = make_vmcore(tmp_path)
    real = os.mkdir

    def read_only(path: str, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        if dir_fd is not None:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        real(path, mode)

    monkeypatch.setattr(os, "mkdir", read_only)
    with pytest.raises(KdumpError, match=f"{tmp_path}/crash: Read-only file system"):
        save_vmcore(str(src), str(tmp_path / "crash"), SaveOptions(1, progress=False))


def test_a_file_as_target_is_not_a_directory(tmp_path: Path) -> None:
    src, _ = make_vmcore(tmp_path)
    (tmp_path / "file").write_text("")
    for target, says in ((tmp_path / "file", f"the target {tmp_path}/file is not a directory"),
                         (tmp_path / "file" / "sub", f"{tmp_path}/file is not a directory")):
        with pytest.raises(KdumpError, match=says):
            save_vmcore(str(src), str(target), SaveOptions(1, progress=False))


@pytest.mark.parametrize("fmt", ["kdump", "elf"])
@pytest.mark.parametrize("withheld", [False, True], ids=["whole", "firmware-page-withheld"])
def test_flat_stream_rebuilds_to_the_same_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               withheld: bool, fmt: str) -> None:
    """A complete stream holds each offset once, in either format (the ELF headers too,
    which an incomplete dump's would cover only what was written), also when a page of
    firmware memory could not be read and is left out (the 2nd bitmap then differs from
    the first plan)."""
    src, _ = make_vmcore(tmp_path)
    firmware = ((0x105 * PAGE, PAGE),) if withheld else ()
    if withheld:
        unreadable_page(monkeypatch, src)
    # The system zlib: ISA-L's pages are not always the same bytes from run to run.
    plain = save_vmcore(str(src), str(tmp_path / "a"),
                        SaveOptions(1, "zlib", format=fmt, progress=False, zlib_engine="zlib",
                                    firmware=firmware))
    stream = tmp_path / "flat"
    with open(stream, "wb") as f:
        flat = save_vmcore(str(src), "-", SaveOptions(1, "zlib", format=fmt, flat=True,
                                                      progress=False, zlib_engine="zlib",
                                                      firmware=firmware), f)
    assert plain.complete and flat.complete and flat.withheld == plain.withheld == withheld
    raw = stream.read_bytes()
    assert raw[:12] == b"makedumpfile"
    rebuilt = bytearray()
    offsets: list[int] = []
    pos = 4096
    while pos < len(raw):
        off, size = (int.from_bytes(raw[pos + i:pos + i + 8], "big", signed=True) for i in (0, 8))
        pos += 16
        if off == -1:
            break
        offsets.append(off)
        assert size > 0  # libkdumpfile refuses empty records
        rebuilt.extend(bytes(max(0, off + size - len(rebuilt))))
        rebuilt[off:off + size] = raw[pos:pos + size]
        pos += size
    assert off == -1 and pos == len(raw)
    assert len(offsets) == len(set(offsets))  # crash picks either record of a repeated offset
    assert bytes(rebuilt) == (Path(plain.directory or "") / "vmcore").read_bytes()


def test_full_disk_leaves_a_readable_incomplete_dump(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    src, want = make_vmcore(tmp_path)
    real = FileSink.write_at
    calls = {"n": 0}

    def write_at(self: FileSink, offset: int, data: bytes | memoryview) -> None:
        calls["n"] += 1
        if calls["n"] == 12:  # after the headers, bitmaps and a few chunks
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, offset, data)

    monkeypatch.setattr(FileSink, "write_at", write_at)
    monkeypatch.setattr(save_mod, "chunk_pages", lambda page_size: 4)
    with pytest.raises(KdumpError, match="filled up"):
        save_vmcore(str(src), str(tmp_path / "crash"), SaveOptions(0, "zlib", progress=False,
                                                                  threads=1))
    (d,) = (tmp_path / "crash").iterdir()
    assert sorted(p.name for p in d.iterdir()) == ["vmcore-dmesg.txt", "vmcore-incomplete"]
    dump = read_kdump(str(d / "vmcore-incomplete"))
    assert dump.incomplete
    kept = np.flatnonzero(dump.bitmap2)
    assert 0 < len(kept) < len(want)
    for pfn in kept:
        assert read_page(str(d / "vmcore-incomplete"), dump, int(pfn)) == want[int(pfn)]


# Each step of a save that holds something open, made to fail at its n-th call (None:
# the sink's class): the page filter, the space check, the new target (its parent's
# fsync), the dump's directory (the target's fsync after it is made), the log, the
# dump's file, its first and a later write, its fsync, its rename and the directory's
# fsync.
FAILING_STEPS: dict[str, tuple[object | None, str, int]] = {
    "filter": (save_mod, "dumpable_windows", 1),
    "space": (save_mod, "check_space", 1),
    "target": (os, "fsync", 1),
    "directory": (os, "fsync", 2),
    "log": (save_mod, "write_dmesg", 1),
    "open": (save_mod, "open_incomplete", 1),
    "first write": (None, "write_at", 1),
    "later write": (None, "write_at", 5),  # the page data, after its descriptors
    "sync": (os, "fsync", 4),
    "rename": (os, "rename", 2),
    "directory fsync": (os, "fsync", 5),
}


@pytest.mark.parametrize("flat", [False, True], ids=["file", "flat"])
@pytest.mark.parametrize("step", FAILING_STEPS)
def test_a_save_failing_at_any_step_leaves_no_fd_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str, flat: bool) -> None:
    """An fd left behind would keep the target busy when capture unmounts it next."""
    src, _ = make_vmcore(tmp_path)
    where, name, n = FAILING_STEPS[step]
    owner = where if where is not None else FlatSink if flat else FileSink
    options = SaveOptions(0, "zlib", flat=flat, progress=False, threads=1,
                          check_space=step == "space")
    fails_closing_every_fd(monkeypatch, owner, name, n,
                           lambda: save_vmcore(str(src), str(tmp_path / "crash"), options))


def test_a_target_it_creates_is_made_durable(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """save creates a missing target (and what is missing above it): each new directory is
    fsync'd in its parent, as the dump's directory is in the target. `save`, unlike
    capture, does not sync before it says the dump is saved, and a target's entry lost in
    a power failure takes the dump with it (ext2 has no journal to keep the order)."""
    src, _ = make_vmcore(tmp_path)
    synced: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    target = tmp_path / "new" / "crash"
    result = save_vmcore(str(src), str(target), SaveOptions(0, "zlib", progress=False))
    for d in (tmp_path, tmp_path / "new", target, Path(result.directory or "")):
        assert d.stat().st_ino in synced, d


@pytest.mark.parametrize("code", [errno.EIO, errno.EFAULT], ids=["EIO", "EFAULT"])
def test_unreadable_pages_are_listed_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               code: int) -> None:
    """EFAULT is what /proc/vmcore gives for old memory it cannot copy (riscv64's
    firmware RAM): a save on the patched riscv64 kernel died of it."""
    src, want = make_vmcore(tmp_path)
    unreadable_page(monkeypatch, src, code)
    with pytest.raises(IncompleteDump, match="1 pages could not be read") as info:
        save_vmcore(str(src), str(tmp_path / "crash"), SaveOptions(0, "zlib", progress=False))
    d = Path(info.value.result.directory or "")
    assert (d / "unreadable-pages.txt").read_text() == "0x105\n"
    dump = read_kdump(str(d / "vmcore-incomplete"))
    assert dump.incomplete and not dump.bitmap2[0x105] and dump.bitmap2[0x104]
    assert read_page(str(d / "vmcore-incomplete"), dump, 0x106) == want[0x106]


def test_unreadable_firmware_memory_leaves_the_dump_complete(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """RAM that firmware keeps (riscv64's OpenSBI, which kexec_file_load's elfcorehdr
    covers under QEMU 7.2) fails with EFAULT: the page is left out, the dump complete."""
    src, want = make_vmcore(tmp_path)
    unreadable_page(monkeypatch, src)
    result = save_vmcore(str(src), str(tmp_path / "crash"),
                         SaveOptions(0, "zlib", progress=False, firmware=((0x105 * PAGE, PAGE),)))
    d = Path(result.directory or "")
    assert result.complete and result.withheld == 1 and result.unreadable == [0x105]
    assert "1 pages of firmware memory" in result.stats.warnings[-1]
    assert not (d / "unreadable-pages.txt").exists()
    dump = read_kdump(str(d / "vmcore"))
    assert not dump.incomplete and not dump.bitmap2[0x105] and dump.bitmap2[0x104]
    assert read_page(str(d / "vmcore"), dump, 0x106) == want[0x106]


def test_truncated_input_saves_what_is_there(tmp_path: Path) -> None:
    src, want = make_vmcore(tmp_path)
    src.write_bytes(src.read_bytes()[:-10 * PAGE])  # the last 10 pages of RAM are gone
    with pytest.raises(IncompleteDump) as info:
        save_vmcore(str(src), str(tmp_path / "crash"), SaveOptions(0, "zlib", progress=False))
    d = Path(info.value.result.directory or "")
    assert len((d / "unreadable-pages.txt").read_text().split()) == 10
    assert f"10 pages could not be read from {src}: it is truncated at " in str(info.value)
    dump = read_kdump(str(d / "vmcore-incomplete"))
    assert dump.incomplete
    for pfn in range(0x100, 0x100 + 22):
        assert read_page(str(d / "vmcore-incomplete"), dump, pfn) == want[pfn]


def test_a_symlinked_target_is_followed_but_no_symlink_in_it(tmp_path: Path) -> None:
    """/var/crash linked to a larger disk is an administrator's choice: the dump goes there
    (found by review: it was refused, so the capture kernel saved nothing while status
    showed the target's free space). A link planted where the dump's directory would go
    is not followed: the dump takes the next name."""
    src, _ = make_vmcore(tmp_path)
    (tmp_path / "disk").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "disk", tmp_path / "crash")
    os.symlink(tmp_path / "elsewhere", tmp_path / "disk" / "testhost-2026-09-21-14:13:20")
    result = save_vmcore(str(src), str(tmp_path / "crash"), SaveOptions(0, "zlib",
                                                                        progress=False))
    assert result.directory == str(tmp_path / "crash" / "testhost-2026-09-21-14:13:20-1")
    assert (tmp_path / "disk" / "testhost-2026-09-21-14:13:20-1" / "vmcore").is_file()
    assert not any((tmp_path / "elsewhere").iterdir())


def test_not_enough_space_is_refused_before_the_dump(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    src, _ = make_vmcore(tmp_path)

    class Tiny:
        f_bavail, f_frsize = 2, 4096

    monkeypatch.setattr(os, "statvfs", lambda p: Tiny())
    made: list[str] = []
    with pytest.raises(KdumpError, match="needs about"):
        save_vmcore(str(src), str(tmp_path / "crash"), SaveOptions(0, "none", progress=False),
                    made=made)
    # the kernel log is kept (found by review: a refused dump left nothing at all)
    (d,) = (tmp_path / "crash").iterdir()
    assert made == [str(d)] and [p.name for p in d.iterdir()] == ["vmcore-dmesg.txt"]


@pytest.mark.parametrize("level", [0, 1])
def test_elf_format_reads_back(tmp_path: Path, level: int) -> None:
    src, want = make_vmcore(tmp_path)
    result = save_vmcore(str(src), str(tmp_path / "crash"),
                         SaveOptions(level, format="elf", progress=False))
    out = Path(result.directory or "") / "vmcore"
    with Vmcore(str(out)) as v:
        assert v.core.machine == 62 and v.vmcoreinfo.osrelease == "6.1.0-test"
        for pfn, data in want.items():  # excluded zero pages still read as zeros
            assert v.read_phys(pfn * PAGE, PAGE) == data


def test_elf_at_level_1_lists_an_unreadable_page(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The ELF format's first pass for zero pages reads every kept page too: a page
    /proc/vmcore cannot give back (riscv64's firmware RAM) is listed there as in the
    pass that writes, not an OSError that fails the whole save."""
    src, want = make_vmcore(tmp_path)
    unreadable_page(monkeypatch, src)
    with pytest.raises(IncompleteDump, match="1 pages could not be read") as info:
        save_vmcore(str(src), str(tmp_path / "crash"),
                    SaveOptions(1, format="elf", progress=False))
    d = Path(info.value.result.directory or "")
    assert (d / "unreadable-pages.txt").read_text() == "0x105\n"
    with Vmcore(str(d / "vmcore-incomplete")) as v:
        for pfn in (0x104, 0x106):
            assert v.read_phys(pfn * PAGE, PAGE) == want[pfn]


def test_elf_at_level_1_lists_the_pages_a_file_cut_short_lacks(tmp_path: Path) -> None:
    """A saved vmcore cut short inside a page: the zero-page pass must not choke on the
    partial page (numpy refused it), and the pages are listed as in the kdump format."""
    src, _ = make_vmcore(tmp_path)
    src.write_bytes(src.read_bytes()[:-10 * PAGE - 100])
    with pytest.raises(IncompleteDump, match="11 pages could not be read"):
        save_vmcore(str(src), str(tmp_path / "crash"),
                    SaveOptions(1, format="elf", progress=False))


def test_pages_of_one_repeated_word_are_stored_as_compress2_stores_them(tmp_path: Path) -> None:
    """Such pages are compressed once per word and reused: each stored page must still be
    what zlib's compress2 at level 1 (makedumpfile's call) makes of it."""
    src, _ = make_vmcore(tmp_path)
    raw = bytearray(src.read_bytes())
    dump_pages = [bytes(PAGE), b"\xcc" * PAGE, b"\xff" * PAGE, b"\xcc" * PAGE,
                  (0x0123456789ABCDEF).to_bytes(8, "little") * (PAGE // 8),
                  b"\xcc" * (PAGE - 1) + b"\xcd", b"\xff" * PAGE]
    with Vmcore(str(src)) as v:
        seg = v.core.loads[1]
        for i, page in enumerate(dump_pages):
            raw[seg.offset + i * PAGE:seg.offset + (i + 1) * PAGE] = page
    src.write_bytes(bytes(raw))
    result = save_vmcore(str(src), str(tmp_path / "crash"),
                         SaveOptions(1, "zlib", progress=False, zlib_engine="zlib"))
    path = str(Path(result.directory or "") / "vmcore")
    dump = read_kdump(path)
    with Vmcore(str(src)) as v:
        first = v.core.loads[1].paddr // PAGE
    for i, page in enumerate(dump_pages[1:], start=1):
        assert read_page(path, dump, first + i) == page
        index = int(np.count_nonzero(dump.bitmap2[:first + i]))
        with open(path, "rb") as f:
            f.seek(dump.descs_offset + 24 * index)
            offset, size, flags, _ = np.frombuffer(f.read(24), PAGE_DESC_DTYPE)[0].tolist()
            f.seek(offset)
            assert f.read(size) == zlib.compress(page, 1) and flags == 1


def test_one_thread_writes_what_a_pool_writes(tmp_path: Path) -> None:
    """One thread makes each chunk inline, more use a pool: the same file either way."""
    src, _ = make_vmcore(tmp_path)
    files = []
    for threads in (1, 3):
        result = save_vmcore(str(src), str(tmp_path / f"t{threads}"),
                             SaveOptions(31, "zlib", threads=threads, progress=False,
                                         zlib_engine="zlib"))
        files.append((Path(result.directory or "") / "vmcore").read_bytes())
    assert files[0] == files[1]


@pytest.mark.parametrize("lost", [False, True], ids=["rename", "unreadable-pages.txt"])
def test_the_target_failing_as_the_dump_is_settled_is_the_targets_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lost: bool) -> None:
    """The last steps (the rename, or unreadable-pages.txt, and the directory's fsync) fail
    on a target that is full or failing as the writes before them do: a TargetError that
    names the dump, which ends the fallback chain, not a bare OSError after which the chain
    writes the whole dump again there."""
    src, _ = make_vmcore(tmp_path)
    if lost:
        unreadable_page(monkeypatch, src)
    real = os.rename

    def rename(a: str, b: str, **kw: object) -> None:
        if b in ("vmcore", "unreadable-pages.txt"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(a, b, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(TargetError, match="vmcore-incomplete.*Input/output error"):
        save_vmcore(str(src), str(tmp_path / "crash"), SaveOptions(0, "zlib", progress=False))


def test_a_save_that_breaks_inside_leaves_a_readable_incomplete_dump(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever stops the writing (here a chunk that cannot be made: a codec's own
    exception, MemoryError), the dump left behind says incomplete and its 2nd bitmap names
    only the pages that were written, as after a full disk: every page it holds reads
    back, none reads as an empty page."""
    src, want = make_vmcore(tmp_path)
    real = save_mod._make_chunk
    calls = {"n": 0}

    def make_chunk(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise MemoryError
        return real(*args)

    monkeypatch.setattr(save_mod, "_make_chunk", make_chunk)
    monkeypatch.setattr(save_mod, "chunk_pages", lambda page_size: 4)
    with pytest.raises(MemoryError):
        save_vmcore(str(src), str(tmp_path / "crash"), SaveOptions(0, "zlib", progress=False,
                                                                  threads=1))
    (d,) = (tmp_path / "crash").iterdir()
    dump = read_kdump(str(d / "vmcore-incomplete"))
    kept = np.flatnonzero(dump.bitmap2)
    assert dump.incomplete and 0 < len(kept) < len(want)
    for pfn in kept:
        assert read_page(str(d / "vmcore-incomplete"), dump, int(pfn)) == want[int(pfn)]


@pytest.mark.parametrize("flat", [False, True], ids=["file", "flat"])
def test_a_full_disk_is_the_targets_failure_in_either_form(tmp_path: Path, flat: bool) -> None:
    """A real full file system (a small tmpfs: the log fits, the dump does not): the
    failure is the target's, which ends the fallback chain, in either form. The flat
    file's buffered writer, closed on the way out, met the full disk again."""
    src, _ = make_vmcore(tmp_path)
    target = tmp_path / "full"
    target.mkdir()
    tmpfs(target, "64k")
    try:
        with pytest.raises(TargetError, match="filled up"):
            save_vmcore(str(src), str(target), SaveOptions(0, "none", flat=flat, progress=False,
                                                           check_space=False))
        (d,) = target.iterdir()
        assert {"vmcore-dmesg.txt", f"vmcore{'.flat' if flat else ''}-incomplete"} == \
            {p.name for p in d.iterdir()}
    finally:
        subprocess.run(["umount", str(target)], check=True)


@pytest.mark.parametrize("fmt", ["kdump", "elf"])
def test_an_unreadable_utsname_does_not_stop_the_save(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    """init_uts_ns on a page /proc/vmcore cannot give back (EIO): the dump is named
    localhost as when the name is not in the dump, not refused as if the target had
    failed ('cannot write under TARGET: Input/output error', which ends capture's chain)."""
    src, _ = make_vmcore(tmp_path)
    with Vmcore(str(src)) as v:
        uts = v.vmcoreinfo.symbol("init_uts_ns")
    real = Vmcore.read_virt

    def read_virt(self: Vmcore, vaddr: int, size: int) -> bytes:
        if vaddr == uts:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(self, vaddr, size)

    monkeypatch.setattr(Vmcore, "read_virt", read_virt)
    result = save_vmcore(str(src), str(tmp_path / "crash"),
                         SaveOptions(1, "zlib", format=fmt, progress=False))
    assert result.complete and Path(result.directory or "").name.startswith("localhost-")


def test_saving_imports_neither_tempfile_nor_hashlib() -> None:
    """tempfile's random imports hashlib, and with it OpenSSL's libcrypto: 0.8 MB of peak
    RSS that a save, held to makedumpfile's, has not to spare (a fsync of the target's
    parent through fileio brought them in once: 37.1 MB against makedumpfile's 36.7)."""
    code = ("import sys, numpy; before = set(sys.modules); "
            "import kdumpctl_py.cli.save, kdumpctl_py.capture.save, kdumpctl_py.service.capture; "
            "print(sorted({'tempfile', 'hashlib'} & (set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_the_space_check_estimates_only_where_an_uncompressed_dump_would_not_fit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compressing a sample of the pages to estimate the dump's size costs a few ms of a
    quarter-second save; a target with room for every page uncompressed needs none."""
    src, _ = make_vmcore(tmp_path)
    calls: list[int] = []
    real = save_mod._estimate

    def estimate(*args: Any) -> int:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(save_mod, "_estimate", estimate)
    options = SaveOptions(31, "zlib", progress=False, threads=1)
    save_vmcore(str(src), str(tmp_path / "roomy"), options)
    assert calls == []
    monkeypatch.setattr(os, "statvfs", lambda path: SimpleNamespace(f_bavail=1, f_frsize=1))
    with pytest.raises(TargetError, match="1 B free but the dump needs about"):
        save_vmcore(str(src), str(tmp_path / "full"), options)
    assert calls == [1]


def test_threads_beyond_the_memory_budget_are_not_started(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """--threads 64 under --memory-limit 56M would keep 128 chunks of 1 MiB in flight, more
    than twice the budget: the save runs the threads the budget holds, and says so."""
    from concurrent import futures

    started: list[int] = []
    real = futures.ThreadPoolExecutor

    def pool(max_workers: int) -> futures.ThreadPoolExecutor:
        started.append(max_workers)
        return real(max_workers=max_workers)

    monkeypatch.setattr(futures, "ThreadPoolExecutor", pool)
    src, _ = make_vmcore(tmp_path)
    result = save_vmcore(str(src), str(tmp_path / "crash"),
                         SaveOptions(0, "zlib", progress=False, threads=64,
                                     memory_limit=MIN_LIMIT))
    assert result.complete and started == [3]
    assert "--threads 64" in capsys.readouterr().err


@pytest.mark.parametrize("form", [{}, {"format": "elf"}, {"flat": True}, {"threads": 2}])
def test_a_save_leaves_the_same_cyclic_garbage_whatever_its_size(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: dict[str, Any]) -> None:
    """What lets the program save without the cycle collector (cli QUICK_EXIT): the cyclic
    objects a save leaves do not grow with its chunks, pages that cannot be read included."""
    src, _ = make_vmcore(tmp_path)
    unreadable_page(monkeypatch, src)

    def garbage(run: int) -> int:
        options = SaveOptions(1, "zlib", threads=1, progress=False, zlib_engine="zlib",
                              firmware=((0x105 * PAGE, PAGE),))
        gc.collect()
        if form.get("flat"):
            with open(tmp_path / f"flat{run}", "wb") as out:
                save_vmcore(str(src), "-", options, out)
        else:
            save_vmcore(str(src), str(tmp_path / f"out{run}"), replace(options, **form))
        return gc.collect()

    enabled = gc.isenabled()
    gc.disable()
    try:
        garbage(0)  # the first save's imports and caches
        one = garbage(1)
        monkeypatch.setattr(save_mod, "chunk_pages", lambda page_size: 2)  # 20 chunks
        assert garbage(2) == one <= 50
    finally:
        if enabled:
            gc.enable()
