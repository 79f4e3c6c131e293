"""The fallback chain: each way filtering can fail, and what the dump and save.json say."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kdumpctl_py.capture import fallback as fallback_mod
from kdumpctl_py.capture import filter as filter_mod
from kdumpctl_py.capture.dumpdir import TargetError
from kdumpctl_py.capture.fallback import SaveFailed, plan_steps, save_with_fallback
from kdumpctl_py.capture.filter import Carry, PageLayout
from kdumpctl_py.capture.kdumpfile import read_kdump, read_page
from kdumpctl_py.capture.record import read_record, summary
from kdumpctl_py.capture.save import SaveOptions
from kdumpctl_py.capture.vmcore import Vmcore
from tests.capture.kernels import PAGE, Memory, build
from tests.localserver import tmpfs

BUDDY = -129


@pytest.fixture
def mem() -> Memory:
    m = Memory(768, "6.1")
    for pfn in (260, 520):  # free pages in the second and third sections
        m.put(pfn, 48, BUDDY, "<i4")
    return m


def options(level: int = 31) -> SaveOptions:
    return SaveOptions(level, "zlib", progress=False)


def assert_every_page(path: Path, mem: Memory) -> set[int]:
    dump = read_kdump(str(path))
    pfns = {int(p) for p in np.flatnonzero(dump.bitmap2)}
    for pfn in pfns:
        assert read_page(str(path), dump, pfn) == mem.page(pfn)
    return pfns


def test_steps_go_down_to_a_copy() -> None:
    assert [s.how for s in plan_steps(options(31))] == [
        "at -d 31", "at -d 31 keeping what the page filter failed on",
        "at -d 1 without struct pages", "as a plain copy"]
    assert [s.how for s in plan_steps(options(1))] == ["at -d 1", "as a plain copy"]


def test_filter_failing_everywhere_saves_zero_page_filtered(
        tmp_path: Path, mem: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(info: object) -> None:
        raise ValueError("the page filter broke")

    monkeypatch.setattr(filter_mod, "page_layout", broken)
    src = build(mem, tmp_path / "vmcore")
    result, record = save_with_fallback(str(src), str(tmp_path / "crash"), options())
    assert result.complete and record.level_written == 1 and record.level_asked == 31
    assert [a.how for a in record.failed] == [
        "at -d 31", "at -d 31 keeping what the page filter failed on"]
    assert all("ValueError: the page filter broke" == a.error for a in record.failed)
    d = Path(result.directory or "")
    assert assert_every_page(d / "vmcore", mem) == set(range(mem.pages))
    assert read_kdump(str(d / "vmcore")).sub.dump_level == 1
    rec = read_record(str(d))
    assert rec is not None and rec == json.loads((d / "save.json").read_text())
    assert rec["schema"] == 1 and rec["format"] == "kdump" and rec["bytes"] == result.bytes_out
    assert summary(rec) == ("saved at -d 1 after saving at -d 31 failed: "
                            "ValueError: the page filter broke")


def test_one_section_failing_keeps_only_its_pages(
        tmp_path: Path, mem: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    real = filter_mod._exclude_section

    def broken(layout: PageLayout, level: int, start: int, *rest: Any) -> Carry:
        if start == 256:
            raise IndexError("section 1 is odd")
        return real(layout, level, start, *rest)

    monkeypatch.setattr(filter_mod, "_exclude_section", broken)
    src = build(mem, tmp_path / "vmcore")
    result, record = save_with_fallback(str(src), str(tmp_path / "crash"), options())
    assert record.level_written == 31 and len(record.failed) == 1
    assert "section 1 is odd" in record.warnings[0]
    assert assert_every_page(Path(result.directory or "") / "vmcore", mem) == \
        set(range(mem.pages)) - {520}


def test_every_filtered_save_failing_copies_the_vmcore(
        tmp_path: Path, mem: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no filtering today")

    monkeypatch.setattr(fallback_mod, "save_vmcore", broken)
    src = build(mem, tmp_path / "vmcore")
    result, record = save_with_fallback(str(src), str(tmp_path / "crash"), options())
    d = Path(result.directory or "")
    assert (d / "vmcore").read_bytes() == src.read_bytes()
    assert record.level_written is None and record.format == "copy" and len(record.failed) == 3
    assert summary(read_record(str(d)) or {}).startswith("copied whole (no filtering) after")
    with Vmcore(str(d / "vmcore")) as v:
        assert v.read_phys(100 * PAGE, PAGE) == mem.page(100)


def test_a_failed_attempts_directory_is_removed_once_a_dump_is_written(
        tmp_path: Path, mem: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    from kdumpctl_py.capture.save import save_vmcore as real

    target = tmp_path / "crash"

    def half(vmcore: str, where: str, opts: SaveOptions, made: list[str]) -> object:
        if opts.dump_level == 31:
            (target / "testhost-2026-09-21-14:13:20").mkdir(parents=True)
            made.append(str(target / "testhost-2026-09-21-14:13:20"))
            (target / "testhost-2026-09-21-14:13:20" / "vmcore-incomplete").write_bytes(b"x")
            raise RuntimeError("broke halfway")
        return real(vmcore, where, opts, made=made)

    monkeypatch.setattr(fallback_mod, "save_vmcore", half)
    src = build(mem, tmp_path / "vmcore")
    result, record = save_with_fallback(str(src), str(target), options())
    assert [p.name for p in target.iterdir()] == [Path(result.directory or "").name]
    assert record.failed[0].removed and record.failed[0].directory
    assert all(a.removed for a in record.failed if a.directory)


def test_a_failed_attempts_directory_that_stays_is_not_recorded_as_removed(
        tmp_path: Path, mem: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The failed attempt's directory cannot be deleted (a file system is mounted in it,
    and rmtree cannot remove a mount point): the dump is saved, and save.json says the
    directory is still there."""
    from kdumpctl_py.capture.save import save_vmcore as real

    target = tmp_path / "crash"
    left = target / "testhost-2026-09-21-14:13:20"
    busy = left / "busy"

    def half(vmcore: str, where: str, opts: SaveOptions, made: list[str]) -> object:
        if opts.dump_level == 31:
            busy.mkdir(parents=True)
            made.append(str(left))
            tmpfs(busy, "64k")
            raise RuntimeError("broke halfway")
        return real(vmcore, where, opts, made=made)

    monkeypatch.setattr(fallback_mod, "save_vmcore", half)
    src = build(mem, tmp_path / "vmcore")
    try:
        result, record = save_with_fallback(str(src), str(target), options())
    finally:
        if busy.is_mount():
            subprocess.run(["umount", str(busy)], check=True)
    assert result.complete and left.is_dir()
    assert record.failed[0].directory == str(left) and not record.failed[0].removed
    rec = read_record(result.directory or "")
    assert rec is not None and rec["failed"][0]["removed"] is False


