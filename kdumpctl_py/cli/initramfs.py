"""`kdumpctl-py initramfs build|remove`: kdumpctl-py's own capture initramfs.

Run by `install` for the running kernel, by `start` when it is out of date, and
by the kernel hooks (/etc/kernel/postinst.d and postrm.d, the kernel-install
plugin) for kernels being installed or removed.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands


def register(sub: Commands) -> None:
    from kdumpctl_py.cli import nonempty

    p = sub.add_parser("initramfs", help="build or remove kdumpctl-py's own capture "
                       "initramfs (initramfs-tools with MODULES=dep, or dracut --hostonly)")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    b = verbs.add_parser("build", help="build it for RELEASE when missing or out of date")
    b.add_argument("release", nargs="?", metavar="RELEASE", type=nonempty,
                   help="kernel release (default: the running kernel's)")
    b.add_argument("--force", action="store_true", help="build even when it is up to date")
    b.add_argument("--dry-run", action="store_true", help="say what would be built")
    b.set_defaults(func=run_build)
    r = verbs.add_parser("remove", help="remove it for RELEASE (a kernel being removed)")
    r.add_argument("release", metavar="RELEASE", help="kernel release")
    r.add_argument("--dry-run", action="store_true", help="say what would be removed")
    r.set_defaults(func=run_remove)


def run_build(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from kdumpctl_py.cli import open_view
    from kdumpctl_py.errors import KdumpError
    from kdumpctl_py.plan.initramfs import command, plan_initramfs
    from kdumpctl_py.service.initramfs import build

    plan = plan_initramfs(open_view(args), args.release)
    if plan is None:
        raise KdumpError("no initramfs generator found (initramfs-tools' mkinitramfs or "
                         "dracut); the capture kernel gets the system's initrd")
    if args.force and plan.why is None:
        plan = replace(plan, why="asked to (--force)")
    if plan.why is None:
        print(f"{plan.output} is up to date")
    elif args.dry_run:
        print(f"would build {plan.output} ({plan.why}): "
              + " ".join(command(plan, "CONFDIR", plan.output)))
    else:
        print(build(plan))
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from kdumpctl_py.cli import open_view
    from kdumpctl_py.plan.bootfiles import own_initrd_path
    from kdumpctl_py.service.initramfs import remove

    if not args.dry_run:
        print(remove(args.release))
        return 0
    path = own_initrd_path(args.release)
    print(f"would remove {path}" if open_view(args).path(path).exists()
          else f"no {path} to remove")
    return 0
