"""VM tier: the kernel matrix, one crash cycle per (kernel, architecture).

Each cycle boots a Debian cloud kernel (`crash-cycle --kernel-suite`), fills
its memory with every kind of page the dump levels tell apart (`--busy`),
panics, and the capture kernel runs `kdumpctl-py capture` as the service does
(-d 31, zlib) and then copies /proc/vmcore whole (`--whole-copy`). On the host:
drgn (`kdumpctl-py analyse`) and the kernel suite's own crash open the saved
dump, and our page bitmaps of the whole copy are compared with that suite's
makedumpfile at -d 1, 2, 4, 8, 16 and 31. The arm64 tools run under qemu-user
(harness/oracles.py). tests/vm/README.md has the table of results.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from kdumpctl_py.capture.filter import dumpable_pages
from kdumpctl_py.capture.kdumpfile import read_kdump
from kdumpctl_py.capture.vmcore import Vmcore
from tests.vm.cycles import PANIC, Cycle, assert_good_dump
from tests.vm.harness import aptsources
from tests.vm.harness.cache import cache_root
from tests.vm.harness.config import ARCHES
from tests.vm.harness.kernels import KERNEL_SUITES
from tests.vm.harness.oracles import Oracles, oracles

KERNELS = ("bullseye", "bookworm", "trixie", "trixie-backports")
ARCH_NAMES = ("x86_64", "arm64")
LEVELS = (1, 2, 4, 8, 16, 31)

# (kernel suite, level) -> why that suite's makedumpfile keeps pages we exclude.
# Only this direction is accepted; see tests/vm/README.md for the counts.
KNOWN_DIFFERENCES: dict[tuple[str, int], str] = {}


def matrix_cycle(cycles: Callable[..., Cycle], kernel_suite: str, arch: str) -> Cycle:
    return cycles("--arch", arch, "--kernel-suite", kernel_suite, "--busy", "--whole-copy",
                  "--impl", "save=capture")


@pytest.fixture(scope="session")
def tools() -> Callable[[str, str], Oracles]:
    """A suite's makedumpfile and crash for an architecture, unpacked once per session."""
    made: dict[tuple[str, str], Oracles] = {}

    def get(suite: str, arch: str) -> Oracles:
        if (suite, arch) not in made:
            mirrors = aptsources.find_mirrors(aptsources.machine_entries())
            made[suite, arch] = oracles(cache_root(), suite, ARCHES[arch], mirrors)
        return made[suite, arch]

    return get


def whole_copy(c: Cycle) -> Path:
    path = c.out / "dumps" / "whole" / "copy.elf"
    assert path.exists(), c.explain()
    return path


def saved_dump(c: Cycle) -> Path:
    (path,) = [p for p in c.out.glob("dumps/*/vmcore") if p.parent.name != "whole"]
    return path


def compare_bitmaps(mdf: Oracles, whole: Path, level: int, scratch: Path) -> dict[str, int]:
    """Pages each side keeps that the other excludes, at one dump level."""
    out = scratch / f"makedumpfile-d{level}"
    mdf.makedumpfile(["-d", str(level), str(whole), str(out)])
    theirs = read_kdump(str(out))
    out.unlink()
    with Vmcore(str(whole)) as v:
        present, keep = dumpable_pages(v, level)
    assert (theirs.bitmap1 == present).all(), f"-d {level}: the 1st bitmaps differ"
    return {"ours": int(np.count_nonzero(keep)), "theirs": int(np.count_nonzero(theirs.bitmap2)),
            "only_ours": int(np.count_nonzero(keep & ~theirs.bitmap2)),
            "only_theirs": int(np.count_nonzero(theirs.bitmap2 & ~keep))}


def crash_output(tool: Oracles, c: Cycle, dump: Path) -> str:
    out = tool.crash(Path(c.result["vmlinux"]), dump, "sys\nbt")
    return out.stdout + out.stderr


@pytest.mark.vm
@pytest.mark.parametrize("arch", ARCH_NAMES)
@pytest.mark.parametrize("kernel_suite", KERNELS)
def test_kernel_matrix(cycles: Callable[..., Cycle], tools: Callable[[str, str], Oracles],
                       tmp_path: Path, kernel_suite: str, arch: str) -> None:
    c = matrix_cycle(cycles, kernel_suite, arch)
    assert_good_dump(c)  # saved by capture, read by drgn
    assert c.result["implementations"]["save"] == "capture"
    suite_tools = tools(KERNEL_SUITES[kernel_suite].tools, arch)
    text = crash_output(suite_tools, c, saved_dump(c))
    assert f'PANIC: "Kernel panic - not syncing: {PANIC}' in text, text[-3000:]
    assert "sysrq_handle_crash" in text, text[-3000:]
    found = {level: compare_bitmaps(suite_tools, whole_copy(c), level, tmp_path)
             for level in LEVELS}
    record = {"kernel": c.result["kernel"], "arch": arch, "tools": suite_tools.versions,
              "levels": found}
    (c.out / "bitmaps.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record))
    for level, diff in found.items():
        assert diff["only_ours"] == 0, f"-d {level}: we keep pages makedumpfile drops: {record}"
        if (kernel_suite, level) not in KNOWN_DIFFERENCES:
            assert diff["only_theirs"] == 0, f"-d {level}: {record}"
