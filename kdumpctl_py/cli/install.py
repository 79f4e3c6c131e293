"""`kdumpctl-py install [--prefix P] [--bindir DIR] [--dry-run]`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands


def register(sub: Commands) -> None:
    from kdumpctl_py.cli import nonempty

    p = sub.add_parser("install", help="install the systemd units, udev rule, kernel hooks, man "
                       "pages and a default configuration, and build the capture initramfs")
    p.add_argument("--prefix", default="/", metavar="P", type=nonempty,
                   help="root directory to install into (default: /)")
    p.add_argument("--bindir", metavar="DIR", type=nonempty,
                   help="where the units find kdumpctl-py (default: this kdumpctl-py's "
                   "directory, /usr/bin under another --prefix)")
    p.add_argument("--dry-run", action="store_true", help="list what would be written")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdumpctl_py.service.install import default_bindir, install, plan_install

    bindir = args.bindir or default_bindir(args.prefix)
    for line in install(plan_install(bindir), args.prefix, args.dry_run):
        print(line)
    if args.prefix != "/":
        return 0
    from kdumpctl_py.cli import open_view

    if args.dry_run:  # found by review: the dry run listed the files, not the initramfs
        from kdumpctl_py.plan.initramfs import plan_initramfs

        plan = plan_initramfs(open_view(args))
        if plan is not None and plan.why is not None:
            print(f"would build {plan.output} ({plan.why}), as kdumpctl-py initramfs build")
        return 0
    from kdumpctl_py.service.initramfs import refresh

    refresh(open_view(args))  # what the kernel hooks would have built
    print("next: systemctl daemon-reload && systemctl enable --now kdumpctl-py.service")
    return 0
