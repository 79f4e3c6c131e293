"""The kernel log of real vmcores, cross-checked against makedumpfile, drgn and the console.

Runs on each architecture's crash-cycle dump (tests/analyse/dumps.py): the whole
vmcore, the crashed kernel's serial console beside it, and the vmlinux with its
build ID for drgn.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kdumpctl_py.capture.dmesg import (
    KernelLog,
    format_record,
    read_kernel_log,
    read_vmcore_log,
    timestamp,
)
from kdumpctl_py.capture.vmcore import MissingMemory
from kdumpctl_py.facts.vmcoreinfo import VmcoreInfo
from tests.analyse.dumps import ARCHES, Dump, DumpOf, dump_as, makedumpfile

CONSOLE_LINE = re.compile(r"\[\s*\d+\.\d{6}\] .*")

_logs: dict[Path, KernelLog] = {}


def log_of(vmcore: Path) -> KernelLog:
    if vmcore not in _logs:
        _logs[vmcore] = read_vmcore_log(str(vmcore))
    return _logs[vmcore]


def records(log: KernelLog) -> list[tuple[object, ...]]:
    return [(r.seq, r.ts_nsec, r.text, r.facility, r.level, r.flags, r.caller_id, r.subsystem,
             r.device, r.final) for r in log.records]


@pytest.mark.parametrize("arch", ARCHES)
def test_log_is_whole_and_of_the_crashed_kernel(crash_dump: DumpOf, arch: str) -> None:
    log = log_of(crash_dump(arch, vmlinux=False).vmcore)
    assert log.warnings == []
    assert [x for x in log.lost if x.reason != "overwritten"] == []
    # x86 starts with the banner; arm64 says which CPU it boots on first
    assert log.records[0].text.startswith((b"Linux version", b"Booting Linux")) or log.lost
    texts = [r.text for r in log.records]
    assert any(b"sysrq triggered crash" in t for t in texts)
    assert not any(b"elfcorehdr=" in t for t in texts)  # that is the capture kernel's
    seqs = [r.seq for r in log.records]
    first = seqs[0]
    assert first is not None and seqs == list(range(first, first + len(seqs)))


@pytest.mark.parametrize("arch", ARCHES)
def test_same_text_as_makedumpfile(crash_dump: DumpOf, arch: str, tmp_path: Path) -> None:
    dump = crash_dump(arch, vmlinux=False)
    out = tmp_path / "dmesg.txt"
    makedumpfile(dump, "--dump-dmesg", str(dump.vmcore), str(out))
    # makedumpfile (1.7.2) skips data-less records, which dmesg shows as empty lines.
    ours = "".join(format_record(r) for r in log_of(dump.vmcore).records if r.text)
    assert ours == out.read_text(errors="surrogateescape")


@pytest.mark.parametrize("arch", ARCHES)
def test_same_records_as_drgn(crash_dump: DumpOf, arch: str) -> None:
    import drgn
    from drgn.helpers.linux.printk import get_printk_records

    dump: Dump = crash_dump(arch)
    prog = drgn.Program()
    prog.set_core_dump(str(dump.vmcore))
    prog.load_debug_info([str(dump.vmlinux)])
    theirs = [
        (r.seq, r.timestamp, r.text, r.facility, r.level, r.continuation,
         f"T{r.caller_tid}" if r.caller_tid is not None else f"C{r.caller_cpu}",
         (r.context.get(b"SUBSYSTEM") or b"").decode() or None,
         (r.context.get(b"DEVICE") or b"").decode() or None)
        for r in get_printk_records(prog)
    ]
    ours = [(r.seq, r.ts_nsec, r.text, r.facility, r.level, r.continuation, r.caller,
             r.subsystem, r.device) for r in log_of(dump.vmcore).records]
    assert ours == theirs


@pytest.mark.parametrize("arch", ARCHES)
def test_console_lines_are_in_the_log_and_its_tail_matches(crash_dump: DumpOf,
                                                           arch: str) -> None:
    dump = crash_dump(arch, vmlinux=False)
    shown = []
    for line in dump.console.read_text(errors="replace").splitlines():
        m = CONSOLE_LINE.search(line.rstrip("\r"))
        if m:
            shown.append(m.group())
    # The console prints the prefix on every line of a record and drops levels above
    # console_loglevel; so each console line is one of ours, in the same order.
    ours = [f"{timestamp(r.ts_nsec)} {line}"
            for r in log_of(dump.vmcore).records
            for line in r.text.decode("utf-8", "replace").split("\n")]
    it = iter(ours)
    missing = [line for line in shown if line not in it]
    assert len(shown) > 100 and missing == []
    crash = next(i for i, line in enumerate(shown) if "sysrq: Trigger a crash" in line)
    tail = shown[crash:]
    assert ours[-len(tail):] == tail
    assert any("Kernel panic - not syncing: sysrq triggered crash" in x for x in tail)
    assert any("write_sysrq_trigger+" in x for x in tail)


class DrgnCore:
    """A KernelMemory over drgn, which also reads kdump-compressed dumps (no DWARF needed)."""

    def __init__(self, path: Path) -> None:
        from kdumpctl_py.analyse.program import open_core

        self.prog, _, info, _ = open_core(str(path))
        self.vmcoreinfo: VmcoreInfo = info

    def read_virt(self, vaddr: int, size: int) -> bytes:
        import drgn

        try:
            data: bytes = self.prog.read(vaddr, size)
        except drgn.FaultError as e:
            raise MissingMemory(str(e)) from None
        return data


@pytest.mark.parametrize("arch", ARCHES)
def test_same_records_from_a_filtered_compressed_copy(crash_dump: DumpOf, arch: str,
                                                      tmp_path: Path) -> None:
    """makedumpfile -c -d 31 drops free, cache and user pages, never the printk buffer;
    read through another KernelMemory, the log is the same."""
    dump = crash_dump(arch, vmlinux=False)
    log = read_kernel_log(DrgnCore(dump_as(dump, "kdump-compressed", tmp_path)))
    assert log.warnings == []
    assert records(log) == records(log_of(dump.vmcore))
