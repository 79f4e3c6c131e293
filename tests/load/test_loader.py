"""load/loader.py with raw_syscall replaced: which call, which flags and which fds each
method hands the kernel, and that every fd it opened is closed again, loaded or not."""

from __future__ import annotations

import ctypes
import errno
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from kdumpctl_py.arch import get_arch
from kdumpctl_py.config.model import Config
from kdumpctl_py.errors import KdumpError
from kdumpctl_py.facts.iomem import Range
from kdumpctl_py.facts.kernel_image import KernelImage
from kdumpctl_py.facts.view import META, SystemView
from kdumpctl_py.load import extended, loader, syscalls
from kdumpctl_py.plan.load import LoadPlan, LoadRequest, plan_capture_load
from kdumpctl_py.plan.segments import ClassicPlan, Segment
from tests.builders import open_fds, open_fds_settled, synthetic_snapshot
from tests.snapshots import make_snapshot

KERNEL = b"MZ-the-kernel-file" * 10
UNPACKED = b"the-unpacked-kernel" * 10
INITRD = b"070701-the-initrd" * 10
DTB = b"\xd0\x0d\xfe\xed-the-dtb"
CMDLINE = "console=ttyS0 reset_devices nr_cpus=1"
ON_CRASH, NO_INITRAMFS, UNLOAD = 0x2, 0x4, 0x1  # include/uapi/linux/kexec.h: kexec_file_load
KEXEC_ON_CRASH = 0x1  # kexec_load


@dataclass
class Call:
    """One system call as the kernel would see it, its buffers read while they lived."""

    nr: int
    args: tuple[int | None, ...]
    files: dict[int, bytes]  # fd argument -> what reading it from the start gives
    cmdline: bytes | None = None
    fdset: list[tuple[int, bytes]] | None = None  # (type, contents) of the extended fd set
    segments: list[tuple[bytes, int, int]] | None = None  # (data, mem, memsz)


def _contents(fd: int) -> bytes:
    return os.pread(fd, 1 << 20, 0)


class Kernel:
    """Stands in for raw_syscall: records each call, answers `err` (0: success)."""

    def __init__(self, err: int = 0) -> None:
        self.err = err
        self.calls: list[Call] = []

    def __call__(self, nr: int, *args: int | None) -> int:
        call = Call(nr, args, {})
        if len(args) >= 5 and args[2]:  # kexec_file_load: kernel_fd, initrd_fd, len, cmdline
            kernel_fd, initrd_fd = args[0], args[1]
            assert kernel_fd is not None and initrd_fd is not None and args[3] is not None
            call.files = {fd: _contents(fd) for fd in (kernel_fd, initrd_fd) if fd >= 0}
            call.cmdline = ctypes.string_at(args[3], args[2])
            if len(args) == 6 and args[5]:
                n = ctypes.c_uint32.from_address(args[5]).value
                fds = (extended.KexecFileFd * n).from_address(args[5] + 4)
                call.fdset = [(e.type, _contents(e.fd)) for e in fds]
                call.files.update({e.fd: _contents(e.fd) for e in fds})
        elif len(args) == 4 and args[2]:  # kexec_load: entry, nr_segments, segments, flags
            assert args[1] is not None
            segments = (syscalls.KexecSegment * args[1]).from_address(args[2])
            call.segments = [(ctypes.string_at(s.buf, s.bufsz), s.mem, s.memsz)
                             for s in segments]
        self.calls.append(call)
        return self.err


def _view(tmp_path: Path, machine: str = "x86_64", **probes: str) -> SystemView:
    root = make_snapshot(tmp_path / "snap", machine, {
        "/boot/vmlinuz-6.1.0-test": KERNEL, "/boot/initrd.img-6.1.0-test": INITRD,
        "/sys/kernel/kexec_crash_loaded": "1\n"}, probes=probes)
    return SystemView(root)


def _plan(method: str, initrd: bool = True, packed: str | None = None,
          dtb: bytes | None = None) -> LoadPlan:
    image = KernelImage("x86-bzimage", "x86_64")
    return LoadPlan(method, "test", "/boot/vmlinuz-6.1.0-test",
                    "/boot/initrd.img-6.1.0-test" if initrd else None, CMDLINE, image, packed,
                    UNPACKED if packed else KERNEL, INITRD if initrd else None, dtb, None,
                    len(KERNEL), len(INITRD) if initrd else None)


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Kernel:
    k = Kernel()
    monkeypatch.setattr(syscalls, "raw_syscall", k)
    return k


X86 = get_arch("x86_64")
ARM64 = get_arch("aarch64")


