from __future__ import annotations

import json
import re
from pathlib import Path

from kdumpctl_py.analyse.kernlog import LogLine
from kdumpctl_py.analyse.model import (
    SCHEMA,
    BlockedTask,
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
from kdumpctl_py.analyse.render import (
    WIDTH,
    call,
    duration,
    frame_lines,
    render_text,
    short_path,
    to_json,
    wrap_path,
)

DOC = Path(__file__).parents[2] / "docs" / "analyse-json.md"
VMLINUX = ("/root/.cache/kdumpctl-py/vm/vmlinux/linux-image-6.1.0-56-cloud-amd64-dbg_"
           "6.1.192-2_amd64/vmlinux")

BACKTRACE = [
    Frame(0, 0xFFFFFFFF9616475A, "crash_setup_regs", "__crash_kexec", 0x11A, 0x12C,
          file="arch/x86/include/asm/kexec.h", line=115, inline=True, context="task"),
    Frame(1, 0xFFFFFFFF9616475A, "__crash_kexec", "__crash_kexec", 0x11A, 0x12C,
          file="kernel/kexec_core.c", line=974, context="task"),
    Frame(2, 0xFFFFFFFF966A8A06, "sysrq_handle_crash", "sysrq_handle_crash", 0x16, 0x16,
          file="drivers/tty/sysrq.c", line=155, context="task"),
    Frame(3, 0xFFFFFFFF969F4AC9, "__handle_sysrq", "__handle_sysrq.cold", 0x44, 0x11C,
          file="drivers/tty/sysrq.c", line=603, context="task"),
    Frame(4, 0xFFFFFFFF96C00126, "entry_SYSCALL_64", "entry_SYSCALL_64", 0xA6, 0x1AB,
          file="/build/reproducible-path/linux-6.1.192/arch/x86/entry/entry_64.S", line=121,
          context="task"),
    Frame(5, 0x47B7A0, None, context="user"),
]


def full_report() -> Report:
    crashed = TaskRef(168, "kdumpcrasher", 1, "R", 0xFFFF8C99025E3000)
    idle = TaskRef(0, "swapper/0", 0, "R", 0xFFFFFFFF97A1AA40)
    blocked = TaskRef(99, "jbd2/vda-8", 0, "D", 0xFFFF8C9902000000)
    return Report(
        vmcore="/var/crash/2026-11-26-110846/vmcore",
        format="ELF",
        debuginfo=DebugInfo(True, VMLINUX, "--vmlinux", "3b43fad5034874490492495d552c0af6a5fab235",
                            True, False, ["virtio_blk"], []),
        arch="x86_64",
        release="6.1.0-56-cloud-amd64",
        version="#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)",
        machine="x86_64",
        nodename="(none)",
        build_id="3b43fad5034874490492495d552c0af6a5fab235",
        date="2026-11-26T11:08:38Z",
        uptime_seconds=90061.5,
        load_average=[0.45, 0.1, 0.03],
        cpus_present=2,
        cpus_online=2,
        task_count=61,
        panic_message="Kernel panic - not syncing: sysrq triggered crash",
        taint=Taint("G           O", 1 << 12, ['O: externally-built ("out-of-tree") module was '
                                               "loaded"]),
        crashed_thread=crashed,
        backtrace=BACKTRACE,
        backtrace_source="dwarf",
        cpus=[
            CpuState(0, idle, idle=True, backtrace=[
                Frame(0, 0xFFFFFFFF96A0B1CB, "native_safe_halt", "native_safe_halt", 0xB, 0x10,
                      file="arch/x86/include/asm/irqflags.h", line=52, context="irq"),
                Frame(1, 0xFFFFFFFF96A0B2CB, "do_idle", "do_idle", 0x206, 0x2AE,
                      file="kernel/sched/idle.c", line=323, context="task")]),
            CpuState(1, crashed, crashed=True, backtrace=BACKTRACE),
        ],
        tasks=TaskSummary(59, {"D": 1, "I": 39, "R": 1, "S": 18}, [
            BlockedTask(blocked, [Frame(0, 0xFFFFFFFF96A0C000, "__schedule", "__schedule",
                                        0x34D, 0xA20, file="kernel/sched/core.c", line=5200)]),
        ]),
        memory=Memory(4096, total=183556, free=146293, used=37263, buffers=3, cached=30102,
                      slab=4680, swap_total=0, swap_free=0, commit_limit=91778,
                      committed=20146),
        modules=[Module("virtio_blk", 0xFFFFFFFFC0505000, 28672, "", False),
                 Module("oops_module_with_a_very_long_name_indeed", 0xFFFFFFFFC0600000, 4096,
                        "O", True)],
        log=Log("drgn", 391, [
            LogLine(17079585000, "Kernel panic - not syncing: sysrq triggered crash", 0),
            LogLine(17080843000, "Code: 40 00 48 c7 c2 e0 ff ff ff f7 d8 64 89 02 48 c7 c0 ff "
                    "ff ff ff eb b7 0f 1f 00 80 3d e8 85 16 00 00 74 17 b8 01 00 00 00", 4),
        ]),
        warnings=["modules: FaultError: could not read memory from 0xffffffffc0000000"],
        tool="kdumpctl-py 0.1.0",
        drgn_version="0.3.0",
    )


def nodwarf_report() -> Report:
    return Report(
        vmcore="/tmp/vmcore.kdump",
        format="kdump-compressed",
        debuginfo=DebugInfo(False, None, None, "3b43", False, True, [], [
            "/tmp/other/vmlinux does not match the dump: its build ID is 0123, the dump's "
            "3b43; not used"]),
        arch="x86_64",
        release="6.1.0-56-cloud-amd64",
        machine="x86_64",
        uptime_seconds=17.079,
        panic_message="Kernel panic - not syncing: sysrq triggered crash",
        taint=Taint(""),
        crashed_thread=TaskRef(168, "kdumpcrasher", 1, source="kernel log"),
        backtrace=[Frame(0, None, "panic", "panic", 0x118, 0x2F4),
                   Frame(1, None, "_printk", "_printk", 0x68, 0x83, reliable=False),
                   Frame(2, None, "sysrq_handle_crash", "sysrq_handle_crash", 0x16, 0x20)],
        backtrace_source="kernel log",
        cpus=[CpuState(0, TaskRef(0, None, 0, source="registers"), idle=True, backtrace=[
            Frame(0, 0xFFFFFFFF96A0B1CB, "native_safe_halt", "native_safe_halt", 0xB, 0x10,
                  context="registers")])],
        missing=["no vmlinux with DWARF was found; get it with `kdumpctl-py debuginfo fetch "
                 "/tmp/vmcore.kdump`"],
    )


def test_text_fits_80_columns_and_reads_like_crash() -> None:
    for report in (full_report(), nodwarf_report()):
        text = render_text(report)
        too_long = [line for line in text.splitlines() if len(line) > WIDTH]
        assert too_long == []
    text = render_text(full_report())
    assert '       PANIC: "Kernel panic - not syncing: sysrq triggered crash"' in text
    assert "LOAD AVERAGE: 0.45, 0.10, 0.03" in text
    assert "      UPTIME: 1 day, 01:01:01" in text
    assert "     COMMAND: \"kdumpcrasher\"" in text
    assert "     TAINTED: G           O" in text
    assert "BACKTRACE of PID 168 \"kdumpcrasher\" on CPU 1" in text
    assert " #2  sysrq_handle_crash+0x16/0x16       drivers/tty/sysrq.c:155" in text
    assert " #3  __handle_sysrq (__handle_sysrq.cold+0x44/0x11c)" in text
    assert " #5  0x47b7a0 (user space)" in text
    assert "CPU 0: PID 0 \"swapper/0\" (idle)" in text
    assert "     --- <irq stack> ---" in text
    assert "CPU 1: PID 168 \"kdumpcrasher\" (crashed)\n     (the backtrace above)" in text
    assert "D uninterruptible: 1" in text and "PID 99 \"jbd2/vda-8\" on CPU 0" in text
    assert "   TOTAL MEM      183556   717.0 MiB  ----" in text
    assert "        FREE      146293   571.5 MiB   80% of TOTAL MEM" in text
    assert "virtio_blk" in text and "KERNEL LOG (last 2 of 391 lines)" in text
    assert "[   17.079585] Kernel panic - not syncing: sysrq triggered crash" in text
    assert "WARNINGS" in text


def test_text_without_dwarf_says_what_is_missing() -> None:
    text = render_text(nodwarf_report())
    assert "KERNEL: kallsyms from the dump only, no DWARF" in text
    assert "MISSING\n- no vmlinux with DWARF" in text
    assert "debuginfo fetch" in text and "does not match the dump" in text
    assert "as the kernel logged it" in text
    assert " #1  ? _printk+0x68/0x83" in text
    assert "(time of the panic message)" in text
    assert "CPU 0: PID 0 (idle)\n #0  native_safe_halt+0xb/0x10" in text


def test_frame_formatting() -> None:
    assert call(Frame(0, 1, "f", "f", 0x10, 0x20, module="virtio_blk")) == \
        "f+0x10/0x20 [virtio_blk]"
    assert call(Frame(0, 1, "g", "f", 0x10, None, inline=True)) == "g (inlined)"
    assert call(Frame(0, None, "f", "f", 1, 2, reliable=False)) == "? f+0x1/0x2"
    assert call(Frame(0, 0xDEAD, None)) == "0xdead"
    long = Frame(12, 1, "a_function_with_an_exceptionally_long_name_for_a_kernel_function",
                 "a_function_with_an_exceptionally_long_name_for_a_kernel_function", 0x1234,
                 0x5678, file="drivers/gpu/drm/amd/display/dc/core/amdgpu_dm_helpers.c",
                 line=1234)
    lines = frame_lines(long)
    assert lines == [  # the symbol overflows the line whole rather than being cut
        " #12 a_function_with_an_exceptionally_long_name_for_a_kernel_function+0x1234/0x5678",
        "     drivers/gpu/drm/amd/display/dc/core/amdgpu_dm_helpers.c:1234"]


def test_small_helpers() -> None:
    assert duration(17.9) == "00:00:17"
    assert duration(86400 * 2 + 3661) == "2 days, 01:01:01"
    assert short_path("/build/reproducible-path/linux-6.1.192/arch/x86/entry/entry_64.S") == \
        "arch/x86/entry/entry_64.S"
    assert short_path("kernel/panic.c") == "kernel/panic.c"
    lines = wrap_path(VMLINUX, "      KERNEL: ", 14)
    assert lines == ["      KERNEL: /root/.cache/kdumpctl-py/vm/vmlinux/",
                     "              linux-image-6.1.0-56-cloud-amd64-dbg_6.1.192-2_amd64/vmlinux"]
    assert wrap_path("/a/" + "x" * 200, "K: ", 3) == ["K: /a/", "   " + "x" * 200]


def test_no_word_is_split() -> None:
    """Lines break at spaces (paths after a "/"); a word longer than the line overflows whole."""
    from dataclasses import replace

    log = ("EXT4-fs (vda): mounted filesystem f85ed47c-04dc-4ac1-a627-b8c04043178a r/w with "
           "ordered data mode. /a/very/long/path/" + "p" * 90)
    frame = Frame(0, 1, "x" * 90, "x" * 90, 1, 2, file="kernel/panic.c", line=1)
    report = replace(full_report(),
                     vmcore="/tmp/admin2/arm64-trixie/dumps/localhost-2026-12-01-12:20:07/vmcore",
                     log=Log("drgn", 1, [LogLine(8652409000, log, 6)]), backtrace=[frame])
    words = set(render_text(report).split())
    assert set(log.split()) <= words
    assert {"vmcore", "x" * 90 + "+0x1/0x2", "[ELF]"} <= words


def test_json_has_the_documented_schema() -> None:
    data = to_json(full_report())
    json.dumps(data)  # serialisable as is
    assert data["schema"] == SCHEMA == 1
    # What the VM harness reads.
    assert data["release"] == "6.1.0-56-cloud-amd64"
    assert data["panic_message"] == "Kernel panic - not syncing: sysrq triggered crash"
    assert {k: data["crashed_thread"][k] for k in ("pid", "comm", "cpu")} == {
        "pid": 168, "comm": "kdumpcrasher", "cpu": 1}
    assert [f["function"] for f in data["backtrace"]][:3] == [
        "crash_setup_regs", "__crash_kexec", "sysrq_handle_crash"]
    assert data["backtrace"][0]["pc"] == "0xffffffff9616475a"
    assert data["crashed_thread"]["task"] == "0xffff8c99025e3000"
    assert data["memory"]["total_pages"] == 183556 and data["memory"]["page_size"] == 4096
    assert data["modules"][0]["address"] == "0xffffffffc0505000"
    assert data["log"]["tail"][0] == {"timestamp_ns": 17079585000, "level": 0,
                                      "text": "Kernel panic - not syncing: sysrq triggered crash"}


def _keys(value: object, prefix: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if prefix.endswith("by_state"):
                continue
            out.add(k)
            out |= _keys(v, k)
    elif isinstance(value, list):
        for v in value:
            out |= _keys(v, prefix)
    return out


def test_every_json_key_is_documented() -> None:
    documented = set(re.findall(r"`([a-z_]+)`", DOC.read_text()))
    keys = _keys(to_json(full_report())) | _keys(to_json(nodwarf_report()))
    assert keys - documented == set()
