"""crashkernel=: the kernel's grammar and evaluation, as Linux 6.12 reads it (and, given
a kernel release, where older and newer ones read it otherwise: `rules`).

Admins check a value here before they reboot with it, so this follows
kernel/crash_reserve.c (parse_crashkernel and its helpers) and lib/cmdline.c
(memparse) step by step, including what they forgive: the value is found with
strstr() anywhere in the raw command line, a word ends at a space (not a tab),
the text after a matching range is skipped up to '@', and numbers wrap at 64
bits. Nothing here reads the machine: the result is a `Reservation` or an
`InvalidCrashkernel` that says why the kernel would reserve nothing.

The kernel's rules for shrinking a reservation through
/sys/kernel/kexec_crash_size (kernel/kexec_core.c crash_shrink_memory) are
here too, and `reserved`/`system_ram` read what a `SystemView` says is
reserved now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from kdumpctl_py.arch import Arch
from kdumpctl_py.errors import KdumpError, UsageError
from kdumpctl_py.facts.cmdline import param_values
from kdumpctl_py.facts.iomem import Range
from kdumpctl_py.facts.vmcoreinfo import release_version
from kdumpctl_py.units import MASK64, MiB, format_bytes

if TYPE_CHECKING:
    from kdumpctl_py.facts.view import SystemView

PARAM = "crashkernel="
# parse_crashkernel_mem rounds the RAM total up to this before matching ranges.
RAM_ROUND = 128 * MiB
# 6.12's suffix_tbl. Linux 6.16 added ",cma" (a CMA area the capture kernel may use,
# beside the main reservation): from then on the plain lookup skips "X,cma" words, where
# earlier kernels take one as the plain value and reject it.
SUFFIXES = (",high", ",low")
CMA_SUFFIX, CMA_SINCE = ",cma", (6, 16)
ROUND_SINCE = (6, 0)
# memparse's suffixes: each is 2**10 of the one after it.
SHIFTS = {"K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60}
# include/linux/swiotlb.h: IO_TLB_SHIFT (2 KiB slabs), IO_TLB_SEGSIZE; 64 MiB by default.
IO_TLB_SHIFT = 11
IO_TLB_SEGSIZE = 128
DEFAULT_SWIOTLB = 64 * MiB

_DIGITS = "0123456789abcdef"
_SUFFIX_LETTERS = "KMGTPEkmgtpe"


@dataclass(frozen=True)
class Reservation:
    """What the kernel would reserve: the result of parse_crashkernel()."""

    size: int
    offset: int | None  # None when no @offset was given or it is 0 (0 means "anywhere")
    high: bool  # from "size,high": searched above the low limit first
    low_size: int | None  # with ",high" only: the low region reserved beside it

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "offset": self.offset, "high": self.high,
                "low_size": self.low_size}


class InvalidCrashkernel(UsageError):
    """A crashkernel= value the kernel rejects, or one that reserves nothing."""


def _at(s: str, i: int) -> str:
    """The character at i, or NUL past the end, as C sees a string."""
    return s[i] if i < len(s) else "\0"


def simple_strtoull(s: str, pos: int = 0) -> tuple[int, int]:
    """lib/vsprintf.c simple_strtoull with base 0 at s[pos:]: (value, index after it).

    "0x" then a hex digit is hex, another leading 0 is octal; no sign, no
    spaces; the value wraps at 64 bits. The index equals pos when no digit
    was read.
    """
    i, base = pos, 10
    if _at(s, i) == "0":
        base = 8
        if _at(s, i + 1) in "xX" and _digit(_at(s, i + 2), 16) is not None:
            base, i = 16, i + 2
    value = 0
    while (digit := _digit(_at(s, i), base)) is not None:
        value = (value * base + digit) & MASK64
        i += 1
    return value, i


def _digit(ch: str, base: int) -> int | None:
    """The value of an ASCII digit in `base`, as the kernel's ctype sees it."""
    digit = _DIGITS.find(ch.lower()) if ch.isascii() and ch != "\0" else -1
    return digit if 0 <= digit < base else None


