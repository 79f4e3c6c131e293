"""`kdumpctl-py crashkernel eval`: what the kernel would reserve for a crashkernel= value.

Admins run it before rebooting with a new value: it applies Linux 6.12's
rules (or a given release's) to the value (or a whole command line) and a RAM
size, and exits 2 with the kernel's reason when nothing would be reserved.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from kdumpctl_py.cli import add_arch_option

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands
    from kdumpctl_py.plan.crashkernel import Reservation


def register(sub: Commands) -> None:
    p = sub.add_parser("crashkernel", help="check crashkernel= values")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    e = actions.add_parser("eval", help="what the kernel reserves for a crashkernel= value")
    e.add_argument("spec", metavar="SPEC",
                   help="the value after crashkernel= (with --cmdline: a whole command line)")
    e.add_argument("--ram", required=True, metavar="SIZE",
                   help="the kernel's memblock RAM total, unrounded (e.g. 16G)")
    add_arch_option(e)
    e.add_argument("--cmdline", action="store_true", help="SPEC is a whole kernel command line")
    e.add_argument("--release", metavar="R", type=_release,
                   help="the kernel release that reads it (default: 6.12's rules): before 6.0 "
                   "ranges match the RAM total unrounded, arm64 before 5.19 has no ,high or "
                   ",low, and from 6.16 crashkernel=X,cma words are not the reservation")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=run_eval)


def _release(text: str) -> str:
    """--release for argparse: a release the rules can place (MAJOR.MINOR first); any other
    word would silently mean 6.12's rules, the release it was given to avoid."""
    from kdumpctl_py.facts.vmcoreinfo import release_version

    if release_version(text) is None:
        raise argparse.ArgumentTypeError(f"'{text}' is not a kernel release; give one as "
                                         "uname -r prints it, such as 5.10.0-30-amd64, or "
                                         "MAJOR.MINOR")
    return text


def run_eval(args: argparse.Namespace) -> int:
    from kdumpctl_py.arch import get_arch
    from kdumpctl_py.errors import UsageError
    from kdumpctl_py.plan.crashkernel import (
        InvalidCrashkernel,
        evaluate,
        evaluate_value,
        parse_size,
    )

    ram = parse_size(args.ram, "--ram")
    if ram == 0:
        raise UsageError("--ram must be more than 0")
    if args.arch:
        arch = get_arch(args.arch)
    else:
        from kdumpctl_py.cli import open_view

        arch = open_view(args).arch
    try:
        r = (evaluate(args.spec, ram, arch, release=args.release) if args.cmdline
             else evaluate_value(args.spec, ram, arch, release=args.release))
    except InvalidCrashkernel as e:
        where = "the command line" if args.cmdline else f"crashkernel={args.spec}"
        raise InvalidCrashkernel(f"{where} on {arch.name}: {e}") from None
    if args.json:
        from kdumpctl_py.vocabulary import SCHEMA

        print(json.dumps({"schema": SCHEMA, **r.to_json()}, sort_keys=True))
    else:
        print(describe(r))
    return 0


def describe(r: Reservation) -> str:
    from kdumpctl_py.units import format_bytes

    text = f"reserves {format_bytes(r.size)}"
    if r.offset:
        text += f" at {r.offset:#x}"
    if r.high:
        text += " searched high first"
        text += f", plus {format_bytes(r.low_size)} low" if r.low_size else ", no low region"
    return text
