from __future__ import annotations

import io
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from kdumpctl_py.elf import EM_X86_64, PT_LOAD, PT_NOTE
from kdumpctl_py.errors import KdumpError, UsageError
from kdumpctl_py.facts.view import SystemView
from kdumpctl_py.plan.elfcorehdr import decode, plan_elfcorehdr
from tests.builders import arm64_snapshot, cpu_files
from tests.conftest import SNAPSHOTS
from tests.elfwriter import kcore_bytes, note
from tests.snapshots import make_snapshot

X86_IOMEM = """\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
00100000-3ffdffff : System RAM
  01000000-01e01ce6 : Kernel code
  2f000000-3effffff : Crash kernel
3ffe0000-3fffffff : Reserved
100000000-13fffffff : System RAM
"""
PAGE_OFFSET = 0xFFFF888000000000


def x86_snapshot(root: Path) -> SystemView:
    kcore = kcore_bytes(
        [(PAGE_OFFSET + 0x100000, 0x100000, 0x3FEE0000),
         (0xFFFFFFFF81000000, 0x1000000, 0x2A00000),  # KCORE_TEXT: _text.._end
         (0xFFFFC90000000000, (1 << 64) - 1, 1 << 40)],  # vmalloc: no paddr
        note(b"VMCOREINFO", 0, b"OSRELEASE=6.1.0-test\nPAGESIZE=4096\n"))
    files = {"/proc/iomem": X86_IOMEM, "/proc/kcore": kcore,
             "/sys/kernel/vmcoreinfo": "0x000000003ffd7000 1024\n",
             **cpu_files({0: 0x3FC15A00, 1: 0x3FC35A00}, 368)}
    return SystemView(make_snapshot(root, "x86_64", files))


def test_x86_64_layout(tmp_path: Path) -> None:
    hdr = plan_elfcorehdr(x86_snapshot(tmp_path))
    assert hdr.machine == EM_X86_64
    assert [(p.paddr, p.memsz) for p in hdr.notes] == [
        (0x3FC15A00, 368), (0x3FC35A00, 368), (0x3FFD7000, 0x1024)]
    loads = [(p.paddr, p.memsz, p.vaddr) for p in hdr.loads]
    assert loads == [
        (0x1000000, 0x2A00000, 0xFFFFFFFF81000000),  # kernel text first
        # below 1 MiB is gone, the crash region is cut out of the middle range
        (0x100000, 0x2F000000 - 0x100000, PAGE_OFFSET + 0x100000),
        (0x3F000000, 0x3FFE0000 - 0x3F000000, PAGE_OFFSET + 0x3F000000),
        (0x100000000, 0x40000000, PAGE_OFFSET + 0x100000000),
    ]
    assert all(p.offset == p.paddr for p in hdr.phdrs)


def test_encoding_reads_back_with_pyelftools(tmp_path: Path) -> None:
    hdr = plan_elfcorehdr(x86_snapshot(tmp_path))
    data = hdr.encode()
    assert len(data) % 4096 == 0
    elf = ELFFile(io.BytesIO(data))
    assert elf["e_type"] == "ET_CORE" and elf["e_machine"] == "EM_X86_64"
    assert elf.little_endian and elf.elfclass == 64
    segs = [s.header for s in elf.iter_segments()]
    assert [(s.p_type, s.p_paddr, s.p_offset, s.p_vaddr, s.p_memsz) for s in segs] == [
        ({PT_LOAD: "PT_LOAD", PT_NOTE: "PT_NOTE"}[p.type], p.paddr, p.offset, p.vaddr, p.memsz)
        for p in hdr.phdrs]
    assert decode(data) == hdr


@pytest.mark.parametrize("with_kcore_ram", [True, False])
def test_arm64_text_from_vmcoreinfo_and_iomem(tmp_path: Path, with_kcore_ram: bool) -> None:
    """_text comes from iomem's Kernel code (at _stext) rounded down to the 2 MiB load alignment."""
    hdr = plan_elfcorehdr(arm64_snapshot(tmp_path, with_kcore_ram))
    text, *ram = hdr.loads
    assert text.paddr == 0x40200000 and text.memsz == 0x41A60000 - 0x40200000
    assert text.vaddr == 0x40200000 + 0xFFFF7FFF87E00000
    # The linear map is the same whether read from kcore or derived from VA_BITS.
    assert [(p.paddr, p.memsz, p.vaddr) for p in ram] == [
        (0x40000000, 0x2FE00000, 0xFFFF000000000000),
        (0x7FE00000, 0x200000, 0xFFFF00003FE00000)]
    assert [p.memsz for p in hdr.notes] == [424, 0x1024]


def test_unknown_facts_fail_with_a_reason(tmp_path: Path) -> None:
    view = SystemView(make_snapshot(tmp_path, "x86_64", {"/proc/iomem": X86_IOMEM}))
    with pytest.raises(KdumpError, match="crash_notes"):
        plan_elfcorehdr(view)


@pytest.mark.parametrize("data", [b"", b"\x7fELF" + bytes(60), b"MZ" + bytes(100)])
def test_decode_rejects_garbage(data: bytes) -> None:
    with pytest.raises(UsageError):
        decode(data)


def test_riscv64_as_the_kernel_builds_it_but_without_firmware_memory() -> None:
    """prepare_elf_headers() (arch/riscv/kernel/machine_kexec_file.c): top-level System RAM
    minus the crash region, Reserved children kept; the kernel-image PT_LOAD from
    KCORE_TEXT; OpenSBI's mmode_resv0 (0x80000000+512K) left out, S-mode cannot read it."""
    view = SystemView(SNAPSHOTS / "debian13-riscv64")
    hdr = plan_elfcorehdr(view)
    assert hdr.machine == 243
    text, *ram = hdr.loads
    assert (text.vaddr, text.paddr, text.memsz) == (0xFFFFFFFF80002000, 0x80202000, 31891456)
    assert [(p.paddr, p.paddr + p.memsz - 1) for p in ram] == [
        (0x80080000, 0xACBFFFFF), (0xBCC00000, 0xBFFFFFFF)]
    page_offset, ram_base = 0xFF60000000000000, 0x80000000  # VMCOREINFO
    assert all(p.vaddr == p.paddr - ram_base + page_offset for p in ram)
