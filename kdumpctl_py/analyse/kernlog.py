"""The kernel log of the dump, and what the kernel itself wrote there about the crash.

The records come from drgn's printk helpers when DWARF is loaded, and from
`kdumpctl_py.capture.dmesg` (VMCOREINFO alone, no types) otherwise; this
module reads no ring buffer itself. What it parses is the text: the panic
line, the "CPU: N PID: P Comm: C" line and the "Call Trace:" that the
kernel prints when it panics (dump_stack() in panic(), or the oops report
before it). Without DWARF that is the best backtrace there is, and it was
made by the kernel's own unwinder.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kdumpctl_py.errors import KdumpError

if TYPE_CHECKING:
    from kdumpctl_py.analyse.model import Frame
    from kdumpctl_py.analyse.program import Opened


@dataclass(frozen=True)
class LogLine:
    timestamp_ns: int
    text: str
    level: int | None = None

    @property
    def seconds(self) -> float:
        return self.timestamp_ns / 1e9


@dataclass
class KernelLog:
    source: str  # "drgn" or "kdumpctl-py" (capture.dmesg)
    lines: list[LogLine]
    warnings: list[str]


# The ranking drgn.helpers.linux.panic uses: a panic line beats an arch fault,
# which beats a BUG(), which beats a bare oops.
PANIC_PATTERNS = (
    r"Kernel panic -.*",
    r"BUG: (?:kernel NULL pointer dereference|unable to handle).*|Unable to handle kernel.*",
    r"[Kk]ernel BUG at.*",
    r"Oops: .*",
)
_PANIC = [re.compile(p) for p in PANIC_PATTERNS]

# "CPU: 1 PID: 168 Comm: kdumpcrasher Kdump: loaded Not tainted 6.1.0-56-cloud-amd64 #1 ..."
# (6.10 and later put "UID: n" before PID; the comm may hold spaces.)
_CPU_LINE = re.compile(
    r"CPU: (?P<cpu>\d+) (?:UID: \d+ )?PID: (?P<pid>\d+) Comm: (?P<comm>.{1,16}?)"
    r"(?: Kdump: \S+)? (?:Not tainted|Tainted: (?P<taint>[A-Z ]+?))(?: +\d|\s*$)"
)
_TRACE_START = re.compile(r"^\s*Call [Tt]race:\s*$")
# " ? func+0x16/0x20 [module]", with the " [<ffffffff81000000>]" of older kernels; arm64
# since 6.14 marks how each entry was found: " (C)" caller, " (P)" pc, " (L)" lr ...
_FRAME = re.compile(
    r"^\s*(?P<unreliable>\?\s+)?(?:\[<[0-9a-f]+>\]\s+)?"
    r"(?P<func>[\w.$]+)\+0x(?P<off>[0-9a-f]+)/0x(?P<size>[0-9a-f]+)"
    r"(?:\s+\[(?P<module>[\w-]+)(?:\s+[0-9a-f]+)?\])?(?:\s+\([A-Z^]+\))?\s*$"
)
# Where an oops happened, before its Call Trace: "RIP: 0010:func+0x11/0x20 [mod]" (x86),
# "pc : func+0x24/0x30" (arm64). User-mode RIPs ("RIP: 0033:0x47b7a0") do not match.
_FAULT_PC = re.compile(
    r"^\s*(?:RIP: [0-9a-f]{4}:|pc : )(?P<func>[\w.$]+)\+0x(?P<off>[0-9a-f]+)/0x(?P<size>[0-9a-f]+)"
    r"(?:\s+\[(?P<module>[\w-]+)(?:\s+[0-9a-f]+)?\])?\s*$"
)
_MARKER = re.compile(r"^\s*</?(?:TASK|IRQ|NMI|SOFTIRQ|EOE|EOI|#[A-Z]+)>\s*$")
_REGISTERS = re.compile(r"^\s*(?:[A-Z0-9]{2,8}:|Code:|pc :|lr :|sp :|x\d+ ?:)")
MAX_TRACE = 128


def read_log(opened: Opened) -> KernelLog:
    """Every record of the kernel log: drgn's printk helpers with DWARF, else capture.dmesg."""
    problems: list[str] = []
    if opened.dwarf:
        try:
            return _drgn_log(opened)
        except Exception as e:  # noqa: BLE001 - any failure: try the other reader
            problems.append(f"drgn could not read the kernel log: {e}")
    try:
        log = _dmesg_log(opened)
    except ImportError:
        problems.append("the kernel log needs DWARF or kdumpctl_py.capture.dmesg, "
                        "which this installation lacks")
        raise KdumpError("; ".join(problems)) from None
    log.warnings[:0] = problems
    return log


def _drgn_log(opened: Opened) -> KernelLog:
    from drgn.helpers.linux.printk import get_printk_records

    lines = [LogLine(r.timestamp, r.text.decode("utf-8", "backslashreplace"), r.level)
             for r in get_printk_records(opened.prog)]
    return KernelLog("drgn", lines, [])


