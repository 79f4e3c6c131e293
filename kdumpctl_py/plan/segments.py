"""The kexec_load segment list for arm64 and riscv64, built entirely in user space.

Debian's arm64 and riscv64 kernels have no KEXEC_FILE, so the capture kernel, its
initrd, the capture DTB, the elfcorehdr and (arm64 only) a purgatory are placed
here, under the rules kernel/kexec_core.c sanity_check_segment_list() enforces
for a crash image: page-aligned, no overlap, at most 16 segments, all inside
crashk_res (the highest "Crash kernel" region; crashk_low_res is never
accepted), entry point inside it too.

riscv64 needs no purgatory: machine_kexec_prepare() (arch/riscv/kernel/
machine_kexec.c, 6.12) takes the first segment longer than an FDT header whose
first bytes pass fdt_check_header() as the DTB, and riscv_kexec_norelocate
(kexec_relocate.S) enters the image at its first byte with a0 = the hart id and
a1 = that DTB's address. So the entry point is the Image's start, and the kernel
and initrd segments come before the DTB (neither starts with an FDT header).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

from kdumpctl_py.errors import KdumpError, UsageError
from kdumpctl_py.facts.iomem import Range
from kdumpctl_py.facts.kernel_image import KernelImage
from kdumpctl_py.facts.view import SystemView
from kdumpctl_py.plan.dtb import build_capture_dtb, place_dtb
from kdumpctl_py.plan.elfcorehdr import plan_elfcorehdr
from kdumpctl_py.plan.purgatory import arm64_purgatory
from kdumpctl_py.units import format_bytes

KEXEC_SEGMENT_MAX = 16
KERNEL_ALIGN = 2 << 20  # arm64 MIN_KIMG_ALIGN; riscv64 PMD_SIZE (setup_vm() insists)


@dataclass(frozen=True)
class Segment:
    name: str
    data: bytes
    mem: int
    memsz: int

    @property
    def end(self) -> int:
        return self.mem + self.memsz


@dataclass(frozen=True)
class ClassicPlan:
    entry: int
    segments: tuple[Segment, ...]
    region: Range
    dtb: bytes

    def segment(self, name: str) -> Segment:
        return next(s for s in self.segments if s.name == name)


def _up(value: int, align: int) -> int:
    return -(-value // align) * align


def crash_regions(view: SystemView) -> tuple[Range, list[Range]]:
    """crashk_res (the highest region) and the usable ranges, crash region first, low last."""
    iomem = view.iomem
    if iomem is None or iomem.masked:
        raise KdumpError("cannot read the crash regions from /proc/iomem (run as root)")
    regions = iomem.crash_regions
    if not regions:
        raise KdumpError("no memory is reserved for a capture kernel (crashkernel= on the kernel"
                         " command line; see kdumpctl-py showmem)")
    high = regions[-1]
    return high, [high, *regions[:-1]]


def _check_image(view: SystemView, image: KernelImage) -> int:
    """Refuse an image this kernel's kexec_load cannot boot; the page size they share."""
    arch = view.arch
    want = arch.classic_image
    if want is None:
        raise KdumpError(f"kexec_load with user-space segments is built for arm64 and "
                         f"riscv64 only; this {arch.name} kernel needs kexec_file_load")
    if image.format != want:
        raise UsageError(f"kexec_load on {arch.name} needs {want.replace('-', ' ')}, "
                         f"not {image.format}")
    if image.big_endian:
        raise UsageError("the capture kernel is big-endian; this kernel is little-endian")
    page = view.vmcoreinfo.page_size if view.vmcoreinfo and view.vmcoreinfo.page_size else 4096
    if image.page_size and image.page_size != page:
        raise UsageError(f"the capture kernel is built for {format_bytes(image.page_size)} "
                         f"pages; this kernel runs with {format_bytes(page)} pages")
    return page


