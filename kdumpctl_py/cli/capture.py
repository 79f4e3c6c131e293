"""`kdumpctl-py capture`: what kdumpctl-py-capture.service runs in the capture kernel."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands
    from kdumpctl_py.service.capture import Machine


def register(sub: Commands) -> None:
    from kdumpctl_py.cli import nonempty

    p = sub.add_parser("capture", help="in the capture kernel: kdump_pre, save the dump, "
                       "retention, kdump_post, then the final or failure action")
    p.add_argument("--vmcore", default="/proc/vmcore", metavar="PATH", type=nonempty,
                   help="the ELF vmcore to read (default: /proc/vmcore)")
    p.add_argument("--no-action", action="store_true",
                   help="print the final or failure action instead of doing it, and exit 1 "
                   "when no dump was saved; outside the capture kernel (a rehearsal with "
                   "--vmcore FILE) it needs --target, so that the real dump directory and "
                   "its dumps are left alone")
    p.add_argument("--target", metavar="DIR", type=nonempty,
                   help="save under DIR on this machine instead of the configured target "
                   "and path (nothing mounted, no ssh), and run keep there")
    p.set_defaults(func=run)


class _Printing:
    """The real machine, except that the action is only printed."""

    def __init__(self) -> None:
        from kdumpctl_py.service.actions import System

        self.system = System()

    def run(self, argv: list[str]) -> int:
        return self.system.run(argv)

    def wait_for(self, path: str, seconds: float = 60) -> bool:
        return self.system.wait_for(path, seconds)

    def mount(self, fstype: str, device: str, options: str, mountpoint: str) -> None:
        self.system.mount(fstype, device, options, mountpoint)

    def umount(self, mountpoint: str) -> None:
        self.system.umount(mountpoint)

    def act(self, action: str) -> None:
        print(f"final step: {action} (not done: --no-action)")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from kdumpctl_py.capture.budget import default_limit
    from kdumpctl_py.cli import open_view
    from kdumpctl_py.config import read_config
    from kdumpctl_py.errors import UsageError
    from kdumpctl_py.service.actions import System
    from kdumpctl_py.service.capture import run_capture

    if not args.no_action and not os.path.exists("/proc/vmcore"):
        raise UsageError("this is not a capture kernel (no /proc/vmcore) and capture ends "
                         "by rebooting; add --no-action to try it here")
    view = open_view(args)
    try:
        cfg = read_config(view)
    except UsageError as e:
        # A broken file must not strand the machine in the capture kernel.
        print(f"kdumpctl-py: {e}; saving with the defaults", file=sys.stderr)
        from kdumpctl_py.config import Config

        cfg = Config()
    if args.target is not None:
        cfg = replace(cfg, target=None, path=os.path.abspath(args.target))
    elif not os.path.exists("/proc/vmcore"):
        where = cfg.path if cfg.target is None else f"{cfg.path} on the configured target"
        raise UsageError(f"this is not a capture kernel (no /proc/vmcore): a rehearsal "
                         f"would save into {where} and run keep there; give --target DIR "
                         "to save under DIR instead")
    if not cfg.memory_limit:  # auto: half of what the capture kernel has available
        cfg = replace(cfg, memory_limit=default_limit(view.meminfo))
    machine: Machine = _Printing() if args.no_action else System()
    out = run_capture(cfg, machine, args.vmcore, view.cmdline or "")
    if out.saved:
        print(f"dump saved in {out.dump}")
    elif out.skipped:
        print("dump skipped by kdump_pre")
    else:
        print(f"no dump saved: {out.error}")
    # The action is done: systemd must not act again (FailureAction= is for a
    # kdumpctl-py that cannot run). --no-action reports the outcome instead.
    return 0 if out.saved or out.skipped or not args.no_action else 1
