"""How much crashkernel memory this machine needs: a model of the capture kernel's memory.

In the spirit of SUSE's kdumptool calibrate. The kernel image stays for the
whole capture; on top of it the worst of two moments counts:

- unpacking the initramfs: the compressed copy and the unpacked files, and
  the rootfs tmpfs may fill only half of the memory the kernel sees besides
  the compressed copy, so the unpacked size must fit twice next to it (the
  failure measured at 224M on x86_64 with a 26 MiB gzip initramfs);
- saving: the unpacked files, the kernel's own allocations, per-CPU areas,
  Python with numpy, I/O buffers and the page bitmaps.

The kernel's in-memory size comes from its image header (arm64 image_size,
x86 init_size); the initramfs from /boot; the rest are constants fitted to
the QEMU crash cycles (tests/vm/crash-cycle, Debian 12, 1 GiB guests,
kdumpctl-py loading and saving at -d 31, /proc/meminfo at each stage): with
the harness's lean xz capture initramfs the smallest reservations that save
are x86_64 144M and arm64 112M; with its earlier 26 MiB gzip one, 256M and
224M. On the installed x86_64 system (tests/vm/installed_cycle.py: UEFI, GRUB,
kdumpctl-py's own 5.7 MiB initramfs, then the root's systemd) it says 160M, where
160M saves and 128M barely does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kdumpctl_py.errors import UsageError
from kdumpctl_py.plan.bootfiles import find_initrd, find_kernel
from kdumpctl_py.plan.crashkernel import (
    InvalidCrashkernel,
    evaluate_value,
    reserved,
    system_ram,
)
from kdumpctl_py.plan.crashkernel_defaults import default_crashkernel, page_size
from kdumpctl_py.units import MiB, format_bytes

if TYPE_CHECKING:
    from kdumpctl_py.arch import Arch
    from kdumpctl_py.facts.view import SystemView



@dataclass(frozen=True)
class Constants:
    """The model's constants, fitted to the crash cycles named in the module docstring."""

    # In-memory kernel per byte of the image file when its header does not say
    # (bzImage and Image.gz are about a quarter of it).
    kernel_inflate: float = 4.0
    # Image file size assumed when /boot has no kernel for the running release.
    kernel_fallback: int = 12 * MiB
    # Compressed initramfs assumed when /boot has none: Python 3, numpy and the saver.
    initrd_fallback: int = 48 * MiB
    # Unpacked initramfs (tmpfs pages) per compressed byte (measured: 11.8 MiB of
    # xz unpack to 38.7 MiB for the crash cycle's x86_64 capture initramfs, 9.9 to
    # 33.6 on arm64; gzip, 26.4 to 73.3).
    initrd_unpack: float = 3.3
    # The rootfs tmpfs takes at most this share of the capture kernel's memory.
    rootfs_share: float = 0.5
    # The capture kernel's own allocations whatever the image: page tables, slab,
    # hash tables, sysfs/procfs, drivers probing devices (measured: 22 MiB used
    # besides the initramfs after an arm64 capture boot).
    kernel_runtime: int = 24 * MiB
    # Each CPU the capture kernel brings up: per-CPU areas, idle and kthread
    # stacks, per-CPU slab and page lists.
    per_cpu: int = 2 * MiB
    # CPUs the capture kernel runs (nr_cpus= on its command line).
    capture_cpus: int = 1
    # User space: init, the Python 3 interpreter with numpy imported and the
    # saver's modules (measured: 18.6 MiB anonymous after the imports, 24 MiB at
    # the save's peak with windowed bitmaps, 32-35 MiB before them; shared
    # libraries are initramfs pages, counted above).
    python: int = 32 * MiB
    # Reading /proc/vmcore in chunks, compression buffers, and the dirty page
    # cache of the dump file before writeback.
    io_buffers: int = 8 * MiB
    # Page bitmaps for filtering: bits per first-kernel page frame (one "in RAM",
    # one "to dump", as makedumpfile keeps).
    bitmap_bits_per_page: int = 2
    # struct page per page of the capture kernel's own memory: the reservation
    # pays for its own memmap.
    struct_page: int = 64
    # Headroom over the sum for what the model leaves out.
    margin: float = 0.05
    # The result is rounded up to this (x86_64's CRASH_ALIGN).
    round_to: int = 16 * MiB


