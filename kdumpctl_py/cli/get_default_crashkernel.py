"""`kdumpctl-py get-default-crashkernel`: the crashkernel= value to use when none is chosen."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from kdumpctl_py.cli import add_arch_option

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands


def register(sub: Commands) -> None:
    p = sub.add_parser("get-default-crashkernel",
                       help="print the default crashkernel= value for an architecture")
    add_arch_option(p)
    p.add_argument("--page-size", metavar="4K|64K",
                   help="base page size (default: the running kernel's; 4K with --arch)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdumpctl_py.arch import get_arch
    from kdumpctl_py.plan.crashkernel_defaults import (
        PAGE_4K,
        default_crashkernel,
        page_size,
        parse_page_size,
    )

    if args.arch:
        arch = get_arch(args.arch)
        page = parse_page_size(args.page_size) if args.page_size else PAGE_4K
    else:
        from kdumpctl_py.cli import open_view

        view = open_view(args)
        arch = view.arch
        page = parse_page_size(args.page_size) if args.page_size else page_size(view)
    print(default_crashkernel(arch, page))
    return 0
