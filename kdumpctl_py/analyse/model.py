"""What `kdumpctl-py analyse` says about a dump, as data: the `Report` and its parts.

`report.gather()` fills it, the gatherers (tasks, memory, modules, taint, nodwarf,
kernlog) each make one part, and `render` prints it; they all import these
classes from here, so none of them imports the module that calls them.
The JSON form of a Report is documented in docs/analyse-json.md; SCHEMA is its
version, raised on any change that could break a reader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from kdumpctl_py.analyse.kernlog import LogLine
    from kdumpctl_py.analyse.signature import Signature

# dwarf: drgn unwound the saved registers; kernel log: the Call Trace the kernel
# printed; stack scan: kernel text addresses found on the crashing CPU's stack.
BacktraceSource = Literal["dwarf", "kernel log", "stack scan"]
SCHEMA = 1
T = TypeVar("T")


@dataclass(frozen=True)
class Frame:
    index: int
    pc: int | None  # None when the frame comes from the kernel log's text
    function: str | None  # the source function (inlined ones too), else the symbol
    symbol: str | None = None  # the ELF/kallsyms symbol holding pc
    offset: int | None = None  # pc - symbol address
    size: int | None = None  # symbol size
    module: str | None = None  # None for the kernel image
    file: str | None = None
    line: int | None = None
    inline: bool = False
    reliable: bool = True  # False: a "?" entry of the kernel's own trace
    context: str | None = None  # stack kind: task, irq, softirq, nmi, exception, user


@dataclass(frozen=True)
class TaskRef:
    pid: int
    comm: str | None  # None where only registers are known (no DWARF)
    cpu: int | None
    state: str | None = None  # task_state_to_char(): R S D T t X Z P I
    task: int | None = None  # address of struct task_struct
    source: str = "drgn"  # or "kernel log", "registers"


@dataclass(frozen=True)
class CpuState:
    cpu: int
    task: TaskRef | None
    crashed: bool = False
    idle: bool = False
    backtrace: list[Frame] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class BlockedTask:
    task: TaskRef
    backtrace: list[Frame] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class TaskSummary:
    total: int
    by_state: dict[str, int]
    blocked: list[BlockedTask]  # tasks in D state, with their backtraces


@dataclass(frozen=True)
class Memory:
    """crash's `kmem -i`, in pages of page_size bytes; None where the kernel lacks it."""

    page_size: int
    total: int | None = None
    free: int | None = None
    used: int | None = None
    buffers: int | None = None
    cached: int | None = None
    slab: int | None = None
    huge_total: int | None = None
    huge_free: int | None = None
    swap_total: int | None = None
    swap_free: int | None = None
    commit_limit: int | None = None
    committed: int | None = None


@dataclass(frozen=True)
class Module:
    name: str
    address: int | None
    size: int | None
    taints: str = ""
    debuginfo: bool | None = None


@dataclass(frozen=True)
class Taint:
    flags: str  # the letters as the kernel prints them after "Tainted: "; "" if none
    mask: int | None = None
    meanings: list[str] = field(default_factory=list)  # "O: externally-built module loaded"


@dataclass(frozen=True)
class DebugInfo:
    dwarf: bool
    vmlinux: str | None
    origin: str | None  # --vmlinux, kdumpctl-py cache, Debian -dbg layout, drgn's search
    build_id: str | None  # the dump's, from VMCOREINFO
    verified: bool  # the vmlinux's build ID equals the dump's
    kallsyms: bool  # kernel symbols from the dump's kallsyms
    missing_modules: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Log:
    source: str
    total: int
    tail: list[LogLine]
    warnings: list[str] = field(default_factory=list)


@dataclass
class Report:
    vmcore: str
    format: str
    debuginfo: DebugInfo
    arch: str | None = None
    release: str | None = None
    version: str | None = None
    machine: str | None = None
    nodename: str | None = None
    build_id: str | None = None
    date: str | None = None  # wall-clock time of the crash, UTC, ISO 8601
    uptime_seconds: float | None = None
    load_average: list[float] | None = None
    cpus_present: int | None = None
    cpus_online: int | None = None
    task_count: int | None = None  # tasks and idle tasks, as crash's TASKS
    panic_message: str | None = None
    taint: Taint | None = None
    crashed_thread: TaskRef | None = None
    backtrace: list[Frame] = field(default_factory=list)
    backtrace_source: BacktraceSource | None = None
    cpus: list[CpuState] = field(default_factory=list)
    tasks: TaskSummary | None = None
    memory: Memory | None = None
    modules: list[Module] | None = None
    log: Log | None = None
    missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    save: dict[str, Any] | None = None  # the save.json beside the dump: how it was saved
    signature: Signature | None = None  # what identifies the bug (analyse.signature)
    schema: int = SCHEMA
    tool: str = ""
    drgn_version: str | None = None

    def attempt(self, what: str, fn: Callable[[], T]) -> T | None:
        """Run one gatherer; a failure becomes a warning instead of ending the report."""
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - any failure of one part is reported, not fatal
            self.warnings.append(f"{what}: {type(e).__name__}: {e}")
            return None
