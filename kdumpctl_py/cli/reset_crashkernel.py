"""`kdumpctl-py reset-crashkernel`: put crashkernel= on the boot loader's kernel command line.

The edit is planned by plan.bootloader (pure: old text -> new text); this
module shows it (--dry-run) or writes it: each file replaced atomically with
a backup, refusing if it changed since it was read, then the boot loader's
own tool run (grubby, update-grub or grub2-mkconfig).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdumpctl_py.facts.view import SystemView
    from kdumpctl_py.plan.bootloader import BootPlan


def register(sub: Any) -> None:
    p = sub.add_parser("reset-crashkernel",
                       help="write crashkernel= into the boot loader's kernel command line")
    p.add_argument("--kernel", metavar="PATH|ALL",
                   help="the kernel image whose entry to change, or ALL (default: the running one)")
    p.add_argument("--value", metavar="SPEC",
                   help="the crashkernel= value (default: get-default-crashkernel)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the change as a unified diff and write nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdumpctl_py.cli import open_view
    from kdumpctl_py.plan.bootloader import plan_reset
    from kdumpctl_py.plan.crashkernel import check_value
    from kdumpctl_py.plan.crashkernel_defaults import default_crashkernel, page_size

    view = open_view(args)
    value = args.value or default_crashkernel(view.arch, page_size(view))
    check_value(value, view.arch)
    plan = plan_reset(view.root, value, args.kernel, view.uname.release, run_tools=view.live)
    for note in plan.notes + warn(view, value):
        print(f"note: {note}")
    if not plan.edits and not plan.commands:
        print(f"crashkernel={value} is set already")
    elif args.dry_run:
        for edit in plan.edits:
            print(edit.diff(), end="")
        for command in plan.commands:
            print("would run:", " ".join(command))
    else:
        apply(plan)
    return 0


def warn(view: SystemView, value: str) -> tuple[str, ...]:
    """A value that reserves nothing on this machine is worth a word before the reboot."""
    from kdumpctl_py.plan.crashkernel import InvalidCrashkernel, evaluate_value, system_ram
    from kdumpctl_py.units import format_bytes

    ram, _ = system_ram(view)
    if ram is None:
        return ()
    try:
        evaluate_value(value, ram, view.arch)
    except InvalidCrashkernel as e:
        return (f"on this machine ({format_bytes(ram)} RAM) crashkernel={value} reserves "
                f"nothing: {e}",)
    return ()


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