def memparse(s: str, pos: int = 0) -> tuple[int, int]:
    """lib/cmdline.c memparse at s[pos:]: (value, index after it).

    A number as simple_strtoull reads it, then optionally one of KMGTPE in
    either case. The index equals pos when nothing was read; the kernel
    consumes a lone suffix letter as the number 0.
    """
    value, i = simple_strtoull(s, pos)
    letter = _at(s, i)
    if letter in _SUFFIX_LETTERS:
        value = (value << SHIFTS[letter.upper()]) & MASK64
        i += 1
    return value, i


def parse_size(text: str, what: str = "size") -> int:
    """A whole string read as memparse reads it (e.g. 16G, 0x1000000); bad input is a UsageError."""
    value, end = memparse(text)
    if not text or end != len(text):
        raise UsageError(f"{what} {text!r} is not a number with an optional K/M/G/T/P/E suffix")
    return value


def round_ram(ram: int) -> int:
    """The RAM total parse_crashkernel_mem matches ranges against: rounded up to 128 MiB."""
    return ((ram + RAM_ROUND - 1) & MASK64) // RAM_ROUND * RAM_ROUND


def swiotlb_size(cmdline: str) -> int:
    """The swiotlb size a command line sets (setup_io_tlb_npages), else the 64 MiB default.

    x86_64's default crashkernel low size depends on it. (SEV guests enlarge
    swiotlb at boot; that is not modelled.)
    """
    size = DEFAULT_SWIOTLB
    for value in param_values(cmdline, "swiotlb"):
        if value and value[0] in "0123456789":
            nslabs = simple_strtoull(value)[0]
            nslabs = ((nslabs + IO_TLB_SEGSIZE - 1) & MASK64) // IO_TLB_SEGSIZE * IO_TLB_SEGSIZE
            size = (nslabs << IO_TLB_SHIFT) & MASK64
    return size


def default_low_size(arch: Arch, swiotlb: int = DEFAULT_SWIOTLB) -> int | None:
    """DEFAULT_CRASH_KERNEL_LOW_SIZE: x86_64 max(swiotlb + 8 MiB, 256 MiB), else the arch's."""
    if arch.low_size_over_swiotlb is not None and arch.default_low_size is not None:
        return max((swiotlb + arch.low_size_over_swiotlb) & MASK64, arch.default_low_size)
    return arch.default_low_size


class Rules(NamedTuple):
    """How a kernel release reads crashkernel=, where it differs from 6.12's."""

    suffixes: tuple[str, ...] = SUFFIXES  # get_last_crashkernel's table
    round_ram: bool = True  # ranges matched against the RAM total rounded up to 128 MiB
    high_low: bool = True  # ,high and ,low, where the architecture has them at all
    fixed_align: int | None = None  # what an @offset must be a multiple of (None: unchecked)


def rules(release: str | None, arch: Arch | None = None) -> Rules:
    """The rules of a kernel release ("5.10.0-30-amd64"); 6.12's when it is unknown.

    6.0 began rounding the RAM total up to 128 MiB before matching ranges ("kdump: round
    up the total memory size to 128M for crashkernel reservation"); 6.16 added ,cma; some
    architectures had ,high and ,low later than others (Arch.crash_high_low_since)."""
    version = release_version(release)
    align = arch.crash_align if arch else None
    if version is None:
        return Rules(fixed_align=align)
    if arch and arch.older_fixed_align and version < arch.older_fixed_align[0]:
        align = arch.older_fixed_align[1]
    return Rules((*SUFFIXES, CMA_SUFFIX) if version >= CMA_SINCE else SUFFIXES,
                 version >= ROUND_SINCE,
                 arch is None or version >= arch.crash_high_low_since, align)


