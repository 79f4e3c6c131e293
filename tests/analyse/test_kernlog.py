# ruff: noqa: E501  (log lines are pasted verbatim)
from __future__ import annotations

from kdumpctl_py.analyse.kernlog import (
    LogLine,
    call_trace,
    crash_context,
    find_panic,
    panic_message,
    split_lines,
)
from tests.builders import console_log as log

# The x86_64 crash-cycle dump: `echo c > /proc/sysrq-trigger` by a task named kdumpcrasher.
SYSRQ = log("""
[   17.010551] EXT4-fs (vda): re-mounted. Quota mode: none.
[   17.078656] sysrq: Trigger a crash
[   17.079585] Kernel panic - not syncing: sysrq triggered crash
[   17.079935] CPU: 1 PID: 168 Comm: kdumpcrasher Kdump: loaded Not tainted 6.1.0-56-cloud-amd64 #1  Debian 6.1.192-2
[   17.080257] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   17.080607] Call Trace:
[   17.080843]  <TASK>
[   17.080843]  dump_stack_lvl+0x44/0x5c
[   17.080843]  panic+0x118/0x2f4
[   17.080843]  ? _printk+0x68/0x83
[   17.080843]  sysrq_handle_crash+0x16/0x20
[   17.080843]  __handle_sysrq.cold+0x44/0x11c
[   17.080843]  write_sysrq_trigger+0x24/0x40
[   17.080843]  proc_reg_write+0x56/0xa0
[   17.080843]  vfs_write+0xc7/0x3f0
[   17.080843]  ksys_write+0x6b/0xf0
[   17.080843]  do_syscall_64+0x5d/0x90
[   17.080843]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[   17.080843] RIP: 0033:0x47b7a0
[   17.080843] RSP: 002b:00007ffe2174cac8 EFLAGS: 00000202 ORIG_RAX: 0000000000000001
[   17.080843] R13: 000000003134a3a0 R14: 0000000000000001 R15: 00007ffe2174cb30
[   17.080843]  </TASK>
[   17.081000] Kernel Offset: 0x14000000 from 0xffffffff81000000
""")

# An oops in a module: the report (with the CPU line and the trace) comes before the panic.
OOPS = log("""
[   25.000000] BUG: kernel NULL pointer dereference, address: 0000000000000000
[   25.000001] #PF: supervisor write access in kernel mode
[   25.000004] Oops: 0002 [#1] PREEMPT SMP NOPTI
[   25.000005] CPU: 0 PID: 321 Comm: my prog Tainted: G           OE      6.1.0-56-cloud-amd64 #1  Debian 6.1.192-2
[   25.000006] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996)
[   25.000007] RIP: 0010:oops_init+0x11/0x1000 [oopsmod]
[   25.000008] Code: Unable to access opcode bytes at 0xffffffffc0389fe7.
[   25.000009] RSP: 0018:ffffb1e0c03c7c88 EFLAGS: 00010246
[   25.000010] Call Trace:
[   25.000011]  <TASK>
[   25.000012]  do_one_initcall+0x59/0x220
[   25.000013]  do_init_module+0x4a/0x1f0
[   25.000016]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[   25.000018]  </TASK>
[   25.000019] Modules linked in: oopsmod(OE+) virtio_blk
[   25.000021] ---[ end trace 0000000000000000 ]---
[   25.000022] Kernel panic - not syncing: Fatal exception
""")

# arm64 (6.12 prints UID too, and "Call trace:"); the oops's pc is also the trace's first entry.
ARM64 = log("""
[    5.100000] Unable to handle kernel NULL pointer dereference at virtual address 0000000000000000
[    5.100001] Internal error: Oops: 0000000096000045 [#1] SMP
[    5.100002] CPU: 1 UID: 0 PID: 1 Comm: sh Not tainted 6.12.38+deb13-cloud-arm64 #1  Debian 6.12.38-1
[    5.100003] pc : crash_it+0x24/0x30 [crashmod]
[    5.100004] lr : __handle_sysrq+0x90/0x1a0
[    5.100005] sp : ffff80000a4b3c70
[    5.100006] x29: ffff80000a4b3c70 x28: ffff0000c0d8d280 x27: 0000000000000000
[    5.100007] Call trace:
[    5.100008]  crash_it+0x24/0x30 [crashmod]
[    5.100009]  __handle_sysrq+0x90/0x1a0
[    5.100010]  el0t_64_sync+0x190/0x198
[    5.100011] Code: d2800020 d2800001 (b900003f)
[    5.100012] ---[ end trace 0000000000000000 ]---
[    5.100013] Kernel panic - not syncing: Oops: Fatal exception
""")


