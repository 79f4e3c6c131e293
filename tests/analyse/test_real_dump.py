"""The whole analysis on real crash-cycle dumps (skipped where they are absent).

The x86_64 dump crashed by `echo c > /proc/sysrq-trigger` from a task named
kdumpcrasher: with or without DWARF, from the ELF vmcore or a
makedumpfile-compressed copy, the report must name the panic, the task and
sysrq_handle_crash.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from kdumpctl_py.analyse.model import Report
from kdumpctl_py.errors import KdumpError
from tests.analyse.dumps import ARCHES, Dump, DumpOf, assert_reads_like_the_kernel, dump_as

PANIC = "sysrq triggered crash"
TASK = "kdumpcrasher"
FUNCTION = "sysrq_handle_crash"


@pytest.fixture(scope="module")
def kdump_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kdump")


@functools.cache
def analyse(vmcore: str, vmlinux: str | None, cache: str) -> Report:
    from kdumpctl_py.analyse.program import open_dump
    from kdumpctl_py.analyse.report import gather

    opened = open_dump(vmcore, vmlinux, debug_dirs=(), cache=Path(cache))
    return gather(opened)


def dump_path(dump: Dump, fmt: str, kdump_dir: Path) -> str:
    return str(dump_as(dump, fmt, kdump_dir))


@pytest.mark.parametrize("fmt", ["ELF", "kdump-compressed"])
@pytest.mark.parametrize("arch", ARCHES)
def test_with_dwarf(crash_dump: DumpOf, arch: str, fmt: str, kdump_dir: Path,
                    tmp_path: Path) -> None:
    dump = crash_dump(arch)
    r = analyse(dump_path(dump, fmt, kdump_dir), str(dump.vmlinux), str(tmp_path))
    assert r.format == fmt
    assert r.debuginfo.dwarf and r.debuginfo.verified and r.debuginfo.origin == "--vmlinux"
    assert r.panic_message is not None and PANIC in r.panic_message
    assert r.crashed_thread is not None and r.crashed_thread.comm == TASK
    assert r.backtrace_source == "dwarf"
    functions = [f.function for f in r.backtrace]
    assert FUNCTION in functions, functions
    frame = r.backtrace[functions.index(FUNCTION)]
    assert frame.file and frame.file.endswith("drivers/tty/sysrq.c") and frame.line
    assert frame.offset is not None and frame.symbol == FUNCTION
    assert r.release and r.version and r.build_id == dump.build_id
    assert r.uptime_seconds and r.uptime_seconds > 0
    # Every CPU, the crashing one marked; tasks, memory, modules, log.
    assert r.cpus and sum(c.crashed for c in r.cpus) == 1
    assert {c.cpu for c in r.cpus if c.crashed} == {r.crashed_thread.cpu}
    assert all(c.backtrace or c.error for c in r.cpus)
    assert r.tasks is not None and r.tasks.total > 0 and r.tasks.by_state.get("R", 0) >= 1
    assert r.memory is not None and r.memory.total and r.memory.free is not None
    assert 0 < r.memory.free < r.memory.total
    assert r.modules is not None
    assert r.log is not None and r.log.source == "drgn" and r.log.total > 100
    assert any(PANIC in ln.text for ln in r.log.tail)
    assert r.warnings == [] and r.missing == []


@pytest.mark.parametrize("fmt", ["ELF", "kdump-compressed"])
@pytest.mark.parametrize("arch", ARCHES)
def test_without_dwarf(crash_dump: DumpOf, arch: str, fmt: str, kdump_dir: Path,
                       tmp_path: Path) -> None:
    """No --vmlinux, an empty cache and no debug directory: VMCOREINFO, kallsyms, the log."""
    dump = crash_dump(arch, vmlinux=False)
    r = analyse(dump_path(dump, fmt, kdump_dir), None, str(tmp_path / "empty-cache"))
    assert not r.debuginfo.dwarf and r.debuginfo.vmlinux is None and r.debuginfo.kallsyms
    assert r.release == dump.release and r.release
    assert r.build_id == dump.build_id
    assert r.panic_message is not None and PANIC in r.panic_message
    assert r.crashed_thread is not None and r.crashed_thread.comm == TASK
    assert r.backtrace_source == "kernel log"
    assert FUNCTION in [f.function for f in r.backtrace]
    assert r.missing and "debuginfo fetch" in r.missing[0]
    # kallsyms names each CPU's saved program counter.
    assert r.cpus and all(c.backtrace[0].symbol for c in r.cpus)
    assert [c.task.pid for c in r.cpus if c.crashed and c.task] == [r.crashed_thread.pid]
    assert r.tasks is None and r.memory is None and r.modules is None
    assert r.log is not None and r.log.source == "kdumpctl-py"


@pytest.mark.parametrize("arch", ARCHES)
def test_one_signature_with_dwarf_kallsyms_or_the_log_alone(
        crash_dump: DumpOf, arch: str, kdump_dir: Path, tmp_path: Path) -> None:
    """docs/crash-signature.md: the sysrq crash signs the same on both architectures,
    from DWARF, from kallsyms, from the kernel log without drgn, in either format."""
    from kdumpctl_py.analyse import logonly

    dump = crash_dump(arch)
    seen = set()
    for fmt in ("ELF", "kdump-compressed"):
        path = dump_path(dump, fmt, kdump_dir)
        for r in (analyse(path, str(dump.vmlinux), str(tmp_path)),
                  analyse(path, None, str(tmp_path))):
            assert r.signature is not None and r.signature.message == PANIC
            assert r.signature.frames == (FUNCTION, "__handle_sysrq", "write_sysrq_trigger")
            seen.add(r.signature.id)
        if arch == "x86":  # arm64's log alone lacks the caller at +0x0 (the doc's limits)
            signed = logonly.gather(path).signature
            assert signed is not None
            seen.add(signed.id)
    assert seen == {"b9a83b1234e32f66"}  # version 1's id of this bug, on every kernel


@pytest.mark.parametrize("arch", ARCHES)
def test_every_cpu_and_the_kernels_symbol_sizes(crash_dump: DumpOf, arch: str,
                                                tmp_path: Path) -> None:
    from kdumpctl_py.analyse.render import to_json

    dump = crash_dump(arch)
    assert_reads_like_the_kernel(to_json(analyse(str(dump.vmcore), str(dump.vmlinux),
                                                 str(tmp_path))))


def test_a_vmlinux_of_another_build_is_an_error(crash_dump: DumpOf, tmp_path: Path) -> None:
    from kdumpctl_py.analyse.program import open_dump
    from tests.builders import elf_with_id

    dump = crash_dump("x86", vmlinux=False)
    wrong = elf_with_id(tmp_path / "vmlinux", "00" * 20)
    with pytest.raises(KdumpError, match=f"it has build ID {'00' * 20} for x86_64, the dump "
                       f"build ID {dump.build_id} for x86_64"):
        open_dump(str(dump.vmcore), str(wrong), debug_dirs=(), cache=tmp_path)


def test_a_vmlinux_of_another_architecture_is_an_error(crash_dump: DumpOf,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """`analyse ARM64_DUMP --vmlinux X86_VMLINUX` names both builds and architectures."""
    from kdumpctl_py.cli import main

    arm, x86 = crash_dump("arm64", vmlinux=False), crash_dump("x86")
    assert main(["analyse", str(arm.vmcore), "--vmlinux", str(x86.vmlinux)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and (
        f"it has build ID {x86.build_id} for x86_64, the dump build ID {arm.build_id} for "
        "aarch64") in err


def test_with_dwarf_the_panic_comes_from_the_log_when_drgn_cannot_read_it(
        crash_dump: DumpOf, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Found by review: on a damaged dump whose panic message drgn could not read, the
    report said none was found while its log tail showed it."""
    import drgn.helpers.linux.panic

    def unreadable(prog: object) -> None:
        raise drgn.FaultError("could not read panic_message", 0)

    from kdumpctl_py.analyse.program import open_dump
    from kdumpctl_py.analyse.report import gather

    dump = crash_dump(ARCHES[0])
    monkeypatch.setattr(drgn.helpers.linux.panic, "panic_message", unreadable)
    r = gather(open_dump(str(dump.vmcore), str(dump.vmlinux), debug_dirs=(), cache=tmp_path))
    assert r.debuginfo.dwarf and r.panic_message and PANIC in r.panic_message
    assert any("could not read panic_message" in w for w in r.warnings), r.warnings
