# ruff: noqa: E501  (log lines are pasted verbatim)
"""The crash signature's rules (docs/crash-signature.md) on real panics of five kernels,
both architectures, and an oops."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kdumpctl_py.analyse import kernlog
from kdumpctl_py.analyse.model import Frame
from kdumpctl_py.analyse.signature import (
    VERSION,
    Signature,
    base_name,
    cause,
    compute,
    normalise_message,
    top_frames,
)
from tests.analyse import panics
from tests.builders import console_log as log

SYSRQ_FRAMES = ("sysrq_handle_crash", "__handle_sysrq", "write_sysrq_trigger")


def fixed(frames: list[Frame], callers: dict[str, str]) -> list[Frame]:
    """What nodwarf.fix_return_addresses does with the dump's kallsyms: a caller at +0x0
    renamed after the function the call was really in."""
    return [replace(f, function=callers[f.symbol], symbol=callers[f.symbol], offset=4)
            if f.offset == 0 and f.symbol in callers else f for f in frames]


def sign(text: str, callers: dict[str, str] | None = None) -> Signature:
    lines = kernlog.split_lines(log(text))
    ctx = kernlog.crash_context(lines)
    assert ctx is not None
    frames = kernlog.call_trace(lines, ctx.line)
    sig = compute([ln.text for ln in lines], kernlog.panic_message(lines),
                  fixed(frames, callers or {}))
    assert sig is not None
    return sig


@pytest.mark.parametrize("text", [panics.BOOKWORM_X86_64, panics.BULLSEYE_X86_64,
                                  panics.BACKPORTS_X86_64, panics.TRIXIE_ARM64,
                                  panics.BACKPORTS_ARM64])
def test_sysrq_is_one_bug_on_every_kernel_and_arch(text: str) -> None:
    sig = sign(text)
    assert (sig.kind, sig.message, sig.frames) == ("panic", "sysrq triggered crash",
                                                   SYSRQ_FRAMES)
    assert sig == sign(panics.BOOKWORM_X86_64) and sig.version == VERSION


def test_arm64_caller_at_zero_is_named_by_kallsyms_or_left_out() -> None:
    """6.1 arm64 logs sysrq_handle_crash, whose last instruction calls panic(), as the next
    symbol at +0x0: with the dump's symbols it is named, without them it is left out."""
    with_symbols = sign(panics.BOOKWORM_ARM64,
                        {"sysrq_reset_seq_param_set": "sysrq_handle_crash"})
    assert with_symbols == sign(panics.BOOKWORM_X86_64)
    without = sign(panics.BOOKWORM_ARM64)
    assert without.frames == ("__handle_sysrq", "write_sysrq_trigger", "proc_reg_write")
    # 6.12 names panic()'s caller at +0x0 after vpanic: panic, plumbing either way.
    assert sign(panics.TRIXIE_ARM64, {"trace_suspend_resume": "panic"}) == sign(
        panics.TRIXIE_ARM64)


def test_an_oops_is_another_bug() -> None:
    sig = sign(panics.OOPS_X86_64)
    assert sig.kind == "oops" and sig.message == "kernel NULL pointer dereference"
    # The faulting function from RIP:, then the trace; the compiler's suffix cut.
    assert sig.frames == ("kdumpctl_oops_write", "kdumpctl_oops_init", "do_one_initcall")
    assert sig.id != sign(panics.BOOKWORM_X86_64).id


def test_7_3_arm64_entries_marked_by_source_are_frames() -> None:
    lines = kernlog.split_lines(log(panics.BACKPORTS_ARM64))
    ctx = kernlog.crash_context(lines)
    assert ctx is not None
    frames = kernlog.call_trace(lines, ctx.line)
    assert [f.function for f in frames[:2]] == ["show_stack", "dump_stack_lvl"]
    assert len(frames) == 18