def plan_classic(view: SystemView, image: KernelImage, kernel: bytes,
                 initrd: bytes | None, cmdline: str, base_dtb: bytes | None = None,
                 randbytes: Callable[[int], bytes] = os.urandom) -> ClassicPlan:
    """Place every segment, build the DTB for those places, and check the kernel's rules."""
    arch = view.arch
    page = _check_image(view, image)
    base = base_dtb if base_dtb is not None else view.fdt
    if base is None:
        raise KdumpError("no boot DTB to start from (/sys/firmware/fdt unreadable; give --dtb)")
    region, usable = crash_regions(view)
    top = region.end + 1

    header = plan_elfcorehdr(view).encode()
    elf_at = (top - len(header)) // page * page

    # arm64 boots at text_offset above a 2 MiB boundary (booting.rst); riscv64's
    # text_offset is only where boot loaders put it after firmware: the image runs
    # from any 2 MiB boundary, and kexec-tools puts it at one too.
    kernel_base = _up(region.start, KERNEL_ALIGN)
    kernel_at = kernel_base + (image.text_offset if arch.at_text_offset else 0)
    # riscv64's setup_bootmem() (arch/riscv/mm/init.c) reserves the image up to the
    # next 2 MiB boundary (STRICT_KERNEL_RWX) and drops an initrd that overlaps it.
    kernel_memsz = _up(max(image.image_size, len(kernel)),
                       KERNEL_ALIGN if arch.image_2m_end else page)
    cursor = kernel_at + kernel_memsz
    initrd_seg = None
    if initrd:
        initrd_seg = Segment("initrd", initrd, cursor, _up(len(initrd), page))
        if arch.initrd_window is not None and \
                initrd_seg.end > (kernel_at & ~((1 << 30) - 1)) + arch.initrd_window:
            raise KdumpError("the initrd would lie more than 32 GiB above the kernel")
        cursor = initrd_seg.end

    dtb = build_capture_dtb(
        base, [(r.start, r.size) for r in usable], (elf_at, len(header)),
        initrd=(initrd_seg.mem, len(initrd)) if initrd_seg and initrd else None,
        cmdline=cmdline, randbytes=randbytes, page_size=page)
    dtb_at = place_dtb(len(dtb), (cursor, elf_at - cursor), align=page)
    need = kernel_memsz + (initrd_seg.memsz if initrd_seg else 0) + _up(len(dtb), page) + 2 * page
    if dtb_at is None:
        raise _too_small(region, need + len(header))
    dtb_seg = Segment("dtb", dtb, dtb_at, _up(len(dtb), page))
    segments = [Segment("kernel", kernel, kernel_at, kernel_memsz),
                *([initrd_seg] if initrd_seg else []), dtb_seg]
    entry = kernel_at
    if arch.purgatory:
        entry = dtb_seg.end
        purgatory = arm64_purgatory(dtb_at, kernel_at)
        segments.append(Segment("purgatory", purgatory, entry, _up(len(purgatory), page)))
    if segments[-1].end > elf_at:
        raise _too_small(region, need + len(header))
    segments.append(Segment("elfcorehdr", header, elf_at, _up(len(header), page)))
    plan = ClassicPlan(entry, tuple(segments), region, dtb)
    check_segments(plan, page)
    return plan


def _too_small(region: Range, need: int) -> KdumpError:
    return KdumpError(
        f"the crash region ({format_bytes(region.size)} at {region.start:#x}) cannot hold the "
        f"capture kernel's {format_bytes(need)} of segments and leave it memory to run in; "
        "see kdumpctl-py estimate and raise crashkernel=")


def check_segments(plan: ClassicPlan, page: int) -> None:
    """The checks kexec_load would make, so a bad plan fails here with a reason, not EINVAL."""
    segs = sorted(plan.segments, key=lambda s: s.mem)
    if len(segs) > KEXEC_SEGMENT_MAX:
        raise KdumpError(f"{len(segs)} segments; kexec_load takes at most {KEXEC_SEGMENT_MAX}")
    for s in segs:
        if s.mem % page or s.memsz % page:
            raise KdumpError(f"segment {s.name} at {s.mem:#x}+{s.memsz:#x} is not page-aligned")
        if len(s.data) > s.memsz:
            raise KdumpError(f"segment {s.name} holds more bytes than its memory size")
        if s.mem < plan.region.start or s.end - 1 > plan.region.end:
            raise KdumpError(f"segment {s.name} lies outside the crash region")
    for a, b in pairwise(segs):
        if a.end > b.mem:
            raise KdumpError(f"segments {a.name} and {b.name} overlap")
    if not plan.region.start <= plan.entry <= plan.region.end:
        raise KdumpError("the entry point lies outside the crash region")