def test_target_failures_are_not_retried(tmp_path: Path, mem: Memory,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def full(vmcore: str, where: str, opts: SaveOptions, made: list[str]) -> None:
        calls.append(opts.dump_level)
        raise TargetError("the disk filled up")

    monkeypatch.setattr(fallback_mod, "save_vmcore", full)
    src = build(mem, tmp_path / "vmcore")
    with pytest.raises(TargetError):
        save_with_fallback(str(src), str(tmp_path / "crash"), options())
    assert calls == [31]


def test_nothing_written_at_all_still_leaves_a_record(
        tmp_path: Path, mem: Memory, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Every attempt fails, the copy too: save.json in a directory named as the dump's
    would be says why, and status shows it."""
    from kdumpctl_py.capture import copy as copy_mod
    from kdumpctl_py.facts.view import SystemView

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("nothing works")

    monkeypatch.setattr(fallback_mod, "save_vmcore", broken)
    monkeypatch.setattr(copy_mod, "copy_vmcore", broken)
    src = build(mem, tmp_path / "vmcore")
    target = tmp_path / "crash"
    with pytest.raises(SaveFailed, match="no dump could be written") as e:
        save_with_fallback(str(src), str(target), options())
    (d,) = target.iterdir()
    assert d.name.startswith("testhost-") and [p.name for p in d.iterdir()] == ["save.json"]
    assert f"(recorded in {d / 'save.json'})" in str(e.value)
    assert f"no dump was saved; {d / 'save.json'} says why" in capsys.readouterr().err
    rec = read_record(str(d)) or {}
    assert rec["saved"] is False and rec["level_written"] is None and not rec["complete"]
    assert [a["how"] for a in rec["failed"]] == [s.how for s in plan_steps(options())]
    want = "no dump saved: " + "; ".join(
        f"{s.how} failed: RuntimeError: nothing works" for s in plan_steps(options()))
    assert summary(rec) == want
    (entry,) = SystemView("/").dumps(str(target))
    assert (entry.name, entry.complete, entry.bytes, entry.saved) == (d.name, False, 0, want)


def test_nothing_readable_still_leaves_a_record(tmp_path: Path) -> None:
    with pytest.raises(SaveFailed, match="no dump could be written") as e:
        save_with_fallback(str(tmp_path / "missing"), str(tmp_path / "crash"), options())
    (d,) = (tmp_path / "crash").iterdir()
    assert d.name.startswith("localhost-") and str(d / "save.json") in str(e.value)
    assert (read_record(str(d)) or {})["saved"] is False


def test_a_target_failure_is_recorded_beside_what_it_left(
        tmp_path: Path, mem: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "crash"
    left = target / "testhost-2026-09-21-14:13:20"

    def full(vmcore: str, where: str, opts: SaveOptions, made: list[str]) -> None:
        left.mkdir(parents=True)
        made.append(str(left))
        (left / "vmcore-incomplete").write_bytes(b"x" * 100)
        raise TargetError("the disk filled up")

    monkeypatch.setattr(fallback_mod, "save_vmcore", full)
    src = build(mem, tmp_path / "vmcore")
    with pytest.raises(TargetError, match="the disk filled up"):
        save_with_fallback(str(src), str(target), options())
    rec = read_record(str(left)) or {}
    assert (rec["saved"], rec["vmcore"], rec["bytes"]) == (False, "vmcore-incomplete", 100)
    assert summary(rec) == "no dump saved: at -d 31 failed: the disk filled up"
    assert (left / "vmcore-incomplete").read_bytes() == b"x" * 100  # what was written stays


def test_a_target_that_takes_nothing_gets_no_record(
        tmp_path: Path, mem: Memory, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "crash"
    blocker.write_bytes(b"a file where the target should be")
    with pytest.raises(TargetError, match="is not a directory"):
        save_with_fallback(str(build(mem, tmp_path / "vmcore")), str(blocker), options())
    assert "no record of why could be written" in capsys.readouterr().err
    assert blocker.read_bytes() == b"a file where the target should be"


@pytest.mark.parametrize("code", ["EIO", "EFAULT"])
def test_the_copy_zero_fills_what_cannot_be_read(tmp_path: Path, mem: Memory,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 code: str) -> None:
    import errno
    import os

    from kdumpctl_py.capture.copy import copy_vmcore

    src = build(mem, tmp_path / "vmcore")
    inode, bad = src.stat().st_ino, (1 << 20) + 5 * PAGE
    real = os.pread

    def pread(fd: int, n: int, offset: int) -> bytes:
        if os.fstat(fd).st_ino == inode and offset <= bad < offset + n:
            raise OSError(getattr(errno, code), code)
        return real(fd, n, offset)

    monkeypatch.setattr(os, "pread", pread)
    result = copy_vmcore(str(src), str(tmp_path / "crash"))
    d = Path(result.directory or "")
    assert not result.complete and not (d / "vmcore").exists()
    assert (d / "unreadable-pages.txt").read_text() == f"file offset {bad:#x}\n"
    want = bytearray(src.read_bytes())
    want[bad:bad + PAGE] = bytes(PAGE)
    assert (d / "vmcore-incomplete").read_bytes() == bytes(want)


def test_the_copy_leaves_out_firmware_memory_and_stays_complete(
        tmp_path: Path, mem: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last step of the chain knows firmware memory as `save` does: a page there that
    cannot be read (riscv64's OpenSBI) is zeros with a warning, and the copy is whole."""
    import errno
    import os

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("filtering broke")

    src = build(mem, tmp_path / "vmcore")
    ((paddr, _, offset), *_) = Vmcore(str(src)).phys_ranges()
    inode, bad = src.stat().st_ino, offset + 5 * PAGE
    real = os.pread

    def pread(fd: int, n: int, at: int) -> bytes:
        if os.fstat(fd).st_ino == inode and at <= bad < at + n:
            raise OSError(errno.EFAULT, "Bad address")
        return real(fd, n, at)

    monkeypatch.setattr(fallback_mod, "save_vmcore", broken)
    monkeypatch.setattr(os, "pread", pread)
    firmware = ((paddr + 4 * PAGE, 2 * PAGE),)
    result, record = save_with_fallback(str(src), str(tmp_path / "crash"),
                                        SaveOptions(31, "zlib", progress=False,
                                                    firmware=firmware))
    d = Path(result.directory or "")
    assert result.complete and result.withheld == 1 and record.complete
    assert not (d / "unreadable-pages.txt").exists()
    want = bytearray(src.read_bytes())
    want[bad:bad + PAGE] = bytes(PAGE)
    assert (d / "vmcore").read_bytes() == bytes(want)
    # outside firmware memory the same page leaves the copy incomplete
    result, _ = save_with_fallback(str(src), str(tmp_path / "crash2"), options())
    assert not result.complete and result.withheld == 0


@pytest.mark.parametrize(("key", "value"), [
    ("SIZE(page)", "0"), ("OFFSET(page.mapping)", "4096"),
    ("NUMBER(SECTION_SIZE_BITS)", "99"), ("NUMBER(SECTION_SIZE_BITS)", "0"),
    ("NUMBER(MAX_PHYSMEM_BITS)", "1"), ("SIZE(mem_section)", "0")])
def test_struct_page_numbers_no_kernel_has_keep_every_page(
        tmp_path: Path, mem: Memory, monkeypatch: pytest.MonkeyPatch, key: str,
        value: str) -> None:
    """Found by review: a damaged VMCOREINFO number made the filter fail with an internal
    error (ZeroDivisionError, a negative shift, an empty AssertionError). It now says what
    is wrong and saves every page but zero pages, at the first attempt."""
    from tests.capture import kernels

    monkeypatch.setitem(kernels.COMMON, key, value)
    src = build(mem, tmp_path / "vmcore")
    result, record = save_with_fallback(str(src), str(tmp_path / "crash"), options())
    assert not record.failed and record.level_written == 1
    assert any(key.split("(")[1].rstrip(")") in w for w in record.warnings), record.warnings
    assert assert_every_page(Path(result.directory or "") / "vmcore", mem) == \
        set(range(mem.pages))


def test_another_saves_dump_is_never_taken_for_a_failed_attempts(
        tmp_path: Path, mem: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: the directory a failed attempt left was taken to be the newest
    name the target gained meanwhile, so a save running beside the fallback (the service,
    and `save --fallback` by hand) had its whole dump deleted with it."""
    from kdumpctl_py.capture.save import save_vmcore as real

    target = tmp_path / "crash"
    own, other = target / "testhost-2026-09-21-14:13:20", target / "zhost-2026-09-21-14:13:21"

    def half(vmcore: str, where: str, opts: SaveOptions, made: list[str]) -> object:
        if opts.dump_level == 31:
            own.mkdir(parents=True)
            made.append(str(own))
            other.mkdir()  # the other save's, finished meanwhile
            (other / "vmcore").write_bytes(b"a whole dump")
            raise RuntimeError("broke halfway")
        return real(vmcore, where, opts, made=made)

    monkeypatch.setattr(fallback_mod, "save_vmcore", half)
    result, record = save_with_fallback(str(build(mem, tmp_path / "vmcore")), str(target),
                                        options())
    assert record.failed[0].directory == str(own) and record.failed[0].removed
    assert (other / "vmcore").read_bytes() == b"a whole dump"
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [Path(result.directory or "").name, other.name])


@pytest.fixture
def sigterm_fails_the_test() -> Iterator[None]:
    """SIGTERM's default would end pytest; a save that lets it through fails instead."""
    def reached(signum: int, frame: object) -> None:
        pytest.fail("SIGTERM reached the handler the save should have replaced")

    old = signal.signal(signal.SIGTERM, reached)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@pytest.mark.usefixtures("sigterm_fails_the_test")
def test_sigterm_during_the_plain_copy_is_recorded(
        tmp_path: Path, mem: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: only the filtered save's write caught SIGTERM, so the capture
    service, stopped during the plain copy, died with nothing said and no save.json."""
    from kdumpctl_py.capture import copy as copy_mod
    from kdumpctl_py.capture.save import Interrupted

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no filtering today")

    real_copy = copy_mod._copy

    def stopped(src: int, out: int, result: object) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        return real_copy(src, out, result)  # type: ignore[arg-type]

    monkeypatch.setattr(fallback_mod, "save_vmcore", broken)
    monkeypatch.setattr(copy_mod, "_copy", stopped)
    target = tmp_path / "crash"
    with pytest.raises(Interrupted, match="vmcore-incomplete holds what was copied so far"):
        save_with_fallback(str(build(mem, tmp_path / "vmcore")), str(target), options())
    (d,) = target.iterdir()
    rec = read_record(str(d)) or {}
    assert rec["saved"] is False and rec["failed"][-1]["how"] == "as a plain copy"
    assert (d / "vmcore-incomplete").exists() and not (d / "vmcore").exists()


@pytest.mark.usefixtures("sigterm_fails_the_test")
def test_sigterm_while_planning_ends_the_chain(
        tmp_path: Path, mem: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    from kdumpctl_py.capture import save as save_mod
    from kdumpctl_py.capture.save import Interrupted

    real_plan = save_mod._plan
    calls: list[int] = []

    def stopped(v: Vmcore, opts: SaveOptions, comp: object) -> object:
        calls.append(opts.dump_level)
        os.kill(os.getpid(), signal.SIGTERM)
        return real_plan(v, opts, comp)  # type: ignore[arg-type]

    monkeypatch.setattr(save_mod, "_plan", stopped)
    with pytest.raises(Interrupted, match="interrupted by signal 15"):
        save_with_fallback(str(build(mem, tmp_path / "vmcore")), str(tmp_path / "crash"),
                           options())
    assert calls == [31]


def test_a_target_it_may_not_write_ends_the_chain_and_is_named(
        tmp_path: Path, mem: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: EACCES (a directory of another owner, root squashed by an NFS
    server) was not the target's failure: the error named a relative path with "run as
    root?", and the fallback tried again with less filtering, down to a misleading
    complaint about free space."""
    from kdumpctl_py.capture import save as save_mod

    target = tmp_path / "crash"
    target.mkdir()
    real_mkdir, calls = os.mkdir, []

    def refused(path: str, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        if dir_fd is None:
            return real_mkdir(path, mode)
        raise PermissionError(errno.EACCES, "Permission denied", path)

    real = save_mod.save_vmcore

    def counted(vmcore: str, where: str, opts: SaveOptions, made: list[str]) -> object:
        calls.append(opts.dump_level)
        return real(vmcore, where, opts, made=made)

    monkeypatch.setattr(os, "mkdir", refused)
    monkeypatch.setattr(fallback_mod, "save_vmcore", counted)
    with pytest.raises(TargetError, match=f"cannot write under {target}: Permission denied"):
        save_with_fallback(str(build(mem, tmp_path / "vmcore")), str(target), options())
    assert calls == [31]