def _last(cmdline: str, suffix: str | None, known: tuple[str, ...] = SUFFIXES) -> int | None:
    """get_last_crashkernel: where the value of the last matching crashkernel= starts.

    Without a suffix the last occurrence that does not end in a `known` suffix;
    with one, the last that ends in it. A word ends at the next space.
    """
    found = None
    p = cmdline.find(PARAM)
    while p != -1:
        end = cmdline.find(" ", p)
        word = cmdline[p: end if end != -1 else len(cmdline)]
        if suffix is None:
            if not word.endswith(known):
                found = p
        elif word.endswith(suffix):
            found = p
        p = cmdline.find(PARAM, p + 1)
    return None if found is None else found + len(PARAM)


def in_force(cmdline: str, release: str | None = None) -> str | None:
    """The crashkernel= value the kernel `release` goes by (get_last_crashkernel's order):
    the last one without a suffix, else the last ,high one; None when there is neither."""
    cmdline = cmdline.split("\0", 1)[0]
    for suffix in (None, ",high"):
        at = _last(cmdline, suffix, rules(release).suffixes)
        if at is not None:
            end = cmdline.find(" ", at)
            return cmdline[at:end if end != -1 else len(cmdline)]
    return None


def _parse_ranges(s: str, pos: int, ram: int, rounded: bool = True) -> tuple[int, int] | None:
    """parse_crashkernel_mem: (size, base), or None when no range matches; `rounded`: the
    RAM total rounded up to 128 MiB first (Linux 6.0 on)."""
    total = round_ram(ram) if rounded else ram
    cur = pos
    while True:
        start, end, size, cur = _range(s, pos, cur)
        if size >= total:
            raise InvalidCrashkernel(
                f"size {format_bytes(size)} is not below the RAM total"
                f"{' rounded up to 128 MiB' if rounded else ''} ({format_bytes(total)})")
        if start <= total < end:
            break
        cur += 1
        if _at(s, cur - 1) != ",":
            return None
    if size == 0:
        return 0, 0
    while _at(s, cur) not in "\0 @":
        cur += 1
    if _at(s, cur) != "@":
        return size, 0
    base, tmp = memparse(s, cur + 1)
    if tmp == cur + 1:
        raise InvalidCrashkernel("a memory value must follow '@'")
    return size, base


def _range(s: str, pos: int, cur: int) -> tuple[int, int, int, int]:
    """One `start-[end]:size` at `cur` (the list starting at `pos`): start, end (2^64 - 1
    when open), size, and where it stops."""
    start, tmp = memparse(s, cur)
    if tmp == cur:
        raise InvalidCrashkernel("a range must start with a memory value")
    cur = tmp
    if _at(s, cur) != "-":
        raise InvalidCrashkernel(f"'-' expected after the range start at {s[pos:cur]!r}")
    cur += 1
    end = MASK64
    if _at(s, cur) != ":":
        end, tmp = memparse(s, cur)
        if tmp == cur:
            raise InvalidCrashkernel("a range end must be a memory value or nothing")
        cur = tmp
        if end <= start:
            raise InvalidCrashkernel(f"range {s[pos:cur]!r} ends before it starts")
    if _at(s, cur) != ":":
        raise InvalidCrashkernel(f"':' expected after the range {s[pos:cur]!r}")
    cur += 1
    size, tmp = memparse(s, cur)
    if tmp == cur:
        raise InvalidCrashkernel("a memory value must follow ':'")
    return start, end, size, tmp


def _parse_simple(s: str, pos: int) -> tuple[int, int]:
    """parse_crashkernel_simple: size[@offset]; nothing is checked after the offset."""
    size, cur = memparse(s, pos)
    if cur == pos:
        raise InvalidCrashkernel("crashkernel= must start with a memory value")
    if _at(s, cur) == "@":
        return size, memparse(s, cur + 1)[0]
    if _at(s, cur) not in "\0 ":
        raise InvalidCrashkernel(f"unexpected {_at(s, cur)!r} after the size")
    return size, 0


def _parse_suffix(s: str, pos: int, suffix: str) -> int:
    """parse_crashkernel_suffix: size followed by exactly the suffix and a space or the end."""
    size, cur = memparse(s, pos)
    if cur == pos:
        raise InvalidCrashkernel(f"crashkernel=...{suffix} must start with a memory value")
    if not s.startswith(suffix, cur) or _at(s, cur + len(suffix)) not in "\0 ":
        raise InvalidCrashkernel(f"crashkernel=...{suffix} must be a size and {suffix} only")
    return size


