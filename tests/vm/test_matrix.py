"""VM tier: the kernel matrix, one crash cycle per (kernel, architecture).

Each cycle boots a Debian cloud kernel (`crash-cycle --kernel-suite`), fills
its memory with every kind of page the dump levels tell apart (`--busy`),
panics, and the capture kernel runs `kdumpctl-py capture` as the service does
(-d 31, zlib: through ISA-L on x86_64, whose capture initramfs carries the isal
wheel, through the system zlib on arm64) and
then copies /proc/vmcore whole (`--whole-copy`). On the host:
drgn (`kdumpctl-py analyse`) and the kernel suite's own crash open the saved
dump, and our page bitmaps of the whole copy are compared with that suite's
makedumpfile at -d 1, 2, 4, 8, 16 and 31. The arm64 tools run under qemu-user
(harness/oracles.py). tests/vm/README.md has the table of results.

CI runs six cycles, all but the two 52-bit arm64 kernels' (trixie, 7.3), which
KDUMPCTL_VM_MATRIX=all adds; each does only the checks whose tool can judge it: no
whole copy where the suite's makedumpfile refuses the kernel (its refusal is
checked on a tiny ELF with the dump's own VMCOREINFO, in a second), no crash
where the suite's crash cannot read the kernel at all. KDUMPCTL_VM_MATRIX=all
runs those crashes too, to check they still refuse as recorded, and opens every
save format with arm64 crash (tests/vm/README.md has the times).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from kdumpctl_py.arch import ELF_MACHINES
from kdumpctl_py.capture.kdumpfile import read_kdump
from kdumpctl_py.capture.save import save_vmcore
from tests.elfwriter import vmcore_bytes
from tests.vm.cycles import (
    FORMATS,
    LEVELS,
    PANIC,
    Cycle,
    assert_good_dump,
    assert_zlib_engine,
    compare_bitmaps,
    whole_copy,
)
from tests.vm.harness.errors import HarnessError
from tests.vm.harness.kernels import KERNEL_SUITES
from tests.vm.harness.oracles import Oracles

KERNELS = ("bullseye", "bookworm", "trixie", "trixie-backports")
ARCH_NAMES = ("x86_64", "arm64")
DL_FREE = 16
EVERY_CHECK = os.environ.get("KDUMPCTL_VM_MATRIX") == "all"

# Kernel suite -> dump-level bits its makedumpfile does not apply, and why.
# Debian 13's makedumpfile 1.7.6 takes a free block's head on 6.10+ for a slab
# page (_mapcount 0xf0000000 passes its isSlab() mask) and excludes no free page
# at all; fixed upstream in 1.7.7. Its -d N must equal our -d N without 16.
IGNORED_BITS: dict[str, tuple[int, str]] = {
    "trixie": (DL_FREE, "makedumpfile 1.7.6 excludes no free pages on 6.10+"),
    "trixie-backports": (DL_FREE, "makedumpfile 1.7.6 excludes no free pages on 6.10+"),
}
# (kernel suite, arch) -> how the suite's makedumpfile refuses this kernel's dumps.
# Debian 13's arm64 kernels use 52-bit virtual addresses with 4K pages (LPA2),
# which no makedumpfile in Debian supports (1.7.6, nor forky's 1.7.8).
MAKEDUMPFILE_REFUSES: dict[tuple[str, str], str] = {
    ("trixie", "arm64"): "PAGE SIZE 0x1000 and VA Bits 52 not supported",
    ("trixie-backports", "arm64"): "PAGE SIZE 0x1000 and VA Bits 52 not supported",
}
# The 52-bit arm64 kernels' cycles only save through capture and have drgn read the
# dump (neither tool of their suite reads it): CI leaves them to KDUMPCTL_VM_MATRIX=all
# for the arm64 installed-system cycle's time (README.md, "What the VM tier proves").
# The triage cycle still saves and analyses a trixie arm64 (52-bit) dump in CI.
MATRIX = [(k, a) for k in KERNELS for a in ARCH_NAMES
          if EVERY_CHECK or (k, a) not in MAKEDUMPFILE_REFUSES]
# (kernel suite, arch) -> how the suite's crash refuses the kernel, whatever the dump
# (it fails the same way on the whole ELF copy). No crash in Debian reads 7.3:
# trixie's 8.0.6 stops at kmem_cache_s_num, forky's 9.0.2 at module_num_gpl_syms.
# trixie's crash cannot translate the 52-bit arm64 linear map (6.12 and 7.3 alike).
CRASH_REFUSES: dict[tuple[str, str], str] = {
    ("trixie", "arm64"): 'type: "IRQ stack pointer"',
    ("trixie-backports", "x86_64"): "invalid structure member offset: kmem_cache_s_num",
    ("trixie-backports", "arm64"): 'type: "IRQ stack pointer"',
}


# The cycle whose first kernel also sets kexec load limits (Linux 6.6+; Debian 13's 6.12)
# before kdumpctl-py loads: reboot 4, panic 8, as the report had them.
LIMITED = ("trixie", "x86_64")
LIMITS = "4,8"


def runs_crash(kernel_suite: str, arch: str) -> bool:
    """Whether the cycle's dump goes to crash: not where crash cannot read the kernel."""
    return EVERY_CHECK or (kernel_suite, arch) not in CRASH_REFUSES


