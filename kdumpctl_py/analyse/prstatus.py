"""Each CPU's registers at the crash, from the NT_PRSTATUS notes of an ELF vmcore.

The capture kernel's /proc/vmcore carries one note per CPU that saved its
state (crash_save_cpu()): a `struct elf_prstatus` whose pr_pid is the task
that was running and whose pr_reg is the arch's elf_gregset_t. Only the
fields kdumpctl-py needs are read: pid, program counter, stack pointer.
Layouts (64-bit): pr_pid at 32, pr_reg at 112 (include/linux/elfcore.h);
x86_64 pr_reg is struct user_regs_struct (rip 16th, rsp 19th word), arm64's
is struct user_pt_regs (x0-x30, sp, pc), riscv64's struct user_regs_struct
(pc, ra, sp, then the other 29 registers).

makedumpfile copies the same notes into a kdump-compressed file: its
kdump_sub_header (one block after the disk_dump_header, header version 4 and
later) gives their offset and size (makedumpfile's diskdump_mod.h).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from kdumpctl_py.arch import ELF_MACHINES, arch_for_machine
from kdumpctl_py.elf import NT_PRSTATUS, Note, notes_before_damage

PR_PID = 32
PR_REG = 112


@dataclass(frozen=True)
class CpuRegs:
    cpu: int  # the note's position: CPUs that saved no state leave no note
    pid: int
    pc: int
    sp: int
    regs: bytes = field(default=b"", compare=False, repr=False)  # pr_reg: elf_gregset_t


def parse_prstatus(desc: bytes, machine: int, cpu: int, little: bool = True) -> CpuRegs | None:
    arch = arch_for_machine(machine)
    layout = arch.prstatus_regs if arch else None
    if layout is None:
        return None
    pc_i, sp_i, nregs = layout
    if len(desc) < PR_REG + 8 * nregs:
        return None
    order: Literal["little", "big"] = "little" if little else "big"

    def word(i: int) -> int:
        off = PR_REG + 8 * i
        return int.from_bytes(desc[off:off + 8], order)

    pid = int.from_bytes(desc[PR_PID:PR_PID + 4], order, signed=True)
    return CpuRegs(cpu, pid, word(pc_i), word(sp_i), desc[PR_REG:PR_REG + 8 * nregs])


def cpu_registers(notes: tuple[Note, ...] | list[Note], machine: int,
                  little: bool = True) -> list[CpuRegs]:
    out: list[CpuRegs] = []
    for note in notes:
        if note.name == "CORE" and note.type == NT_PRSTATUS:
            regs = parse_prstatus(note.desc, machine, len(out), little)
            if regs is not None:
                out.append(regs)
    return out


KDUMP_SIGNATURE = b"KDUMP   "
KDUMP_VERSION = 8  # int header_version
KDUMP_BLOCK_SIZE = 428  # int block_size, after signature, version, utsname, timestamp, status
SUB_OFFSET_NOTE = 48  # off_t offset_note; unsigned long size_note
MAX_NOTES = 1 << 20
UTS_MACHINE = 12 + 4 * 65  # signature, version, then sysname..version of 65 bytes each


def kdump_notes(head: bytes, sub: bytes) -> tuple[int, int] | None:
    """(offset, size) of the ELF notes of a kdump-compressed file, from its two headers."""
    if not head.startswith(KDUMP_SIGNATURE) or len(head) < KDUMP_BLOCK_SIZE + 4:
        return None
    version = int.from_bytes(head[KDUMP_VERSION:KDUMP_VERSION + 4], "little")
    if version < 4 or len(sub) < SUB_OFFSET_NOTE + 16:
        return None
    offset = int.from_bytes(sub[SUB_OFFSET_NOTE:SUB_OFFSET_NOTE + 8], "little")
    size = int.from_bytes(sub[SUB_OFFSET_NOTE + 8:SUB_OFFSET_NOTE + 16], "little")
    if not 0 < size <= MAX_NOTES:
        return None
    return offset, size


def read_kdump(path: str) -> list[CpuRegs]:
    """The CPU registers of a (little-endian, 64-bit) kdump-compressed file at `path`."""
    with open(path, "rb") as f:
        head = f.read(4096)
        if len(head) < KDUMP_BLOCK_SIZE + 4:
            return []
        block = int.from_bytes(head[KDUMP_BLOCK_SIZE:KDUMP_BLOCK_SIZE + 4], "little")
        name = head[UTS_MACHINE:UTS_MACHINE + 65].split(b"\0")[0]
        machine = ELF_MACHINES.get(name.decode("ascii", "replace"))
        if machine is None or not 0 < block <= 1 << 20:
            return []
        f.seek(block)
        where = kdump_notes(head, f.read(SUB_OFFSET_NOTE + 16))
        if where is None:
            return []
        f.seek(where[0])
        data = f.read(where[1])
    return cpu_registers(notes_before_damage(data), machine)


def read_registers(path: str, fmt: str) -> list[CpuRegs]:
    """Each CPU's registers from the dump at `path`, whose format (analyse's) is `fmt`."""
    return read_elf(path) if fmt == "ELF" else read_kdump(path)


def read_elf(path: str) -> list[CpuRegs]:
    """The CPU registers of the ELF vmcore at `path`."""
    from kdumpctl_py.facts.elfcore import parse_elf_core

    with open(path, "rb") as f:
        core = parse_elf_core(f, path)
    return cpu_registers(core.notes, core.machine, core.little_endian)
