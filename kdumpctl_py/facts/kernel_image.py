"""What a kernel image file is, and the bootable image inside it.

arm64's kexec_file_load takes only a raw Image (arch/arm64/kernel/kexec_image.c),
so Image.gz and EFI zboot files are unpacked first; the loader does that into
a memfd. x86 takes a bzImage as it is. Debian's riscv64 kernel is a raw Image
with an EFI stub, installed as /boot/vmlinux-REL (arch/riscv/include/asm/image.h).
"""

from __future__ import annotations

import lzma
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from kdumpctl_py.arch import arch_for_machine
from kdumpctl_py.elf import ELF_MAGIC
from kdumpctl_py.errors import UsageError

ARM64_MAGIC = b"ARM\x64"
ARM64_MAGIC_OFFSET = 0x38
ARM64_HEADER = struct.Struct("<IIQQQQQQ4sI")  # struct arm64_image_header
RISCV_MAGIC2 = b"RSC\x05"  # riscv_image_header.magic2, at the offset of arm64's magic
RISCV_HEADER = struct.Struct("<IIQQQIIQQ4sI")  # struct riscv_image_header
ZBOOT_MAGIC = b"zimg"  # at offset 4, after "MZ" (drivers/firmware/efi/libstub/zboot-header.S)
X86_HDRS = b"HdrS"  # setup header signature at 0x202 (Documentation/arch/x86/boot.rst)
GZIP_MAGIC = b"\x1f\x8b"
PAGE_SIZES = {1: 4096, 2: 16384, 3: 65536}
# A decompressed kernel is tens of MiB (Debian arm64 6.1: 31 MiB); refuse to inflate more.
MAX_IMAGE = 128 << 20


@dataclass(frozen=True)
class KernelImage:
    format: str  # "arm64-image", "riscv-image", "x86-bzimage", "elf"
    machine: str  # uname name of the arch it boots on
    text_offset: int = 0
    image_size: int = 0  # arm64, riscv: effective size including bss
    page_size: int | None = None
    big_endian: bool = False
    protocol: int | None = None  # x86 boot protocol version, e.g. 0x20f
    efi_stub: bool = False


def unwrap(data: bytes, name: str = "kernel image") -> tuple[bytes, str | None]:
    """The bootable image inside `data` and how it was packed (None if it was not)."""
    if data[:2] == GZIP_MAGIC:
        return _inflate(lambda: _bounded_zlib(data, 16 + zlib.MAX_WBITS), name, "gzip")
    if data[:2] == b"MZ" and data[4:8] == ZBOOT_MAGIC:
        offset, size = struct.unpack_from("<II", data, 8)
        comp = data[24:40].split(b"\0", 1)[0].decode("ascii", "replace")
        payload = data[offset:offset + size]
        if len(payload) != size or not size:
            raise UsageError(f"{name}: EFI zboot payload is truncated")
        return _inflate(lambda: _decompress(payload, comp, name), name, f"zboot-{comp}")
    return data, None


def _bounded_zlib(data: bytes, wbits: int) -> bytes:
    """Inflate at most MAX_IMAGE + 1 bytes, so a compression bomb stops early."""
    d = zlib.decompressobj(wbits)
    out = d.decompress(data, MAX_IMAGE + 1)
    if len(out) <= MAX_IMAGE and not d.eof:
        raise zlib.error("the compressed stream ends early")
    return out


def _bounded_lzma(data: bytes) -> bytes:
    d = lzma.LZMADecompressor()
    out = d.decompress(data, MAX_IMAGE + 1)
    if len(out) <= MAX_IMAGE and not d.eof:
        raise lzma.LZMAError("the compressed stream ends early")
    return out


def _inflate(fn: Callable[[], bytes], name: str, how: str) -> tuple[bytes, str]:
    try:
        out = fn()
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as e:
        raise UsageError(f"{name}: {how} data is damaged: {e}") from None
    if len(out) > MAX_IMAGE:
        raise UsageError(f"{name}: unpacks to more than {MAX_IMAGE >> 20} MiB")
    return bytes(out), how


