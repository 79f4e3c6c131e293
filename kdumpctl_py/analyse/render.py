"""A Report as text for people (crash's sys, bt and log in one, 80 columns) or as JSON.

The JSON is built field by field here, not dumped from the dataclasses, so a
renamed attribute can never change the documented schema (docs/analyse-json.md)
by accident. Addresses are hex strings ("0xffffffff81000000"): JSON numbers
lose precision above 2^53 in many readers.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

from kdumpctl_py.analyse.kernlog import LogLine
from kdumpctl_py.analyse.model import (
    CpuState,
    DebugInfo,
    Frame,
    Log,
    Memory,
    Module,
    Report,
    Taint,
    TaskRef,
    TaskSummary,
)
from kdumpctl_py.analyse.signature import Signature
from kdumpctl_py.units import format_bytes

WIDTH = 80
LABEL = 12  # width of crash sys's right-aligned labels ("LOAD AVERAGE")
SOURCE_COLUMN = 40
MAX_BLOCKED_TEXT = 20  # D-state backtraces in the text; --json has them all
STATE_NAMES = {
    "R": "running", "S": "sleeping", "D": "uninterruptible", "T": "stopped",
    "t": "traced", "X": "dead", "Z": "zombie", "P": "parked", "I": "idle",
}


# ---------------------------------------------------------------------------
# JSON


def _hex(value: int | None) -> str | None:
    return None if value is None else f"{value:#x}"


def frame_json(f: Frame) -> dict[str, Any]:
    return {
        "index": f.index,
        "pc": _hex(f.pc),
        "function": f.function,
        "symbol": f.symbol,
        "offset": f.offset,
        "size": f.size,
        "module": f.module,
        "file": f.file,
        "line": f.line,
        "inline": f.inline,
        "reliable": f.reliable,
        "context": f.context,
    }


def task_json(t: TaskRef | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {"pid": t.pid, "comm": t.comm, "cpu": t.cpu, "state": t.state,
            "task": _hex(t.task), "source": t.source}


def cpu_json(c: CpuState) -> dict[str, Any]:
    return {"cpu": c.cpu, "task": task_json(c.task), "crashed": c.crashed, "idle": c.idle,
            "backtrace": [frame_json(f) for f in c.backtrace], "error": c.error}


def tasks_json(t: TaskSummary | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {
        "total": t.total,
        "by_state": dict(t.by_state),
        "blocked": [{"task": task_json(b.task), "backtrace": [frame_json(f) for f in b.backtrace],
                     "error": b.error} for b in t.blocked],
    }


def memory_json(m: Memory | None) -> dict[str, Any] | None:
    if m is None:
        return None
    names = ("total", "free", "used", "buffers", "cached", "slab", "huge_total", "huge_free",
             "swap_total", "swap_free", "commit_limit", "committed")
    return {"page_size": m.page_size, **{f"{n}_pages": getattr(m, n) for n in names}}


def module_json(m: Module) -> dict[str, Any]:
    return {"name": m.name, "address": _hex(m.address), "size": m.size, "taints": m.taints,
            "debuginfo": m.debuginfo}


def taint_json(t: Taint | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {"flags": t.flags, "mask": t.mask, "meanings": list(t.meanings)}


def signature_json(s: Signature | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {"id": s.id, "version": s.version, "kind": s.kind, "message": s.message,
            "frames": list(s.frames)}


def debuginfo_json(d: DebugInfo) -> dict[str, Any]:
    return {"dwarf": d.dwarf, "vmlinux": d.vmlinux, "origin": d.origin, "build_id": d.build_id,
            "verified": d.verified, "kallsyms": d.kallsyms,
            "missing_modules": list(d.missing_modules), "notes": list(d.notes)}


def log_json(log: Log | None) -> dict[str, Any] | None:
    if log is None:
        return None
    return {
        "source": log.source,
        "total": log.total,
        "tail": [{"timestamp_ns": ln.timestamp_ns, "level": ln.level, "text": ln.text}
                 for ln in log.tail],
        "warnings": list(log.warnings),
    }


def to_json(r: Report) -> dict[str, Any]:
    return {
        "schema": r.schema,
        "tool": r.tool,
        "drgn_version": r.drgn_version,
        "vmcore": r.vmcore,
        "format": r.format,
        "save": r.save,
        "debuginfo": debuginfo_json(r.debuginfo),
        "arch": r.arch,
        "release": r.release,
        "version": r.version,
        "machine": r.machine,
        "nodename": r.nodename,
        "build_id": r.build_id,
        "date": r.date,
        "uptime_seconds": r.uptime_seconds,
        "load_average": r.load_average,
        "cpus_present": r.cpus_present,
        "cpus_online": r.cpus_online,
        "task_count": r.task_count,
        "panic_message": r.panic_message,
        "signature": signature_json(r.signature),
        "taint": taint_json(r.taint),
        "crashed_thread": task_json(r.crashed_thread),
        "backtrace": [frame_json(f) for f in r.backtrace],
        "backtrace_source": r.backtrace_source,
        "cpus": [cpu_json(c) for c in r.cpus],
        "tasks": tasks_json(r.tasks),
        "memory": memory_json(r.memory),
        "modules": None if r.modules is None else [module_json(m) for m in r.modules],
        "log": log_json(r.log),
        "missing": list(r.missing),
        "warnings": list(r.warnings),
    }


# ---------------------------------------------------------------------------
# Text


def wrap(text: str, indent: int, first: str = "", width: int = WIDTH) -> list[str]:
    """`first` + text wrapped at `width`, continuation lines indented by `indent`; broken
    only at spaces: a word longer than the line (a path, a symbol) overflows, never split."""
    lines = textwrap.wrap(text, width=width, initial_indent=first,
                          subsequent_indent=" " * indent, break_long_words=False,
                          break_on_hyphens=False, drop_whitespace=True) or [first.rstrip()]
    return lines


def field(label: str, value: str) -> list[str]:
    return wrap(value, LABEL + 2, f"{label:>{LABEL}}: ")


def wrap_path(path: str, first: str, indent: int, width: int = WIDTH) -> list[str]:
    """A long path broken after a "/" rather than inside a name; a name longer than the
    line overflows it."""
    lines: list[str] = []
    line, used = first, False
    for part in re.findall(r"[^/]*/|[^/]+$", path):
        if used and len(line) + len(part) > width:
            lines.append(line)
            line, used = " " * indent, False
        line += part
        used = True
    lines.append(line)
    return lines


def short_path(path: str) -> str:
    """Source paths relative to the kernel tree, as people quote them."""
    m = re.match(r"^/.*?/linux-[^/]+/(.+)$", path)
    return m.group(1) if m else path


def duration(seconds: float) -> str:
    """crash's UPTIME: [D days, ]HH:MM:SS."""
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    clock = f"{hours:02d}:{minutes:02d}:{s:02d}"
    if days:
        return f"{days} day{'s' if days != 1 else ''}, {clock}"
    return clock


