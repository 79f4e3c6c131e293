"""`kdumpctl-py dumps [DIR...]`: the saved dumps, newest first, with what is known of each."""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, Any

from kdumpctl_py.errors import UsageError

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands


def register(sub: Commands) -> None:
    from kdumpctl_py.cli import nonempty

    p = sub.add_parser(
        "dumps", help="list the saved dumps, newest first",
        description="List the dumps under the configured target (or the given directories, "
        "e.g. a dump server's tree), newest first: host, date, kernel, size, complete or "
        "not (by the file's name, a kdump header still marked unfinished, save.json), "
        "the dump level written, the crash signature and the panic message. Kernel, "
        "signature and panic come from each dump's analysis.json, which the next boot's "
        "report and `triage` write; this command opens no dump.")
    p.add_argument("dirs", nargs="*", metavar="DIR", type=nonempty,
                   help="directories to search (default: the configured dump directory)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def dump_dirs(args: argparse.Namespace) -> list[str]:
    """The directories given, else where this machine's dumps are (maybe not made yet)."""
    if args.dirs:
        return list(args.dirs)
    from kdumpctl_py.cli import open_view
    from kdumpctl_py.config import read_config
    from kdumpctl_py.service.target import first_kernel_dump_dir

    view = open_view(args)
    cfg = read_config(view)
    where = first_kernel_dump_dir(cfg, view)
    if where is None:
        raise UsageError("the configured target is not mounted here (or is a network "
                         "target): name the dump directories, e.g. kdumpctl-py dumps DIR")
    return [view.path(where).as_posix()]


def row(d: Any, analysis: dict[str, Any] | None) -> dict[str, Any]:
    a = analysis or {}
    sig = a.get("signature") or {}
    return {
        "path": d.directory, "vmcore": d.vmcore, "host": d.host or a.get("nodename"),
        "date": d.date, "kernel": a.get("release"), "bytes": d.bytes,
        "complete": d.complete,
        "level_written": (d.save or {}).get("level_written"),
        "signature": sig.get("id"), "panic_message": a.get("panic_message"),
        "analysed": analysis is not None,
    }


def run(args: argparse.Namespace) -> int:
    from kdumpctl_py.analyse.stored import load
    from kdumpctl_py.triage.found import find
    from kdumpctl_py.vocabulary import SCHEMA

    dirs = dump_dirs(args)
    # a configured directory not made yet means nothing saved yet; a given one is a typo
    searched = dirs if args.dirs else [d for d in dirs if os.path.isdir(d)]
    rows = [row(d, load(d.vmcore)) for d in find(searched)]
    if args.json:
        print(json.dumps({"schema": SCHEMA, "dumps": rows}, indent=2))
    else:
        print(render(rows) if rows else f"no dumps under {', '.join(dirs)}")
    return 0


def render(rows: list[dict[str, Any]]) -> str:
    from kdumpctl_py.units import format_bytes

    table = [("DATE", "HOST", "KERNEL", "SIZE", "STATE", "LEVEL", "SIGNATURE", "PANIC")]
    for r in rows:
        level = r["level_written"]
        table.append((r["date"].replace("T", " "), r["host"] or "?", r["kernel"] or "?",
                      format_bytes(r["bytes"]), "complete" if r["complete"] else "INCOMPLETE",
                      "?" if level is None else str(level),
                      r["signature"] or ("-" if r["analysed"] else "not analysed"),
                      r["panic_message"] or ""))
    widths = [max(len(t[i]) for t in table) for i in range(len(table[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(t, widths, strict=False))
                     + "  " + t[-1]
                     for t in table).rstrip()
