"""`kdumpctl-py elfcorehdr build|show`: the ELF core header for this machine's capture kernel."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands


def register(sub: Commands) -> None:
    from kdumpctl_py.cli import nonempty

    p = sub.add_parser("elfcorehdr", help="build or decode the capture kernel's ELF core header")
    cmds = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = cmds.add_parser("build", help="build it from this machine's facts (or --sysroot)")
    b.add_argument("-o", "--output", required=True, metavar="OUT", type=nonempty)
    b.set_defaults(func=build)
    s = cmds.add_parser("show", help="decode a header file")
    s.add_argument("file", metavar="FILE")
    s.set_defaults(func=show)


def build(args: argparse.Namespace) -> int:
    from kdumpctl_py.cli import open_view
    from kdumpctl_py.fileio import replace_atomically
    from kdumpctl_py.plan.elfcorehdr import plan_elfcorehdr

    header = plan_elfcorehdr(open_view(args))
    data = header.encode()
    replace_atomically(args.output, data, backup=False)
    print(f"{args.output}: {len(header.notes)} notes, {len(header.loads)} loads, {len(data)} bytes")
    return 0


def show(args: argparse.Namespace) -> int:
    from kdumpctl_py.elf import PT_LOAD, PT_NOTE
    from kdumpctl_py.errors import UsageError
    from kdumpctl_py.plan.elfcorehdr import decode
    from kdumpctl_py.units import format_bytes

    try:
        with open(args.file, "rb") as f:
            data = f.read(1 << 20)
    except OSError as e:
        raise UsageError(f"{args.file}: {e.strerror}") from None
    header = decode(data, args.file)
    print(f"ELF64 core, e_machine {header.machine}, {len(header.phdrs)} program headers")
    print(f"  {'type':<5} {'p_offset':>18} {'p_vaddr':>18} {'p_paddr':>18} {'size':>10}")
    for p in header.phdrs:
        kind = {PT_LOAD: "LOAD", PT_NOTE: "NOTE"}.get(p.type, str(p.type))
        print(f"  {kind:<5} {p.offset:#18x} {p.vaddr:#18x} {p.paddr:#18x} "
              f"{format_bytes(p.memsz):>10}")
    return 0
