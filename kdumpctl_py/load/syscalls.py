"""The kexec system calls through ctypes, and side-effect-free probes of them.

glibc has no wrappers, so every call goes through syscall(2) with the numbers
from `kdumpctl_py.arch`. A probe passes a flag bit that no kernel accepts: the
kernel checks permission first (EPERM), then flags (EINVAL), before it touches
anything, and a kernel built without the call answers ENOSYS. So a probe never
loads or unloads an image.
"""

from __future__ import annotations

import ctypes
import errno
import os

from kdumpctl_py.arch import Arch
from kdumpctl_py.facts.kexec_calls import Availability

# No kernel defines these flag bits (kexec_load's KEXEC_FLAGS is 0xf today,
# kexec_file_load's KEXEC_FILE_FLAGS 0x3f): a kernel with the call says EINVAL.
_KEXEC_LOAD_BOGUS_FLAG = 0x8000
_KEXEC_FILE_BOGUS_FLAG = 0x80000000

_libc: ctypes.CDLL | None = None


def raw_syscall(nr: int, *args: int | None) -> int:
    """Call syscall(2); return 0 or the errno it failed with."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    cargs = [ctypes.c_long(a if a < 1 << 63 else a - (1 << 64)) if a is not None
             else ctypes.c_void_p(None) for a in args]
    ret = _libc.syscall(ctypes.c_long(nr), *cargs)
    return ctypes.get_errno() if ret == -1 else 0


def _classify(err: int) -> Availability:
    if err == errno.EINVAL:
        return "available"
    if err == errno.ENOSYS:
        return "missing"
    if err == errno.EPERM:
        return "not-permitted"
    return "unknown"


def probe_kexec_load(arch: Arch) -> Availability:
    if arch.name != os.uname().machine:
        return "unknown"
    # kexec_load(entry, nr_segments, segments, flags)
    return _classify(raw_syscall(arch.kexec_load_nr, 0, 0, None, _KEXEC_LOAD_BOGUS_FLAG))


def probe_kexec_file_load(arch: Arch) -> Availability:
    if arch.name != os.uname().machine:
        return "unknown"
    # kexec_file_load(kernel_fd, initrd_fd, cmdline_len, cmdline, flags)
    return _classify(raw_syscall(arch.kexec_file_load_nr, -1, -1, 0, None, _KEXEC_FILE_BOGUS_FLAG))


# include/uapi/linux/kexec.h
KEXEC_ON_CRASH = 0x1
KEXEC_FILE_UNLOAD = 0x1
KEXEC_FILE_ON_CRASH = 0x2
KEXEC_FILE_NO_INITRAMFS = 0x4


class KexecSegment(ctypes.Structure):
    """struct kexec_segment: 32 bytes on 64-bit."""

    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("bufsz", ctypes.c_size_t),
        ("mem", ctypes.c_void_p),
        ("memsz", ctypes.c_size_t),
    ]


class KexecCallError(OSError):
    """A kexec system call failed; `call` names which, for the explanation."""

    def __init__(self, err: int, call: str) -> None:
        super().__init__(err, os.strerror(err))
        self.call = call


def kexec_load(arch: Arch, entry: int, segments: list[tuple[bytes, int, int]],
               flags: int) -> None:
    """kexec_load(2) with (data, mem, memsz) segments; an empty list unloads."""
    buffers = [ctypes.create_string_buffer(data, len(data)) for data, _, _ in segments]
    table = (KexecSegment * max(len(segments), 1))()
    for i, ((data, mem, memsz), buf) in enumerate(zip(segments, buffers, strict=True)):
        table[i] = KexecSegment(ctypes.addressof(buf), len(data), mem, memsz)
    err = raw_syscall(arch.kexec_load_nr, entry, len(segments), ctypes.addressof(table),
                      flags | arch.kexec_arch)
    if err:
        raise KexecCallError(err, "kexec_load")


def kexec_file_load(arch: Arch, kernel_fd: int, initrd_fd: int, cmdline: str, flags: int,
                    extra: int | None = None) -> None:
    """kexec_file_load(2); `extra` is the address of a sixth argument (the extended fd set)."""
    raw = cmdline.encode() + b"\0"  # cmdline_len counts the NUL
    buf = ctypes.create_string_buffer(raw, len(raw))
    args: list[int | None] = [kernel_fd, initrd_fd, len(raw), ctypes.addressof(buf), flags]
    if extra is not None:
        args.append(extra)
    err = raw_syscall(arch.kexec_file_load_nr, *args)
    if err:
        raise KexecCallError(err, "kexec_file_load")
