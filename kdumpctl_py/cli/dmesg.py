"""`kdumpctl-py dmesg VMCORE`: the crashed kernel's log, without debug info."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from kdumpctl_py.journal import warn

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands


def register(sub: Commands) -> None:
    p = sub.add_parser("dmesg", help="print the kernel log saved in a vmcore",
                       description="Print the crashed kernel's log from a vmcore, as dmesg "
                       "prints it, using only the VMCOREINFO in the dump.")
    p.add_argument("vmcore", metavar="VMCORE",
                   help="a vmcore: ELF (/proc/vmcore, makedumpfile -E) or kdump-compressed")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true",
                      help="print one JSON object: records, lost records, warnings")
    form.add_argument("--kmsg", action="store_true",
                      help="print records as /dev/kmsg does (priority, seq, usec; "
                      "SUBSYSTEM and DEVICE lines)")
    p.add_argument("-x", "--decode", action="store_true",
                   help="prefix facility and level, as dmesg -x")
    p.add_argument("--caller", action="store_true",
                   help="show the caller (T<pid> or C<cpu>) of each record")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdumpctl_py.capture.dmesg import format_kmsg, format_record, read_vmcore_log

    log = read_vmcore_log(args.vmcore)
    out = sys.stdout
    if args.json:
        from kdumpctl_py.vocabulary import SCHEMA

        out.write(json.dumps({"schema": SCHEMA, **log.to_json()}, indent=1) + "\n")
    else:
        for rec in log.records:
            if args.kmsg:
                out.write(format_kmsg(rec, caller=args.caller))
            else:
                out.write(format_record(rec, caller=args.caller, decode=args.decode))
        out.flush()
        for warning in log.warnings:
            warn(warning)
    return 0
