"""The kexec system calls through ctypes, and side-effect-free probes of them.

glibc has no wrappers, so every call goes through syscall(2) with the numbers
of this interpreter's ABI: `kdumpctl_py.arch`'s for 64-bit user space, the
kernel's compat table for 32-bit user space on a 64-bit kernel (uname names
the kernel, not the ABI the call enters through). A probe passes a flag bit
that no kernel accepts: the kernel checks permission first (EPERM), then flags
(EINVAL), before it touches anything, and a kernel built without the call
answers ENOSYS. So a probe never loads or unloads an image.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sysconfig

from kdumpctl_py.arch import Arch
from kdumpctl_py.facts.kexec_calls import Availability

# No kernel defines these flag bits (kexec_load's KEXEC_FLAGS is 0xf today,
# kexec_file_load's KEXEC_FILE_FLAGS 0x3f): a kernel with the call says EINVAL.
_KEXEC_LOAD_BOGUS_FLAG = 0x8000
_KEXEC_FILE_BOGUS_FLAG = 0x80000000

# 32-bit user space on a 64-bit kernel: (kexec_load, kexec_file_load) in the
# compat tables (arch/x86/entry/syscalls/syscall_32.tbl, which has no
# kexec_file_load; syscall_64.tbl's x32 rows; arch/arm/tools/syscall.tbl,
# which arm64's compat entry uses).
_X32_SYSCALL_BIT = 0x40000000
_COMPAT: dict[tuple[str, str], tuple[int, int | None]] = {
    ("x86_64", "i386"): (283, None),
    ("x86_64", "x32"): (_X32_SYSCALL_BIT | 528, _X32_SYSCALL_BIT | 320),
    ("aarch64", "arm"): (347, 401),
}

_libc: ctypes.CDLL | None = None


def user_abi(pointer_bytes: int, multiarch: str) -> str:
    """The ABI this interpreter was built for: "64", "i386", "x32" or "arm"."""
    if pointer_bytes == 8:
        return "64"
    if multiarch.endswith("gnux32"):
        return "x32"
    return "arm" if multiarch.startswith("arm") else "i386"


def syscall_numbers(arch: Arch, abi: str) -> tuple[int | None, int | None]:
    """(kexec_load, kexec_file_load) as `abi` reaches `arch`'s kernel; None: no such call."""
    if abi == "64":
        return arch.kexec_load_nr, arch.kexec_file_load_nr
    return _COMPAT.get((arch.name, abi), (None, None))


def _numbers(arch: Arch) -> tuple[int | None, int | None]:
    abi = user_abi(struct.calcsize("P"), sysconfig.get_config_var("MULTIARCH") or "")
    return syscall_numbers(arch, abi)


def kexec_file_load_nr(arch: Arch) -> int | None:
    """This interpreter's number for kexec_file_load on `arch`'s kernel; None: it has none."""
    return _numbers(arch)[1]


def _call(nr: int | None, *args: int | None) -> int:
    """raw_syscall, or ENOSYS when this ABI has no such call (as the kernel would say)."""
    return errno.ENOSYS if nr is None else raw_syscall(nr, *args)


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
    return _classify(_call(_numbers(arch)[0], 0, 0, None, _KEXEC_LOAD_BOGUS_FLAG))


def probe_kexec_file_load(arch: Arch) -> Availability:
    if arch.name != os.uname().machine:
        return "unknown"
    # kexec_file_load(kernel_fd, initrd_fd, cmdline_len, cmdline, flags)
    return _classify(_call(_numbers(arch)[1], -1, -1, 0, None, _KEXEC_FILE_BOGUS_FLAG))


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
    err = _call(_numbers(arch)[0], entry, len(segments), ctypes.addressof(table),
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
    err = _call(_numbers(arch)[1], *args)
    if err:
        raise KexecCallError(err, "kexec_file_load")
