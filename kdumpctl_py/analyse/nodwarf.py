"""The report without DWARF: what VMCOREINFO, kallsyms and the kernel log allow.

drgn needs the kernel's types for tasks, memory counters and modules, and
those come only with DWARF. Without it the dump still has: VMCOREINFO
(release, build ID, page size), the kernel log (read by capture.dmesg from
VMCOREINFO alone), the kernel's own account of the crash in that log (panic
message, "CPU: N PID: P Comm: C" and its Call Trace), each CPU's registers
in the ELF notes, and kallsyms to name the addresses in them. When the log
holds no call trace, the words on the crashing CPU's stack that point into
kernel text are listed instead, as crash's `bt -t` does (reliable=False).

The kernel's trace names return addresses; x86 prints them as `%pB` (looked
up at address - 1), but arm64 does not, so a call that was the last
instruction of its function (a call to panic(), which does not return)
shows as the next function at +0x0. kallsyms puts those back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from kdumpctl_py.analyse import kernlog
from kdumpctl_py.analyse.model import CpuState, Frame, TaskRef
from kdumpctl_py.analyse.prstatus import read_registers
from kdumpctl_py.analyse.symsize import kernel_size

if TYPE_CHECKING:
    import drgn

    from kdumpctl_py.analyse.kernlog import LogLine
    from kdumpctl_py.analyse.model import Report
    from kdumpctl_py.analyse.program import Opened
    from kdumpctl_py.analyse.prstatus import CpuRegs

# The kernel's stack is THREAD_SIZE aligned: 16 KiB on x86_64 and arm64 (32 KiB with
# KASAN); without DWARF THREAD_SIZE is unknown, so the scan stays in 16 KiB.
STACK_SCAN = 16 << 10
MAX_SCAN_FRAMES = 48
_VERSION = re.compile(r"^Linux version (\S+) .*? (#\d+ .*)$")


def missing_text(opened: Opened, version: str | None = None) -> str:
    release = opened.release or "RELEASE"
    found = opened.found
    want = f" with build ID {found.build_id}" if found.build_id else ""
    return (
        f"no vmlinux with DWARF{want} was found, so tasks, per-CPU backtraces, the "
        f"memory summary and the module list are missing. Get it with "
        f"{package_hint(opened.path, release, version)}, then run analyse again, or pass "
        "--vmlinux"
    )


def package_hint(path: str, release: str, version: str | None) -> str:
    """Where the vmlinux with DWARF comes from, in the words of the distribution that built
    the kernel: its version string (`#1 SMP Debian 6.1.192-2 ...`) or release names it."""
    words = f"{release} {version or ''}"
    if "Debian" in words or re.search(r"\+deb\d|-(amd64|arm64|armmp|686|686-pae)$", release):
        return (f"`kdumpctl-py debuginfo fetch {path}` (downloads Debian's "
                f"linux-image-{release}-dbg)")
    if "Ubuntu" in words:
        return f"Ubuntu's linux-image-unsigned-{release}-dbgsym (from its debug symbol archive)"
    if re.search(r"\.(fc|el)\d+", release):
        return f"`dnf debuginfo-install kernel-{release}` (kernel-debuginfo-{release})"
    if "SUSE" in words or release.endswith("-default"):
        return f"`zypper install kernel-default-debuginfo` of the kernel {release}"
    return (f"the kernel's debug package: Debian's linux-image-{release}-dbg "
            f"(`kdumpctl-py debuginfo fetch {path}`), Fedora's kernel-debuginfo-{release}")


# Where drgn raises "core dump stack unwinding is not supported for RISC-V 64
# architecture" (drgn 0.0.3x), with DWARF or without.
NO_UNWINDER = frozenset({"riscv64"})


def no_unwinder_text(arch: str) -> str:
    import drgn

    return (f"drgn {drgn.__version__} cannot unwind {arch} stacks, so the backtrace is "
            "the kernel's own Call Trace from its log")


def gather(opened: Opened, report: Report, lines: list[LogLine]) -> None:
    report.missing.append(missing_text(opened, version_from_log(lines)))
    if opened.arch in NO_UNWINDER:
        report.missing.append(no_unwinder_text(opened.arch))
    report.machine = opened.arch
    version = version_from_log(lines)
    if version:
        report.version = version
    report.panic_message = kernlog.panic_message(lines)
    if report.log is None:
        report.missing.append("the kernel log could not be read, so the panic message and "
                              "the kernel's own backtrace are missing too")
    logged_backtrace(opened, report, lines, opened.kallsyms)
    regs = report.attempt("CPU registers", lambda: read_registers(opened.path, opened.format))
    if regs is None:
        return
    if not regs:
        report.missing.append("the dump has no per-CPU registers that kdumpctl-py can read "
                              "without DWARF")
    crashed = report.crashed_thread
    report.cpus = [cpu_state(opened.prog, r, crashed) for r in regs]
    crashing = [r for r in regs if is_crashed(r, crashed)]
    if not report.backtrace and crashing:
        frames = report.attempt("stack scan", lambda: stack_scan(opened.prog, crashing[0]))
        if frames:
            report.backtrace = frames
            report.backtrace_source = "stack scan"


def version_from_log(lines: list[LogLine]) -> str | None:
    for ln in lines[:20]:
        m = _VERSION.match(ln.text)
        if m:
            return m.group(2)
    return None


def from_log(report: Report, lines: list[LogLine]) -> None:
    """Crashing task, taint, time of the crash and backtrace, as the kernel logged them."""
    from kdumpctl_py.analyse import taint

    panic = kernlog.find_panic(lines)
    if panic is None:
        return
    if report.uptime_seconds is None:
        report.uptime_seconds = round(lines[panic].seconds, 3)
    ctx = kernlog.crash_context(lines, panic)
    if ctx is None:
        return
    report.crashed_thread = TaskRef(ctx.pid, ctx.comm, ctx.cpu, source="kernel log")
    if report.taint is None and ctx.taint is not None:
        report.taint = taint.from_letters(ctx.taint)
    frames = kernlog.call_trace(lines, ctx.line)
    if frames:
        report.backtrace = frames
        report.backtrace_source = "kernel log"


def logged_backtrace(opened: Opened, report: Report, lines: list[LogLine],
                     symbols: bool) -> None:
    """The crash as the kernel logged it, its frames after a noreturn call renamed when
    the dump's `symbols` allow."""
    from_log(report, lines)
    if symbols and report.backtrace_source == "kernel log":
        logged = report.backtrace
        fixed = report.attempt("return addresses",
                               lambda: fix_return_addresses(opened.prog, logged))
        report.backtrace = fixed or logged


