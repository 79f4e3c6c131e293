"""`kdumpctl-py status`: is kdump operational here, and if not, why not."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from kdumpctl_py.units import format_bytes

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands
    from kdumpctl_py.facts.view import SystemView
    from kdumpctl_py.status import Status

NOT_OPERATIONAL = 3  # as Fedora's kdumpctl status


def register(sub: Commands) -> None:
    from kdumpctl_py.cli import nonempty

    p = sub.add_parser("status", help="show whether kdump is operational (exit 0) or not (3)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print one JSON object")
    out.add_argument("--prometheus", metavar="PATH", type=nonempty,
                     help="write node_exporter textfile-collector metrics to PATH (replaced "
                     "atomically; e.g. /var/lib/prometheus/node-exporter/kdumpctl-py.prom) "
                     "instead of printing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from kdumpctl_py.cli import open_view
    from kdumpctl_py.config import read_config
    from kdumpctl_py.plan.capture_cmdline import configured_cmdline
    from kdumpctl_py.service.check import check_target
    from kdumpctl_py.service.target import first_kernel_dump_dir, first_kernel_results, unlisted
    from kdumpctl_py.service.testid import last_test
    from kdumpctl_py.status import assess, start_would_fail
    from kdumpctl_py.vocabulary import crash_memory, header, origin_line

    view = open_view(args, probe=True)
    cfg = read_config(view)
    dump_dir = first_kernel_dump_dir(cfg, view)
    elsewhere = None if dump_dir else unlisted(cfg)
    st = start_would_fail(assess(view, dump_dir or cfg.path, cfg.method, cfg.dtb), view, cfg)
    st = replace(st, last_test=last_test(view, first_kernel_results(cfg, view)),
                 dumps_elsewhere=elsewhere[0] if elsewhere else None,
                 capture_cmdline=None if view.cmdline is None else configured_cmdline(view, cfg))
    check = check_target(cfg, view) if view.live else None
    if check is not None:
        st = replace(st, target=check.target, free_bytes=None)
        if check.ok is False and st.operational:
            st = replace(st, operational=False, reason=check.detail)
    elif elsewhere:  # found by review: /var/crash here and its free space were shown
        st = replace(st, target=elsewhere[1], free_bytes=None)
    if args.prometheus:
        write_metrics(args.prometheus, view, st, dump_dir or cfg.path)
    elif args.json:
        report = {**header(view), **crash_memory(view), **st.to_json(),
                  "target_check": check.to_json() if check else None}
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print("\n".join(origin_line(header(view)["snapshot"]) + [render(st)]
                        + ([f"  target check  {check.detail}"] if check else [])
                        + ([f"  warning       {check.warning}"] if check and check.warning
                           else [])))
    return 0 if st.operational else NOT_OPERATIONAL


def write_metrics(path: str, view: SystemView, st: Status, dump_dir: str) -> None:
    """The metrics file, replaced whole (node_exporter may read it at any moment)."""
    from kdumpctl_py.errors import KdumpError
    from kdumpctl_py.fileio import replace_atomically
    from kdumpctl_py.metrics import Facts, render
    from kdumpctl_py.plan.estimate import estimate

    try:
        needed: int | None = estimate(view).needed
    except KdumpError:
        needed = None
    facts = Facts(operational=st.operational,
                  crash_region_bytes=sum(r.size for r in st.regions) or st.reserved_bytes,
                  loaded=st.loaded, last_test=st.last_test,
                  # none on a target status cannot list: not this machine's path's count
                  dumps=None if st.dumps_elsewhere else view.dumps(dump_dir),
                  reserved_bytes=st.reserved_bytes, needed_bytes=needed)
    replace_atomically(path, render(facts).encode(), backup=False)


def render(st: Status) -> str:
    head = "kdump is operational" if st.operational else f"kdump is NOT operational: {st.reason}"
    regions = ", ".join(
        f"{format_bytes(r.size)} at {r.start:#x}-{r.end:#x}" for r in st.regions
    ) or (format_bytes(st.reserved_bytes) if st.reserved_bytes else "none")
    paths = ", ".join(f"{k} {v}" for k, v in st.load_paths.items())
    if st.load_paths_basis:
        paths += f" ({st.load_paths_basis})"
    dump = "none found"
    if st.newest_dump:
        d = st.newest_dump
        dump = f"{d.name} ({format_bytes(d.bytes)}{'' if d.complete else ', INCOMPLETE'})"
        if d.saved:
            dump += f": {d.saved}"
    if st.dumps_elsewhere:  # found by review: an ssh target's status listed /var/crash here
        dump = (f"not listed: the dumps are on {st.dumps_elsewhere}"
                + (f"; on this machine: {dump}" if st.newest_dump else ""))
    flags = [
        f"lockdown {st.lockdown or 'unknown'}",
        f"Secure Boot {_onoff(st.secure_boot)}",
        f"kexec_load_disabled {_onoff(st.kexec_load_disabled)}",
    ]
    rows = [
        ("kernel", f"{st.release} ({st.arch})"),
        ("crashkernel=", st.requested or "not on the command line"),
        ("reserved", regions),
        ("capture kernel", {True: "loaded", False: "not loaded", None: "unknown"}[st.loaded]),
        ("load paths", paths),
        ("method", f"{st.method or 'none'}: {st.method_why}"),
        ("policy", ", ".join(flags)),
        ("signatures", st.signatures),
        ("dump target", f"{st.target} ({format_bytes(st.free_bytes)} free)"),
        ("newest dump", dump),
        ("last test", st.last_test or "none recorded"),
        ("capture cmdline", st.capture_cmdline or "unknown (/proc/cmdline is unreadable)"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join([head] + [f"  {k:<{width}}  {v}" for k, v in rows])


def _onoff(value: bool | None) -> str:
    return {True: "on", False: "off", None: "unknown"}[value]
