from __future__ import annotations

import gzip
import lzma
import struct

import pytest

from kdumpctl_py.errors import UsageError
from kdumpctl_py.facts.kernel_image import memory_size, probe, unwrap
from tests.builders import arm64_image, riscv_image, zboot


def test_arm64_header() -> None:
    img = probe(arm64_image())
    assert (img.format, img.machine, img.text_offset, img.image_size) == (
        "arm64-image", "aarch64", 0, 0x2000000)
    assert img.page_size == 4096 and not img.big_endian and img.efi_stub
    assert probe(arm64_image(flags=0b0111)).page_size == 65536
    assert probe(arm64_image(flags=0b0111)).big_endian


@pytest.mark.parametrize("wrap,how", [
    (gzip.compress, "gzip"),
    (lambda d: zboot(gzip.compress(d), b"gzip"), "zboot-gzip"),
    (lambda d: zboot(lzma.compress(d, format=lzma.FORMAT_XZ), b"xz"), "zboot-xz"),
])
def test_unwrap(wrap, how) -> None:  # type: ignore[no-untyped-def]
    raw = arm64_image()
    data, packed = unwrap(wrap(raw))
    assert data == raw and packed == how
    assert unwrap(raw) == (raw, None)


def test_riscv64_header() -> None:
    """Debian's riscv64 /boot/vmlinux-REL: an EFI-stub Image, magic2 "RSC\\x05" at 0x38."""
    img = probe(riscv_image(0x1E6C000))
    assert (img.format, img.machine, img.text_offset, img.image_size, img.efi_stub) == (
        "riscv-image", "riscv64", 2 << 20, 0x1E6C000, True)
    assert memory_size(riscv_image(0x1E6C000)) == 0x1E6C000


def test_bzimage_and_elf() -> None:
    bz = bytearray(0x400)
    bz[0x202:0x206] = b"HdrS"
    bz[0x206:0x208] = struct.pack("<H", 0x20F)
    assert probe(bytes(bz)).protocol == 0x20F and probe(bytes(bz)).machine == "x86_64"
    elf = b"\x7fELF" + bytes(14) + struct.pack("<H", 183) + bytes(40)
    assert probe(elf).machine == "aarch64"


@pytest.mark.parametrize("data", [b"", bytes(100), b"\x1f\x8bjunk", zboot(b"junk", b"gzip"),
                                  zboot(b"x", b"bzip9"), arm64_image(image_size=0)])
def test_bad_images_are_usage_errors(data: bytes) -> None:
    with pytest.raises(UsageError):
        probe(unwrap(data)[0])
