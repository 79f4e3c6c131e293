from __future__ import annotations

import struct
from pathlib import Path

from kdumpctl_py.analyse.prstatus import (
    CpuRegs,
    cpu_registers,
    parse_prstatus,
    read_elf,
    read_kdump,
)
from kdumpctl_py.elf import EM_AARCH64, EM_RISCV, EM_X86_64, Note
from tests.elfwriter import note, vmcore_bytes


def prstatus(pid: int, regs: dict[int, int], nregs: int) -> bytes:
    """A 64-bit struct elf_prstatus: pr_pid at 32, pr_reg at 112, then pr_fpvalid."""
    head = bytearray(112)
    struct.pack_into("<i", head, 32, pid)
    words = [regs.get(i, 0) for i in range(nregs)]
    return bytes(head) + struct.pack(f"<{nregs}Q", *words) + bytes(8)


X86_CPU1 = prstatus(168, {16: 0xFFFFFFFF9616475A, 19: 0xFFFFA8C0C04B7D90}, 27)
ARM64_CPU0 = prstatus(0, {31: 0xFFFF800008003E90, 32: 0xFFFF8000080123A4}, 34)


def test_x86_64_and_arm64_layouts() -> None:
    assert parse_prstatus(X86_CPU1, EM_X86_64, 1) == CpuRegs(1, 168, 0xFFFFFFFF9616475A,
                                                             0xFFFFA8C0C04B7D90)
    assert parse_prstatus(ARM64_CPU0, EM_AARCH64, 0) == CpuRegs(0, 0, 0xFFFF8000080123A4,
                                                               0xFFFF800008003E90)
    assert parse_prstatus(X86_CPU1[:200], EM_X86_64, 0) is None  # short note
    assert parse_prstatus(X86_CPU1, 3, 0) is None  # an arch not known


def test_riscv64_layout() -> None:
    """struct user_regs_struct: pc first, then ra, sp (arch/riscv/include/uapi/asm/ptrace.h)."""
    note = prstatus(247, {0: 0xFFFFFFFF80009A1E, 2: 0xFF2000000040BD30}, 32)
    assert parse_prstatus(note, EM_RISCV, 1) == CpuRegs(1, 247, 0xFFFFFFFF80009A1E,
                                                        0xFF2000000040BD30)


def test_only_core_prstatus_notes_count_and_number_the_cpus() -> None:
    notes = [Note("CORE", 1, prstatus(0, {}, 27)), Note("VMCOREINFO", 0, b"X=1"),
             Note("CORE", 2, b"fpregs"), Note("CORE", 1, X86_CPU1)]
    regs = cpu_registers(notes, EM_X86_64)
    assert [(r.cpu, r.pid) for r in regs] == [(0, 0), (1, 168)]


def test_read_elf(tmp_path: Path) -> None:
    path = tmp_path / "vmcore"
    notes = note(b"CORE", 1, prstatus(0, {16: 5}, 27)) + note(b"CORE", 1, X86_CPU1)
    path.write_bytes(vmcore_bytes([(0, 0, b"x" * 16, 16)], notes))
    assert [(r.cpu, r.pid, r.pc) for r in read_elf(str(path))] == [
        (0, 0, 5), (1, 168, 0xFFFFFFFF9616475A)]


def kdump_file(path: Path, machine: bytes, notes: bytes, version: int = 6) -> Path:
    """The two headers of a kdump-compressed file, then the notes (makedumpfile's layout)."""
    block = 4096
    head = bytearray(block)
    head[:8] = b"KDUMP   "
    struct.pack_into("<i", head, 8, version)
    head[12 + 4 * 65:12 + 4 * 65 + len(machine)] = machine
    struct.pack_into("<ii", head, 428, block, 1)  # block_size, sub_hdr_size (blocks)
    sub = bytearray(block)
    struct.pack_into("<qQ", sub, 48, 2 * block, len(notes))
    path.write_bytes(bytes(head) + bytes(sub) + notes)
    return path


def test_read_kdump(tmp_path: Path) -> None:
    notes = note(b"CORE", 1, ARM64_CPU0) + note(b"VMCOREINFO", 0, b"OSRELEASE=6.1\n")
    path = kdump_file(tmp_path / "arm64.kdump", b"aarch64", notes)
    assert read_kdump(str(path)) == [CpuRegs(0, 0, 0xFFFF8000080123A4, 0xFFFF800008003E90)]
    # Header versions before 6 are not read (makedumpfile has written 6 since 1.5.x);
    # unknown machines are not guessed at.
    assert read_kdump(str(kdump_file(tmp_path / "old", b"aarch64", notes, version=3))) == []
    assert read_kdump(str(kdump_file(tmp_path / "mips", b"mips64", notes))) == []
    (tmp_path / "short").write_bytes(b"KDUMP   ")
    assert read_kdump(str(tmp_path / "short")) == []


def test_the_crashed_cpu_is_matched_by_pid_and_for_idle_by_cpu() -> None:
    from kdumpctl_py.analyse.model import TaskRef
    from kdumpctl_py.analyse.nodwarf import is_crashed

    crashed = TaskRef(168, "kdumpcrasher", 1, source="kernel log")
    assert is_crashed(CpuRegs(1, 168, 0, 0), crashed)
    assert not is_crashed(CpuRegs(0, 0, 0, 0), crashed)
    assert not is_crashed(CpuRegs(1, 168, 0, 0), None)
    idle_panic = TaskRef(0, "swapper/1", 1, source="kernel log")
    assert is_crashed(CpuRegs(1, 0, 0, 0), idle_panic)
    assert not is_crashed(CpuRegs(0, 0, 0, 0), idle_panic)
