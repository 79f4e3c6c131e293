"""`kdumpctl-py load|unload|start|stop|restart|reload`: put a capture kernel in place.

The capture command line and the method come from the configuration
(kdumpctl-py.conf(5)) unless --cmdline or --method says otherwise.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from kdumpctl_py.config.settings import METHODS
from kdumpctl_py.journal import warn

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands
    from kdumpctl_py.facts.view import SystemView
    from kdumpctl_py.plan.load import LoadPlan



def register(sub: Commands) -> None:
    from kdumpctl_py.cli import nonempty

    for name, helptext in (
        ("load", "load the capture kernel (replacing a loaded one)"),
        ("start", "load the capture kernel unless one is loaded"),
        ("restart", "unload, then load the capture kernel"),
        ("reload", "unload, then load the capture kernel"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--kernel", metavar="PATH", type=nonempty,
                       help="kernel image (default: the running kernel's in /boot)")
        initrd = p.add_mutually_exclusive_group()
        initrd.add_argument("--initrd", metavar="PATH", type=nonempty,
                            help="initrd (default: the running kernel's)")
        initrd.add_argument("--no-initrd", action="store_true", help="boot without an initrd")
        p.add_argument("--dtb", metavar="PATH", type=nonempty,
                       help="device tree for the capture kernel, handed over by the extended "
                       "kexec_file_load (default: the configuration's dtb; without one, "
                       "auto uses plain kexec_file_load and the kernel builds its own; "
                       "kexec_load starts from /sys/firmware/fdt)")
        p.add_argument("--cmdline", metavar="STR",
                       help="capture kernel command line (default: /proc/cmdline less what "
                       "breaks a capture kernel, plus the capture options and the "
                       "configuration's cmdline_remove/cmdline_append)")
        p.add_argument("--method", choices=METHODS, default=None,
                       help="system call to use (default: the configuration's method, auto)")
        p.add_argument("--dry-run", action="store_true",
                       help="plan everything, print it, and make no system call")
        p.set_defaults(func=run_load, verb=name)
    for name in ("unload", "stop"):
        p = sub.add_parser(name, help="unload the capture kernel")
        p.set_defaults(func=run_unload)


def run_load(args: argparse.Namespace) -> int:
    from kdumpctl_py.cli import open_view

    view = open_view(args, probe=True)
    if args.verb == "start" and view.kexec_crash_loaded and not args.dry_run:
        print("a capture kernel is already loaded (kdumpctl-py restart replaces it)")
        return 0
    if args.verb in ("start", "restart") and not args.dry_run and view.live \
            and not (args.kernel or args.initrd or args.no_initrd):
        from kdumpctl_py.errors import KdumpError
        from kdumpctl_py.plan.load import NOTHING_RESERVED
        from kdumpctl_py.service.initramfs import refresh

        if view.kexec_crash_size == 0:  # as Fedora's kdumpctl, before building anything
            raise KdumpError(NOTHING_RESERVED)
        refresh(view)
        view = open_view(args, probe=True)  # /boot may have changed
    plan = plan_from_args(view, args)
    if not args.dry_run:
        check_before_arming(view)
    if args.dry_run:
        print(describe(plan))
        if args.verb == "start" and view.kexec_crash_loaded:  # what start itself does then
            print("note: a capture kernel is already loaded: start would leave it and load "
                  "nothing (kdumpctl-py restart replaces it)")
        return 0
    carry_out(view, plan, replace=args.verb in ("restart", "reload"))
    if args.verb == "start":
        show_last_test(view)
    return 0


def check_before_arming(view: SystemView) -> None:
    """A network target that fails its check stops the load, unless dump_to_rootfs."""
    import sys

    from kdumpctl_py.config import read_config
    from kdumpctl_py.errors import KdumpError
    from kdumpctl_py.service.check import arm_decision, check_target

    cfg = read_config(view)
    check = check_target(cfg, view)
    decision = arm_decision(cfg, check)
    if check is not None and check.warning:
        warn(check.warning)
    if decision is not None and decision.startswith("error: "):
        raise KdumpError(decision.removeprefix("error: "))
    if decision is not None:
        print(f"kdumpctl-py: {decision}", file=sys.stderr)
    elif check is not None:
        print(check.detail)


def show_last_test(view: SystemView) -> None:
    """As Fedora's kdumpctl start: say what became of the last `kdumpctl-py test`."""
    from kdumpctl_py.config import read_config
    from kdumpctl_py.service.target import first_kernel_results
    from kdumpctl_py.service.testid import last_test

    cfg = read_config(view)
    line = last_test(view, first_kernel_results(cfg, view))
    if line:
        print(f"last test: {line}")