def fix_return_addresses(prog: drgn.Program, frames: Sequence[Frame]) -> list[Frame]:
    """Frames at +0x0 of a function (but the innermost) named after the function the call
    was in: the symbol just before, found through kallsyms by the unique name."""
    out = []
    for f in frames:
        if f.offset == 0 and f.index > 0 and f.symbol and f.module is None:
            found = prog.symbols(f.symbol)
            if len(found) == 1:
                start = found[0].address
                try:
                    caller = prog.symbol(start - 1)
                except LookupError:
                    caller = None
                if caller is not None:
                    f = replace(f, function=caller.name, symbol=caller.name,
                                offset=start - caller.address,
                                size=kernel_size(prog, caller))
        out.append(f)
    return out


def symbolise(prog: drgn.Program, index: int, pc: int, context: str | None,
              reliable: bool = True) -> Frame:
    """A frame for `pc` named by whatever symbols drgn has (kallsyms here)."""
    try:
        sym = prog.symbol(pc)
    except LookupError:
        return Frame(index, pc, None, context=context, reliable=reliable)
    return Frame(index, pc, sym.name, symbol=sym.name, offset=pc - sym.address,
                 size=kernel_size(prog, sym), context=context, reliable=reliable)


def is_crashed(regs: CpuRegs, crashed: TaskRef | None) -> bool:
    """The CPU the logged crash ran on; its pid must agree (CPUs that saved no state leave
    no note, so a note's position is not always its CPU number)."""
    if crashed is None or regs.pid != crashed.pid:
        return False
    return regs.pid != 0 or regs.cpu == crashed.cpu


def cpu_state(prog: drgn.Program, regs: CpuRegs, crashed: TaskRef | None) -> CpuState:
    hit = is_crashed(regs, crashed)
    comm = crashed.comm if hit and crashed is not None else None
    task = TaskRef(regs.pid, comm, regs.cpu, source="registers")
    frame = symbolise(prog, 0, regs.pc, "registers")
    return CpuState(regs.cpu, task, crashed=hit, idle=regs.pid == 0, backtrace=[frame])


def stack_scan(prog: drgn.Program, regs: CpuRegs) -> list[Frame]:
    """Words on the stack above sp that point inside kernel functions (crash's bt -t)."""
    import drgn as _drgn

    end = (regs.sp | (STACK_SCAN - 1)) + 1
    try:
        data = prog.read(regs.sp, end - regs.sp)
    except _drgn.FaultError:
        return []
    word = prog.address_size()
    order: Literal["little", "big"] = "little"
    platform = prog.platform
    if platform is not None and not platform.flags & platform.flags.IS_LITTLE_ENDIAN:
        order = "big"
    frames = [symbolise(prog, 0, regs.pc, "registers")]
    for off in range(0, len(data) - word + 1, word):
        value = int.from_bytes(data[off:off + word], order)
        try:
            sym = prog.symbol(value)
        except LookupError:
            continue
        if sym.kind != _drgn.SymbolKind.FUNC or value == sym.address:
            continue
        frames.append(Frame(len(frames), value, sym.name, symbol=sym.name,
                             offset=value - sym.address, size=kernel_size(prog, sym),
                             context="stack",
                             reliable=False))
        if len(frames) >= MAX_SCAN_FRAMES:
            break
    return frames
