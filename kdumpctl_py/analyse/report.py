"""Everything `kdumpctl-py analyse` says about a dump, gathered into one `Report`.

`gather()` fills it from an opened dump. Each part is read on its own: a part
that fails (memory filtered out of the dump, a kernel layout drgn does not
know) becomes a line in `warnings` and the rest of the report still comes.
Without DWARF, `nodwarf` fills what VMCOREINFO, kallsyms and the kernel log
allow and `missing` says what is absent and how to get it.

The Report and its parts are data in `model`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kdumpctl_py.analyse.kernlog import LogLine
from kdumpctl_py.analyse.model import DebugInfo, Frame, Log, Report

if TYPE_CHECKING:
    from kdumpctl_py.analyse.program import Opened

LOG_LINES = 50


def debuginfo_of(opened: Opened) -> DebugInfo:
    found = opened.found
    origin = found.origin if opened.vmlinux == found.vmlinux else "drgn's search"
    if not opened.dwarf:
        origin = None
    verified = bool(opened.dwarf and found.build_id and opened.vmlinux == found.vmlinux
                    and found.verdict == "match")
    if opened.dwarf and opened.vmlinux != found.vmlinux:
        verified = bool(found.build_id)  # drgn loads only files whose build ID matches
    notes = list(found.notes)
    if found.vmlinux and not opened.dwarf:
        notes.append(f"{found.vmlinux} matches the dump but drgn found no DWARF in it "
                     "(a stripped image?): the -dbg/-debuginfo package has the one with DWARF")
    return DebugInfo(
        dwarf=opened.dwarf,
        vmlinux=opened.vmlinux,
        origin=origin,
        build_id=found.build_id,
        verified=verified,
        kallsyms=opened.kallsyms,
        missing_modules=list(opened.missing_modules),
        notes=notes,
    )


def gather(opened: Opened, log_lines: int = LOG_LINES) -> Report:
    """The whole report for an opened dump."""
    from kdumpctl_py import __version__

    report = Report(
        vmcore=opened.path,
        format=opened.format,
        debuginfo=debuginfo_of(opened),
        arch=opened.arch,
        release=opened.release,
        build_id=opened.found.build_id,
        tool=f"kdumpctl-py {__version__}",
    )
    report.save = save_record(opened.path)
    if incomplete(opened.path, report.save):
        report.missing.append(INCOMPLETE)
    try:
        import drgn

        report.drgn_version = drgn.__version__
    except (ImportError, AttributeError):
        pass
    # drgn's "missing debugging symbols for X" is in debuginfo.missing_modules already.
    report.warnings += [m for m in opened.messages
                        if not m.startswith(("missing debugging", "... missing"))
                        and "did not match any loaded modules" not in m]
    log = report.attempt("kernel log", lambda: _read_log(opened))
    lines = log[1] if log else []
    if log:
        report.log = Log(log[0].source, len(lines), lines[-log_lines:] if log_lines else lines,
                         log[0].warnings)
    if opened.dwarf:
        _gather_dwarf(opened, report, lines)
    else:
        from kdumpctl_py.analyse import nodwarf

        nodwarf.gather(opened, report, lines)
    sign(report, lines, opened)
    return report


def sign(report: Report, lines: list[LogLine], opened: Opened | None = None) -> None:
    """The report's crash signature, from the whole log and the crashing task's trace as
    the kernel logged it: its unwinder walks the module code that drgn cannot without the
    module's debug info, and the same text is there with or without DWARF; the report's
    own backtrace only when the log has none."""
    from kdumpctl_py.analyse.signature import compute

    frames = report.backtrace
    if report.backtrace_source != "kernel log":
        frames = report.attempt("logged trace", lambda: logged_trace(lines, opened)) or frames
    report.signature = report.attempt(
        "signature", lambda: compute([ln.text for ln in lines], report.panic_message, frames))


def logged_trace(lines: list[LogLine], opened: Opened | None) -> list[Frame]:
    """The crashing task's Call Trace from the log, return addresses fixed by the dump's
    symbols when there are any (nodwarf.fix_return_addresses)."""
    from kdumpctl_py.analyse import kernlog, nodwarf

    ctx = kernlog.crash_context(lines)
    frames = kernlog.call_trace(lines, ctx.line) if ctx is not None else []
    if frames and opened is not None and (opened.dwarf or opened.kallsyms):
        frames = nodwarf.fix_return_addresses(opened.prog, frames)
    return frames


INCOMPLETE = ("the dump is incomplete (its save was cut short, or pages could not be read): "
              "what was not written reads as missing memory, so parts of this report may be "
              "missing or wrong")


def incomplete(path: str, record: dict[str, Any] | None) -> bool:
    """Whether the dump says it is not whole: its name, its save.json or its header."""
    from kdumpctl_py.capture.record import said_incomplete

    return path.endswith("-incomplete") or said_incomplete(record, path)


def save_record(path: str) -> dict[str, Any] | None:
    """The dump's save.json, when it describes this very file."""
    import os

    from kdumpctl_py.capture.record import read_record

    rec = read_record(os.path.dirname(os.path.abspath(path)))
    return rec if rec and rec.get("vmcore") == os.path.basename(path) else None


def _read_log(opened: Opened) -> tuple[Any, list[LogLine]]:
    from kdumpctl_py.analyse.kernlog import read_log, split_lines

    log = read_log(opened)
    return log, split_lines(log.lines)


def _gather_dwarf(opened: Opened, report: Report, lines: list[LogLine]) -> None:
    from kdumpctl_py.analyse import memory, modules, system, taint, tasks
    from kdumpctl_py.analyse.prstatus import read_registers

    prog = opened.prog
    report.attempt("system", lambda: system.fill(prog, report))
    report.attempt("panic message", lambda: system.fill_panic(prog, report, lines))
    report.taint = report.attempt("taint", lambda: taint.read(prog))
    crashed = report.attempt("crashed task", lambda: tasks.crashed(prog))
    if crashed is not None and crashed[1] is None:
        from kdumpctl_py.analyse.nodwarf import no_unwinder_text

        report.missing.append(no_unwinder_text(report.machine or opened.arch or "this"))
    elif crashed is not None:
        report.crashed_thread, report.backtrace = crashed[0], crashed[1] or []
        report.backtrace_source = "dwarf"
    notes = report.attempt("CPU registers",
                           lambda: read_registers(opened.path, opened.format)) or []
    report.cpus = report.attempt(
        "CPUs", lambda: tasks.cpus(prog, report.crashed_thread, notes)) or []
    report.tasks = report.attempt("tasks", lambda: tasks.summary(prog))
    report.memory = report.attempt("memory", lambda: memory.read(prog))
    report.modules = report.attempt("modules", lambda: modules.read(opened))
    if not report.backtrace and report.log is not None:
        from kdumpctl_py.analyse import nodwarf

        nodwarf.logged_backtrace(opened, report, lines, symbols=True)
