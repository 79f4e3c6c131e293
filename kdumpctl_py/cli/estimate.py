"""`kdumpctl-py estimate`: how much crashkernel memory this machine needs, and whether it has it."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands
    from kdumpctl_py.plan.estimate import Estimate


def register(sub: Commands) -> None:
    p = sub.add_parser("estimate", help="estimate the crashkernel reservation this machine needs")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdumpctl_py.cli import open_view
    from kdumpctl_py.plan.estimate import estimate
    from kdumpctl_py.vocabulary import crash_memory, header, origin_line

    view = open_view(args)
    result = estimate(view)
    if args.json:
        report = {**header(view), **crash_memory(view), **result.to_json()}
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print("\n".join(origin_line(header(view)["snapshot"]) + [render(result)]))
    return 0


def render(e: Estimate) -> str:
    from kdumpctl_py.plan.estimate import as_value
    from kdumpctl_py.units import format_bytes

    width = max(len(p.name) for p in e.parts)
    rows = [f"  {p.name:<{width}}  {format_bytes(p.bytes):>10}  {p.how}" for p in e.parts]
    default = "none for this arch" if e.default_value is None else (
        f"{e.default_value} ({format_bytes(e.default_size)} at this RAM)")
    if e.default_size is not None and e.default_size < e.needed:
        default += f": NOT ENOUGH here; use reset-crashkernel --value {as_value(e.needed)}"
    return "\n".join([
        e.verdict,
        *rows,
        f"  {'needed':<{width}}  {format_bytes(e.needed):>10}  rounded up",
        f"RAM: {format_bytes(e.ram)} ({e.ram_source})",
        f"default: {default}",
        "The model's constants are fitted to QEMU crash cycles of Debian guests; real machines "
        "with more drivers may need more.",
    ])
