"""Real crash-cycle dumps, for the tests that read them (too big to commit).

Each architecture's dump is the whole ELF vmcore of a VM-tier cycle that saves it by
copying (`tests/vm/cycles.py` DUMP_CYCLES), kept in the harness's cache: with --vm a
missing one is made (the VM tier's oracles run the same cycles, so no guest runs
twice); without --vm a test skips unless a run made from today's sources is cached.
The vmlinux with DWARF is the one the harness keeps under its cache's vmlinux/ with
the dump's build ID.
"""

from __future__ import annotations

import functools
import platform
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kdumpctl_py.analyse.debuginfo import elf_build_id
from tests.vm.cycles import DUMP_CYCLES, Cycle, cached_cycle
from tests.vm.harness.cache import cache_root

ARCHES = tuple(DUMP_CYCLES)  # x86, arm64


@dataclass(frozen=True)
class Dump:
    arch: str
    vmcore: Path
    vmlinux: Path | None
    build_id: str | None
    release: str | None
    format: str  # as the harness saved it: ELF or kdump-compressed
    console: Path  # the crashed kernel's serial console


DumpOf = Callable[..., Dump]  # the crash_dump fixture: (arch, vmlinux=True) -> Dump


def _vmcoreinfo(vmcore: Path) -> tuple[str | None, str | None, str]:
    from kdumpctl_py.analyse.program import open_core

    _prog, fmt, info, _cut = open_core(str(vmcore))
    return info.build_id, info.osrelease, fmt


@functools.cache
def vmlinux_with(build_id: str) -> Path | None:
    for path in sorted((cache_root() / "vmlinux").glob("*/vmlinux")):
        try:
            if elf_build_id(path) == build_id:
                return path
        except (OSError, ValueError):
            continue
    return None


@functools.cache
def _dump(out: Path, arch: str) -> Dump:
    (vmcore,) = sorted(out.glob("dumps/*/vmcore"))
    bid, release, fmt = _vmcoreinfo(vmcore)
    return Dump(arch, vmcore, vmlinux_with(bid) if bid else None, bid, release, fmt,
                out / "console-first.log")


def dump_getter(config: pytest.Config, cycles: Callable[..., Cycle]) -> Callable[..., Dump]:
    """`get(arch, vmlinux=True)`: that architecture's dump (and its vmlinux, unless
    vmlinux=False), running its cycle with --vm when none is cached."""

    def get(arch: str, vmlinux: bool = True) -> Dump:
        pytest.importorskip("drgn")
        args = DUMP_CYCLES[arch]
        if config.getoption("--vm"):
            cycle = cycles(*args)
            assert cycle.exit_status == 0, cycle.explain()
        else:
            found = cached_cycle(args)
            if found is None or found.exit_status != 0:
                pytest.skip(f"no {arch} crash-cycle dump of today's sources in "
                            f"{cache_root()}/cycles: run pytest --vm once to make it")
            cycle = found
        dump = _dump(cycle.out, arch)
        if vmlinux and dump.vmlinux is None:
            pytest.fail(f"no vmlinux with build ID {dump.build_id} under {cache_root()}/vmlinux",
                        pytrace=False)
        return dump

    return get


@functools.cache
def _makedumpfile(arch: str) -> tuple[str, ...]:
    """argv of a makedumpfile that reads `arch`'s dumps: this host's for its own
    architecture, else Debian 12's for that one under qemu-user (harness/oracles.py)."""
    from tests.vm.harness import aptsources
    from tests.vm.harness.config import ARCHES as HARNESS_ARCHES
    from tests.vm.harness.oracles import oracles

    args = DUMP_CYCLES[arch]
    machine = args[args.index("--arch") + 1]
    if machine == platform.machine():
        return ("makedumpfile",)
    mirrors = aptsources.find_mirrors(aptsources.machine_entries())
    return tuple(oracles(cache_root(), "bookworm", HARNESS_ARCHES[machine], mirrors)
                 .command("makedumpfile"))


def makedumpfile(dump: Dump, *args: str) -> None:
    """Run Debian 12's makedumpfile for the dump's architecture on it; it must succeed."""
    argv = _makedumpfile(dump.arch)
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed (setup.sh installs it)")
    r = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, f"makedumpfile {' '.join(args)}: {r.stdout[-300:]}{r.stderr[-300:]}"


def dump_as(dump: Dump, fmt: str, into: Path) -> Path:
    """The dump in format `fmt`: as saved, or an ELF one copied by makedumpfile -c -d 31
    (kdump-compressed, zlib, filtered), made once per directory."""
    if dump.format == fmt:
        return dump.vmcore
    assert fmt == "kdump-compressed" and dump.format == "ELF", (dump.format, fmt)
    out = into / f"{dump.arch}.kdump"
    if not out.exists():
        makedumpfile(dump, "-c", "-d", "31", str(dump.vmcore), str(out))
    return out


def assert_reads_like_the_kernel(report: dict[str, Any]) -> None:
    """An analyse --json report of a crash-cycle dump shows every CPU's backtrace (arm64
    marks the CPUs it stops offline), and each func+off/size whose function the log's own
    Call Trace names has the kernel's size: the distance to the next symbol."""
    cpus = report["cpus"]
    assert sorted(c["cpu"] for c in cpus) == list(range(report["cpus_present"])), cpus
    assert all(c["backtrace"] for c in cpus), cpus
    logged = {}
    for line in report["log"]["tail"]:
        for name, size in re.findall(r"\s([\w.]+)\+0x[0-9a-f]+/0x([0-9a-f]+)", line["text"]):
            logged[name] = int(size, 16)
    frames = report["backtrace"] + [f for c in cpus for f in c["backtrace"]]
    ours = {f["symbol"]: f["size"] for f in frames if f["size"] and f["symbol"] in logged}
    assert len(ours) >= 5, (logged, frames)
    assert ours == {name: logged[name] for name in ours}
