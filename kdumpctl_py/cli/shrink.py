"""`kdumpctl-py shrink SIZE`: give crash memory back to the system without a reboot.

Writing /sys/kernel/kexec_crash_size is the only act; the kernel's rules
(only shrink, not while a capture kernel is loaded, rounded up to the page
size, the high region's tail freed first) are checked beforehand in
plan.crashkernel.plan_shrink.
"""

from __future__ import annotations

import argparse
import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands

KEXEC_CRASH_SIZE = "/sys/kernel/kexec_crash_size"


def register(sub: Commands) -> None:
    p = sub.add_parser("shrink", help="shrink the crashkernel reservation to SIZE")
    p.add_argument("size", metavar="SIZE", help="the new total size (e.g. 192M); 0 frees it all")
    p.add_argument("--dry-run", action="store_true",
                   help="say what would be freed and write nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdumpctl_py.cli import open_view
    from kdumpctl_py.plan.crashkernel import crash_mem_align, parse_size, plan_shrink, reserved
    from kdumpctl_py.plan.crashkernel_defaults import page_size
    from kdumpctl_py.units import format_bytes

    view = open_view(args)
    wanted = parse_size(args.size, "SIZE")
    plan = plan_shrink(reserved(view), wanted, crash_mem_align(view.arch, page_size(view)),
                       view.kexec_crash_loaded)
    if plan.new_size == plan.old_size:
        print(f"nothing to do: {format_bytes(plan.old_size)} is reserved already")
        return 0
    freed = ", ".join(f"{r.start:#x}-{r.end:#x}" for r in plan.freed) or "addresses hidden"
    verb, goes = ("would free", "would go") if args.dry_run else ("freeing", "goes")
    print(f"{verb} {format_bytes(plan.old_size - plan.new_size)} ({freed}): the crash "
          f"reservation {goes} from {format_bytes(plan.old_size)} to "
          f"{format_bytes(plan.new_size)}")
    if not args.dry_run:
        write_crash_size(view.path(KEXEC_CRASH_SIZE), plan.new_size)
    return 0


def write_crash_size(path: Path, size: int) -> None:
    """The act: a sysfs attribute is written in place, never replaced."""
    from kdumpctl_py.errors import KdumpError

    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, f"{size}\n".encode())
    except OSError as e:
        why = {errno.ENOENT: "a capture kernel is loaded", errno.EBUSY: "kexec is busy; try again",
               errno.EINVAL: "the kernel refused the size"}.get(e.errno or 0)
        if why is None:
            raise
        raise KdumpError(f"{path}: {why}") from None
    finally:
        os.close(fd)
