"""Carry out a LoadPlan, or unload: the only code that loads or unloads a capture kernel."""

from __future__ import annotations

import ctypes
import errno
import os
from contextlib import ExitStack

from kdumpctl_py.errors import KdumpError
from kdumpctl_py.facts.view import SystemView
from kdumpctl_py.load import extended
from kdumpctl_py.load.explain import explain
from kdumpctl_py.load.syscalls import (
    KEXEC_FILE_NO_INITRAMFS,
    KEXEC_FILE_ON_CRASH,
    KEXEC_FILE_UNLOAD,
    KEXEC_ON_CRASH,
    KexecCallError,
    kexec_file_load,
    kexec_load,
)
from kdumpctl_py.plan.load import LoadPlan
from kdumpctl_py.plan.method import choose_method


def _memfd(name: str, data: bytes, stack: ExitStack) -> int:
    """An anonymous file holding `data`: kexec_file_load wants an fd, never a temporary file."""
    fd = os.memfd_create(f"kdumpctl-py-{name}", os.MFD_CLOEXEC)
    stack.callback(os.close, fd)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    return fd


def _open(view: SystemView, path: str, stack: ExitStack) -> int:
    fd = os.open(view.path(path), os.O_RDONLY | os.O_CLOEXEC)
    stack.callback(os.close, fd)
    return fd


# What IMA appraisal (EACCES) or LoadPin (EPERM) say to a device tree read from a memfd;
# the plain call hands the kernel no file of ours but the kernel and initrd.
FALLBACK_ERRNOS = (errno.EPERM, errno.EACCES)


def _call(view: SystemView, plan: LoadPlan, method: str) -> None:
    """One load system call for `plan` by `method`, every fd it opened closed again."""
    arch = view.arch
    with ExitStack() as stack:
        if plan.classic is not None:
            segments = [(s.data, s.mem, s.memsz) for s in plan.classic.segments]
            kexec_load(arch, plan.classic.entry, segments, KEXEC_ON_CRASH)
            return
        kernel_fd = (_memfd("kernel", plan.kernel, stack) if plan.packed
                     else _open(view, plan.kernel_path, stack))
        initrd_fd = _open(view, plan.initrd_path, stack) if plan.initrd_path else -1
        if method == "extended":
            entries = [(extended.KEXEC_FILE_TYPE_KERNEL, kernel_fd)]
            if initrd_fd >= 0:
                entries.append((extended.KEXEC_FILE_TYPE_INITRD, initrd_fd))
            if plan.dtb is not None:
                entries.append((extended.KEXEC_FILE_TYPE_DTB, _memfd("dtb", plan.dtb, stack)))
            fdset = extended.fdset(entries)
            flags = KEXEC_FILE_ON_CRASH | extended.KEXEC_FILE_FDSET
            if initrd_fd < 0:
                flags |= KEXEC_FILE_NO_INITRAMFS
            kexec_file_load(arch, -1, -1, plan.cmdline, flags, ctypes.addressof(fdset))
            return
        flags = KEXEC_FILE_ON_CRASH | (KEXEC_FILE_NO_INITRAMFS if initrd_fd < 0 else 0)
        kexec_file_load(arch, kernel_fd, initrd_fd, plan.cmdline, flags)


def _may_fall_back(view: SystemView, plan: LoadPlan, e: KexecCallError) -> bool:
    """An extended load auto chose, refused as a file might be (not for want of root or
    after kexec_load_disabled, which refuse the plain call alike)."""
    return (plan.method == "extended" and plan.chosen and e.errno in FALLBACK_ERRNOS
            and os.geteuid() == 0 and not SystemView(view.root).kexec_load_disabled)


def load(view: SystemView, plan: LoadPlan) -> str | None:
    """Carry out `plan`; returns why plain kexec_file_load replaced the extended call, if it
    did (IMA appraisal or LoadPin refusing the device tree, which the plain call omits)."""
    dtb = plan.dtb_path if plan.method == "extended" else None
    try:
        _call(view, plan, plan.method)
        return None
    except KexecCallError as e:
        if not _may_fall_back(view, plan, e):
            raise explain(e, view, plan.method, dtb) from None
        refused = errno.errorcode.get(e.errno or 0, str(e.errno))
    try:
        _call(view, plan, "file")
    except KexecCallError as e:
        raise explain(e, view, f"file, after extended was refused with {refused}") from None
    return (f"the extended kexec_file_load was refused with {refused} (IMA appraisal or "
            f"LoadPin may refuse the device tree {dtb or 'handed over'}); loaded with plain "
            "kexec_file_load instead, whose device tree the kernel builds from its own")


def unload(view: SystemView) -> bool:
    """Unload the capture kernel; False if none was loaded."""
    if view.kexec_crash_loaded is False:
        return False
    probes = view.probes
    try:
        if probes.get("kexec_file_load") == "available":
            kexec_file_load(view.arch, -1, -1, "", KEXEC_FILE_UNLOAD | KEXEC_FILE_ON_CRASH)
        elif probes.get("kexec_load") == "available":
            kexec_load(view.arch, 0, [], KEXEC_ON_CRASH)
        else:
            # The same words as load: the reason no kexec call can be made here.
            raise KdumpError(f"cannot unload a capture kernel: {choose_method(view).why}")
    except KexecCallError as e:
        raise explain(e, view, "unload") from None
    return True