@pytest.mark.parametrize("initrd", [True, False], ids=["initrd", "no-initrd"])
def test_file_hands_the_kernel_and_initrd_files(tmp_path: Path, kernel: Kernel,
                                                initrd: bool) -> None:
    before = open_fds_settled()
    loader.load(_view(tmp_path), _plan("file", initrd))
    (call,) = kernel.calls
    assert call.nr == X86.kexec_file_load_nr and len(call.args) == 5
    kernel_fd, initrd_fd, length, _, flags = call.args
    assert call.files[kernel_fd or 0] == KERNEL
    assert call.cmdline == CMDLINE.encode() + b"\0" and length == len(CMDLINE) + 1
    if initrd:
        assert call.files[initrd_fd or 0] == INITRD and flags == ON_CRASH
    else:
        assert initrd_fd == -1 and flags == ON_CRASH | NO_INITRAMFS
    assert open_fds() == before


def test_file_hands_a_packed_kernel_unpacked_in_a_memfd(tmp_path: Path, kernel: Kernel) -> None:
    before = open_fds_settled()
    loader.load(_view(tmp_path), _plan("file", packed="gzip"))
    (call,) = kernel.calls
    assert call.files[call.args[0] or 0] == UNPACKED and call.args[4] == ON_CRASH
    assert open_fds() == before


@pytest.mark.parametrize("initrd,dtb", [(True, DTB), (False, DTB), (True, None)],
                         ids=["initrd-dtb", "dtb", "initrd"])
def test_extended_hands_a_typed_fd_set(tmp_path: Path, kernel: Kernel, initrd: bool,
                                       dtb: bytes | None) -> None:
    before = open_fds_settled()
    loader.load(_view(tmp_path), _plan("extended", initrd, dtb=dtb))
    (call,) = kernel.calls
    assert call.nr == X86.kexec_file_load_nr and len(call.args) == 6
    assert call.args[:2] == (-1, -1) and call.cmdline == CMDLINE.encode() + b"\0"
    want = [(extended.KEXEC_FILE_TYPE_KERNEL, KERNEL)]
    want += [(extended.KEXEC_FILE_TYPE_INITRD, INITRD)] if initrd else []
    want += [(extended.KEXEC_FILE_TYPE_DTB, DTB)] if dtb else []
    assert call.fdset == want
    assert call.args[4] == ON_CRASH | extended.KEXEC_FILE_FDSET | (0 if initrd else NO_INITRAMFS)
    assert open_fds() == before


def test_classic_hands_the_planned_segments(tmp_path: Path, kernel: Kernel) -> None:
    segments = (Segment("kernel", b"K" * 64, 0x80200000, 0x10000),
                Segment("dtb", b"D" * 16, 0x80400000, 0x1000))
    classic = ClassicPlan(0x80300000, segments, Range(0x80000000, 0x8fffffff), b"D" * 16)
    plan = replace(_plan("classic"), classic=classic)
    before = open_fds_settled()
    loader.load(_view(tmp_path, "aarch64"), plan)
    (call,) = kernel.calls
    assert call.nr == ARM64.kexec_load_nr
    assert call.args[0] == 0x80300000 and call.args[1] == 2
    assert call.args[3] == KEXEC_ON_CRASH | ARM64.kexec_arch
    assert call.segments == [(s.data, s.mem, s.memsz) for s in segments]
    assert open_fds() == before  # classic opens nothing


@pytest.mark.parametrize("method", ["file", "extended"])
def test_a_refused_load_is_one_line_and_leaks_no_fd(tmp_path: Path, kernel: Kernel,
                                                    method: str) -> None:
    kernel.err = errno.EADDRNOTAVAIL
    before = open_fds_settled()
    with pytest.raises(KdumpError, match=rf"^kexec_file_load \({method}\) failed: the crash "
                                         "region .*; a capture kernel is loaded$"):
        loader.load(_view(tmp_path), _plan(method, dtb=DTB, packed="gzip"))
    assert len(kernel.calls) == 1 and open_fds() == before


def test_lockdown_refusing_the_extended_load_names_the_dtb(tmp_path: Path,
                                                           kernel: Kernel) -> None:
    kernel.err = errno.EPERM
    root = _view(tmp_path).root
    (root / "sys/kernel/security").mkdir(parents=True)
    (root / "sys/kernel/security/lockdown").write_text("none [integrity] confidentiality\n")
    plan = replace(_plan("extended", dtb=DTB), dtb_path="/root/board.dtb")
    with pytest.raises(KdumpError, match=r"refuses the device tree /root/board\.dtb unless IMA"):
        loader.load(SystemView(root), plan)


class Refuses:
    """A kernel that refuses the extended call with `err` and takes the plain one."""

    def __init__(self, err: int) -> None:
        self.kernel = Kernel()
        self.err = err

    def __call__(self, nr: int, *args: int | None) -> int:
        self.kernel(nr, *args)
        return self.err if len(args) == 6 else 0


