"""Everything about loading a capture kernel that can be decided without a system call.

`plan_capture_load` is a pure function of the system view, the configuration and
the command's options: which method, which files, which command line, and for
kexec_load the whole segment list. `kdumpctl_py.load.loader` carries a plan out.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kdumpctl_py.errors import KdumpError, UsageError
from kdumpctl_py.facts.kernel_image import KernelImage, memory_size, probe, unwrap
from kdumpctl_py.facts.view import BOOT_HEADER, SystemView
from kdumpctl_py.plan.bootfiles import find_initrd, find_kernel
from kdumpctl_py.plan.capture_cmdline import configured_cmdline
from kdumpctl_py.plan.method import choose_method
from kdumpctl_py.plan.segments import ClassicPlan, plan_classic

if TYPE_CHECKING:
    from kdumpctl_py.config.model import Config


@dataclass(frozen=True)
class LoadRequest:
    kernel: str | None = None
    initrd: str | None = None
    dtb: str | None = None
    cmdline: str | None = None  # None: /proc/cmdline and the configuration make it
    method: str | None = None  # None: the configuration's
    no_initrd: bool = False
    extra_append: tuple[str, ...] = ()  # after the configuration's cmdline_append


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
    kernel_size: int  # as the file was (packed), even when only its size is known
    initrd_size: int | None
    notes: tuple[str, ...] = ()  # what a dry run on a snapshot could not know
    dtb_path: str | None = None  # where `dtb` came from, for the messages
    chosen: bool = False  # by auto, not forced: a refused extended call may fall back to file


NOTHING_RESERVED = ("no memory is reserved for a capture kernel: run kdumpctl-py "
                    "reset-crashkernel, then reboot (kdumpctl-py status says more)")


def default_kernel(view: SystemView) -> str:
    found = find_kernel(view, view.uname.release)
    if found is None:
        raise KdumpError(f"no kernel image for {view.uname.release} in /boot; give --kernel")
    return f"/boot/{found[0]}"


def default_initrd(view: SystemView) -> str | None:
    found = find_initrd(view, view.uname.release)
    return None if found is None else f"/boot/{found[0]}"


def _read(view: SystemView, path: str, what: str) -> bytes:
    data = view.data(path, limit=4 << 30)
    if data is None:
        where = "" if view.live else f" (inside the snapshot {view.root})"
        raise UsageError(f"cannot read {what} {path}{where}: "
                         f"{view.unknown.get(path, 'unreadable')}")
    return data


def _known_size(view: SystemView, path: str) -> int | None:
    """A snapshot taken without --with-boot names /boot's files and their sizes only."""
    name = path.removeprefix("/boot/")
    if view.live or name == path or name not in view.boot_files or view.path(path).exists():
        return None
    return view.boot_files[name]


def _kernel(view: SystemView, path: str) -> tuple[bytes, str | None, KernelImage, int, int]:
    """The unpacked kernel, how it was packed, its header, file size and size in memory;
    from the header alone (empty bytes) when a snapshot has only that."""
    size = _known_size(view, path)
    if size is None:
        packed_kernel = _read(view, path, "kernel")
        size, head = len(packed_kernel), packed_kernel[:BOOT_HEADER]
        kernel, packed = unwrap(packed_kernel, path)
    else:
        head = view.boot_header(path.removeprefix("/boot/")) or b""
        unpacked_head, packed = unwrap(head, path)
        kernel = b""
    image = probe(kernel or unpacked_head, path)
    in_memory = memory_size(head) or len(kernel) or size
    return kernel, packed, image, size, in_memory


def _initrd(view: SystemView, path: str | None) -> tuple[bytes | None, int | None]:
    """The initrd and its size; the size alone when a snapshot has only that."""
    if path is None:
        return None, None
    size = _known_size(view, path)
    if size is not None:
        return None, size
    data = _read(view, path, "initrd")
    return data, len(data)


def check_image(view: SystemView, path: str, image: KernelImage, method: str) -> None:
    """An image the kernel's loader cannot boot is refused before the kernel refuses it."""
    want = view.arch.file_image
    if want is not None and method in ("file", "extended") and image.format != want[0]:
        raise UsageError(f"{path} is an {image.format} image; {view.arch.name} kexec_file_load "
                         f"boots only a {want[1]}")