def plan_from_args(view: SystemView, args: argparse.Namespace | None = None,
                   extra_append: tuple[str, ...] = ()) -> LoadPlan:
    """The command's options handed to the one planner, with the configuration in force."""
    from kdumpctl_py.config import read_config
    from kdumpctl_py.plan.load import LoadRequest, plan_capture_load

    req = LoadRequest(getattr(args, "kernel", None), getattr(args, "initrd", None),
                      getattr(args, "dtb", None), getattr(args, "cmdline", None),
                      getattr(args, "method", None), bool(getattr(args, "no_initrd", False)),
                      extra_append)
    return plan_capture_load(view, read_config(view), req)


def carry_out(view: SystemView, plan: LoadPlan, replace: bool) -> None:
    from kdumpctl_py import journal
    from kdumpctl_py.load.loader import load, unload
    from kdumpctl_py.service import notify

    if replace:
        unload(view)
    fell_back = load(view, plan)
    if fell_back:
        journal.warn(fell_back)
    message = (f"capture kernel loaded with {'file' if fell_back else plan.method}: "
               f"{plan.kernel_path}, initrd {plan.initrd_path or 'none'}")
    print(message)
    notify.status(message)
    journal.event(message, notify.CAPTURE_LOADED, echo=False, cmdline=plan.cmdline)


def run_unload(args: argparse.Namespace) -> int:
    from kdumpctl_py.cli import open_view
    from kdumpctl_py.load.loader import unload

    unloaded = unload(open_view(args, probe=True))
    print("capture kernel unloaded" if unloaded else "no capture kernel was loaded")
    return 0


def describe(plan: LoadPlan) -> str:
    from kdumpctl_py.units import format_bytes

    packed = f", unpacked from {plan.packed}" if plan.packed else ""
    lines = [
        f"method   {plan.method}: {plan.why}",
        f"kernel   {plan.kernel_path} ({plan.image.format}{packed}, "
        f"{format_bytes(plan.kernel_size)})",
        f"initrd   {plan.initrd_path or 'none'}"
        + (f" ({format_bytes(plan.initrd_size)})" if plan.initrd_size is not None else ""),
        f"cmdline  {plan.cmdline}",
    ]
    if plan.dtb is not None and plan.method == "extended":
        lines.append(f"dtb      {format_bytes(len(plan.dtb))}")
    if plan.method == "extended" and plan.chosen:  # load.loader._may_fall_back
        lines.append("fallback plain kexec_file_load, whose device tree the kernel builds, if "
                     "the kernel refuses this one (IMA appraisal, LoadPin: EPERM, EACCES)")
    if plan.classic is not None:
        c = plan.classic
        lines.append(f"region   {c.region.start:#x}-{c.region.end:#x} "
                     f"({format_bytes(c.region.size)})")
        for s in c.segments:
            lines.append(f"  {s.name:<11} {s.mem:#014x}-{s.end - 1:#014x}  "
                         f"{format_bytes(len(s.data)):>10} in {format_bytes(s.memsz)}")
        how = ("purgatory: x0 = DTB, then the kernel" if any(s.name == "purgatory"
                                                            for s in c.segments)
               else "the kernel, a1 = DTB (found by the kernel among the segments)")
        lines.append(f"entry    {c.entry:#x} ({how})")
    lines += [f"note: {note}" for note in plan.notes]
    return "\n".join(lines)
