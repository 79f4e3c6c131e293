"""The arm64 purgatory: the few instructions between the dead kernel and the capture kernel.

For kexec_load images arm64's machine_kexec() jumps to the entry point with
x0 = kimage->arch.dtb_mem, which only kexec_file_load sets (it is 0 here),
while Documentation/arch/arm64/booting.rst wants x0 = the DTB's physical
address and x1..x3 = 0. So the entry point is this code, position independent:

    ldr  x0, dtb          // LDR (literal), 64-bit
    ldr  x17, kernel
    mov  x1, xzr          // ORR x1, xzr, xzr
    mov  x2, xzr
    mov  x3, xzr
    br   x17
    dtb:    .quad DTB address
    kernel: .quad kernel entry
"""

from __future__ import annotations

import struct


def ldr_literal(rt: int, byte_offset: int) -> int:
    """LDR Xt, label: opc=01 011 0 00 imm19 Rt, imm19 counted in words from this instruction."""
    assert byte_offset % 4 == 0 and -(1 << 20) <= byte_offset < (1 << 20)
    return 0x58000000 | (((byte_offset >> 2) & 0x7FFFF) << 5) | rt


def mov_zero(rd: int) -> int:
    """MOV Xd, XZR, encoded as ORR Xd, XZR, XZR (shifted register)."""
    return 0xAA1F03E0 | rd


def br(rn: int) -> int:
    return 0xD61F0000 | (rn << 5)


def arm64_purgatory(dtb_addr: int, kernel_entry: int) -> bytes:
    code = [
        ldr_literal(0, 24),  # instruction 0, dtb literal at byte 24
        ldr_literal(17, 28),  # instruction 1 (byte 4), kernel literal at byte 32
        mov_zero(1),
        mov_zero(2),
        mov_zero(3),
        br(17),
    ]
    return struct.pack("<6I", *code) + struct.pack("<QQ", dtb_addr, kernel_entry)