def check_fits(view: SystemView, in_memory: int, initrd_size: int | None) -> None:
    """More than the crash region holds is said before the kernel says EADDRNOTAVAIL (the
    classic plan checks its own segments). kexec_file_load places every segment in
    crashk_res alone (kernel/kexec_file.c kexec_walk_resources()), never in the low
    region a crashkernel=X,high reservation also has, so only crashk_res counts."""
    from kdumpctl_py.plan.crashkernel import reserved
    from kdumpctl_py.units import format_bytes

    now = reserved(view)
    if now.total == 0:  # the classic plan says the same from /proc/iomem
        raise KdumpError(NOTHING_RESERVED)
    main, low = now.main, now.low
    region = main.size if main is not None else now.total
    need = in_memory + (initrd_size or 0)
    if region and need > region:
        which, fix = f"{format_bytes(region)} crash region", "crashkernel="
        if main is not None and low is not None:
            which = (f"{format_bytes(region)} high crash region at {main.start:#x} "
                     f"(kexec_file_load uses none of the {format_bytes(low.size)} low one)")
            fix = "the crashkernel=...,high size"
        raise KdumpError(f"the capture kernel ({format_bytes(in_memory)} in memory) and initrd "
                         f"({format_bytes(initrd_size or 0)}) need {format_bytes(need)}, more "
                         f"than the {which}; raise {fix} and reboot")


def check_machine(view: SystemView, cfg: Config) -> None:
    """What the configuration names but this machine lacks stops the load, in one line."""
    from kdumpctl_py.config.render import machine_problems

    problems = machine_problems(cfg, view)
    if problems:
        raise KdumpError(f"{cfg.source}: {problems[0]}"
                         + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))


def plan_capture_load(view: SystemView, cfg: Config, req: LoadRequest = LoadRequest(),
                      randbytes: Callable[[int], bytes] = os.urandom) -> LoadPlan:
    """The one planner every load (start, test, --dry-run) goes through: the command's
    options over the configuration's settings."""
    check_machine(view, cfg)
    method = req.method or cfg.method
    dtb_file = req.dtb or cfg.dtb
    choice = choose_method(view, method, with_dtb=dtb_file is not None)
    if choice.method is None:
        raise KdumpError(f"cannot load a capture kernel: {choice.why}")
    kernel_path = req.kernel or default_kernel(view)
    initrd_path = None if req.no_initrd else (req.initrd or default_initrd(view))
    notes = [] if view.live else [
        f"--{what} {path} is read inside the snapshot {view.root}, not on this machine"
        for what, path in (("kernel", req.kernel), ("initrd", req.initrd)) if path]
    kernel, packed, image, kernel_size, in_memory = _kernel(view, kernel_path)
    if image.machine != view.arch.name:
        raise UsageError(f"{kernel_path} is a {image.machine} kernel; this machine is "
                         f"{view.arch.name}")
    initrd, initrd_size = _initrd(view, initrd_path)
    check_image(view, kernel_path, image, choice.method)
    partial = [p for p, data in ((kernel_path, kernel), (initrd_path, initrd))
               if p and not data]
    if partial:
        notes.append(f"the snapshot was taken without --with-boot: {', '.join(partial)} "
                     "known by name, size and header only"
                     + ("; no segments planned" if choice.method == "classic" else ""))
    cmdline = req.cmdline
    if cmdline is None:
        cmdline = configured_cmdline(view, cfg, req.extra_append)
    dtb = _read(view, dtb_file, "DTB") if dtb_file else None
    classic = None
    if choice.method == "classic":
        if view.arch.classic_image is None or not partial:  # the first: it says why not
            classic = plan_classic(view, image, kernel, initrd, cmdline, dtb, randbytes)
    elif choice.method == "extended" and dtb is None:
        dtb = view.fdt
    dtb_path = dtb_file or ("/sys/firmware/fdt" if dtb is not None else None)
    if classic is None:
        check_fits(view, in_memory, initrd_size)
    return LoadPlan(choice.method, choice.why, kernel_path, initrd_path, cmdline, image, packed,
                    kernel, initrd, dtb, classic, kernel_size, initrd_size, tuple(notes),
                    dtb_path, chosen=method == "auto")
