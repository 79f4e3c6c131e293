"""`kdumpctl-py triage DIR...`: a dump server's dumps grouped by cause, commonest first."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from kdumpctl_py.errors import UsageError

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands


def register(sub: Commands) -> None:
    p = sub.add_parser(
        "triage", help="group the dumps under directories by crash signature",
        description="Group the dumps under the directories by crash signature "
        "(docs/crash-signature.md): for each, how many, on which hosts and kernels, first "
        "and last seen, and one dump with its panic message and top frames; the commonest "
        "first. Dumps without a current analysis.json are analysed in parallel processes "
        "(a progress bar on a terminal), and the analysis is kept beside each dump.")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="directories to search")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--since", metavar="DATE", type=since_date,
                   help="only dumps saved on or after DATE (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)")
    p.add_argument("--jobs", metavar="N", type=int,
                   help="analyse in at most N processes (default: one per CPU)")
    p.set_defaults(func=run)


def since_date(text: str) -> str:
    """The date as dump dates are written (ISO 8601 to the second), checked."""
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            return dt.datetime.strptime(text, fmt).strftime("%Y-%m-%dT%H:%M:%S")
        except ValueError:
            continue
    raise argparse.ArgumentTypeError(f"{text!r} is not YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS")


def run(args: argparse.Namespace) -> int:
    from kdumpctl_py.triage.found import find
    from kdumpctl_py.triage.groups import group
    from kdumpctl_py.triage.pool import analyse_all, terminal
    from kdumpctl_py.vocabulary import SCHEMA

    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be 1 or more")
    dumps = [d for d in find(args.dirs) if args.since is None or d.date >= args.since]
    analysed = analyse_all(dumps, args.jobs, progress=None if args.json else terminal())
    groups, unsigned = group(analysed)
    if args.json:
        print(json.dumps({
            "schema": SCHEMA, "dumps": len(dumps),
            "groups": [g.to_json() for g in groups],
            "unsigned": [{"dump": a.dump.vmcore, "error": a.error} for a in unsigned],
        }, indent=2))
    else:
        print(render(len(dumps), [g.to_json() for g in groups],
                     [(a.dump.vmcore, a.error) for a in unsigned]))
    return 0


def render(count: int, groups: list[dict[str, Any]],
           unsigned: list[tuple[str, str | None]]) -> str:
    out = [f"{len(groups)} signature{'s' if len(groups) != 1 else ''} in {count} "
           f"dump{'s' if count != 1 else ''}"]
    for g in groups:
        seen = g["first_seen"].replace("T", " ")
        if g["last_seen"] != g["first_seen"]:
            seen += " .. " + g["last_seen"].replace("T", " ")
        out += ["", f"{g['signature']}  {g['count']} dump{'s' if g['count'] != 1 else ''}  "
                f"{g['kind']}: {g['message'] or '(no message)'}",
                f"  frames   {' < '.join(g['frames']) or '(none)'}",
                f"  hosts    {', '.join(g['hosts']) or '?'}",
                f"  kernels  {', '.join(g['kernels']) or '?'}",
                f"  seen     {seen}",
                f"  example  {g['example']['dump']}",
                f"  panic    {g['example']['panic_message'] or '?'}"]
    if unsigned:
        out += ["", f"{len(unsigned)} dump{'s' if len(unsigned) != 1 else ''} without a "
                "signature:"]
        out += [f"  {path}: {error or 'no panic message or backtrace found'}"
                for path, error in unsigned]
    return "\n".join(out)
