"""Running crash cycles for the VM tier: one run per set of arguments per session.

The cycles whose whole vmcores the analysis tests read (`DUMP_CYCLES`) are kept in
the harness's cache under `cycles/`, keyed by their arguments, the guest kernel's
package version and the source of kdumpctl_py and of the harness: a run whose key
is there is not run again, and a change to any of these makes a new one.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kdumpctl_py.capture.filter import Bits, dumpable_pages
from kdumpctl_py.capture.kdumpfile import read_kdump
from kdumpctl_py.capture.save import SaveOptions
from kdumpctl_py.capture.vmcore import Vmcore
from tests.lane import Job, Spawn, run
from tests.vm.harness.cache import cache_root
from tests.vm.harness.oracles import Oracles

CRASH_CYCLE = Path(__file__).resolve().with_name("crash-cycle")
PANIC = "sysrq triggered crash"
LEVELS = (1, 2, 4, 8, 16, 31)  # the dump levels our bitmaps are compared with makedumpfile's at
CRASHER = "kdumpcrasher"
CYCLE_TIMEOUT_S = 40 * 60  # a cold cache downloads ~350 MB per arch, most of it -dbg
REPO = Path(__file__).resolve().parents[2]
# The two cycles that leave a whole ELF vmcore, each its architecture's dump for the tests
# that read real dumps (tests/analyse/dumps.py); the VM tier's oracles run them too.
REFERENCE_X86 = ("--arch", "x86_64", "--loader", "kexec-tools", "--impl", "save=copy",
                 "--impl", "analyse=drgn-script")
ARM64_WHOLE = ("--arch", "arm64", "--impl", "save=copy")
DUMP_CYCLES = {"x86": REFERENCE_X86, "arm64": ARM64_WHOLE}
# The save formats drgn and crash must open: save options -> output name.
FORMATS = {  # save options -> output name
    "kdump-zlib": (SaveOptions(31, "zlib", progress=False), "vmcore"),
    "kdump-zstd": (SaveOptions(31, "zstd", progress=False), "vmcore"),
    "kdump-lzo": (SaveOptions(31, "lzo", progress=False), "vmcore"),
    "kdump-none": (SaveOptions(31, "none", progress=False), "vmcore"),
    "elf": (SaveOptions(31, format="elf", progress=False), "vmcore"),
    "flat": (SaveOptions(31, "zlib", flat=True, progress=False), "vmcore.flat"),
}
ISSUE_7 = ("issue 7: no capture-kernel loader works on Debian 12 arm64 without "
           "kdumpctl-py start; Debian's kexec-tools 2.0.25 fails there (tests/vm/README.md)")


@dataclass(frozen=True)
class Cycle:
    """One finished run of crash-cycle and what it left behind."""

    out: Path
    exit_status: int
    result: dict[str, Any]

    @property
    def report(self) -> dict[str, Any]:
        path = self.out / "report.json"
        assert path.exists(), self.explain()
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def explain(self) -> str:
        log = (self.out / "crash-cycle.log").read_text(errors="replace")
        return (f"crash-cycle exited {self.exit_status}; failed stage "
                f"{self.result.get('failed_stage')}: {self.result.get('failure')}\n"
                + "\n".join(log.splitlines()[-60:]))

    def guest(self, stage: str) -> dict[str, Any]:
        info: dict[str, Any] = self.result.get("guest_results", {}).get(stage, {})
        return info


def _slug(args: tuple[str, ...]) -> str:
    return "cycle-" + "-".join(re.sub(r"[^A-Za-z0-9_]+", "", a) for a in args
                               if not a.startswith("-"))


def _sources() -> str:
    """A digest of what builds and runs a guest: kdumpctl_py and the harness."""
    h = hashlib.sha256()
    files = [*sorted((REPO / "kdumpctl_py").rglob("*.py")),
             *sorted((REPO / "tests/vm/harness").rglob("*.py")),
             REPO / "tests/vm/crash-cycle", REPO / "pyproject.toml"]
    for path in files:
        h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _kernel_version(arch: str, update: bool) -> str | None:
    """The guest kernel package a run would boot today, from the harness's own apt state
    (refreshed as a run refreshes it when `update`); None when that cannot be known."""
    from tests.vm.harness import aptsources
    from tests.vm.harness.config import ARCHES, SUITES
    from tests.vm.harness.debian import AptState
    from tests.vm.harness.errors import HarnessError

    try:
        mirrors = aptsources.find_mirrors(aptsources.machine_entries())
        apt = AptState(cache_root(), SUITES["bookworm"].name, ARCHES[arch], mirrors)
        if update:
            apt.update()
        elif not (apt.dir / "updated").exists():
            return None
        return apt.kernel().image.key
    except (HarnessError, OSError):
        return None


def cached_cycle_dir(args: tuple[str, ...], update: bool) -> Path | None:
    """Where the cache keeps this cycle's run; None for cycles that are not kept."""
    if args not in DUMP_CYCLES.values():
        return None
    kernel = _kernel_version(args[args.index("--arch") + 1], update)
    if kernel is None:
        return None
    key = hashlib.sha256("\0".join([*args, kernel, _sources()]).encode()).hexdigest()[:16]
    return cache_root() / "cycles" / f"{_slug(args)}-{key}"