@pytest.mark.parametrize("err", [errno.EPERM, errno.EACCES], ids=["EPERM", "EACCES"])
def test_a_refused_extended_load_falls_back_to_the_plain_call(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int) -> None:
    """IMA appraisal (EACCES) or LoadPin (EPERM) refusing the DTB's memfd: auto loads with
    plain kexec_file_load, which hands over no DTB, and says why."""
    refuses = Refuses(err)
    monkeypatch.setattr(syscalls, "raw_syscall", refuses)
    before = open_fds_settled()
    plan = replace(_plan("extended", dtb=DTB), dtb_path="/root/board.dtb", chosen=True)
    why = loader.load(_view(tmp_path), plan)
    first, second = refuses.kernel.calls
    assert len(first.args) == 6 and first.fdset is not None
    assert len(second.args) == 5 and second.args[4] == ON_CRASH
    assert second.files[second.args[0] or 0] == KERNEL
    assert why is not None and "\n" not in why
    assert f"refused with {errno.errorcode[err]}" in why and "/root/board.dtb" in why
    assert "loaded with plain kexec_file_load" in why
    assert open_fds() == before


def test_a_forced_extended_load_does_not_fall_back(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    refuses = Refuses(errno.EACCES)
    monkeypatch.setattr(syscalls, "raw_syscall", refuses)
    with pytest.raises(KdumpError, match=r"^kexec_file_load \(extended\) failed"):
        loader.load(_view(tmp_path), _plan("extended", dtb=DTB))
    assert len(refuses.kernel.calls) == 1


def test_no_fall_back_when_kexec_is_disabled(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    refuses = Refuses(errno.EPERM)
    monkeypatch.setattr(syscalls, "raw_syscall", refuses)
    view = _view(tmp_path)
    (view.root / "proc/sys/kernel").mkdir(parents=True)
    (view.root / "proc/sys/kernel/kexec_load_disabled").write_text("1\n")
    with pytest.raises(KdumpError, match="kexec_load_disabled=1"):
        loader.load(view, replace(_plan("extended", dtb=DTB), chosen=True))
    assert len(refuses.kernel.calls) == 1


def test_the_plain_call_refused_too_says_both(tmp_path: Path, kernel: Kernel) -> None:
    kernel.err = errno.EACCES
    with pytest.raises(KdumpError, match=r"^kexec_file_load \(file, after extended was "
                                         r"refused with EACCES\) failed"):
        loader.load(_view(tmp_path), replace(_plan("extended", dtb=DTB), chosen=True))
    assert len(kernel.calls) == 2


@pytest.mark.parametrize("probes,nr,args", [
    ({"kexec_file_load": "available", "kexec_load": "available"}, X86.kexec_file_load_nr,
     (-1, -1, 1, UNLOAD | ON_CRASH)),
    ({"kexec_file_load": "missing", "kexec_load": "available"}, X86.kexec_load_nr,
     (0, 0, KEXEC_ON_CRASH | X86.kexec_arch)),
], ids=["file", "classic"])
def test_unload_by_the_call_the_kernel_has(tmp_path: Path, kernel: Kernel,
                                           probes: dict[str, str], nr: int,
                                           args: tuple[int, ...]) -> None:
    assert loader.unload(_view(tmp_path, **probes)) is True
    (call,) = kernel.calls
    assert call.nr == nr
    if nr == X86.kexec_file_load_nr:  # kernel_fd, initrd_fd, cmdline_len, (cmdline), flags
        assert (*call.args[:3], call.args[4]) == args and call.cmdline == b"\0"
    else:  # entry, nr_segments, (segments), flags
        assert (*call.args[:2], call.args[3]) == args


def test_unload_with_nothing_loaded_makes_no_call(tmp_path: Path, kernel: Kernel) -> None:
    view = _view(tmp_path, kexec_file_load="available")
    (view.root / "sys/kernel/kexec_crash_loaded").write_text("0\n")
    assert loader.unload(SystemView(view.root)) is False and kernel.calls == []


def test_unload_and_load_word_a_kernel_without_kexec_alike(tmp_path: Path) -> None:
    root = synthetic_snapshot(tmp_path, loaded=True)
    meta = json.loads((root / META).read_text())
    meta["probes"] = {"extended": "missing", "kexec_file_load": "missing",
                      "kexec_load": "missing"}
    (root / META).write_text(json.dumps(meta))
    view = SystemView(root)
    with pytest.raises(KdumpError) as loading:
        plan_capture_load(view, Config(), LoadRequest())
    with pytest.raises(KdumpError) as unloading:
        loader.unload(view)
    why = "this kernel was built without kexec (CONFIG_KEXEC*)"
    assert str(loading.value) == f"cannot load a capture kernel: {why}"
    assert str(unloading.value) == f"cannot unload a capture kernel: {why}"
