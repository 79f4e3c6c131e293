"""The extended kexec_file_load ABI this project proposes: typed fds, a DTB among them.

C layout (one definition, mirrored by the kernel patch in kernel/):

    #define KEXEC_FILE_FDSET 0x00000040
    enum kexec_file_type { KEXEC_FILE_TYPE_KERNEL, KEXEC_FILE_TYPE_INITRD,
                           KEXEC_FILE_TYPE_DTB };
    struct kexec_file_fd { __u32 type; __s32 fd; };
    struct kexec_fdset { __u32 nr_fd; struct kexec_file_fd fd[]; };

    kexec_file_load(-1, -1, cmdline_len, cmdline, flags | KEXEC_FILE_FDSET,
                    const struct kexec_fdset __user *fdset);

A kernel with the series lists the types it takes in sysfs
(/sys/kernel/kexec/file_fdset_types; /sys/kernel/kexec_file_fdset_types on
6.12), which is read first. Without the file the call is probed: mainline
kernels reject the flag with EINVAL (every bit above 0x20 is unknown to them),
and a kernel that knows the flag reads the fd set before anything else, so a
NULL fd set answers EFAULT and changes nothing.
"""

from __future__ import annotations

import ctypes
import errno
import os

from kdumpctl_py.arch import Arch
from kdumpctl_py.facts.kexec_calls import Availability
from kdumpctl_py.load.syscalls import kexec_file_load_nr, raw_syscall

KEXEC_FILE_FDSET = 0x40
KEXEC_FILE_TYPE_KERNEL = 0
KEXEC_FILE_TYPE_INITRD = 1
KEXEC_FILE_TYPE_DTB = 2
KEXEC_FDSET_MAX = 8  # the kernel refuses larger sets


class KexecFileFd(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("fd", ctypes.c_int32)]


def fdset_type(n: int) -> type[ctypes.Structure]:
    """struct kexec_fdset with room for n entries (a flexible array in C)."""

    class KexecFdset(ctypes.Structure):
        _fields_ = [("nr_fd", ctypes.c_uint32), ("fd", KexecFileFd * n)]

    return KexecFdset


def fdset(entries: list[tuple[int, int]]) -> ctypes.Structure:
    """A filled struct kexec_fdset for (type, fd) pairs; keep it alive across the call."""
    if len(entries) > KEXEC_FDSET_MAX:
        raise ValueError(f"at most {KEXEC_FDSET_MAX} fds")
    out = fdset_type(len(entries))()
    out.nr_fd = len(entries)
    for i, (kind, fd) in enumerate(entries):
        out.fd[i] = KexecFileFd(kind, fd)
    return out


def probe_extended(arch: Arch) -> Availability:
    if arch.name != os.uname().machine:
        return "unknown"
    nr = kexec_file_load_nr(arch)
    if nr is None:
        return "missing"
    err = raw_syscall(nr, -1, -1, 0, None, KEXEC_FILE_FDSET, None)
    if err == errno.EFAULT:
        return "available"
    if err in (errno.EINVAL, errno.ENOSYS):
        return "missing"
    if err == errno.EPERM:
        return "not-permitted"
    return "unknown"
