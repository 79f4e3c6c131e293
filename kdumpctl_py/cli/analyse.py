"""`kdumpctl-py analyse VMCORE`: what crashed, where, and the state of the machine at the time.

drgn is imported inside the command: the rest of the CLI runs without it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from kdumpctl_py.errors import KdumpError, UsageError
from kdumpctl_py.journal import warn

if TYPE_CHECKING:
    from kdumpctl_py.analyse.model import Report
    from kdumpctl_py.analyse.program import Opened
    from kdumpctl_py.cli import Commands


def register(sub: Commands) -> None:
    from kdumpctl_py.cli import nonempty

    p = sub.add_parser(
        "analyse",
        aliases=["analyze"],
        help="analyse a vmcore with drgn: panic, backtraces, tasks, memory, modules, log",
        description="Analyse a saved vmcore (ELF or kdump-compressed, any arch drgn knows). "
        "The vmlinux with DWARF is found by the dump's build ID (--vmlinux, "
        "kdumpctl-py's cache, /usr/lib/debug in Debian's and Fedora's layouts); without "
        "one, what VMCOREINFO, kallsyms and the kernel log allow is shown, with what is "
        "missing and how to get it.",
    )
    p.add_argument("vmcore", metavar="VMCORE")
    p.add_argument("--vmlinux", metavar="PATH", type=nonempty,
                   help="vmlinux with DWARF for the crashed kernel (checked by build ID)")
    p.add_argument("--debug-dir", metavar="DIR", action="append", dest="debug_dirs", type=nonempty,
                   help="where debug files are installed, instead of /usr/lib/debug "
                   "(repeatable)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true",
                     help="print one JSON object (schema in docs/analyse-json.md)")
    out.add_argument("--shell", action="store_true",
                     help="open drgn's interactive shell with the dump loaded as `prog`")
    p.add_argument("--log-lines", metavar="N", type=int, default=50,
                   help="how many lines of the kernel log to show (0: all; default 50)")
    p.set_defaults(func=run)


def _log_only(args: argparse.Namespace, error: KdumpError) -> Report | None:
    """When drgn cannot open the dump, the report the kernel log gives, as the next boot's
    report and triage make it (analyse/stored.py); None when the log cannot be read
    either, or a vmlinux was asked for."""
    from kdumpctl_py.analyse import logonly

    try:
        report = logonly.gather(args.vmcore, log_lines=args.log_lines)
    except (KdumpError, OSError):
        return None
    report.missing.remove(logonly.MISSING)
    report.missing.insert(0, f"drgn could not open the dump ({error}), so only the kernel "
                             "log was read: no tasks, CPUs, memory or modules")
    return report


def run(args: argparse.Namespace) -> int:
    from kdumpctl_py.analyse.debuginfo import DEBUG_DIRS
    from kdumpctl_py.analyse.program import open_dump
    from kdumpctl_py.capture.extent import truncation

    if args.log_lines < 0:
        raise UsageError("--log-lines must be 0 (all) or more")
    debug_dirs = tuple(args.debug_dirs) if args.debug_dirs else DEBUG_DIRS
    opened = None
    try:
        opened = open_dump(args.vmcore, args.vmlinux, debug_dirs=debug_dirs,
                           show_drgn_log=args.debug)
        cut = opened.truncation
    except KdumpError as e:
        cut = truncation(args.vmcore)
        if cut is not None and not cut.in_headers:
            e = UsageError(f"{args.vmcore} is {cut}; {e}")
        report = None if args.shell or args.vmlinux else _log_only(args, e)
        if report is None:
            raise e from None
    if cut is not None:
        warn(f"{args.vmcore} is {cut}; the report shows what is there")
    if opened is not None:
        if args.shell:
            for note in opened.found.notes:  # the report carries them otherwise
                print(f"kdumpctl-py: {note}", file=sys.stderr)
            return shell(opened)
        from kdumpctl_py.analyse.report import gather

        report = gather(opened, log_lines=args.log_lines)
    assert report is not None  # opened, or the kernel log's
    from kdumpctl_py.analyse.render import render_text, to_json

    if args.json:
        json.dump(to_json(report), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(report))
    return 0


def shell(opened: Opened) -> int:
    """drgn's own REPL on the opened dump, with a banner saying what was loaded."""
    import drgn.cli

    from kdumpctl_py.analyse.nodwarf import missing_text

    lines = [f"kdumpctl-py: {opened.path} [{opened.format}], release {opened.release}"]
    if opened.dwarf:
        lines.append(f"debug info: {opened.vmlinux}")
        if opened.missing_modules:
            lines.append(f"modules without debug info: {', '.join(opened.missing_modules)}")
    else:
        lines.append("no DWARF: " + missing_text(opened))
        if opened.kallsyms:
            lines.append("kernel symbols come from the dump's kallsyms (prog.symbol(...))")

    def banner(default: str) -> str:
        return default + "\n" + "\n".join(lines)

    drgn.cli.run_interactive(opened.prog, banner_func=banner)
    return 0
