"""`status --prometheus`: kdump's state as node_exporter textfile-collector metrics.

Pure: a status assessment in, the text format out (one HELP and TYPE line per
metric, gauges only, samples as plain numbers). What is not known is left out
rather than written as a guess: a scrape then shows the metric as absent. The
shell writes the file atomically, so node_exporter never reads half of it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from kdumpctl_py.facts.view import DumpEntry
from kdumpctl_py.triage.found import name_parts

PREFIX = "kdumpctl_py"


@dataclass(frozen=True)
class Facts:
    operational: bool
    crash_region_bytes: int | None
    loaded: bool | None
    dumps: list[DumpEntry] | None  # oldest first; None: on a target not listed here
    last_test: str | None  # status's line: "ID: dump created, ..." / "ID: dump NOT created"
    reserved_bytes: int | None
    needed_bytes: int | None  # estimate's answer


def dump_time(name: str) -> float | None:
    """Seconds since the epoch of a dump named `<host>-YYYY-MM-DD-HH:MM:SS` (UTC)."""
    parts = name_parts(name)
    if parts is None:
        return None
    return dt.datetime.fromisoformat(parts[1]).replace(tzinfo=dt.UTC).timestamp()


def outcome_of_test(line: str | None) -> tuple[int | None, float | None]:
    """(1 created, 0 not, None pending or unknown; the test's start time) of status's line."""
    if not line:
        return None, None
    test_id, _, rest = line.partition(": ")
    try:
        started = dt.datetime.strptime(test_id, "%Y%m%d-%H%M%S").replace(
            tzinfo=dt.UTC).timestamp()
    except ValueError:
        started = None
    if rest.startswith("dump created"):
        return 1, started
    if rest.startswith("dump NOT created"):
        return 0, started
    return None, started


def render(f: Facts) -> str:
    dumps = f.dumps or []
    complete = [d for d in dumps if d.complete]
    times = [t for t in (dump_time(d.name) for d in dumps) if t is not None]
    test_ok, test_time = outcome_of_test(f.last_test)
    rows: list[tuple[str, str, list[tuple[str, float | None]]]] = [
        ("operational", "1 when kdump is operational (a capture kernel is loaded into "
         "reserved memory)", [("", int(f.operational))]),
        ("crash_region_bytes", "bytes reserved for the capture kernel",
         [("", f.crash_region_bytes)]),
        ("capture_kernel_loaded", "1 when a capture kernel is loaded",
         [("", None if f.loaded is None else int(f.loaded))]),
        ("last_dump_timestamp_seconds", "when the newest dump was taken (from its name, UTC)",
         [("", max(times) if times else None)]),
        ("dumps", "dumps under the dump directory",
         [('{complete="true"}', None if f.dumps is None else len(complete)),
          ('{complete="false"}', None if f.dumps is None else len(dumps) - len(complete))]),
        ("last_test_success", "1 when the last `kdumpctl-py test` made a dump, 0 when not",
         [("", test_ok)]),
        ("last_test_timestamp_seconds", "when the last `kdumpctl-py test` started",
         [("", test_time)]),
        ("reservation_bytes", "crash memory reserved now", [("", f.reserved_bytes)]),
        ("estimate_bytes", "crash memory `kdumpctl-py estimate` says this machine needs",
         [("", f.needed_bytes)]),
    ]
    out = []
    for name, help_text, samples in rows:
        known = [(labels, v) for labels, v in samples if v is not None]
        if not known:
            continue
        out += [f"# HELP {PREFIX}_{name} {help_text}", f"# TYPE {PREFIX}_{name} gauge"]
        out += [f"{PREFIX}_{name}{labels} {_number(v)}" for labels, v in known]
    return "\n".join(out) + "\n"


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))