def test_sysrq_panic_message_context_and_trace() -> None:
    assert panic_message(SYSRQ) == "Kernel panic - not syncing: sysrq triggered crash"
    ctx = crash_context(SYSRQ)
    assert ctx is not None
    assert (ctx.cpu, ctx.pid, ctx.comm, ctx.taint) == (1, 168, "kdumpcrasher", "")
    frames = call_trace(SYSRQ, ctx.line)
    names = [f.function for f in frames]
    assert names[:4] == ["dump_stack_lvl", "panic", "_printk", "sysrq_handle_crash"]
    assert names[-1] == "entry_SYSCALL_64_after_hwframe"
    assert [f.index for f in frames] == list(range(len(frames)))
    crash = frames[3]
    assert (crash.offset, crash.size, crash.reliable, crash.pc) == (0x16, 0x20, True, None)
    assert frames[2].reliable is False  # "? _printk": a stale word, not vouched for


def test_oops_context_is_found_before_the_panic_line() -> None:
    assert panic_message(OOPS) == "Kernel panic - not syncing: Fatal exception"
    ctx = crash_context(OOPS)
    assert ctx is not None
    assert (ctx.cpu, ctx.pid, ctx.comm) == (0, 321, "my prog")
    assert ctx.taint == "G           OE"
    frames = call_trace(OOPS, ctx.line)
    assert [f.function for f in frames] == ["oops_init", "do_one_initcall", "do_init_module",
                                            "entry_SYSCALL_64_after_hwframe"]
    assert frames[0].module == "oopsmod" and frames[0].context == "exception"


def test_arm64_trace_keeps_the_faulting_function_once() -> None:
    ctx = crash_context(ARM64)
    assert ctx is not None and (ctx.cpu, ctx.pid, ctx.comm, ctx.taint) == (1, 1, "sh", "")
    frames = call_trace(ARM64, ctx.line)
    assert [f.function for f in frames] == ["crash_it", "__handle_sysrq", "el0t_64_sync"]
    assert frames[0].module == "crashmod" and frames[0].index == 0


def test_panic_ranking_prefers_the_panic_line() -> None:
    lines = log("""
[    1.000000] Oops: 0002 [#1] SMP
[    2.000000] BUG: unable to handle page fault for address: 0000
[    3.000000] Kernel panic - not syncing: Fatal exception
[    4.000000] Kernel panic - not syncing: later
""")
    assert find_panic(lines) == 2
    assert panic_message(lines[:2]) == "BUG: unable to handle page fault for address: 0000"
    assert panic_message(lines[:1]) == "Oops: 0002 [#1] SMP"
    assert panic_message(log("[    1.000000] all is well")) is None
    assert crash_context(log("[    1.000000] all is well")) is None


def test_no_trace_after_context_gives_no_frames() -> None:
    lines = log("""
[    3.000000] Kernel panic - not syncing: VFS: Unable to mount root fs
[    3.000001] CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0 #1
""")
    ctx = crash_context(lines)
    assert ctx is not None and ctx.comm == "swapper/0"
    assert call_trace(lines, ctx.line) == []


def test_split_lines_keeps_timestamps() -> None:
    lines = split_lines([LogLine(5, "a\nb", 4), LogLine(6, "c")])
    assert [(ln.timestamp_ns, ln.text, ln.level) for ln in lines] == [
        (5, "a", 4), (5, "b", 4), (6, "c", None)]
    assert lines[0].seconds == 5e-9
