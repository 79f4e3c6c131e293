"""The JSON vocabulary that status, showmem and estimate share (docs/json.md).

The same fact has the same name and shape in every report: `reserved`,
`requested` and `ram` are built here once, and every report starts with
`schema` and `snapshot`, so a reader can tell a snapshot from a live machine.
"""

from __future__ import annotations

from typing import Any

from kdumpctl_py.facts.view import SystemView

SCHEMA = 1  # raised when a key is removed, renamed or changes meaning or type


def snapshot_origin(view: SystemView) -> dict[str, str] | None:
    """Whose facts these are when they come from a snapshot: its host and when it was taken."""
    if view.live:
        return None
    return {"host": view.uname.nodename or "unknown host",
            "taken": str(view.meta.get("taken") or "at an unknown time")}


def origin_line(origin: dict[str, str] | None) -> list[str]:
    """The first line of a text report read from a snapshot, so it never looks live."""
    if origin is None:
        return []
    host = "a host without a name" if origin["host"] in ("(none)", "") else origin["host"]
    return [f"snapshot of {host} taken {origin['taken']}"]


def header(view: SystemView) -> dict[str, Any]:
    """The keys every report starts with."""
    return {"schema": SCHEMA, "snapshot": snapshot_origin(view)}


def crash_memory(view: SystemView) -> dict[str, Any]:
    """`reserved`, `requested` and `ram`: what is reserved, what /proc/cmdline asks for at
    this RAM total (or why that is unknown), and the RAM total with its source."""
    from kdumpctl_py.facts.cmdline import param_values
    from kdumpctl_py.plan.crashkernel import InvalidCrashkernel, evaluate, reserved, system_ram

    now = reserved(view)
    cmdline = view.cmdline
    ram, ram_source = system_ram(view)
    evaluated = None
    error = None
    if cmdline is None:
        error = "cannot read /proc/cmdline"
    elif "crashkernel=" not in cmdline:
        error = "no crashkernel= on the command line"
    elif ram is None:
        error = "the RAM total is unknown"
    else:
        try:
            evaluated = evaluate(cmdline, ram, view.arch, release=view.uname.release).to_json()
        except InvalidCrashkernel as e:
            error = f"the kernel rejects crashkernel= here: {e}"
    regions = [{"kind": "low" if r == now.low else "main", "start": r.start, "end": r.end,
                "size": r.size} for r in now.regions]
    return {
        "reserved": {"regions": regions, "regions_known": now.regions_known,
                     "kexec_crash_size": now.crash_size, "total": now.total},
        "requested": {"values": param_values(cmdline or "", "crashkernel"),
                      "evaluated": evaluated, "error": error},
        "ram": {"bytes": ram, "source": ram_source},
    }
