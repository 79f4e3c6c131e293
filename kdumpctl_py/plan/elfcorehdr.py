"""The ELF core header the capture kernel reads to build /proc/vmcore.

Laid out as the kernel's own crash_prepare_elf64_headers() (kernel/kexec_file.c
in 6.1, kernel/crash_core.c from 6.6): a PT_NOTE per CPU's crash_notes buffer,
one for VMCOREINFO, a PT_LOAD for the kernel image where the arch has one, and
a PT_LOAD per RAM range outside the crash regions, with p_offset = p_paddr =
the physical start and p_vaddr its linear-map address.

The kernel layout comes from VMCOREINFO, /proc/iomem and /proc/kcore's program
headers, never from /proc/kallsyms: arm64 6.1 has no `_text` there, which is
how kexec-tools ends up with an unusable vmcore on Debian arm64.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from kdumpctl_py.arch import KERNEL_TEXT_MAP
from kdumpctl_py.elf import PF_RWX, PT_LOAD, PT_NOTE
from kdumpctl_py.errors import KdumpError
from kdumpctl_py.facts.elfcore import NO_PADDR, Segment, pack_core, parse_elf_core
from kdumpctl_py.facts.iomem import Range, subtract
from kdumpctl_py.facts.view import SystemView
from kdumpctl_py.facts.vmcoreinfo import VmcoreInfo
from kdumpctl_py.units import MASK64

HEADER_ALIGN = 4096  # ELF_CORE_HEADER_ALIGN


@dataclass(frozen=True)
class CoreHeader:
    machine: int
    phdrs: tuple[Segment, ...]

    @property
    def loads(self) -> list[Segment]:
        return [p for p in self.phdrs if p.type == PT_LOAD]

    @property
    def notes(self) -> list[Segment]:
        return [p for p in self.phdrs if p.type == PT_NOTE]

    def encode(self) -> bytes:
        """The header bytes, zero-padded to ELF_CORE_HEADER_ALIGN like the kernel's."""
        out = pack_core(self.machine, list(self.phdrs))
        out += bytes(-len(out) % HEADER_ALIGN)
        return bytes(out)


@dataclass(frozen=True)
class KernelLayout:
    """Where the running kernel image and the linear map are."""

    text_vaddr: int | None  # _text
    text_paddr: int | None  # __pa_symbol(_text)
    text_size: int | None  # _end - _text
    linear_offset: int  # __va(p) = p + linear_offset (mod 2^64)


def _need(value: object, what: str) -> None:
    if value is None:
        raise KdumpError(f"cannot build the elfcorehdr: {what} is unknown (run as root; "
                         "the kernel needs CONFIG_PROC_KCORE and CONFIG_CRASH_DUMP)")


def kernel_layout(view: SystemView) -> KernelLayout:
    kcore = view.kcore
    physical = [s for s in kcore.loads if s.paddr != NO_PADDR] if kcore else []
    # x86_64 and riscv64 map the kernel image at -2 GiB (KCORE_TEXT); everything else
    # with a physical address is the linear map (KCORE_RAM), one offset for all of it.
    text = [s for s in physical if s.vaddr >= KERNEL_TEXT_MAP]
    offsets = {(s.vaddr - s.paddr) & MASK64 for s in physical if s.vaddr < KERNEL_TEXT_MAP}
    linear: int | None = offsets.pop() if len(offsets) == 1 else None
    if linear is None and view.arch.linear_map == "page-offset" and view.vmcoreinfo is not None:
        linear = _linear_from_page_offset(view.vmcoreinfo, view.arch.phys_base_name)
    if view.arch.kernel_image == "kcore-text":
        return _kcore_text(kcore, text, linear)
    if view.arch.kernel_image == "iomem":
        return _iomem_image(view, linear)
    if linear is None:
        raise KdumpError(f"cannot build the elfcorehdr for {view.arch.name}: unknown linear map")
    return KernelLayout(None, None, None, linear)


def _linear_from_page_offset(vmcoreinfo: VmcoreInfo, phys_base_name: str) -> int | None:
    """__va(p) = p - phys_ram_base + PAGE_OFFSET (riscv64's arch/riscv/include/asm/page.h)."""
    page_offset = vmcoreinfo.number("PAGE_OFFSET")
    ram_base = vmcoreinfo.number(phys_base_name)
    if page_offset is None or ram_base is None:
        return None
    return (page_offset - ram_base) & MASK64


def _kcore_text(kcore: object, text: list[Segment], linear: int | None) -> KernelLayout:
    """KCORE_TEXT: vaddr _text, paddr __pa_symbol(_text), size _end - _text: the
    kernel-image PT_LOAD crash_prepare_elf64_headers() writes on x86_64 and riscv64."""
    _need(kcore, "/proc/kcore")
    _need(linear, "the linear map (/proc/kcore RAM segments, VMCOREINFO PAGE_OFFSET)")
    assert linear is not None
    if len(text) != 1:
        raise KdumpError("cannot build the elfcorehdr: /proc/kcore has no kernel-text segment")
    return KernelLayout(text[0].vaddr, text[0].paddr, text[0].memsz, linear)