def _decompress(payload: bytes, comp: str, name: str) -> bytes:
    if comp == "gzip":
        return _bounded_zlib(payload, 16 + zlib.MAX_WBITS)
    if comp in ("xz", "lzma"):
        return _bounded_lzma(payload)
    if comp == "zstd":
        try:
            import zstandard
        except ImportError:
            raise UsageError(f"{name}: zstd zboot needs the zstandard module") from None
        return bytes(zstandard.ZstdDecompressor().decompress(payload, max_output_size=MAX_IMAGE))
    raise UsageError(f"{name}: zboot compression {comp!r} is not supported")


def probe(data: bytes, name: str = "kernel image") -> KernelImage:
    """Identify an unpacked image from its header."""
    if len(data) >= 64 and data[ARM64_MAGIC_OFFSET:ARM64_MAGIC_OFFSET + 4] == ARM64_MAGIC:
        _, _, text_offset, image_size, flags, *_ = ARM64_HEADER.unpack_from(data)
        if image_size == 0:
            raise UsageError(f"{name}: arm64 Image older than 3.17 (image_size 0) cannot be "
                             "loaded")
        return KernelImage("arm64-image", "aarch64", text_offset, image_size,
                           PAGE_SIZES.get((flags >> 1) & 3), bool(flags & 1),
                           efi_stub=data[:2] == b"MZ")
    if len(data) >= 64 and data[ARM64_MAGIC_OFFSET:ARM64_MAGIC_OFFSET + 4] == RISCV_MAGIC2:
        _, _, text_offset, image_size, flags, *_ = RISCV_HEADER.unpack_from(data)
        if image_size == 0:
            raise UsageError(f"{name}: riscv Image without image_size cannot be loaded")
        return KernelImage("riscv-image", "riscv64", text_offset, image_size,
                           big_endian=bool(flags & 1), efi_stub=data[:2] == b"MZ")
    if len(data) >= 0x208 and data[0x202:0x206] == X86_HDRS:
        (protocol,) = struct.unpack_from("<H", data, 0x206)
        return KernelImage("x86-bzimage", "x86_64", protocol=protocol,
                           efi_stub=data[:2] == b"MZ")
    if data[:4] == ELF_MAGIC and len(data) >= 20:
        (machine,) = struct.unpack_from("<H", data, 18)
        arch = arch_for_machine(machine)
        return KernelImage("elf", arch.name if arch else f"e_machine {machine}")
    raise UsageError(f"{name} is not a kernel image this tool knows (arm64 or riscv Image, "
                     "Image.gz, EFI zboot, x86 bzImage, ELF vmlinux)")


def memory_size(head: bytes) -> int | None:
    """The memory a kernel occupies once booted, from the first bytes of its file.

    arm64: text_offset + image_size of the Image header (inside gzip too); riscv:
    image_size (kexec places it at a 2 MiB boundary, text_offset is a boot loader's);
    x86: the setup header's init_size (boot protocol 2.10+), which covers the
    decompressed kernel with its bss. None when the header does not say.
    """
    if head[:2] == GZIP_MAGIC:
        head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 4096)
    if len(head) >= 64 and head[ARM64_MAGIC_OFFSET:ARM64_MAGIC_OFFSET + 4] == ARM64_MAGIC:
        _, _, text_offset, image_size, *_ = ARM64_HEADER.unpack_from(head)
        return int(text_offset + image_size) or None
    if len(head) >= 64 and head[ARM64_MAGIC_OFFSET:ARM64_MAGIC_OFFSET + 4] == RISCV_MAGIC2:
        return int(RISCV_HEADER.unpack_from(head)[3]) or None
    if len(head) >= 0x264 and head[0x202:0x206] == X86_HDRS:
        (protocol,) = struct.unpack_from("<H", head, 0x206)
        if protocol >= 0x20A:
            (init_size,) = struct.unpack_from("<I", head, 0x260)
            return int(init_size) or None
    return None