def call(f: Frame) -> str:
    """How a frame reads in a backtrace: func+0xoff/0xsize [module], as the kernel prints."""
    if f.function is None:
        name = _hex(f.pc) or "?"
        if f.context == "user":
            name += " (user space)"
    elif f.inline:
        name = f"{f.function} (inlined)"
    elif f.symbol is not None and f.offset is not None:
        name = f"{f.symbol}+{f.offset:#x}"
        if f.size:
            name += f"/{f.size:#x}"
        if f.function != f.symbol:
            name = f"{f.function} ({name})"
    else:
        name = f.function
    if f.module:
        name += f" [{f.module}]"
    if not f.reliable:
        name = "? " + name
    return name


def frame_lines(f: Frame) -> list[str]:
    prefix = f" #{f.index:<2} "
    left = prefix + call(f)
    if f.file is None:
        return wrap(call(f), 5, prefix)
    where = f"{short_path(f.file)}:{f.line}" if f.line else short_path(f.file)
    if len(left) < SOURCE_COLUMN - 1 and SOURCE_COLUMN + len(where) <= WIDTH:
        return [f"{left:<{SOURCE_COLUMN}}{where}"]
    if len(left) + 2 + len(where) <= WIDTH:
        return [f"{left}  {where}"]
    return wrap(call(f), 5, prefix) + wrap(where, 5, " " * 5)


def backtrace_lines(frames: list[Frame]) -> list[str]:
    out: list[str] = []
    context = frames[0].context if frames else None
    for f in frames:
        if f.context != context and context not in (None, "task", "user", "registers", "stack"):
            out.append(f"     --- <{context} stack> ---")
        context = f.context
        out += frame_lines(f)
    return out


def _task_words(t: TaskRef, cpu: bool = True) -> str:
    comm = f' "{t.comm}"' if t.comm is not None else ""
    where = f" on CPU {t.cpu}" if cpu and t.cpu is not None else ""
    return f"PID {t.pid}{comm}{where}"


def _pct(part: int | None, whole: int | None) -> str:
    if part is None or not whole:
        return ""
    return f"{100 * part / whole:3.0f}%"