def _linear_from_va_bits(vmcoreinfo: VmcoreInfo, phys_base_name: str) -> int:
    """__va(p) = (p - PHYS_OFFSET) | PAGE_OFFSET, PAGE_OFFSET = -(1 << VA_BITS) (arm64)."""
    va_bits, phys_offset = vmcoreinfo.number("VA_BITS"), vmcoreinfo.number(phys_base_name)
    _need(va_bits, "VMCOREINFO VA_BITS")
    _need(phys_offset, f"VMCOREINFO {phys_base_name}")
    assert va_bits is not None and phys_offset is not None
    return ((MASK64 - (1 << va_bits) + 1) - phys_offset) & MASK64


def _iomem_image(view: SystemView, linear: int | None) -> KernelLayout:
    """The image from /proc/iomem and kimage_voffset, where /proc/kcore has no usable
    KCORE_TEXT (arm64: its _text is not in /proc/kallsyms either)."""
    vmcoreinfo = view.vmcoreinfo
    _need(vmcoreinfo, "VMCOREINFO (/proc/kcore notes)")
    assert vmcoreinfo is not None
    voffset = vmcoreinfo.number("kimage_voffset")
    _need(voffset, "VMCOREINFO kimage_voffset")
    assert voffset is not None
    if linear is None and view.arch.linear_map == "va-bits":
        linear = _linear_from_va_bits(vmcoreinfo, view.arch.phys_base_name)
    _need(linear, "the linear map (/proc/kcore RAM segments)")
    assert linear is not None
    code = view.iomem.named("Kernel code") if view.iomem else []
    data = view.iomem.named("Kernel data") if view.iomem else []
    if len(code) != 1 or len(data) != 1:
        raise KdumpError("cannot build the elfcorehdr: /proc/iomem lacks 'Kernel code' or "
                         "'Kernel data' (run as root)")
    # iomem's Kernel code starts at __pa(_stext), 64 KiB above _text; the image is
    # loaded 2 MiB aligned (arm64 booting.rst), so _text is _stext rounded down.
    text_paddr = code[0].start & ~((2 << 20) - 1)
    return KernelLayout((text_paddr + voffset) & MASK64, text_paddr,
                        data[0].end + 1 - text_paddr, linear)


def ram_ranges(view: SystemView) -> list[Range]:
    """System RAM the capture kernel must dump: all of it but the crash regions.

    Reserved ranges inside System RAM stay in (the kernel's own kexec_file path
    keeps them; kexec-tools leaves them out), except on riscv64 the firmware's
    memory, which S-mode cannot read: with it, reading /proc/vmcore fails with
    EFAULT at 0x80000000 under QEMU's OpenSBI (seen in the crash cycle).
    """
    iomem = view.iomem
    if iomem is None or iomem.masked:
        raise KdumpError("cannot build the elfcorehdr: /proc/iomem is unreadable or masked "
                         "(run as root)")
    holes = list(iomem.crash_regions)
    if view.arch.low_reserved:  # x86_64 always keeps the low 1 MiB
        holes.append(Range(0, view.arch.low_reserved - 1))
    if view.arch.firmware_in_dt and view.fdt is not None:
        from kdumpctl_py.plan.dtb import firmware_memory

        holes += [Range(start, start + size - 1)
                  for start, size in firmware_memory(view.fdt, "/sys/firmware/fdt")]
    ram = iomem.system_ram
    if view.arch.memblock_ram:
        ram = _merge_adjacent(ram)  # the kernel walks memblock, which has no seams
    return subtract(ram, holes)


def _merge_adjacent(ranges: list[Range]) -> list[Range]:
    out: list[Range] = []
    for r in sorted(ranges, key=lambda r: r.start):
        if out and out[-1].end + 1 == r.start:
            out[-1] = Range(out[-1].start, r.end)
        else:
            out.append(r)
    return out


def plan_elfcorehdr(view: SystemView) -> CoreHeader:
    notes = view.crash_notes
    if not notes:
        raise KdumpError("cannot build the elfcorehdr: no /sys/devices/system/cpu/cpu*/crash_notes"
                         " (run as root on a kernel with CONFIG_CRASH_DUMP)")
    vmcoreinfo = view.vmcoreinfo_note
    _need(vmcoreinfo, "/sys/kernel/vmcoreinfo")
    assert vmcoreinfo is not None
    layout = kernel_layout(view)
    phdrs = []
    for n in notes:
        size = n.size or view.arch.note_buf_size
        phdrs.append(Segment(PT_NOTE, n.address, 0, n.address, size, size))
    phdrs.append(Segment(PT_NOTE, vmcoreinfo[0], 0, vmcoreinfo[0], vmcoreinfo[1],
                               vmcoreinfo[1]))
    if layout.text_paddr is not None and layout.text_vaddr is not None and layout.text_size:
        phdrs.append(Segment(PT_LOAD, layout.text_paddr, layout.text_vaddr,
                                   layout.text_paddr, layout.text_size, layout.text_size,
                                   PF_RWX))
    for r in ram_ranges(view):
        phdrs.append(Segment(PT_LOAD, r.start, (r.start + layout.linear_offset) & MASK64,
                                   r.start, r.size, r.size, PF_RWX))
    return CoreHeader(view.arch.elf_machine, tuple(phdrs))


def decode(data: bytes, what: str = "elfcorehdr") -> CoreHeader:
    """Read an ELF64 core header back (ours, the kernel's, or a vmcore's first bytes)."""
    core = parse_elf_core(io.BytesIO(data), what, read_notes=False)
    return CoreHeader(core.machine, core.segments)
