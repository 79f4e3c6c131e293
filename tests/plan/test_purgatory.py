from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from kdumpctl_py.plan.purgatory import arm64_purgatory


def test_instruction_by_instruction() -> None:
    """Encodings checked against the Arm ARM (and GNU as output for the same source)."""
    blob = arm64_purgatory(0x7FC00000, 0x60200000)
    words = struct.unpack_from("<6I", blob)
    assert words == (
        0x580000C0,  # ldr x0, #24   (imm19 = 6, Rt = 0)
        0x580000F1,  # ldr x17, #28  (imm19 = 7, Rt = 17): literal at byte 32
        0xAA1F03E1,  # mov x1, xzr
        0xAA1F03E2,  # mov x2, xzr
        0xAA1F03E3,  # mov x3, xzr
        0xD61F0220,  # br x17
    )
    assert struct.unpack_from("<QQ", blob, 24) == (0x7FC00000, 0x60200000)
    assert len(blob) == 40


def test_same_bytes_as_gnu_as(tmp_path: Path) -> None:
    if not shutil.which("aarch64-linux-gnu-as"):
        pytest.skip("binutils-aarch64-linux-gnu is not installed")
    src = tmp_path / "p.s"
    src.write_text("ldr x0, dtb\nldr x17, kernel\nmov x1, xzr\nmov x2, xzr\nmov x3, xzr\n"
                   "br x17\ndtb: .quad 0x123456789abcd000\nkernel: .quad 0xfedcba9876543210\n")
    subprocess.run(["aarch64-linux-gnu-as", str(src), "-o", str(tmp_path / "p.o")], check=True)
    subprocess.run(["aarch64-linux-gnu-objcopy", "-O", "binary", str(tmp_path / "p.o"),
                    str(tmp_path / "p.bin")], check=True)
    want = (tmp_path / "p.bin").read_bytes()
    assert arm64_purgatory(0x123456789ABCD000, 0xFEDCBA9876543210) == want
