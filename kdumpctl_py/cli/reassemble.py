"""`kdumpctl-py reassemble FLAT OUT`: a flattened stream as the file it describes."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands


def register(sub: Commands) -> None:
    from kdumpctl_py.cli import nonempty

    p = sub.add_parser("reassemble", help="turn a flattened dump (save --flat, makedumpfile "
                       "-F) into the kdump-compressed or ELF file it describes, as "
                       "makedumpfile -R")
    p.add_argument("flat", metavar="FLAT", type=nonempty,
                   help="the flattened file ('-': standard input)")
    p.add_argument("out", metavar="OUT", type=nonempty,
                   help="the file to write (under a temporary name, linked as OUT when whole; "
                   "what a stream cut short leaves is OUT-incomplete); must not exist")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdumpctl_py.capture.reassemble import reassemble, stream_name
    from kdumpctl_py.errors import UsageError
    from kdumpctl_py.units import format_bytes

    if args.flat == "-" and sys.stdin.isatty():
        raise UsageError("reassemble - reads the stream from standard input, which is this "
                         "terminal; pipe the stream in, or name the flattened file")
    size = reassemble(args.flat, args.out)
    print(f"{args.out}: {format_bytes(size)} reassembled from {stream_name(args.flat)}")
    return 0
