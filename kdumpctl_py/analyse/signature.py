"""The crash signature: what identifies a bug, not a boot, as a short stable hash.

Two crashes of one bug on different machines, architectures, kernel versions
and uptimes must hash the same; different bugs differently. So the signature
keeps only the kind of crash, the cause's message with every number, address,
pid and CPU taken out, and the top frames of the crashing task's backtrace as
bare function names, after the frames every crash shares (panic, crash_kexec,
die, the fault handlers) are dropped. The rules are docs/crash-signature.md;
VERSION is raised whenever they change, since every stored signature then
changes too. Pure functions of the text and frames: tested on real panics.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from kdumpctl_py.analyse.kernlog import PANIC_PATTERNS
from kdumpctl_py.analyse.model import Frame

VERSION = 1
TOP_FRAMES = 3

# The lines that say what went wrong first, before a panic that only follows from them
# ("Kernel panic - not syncing: Fatal exception"): the oops, BUG and WARNING reports.
_CAUSES = (
    ("oops", re.compile(PANIC_PATTERNS[1])),
    ("bug", re.compile(PANIC_PATTERNS[2])),
    ("oops", re.compile(r"Internal error: Oops.*|" + PANIC_PATTERNS[3])),
    ("warning", re.compile(r"WARNING: CPU: \d+ PID: \d+ at .*")),
    ("lockup", re.compile(r"BUG: soft lockup.*|Watchdog detected hard LOCKUP.*")),
)
_PANIC = re.compile(PANIC_PATTERNS[0])
# Panics that only follow from a report printed before them.
_CONSEQUENCE = re.compile(r"Fatal exception|panic_on_warn|softlockup|hard LOCKUP|Oops")
REPORT_SPAN = 200  # lines an oops report may take before its panic (registers, code, trace)
REPORT_GAP = 12  # lines between two lines of one report's head (BUG:, #PF:, Oops:)
_PANIC_PREFIX = re.compile(r"^Kernel panic - not syncing: ")
# The same fault worded by each architecture: x86's first, arm64's second.
_SAME_FAULT = (
    (re.compile(r"^(?:BUG: kernel|Unable to handle kernel) NULL pointer dereference\b.*"),
     "kernel NULL pointer dereference"),
    (re.compile(r"^(?:BUG: unable to handle page fault for address|"
                r"Unable to handle kernel paging request at virtual address)\b.*"),
     "unable to handle kernel paging request"),
)
_WARNING = re.compile(r"^WARNING: CPU: \d+ PID: \d+ at (\S+?)(?::\d+)? (\S+?)(?:\+0x\S+)?(?: .*)?$")
_NUMBERS = (
    (re.compile(r"\[\s*\d+\.\d+\]\s*"), ""),  # a printk timestamp
    (re.compile(r"\[[^\]\s]*:\d+\]"), "[TASK]"),  # "[comm:pid]" of the lockup reports
    (re.compile(r"\b(?:CPU#?|cpu#?)\s*\d+"), "CPU"),
    (re.compile(r"\b(?:PID|pid):?\s*\d+"), "PID"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "HEX"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b"), "HEX"),
    (re.compile(r"\d+"), "N"),
)
# Frames every crash of a kind passes through: the panic and kdump path, the printing of
# the trace, the fault and trap handlers of x86_64 and arm64, WARN's machinery.
PLUMBING = frozenset("""
    panic vpanic nmi_panic __crash_kexec crash_kexec crash_setup_regs machine_crash_shutdown
    crash_save_cpu dump_stack dump_stack_lvl show_stack dump_backtrace show_trace_log_lvl
    _printk printk vprintk vprintk_emit
    die __die __die_body die_kernel_fault oops_end oops_begin make_task_dead
    page_fault_oops kernelmode_fixup_or_oops no_context __bad_area_nosemaphore
    bad_area_nosemaphore do_user_addr_fault exc_page_fault asm_exc_page_fault
    handle_page_fault do_trap do_error_trap handle_invalid_op handle_bug exc_invalid_op
    asm_exc_invalid_op do_kernel_fault __do_kernel_fault do_page_fault
    do_translation_fault do_mem_abort el1_abort el1_da el1h_64_sync_handler el1h_64_sync
    arm64_notify_die bug_handler call_break_hook brk_handler do_debug_exception el1_dbg
    el1_brk64 __warn warn_slowpath_fmt report_bug check_panic_on_warn
