"""The report of a dump where drgn is not installed: what VMCOREINFO and the log say.

Debian 12 has no drgn package, so the next boot's report must not need it. The
kernel log is read from the dump with VMCOREINFO alone (capture.dmesg, the reader
`save` uses for vmcore-dmesg.txt), and the kernel's own account of the crash in it
gives the panic message, the crashing task, the taint and the Call Trace, which is
what the crash signature is made of. Only arm64 loses something: its trace names a
caller that ended in a call as the next function at +0x0, which only kallsyms
(through drgn) can put back, so such frames are left out of the signature.
"""

from __future__ import annotations

from kdumpctl_py.analyse import kernlog, nodwarf
from kdumpctl_py.analyse.model import DebugInfo, Log, Report
from kdumpctl_py.analyse.report import INCOMPLETE, LOG_LINES, incomplete, save_record, sign

MISSING = ("drgn is not installed, so only the kernel log was read (no tasks, CPUs, memory "
           "or modules): install drgn (`pip install drgn`) and run analyse again")


def gather(path: str, log_lines: int = LOG_LINES) -> Report:
    from kdumpctl_py import __version__
    from kdumpctl_py.capture.dmesg import read_vmcore

    log, info, fmt = read_vmcore(path)
    report = Report(vmcore=path, format=fmt,
                    debuginfo=DebugInfo(dwarf=False, vmlinux=None, origin=None,
                                        build_id=info.build_id, verified=False,
                                        kallsyms=False),
                    release=info.osrelease, build_id=info.build_id,
                    tool=f"kdumpctl-py {__version__}")
    report.save = save_record(path)
    if incomplete(path, report.save):
        report.missing.append(INCOMPLETE)
    read = kernlog.from_records(log)
    lines = kernlog.split_lines(read.lines)
    report.log = Log(read.source, len(lines), lines[-log_lines:] if log_lines else lines,
                     read.warnings)
    report.version = nodwarf.version_from_log(lines)
    report.panic_message = kernlog.panic_message(lines)
    nodwarf.from_log(report, lines)
    report.missing.append(MISSING)
    sign(report, lines)
    return report
