"""`kdumpctl-py snapshot OUT`: capture this machine's facts for a bug report or a test."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands


def register(sub: Commands) -> None:
    from kdumpctl_py.cli import nonempty

    p = sub.add_parser(
        "snapshot",
        help="save the files kdumpctl-py reads (kcore headers only) to a directory or .tar.gz",
    )
    p.add_argument("out", metavar="OUT", type=nonempty,
                   help="a new directory, or a file ending in .tar.gz")
    p.add_argument("--with-boot", action="store_true", help="also copy kernels and initrds")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdumpctl_py.facts.snapshot import take_snapshot
    from kdumpctl_py.units import format_bytes

    if args.sysroot:
        from kdumpctl_py.cli import drop_sysroot
        from kdumpctl_py.errors import UsageError

        raise UsageError(f"snapshot reads the live machine; {drop_sysroot(args)}")
    from kdumpctl_py.facts.view import SystemView
    from kdumpctl_py.load.probe import probed_view

    out = take_snapshot(args.out, probed_view(SystemView("/")), with_boot=args.with_boot)
    size = out.stat().st_size if out.is_file() else sum(
        p.stat().st_size for p in out.rglob("*") if p.is_file()
    )
    print(f"snapshot written to {out} ({format_bytes(size)})")
    return 0
