"""Tasks and their backtraces: crash's `bt`, `bt -a` and `ps` by state.

The crashing task is drgn's crashed_thread() (the CPU whose PRSTATUS note
says it panicked). Each CPU's active task is cpu_curr(); drgn unwinds a task
that was running from its CPU's saved registers, any other from the
registers it saved when it was switched out. Stacks are split by context
(task, IRQ, NMI, ...) with drgn.helpers.linux.stack where it knows the arch.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from kdumpctl_py.analyse.model import BlockedTask, CpuState, Frame, TaskRef, TaskSummary

if TYPE_CHECKING:
    from collections.abc import Sequence

    import drgn

    from kdumpctl_py.analyse.prstatus import CpuRegs

# Longest backtrace kept; a corrupt stack can otherwise unwind for a long time.
MAX_FRAMES = 64


def task_ref(task: drgn.Object) -> TaskRef:
    from drgn.helpers.linux.sched import task_cpu, task_state_to_char

    return TaskRef(
        pid=task.pid.value_(),
        comm=task.comm.string_().decode("utf-8", "backslashreplace"),
        cpu=task_cpu(task),
        state=task_state_to_char(task),
        task=task.value_(),
    )


def frame_of(prog: drgn.Program, index: int, frame: drgn.StackFrame,
             context: str | None) -> Frame:
    """One drgn stack frame as a Frame: function, symbol+offset/size, module, file:line."""
    from drgn import MainModule

    from kdumpctl_py.analyse.symsize import kernel_size

    pc = frame.pc
    symbol = offset = size = module = file = line = None
    try:
        sym = frame.symbol()
        symbol, offset, size = sym.name, pc - sym.address, kernel_size(prog, sym)
    except LookupError:
        pass
    try:
        # A return address may lie past the end of a call to a noreturn function.
        mod = prog.module(pc - int(pc > 0 and not frame.interrupted))
        if not isinstance(mod, MainModule):
            module = mod.name
    except LookupError:
        pass
    try:
        filename, lineno, _column = frame.source()
        file, line = filename, lineno
    except LookupError:
        pass
    return Frame(
        index=index,
        pc=pc,
        function=frame.function_name or symbol,
        symbol=symbol,
        offset=offset,
        size=size,
        module=module,
        file=file,
        line=line,
        inline=frame.is_inline,
        context=context,
    )


def _segments(prog: drgn.Program, task: Any) -> list[tuple[str | None, list[drgn.StackFrame]]]:
    """The task's stack frames, grouped by the context they ran in where drgn can tell."""
    try:
        from drgn.helpers.linux.stack import kernel_stack_trace

        trace = kernel_stack_trace(prog, task)
        return [(seg.kind.name.lower(), list(seg.frames)) for seg in trace.segments]
    except (ImportError, LookupError, NotImplementedError, ValueError, AttributeError,
            TypeError):  # TypeError: registers, not a task
        return [(None, list(prog.stack_trace(task)))]


def backtrace(prog: drgn.Program, task: Any) -> list[Frame]:
    frames: list[Frame] = []
    for context, seg in _segments(prog, task):
        for frame in seg:
            if len(frames) >= MAX_FRAMES:
                return frames
            frames.append(frame_of(prog, len(frames), frame, context))
    return frames


def crashed(prog: drgn.Program) -> tuple[TaskRef, list[Frame] | None] | None:
    """The task that panicked and its backtrace, or None (a dump taken without a panic);
    the backtrace is None where drgn has no unwinder for the architecture (riscv64)."""
    try:
        thread = prog.crashed_thread()
    except ValueError:
        return None
    task = thread.object
    try:
        return task_ref(task), backtrace(prog, task)
    except NotImplementedError:
        return task_ref(task), None


def cpus(prog: drgn.Program, crashed: TaskRef | None,
         notes: Sequence[CpuRegs] = ()) -> list[CpuState]:
    """Each CPU's active task (the idle task on an idle CPU) and its backtrace.

    drgn unwinds an online CPU's task from its PRSTATUS note. arm64's crash path
    marks the CPUs it stops offline after they saved their registers, so a CPU
    with a note that is not online is unwound from that note, as crash does.
    """
    from drgn.helpers.linux.cpumask import for_each_online_cpu
    from drgn.helpers.linux.sched import cpu_curr

    online = list(for_each_online_cpu(prog))
    stopped = {n.cpu: n for n in notes if n.cpu not in online and n.regs}
    out = []
    for cpu in sorted({*online, *stopped}):
        task = cpu_curr(prog, cpu)
        ref = task_ref(task)
        try:
            note = stopped.get(cpu)
            frames = backtrace(prog, task if note is None else _pt_regs(prog, note))
            error = None
        except Exception as e:  # noqa: BLE001 - one CPU's unwinding failure is not fatal
            frames, error = [], f"{type(e).__name__}: {e}"
        hit = crashed is not None and (crashed.pid, crashed.cpu) == (ref.pid, cpu)
        out.append(CpuState(cpu, ref, crashed=hit, idle=ref.pid == 0, backtrace=frames,
                            error=error))
    return out


def _pt_regs(prog: drgn.Program, note: CpuRegs) -> drgn.Object:
    """A struct pt_regs holding a PRSTATUS note's registers: pt_regs begins with the same
    words as elf_gregset_t on x86_64 (user_regs_struct) and arm64 (user_pt_regs)."""
    from drgn import Object, sizeof

    kind = prog.type("struct pt_regs")
    size = sizeof(kind)
    return Object.from_bytes_(prog, kind, note.regs[:size].ljust(size, b"\0"))


def summary(prog: drgn.Program) -> TaskSummary:
    """How many tasks are in each state, and the backtrace of each task in D state."""
    from drgn.helpers.linux.pid import for_each_task
    from drgn.helpers.linux.sched import task_state_to_char

    by_state: Counter[str] = Counter()
    blocked = []
    total = 0
    for task in for_each_task(prog):
        total += 1
        state = task_state_to_char(task)
        by_state[state] += 1
        if state == "D":
            ref = task_ref(task)
            try:
                blocked.append(BlockedTask(ref, backtrace(prog, task)))
            except Exception as e:  # noqa: BLE001
                blocked.append(BlockedTask(ref, [], f"{type(e).__name__}: {e}"))
    return TaskSummary(total, dict(sorted(by_state.items())), blocked)