def memory_lines(m: Memory) -> list[str]:
    out = [f"{'':>12}  {'PAGES':>10}  {'TOTAL':>10}  PERCENTAGE"]

    def row(label: str, pages: int | None, of: int | None = None, what: str = "") -> None:
        if pages is None:
            return
        pct = f"{_pct(pages, of)} of {what}" if of else "----"
        out.append(f"{label:>12}  {pages:>10}  {format_bytes(pages * m.page_size):>10}  {pct}")

    row("TOTAL MEM", m.total)
    for label, value in (("FREE", m.free), ("USED", m.used), ("BUFFERS", m.buffers),
                         ("CACHED", m.cached), ("SLAB", m.slab)):
        row(label, value, m.total, "TOTAL MEM")
    if m.huge_total:
        row("TOTAL HUGE", m.huge_total)
        row("HUGE FREE", m.huge_free, m.huge_total, "TOTAL HUGE")
    if m.swap_total is not None:
        row("TOTAL SWAP", m.swap_total)
        if m.swap_total:
            row("SWAP USED", m.swap_total - (m.swap_free or 0), m.swap_total, "TOTAL SWAP")
            row("SWAP FREE", m.swap_free, m.swap_total, "TOTAL SWAP")
    row("COMMIT LIMIT", m.commit_limit)
    row("COMMITTED", m.committed, m.commit_limit, "TOTAL LIMIT")
    return out


def module_lines(mods: list[Module]) -> list[str]:
    """crash's `mod`: a name longer than the column gets a line of its own."""
    width = min(max([len(m.name) for m in mods] + [4]), 24)
    out = [f"{'NAME':<{width}}  {'BASE':<18}  {'SIZE':>9}  TAINTS  DWARF"]
    for m in mods:
        base = _hex(m.address) or "?"
        size = format_bytes(m.size) if m.size is not None else "?"
        debug = {True: "yes", False: "no", None: "?"}[m.debuginfo]
        name = m.name
        if len(name) > width:
            out.append(name)
            name = ""
        out.append(f"{name:<{width}}  {base:<18}  {size:>9}  {m.taints or '-':<6}  {debug}")
    return out


def log_lines(lines: list[LogLine]) -> list[str]:
    out: list[str] = []
    for ln in lines:
        seconds, ns = divmod(ln.timestamp_ns, 1_000_000_000)
        stamp = f"[{seconds:5d}.{ns // 1000:06d}] "
        text = ln.text.expandtabs(8)
        if len(stamp) + len(text) <= WIDTH:
            out.append(stamp + text)
        else:
            out += wrap(text, len(stamp), stamp)
    return out


def heading(title: str) -> list[str]:
    return ["", title]


def _kernel_field(d: DebugInfo) -> list[str]:
    if d.dwarf and d.vmlinux:
        out = wrap_path(d.vmlinux, f"{'KERNEL':>{LABEL}}: ", LABEL + 2)
        if d.build_id:
            ok = "matches the dump" if d.verified else "not verified"
            out += wrap(f"build ID {d.build_id} ({ok})", LABEL + 2, " " * (LABEL + 2))
        return out
    what = "kallsyms from the dump only, no DWARF" if d.kallsyms else "no symbols, no DWARF"
    out = field("KERNEL", what)
    if d.build_id:
        out += wrap(f"build ID {d.build_id}", LABEL + 2, " " * (LABEL + 2))
    return out


def render_text(r: Report) -> str:
    """crash's `sys`, `bt` and `log` in one 80-column report, section by section."""
    out = _summary(r) + _crashed(r)
    for text in r.missing:
        out += heading("MISSING") if text is r.missing[0] else []
        out += wrap(text, 2, "- ")
    for text in r.debuginfo.notes:
        out += wrap(text, 2, "note: ")
    out += _backtrace(r) + _each_cpu(r) + _tasks(r)
    if r.memory is not None:
        out += heading("MEMORY (as crash's kmem -i)")
        out += memory_lines(r.memory)
    if r.modules is not None:
        out += heading(f"MODULES ({len(r.modules)})")
        out += module_lines(r.modules) if r.modules else ["  none loaded"]
    if r.log is not None:
        out += heading(f"KERNEL LOG (last {len(r.log.tail)} of {r.log.total} lines)")
        out += log_lines(r.log.tail)
        for w in r.log.warnings:
            out += wrap(w, 2, "note: ")
    if r.warnings:
        out += heading("WARNINGS (parts of the report that could not be read)")
        for w in r.warnings:
            out += wrap(w, 2, "- ")
    return "\n".join(out) + "\n"


