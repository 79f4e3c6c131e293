"""Everything about loading a capture kernel that can be decided without a system call.

`plan_load` is a pure function of the system view and the user's choices:
which method, which files, which command line, and for kexec_load the whole
segment list. `kdumpctl_py.load.loader` carries a plan out.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from kdumpctl_py.errors import KdumpError, UsageError
from kdumpctl_py.facts.kernel_image import KernelImage, probe, unwrap
from kdumpctl_py.facts.view import SystemView
from kdumpctl_py.plan.capture_cmdline import capture_cmdline
from kdumpctl_py.plan.method import choose_method
from kdumpctl_py.plan.segments import ClassicPlan, plan_arm64_classic


@dataclass(frozen=True)
class LoadRequest:
    kernel: str | None = None
    initrd: str | None = None
    dtb: str | None = None
    cmdline: str | None = None
    method: str = "auto"
    no_initrd: bool = False


@dataclass(frozen=True)
class LoadPlan:
    method: str
    why: str
    kernel_path: str
    initrd_path: str | None
    cmdline: str
    image: KernelImage
    packed: str | None  # how the kernel file was compressed, if it was
    kernel: bytes  # the bootable image, unpacked
    initrd: bytes | None
    dtb: bytes | None  # the base DTB handed to the extended call
    classic: ClassicPlan | None


def default_kernel(view: SystemView) -> str:
    release = view.uname.release
    for name in (f"vmlinuz-{release}", f"Image-{release}", f"vmlinux-{release}"):
        if name in view.boot_files:
            return f"/boot/{name}"
    raise KdumpError(f"no kernel image for {release} in /boot; give --kernel")


def default_initrd(view: SystemView) -> str | None:
    release = view.uname.release
    for name in (f"initrd.img-{release}", f"initramfs-{release}.img", f"initrd-{release}"):
        if name in view.boot_files:
            return f"/boot/{name}"
    return None


def _read(view: SystemView, path: str, what: str) -> bytes:
    data = view.data(path, limit=4 << 30)
    if data is None:
        raise UsageError(f"cannot read {what} {path}: {view.unknown.get(path, 'unreadable')}")
    return data


def plan_load(view: SystemView, req: LoadRequest,
              randbytes: Callable[[int], bytes] = os.urandom) -> LoadPlan:
    choice = choose_method(view, req.method)
    if choice.method is None:
        raise KdumpError(f"cannot load a capture kernel: {choice.why}")
    kernel_path = req.kernel or default_kernel(view)
    initrd_path = None if req.no_initrd else (req.initrd or default_initrd(view))
    packed_kernel = _read(view, kernel_path, "kernel")
    kernel, packed = unwrap(packed_kernel, kernel_path)
    image = probe(kernel, kernel_path)
    if image.machine != view.arch.name:
        raise UsageError(f"{kernel_path} is a {image.machine} kernel; this machine is "
                         f"{view.arch.name}")
    initrd = _read(view, initrd_path, "initrd") if initrd_path else None
    if req.cmdline is not None:
        cmdline = req.cmdline
    elif view.cmdline is not None:
        cmdline = capture_cmdline(view.cmdline, view.arch.name)
    else:
        raise KdumpError("cannot read /proc/cmdline to derive the capture command line; "
                         "give --cmdline")
    dtb = _read(view, req.dtb, "DTB") if req.dtb else None
    classic = None
    if choice.method == "classic":
        if view.arch.name != "aarch64":
            raise KdumpError(f"kexec_load with user-space segments is built for arm64 only; "
                             f"this {view.arch.name} kernel needs kexec_file_load")
        classic = plan_arm64_classic(view, image, kernel, initrd, cmdline, dtb, randbytes)
    elif choice.method == "extended" and dtb is None:
        dtb = view.fdt
    return LoadPlan(choice.method, choice.why, kernel_path, initrd_path, cmdline, image, packed,
                    kernel, initrd, dtb, classic)
