"""`kdumpctl-py dtb build|show`: make a capture kernel's device tree, or read one for people."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from kdumpctl_py.errors import KdumpError, UsageError
from kdumpctl_py.units import format_bytes, parse_range

FDT = "/sys/firmware/fdt"
# A DTB's size is a u32, but arm64 boots at most 2 MiB; this only stops /dev/zero.
MAX_FILE = 16 << 20
RANGE_PROPERTIES = ("linux,usable-memory-range", "linux,elfcorehdr", "linux,ima-kexec-buffer",
                    "linux,kho-fdt", "linux,kho-scratch")
SEEDS = ("kaslr-seed", "rng-seed")

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands
    from kdumpctl_py.plan.dtb import DtbSummary


def register(sub: Commands) -> None:
    from kdumpctl_py.cli import nonempty

    p = sub.add_parser("dtb", help="build or show a capture kernel's device tree")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    b = actions.add_parser(
        "build", help="write a capture DTB: the base tree with /chosen set for a crash boot",
        description="Copy the base DTB and set /chosen (usable memory, elfcorehdr, initrd, "
        "bootargs, fresh seeds) and the reservation map as the kernel's kexec_file_load "
        "does. Numbers take any prefixed base (0x...) and K/M/G/T suffixes.")
    b.add_argument("--base", metavar="FILE", type=nonempty,
                   help=f"the DTB to start from (default: {FDT} of this machine or --sysroot)")
    b.add_argument("--usable-range", metavar="START+SIZE", action="append", required=True,
                   type=_range, help="memory the capture kernel may use: the crash region, "
                   "then optionally a low region (repeat the option)")
    b.add_argument("--elfcorehdr", metavar="START+SIZE", required=True, type=_range,
                   help="where the ELF core header is loaded")
    b.add_argument("--initrd", metavar="START+SIZE", type=_range,
                   help="where the capture initrd is loaded (default: no initrd)")
    b.add_argument("--cmdline", metavar="STR",
                   help="the capture kernel's command line (default: none; bootargs is removed)")
    b.add_argument("-o", "--output", metavar="OUT", type=nonempty, required=True,
                   help="file to write")
    b.set_defaults(func=run_build)

    s = actions.add_parser("show", help="show a DTB's /chosen and reservation map")
    s.add_argument("file", metavar="FILE")
    s.set_defaults(func=run_show)


def _range(text: str) -> tuple[int, int]:
    """parse_range for argparse, which then names the option in its one-line error."""
    try:
        return parse_range(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror}") from None
    if len(data) > MAX_FILE:
        raise UsageError(f"{path}: larger than {format_bytes(MAX_FILE)}, not a device tree")
    return data


def run_build(args: argparse.Namespace) -> int:
    from kdumpctl_py.cli import open_view
    from kdumpctl_py.fileio import replace_atomically
    from kdumpctl_py.plan.dtb import build_capture_dtb

    if args.base:
        base, what = _read(args.base), args.base
    else:
        view = open_view(args)
        what = str(view.path(FDT))
        fdt = view.fdt
        if fdt is None:
            reason = view.unknown.get(FDT, "unreadable")
            raise KdumpError(f"{what}: {reason}; no boot device tree to start from "
                             "(give --base FILE)")
        base = fdt
    blob = build_capture_dtb(base, args.usable_range, args.elfcorehdr, initrd=args.initrd,
                             cmdline=args.cmdline, what=what)
    replace_atomically(args.output, blob, backup=False)
    print(f"capture DTB written to {args.output} ({format_bytes(len(blob))}, from {what})")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from kdumpctl_py.plan.dtb import summarize

    print(render(args.file, summarize(_read(args.file), args.file)))
    return 0


def render(name: str, summary: DtbSummary) -> str:
    """A DtbSummary for people: addresses in hex, sizes in binary units, seeds never dumped."""
    lines = [f"{name}: device tree version {summary.version}, "
             f"{format_bytes(summary.totalsize)}, #address-cells {summary.address_cells}, "
             f"#size-cells {summary.size_cells}"]
    if summary.chosen is None:
        lines.append("/chosen: none")
    else:
        lines.append("/chosen:")
        width = max((len(k) for k in summary.chosen), default=0)
        cells = (summary.address_cells, summary.size_cells)
        lines += [f"  {k:<{width}}  {_value(k, v, summary.chosen, cells)}"
                  for k, v in summary.chosen.items()]
    reservations = summary.reservations
    lines.append("reservation map:" if reservations else "reservation map: empty")
    lines += [f"  {_extent(start, size)}" for start, size in reservations]
    return "\n".join(lines)


def _extent(start: int, size: int) -> str:
    if size == 0:
        return f"{start:#x} (empty)"
    return f"{start:#x}-{start + size - 1:#x} ({format_bytes(size)})"


def _value(name: str, value: bytes, chosen: dict[str, bytes], cells: tuple[int, int]) -> str:
    from kdumpctl_py.plan.dtb import decode_ranges, read_number

    if name in SEEDS:
        zero = ", all zero" if not any(value) else ""
        return f"present, {len(value)} bytes{zero}"
    if not value:
        return "(empty)"
    if name in RANGE_PROPERTIES:
        try:
            return ", ".join(_extent(s, n) for s, n in decode_ranges(value, *cells))
        except UsageError as e:
            return f"malformed: {e}"
    if name == "linux,initrd-start":
        return f"{read_number(value):#x}"
    if name == "linux,initrd-end":
        end, start = read_number(value), chosen.get("linux,initrd-start")
        if start is None or end < read_number(start):
            return f"{end:#x}"
        return f"{end:#x} (initrd of {format_bytes(end - read_number(start))})"
    strings = _strings(value)
    if strings is not None:
        return ", ".join(json.dumps(s) for s in strings)
    if len(value) % 4 == 0 and len(value) <= 32:
        return "<" + " ".join(f"{int.from_bytes(value[i:i + 4], 'big'):#x}"
                              for i in range(0, len(value), 4)) + ">"
    return f"{len(value)} bytes"


def _strings(value: bytes) -> list[str] | None:
    """The NUL-terminated printable strings a property holds, or None if it is not text."""
    if not value.endswith(b"\0"):
        return None
    try:
        parts = value[:-1].decode("utf-8").split("\0")
    except UnicodeDecodeError:
        return None
    if any(not p.isprintable() for p in parts) or (len(parts) > 1 and not all(parts)):
        return None
    return parts