CONSTANTS = Constants()

@dataclass(frozen=True)
class Part:
    name: str
    bytes: int
    how: str


@dataclass(frozen=True)
class Estimate:
    parts: tuple[Part, ...]
    needed: int
    reserved: int | None
    ram: int | None
    ram_source: str
    default_value: str | None  # get-default-crashkernel for this arch
    default_size: int | None  # what that value reserves at this RAM total
    verdict: str
    too_small: bool | None  # None when the reservation is unknown

    def to_json(self) -> dict[str, Any]:
        """The estimate's own keys; `reserved` and `ram` come from kdumpctl_py.vocabulary."""
        return {
            "parts": {p.name: {"bytes": p.bytes, "how": p.how} for p in self.parts},
            "needed": self.needed,
            "default": {"value": self.default_value, "size": self.default_size},
            "too_small": self.too_small,
            "verdict": self.verdict,
            "constants": "fitted to the QEMU crash cycles (see man kdumpctl-py, estimate)",
        }


def as_value(needed: int) -> str:
    """`needed` as a crashkernel= size, in whole MiB rounded up, for --value."""
    return f"{-(-needed // (1 << 20))}M"


def estimate(view: SystemView, c: Constants = CONSTANTS) -> Estimate:
    """The model applied to this machine, compared with what is reserved now."""
    release = view.uname.release
    parts: list[Part] = []

    kernel = find_kernel(view, release)
    image, where = (kernel[1], f"/boot/{kernel[0]}") if kernel else (
        c.kernel_fallback, f"no kernel image for {release} in /boot; assumed")
    in_memory = _kernel_memory(view, kernel[0]) if kernel else None
    if in_memory:
        parts.append(Part("kernel", in_memory, f"{where}: its header's in-memory size"))
    else:
        parts.append(Part("kernel", int(image * c.kernel_inflate),
                          f"{where} {format_bytes(image)} x {c.kernel_inflate}"))

    roots = _section_roots(view)
    if roots:
        parts.append(Part("section roots", roots, "the capture kernel's own SPARSEMEM_EXTREME "
                          "mem_section roots (VMCOREINFO LENGTH(mem_section) pointers)"))

    initrd = find_initrd(view, release)
    packed, where = (initrd[1], f"/boot/{initrd[0]}") if initrd else (
        c.initrd_fallback, f"no initramfs for {release} in /boot; assumed")
    parts.append(Part("initramfs", packed, f"{where} {format_bytes(packed)}, compressed"))
    parts.append(Part("initramfs unpacked", int(packed * c.initrd_unpack),
                      f"{format_bytes(packed)} x {c.initrd_unpack}"))

    parts.append(Part("kernel runtime", c.kernel_runtime, "fixed"))
    parts.append(Part("per-CPU", c.per_cpu * c.capture_cpus,
                      f"{format_bytes(c.per_cpu)} x {c.capture_cpus} CPU (nr_cpus)"))
    parts.append(Part("user space", c.python, "init, Python 3 with numpy, the saver"))
    parts.append(Part("I/O buffers", c.io_buffers, "vmcore reads, compression, dirty pages"))

    ram, ram_source = system_ram(view)
    page = page_size(view)
    if ram is None:
        parts.append(Part("page bitmaps", 0, "RAM total unknown; not counted"))
    else:
        frames = ram // page
        parts.append(Part("page bitmaps", -(-frames * c.bitmap_bits_per_page // 8),
                          f"{frames} page frames x {c.bitmap_bits_per_page} bits"))

    size = {p.name: p.bytes for p in parts}
    unpacking = size["initramfs"] + size["initramfs unpacked"]
    rootfs = size["initramfs"] + int(size["initramfs unpacked"] / c.rootfs_share)
    saving = sum(size[n] for n in ("initramfs unpacked", "kernel runtime", "per-CPU",
                                   "user space", "I/O buffers", "page bitmaps"))
    worst = max(unpacking, rootfs, saving)
    parts.append(Part("worst moment", worst,
                      f"largest of unpacking {format_bytes(unpacking)}, rootfs at "
                      f"{c.rootfs_share:.0%} {format_bytes(rootfs)}, saving "
                      f"{format_bytes(saving)}"))
    subtotal = size["kernel"] + size.get("section roots", 0) + worst
    # The reservation also holds the struct pages describing itself.
    with_memmap = subtotal / (1 - c.struct_page / page)
    raw = with_memmap * (1 + c.margin)
    needed = int(-(-raw // c.round_to) * c.round_to)
    parts.append(Part("memmap", int(with_memmap - subtotal),
                      f"{c.struct_page} bytes per {page >> 10}K page of the reservation"))
    parts.append(Part("margin", int(raw - with_memmap), f"{c.margin:.0%} of the above"))

    try:
        default_value: str | None = default_crashkernel(view.arch, page)
    except UsageError:
        default_value = None
    default_size = None
    if default_value is not None and ram is not None:
        try:
            default_size = evaluate_value(default_value, ram, view.arch).size
        except InvalidCrashkernel:
            default_size = 0

    now = reserved(view).total
    if now is None:
        too_small, verdict = None, (f"needs about {format_bytes(needed)}; what is reserved now "
                                    "is unknown (run as root?)")
    elif now == 0:
        short = default_size is not None and default_size < needed
        too_small, verdict = True, (f"needs about {format_bytes(needed)}; nothing is reserved: "
                                    "kdump cannot work (kdumpctl-py reset-crashkernel"
                                    + (f" --value {as_value(needed)})" if short else ")"))
    elif now < needed:
        too_small, verdict = True, (f"TOO SMALL: {format_bytes(now)} reserved, about "
                                    f"{format_bytes(needed)} needed ({format_bytes(needed - now)} "
                                    "short); the capture kernel may run out of memory")
    else:
        too_small, verdict = False, (f"enough: {format_bytes(now)} reserved, about "
                                     f"{format_bytes(needed)} needed")
    return Estimate(tuple(parts), needed, now, ram, ram_source, default_value, default_size,
                    verdict, too_small)


def shortfall(e: Estimate, value: str, arch: Arch) -> str | None:
    """Why crashkernel=value falls short on this machine; None if enough or RAM is unknown."""
    if e.ram is None:
        return None
    try:
        size = evaluate_value(value, e.ram, arch).size
    except InvalidCrashkernel as why:
        return f"crashkernel={value} reserves nothing at this RAM ({format_bytes(e.ram)}): {why}"
    if size >= e.needed:
        return None
    return (f"crashkernel={value} reserves {format_bytes(size)} at this RAM "
            f"({format_bytes(e.ram)}), below the {format_bytes(e.needed)} that kdumpctl-py "
            "estimate says the capture kernel needs")


def _section_roots(view: SystemView) -> int:
    """Bytes of the mem_section root array every boot of this kernel allocates (memblock,
    mm/sparse.c memory_present()) when SPARSEMEM_EXTREME: NR_SECTION_ROOTS pointers. 32 MiB
    on riscv64 (MAX_PHYSMEM_BITS 56), 16 KiB on x86_64; a static array (not EXTREME, one
    section a root) is in the image already."""
    info = view.vmcoreinfo
    if info is None:
        return 0
    roots, physmem, section = (info.length("mem_section"), info.number("MAX_PHYSMEM_BITS"),
                               info.number("SECTION_SIZE_BITS"))
    if not roots or not physmem or not section or roots >= 1 << (physmem - section):
        return 0
    return roots * 8


def _kernel_memory(view: SystemView, name: str) -> int | None:
    """What the kernel image occupies once running, from its header; None if unknown."""
    from kdumpctl_py.errors import KdumpError
    from kdumpctl_py.facts.kernel_image import memory_size

    head = view.boot_header(name)
    if head is None:
        return None
    try:
        return memory_size(head)
    except KdumpError:
        return None
