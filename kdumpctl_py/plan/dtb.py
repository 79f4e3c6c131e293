"""The capture kernel's device tree, made the way the kernel's own kexec_file_load makes it.

kexec_load leaves the DTB to user space. `build_capture_dtb` copies the base
tree (the running kernel's /sys/firmware/fdt) and edits /chosen and the memory
reservation map as drivers/of/kexec.c `of_kexec_alloc_and_setup_fdt()` does
for a crash image, so the capture kernel sees what kexec_file_load would give
it; cell widths follow what that kernel will read (drivers/of/fdt.c).
On UEFI/ACPI arm64 the base is the EFI stub's own small tree: no memory node,
an empty reservation map, and /chosen's `linux,uefi-*` properties, which are
kept as they are: through them the capture kernel reads the EFI memory map
(its memory, then capped to the usable ranges) and the system table (ACPI).

`place_dtb` and `dtb_placement_problem` hold arm64's rule for where the blob
may sit in memory (Documentation/arch/arm64/booting.rst).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import libfdt

from kdumpctl_py.errors import KdumpError, UsageError
from kdumpctl_py.units import MASK64, format_bytes

Extent = tuple[int, int]  # (start, size) in bytes

FDT_MAGIC = 0xD00DFEED
HEADER_SIZE = 40  # struct fdt_header, version 17
LAST_VERSION = 17  # the newest format libfdt reads (FDT_LAST_SUPPORTED_VERSION)

# drivers/of/of_private.h: OF_ROOT_NODE_{ADDR,SIZE}_CELLS_DEFAULT, used by
# early_init_dt_scan_root() when the root lacks the property. libfdt's own
# fdt_address_cells() would say 2 instead, so the kernel's kexec_file path
# writes 2 address cells that its capture kernel then reads as 1.
DEFAULT_ADDRESS_CELLS = 1
DEFAULT_SIZE_CELLS = 1
# drivers/of/fdt.c early_init_dt_check_for_usable_mem_range(): the crash
# region caps memory, the rest are added, so the low region comes last.
MAX_USABLE_RANGES = 2
RNG_SEED_SIZE = 128  # drivers/of/kexec.c
FDT_EXTRA_SPACE = 0x1000  # drivers/of/kexec.c: room for the /chosen edits

# arm64 booting.rst and arch/arm64/include/asm/boot.h.
MIN_FDT_ALIGN = 8
MAX_FDT_SIZE = 2 << 20
FDT_BLOCK = 2 << 20  # mapped in 2 MiB blocks; kexec_file places it with buf_align = SZ_2M

CHOSEN = "/chosen"
USABLE = "linux,usable-memory-range"
ELFCOREHDR = "linux,elfcorehdr"
INITRD_START = "linux,initrd-start"
INITRD_END = "linux,initrd-end"
IMA_BUFFER = "linux,ima-kexec-buffer"
# Properties of /chosen that of_kexec_alloc_and_setup_fdt() always drops
# before writing its own: what they describe belongs to the running kernel.
STALE = (ELFCOREHDR, USABLE, INITRD_START, INITRD_END, "linux,kho-fdt", "linux,kho-scratch")


@dataclass(frozen=True)
class DtbSummary:
    """What a person (or a test) wants to know of a capture DTB."""

    totalsize: int
    version: int
    address_cells: int
    size_cells: int
    chosen: dict[str, bytes] | None  # raw values in tree order; None: no /chosen
    reservations: list[Extent]

    def ranges(self, name: str) -> list[Extent] | None:
        """A /chosen property as (address, size) pairs in the root's cells, as the kernel reads."""
        if self.chosen is None or name not in self.chosen:
            return None
        return decode_ranges(self.chosen[name], self.address_cells, self.size_cells)


def decode_ranges(value: bytes, address_cells: int, size_cells: int) -> list[Extent]:
    """Split a property into (address, size) pairs; refuse one that is not whole pairs."""
    width = 4 * (address_cells + size_cells)
    if not value or len(value) % width:
        raise UsageError(f"{len(value)} bytes are not whole ({address_cells}+{size_cells})-cell "
                         "(address, size) pairs")
    cut = 4 * address_cells
    return [(int.from_bytes(value[i:i + cut], "big"),
             int.from_bytes(value[i + cut:i + width], "big"))
            for i in range(0, len(value), width)]