def _read(out: Path, rc: int | None = None) -> Cycle:
    result_path = out / "result.json"
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    return Cycle(out, result.get("exit_status", 1) if rc is None else rc, result)


def cached_cycle(args: tuple[str, ...]) -> Cycle | None:
    """The kept run of a cycle made from today's sources, without running anything."""
    final = cached_cycle_dir(args, update=False)
    return _read(final) if final is not None and final.is_dir() else None


def _keep(out: Path, final: Path) -> Path:
    """Move a good run into the cache, in place of the runs of older sources."""
    for old in final.parent.glob(final.name[:-16] + "*"):
        shutil.rmtree(old, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "work", ignore_errors=True)
    out.rename(final)
    return final


def cycle_job(args: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory) -> Job:
    """The lane's job (tests/lane.py) for one crash cycle: a kept cycle (`DUMP_CYCLES`)
    made from the same sources and kernel is not run again."""

    def job(spawn: Spawn) -> Cycle:
        final = cached_cycle_dir(args, update=True)
        if final is not None and final.is_dir():
            return _read(final)
        cycle = run_crash_cycle(spawn, tmp_path_factory.mktemp(_slug(args)), args)
        if final is not None and cycle.exit_status == 0:
            return _read(_keep(cycle.out, final), 0)
        return cycle

    return job


def run_crash_cycle(spawn: Spawn, out: Path, args: Sequence[str],
                    timeout: float = CYCLE_TIMEOUT_S) -> Cycle:
    """One run of crash-cycle into `out` (its log crash-cycle.log there)."""
    with open(out / "crash-cycle.log", "wb") as log:
        rc = run(spawn, [sys.executable, str(CRASH_CYCLE), "--out", str(out), *args],
                 timeout, stdout=log, stderr=subprocess.STDOUT).returncode
    return _read(out, rc)


def backtrace_functions(report: dict[str, Any]) -> list[str]:
    """Function names of the crashed thread's frames, from either analyser's schema."""
    names = []
    for frame in report.get("backtrace", []):
        for key in ("function", "symbol"):
            if frame.get(key):
                names.append(frame[key])
    return names


def assert_good_dump(cycle: Cycle) -> None:
    """The dump was saved, read back and shows the crash the guest was told to make."""
    assert cycle.exit_status == 0, cycle.explain()
    report = cycle.report
    panic = report.get("panic_message") or report.get("panic_log_line") or ""
    assert PANIC in panic, f"panic message {panic!r}"
    assert "sysrq_handle_crash" in backtrace_functions(report), report.get("backtrace")
    assert report["crashed_thread"]["comm"] == CRASHER
    capture_log = (cycle.out / "console-capture.log").read_bytes()
    assert b"Linux version" in capture_log and b"KDUMPCTL-VM: save ok" in capture_log


def whole_copy(c: Cycle) -> Path:
    path = c.out / "dumps" / "whole" / "copy.elf"
    assert path.exists(), c.explain()
    return path


def makedumpfile_bitmaps(mdf: Oracles, whole: Path, level: int,
                         scratch: Path) -> tuple[Bits, Bits]:
    """makedumpfile's 1st and 2nd bitmaps of `whole` at `level`."""
    out = scratch / f"makedumpfile-d{level}"
    mdf.makedumpfile(["-d", str(level), str(whole), str(out)])
    theirs = read_kdump(str(out))
    out.unlink()
    return np.asarray(theirs.bitmap1, dtype=bool), np.asarray(theirs.bitmap2, dtype=bool)