def _parse_plain(s: str, pos: int, ram: int, rounded: bool = True) -> tuple[int, int] | None:
    """__parse_crashkernel without a suffix: ranges when ':' comes before the first space."""
    colon, space = s.find(":", pos), s.find(" ", pos)
    if colon != -1 and (space == -1 or colon < space):
        return _parse_ranges(s, pos, ram, rounded)
    return _parse_simple(s, pos)


def evaluate(cmdline: str, ram: int, arch: Arch, swiotlb: int | None = None,
             release: str | None = None) -> Reservation:
    """What Linux reserves for a whole command line on a machine with `ram` bytes: by 6.12's
    rules, or those of the kernel `release` where they differ (`rules`; its main
    reservation only: a 6.16 kernel's ",cma" area is not counted).

    `ram` is the memblock total, unrounded (s390 passes ident_map_size).
    `swiotlb` defaults to what the command line's swiotlb= sets.
    Raises InvalidCrashkernel when the kernel would reserve nothing.
    """
    cmdline = cmdline.split("\0", 1)[0]
    kernel = rules(release, arch)
    plain = _last(cmdline, None, kernel.suffixes)
    if plain is not None:
        parsed = _parse_plain(cmdline, plain, ram, kernel.round_ram)
        if parsed is None:
            rounded = (f" (rounded up to {format_bytes(round_ram(ram))})" if kernel.round_ram
                       else "")
            raise InvalidCrashkernel(f"no range matches RAM {format_bytes(ram)}{rounded}")
        size, base = parsed
        if size == 0:
            raise InvalidCrashkernel("the size is zero")
        if base and kernel.fixed_align and base % kernel.fixed_align:
            raise InvalidCrashkernel(
                f"@{base:#x} is not a multiple of {format_bytes(kernel.fixed_align)}: the "
                "kernel finds no aligned place between it and its end and reserves nothing")
        result = Reservation(size, base or None, False, None)
    elif arch.crash_high_low and kernel.high_low:
        result = _high_low(cmdline, arch, swiotlb)
    else:
        if _last(cmdline, ",high") is not None or _last(cmdline, ",low") is not None:
            which = f"{arch.name} {release}" if arch.crash_high_low else arch.name
            raise InvalidCrashkernel(f"the {which} kernel has no crashkernel=...,high or ,low")
        raise InvalidCrashkernel("there is no crashkernel= on the command line")
    if result.size >= ram:
        raise InvalidCrashkernel(
            f"size {format_bytes(result.size)} is not below the RAM total ({format_bytes(ram)})")
    return result


def _high_low(cmdline: str, arch: Arch, swiotlb: int | None) -> Reservation:
    """crashkernel=size,high and its ,low (or the architecture's default low size)."""
    high = _last(cmdline, ",high")
    if high is None:
        if _last(cmdline, ",low") is not None:
            raise InvalidCrashkernel("crashkernel=...,low is only used with crashkernel=...,high")
        raise InvalidCrashkernel("there is no crashkernel= on the command line")
    size = _parse_suffix(cmdline, high, ",high")
    if size == 0:
        raise InvalidCrashkernel("the size is zero")
    low = _last(cmdline, ",low")
    if low is None:
        low_size = default_low_size(arch, swiotlb_size(cmdline) if swiotlb is None else swiotlb)
    else:
        low_size = _parse_suffix(cmdline, low, ",low")
    return Reservation(size, None, True, low_size)


def evaluate_value(value: str, ram: int, arch: Arch, swiotlb: int = DEFAULT_SWIOTLB,
                   release: str | None = None) -> Reservation:
    """What the kernel reserves for crashkernel=value alone on the command line."""
    return evaluate(PARAM + value, ram, arch, swiotlb, release)


# -- the reverse: values as strings --------------------------------------------

RangeRule = tuple[int, int | None, int]  # (start, end or None for unbounded, size)


