"""VM tier: riscv64 crash cycles, Sv57 (QEMU virt's default) and Sv39 (`no4lvl`, as most
boards run), on Debian trixie's kernel under OpenSBI.

Each loads the capture kernel with kdumpctl-py (kexec_load: trixie has no kexec-tools
for riscv64 and its kernel no KEXEC_FILE) on a busy guest, saves through `capture` at
-d 31, and the report names the panic from the kernel's own Call Trace (drgn cannot
unwind riscv64, and the report says so). The whole copy of /proc/vmcore is then
filtered by us and by trixie's riscv64 makedumpfile under qemu-user at every dump
level: the pages present agree at every level; the pages kept do not, and the test
records by how much and xfails (tests/vm/README.md says what differs: makedumpfile
1.7.6 drops busy pages we keep, a hugetlb head among them, at -d 2).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from kdumpctl_py.capture.vmcore import Vmcore
from tests.vm.cycles import LEVELS, Cycle, assert_good_dump, compare_bitmaps, whole_copy
from tests.vm.harness.oracles import Oracles

# 320M: with 256M the saver was killed for memory once on the busy Sv57 guest (the
# riscv64 Image is 30 MiB, and the capture kernel has 186 MiB of 256).
SV57 = ("--arch", "riscv64", "--busy", "--whole-copy", "--impl", "save=capture",
        "--crashkernel", "320M")
SV39 = (*SV57, "--append", "no4lvl")


@pytest.mark.vm
@pytest.mark.parametrize("args,va_bits", [(SV57, 57), (SV39, 39)], ids=["sv57", "sv39"])
def test_riscv64_cycle(cycles: Callable[..., Cycle], tools: Callable[[str, str], Oracles],
                       tmp_path: Path, args: tuple[str, ...], va_bits: int) -> None:
    c = cycles(*args)
    assert_good_dump(c)
    assert c.result["implementations"]["load"] == "kdumpctl-py"
    assert c.result["implementations"]["save"] == "capture"
    missing = " ".join(c.report.get("missing", []))
    assert "cannot unwind riscv64" in missing, missing
    with Vmcore(str(whole_copy(c))) as v:
        assert v.vmcoreinfo.number("VA_BITS") == va_bits
    found = {level: compare_bitmaps(tools("trixie", "riscv64"), whole_copy(c), level,
                                    tmp_path) for level in LEVELS}
    (c.out / "bitmaps.json").write_text(json.dumps(found, indent=1))
    differ = {level: d for level, d in found.items() if d["only_ours"] or d["only_theirs"]}
    if differ:
        pytest.xfail(f"trixie's makedumpfile 1.7.6 keeps other pages on riscv64: {differ}")
