"""VM tier: riscv64 crash cycles, Sv57 (QEMU virt's default) and Sv39 (`no4lvl`, as most
boards run), on Debian trixie's kernel under OpenSBI.

Each loads the capture kernel with kdumpctl-py (kexec_load: trixie has no kexec-tools
for riscv64 and its kernel no KEXEC_FILE) on a busy guest, saves through `capture` at
-d 31, and the report names the panic from the kernel's own Call Trace (drgn cannot
unwind riscv64, and the report says so). The whole copy of /proc/vmcore is then
filtered by us and by trixie's riscv64 makedumpfile 1.7.6 under qemu-user at every
dump level. The pages present agree at every level. The pages kept agree once our
filter reads struct pages the way 1.7.6 does (tests/vm/README.md): its vtop_riscv64()
takes a 2 MiB vmemmap leaf for a 4 KiB page, so every struct page of a section is read
from the first 4 KiB of the section's struct pages (fixed upstream after 1.7.9, in
863e2c4), and on 6.12 it excludes no free page (fixed in 1.7.7, 72c3414).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import kdumpctl_py.capture.filter as page_filter
from kdumpctl_py.capture.filter import DL_FREE, dumpable_pages
from kdumpctl_py.capture.pagetables import RISCV_PPN, PageTables
from kdumpctl_py.capture.vmcore import MissingMemory, Vmcore
from tests.vm.cycles import (
    LEVELS,
    Cycle,
    assert_good_dump,
    bitmap_differences,
    makedumpfile_bitmaps,
    whole_copy,
)
from tests.vm.harness.oracles import Oracles

# The default 256M: both save with 192M (tests/vm/README.md, the capture kernel's memory
# on riscv64), and 160M cannot unpack the capture initramfs.
SV57 = ("--arch", "riscv64", "--busy", "--whole-copy", "--impl", "save=capture")
SV39 = (*SV57, "--append", "no4lvl")


class Makedumpfile176Tables(PageTables):
    """riscv64 page tables as makedumpfile 1.7.6-1.7.9 walk them: a leaf above the last
    level (a 2 MiB vmemmap page) gives its first 4 KiB page plus the address's offset in
    a 4 KiB page (vtop_riscv64()'s `goto out`)."""

    def _walk_riscv(self, vaddr: int) -> tuple[int, int]:
        table = self._root
        for level in range(self._levels, 0, -1):
            entry = self._entry(table, (vaddr >> (12 + 9 * (level - 1))) & 0x1FF)
            if not entry & 1:
                raise MissingMemory(f"virtual address {vaddr:#x} is not mapped")
            table = (entry & RISCV_PPN) << 2
            if entry & 0xE:
                break
        return table + (vaddr & 0xFFF), 0x1000 - (vaddr & 0xFFF)


@pytest.mark.vm
@pytest.mark.parametrize("args,va_bits", [
    pytest.param(SV57, 57, id="sv57", marks=pytest.mark.cycle(*SV57)),
    pytest.param(SV39, 39, id="sv39", marks=pytest.mark.cycle(*SV39))])
def test_riscv64_cycle(cycles: Callable[..., Cycle], tools: Callable[[str, str], Oracles],
                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       args: tuple[str, ...], va_bits: int) -> None:
    c = cycles(*args)
    assert_good_dump(c)
    assert c.result["implementations"]["load"] == "kdumpctl-py"
    assert c.result["implementations"]["save"] == "capture"
    missing = " ".join(c.report.get("missing", []))
    assert "cannot unwind riscv64" in missing, missing
    whole = whole_copy(c)
    with Vmcore(str(whole)) as v:
        assert v.vmcoreinfo.number("VA_BITS") == va_bits
    mdf = tools("trixie", "riscv64")
    assert "1.7.6" in mdf.versions["makedumpfile"], mdf.versions
    found: dict[int, dict[str, int]] = {}
    as_176: dict[int, dict[str, int]] = {}
    for level in LEVELS:
        theirs = makedumpfile_bitmaps(mdf, whole, level, tmp_path)
        with Vmcore(str(whole)) as v:
            found[level] = bitmap_differences(dumpable_pages(v, level), theirs, level)
        with monkeypatch.context() as m, Vmcore(str(whole)) as v:
            m.setattr(page_filter, "PageTables", Makedumpfile176Tables)
            as_176[level] = bitmap_differences(dumpable_pages(v, level & ~DL_FREE), theirs,
                                               level)
    (c.out / "bitmaps.json").write_text(json.dumps({"ours": found, "read_as_1.7.6": as_176},
                                                   indent=1))
    assert not (found[1]["only_ours"] or found[1]["only_theirs"]), found[1]
    differ = {level: d for level, d in as_176.items() if d["only_ours"] or d["only_theirs"]}
    assert not differ, f"makedumpfile 1.7.6 differs beyond its vtop and 6.12's free pages: {differ}"