def bitmap_differences(ours: tuple[Bits, Bits], theirs: tuple[Bits, Bits],
                       level: int) -> dict[str, int]:
    """Pages each side keeps that the other excludes; the 1st bitmaps must be equal."""
    (present, keep), (their_present, their_keep) = ours, theirs
    assert (their_present == present).all(), f"-d {level}: the 1st bitmaps differ"
    return {"ours": int(np.count_nonzero(keep)), "theirs": int(np.count_nonzero(their_keep)),
            "only_ours": int(np.count_nonzero(keep & ~their_keep)),
            "only_theirs": int(np.count_nonzero(their_keep & ~keep))}


def compare_bitmaps(mdf: Oracles, whole: Path, level: int, scratch: Path,
                    ignored: int = 0) -> dict[str, int]:
    """Pages each side keeps that the other excludes: theirs at `level`, ours without
    the `ignored` bits."""
    theirs = makedumpfile_bitmaps(mdf, whole, level, scratch)
    with Vmcore(str(whole)) as v:
        ours = dumpable_pages(v, level & ~ignored)
    return bitmap_differences(ours, theirs, level)


def assert_efi_acpi_boot(console: str) -> None:
    """A kernel's log of a boot through EFI with ACPI, never from a device tree's
    machine description."""
    assert re.search(r"^\[ *[\d.]+\] efi: EFI v[\d.]+ by EDK II", console, re.M)
    assert re.search(r"^\[ *[\d.]+\] efi: .*ACPI 2\.0=0x", console, re.M)
    assert re.search(r"^\[ *[\d.]+\] ACPI: RSDP 0x", console, re.M)
    assert "Machine model:" not in console


def assert_capture_memory_from_efi(capture: str, iomem: str) -> None:
    """The EFI memory map gave the capture kernel its memory, which
    linux,usable-memory-range then capped to the crash region (`Crash kernel` in the
    crashed kernel's /proc/iomem): the other ranges of its memblock are the EFI map's
    no-map regions (runtime services, firmware), which memblock_cap_memory_range keeps,
    and none may be the crashed kernel's System RAM."""
    nodes = re.findall(r"node   0: \[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\]", capture)
    reserved = re.search(r"^ *([0-9a-f]+)-([0-9a-f]+) : Crash kernel$", iomem, re.M)
    assert nodes and reserved
    crash = (int(reserved.group(1), 16), int(reserved.group(2), 16))
    ranges = [(int(a, 16), int(b, 16)) for a, b in nodes]
    assert crash in ranges
    ram = [(int(a, 16), int(b, 16)) for a, b in
           re.findall(r"^([0-9a-f]+)-([0-9a-f]+) : System RAM$", iomem, re.M)]
    for start, end in ranges:
        if (start, end) != crash:
            assert all(end < lo or start > hi for lo, hi in ram), (hex(start), hex(end))


def assert_zlib_engine(dump: Path, isal: bool) -> None:
    """Which engine wrote the capture kernel's zlib pages: with isal in the capture
    initramfs (harness/wheel.py: x86_64) ISA-L, whose pages are not what the system zlib
    makes of them; without it (arm64, riscv64) the system zlib, compress2's bytes. Each
    decompresses to a whole page either way."""
    import zlib

    import numpy as np

    from kdumpctl_py.capture.kdumpfile import PAGE_DESC_DTYPE, read_kdump

    kd = read_kdump(str(dump))
    data = dump.read_bytes()
    descs = np.frombuffer(data, PAGE_DESC_DTYPE, int(np.count_nonzero(kd.bitmap2)),
                          kd.descs_offset)
    compressed = descs[descs["flags"] == 1][:2000]
    assert len(compressed) > 100
    system = 0
    for offset, size in zip(compressed["offset"].tolist(), compressed["size"].tolist(),
                            strict=True):
        stored = data[offset:offset + size]
        page = zlib.decompress(stored)
        assert len(page) == kd.header.block_size
        system += stored == zlib.compress(page, 1)
    if isal:
        assert system < len(compressed) // 10, f"{system} of {len(compressed)} are compress2's"
    else:
        assert system == len(compressed), f"{system} of {len(compressed)} are compress2's"
