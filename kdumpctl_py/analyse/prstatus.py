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
from kdumpctl_py.errors import UsageError

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


def read_kdump(path: str) -> list[CpuRegs]:
    """The CPU registers of a (little-endian, 64-bit) kdump-compressed file at `path`.

    Only the headers and the notes are read: a dump cut short after them still has them."""
    from kdumpctl_py.capture.kdumpfile import read_headers

    try:
        with open(path, "rb") as f:
            header, sub = read_headers(f, path)
            f.seek(sub.offset_note)
            data = f.read(sub.size_note)
    except UsageError:
        return []
    machine = ELF_MACHINES.get(header.machine)
    return [] if machine is None else cpu_registers(notes_before_damage(data), machine)


def read_registers(path: str, fmt: str) -> list[CpuRegs]:
    """Each CPU's registers from the dump at `path`, whose format (analyse's) is `fmt`."""
    return read_elf(path) if fmt == "ELF" else read_kdump(path)


def read_elf(path: str) -> list[CpuRegs]:
    """The CPU registers of the ELF vmcore at `path`."""
    from kdumpctl_py.facts.elfcore import parse_elf_core

    with open(path, "rb") as f:
        core = parse_elf_core(f, path)
    return cpu_registers(core.notes, core.machine, core.little_endian)
