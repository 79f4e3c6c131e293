"""What crash's `sys` shows: release, version, date, uptime, load, CPUs, tasks, panic."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from kdumpctl_py.analyse import kernlog

if TYPE_CHECKING:
    import drgn

    from kdumpctl_py.analyse.kernlog import LogLine
    from kdumpctl_py.analyse.model import Report


def _utsname(prog: drgn.Program, name: str) -> str:
    value: bytes = getattr(prog["init_uts_ns"].name, name).string_()
    return value.decode("utf-8", "backslashreplace")


def fill(prog: drgn.Program, report: Report) -> None:
    from drgn.helpers.linux.cpumask import num_online_cpus, num_present_cpus
    from drgn.helpers.linux.pid import for_each_task
    from drgn.helpers.linux.sched import loadavg
    from drgn.helpers.linux.timekeeping import ktime_get_real_seconds, uptime

    release = _utsname(prog, "release")
    if report.release and release != report.release:
        report.warnings.append(f"VMCOREINFO says release {report.release}, "
                               f"init_uts_ns {release}")
    report.release = release
    report.version = _utsname(prog, "version")
    report.machine = _utsname(prog, "machine")
    report.nodename = _utsname(prog, "nodename")
    report.uptime_seconds = round(uptime(prog), 3)
    seconds = ktime_get_real_seconds(prog).value_()
    if seconds > 0:
        when = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
        report.date = when.isoformat().replace("+00:00", "Z")
    report.load_average = [round(v, 2) for v in loadavg(prog)]
    report.cpus_present = num_present_cpus(prog)
    report.cpus_online = num_online_cpus(prog)
    report.task_count = sum(1 for _ in for_each_task(prog, idle=True))


def fill_panic(prog: drgn.Program, report: Report, lines: list[LogLine]) -> None:
    """The panic message drgn reads, else the log's; the log's too when drgn cannot read
    it (found by review: a damaged dump showed "none found" beside the logged panic), and
    then the error goes on to the report's warnings."""
    from drgn.helpers.linux.panic import panic_message

    try:
        message = panic_message(prog)
    except Exception:
        report.panic_message = kernlog.panic_message(lines)
        raise
    if message is not None:
        report.panic_message = message.decode("utf-8", "backslashreplace")
    else:
        report.panic_message = kernlog.panic_message(lines)