def format_size(n: int) -> str:
    """The shortest exact memparse spelling: 256M, 1G, 1536M, 4097."""
    for letter, shift in reversed(SHIFTS.items()):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift}{letter}"
    return str(n)


def format_ranges(rules: Sequence[RangeRule], offset: int | None = None) -> str:
    """A ranges value such as 2G-64G:256M,64G-:512M."""
    text = ",".join(
        f"{format_size(start)}-{'' if end is None else format_size(end)}:{format_size(size)}"
        for start, end, size in rules)
    return text + (f"@{format_size(offset)}" if offset else "")


def format_reservation(r: Reservation) -> str:
    """crashkernel= words that make the kernel reserve exactly `r`."""
    if not r.high:
        at = f"@{format_size(r.offset)}" if r.offset else ""
        return f"{PARAM}{format_size(r.size)}{at}"
    low = f" {PARAM}{format_size(r.low_size)},low" if r.low_size is not None else ""
    return f"{PARAM}{format_size(r.size)},high{low}"


def check_value(value: str, arch: Arch) -> None:
    """Refuse a value to be written unless all of it is well-formed (stricter than the kernel).

    The kernel ignores some trailing text and never reads ranges after the
    one that matches; a value written to a boot loader must be right for any
    RAM size, so every part is checked here.
    """
    if not value or any(c.isspace() or c in "\"'$\\\0" for c in value):
        raise UsageError(f"crashkernel value {value!r} must be one word without quotes or '$'")
    base, at, offset = value.partition("@")
    if at and (not offset or memparse(offset)[1] != len(offset)):
        raise UsageError(f"crashkernel={value}: '@' must be followed by a memory value only")
    for suffix in SUFFIXES:
        if base.endswith(suffix):
            _check_suffixed(base, suffix, value, bool(at), arch)
            return
    if ":" not in base:
        _check_number(base, value, nonzero=True)
        return
    for rule in base.split(","):
        span, colon, size = rule.partition(":")
        start_text, dash, end_text = span.partition("-")
        if not colon or not dash:
            raise UsageError(f"crashkernel={value}: {rule!r} is not start-[end]:size")
        start = _check_number(start_text, value)
        end = _check_number(end_text, value) if end_text else None
        _check_number(size, value)
        if end is not None and end <= start:
            raise UsageError(f"crashkernel={value}: range {span!r} ends before it starts")


def _check_suffixed(base: str, suffix: str, value: str, at: bool, arch: Arch) -> None:
    """size,high (size,low alone reserves nothing), where the architecture has it."""
    if at:
        raise UsageError(f"crashkernel={value}: {suffix} takes no @offset")
    if suffix == ",low":
        raise UsageError(f"crashkernel={value}: ,low alone reserves nothing; use size,high")
    if not arch.crash_high_low:
        raise UsageError(f"the {arch.name} kernel has no crashkernel=...,high")
    _check_number(base.removesuffix(suffix), value, nonzero=True)


def _check_number(text: str, value: str, nonzero: bool = False) -> int:
    number, end = memparse(text)
    if not text or end != len(text):
        raise UsageError(f"crashkernel={value}: {text!r} is not a memory value")
    if nonzero and number == 0:
        raise UsageError(f"crashkernel={value}: the size is zero")
    return number


# -- what is reserved now, and shrinking it ------------------------------------

@dataclass(frozen=True)
class Reserved:
    """The crash regions of the running kernel."""

    regions: tuple[Range, ...]  # "Crash kernel" in /proc/iomem, lowest first
    regions_known: bool  # False when /proc/iomem is unreadable or masked (not root)
    crash_size: int | None  # /sys/kernel/kexec_crash_size: both regions together

    @property
    def main(self) -> Range | None:
        """crashk_res: the only region, or the higher of two (the ,high or fallback one)."""
        return self.regions[-1] if self.regions else None

    @property
    def low(self) -> Range | None:
        """crashk_low_res: the lower of two regions."""
        return self.regions[0] if len(self.regions) > 1 else None

    @property
    def total(self) -> int | None:
        if self.crash_size is not None:
            return self.crash_size
        return sum(r.size for r in self.regions) if self.regions_known else None


