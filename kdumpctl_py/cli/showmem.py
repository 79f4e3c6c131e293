"""`kdumpctl-py showmem`: the crash memory reserved now, and whether it is what was asked for."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands
    from kdumpctl_py.facts.view import SystemView
    from kdumpctl_py.plan.crashkernel import Reserved


def register(sub: Commands) -> None:
    p = sub.add_parser("showmem", help="show the crashkernel memory reserved and requested")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdumpctl_py.cli import open_view

    report = describe(open_view(args))
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(render(report))
    return 0


def describe(view: SystemView) -> dict[str, Any]:
    """What is reserved, what /proc/cmdline asks for at this RAM total, and how they compare."""
    from kdumpctl_py.plan.crashkernel import reserved
    from kdumpctl_py.vocabulary import crash_memory, header

    facts = crash_memory(view)
    req = facts["requested"]
    failed, verdict = compare(view, reserved(view), req["evaluated"], req["error"])
    return {**header(view), **facts, "failed": failed, "verdict": verdict}


def compare(view: SystemView, now: Reserved, asked: dict[str, Any] | None,
            error: str | None) -> tuple[bool | None, str]:
    """(whether the kernel failed to reserve what was asked, a sentence saying what happened)."""
    from kdumpctl_py.plan.crashkernel import default_low_size, swiotlb_size
    from kdumpctl_py.units import format_bytes

    total = now.total
    if total is None:
        return None, "cannot tell what is reserved (/sys/kernel/kexec_crash_size unreadable)"
    if asked is None:
        if total:
            return None, f"{format_bytes(total)} is reserved, but {error}"
        return None, f"nothing is reserved: {error}"
    expected = {asked["size"] + (asked["low_size"] or 0)}
    low = default_low_size(view.arch, swiotlb_size(view.cmdline or ""))
    if not asked["high"] and not asked["offset"] and low:
        # A plain size that does not fit low is retried high, with a default low region.
        expected.add(asked["size"] + low)
    want = format_bytes(min(expected))
    if total == 0:
        where = f"at {asked['offset']:#x} (memory in use?)" if asked["offset"] else \
            "(no free range)"
        return True, (f"the kernel FAILED to reserve the {want} asked for {where}; "
                      "see dmesg | grep -i crashkernel")
    if total in expected:
        return False, f"reserved as asked: {format_bytes(total)}"
    if total < min(expected):
        return False, (f"{format_bytes(total)} reserved, less than the {want} asked for: "
                       "shrunk through /sys/kernel/kexec_crash_size since boot")
    return None, (f"{format_bytes(total)} reserved, but the command line asks for {want} at "
                  "this RAM total; it is an estimate, so near a range boundary the kernel may "
                  "have matched another range")


def render(report: dict[str, Any]) -> str:
    from kdumpctl_py.units import format_bytes
    from kdumpctl_py.vocabulary import origin_line

    res, req = report["reserved"], report["requested"]
    regions = ", ".join(f"{r['kind']} {r['start']:#x}-{r['end']:#x} ({format_bytes(r['size'])})"
                        for r in res["regions"])
    if not res["regions_known"]:
        regions = "addresses hidden (not root)"
    reserved_text = "none" if res["total"] == 0 else (
        f"{format_bytes(res['total'])}" + (f": {regions}" if regions else ""))
    asked = " ".join(f"crashkernel={v}" for v in req["values"]) or "nothing"
    if req["evaluated"]:
        e = req["evaluated"]
        asked += f" -> {format_bytes(e['size'])}"
        if e["high"]:
            asked += f" high + {format_bytes(e['low_size'])} low"
    rows = [("reserved", reserved_text), ("requested", asked),
            ("RAM", f"{format_bytes(report['ram']['bytes'])} ({report['ram']['source']})")]
    lines = [report["verdict"]] + [f"  {k:<9}  {v}" for k, v in rows]
    return "\n".join(origin_line(report["snapshot"]) + lines)