def matrix_args(kernel_suite: str, arch: str) -> tuple[str, ...]:
    # no_timer_check on x86_64: on a busy host TCG runs the IO-APIC timer check too
    # slowly and the first kernel panics ("IO-APIC + timer doesn't work!"), as the
    # 6.1 matrix cycle did once at load 8-13 (test_crash_cycle.py's X86_16G too).
    quirks = ("--append", "no_timer_check") if arch == "x86_64" else ()
    # The whole copy is for makedumpfile's bitmaps; the gdb index for crash.
    whole = () if (kernel_suite, arch) in MAKEDUMPFILE_REFUSES else ("--whole-copy",)
    index = ("--gdb-index",) if runs_crash(kernel_suite, arch) else ()
    # The first kernel's status, snapshot and estimate probes are other tests' business.
    skip = [a for stage in ("status", "snapshot", "status-loaded", "estimate")
            for a in ("--impl", f"{stage}=skip")]
    limits = ("--load-limits", LIMITS) if (kernel_suite, arch) == LIMITED else ()
    return ("--arch", arch, "--kernel-suite", kernel_suite, "--busy", *whole, *index,
            "--impl", "save=capture", *skip, *quirks, *limits)


def matrix_cycle(cycles: Callable[..., Cycle], kernel_suite: str, arch: str) -> Cycle:
    return cycles(*matrix_args(kernel_suite, arch))


def saved_dump(c: Cycle) -> Path:
    (path,) = [p for p in c.out.glob("dumps/*/vmcore") if p.parent.name != "whole"]
    return path


def crash_output(tool: Oracles, c: Cycle, dump: Path) -> str:
    out = tool.crash(Path(c.result["vmlinux"]), dump, "sys\nbt")
    return out.stdout + out.stderr


def notes_only_elf(dump: Path, arch: str, out: Path) -> Path:
    """An ELF vmcore of the kdump file's ELF notes (VMCOREINFO among them) and one zero
    page: enough for makedumpfile to decide whether it supports the kernel."""
    kd = read_kdump(str(dump))
    ram = vmcore_bytes([(0xFFF0000000000000, 0x40000000, bytes(4096), 4096)], kd.notes,
                       machine=ELF_MACHINES[arch])
    out.write_bytes(ram)
    return out


@pytest.mark.vm
@pytest.mark.parametrize("kernel_suite,arch", [
    pytest.param(k, a, id=f"{k}-{a}", marks=pytest.mark.cycle(*matrix_args(k, a)))
    for k, a in MATRIX])
