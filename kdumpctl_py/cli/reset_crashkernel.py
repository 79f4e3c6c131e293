"""`kdumpctl-py reset-crashkernel`: put crashkernel= on the boot loader's kernel command line.

The edit is planned by plan.bootloader (pure: old text -> new text); this
module shows it (--dry-run) or writes it: each file replaced atomically with
a backup, refusing if it changed since it was read, then the boot loader's
own tool run (grubby, update-grub or grub2-mkconfig).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from kdumpctl_py.journal import warn

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands
    from kdumpctl_py.facts.view import SystemView
    from kdumpctl_py.plan.bootloader import BootPlan


def register(sub: Commands) -> None:
    from kdumpctl_py.cli import nonempty

    p = sub.add_parser("reset-crashkernel",
                       help="write crashkernel= into the boot loader's kernel command line")
    p.add_argument("--kernel", metavar="PATH|ALL", type=nonempty,
                   help="the kernel image whose entry to change, or ALL (default: the running one)")
    p.add_argument("--value", metavar="SPEC", type=nonempty,
                   help="the crashkernel= value (default: get-default-crashkernel)")
    p.add_argument("--force", action="store_true",
                   help="write a value below what kdumpctl-py estimate says this machine "
                   "needs, or one that reserves nothing at its RAM")
    p.add_argument("--auto", action="store_true",
                   help="only if the crashkernel= in force is kdumpctl-py's default: write the "
                   "default for the kernel given by --kernel (its page size decides), as the "
                   "kernel hooks do for a kernel being installed; otherwise change nothing")
    p.add_argument("--dry-run", action="store_true",
                   help="print the change as a unified diff and write nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdumpctl_py.cli import open_view
    from kdumpctl_py.errors import UsageError
    from kdumpctl_py.plan.bootloader import ALL, plan_reset, shared_cmdline
    from kdumpctl_py.plan.crashkernel import check_value
    from kdumpctl_py.plan.crashkernel_defaults import admins_own, default_crashkernel, page_size

    view = open_view(args)
    kernel = args.kernel
    if args.auto:
        if args.value:
            raise UsageError("--auto writes the default; it takes no --value")
        value = auto_value(view, kernel)
        if value is None:
            from kdumpctl_py.facts.cmdline import param_values

            print("the crashkernel= in force is not kdumpctl-py's default; left as it is"
                  if param_values(view.cmdline or "", "crashkernel") else
                  "no crashkernel= is in force (/proc/cmdline); left as it is: "
                  "kdumpctl-py reset-crashkernel sets one")
            return 0
        if shared_cmdline(view.root, view.live):
            kernel = ALL  # one command line for every kernel
    else:
        value = args.value or default_crashkernel(view.arch, page_size(view))
    check_value(value, view.arch)
    plan = plan_reset(view.root, value, kernel, view.uname.release, run_tools=view.live)
    if args.auto and (own := admins_own(plan.edits, view.arch)):
        print(f"{own[0]} holds crashkernel={own[1]}, not kdumpctl-py's default (set since "
              "this boot?); left as it is")
        return 0
    check_enough(view, value, args.force or args.auto)
    _carry_out(plan, value, args.dry_run)
    return 0


def _carry_out(plan: BootPlan, value: str, dry_run: bool) -> None:
    """The plan's notes, then its edits and commands done, or shown with --dry-run."""
    for note in plan.notes:
        print(f"note: {note}")
    if not plan.edits and not plan.commands:
        print(f"crashkernel={value} is set already")
    elif dry_run:
        for edit in plan.edits:
            print(edit.diff(), end="")
        for command in plan.commands:
            print("would run:", " ".join(command))
    else:
        apply(plan)


def auto_value(view: SystemView, kernel: str | None) -> str | None:
    """The default for `kernel` (an image path; None: the running kernel) when the value in
    force is a default, else None."""
    from pathlib import PurePath

    from kdumpctl_py.facts.cmdline import param_values
    from kdumpctl_py.plan.crashkernel import CMA_SUFFIX
    from kdumpctl_py.plan.crashkernel_defaults import auto_reset, config_page_size, page_size
    from kdumpctl_py.plan.initramfs import kernel_config

    running = page_size(view)
    name = PurePath(kernel).name if kernel else ""
    release = name.split("-", 1)[1] if "-" in name else view.uname.release
    config = kernel_config(view, release)
    new = config_page_size(config) if config else running
    in_force = [v for v in param_values(view.cmdline or "", "crashkernel")
                if not v.endswith(CMA_SUFFIX)]  # the admin's CMA area is not the reservation
    return auto_reset(in_force, view.arch, running, new)


def check_enough(view: SystemView, value: str, force: bool) -> None:
    """A value below the estimate, or one reserving nothing here, only with --force."""
    from kdumpctl_py.errors import UsageError
    from kdumpctl_py.plan.estimate import as_value, estimate, shortfall

    e = estimate(view)
    problem = shortfall(e, value, view.arch)
    if problem is None:
        return
    if not force:
        raise UsageError(f"{problem}; give --value {as_value(e.needed)}, or --force "
                         "to write it anyway")
    warn(problem)


def apply(plan: BootPlan) -> None:
    """The acting part: replace each file atomically (kept as a backup), then run the tools."""
    import subprocess

    from kdumpctl_py.errors import KdumpError
    from kdumpctl_py.fileio import replace_atomically

    for edit in plan.edits:
        backup = replace_atomically(edit.path, edit.new.encode(), expect=edit.old)
        print(f"updated {edit.path} (previous version: {backup})")
    for command in plan.commands:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise KdumpError(f"{' '.join(command)} failed (exit {done.returncode}): {last}")
        print(f"ran {' '.join(command)}")