def read_number(value: bytes) -> int:
    """of_read_number(prop, len / 4): all whole cells, big-endian, kept to 64 bits."""
    return int.from_bytes(value[: len(value) // 4 * 4], "big") & MASK64


def _open(data: bytes, what: str) -> Any:
    """A libfdt Fdt of `data`, or a one-line UsageError saying what is wrong with it.

    libfdt trusts the header's totalsize, so length and header are checked
    here before libfdt reads past the end of a truncated file.
    """
    if len(data) < HEADER_SIZE:
        raise UsageError(f"{what}: only {len(data)} bytes, too short for a device tree header")
    magic, totalsize, _, _, _, version, last_comp = struct.unpack_from(">7I", data)
    if magic != FDT_MAGIC:
        raise UsageError(f"{what}: not a device tree blob (magic {magic:#010x}, "
                         f"expected {FDT_MAGIC:#010x})")
    if totalsize > len(data):
        raise UsageError(f"{what}: truncated: the header says {totalsize} bytes, "
                         f"the file has {len(data)}")
    if last_comp > LAST_VERSION or version < 2:
        raise UsageError(f"{what}: unsupported device tree version {version} (last compatible "
                         f"{last_comp}); versions 2 to {LAST_VERSION} are read")
    try:
        return libfdt.Fdt(data[:totalsize])
    except libfdt.FdtException as e:
        raise UsageError(f"{what}: malformed device tree: {_reason(e)}") from None


def _reason(e: Exception) -> str:
    return str(libfdt.fdt_strerror(getattr(e, "err", 0)))


def _root_cells(fdt: Any, what: str) -> tuple[int, int]:
    """The root's #address-cells and #size-cells as the capture kernel reads them; only 1 or 2."""
    cells = []
    for name, default in (("#address-cells", DEFAULT_ADDRESS_CELLS),
                          ("#size-cells", DEFAULT_SIZE_CELLS)):
        value = _getprop(fdt, 0, name)
        if value is None:
            cells.append(default)
            continue
        if len(value) != 4:
            raise UsageError(f"{what}: the root's {name} is {len(value)} bytes, not one cell")
        n = int.from_bytes(value, "big")
        if n not in (1, 2):
            raise UsageError(f"{what}: the root's {name} is {n}; only 1 or 2 cells are supported")
        cells.append(n)
    return cells[0], cells[1]


def _getprop(fdt: Any, node: int, name: str) -> bytes | None:
    value = fdt.getprop(node, name, quiet=(libfdt.NOTFOUND,))
    return None if isinstance(value, int) else bytes(value)


def _properties(fdt: Any, node: int) -> dict[str, bytes]:
    out = {}
    offset = fdt.first_property_offset(node, quiet=(libfdt.NOTFOUND,))
    while offset >= 0:
        prop = fdt.get_property_by_offset(offset)
        out[prop.name] = bytes(prop)
        offset = fdt.next_property_offset(offset, quiet=(libfdt.NOTFOUND,))
    return out


def _reservations(fdt: Any) -> list[Extent]:
    return [tuple(fdt.get_mem_rsv(i)) for i in range(fdt.num_mem_rsv())]


def firmware_memory(data: bytes, what: str = "DTB") -> list[Extent]:
    """/reserved-memory regions that S-mode cannot read: OpenSBI's `mmode_resv*` (M-mode
    memory, guarded by PMP, though older OpenSBI leaves it mapped) and `no-map` ones.

    Reading one through /proc/vmcore fails with EFAULT, so they stay out of the dump.
    """
    fdt = _open(data, what)
    parent = fdt.path_offset("/reserved-memory", quiet=(libfdt.NOTFOUND,))
    if parent < 0:
        return []
    cells = (_getprop(fdt, parent, "#address-cells"), _getprop(fdt, parent, "#size-cells"))
    acells, scells = (int.from_bytes(c, "big") if c and len(c) == 4 else d
                      for c, d in zip(cells, _root_cells(fdt, what), strict=True))
    out: list[Extent] = []
    node = fdt.first_subnode(parent, quiet=(libfdt.NOTFOUND,))
    while node >= 0:
        reg = _getprop(fdt, node, "reg")
        if reg and (fdt.get_name(node).startswith("mmode_resv")
                    or _getprop(fdt, node, "no-map") is not None):
            out += decode_ranges(reg, acells, scells)
        node = fdt.next_subnode(node, quiet=(libfdt.NOTFOUND,))
    return out


def summarize(data: bytes, what: str = "DTB") -> DtbSummary:
    """Read the header, root cells, /chosen and the reservation map of a blob."""
    fdt = _open(data, what)
    try:
        address_cells, size_cells = _root_cells(fdt, what)
        chosen = fdt.path_offset(CHOSEN, quiet=(libfdt.NOTFOUND,))
        return DtbSummary(
            totalsize=fdt.totalsize(),
            version=fdt.version(),
            address_cells=address_cells,
            size_cells=size_cells,
            chosen=None if chosen < 0 else _properties(fdt, chosen),
            reservations=_reservations(fdt),
        )
    except libfdt.FdtException as e:
        raise UsageError(f"{what}: malformed device tree: {_reason(e)}") from None


def _encode_ranges(name: str, extents: Sequence[Extent], cells: tuple[int, int]) -> bytes:
    """(address, size) pairs in the root's cells, refusing values the cells cannot hold."""
    out = b""
    for start, size in extents:
        for field, value, n, cell_name in ((f"{name} address", start, cells[0], "#address-cells"),
                                           (f"{name} size", size, cells[1], "#size-cells")):
            if value >= 1 << (32 * n):
                raise UsageError(f"{field} {value:#x} does not fit in {n} cell"
                                 f"{'s' if n > 1 else ''} ({cell_name} = <{n}> in the base DTB)")
            out += value.to_bytes(4 * n, "big")
    return out


def _check_extent(name: str, extent: Extent) -> None:
    """Non-empty, and its end fits 64 bits (linux,initrd-end holds the end itself)."""
    start, size = extent
    if size <= 0 or start < 0 or start + size > MASK64:
        raise UsageError(f"{name} {start:#x}+{size:#x} is not a non-empty range "
                         "ending below 2^64")


def _remove_first(entries: list[Extent], wanted: Extent) -> bool:
    """fdt_find_and_del_mem_rsv(): drop the first exact match, if any."""
    if wanted in entries:
        entries.remove(wanted)
        return True
    return False


def _random_seed(randbytes: Callable[[int], bytes]) -> bytes:
    """A non-zero kaslr-seed: arm64 KASLR reads zero as "no seed" (and kexec-tools as "wiped")."""
    for _ in range(8):
        seed = randbytes(8)
        if any(seed):
            return seed
    raise KdumpError("the random source keeps returning zeros; no kaslr-seed can be made")


def _check_inputs(usable: Sequence[Extent], elfcorehdr: Extent, initrd: Extent | None,
                  cmdline: str | None) -> None:
    """Refuse what of_kexec would misread: too many ranges, bad extents, an initrd at 0."""
    if not 1 <= len(usable) <= MAX_USABLE_RANGES:
        raise UsageError(f"give 1 to {MAX_USABLE_RANGES} usable memory ranges (crash region "
                         f"first, low region last), not {len(usable)}")
    for extent in usable:
        _check_extent("usable memory range", extent)
    _check_extent("elfcorehdr", elfcorehdr)
    if initrd is not None:
        _check_extent("initrd", initrd)
        if initrd[0] == 0:
            raise UsageError("an initrd at address 0 reads as none (of_kexec tests the address)")
    if cmdline is not None and "\0" in cmdline:
        raise UsageError("the command line contains a NUL byte")


def build_capture_dtb(
    base: bytes,
    usable: Sequence[Extent],
    elfcorehdr: Extent,
    *,
    initrd: Extent | None = None,
    cmdline: str | None = None,
    randbytes: Callable[[int], bytes] = os.urandom,
    page_size: int = 4096,
    what: str = "base DTB",
) -> bytes:
    """The capture DTB: `base` with /chosen and the reservation map set for a crash boot.

    `usable` is the crash region first and at most one low region last. With
    no `cmdline`, bootargs is deleted, as the kernel does for a NULL cmdline:
    a stale command line of the running kernel must never boot the capture
    kernel. `page_size` is the running kernel's PAGE_SIZE, used like
    of_kexec to find a page-rounded reservation of the old initrd.
    Everything outside /chosen and the reservation map is left as it was.
    """
    _check_inputs(usable, elfcorehdr, initrd, cmdline)
    fdt = _open(base, what)
    try:
        cells = _root_cells(fdt, what)
        usable_value = _encode_ranges(USABLE, usable, cells)
        elfcorehdr_value = _encode_ranges(ELFCOREHDR, [elfcorehdr], cells)
        seed = _random_seed(randbytes)
        rng_seed = randbytes(RNG_SEED_SIZE)

        reservations = _reservations(fdt)
        fdt.resize(fdt.totalsize() + FDT_EXTRA_SPACE + len((cmdline or "").encode()))
        chosen = fdt.path_offset(CHOSEN, quiet=(libfdt.NOTFOUND,))
        if chosen < 0:
            chosen = fdt.add_subnode(0, "chosen")

        _drop_old_initrd(fdt, chosen, reservations, page_size, what)
        _drop_ima_buffer(fdt, chosen, reservations, cells)
        for name in STALE:
            fdt.delprop(chosen, name, quiet=(libfdt.NOTFOUND,))

        if initrd is not None:
            fdt.setprop_u64(chosen, INITRD_START, initrd[0])
            fdt.setprop_u64(chosen, INITRD_END, initrd[0] + initrd[1])
            reservations.append(initrd)
        fdt.setprop(chosen, ELFCOREHDR, elfcorehdr_value)
        reservations.append(elfcorehdr)
        fdt.setprop(chosen, USABLE, usable_value)
        if cmdline is None:
            fdt.delprop(chosen, "bootargs", quiet=(libfdt.NOTFOUND,))
        else:
            fdt.setprop_str(chosen, "bootargs", cmdline)
        fdt.setprop(chosen, "kaslr-seed", seed)
        fdt.setprop(chosen, "rng-seed", rng_seed)
        fdt.setprop(chosen, "linux,booted-from-kexec", b"")
        fdt.pack()
        blob = bytes(fdt.as_bytearray())
    except libfdt.FdtException as e:
        raise UsageError(f"{what}: malformed device tree: {_reason(e)}") from None
    return with_reservations(blob, reservations)


def _drop_old_initrd(fdt: Any, chosen: int, reservations: list[Extent], page_size: int,
                     what: str) -> None:
    """Forget the running kernel's initrd reservation: exact size first, then page-rounded."""
    start = _getprop(fdt, chosen, INITRD_START)
    if start is None:
        return
    end = _getprop(fdt, chosen, INITRD_END)
    if end is None:
        raise UsageError(f"{what}: /chosen has {INITRD_START} but no {INITRD_END}")
    old_start = read_number(start)
    size = (read_number(end) - old_start) & MASK64
    if not _remove_first(reservations, (old_start, size)):
        _remove_first(reservations, (old_start, -(-size // page_size) * page_size))


def _drop_ima_buffer(fdt: Any, chosen: int, reservations: list[Extent],
                     cells: tuple[int, int]) -> None:
    """remove_ima_buffer(): the running kernel's IMA log is of no use to the next one."""
    value = _getprop(fdt, chosen, IMA_BUFFER)
    if value is None:
        return
    fdt.delprop(chosen, IMA_BUFFER)
    width = 4 * (cells[0] + cells[1])
    if len(value) >= width:
        _remove_first(reservations, decode_ranges(value[:width], *cells)[0])


def with_reservations(blob: bytes, reservations: Sequence[Extent]) -> bytes:
    """`blob` (packed, version 17) with its reservation map replaced.

    libfdt's Python binding cannot add or delete reservation entries, so the
    blob is laid out anew: header, map, structure block, strings block.
    """
    (magic, _, off_struct, off_strings, _, version, last_comp, boot_cpu, size_strings,
     size_struct) = struct.unpack_from(">10I", blob)
    rsvmap = b"".join(struct.pack(">QQ", start, size) for start, size in reservations)
    rsvmap += struct.pack(">QQ", 0, 0)
    new_struct = HEADER_SIZE + len(rsvmap)
    new_strings = new_struct + size_struct
    total = new_strings + size_strings
    header = struct.pack(">10I", magic, total, new_struct, new_strings, HEADER_SIZE, version,
                         last_comp, boot_cpu, size_strings, size_struct)
    return (header + rsvmap + blob[off_struct:off_struct + size_struct]
            + blob[off_strings:off_strings + size_strings])


def dtb_placement_problem(address: int, size: int) -> str | None:
    """Why arm64 cannot boot a DTB of `size` bytes at `address`, or None if it can."""
    if size > MAX_FDT_SIZE:
        return f"the DTB is {format_bytes(size)}; arm64 allows at most {format_bytes(MAX_FDT_SIZE)}"
    if address % MIN_FDT_ALIGN:
        return f"the DTB at {address:#x} is not {MIN_FDT_ALIGN}-byte aligned"
    if address // FDT_BLOCK != (address + size - 1) // FDT_BLOCK:
        return (f"the DTB at {address:#x}-{address + size - 1:#x} crosses a "
                f"{format_bytes(FDT_BLOCK)} boundary")
    return None


def place_dtb(size: int, window: Extent, *, align: int = MIN_FDT_ALIGN,
              top_down: bool = False) -> int | None:
    """The lowest (or highest) `align`-aligned address in `window` where a DTB of `size` may sit.

    `align` is a power of two of at least 8 and at most 2 MiB (a kexec_load
    segment wants a page). None if the window has no such place.
    """
    if align < MIN_FDT_ALIGN or align > FDT_BLOCK or align & (align - 1):
        raise ValueError(f"alignment {align:#x} is not a power of two from 8 bytes to 2 MiB")
    if size <= 0 or size > MAX_FDT_SIZE:
        return None
    lo, end = window[0], window[0] + window[1]
    if top_down:
        address = (end - size) // align * align
        if dtb_placement_problem(address, size):
            address = ((address + size - 1) // FDT_BLOCK * FDT_BLOCK - size) // align * align
        return address if address >= lo else None
    address = -(-lo // align) * align
    if dtb_placement_problem(address, size):
        address = -(-address // FDT_BLOCK) * FDT_BLOCK
    return address if address + size <= end else None