class DrgnMemory:
    """capture.dmesg's KernelMemory over drgn: any dump format drgn opens, no DWARF needed."""

    def __init__(self, opened: Opened) -> None:
        self._prog = opened.prog
        self.vmcoreinfo = opened.vmcoreinfo
        platform = opened.prog.platform
        little = platform is None or bool(platform.flags & platform.flags.IS_LITTLE_ENDIAN)
        self.byteorder = "little" if little else "big"

    def read_virt(self, vaddr: int, size: int) -> bytes:
        import drgn

        try:
            data: bytes = self._prog.read(vaddr, size)
        except drgn.FaultError as e:
            from kdumpctl_py.capture.vmcore import MissingMemory

            raise MissingMemory(f"virtual address {vaddr:#x} is not in the dump ({e})") from None
        return data


def _dmesg_log(opened: Opened) -> KernelLog:
    from kdumpctl_py.capture import dmesg

    return from_records(dmesg.read_kernel_log(DrgnMemory(opened)))


def from_records(log: Any) -> KernelLog:
    """capture.dmesg's records as LogLines, its lost records as a warning."""
    lines = [LogLine(r.ts_nsec, r.text.decode("utf-8", "backslashreplace"), r.level)
             for r in log.records]
    warnings = list(log.warnings)
    if log.lost:
        warnings.append(f"{len(log.lost)} log records were lost before the crash")
    return KernelLog("kdumpctl-py", lines, warnings)


# ---------------------------------------------------------------------------
# What the log says about the crash (pure functions of the text)


def split_lines(lines: Sequence[LogLine]) -> list[LogLine]:
    """One LogLine per text line: a record may hold several (its continuation lines)."""
    out: list[LogLine] = []
    for ln in lines:
        parts = ln.text.split("\n")
        if len(parts) == 1:
            out.append(ln)
        else:
            out += [LogLine(ln.timestamp_ns, p, ln.level) for p in parts]
    return out


def find_panic(lines: Sequence[LogLine]) -> int | None:
    """Index of the line with the best-ranked panic message (the first such line)."""
    best: tuple[int, int] | None = None
    for i, ln in enumerate(lines):
        for rank, pattern in enumerate(_PANIC):
            if pattern.search(ln.text) and (best is None or rank < best[0]):
                best = (rank, i)
                break
    return None if best is None else best[1]


def panic_message(lines: Sequence[LogLine]) -> str | None:
    """The panic message, as drgn's panic_message() finds it in the log."""
    i = find_panic(lines)
    if i is None:
        return None
    for pattern in _PANIC:
        m = pattern.search(lines[i].text)
        if m:
            return m.group()
    return None


@dataclass(frozen=True)
class LoggedContext:
    """The crash as the kernel described it in its log."""

    cpu: int
    pid: int
    comm: str
    taint: str | None  # the letters after "Tainted: ", "" for "Not tainted"
    line: int  # index of the CPU: line
    timestamp_ns: int


def crash_context(lines: Sequence[LogLine], panic: int | None = None) -> LoggedContext | None:
    """The "CPU: N PID: P Comm: C" line that belongs to the panic.

    After a panic() call (sysrq, hung task, ...) dump_stack() prints it right after the
    panic line; after an oops it came before, in the oops report. So look a few lines
    ahead first, then back.
    """
    if panic is None:
        panic = find_panic(lines)
    if panic is None:
        return None
    order = list(range(panic, min(len(lines), panic + 12))) + list(range(panic - 1, -1, -1))
    for i in order:
        m = _CPU_LINE.search(lines[i].text)
        if m:
            taint = m.group("taint")
            return LoggedContext(int(m.group("cpu")), int(m.group("pid")), m.group("comm"),
                                 "" if taint is None else taint.rstrip(), i,
                                 lines[i].timestamp_ns)
    return None


def call_trace(lines: Sequence[LogLine], start: int) -> list[Frame]:
    """The first "Call Trace:" at or after line `start`, as frames; "?" entries (words on
    the stack that the unwinder did not vouch for) are kept with reliable=False. An oops
    names the faulting function before the trace (RIP/pc): that becomes frame 0."""
    from kdumpctl_py.analyse.model import Frame

    fault = None
    for i in range(start, min(len(lines), start + 64)):
        if _TRACE_START.match(lines[i].text):
            break
        fault = fault or _FAULT_PC.match(lines[i].text)
    else:
        return []
    frames: list[Frame] = []
    if fault is not None:
        frames.append(Frame(0, None, fault.group("func"), symbol=fault.group("func"),
                            offset=int(fault.group("off"), 16), size=int(fault.group("size"), 16),
                            module=fault.group("module"), context="exception"))
    for ln in lines[i + 1:]:
        m = _FRAME.match(ln.text)
        if m:
            if (len(frames) == 1 and fault is not None and m.group("func") == frames[0].function
                    and int(m.group("off"), 16) == frames[0].offset):
                frames.clear()  # arm64's trace starts at the faulting pc itself
            frames.append(Frame(
                index=len(frames),
                pc=None,
                function=m.group("func"),
                symbol=m.group("func"),
                offset=int(m.group("off"), 16),
                size=int(m.group("size"), 16),
                module=m.group("module"),
                reliable=m.group("unreliable") is None,
            ))
            if len(frames) >= MAX_TRACE:
                break
        elif _MARKER.match(ln.text) or _REGISTERS.match(ln.text):
            continue
        else:
            break
    return frames