""".split())


@dataclass(frozen=True)
class Signature:
    id: str  # 16 hex digits of sha256 over the parts below
    kind: str  # panic, oops, bug, warning, lockup
    message: str  # the cause's message, normalised
    frames: tuple[str, ...]  # the top frames' function names
    version: int = VERSION


def cause(lines: Sequence[str], panic_message: str | None) -> tuple[str, str] | None:
    """(kind, text) of what went wrong first. A panic that only follows from an earlier
    report ("Fatal exception", panic_on_warn, a lockup) is caused by that report: the
    oops, BUG, WARNING or lockup line nearest before it, or the first line of the report
    it opens. Any other panic ("sysrq triggered crash", "Attempted to kill init!") is its
    own cause. Without a panic line, the last report in the log."""
    panics = ((i, m.group()) for i, t in enumerate(lines) if (m := _PANIC.search(t)))
    panic_at, panic = next(panics, (len(lines), None))
    if panic is not None and not _CONSEQUENCE.search(panic):
        return "panic", panic
    end = panic_at
    found: tuple[int, str, str] | None = None
    for i in range(end - 1, max(-1, end - 1 - REPORT_SPAN), -1):
        hit = _cause_at(lines[i])
        if hit and (found is None or found[0] - i <= REPORT_GAP):
            found = (i, *hit)
        elif found is not None and found[0] - i > REPORT_GAP:
            break
    if found is not None:
        return found[1], found[2]
    if panic_message:
        return "panic", panic_message
    return None


def _cause_at(text: str) -> tuple[str, str] | None:
    for kind, pattern in _CAUSES:
        m = pattern.search(text)
        if m:
            return kind, m.group()
    return None


def normalise_message(text: str) -> str:
    """The message without what differs between boots: numbers, addresses, pids, CPUs."""
    text = _PANIC_PREFIX.sub("", text.strip())
    for pattern, fault in _SAME_FAULT:
        if pattern.match(text):
            return fault
    m = _WARNING.match(text)
    if m:  # the source line moves between kernel versions; the file and function do not
        return f"WARNING at {m.group(1)} {base_name(m.group(2))}"
    text = re.sub(r"^(kernel BUG at [^:]+):\d+!?", r"\1", text)
    for pattern, replacement in _NUMBERS:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


def base_name(function: str) -> str:
    """The function a compiler-made symbol was cut from: `__handle_sysrq.cold`,
    `el0_svc_common.constprop.0`, `foo.isra.0`, `bar.part.1` name the function before
    the first dot."""
    return function.split(".", 1)[0]


def top_frames(frames: Sequence[Frame], count: int = TOP_FRAMES) -> tuple[str, ...]:
    """The first `count` frames that say where the bug is: reliable, not inlined (the
    kernel's own trace never shows inlined calls, so the DWARF trace must not count
    them), named, in the kernel, not plumbing. A caller frame at +0x0 is a return
    address past a call that ended its function (arm64 without kallsyms): its real
    function is not known, so it is left out."""
    out: list[str] = []
    for f in frames:
        name = f.symbol or f.function
        if (not f.reliable or f.inline or name is None or f.context == "user"
                or (f.offset == 0 and f.index > 0)):
            continue
        name = base_name(name)
        if name in PLUMBING or (out and out[-1] == name):
            continue
        out.append(name)
        if len(out) == count:
            break
    return tuple(out)


def compute(lines: Sequence[str], panic_message: str | None,
            frames: Sequence[Frame]) -> Signature | None:
    """The signature of a crash, from its log's text, its panic message and the crashing
    task's backtrace; None when there is neither a message nor a frame."""
    found = cause(lines, panic_message)
    kind, message = ("panic", "") if found is None else (found[0], normalise_message(found[1]))
    names = top_frames(frames)
    if not message and not names:
        return None
    text = "\n".join([f"kdumpctl-py crash signature {VERSION}", kind, message, *names])
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Signature(digest, kind, message, names)