def reserved(view: SystemView) -> Reserved:
    iomem = view.iomem
    known = iomem is not None and not iomem.masked
    regions = tuple(iomem.crash_regions) if iomem is not None and known else ()
    return Reserved(regions, known, view.kexec_crash_size)


def system_ram(view: SystemView) -> tuple[int | None, str]:
    """The machine's RAM total and where it came from.

    The kernel matches crashkernel= against memblock_phys_mem_size(), which
    user space cannot read after boot; the sum of the top-level System RAM
    ranges in /proc/iomem is the nearest visible figure (it includes the
    crash regions, as memblock does), with, on arm64, the memory marked nomap
    that memblock counts too (the UEFI runtime's, named "reserved" there).
    MemTotal is a last resort: it leaves out everything reserved at boot, the
    crash regions included.
    """
    iomem = view.iomem
    if iomem is not None and not iomem.masked and iomem.system_ram:
        nomap = [r.range for r in iomem.top if r.name == view.arch.iomem_nomap]
        return (sum(r.size for r in [*iomem.system_ram, *nomap]),
                "sum of System RAM" + (f" and top-level {view.arch.iomem_nomap}" if nomap
                                       else "") + " in /proc/iomem; memblock's total is not "
                "visible after boot")
    if "MemTotal" in view.meminfo:
        return (view.meminfo["MemTotal"],
                "MemTotal from /proc/meminfo, an underestimate; /proc/iomem is unreadable")
    return None, "unknown: neither /proc/iomem nor /proc/meminfo is readable"


def crash_mem_align(arch: Arch, page_size: int) -> int:
    """KEXEC_CRASH_MEM_ALIGN: what a new kexec_crash_size is rounded up to."""
    return arch.crash_mem_align or page_size


@dataclass(frozen=True)
class ShrinkPlan:
    old_size: int
    new_size: int  # rounded up as the kernel will
    freed: tuple[Range, ...]  # what goes back to the page allocator


def plan_shrink(now: Reserved, wanted: int, align: int, loaded: bool | None) -> ShrinkPlan:
    """What writing `wanted` to /sys/kernel/kexec_crash_size does (crash_shrink_memory, 6.12).

    The high region (crashk_res) gives back its tail first, then the low
    one. Raises when the kernel would refuse.
    """
    if now.crash_size is None:
        raise KdumpError("cannot read /sys/kernel/kexec_crash_size (a kernel without kexec?)")
    if loaded is None:
        raise KdumpError("cannot tell whether a capture kernel is loaded "
                         "(/sys/kernel/kexec_crash_loaded)")
    if loaded:
        raise KdumpError("a capture kernel is loaded; the kernel refuses to shrink its memory "
                         "(unload it first: kdumpctl-py stop)")
    new = ((wanted + align - 1) & MASK64) // align * align
    old = now.crash_size
    if new > old:
        raise UsageError(f"the reservation can only shrink: {format_bytes(new)} is more than the "
                         f"{format_bytes(old)} reserved")
    main, low = now.main, now.low
    if not now.regions_known or main is None:
        return ShrinkPlan(old, new, ())
    low_size = low.size if low else 0
    if low is not None and 0 < new < low_size:
        # 6.12 sets crashk_res.end instead of the low region's when it shrinks the low
        # region partly, corrupting the resource tree (fixed upstream in 2025-11, "Fixes:
        # 16c6006af4d4"); stable kernels without the backport oops. Never go there.
        raise KdumpError(f"shrinking into the low crash region (below {format_bytes(low_size)}) "
                         "hits a kernel bug in 6.12 without its 2025-11 fix; choose 0 or at least "
                         f"{format_bytes(low_size)}")
    if new == old:
        return ShrinkPlan(old, new, ())
    if low is not None and low_size >= new:
        freed = [main] + ([Range(low.start + new, low.end)] if low_size > new else [])
    else:
        freed = [Range(main.start + new - low_size, main.end)]
    return ShrinkPlan(old, new, tuple(r for r in freed if r.end >= r.start))