def _summary(r: Report) -> list[str]:
    """crash's `sys`: the dump, the machine and the kernel, one field a line."""
    out = _kernel_field(r.debuginfo)
    out += wrap_path(f"{r.vmcore}  [{r.format}]", f"{'DUMPFILE':>{LABEL}}: ", LABEL + 2)
    if r.save:
        from kdumpctl_py.capture.record import summary

        out += field("SAVED", summary(r.save))
    if r.cpus_present is not None:
        offline = (r.cpus_present - r.cpus_online) if r.cpus_online is not None else 0
        out += field("CPUS", f"{r.cpus_present}" + (f" [OFFLINE: {offline}]" if offline else ""))
    if r.date:
        out += field("DATE", r.date.replace("T", " ").replace("Z", " UTC"))
    if r.uptime_seconds is not None:
        note = "" if r.debuginfo.dwarf else "  (time of the panic message)"
        out += field("UPTIME", duration(r.uptime_seconds) + note)
    if r.load_average is not None:
        out += field("LOAD AVERAGE", ", ".join(f"{v:.2f}" for v in r.load_average))
    if r.task_count is not None:
        out += field("TASKS", str(r.task_count))
    return out + _kernel(r)


def _kernel(r: Report) -> list[str]:
    out = field("NODENAME", r.nodename) if r.nodename else []
    out += field("RELEASE", r.release or "unknown")
    if r.version:
        out += field("VERSION", r.version)
    out += field("MACHINE", r.machine or r.arch or "unknown")
    if r.memory is not None and r.memory.total is not None:
        out += field("MEMORY", format_bytes(r.memory.total * r.memory.page_size))
    return out


def _crashed(r: Report) -> list[str]:
    """The panic, its signature and taint, and the task that crashed."""
    out = field("PANIC", f'"{r.panic_message}"' if r.panic_message else "none found")
    if r.signature is not None:
        out += field("SIGNATURE", f"{r.signature.id} ({r.signature.kind}: "
                     f"{' < '.join(r.signature.frames) or 'no frames'})")
    if r.taint is not None:
        out += field("TAINTED", "no" if not r.taint.flags else r.taint.flags.rstrip())
        for meaning in r.taint.meanings:
            out += wrap(meaning, LABEL + 4, " " * (LABEL + 2))
    t = r.crashed_thread
    if t is not None:
        out += field("PID", str(t.pid))
        out += field("COMMAND", f'"{t.comm}"' if t.comm is not None else "unknown")
        out += field("CPU", str(t.cpu) if t.cpu is not None else "unknown")
        if t.state:
            out += field("STATE", f"{t.state} (PANIC)")
    return out


def _backtrace(r: Report) -> list[str]:
    t = r.crashed_thread
    if t is None and not r.backtrace:
        return []
    source = {"dwarf": "", "kernel log": ", as the kernel logged it",
              "stack scan": ", kernel text addresses found on its stack"}
    what = _task_words(t) if t is not None else "the crashing task"
    out = heading(f"BACKTRACE of {what}{source.get(r.backtrace_source or '', '')}")
    return out + (backtrace_lines(r.backtrace) if r.backtrace else ["  (none)"])


def _each_cpu(r: Report) -> list[str]:
    """crash's `bt -a`: each CPU's task; the crashing one's DWARF trace is not repeated."""
    if not r.cpus:
        return []
    out = heading("ACTIVE TASK ON EACH CPU")
    for c in r.cpus:
        who = _task_words(c.task, cpu=False) if c.task is not None else "unknown task"
        tag = " (idle)" if c.idle else " (crashed)" if c.crashed else ""
        out.append(f"CPU {c.cpu}: {who}{tag}")
        if c.crashed and r.backtrace_source == "dwarf":
            out.append("     (the backtrace above)")
        elif c.error:
            out += wrap(f"unwinding failed: {c.error}", 5, " " * 5)
        else:
            out += backtrace_lines(c.backtrace)
    return out


def _tasks(r: Report) -> list[str]:
    """Tasks by state, and the backtraces of those in D state."""
    if r.tasks is None:
        return []
    out = heading(f"TASKS BY STATE ({r.tasks.total} tasks, not counting idle)")
    counts = ", ".join(f"{s} {STATE_NAMES.get(s, '?')}: {n}"
                       for s, n in r.tasks.by_state.items())
    out += wrap(counts, 2, "  ")
    if not r.tasks.blocked:
        return out + ["  no task in D state (uninterruptible sleep)"]
    out += heading(f"TASKS IN D STATE ({len(r.tasks.blocked)})")
    for b in r.tasks.blocked[:MAX_BLOCKED_TEXT]:
        out.append(_task_words(b.task))
        out += backtrace_lines(b.backtrace) if not b.error else wrap(b.error, 5, " " * 5)
    if len(r.tasks.blocked) > MAX_BLOCKED_TEXT:
        out.append(f"... and {len(r.tasks.blocked) - MAX_BLOCKED_TEXT} more "
                   "(--json has them all)")
    return out