def test_kernel_matrix(cycles: Callable[..., Cycle], tools: Callable[[str, str], Oracles],
                       tmp_path: Path, kernel_suite: str, arch: str) -> None:
    c = matrix_cycle(cycles, kernel_suite, arch)
    assert_good_dump(c)  # saved by capture, read by drgn
    assert c.result["implementations"]["save"] == "capture"
    assert_zlib_engine(saved_dump(c), isal=arch == "x86_64")  # and the suite's crash reads them
    suite_tools = tools(KERNEL_SUITES[kernel_suite].tools, arch)
    if runs_crash(kernel_suite, arch):
        text = crash_output(suite_tools, c, saved_dump(c))
        if (kernel_suite, arch) in CRASH_REFUSES:
            assert CRASH_REFUSES[kernel_suite, arch] in text, text[-3000:]
        else:
            assert f'PANIC: "Kernel panic - not syncing: {PANIC}' in text, text[-3000:]
            assert "sysrq_handle_crash" in text, text[-3000:]
    if (kernel_suite, arch) in MAKEDUMPFILE_REFUSES:
        elf = notes_only_elf(saved_dump(c), arch, tmp_path / "notes.elf")
        with pytest.raises(HarnessError, match=MAKEDUMPFILE_REFUSES[kernel_suite, arch]):
            suite_tools.makedumpfile(["-d", "31", str(elf), str(tmp_path / "d31")])
        return
    ignored = IGNORED_BITS.get(kernel_suite, (0, ""))[0]
    found = {level: compare_bitmaps(suite_tools, whole_copy(c), level, tmp_path, ignored)
             for level in LEVELS}
    record = {"kernel": c.result["kernel"], "arch": arch, "tools": suite_tools.versions,
              "ignored_bits": ignored, "levels": found}
    (c.out / "bitmaps.json").write_text(json.dumps(record, indent=1))
    for level, diff in found.items():
        assert diff["only_ours"] == diff["only_theirs"] == 0, f"-d {level}: {record}"


# Each is a crash start under qemu-user (about a minute): CI opens the ELF dump
# besides the matrix's kdump file, the full matrix every format.
ARM64_FORMATS = sorted(FORMATS) if EVERY_CHECK else ["elf"]


@pytest.mark.vm
@pytest.mark.cycle(*matrix_args("bookworm", "arm64"))
@pytest.mark.parametrize("fmt", ARM64_FORMATS)
def test_arm64_crash_opens_every_format(cycles: Callable[..., Cycle],
                                        tools: Callable[[str, str], Oracles], tmp_path: Path,
                                        fmt: str) -> None:
    """Debian 12's arm64 crash, under qemu-user, on each format saved from a busy arm64 dump."""
    c = matrix_cycle(cycles, "bookworm", "arm64")
    options, name = FORMATS[fmt]
    result = save_vmcore(str(whole_copy(c)), str(tmp_path), options)
    text = crash_output(tools("bookworm", "arm64"), c, Path(result.directory or "") / name)
    assert f'PANIC: "Kernel panic - not syncing: {PANIC}' in text, text[-3000:]
    assert "sysrq_handle_crash" in text and "read error" not in text, text[-3000:]


@pytest.mark.vm
@pytest.mark.cycle(*matrix_args(*LIMITED))
def test_limited_loads_are_not_spent_by_probes(cycles: Callable[..., Cycle]) -> None:
    """With kexec_load_limit_reboot=4 and _panic=8, status, status --json and start
    --dry-run leave both counts alone (a probe would spend one), status says it judged
    the calls without probing, and the load that follows spends one panic load."""
    c = matrix_cycle(cycles, *LIMITED)
    first = c.out / "results" / "first"
    assert c.guest("limits").get("rc") == 0, c.explain()
    counts = dict(line.split(" ", 1) for line in
                  (first / "limits.out").read_text().splitlines() if line)
    untouched = "reboot=4 panic=8"
    assert counts == {"set": untouched, "status": untouched, "status-json": untouched,
                      "dry-run": untouched}, counts
    st = json.loads((first / "limits-status.json").read_text())
    assert st["load_paths_basis"].startswith("not probed: "), st
    assert st["load_paths"]["kexec_file_load"] == "available" and st["method"] == "file"
    assert (first / "limits-dry-run.txt").read_text().startswith("method   file: ")
    assert "capture kernel loaded with file" in (first / "load.out").read_text()
    assert (first / "limits-loaded.out").read_text().split() == ["loaded", "reboot=4",
                                                                 "panic=7"]
    assert_good_dump(c)
