"""Run in the guest (--dtb-marker): the DTB `kdumpctl-py start --dtb` passes.

Usage: marker_dtb.py SRC DST VALUE

The boot DTB plus /chosen/kdumpctl-py,marker = VALUE, and what a kernel with
the series must not take from user space (its merge rules): a /chosen
linux,uefi-system-table, linux,ima-kexec-buffer and rng-seed of our own, a
/reserved-memory node (or a child of the running tree's) and a /memreserve/ entry
the running tree does not have.
The capture kernel's own DTB (results/capture/capture.dtb) shows what the kernel
kept. Debian's python3-libfdt only; the reservation is written into the blob
by hand, as libfdt's Python binding cannot add one.
"""

from __future__ import annotations

import struct
import sys

import libfdt

# A reservation no firmware makes: the first page of the virt board's flash.
MEMRESERVE = (0x1000, 0x1000)
# The /reserved-memory child of our own.
RESERVED_NODE = "/reserved-memory/kdumpctl-py@2000"


def with_reservation(blob: bytes, start: int, size: int) -> bytes:
    """`blob` with one more /memreserve/ entry, first in the map."""
    (magic, total, off_struct, off_strings, off_rsv, version, last, boot_cpu,
     size_strings, size_struct) = struct.unpack(">10I", blob[:40])
    entry = struct.pack(">QQ", start, size)
    header = struct.pack(">10I", magic, total + 16, off_struct + 16, off_strings + 16, off_rsv,
                         version, last, boot_cpu, size_strings, size_struct)
    return header + blob[40:off_rsv] + entry + blob[off_rsv:]


def main() -> int:
    src, dst, value = sys.argv[1:]
    fdt = libfdt.Fdt(open(src, "rb").read())
    fdt.resize(fdt.totalsize() + 8192)
    chosen = fdt.path_offset("/chosen")
    fdt.setprop_str(chosen, "kdumpctl-py,marker", value)
    fdt.setprop_u64(chosen, "linux,uefi-system-table", 0xDEAD0000)
    fdt.setprop(chosen, "linux,ima-kexec-buffer", struct.pack(">QQ", 0xDEAD1000, 0x1000))
    fdt.setprop(chosen, "rng-seed", b"user-space seed")
    # riscv64's running tree has one already (OpenSBI's own memory): the node goes there.
    rmem = fdt.path_offset("/reserved-memory", [libfdt.NOTFOUND])
    if rmem < 0:
        rmem = fdt.add_subnode(0, "reserved-memory")
        fdt.setprop_u32(rmem, "#address-cells", 2)
        fdt.setprop_u32(rmem, "#size-cells", 2)
        fdt.setprop(rmem, "ranges", b"")
    child = fdt.add_subnode(rmem, RESERVED_NODE.rsplit("/", 1)[1])
    fdt.setprop(child, "reg", struct.pack(">QQ", 0x2000, 0x1000))
    fdt.setprop(child, "no-map", b"")
    fdt.pack()
    with open(dst, "wb") as f:
        f.write(with_reservation(bytes(fdt.as_bytearray()), *MEMRESERVE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