def test_the_cause_of_a_fatal_exception_is_its_report() -> None:
    lines = ["WARNING: CPU: 0 PID: 1 at fs/boot.c:10 early+0x1/0x2",  # long before: not it
             *["filler"] * 250,
             "BUG: unable to handle page fault for address: ffffc90000abc000",
             "#PF: supervisor read access in kernel mode",
             "Oops: 0000 [#1] PREEMPT SMP NOPTI",
             "CPU: 3 PID: 77 Comm: kworker/3:1 Not tainted 6.1.0 #1",
             "Kernel panic - not syncing: Fatal exception"]
    assert cause(lines, "Kernel panic - not syncing: Fatal exception") == (
        "oops", "BUG: unable to handle page fault for address: ffffc90000abc000")


def test_a_panic_of_its_own_is_not_blamed_on_an_earlier_warning() -> None:
    lines = ["WARNING: CPU: 0 PID: 1 at drivers/x.c:10 probe+0x1/0x2",
             "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009"]
    assert cause(lines, None) == ("panic", lines[1])
    assert normalise_message(lines[1]) == "Attempted to kill init! exitcode=HEX"


@pytest.mark.parametrize("text, want", [
    ("Unable to handle kernel NULL pointer dereference at virtual address 0000000000000008",
     "kernel NULL pointer dereference"),
    ("BUG: kernel NULL pointer dereference, address: 0000000000000008",
     "kernel NULL pointer dereference"),
    ("Unable to handle kernel paging request at virtual address ffff800080000000",
     "unable to handle kernel paging request"),
    ("BUG: unable to handle page fault for address: ffffc90000abc000",
     "unable to handle kernel paging request"),
    ("kernel BUG at mm/slub.c:4312!", "kernel BUG at mm/slub.c"),
    ("WARNING: CPU: 1 PID: 2345 at net/core/dev.c:3210 skb_warn_bad_offload.cold+0x5/0x9 [mod]",
     "WARNING at net/core/dev.c skb_warn_bad_offload"),
    ("watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [kworker/1:2:123]",
     "watchdog: BUG: soft lockup - CPU stuck for Ns! [TASK]"),
    ("Kernel panic - not syncing: hung_task: blocked tasks", "hung_task: blocked tasks"),
    ("Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)",
     "VFS: Unable to mount root fs on unknown-block(N,N)"),
    ("Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is enabled",
     "Out of memory: system-wide panic_on_oom is enabled"),
    ("Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: ffffffff81234567",
     "stack-protector: Kernel stack is corrupted in: HEX"),
    ("Kernel panic - not syncing: pid 1 died,   cpu 2", "PID died, CPU"),
])
def test_normalise_message(text: str, want: str) -> None:
    assert normalise_message(text) == want


@pytest.mark.parametrize("name, want", [
    ("__handle_sysrq.cold", "__handle_sysrq"),
    ("el0_svc_common.constprop.0", "el0_svc_common"),
    ("tcp_v4_rcv.isra.0", "tcp_v4_rcv"),
    ("blk_mq_run_hw_queue.part.0", "blk_mq_run_hw_queue"),
    ("vfs_write", "vfs_write"),
])
def test_base_name(name: str, want: str) -> None:
    assert base_name(name) == want


def test_top_frames_leave_out_what_is_not_the_bug() -> None:
    frames = [
        Frame(0, 1, "crash_setup_regs", symbol="__crash_kexec", offset=8, inline=True),
        Frame(1, 2, "__crash_kexec", symbol="__crash_kexec", offset=8),
        Frame(2, 3, "panic", symbol="panic", offset=9),
        Frame(3, None, "_printk", symbol="_printk", offset=5, reliable=False),
        Frame(4, 4, "sysrq_handle_crash", symbol="sysrq_handle_crash", offset=22),
        Frame(5, 5, "__handle_sysrq", symbol="__handle_sysrq.cold", offset=4),
        Frame(6, 6, "pde_write", symbol="proc_reg_write", offset=3, inline=True),
        Frame(7, 7, "write_sysrq_trigger", symbol="write_sysrq_trigger", offset=1),
        Frame(8, 8, None, context="user"),
    ]
    assert top_frames(frames) == SYSRQ_FRAMES
    assert top_frames(frames, 5) == SYSRQ_FRAMES  # user space is no frame


def test_nothing_to_sign() -> None:
    assert compute(["just booting"], None, []) is None
