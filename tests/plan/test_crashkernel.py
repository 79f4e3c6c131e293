"""crashkernel= evaluation, checked against Linux 6.12's rules two ways.

Known cases pin what kernel/crash_reserve.c and lib/cmdline.c do; the
property tests compare the evaluator with `model`, an independent and
deliberately plain reading of the same rules (regular expressions for
numbers, command lines cut into words), on generated values and command
lines.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kdumpctl_py.arch import get_arch
from kdumpctl_py.errors import KdumpError, UsageError
from kdumpctl_py.facts.iomem import Range
from kdumpctl_py.plan.crashkernel import (
    DEFAULT_SWIOTLB,
    InvalidCrashkernel,
    Reservation,
    Reserved,
    check_value,
    default_low_size,
    evaluate,
    evaluate_value,
    format_ranges,
    format_reservation,
    format_size,
    in_force,
    memparse,
    parse_size,
    plan_shrink,
    round_ram,
    swiotlb_size,
    system_ram,
)

K, M, G, T = 1 << 10, 1 << 20, 1 << 30, 1 << 40
U64 = 1 << 64
X86, ARM64, PPC = get_arch("x86_64"), get_arch("aarch64"), get_arch("ppc64le")


# -- the independent model ------------------------------------------------------

# A number as simple_strtoull(base 0) reads it, then an optional memparse suffix.
NUMBER = re.compile(r"(?P<hex>0[xX](?=[0-9a-fA-F])[0-9a-fA-F]+)|(?P<oct>0[0-7]*)"
                    r"|(?P<dec>[1-9][0-9]*)|(?P<none>)")
SUFFIX = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}


def model_number(text: str, at: int) -> tuple[int, int] | None:
    """(value, end) of the number at text[at:], or None when nothing is there."""
    m = NUMBER.match(text, at)
    assert m is not None
    digits = m.group(0)
    value = int(digits, 16) if m.group("hex") else int(digits, 8) if m.group("oct") else (
        int(digits) if digits else 0)
    end = m.end()
    letter = text[end:end + 1]
    if letter and letter in "kmgtpeKMGTPE":
        value, end = value * 1024 ** SUFFIX[letter.lower()], end + 1
    return (value % U64, end) if end > at else None


def model_simple(v: str) -> tuple[int, int] | None:
    n = model_number(v, 0)
    if n is None:
        return None
    size, end = n
    if v[end:].startswith("@"):
        offset = model_number(v, end + 1)
        return size, offset[0] if offset else 0
    return (size, 0) if end == len(v) else None


def model_ranges(v: str, ram: int) -> tuple[int, int] | None:
    total = (-(-ram // (128 * M)) * 128 * M) % U64
    at = 0
    while True:
        start = model_number(v, at)
        if start is None or v[start[1]:start[1] + 1] != "-":
            return None
        at, end = start[1] + 1, None
        if v[at:at + 1] != ":":
            parsed_end = model_number(v, at)
            if parsed_end is None or parsed_end[0] <= start[0]:
                return None
            end, at = parsed_end
        size = model_number(v, at + 1) if v[at:at + 1] == ":" else None
        if size is None or size[0] >= total:
            return None
        at = size[1]
        if start[0] <= total and (end is None or total < end):
            if size[0] == 0:
                return 0, 0
            if "@" not in v[at:]:
                return size[0], 0
            offset = model_number(v, v.index("@", at) + 1)
            return (size[0], offset[0]) if offset else None
        if v[at:at + 1] != ",":
            return 0, 0
        at += 1


def model_suffix(word: str, suffix: str) -> int | None:
    v = word[len("crashkernel="):]
    n = model_number(v, 0)
    return n[0] if n is not None and v[n[1]:] == suffix else None


def model(cmdline: str, ram: int, high_low: bool, low_default: int | None,
          align: int | None = None) -> Reservation | None:
    """The kernel's parse_crashkernel in plain terms; None when nothing is reserved (an
    @offset that is not a multiple of CRASH_ALIGN, `align`, reserves nothing either)."""
    line = cmdline.split("\0")[0]
    found = [line[m.start():].split(" ")[0] for m in re.finditer("(?=crashkernel=)", line)]
    plain = [w for w in found if not (w.endswith(",high") or w.endswith(",low"))]
    if plain:
        v = plain[-1][len("crashkernel="):]
        parsed = model_ranges(v, ram) if ":" in v else model_simple(v)
        if parsed is None or parsed[0] == 0 or (align and parsed[1] % align):
            return None
        result = Reservation(parsed[0], parsed[1] or None, False, None)
    elif high_low:
        highs = [w for w in found if w.endswith(",high")]
        lows = [w for w in found if w.endswith(",low")]
        size = model_suffix(highs[-1], ",high") if highs else None
        low = model_suffix(lows[-1], ",low") if lows else low_default
        if not size or low is None:
            return None
        result = Reservation(size, None, True, low)
    else:
        return None
    return result if result.size < ram else None


def implementation(cmdline: str, ram: int, arch_name: str) -> Reservation | None:
    try:
        return evaluate(cmdline, ram, get_arch(arch_name), DEFAULT_SWIOTLB)
    except InvalidCrashkernel:
        return None


def model_for(cmdline: str, ram: int, arch_name: str) -> Reservation | None:
    arch = get_arch(arch_name)
    low = 256 * M if arch_name == "x86_64" else arch.default_low_size
    align = {"x86_64": 16 * M, "aarch64": 2 * M, "riscv64": 2 * M}.get(arch_name)
    return model(cmdline, ram, arch.crash_high_low, low, align)


# -- generators -----------------------------------------------------------------
# Strategies are built once; the composites pick from lists with drawn indexes,
# which keeps generation fast enough for the quick tier.

WIDE = st.integers(0, 1 << 46)
INDEXES = [st.integers(0, n - 1) for n in range(1, 20)]
BIG = st.integers(0, 1 << 66)
BASES = st.sampled_from(["dec", "hex", "HEX", "oct"])
FLAGS = st.booleans()
ODD_NUMBERS = ["", "0x", "0X", "08", "09M", "K", "m", "0xg", "1e", "0x1e", "00",
               "18446744073709551616", "0x10000000000000000", "16E", "17E"]
GARBAGE = st.text(alphabet="0123456789xXabefgkKmMG-:,@ ", max_size=4)
JUNK = st.text(alphabet="0123456789xXkKmMgG-:,@hilow", max_size=16)


def pick(draw: st.DrawFn, items: list[Any]) -> Any:
    """One of items, each about as likely (hypothesis favours small integers)."""
    return items[draw(INDEXES[len(items) - 1])]


def spell(draw: st.DrawFn, n: int) -> str:
    """n as an admin might write it: decimal, 0x/0X hex, octal, with a K..E suffix."""
    shift = pick(draw, [0] + [i for i in range(1, 7) if n and n % (1 << (10 * i)) == 0])
    body = n >> (10 * shift)
    text = {"dec": str(body), "hex": f"0x{body:x}", "HEX": f"0X{body:X}",
            "oct": f"0{body:o}"}[draw(BASES)]
    if shift:
        text += ("KMGTPE" if draw(FLAGS) else "kmgtpe")[shift - 1]
    return text


def size_near(draw: st.DrawFn, ram: int, noisy: bool) -> str:
    """A size, often one that lands on the RAM total or its 128 MiB rounding."""
    rounded = round_ram(ram)
    interesting = [0, 1, ram - 1, ram, ram + 1, rounded - 1, rounded, rounded + 1,
                   rounded - 128 * M, 64 * M, 128 * M, 256 * M, 512 * M, G, 2 * G, 64 * G]
    mode = pick(draw, [0, 1, 2, 3, 4])
    if mode == 0 and noisy:
        return str(pick(draw, ODD_NUMBERS))
    n = pick(draw, interesting) if mode < 3 else draw(BIG) if mode == 3 else (
        draw(WIDE) % (4 * rounded + 2))
    return spell(draw, max(n, 0))


KINDS = ["simple", "ranges", "edges", "high", "low", "cma", "junk"]


def value(draw: st.DrawFn, ram: int, kinds: list[str], noisy: bool) -> str:
    """A crashkernel= value: simple, ranges (with and without ends) or suffixed.

    Noisy values have odd numbers, stray characters and empty offsets in them.
    """
    kind = pick(draw, kinds)
    if kind == "simple":
        text = size_near(draw, ram, noisy)
    elif kind == "ranges":
        text = ",".join(
            f"{size_near(draw, ram, noisy)}-{size_near(draw, ram, noisy) if draw(FLAGS) else ''}:"
            f"{size_near(draw, ram, noisy)}" for _ in range(pick(draw, [1, 2, 3, 4])))
    elif kind == "edges":
        # Ranges whose ends sit on the rounded RAM total: end is exclusive, start inclusive.
        rounded = round_ram(ram)
        edges = [0, rounded - 128 * M, rounded, rounded + 128 * M]
        sizes = [64 * M, 128 * M, 192 * M, rounded]
        rules = []
        for _ in range(pick(draw, [1, 2, 3])):
            end = spell(draw, pick(draw, edges)) if draw(FLAGS) else ""
            rules.append(f"{spell(draw, pick(draw, edges))}-{end}:{spell(draw, pick(draw, sizes))}")
        text = ",".join(rules)
    elif kind == "junk":
        return draw(JUNK)
    else:
        tail = pick(draw, ["", "x", ",high", ",low"]) if noisy else ""
        return f"{size_near(draw, ram, noisy)},{kind}{tail}"
    if draw(FLAGS):
        text += "@" + (size_near(draw, ram, noisy) if not noisy or draw(FLAGS) else "")
    return text + (draw(GARBAGE) if noisy and draw(FLAGS) else "")


OTHER_WORDS = ["quiet", "ro", "root=/dev/vda1", "console=ttyS0", "--", "x=a:b",
               "xcrashkernel=1G", "foo=crashkernel=2G", "", "\0"]
# Some lines have only ,high and ,low values, which a plain value would hide; some only
# ranges, to reach the edges of the range rules more often.
LINE_KINDS = [KINDS, ["high", "high", "low"], ["edges", "edges", "ranges", "simple"]]
RAMS = [G, 2 * G, 2 * G - 1, 2 * G - 200 * M, 4 * G, 64 * G, 64 * G - 100 * M, 128 * M + 1]
RAM = st.one_of(st.integers(1, 1 << 44), st.sampled_from(RAMS))


@st.composite
def command_lines(draw: st.DrawFn) -> tuple[str, int]:
    ram = draw(RAM)
    kinds, noisy = pick(draw, LINE_KINDS), draw(FLAGS)
    words = [pick(draw, OTHER_WORDS) if pick(draw, [True, False, False]) else
             "crashkernel=" + value(draw, ram, kinds, noisy)
             for _ in range(pick(draw, [1, 2, 3, 4, 5]))]
    return pick(draw, [" ", " ", " ", "  ", "\t"]).join(words), ram


ARCHES = st.sampled_from(["x86_64", "aarch64", "ppc64le", "s390x", "riscv64"])


# -- the cross-check ------------------------------------------------------------

@settings(max_examples=800, deadline=None)
@given(command_lines(), ARCHES)
@example(("crashkernel=512M crashkernel=256M,high", 8 * G), "x86_64")
@example(("crashkernel=1G,low", 8 * G), "aarch64")
@example(("crashkernel=2G-4G:0,4G-:256M", 3 * G), "x86_64")
def test_evaluator_agrees_with_model(line_ram: tuple[str, int], arch: str) -> None:
    line, ram = line_ram
    assert implementation(line, ram, arch) == model_for(line, ram, arch)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="crashkernel=0123456789xXkKmMgGEe-:,@ hilowg\0", max_size=40),
       st.integers(1, 1 << 45), ARCHES)
def test_evaluator_agrees_with_model_on_noise(line: str, ram: int, arch: str) -> None:
    assert implementation(line, ram, arch) == model_for(line, ram, arch)


@st.composite
def spelled_numbers(draw: st.DrawFn) -> str:
    return spell(draw, draw(st.integers(0, (1 << 64) - 1)))


@given(st.one_of(spelled_numbers(), st.sampled_from(ODD_NUMBERS),
                 st.text(alphabet="0123456789abcdefxXkKmMgGtTpPeE-@", max_size=12)))
def test_memparse_agrees_with_model(text: str) -> None:
    expected = model_number(text, 0)
    assert memparse(text) == (expected if expected is not None else (0, 0))


@given(st.integers(0, (1 << 64) - 1))
def test_format_size_round_trips(n: int) -> None:
    text = format_size(n)
    assert memparse(text) == (n, len(text))


@given(st.integers(1, 1 << 50), st.integers(1, 1 << 50), st.booleans(),
       st.one_of(st.none(), st.integers(0, 1 << 40)), st.integers(0, 1 << 40), ARCHES)
def test_format_reservation_round_trips(size: int, extra: int, high: bool, low: int | None,
                                        offset: int, arch_name: str) -> None:
    arch = get_arch(arch_name)
    if high and not arch.crash_high_low:
        return
    offset -= offset % (16 * M)  # CRASH_ALIGN's multiple on every architecture
    r = Reservation(size, None, True, low) if high else Reservation(size, offset or None, False,
                                                                    None)
    ram = size + extra
    back = evaluate(format_reservation(r), ram, arch, DEFAULT_SWIOTLB)
    expected_low = default_low_size(arch) if high and low is None else low
    assert back == (Reservation(size, None, True, expected_low) if high else r)


@st.composite
def edge_ranges(draw: st.DrawFn) -> tuple[str, int]:
    """Range values whose numbers sit on the edges: the rounded RAM total and its neighbours."""
    ram = draw(RAM)
    rounded = round_ram(ram)
    edges = [0, ram, rounded - 128 * M, rounded, rounded + 128 * M]
    sizes = [0, 64 * M, ram - 1, ram, rounded - 1, rounded]
    rules = []
    for _ in range(pick(draw, [1, 2, 3, 4])):
        end = spell(draw, pick(draw, edges)) if draw(FLAGS) else ""
        rules.append(f"{spell(draw, pick(draw, edges))}-{end}:{spell(draw, pick(draw, sizes))}")
    return ",".join(rules), ram


@settings(max_examples=400, deadline=None)
@given(edge_ranges(), ARCHES)
def test_range_edges_agree_with_model(value_ram: tuple[str, int], arch: str) -> None:
    value, ram = value_ram
    line = "crashkernel=" + value
    assert implementation(line, ram, arch) == model_for(line, ram, arch)


# -- known cases ----------------------------------------------------------------

@pytest.mark.parametrize("text,value,end", [
    ("256M", 256 * M, 4), ("256m", 256 * M, 4), ("0x10000000", 256 * M, 10),
    ("0X1G", G, 4), ("010", 8, 3), ("08M", 0, 1), ("0x", 0, 1), ("0xg", 0, 1),
    ("0x1e", 30, 4), ("1e", 1 << 60, 2), ("K", 0, 1), ("", 0, 0), ("-1", 0, 0),
    ("16E", 0, 3), ("18446744073709551617", 1, 20), ("1T", T, 2), ("3p", 3 << 50, 2),
    ("١٢", 0, 0),  # Arabic-Indic digits are not digits to the kernel
])
def test_memparse_known(text: str, value: int, end: int) -> None:
    assert memparse(text) == (value, end)


@pytest.mark.parametrize("value,ram,expected", [
    ("256M", 4 * G, Reservation(256 * M, None, False, None)),
    ("256M@16M", 4 * G, Reservation(256 * M, 16 * M, False, None)),
    ("256M@0", 4 * G, Reservation(256 * M, None, False, None)),
    ("256M@", 4 * G, Reservation(256 * M, None, False, None)),  # memparse reads 0: accepted
    ("256M@16Mjunk", 4 * G, Reservation(256 * M, 16 * M, False, None)),  # not checked
    ("2G-64G:256M,64G-:512M", 4 * G, Reservation(256 * M, None, False, None)),
    ("2G-64G:256M,64G-:512M", 64 * G, Reservation(512 * M, None, False, None)),
    # 2 GiB minus 100 MiB is rounded up to 2 GiB before matching.
    ("2G-64G:256M,64G-:512M", 2 * G - 100 * M, Reservation(256 * M, None, False, None)),
    ("1G-:128Mjunk@0x1000000zz", 4 * G, Reservation(128 * M, 16 * M, False, None)),
    # "0x1000000t" is 0x1000000 TiB, which wraps to 0: anywhere.
    ("1G-:128M@0x1000000tail", 4 * G, Reservation(128 * M, None, False, None)),
    ("0-2G:128M,2G-:bogus", G, Reservation(128 * M, None, False, None)),  # never read
    ("256M,high", 8 * G, Reservation(256 * M, None, True, 256 * M)),
])
def test_evaluate_known(value: str, ram: int, expected: Reservation) -> None:
    assert evaluate_value(value, ram, X86) == expected


@pytest.mark.parametrize("value,arch,release,reserved", [
    ("256M@0x1800000", "x86_64", None, False),  # 6.12: CRASH_ALIGN 16 MiB
    ("256M@16M", "x86_64", None, True),
    ("256M@0x1800000", "x86_64", "6.1.0-56-amd64", True),  # before 6.7: SZ_1M
    ("256M@0x1880000", "x86_64", "6.1.0-56-amd64", False),
    ("256M@0x1001000", "aarch64", "6.1.0-56-arm64", False),  # CRASH_ALIGN 2 MiB
    ("1G-:256M@0x1200000", "riscv64", None, True),  # PMD_SIZE
    ("1G-:256M@0x1100000", "riscv64", None, False),
])
def test_a_misaligned_offset_reserves_nothing(value: str, arch: str, release: str | None,
                                              reserved: bool) -> None:
    """Found by the load-plan review: memblock_phys_alloc_range(size, CRASH_ALIGN, offset,
    offset + size) finds no place when the offset is not aligned ("memory is in use")."""
    line = f"crashkernel={value}"
    if reserved:
        assert evaluate(line, 4 * G, get_arch(arch), release=release).offset
    else:
        with pytest.raises(InvalidCrashkernel, match="is not a multiple of .* reserves nothing"):
            evaluate(line, 4 * G, get_arch(arch), release=release)


@pytest.mark.parametrize("value,ram,why", [
    ("2G-64G:256M,64G-:512M", G, "no range matches"),
    ("2G-4G:256M", 4 * G, "no range matches"),  # end is exclusive
    ("1G-2G:8G,2G-:256M", 8 * G, "not below the RAM total rounded"),  # before the match
    ("0-:4G", 4 * G - 1, "not below the RAM total rounded"),
    ("0-:0", 4 * G, "size is zero"),
    ("4G-2G:256M", 8 * G, "ends before it starts"),
    ("1G-:", 8 * G, "must follow ':'"),
    ("1G:256M", 8 * G, "'-' expected"),
    ("1G-:256M@", 8 * G, "must follow '@'"),
    ("0", 8 * G, "size is zero"),
    ("K", 8 * G, "size is zero"),
    ("256Mx", 8 * G, "unexpected 'x'"),
    ("08M", 8 * G, "unexpected '8'"),
    ("512M,cma", 8 * G, "unexpected ','"),  # ",cma" is 6.16's
    ("4G", 4 * G, "not below the RAM total (4 GiB)"),  # the final rule, unrounded
    ("0-:3950M", 3900 * M, "is not below the RAM total (3.8 GiB)"),  # < rounded 3968M
    ("256M,low", 8 * G, ",low is only used with"),
    ("0,high", 8 * G, "size is zero"),
    ("256M,highx", 8 * G, "unexpected ','"),  # not a known suffix: a plain value
])
def test_evaluate_rejects(value: str, ram: int, why: str) -> None:
    with pytest.raises(InvalidCrashkernel, match=re.escape(why)):
        evaluate_value(value, ram, X86)


def test_command_lines() -> None:
    line = "ro crashkernel=512M quiet crashkernel=1G,high crashkernel=256M -- crashkernel=2G,low"
    assert evaluate(line, 8 * G, X86) == Reservation(256 * M, None, False, None)  # last plain
    high = "crashkernel=1G,high crashkernel=2G,high crashkernel=64M,low crashkernel=0,low"
    assert evaluate(high, 8 * G, ARM64) == Reservation(2 * G, None, True, 0)
    assert evaluate("crashkernel=1G,high", 8 * G, ARM64).low_size == 128 * M
    # Only a word that ends in ,high counts as one: the middle one is a ,low, never read.
    mixed = "crashkernel=1G,high crashkernel=2G,high,low crashkernel=64M,low"
    assert evaluate(mixed, 8 * G, ARM64) == Reservation(G, None, True, 64 * M)
    # After a matching range the kernel skips to '@' or a space; a tab does not stop it.
    assert evaluate("crashkernel=1G-:128M\tx@16M", 8 * G, X86).offset == 16 * M
    # strstr() finds crashkernel= inside other words too, as the kernel does.
    assert evaluate("xcrashkernel=384M", 8 * G, X86).size == 384 * M
    # A ':' after the first space does not make ranges; a tab is not a space.
    assert evaluate("crashkernel=256M foo=a:b", 8 * G, X86).size == 256 * M
    with pytest.raises(InvalidCrashkernel, match="unexpected"):
        evaluate("crashkernel=256M\tquiet", 8 * G, X86)
    with pytest.raises(InvalidCrashkernel, match="no crashkernel="):
        evaluate("quiet", 8 * G, X86)
    with pytest.raises(InvalidCrashkernel, match="ppc64le kernel has no"):
        evaluate("crashkernel=1G,high", 8 * G, PPC)
    assert evaluate("crashkernel=1G", 8 * G, PPC).size == G


def test_x86_low_default_follows_swiotlb() -> None:
    assert swiotlb_size("quiet") == DEFAULT_SWIOTLB
    assert swiotlb_size("swiotlb=262144,force") == 512 * M
    assert swiotlb_size("swiotlb=100") == 128 * 2 * K  # rounded up to a 128-slab segment
    assert swiotlb_size("swiotlb=noforce") == DEFAULT_SWIOTLB
    r = evaluate("swiotlb=262144 crashkernel=1G,high", 8 * G, X86)
    assert r.low_size == 512 * M + 8 * M
    assert evaluate("crashkernel=1G,high", 8 * G, X86).low_size == 256 * M
    assert default_low_size(PPC) is None


def test_parse_size() -> None:
    assert parse_size("16G") == 16 * G
    for bad in ("", "16GB", "16 G", "-1", "abc"):
        with pytest.raises(UsageError):
            parse_size(bad)


def test_format() -> None:
    assert format_size(1536 * M) == "1536M"
    assert format_size(4097) == "4097"
    assert format_size(0) == "0"
    assert format_ranges([(2 * G, 64 * G, 256 * M), (64 * G, None, 512 * M)]) == (
        "2G-64G:256M,64G-:512M")
    assert format_reservation(Reservation(G, None, True, 0)) == (
        "crashkernel=1G,high crashkernel=0,low")


@pytest.mark.parametrize("value", ["256M", "256M@16M", "2G-64G:256M,64G-:512M", "1G,high",
                                   "0x10000000", "1G-2G:0"])
def test_check_value_accepts(value: str) -> None:
    check_value(value, X86)


@pytest.mark.parametrize("value,arch", [
    ("", X86), ("256M quiet", X86), ('"256M"', X86), ("$X", X86), ("0", X86), ("256Mx", X86),
    ("256M@", X86), ("1G,low", X86), ("1G,high", PPC), ("1G,high@16M", X86),
    ("2G-1G:256M", X86), ("2G-:256M,junk", X86), ("2G:256M", X86), ("0,high", X86),
])
def test_check_value_refuses(value: str, arch: object) -> None:
    with pytest.raises(UsageError):
        check_value(value, arch)  # type: ignore[arg-type]


# -- shrinking ------------------------------------------------------------------

ONE = Reserved((Range(0x2F000000, 0x3EFFFFFF),), True, 256 * M)
TWO = Reserved((Range(0x10000000, 0x1FFFFFFF), Range(0x100000000, 0x13FFFFFFF)), True,
               256 * M + G)


def test_shrink_frees_the_tail() -> None:
    plan = plan_shrink(ONE, 100 * M + 1, 4 * K, loaded=False)
    assert plan.new_size == 100 * M + 4 * K  # rounded up to the page size
    assert plan.freed == (Range(0x2F000000 + 100 * M + 4 * K, 0x3EFFFFFF),)


def test_shrink_takes_the_high_region_first() -> None:
    plan = plan_shrink(TWO, 256 * M + 512 * M, 4 * K, loaded=False)
    assert plan.freed == (Range(0x100000000 + 512 * M, 0x13FFFFFFF),)
    plan = plan_shrink(TWO, 256 * M, 4 * K, loaded=False)
    assert plan.freed == (Range(0x100000000, 0x13FFFFFFF),)
    plan = plan_shrink(TWO, 0, 4 * K, loaded=False)
    assert plan.freed == (Range(0x100000000, 0x13FFFFFFF), Range(0x10000000, 0x1FFFFFFF))


def test_shrink_refusals() -> None:
    with pytest.raises(UsageError, match="can only shrink"):
        plan_shrink(ONE, 512 * M, 4 * K, loaded=False)
    with pytest.raises(KdumpError, match="capture kernel is loaded"):
        plan_shrink(ONE, 0, 4 * K, loaded=True)
    with pytest.raises(KdumpError, match="kernel bug"):
        plan_shrink(TWO, 128 * M, 4 * K, loaded=False)
    assert plan_shrink(ONE, 256 * M - 1, 4 * K, loaded=False).freed == ()  # rounds to the same


@pytest.mark.parametrize("release", ["6.16.0", "7.3.1-amd64"])
def test_a_cma_area_is_not_the_reservation_from_6_16(release: str) -> None:
    """Found by review: Linux 6.16 added crashkernel=X,cma, a CMA area beside the
    reservation, which the plain lookup then skips; earlier kernels take the word as the
    plain value and reject it, as 6.12's rules (the default) still say."""
    line = "ro crashkernel=256M crashkernel=64M,cma quiet"
    assert evaluate(line, 8 << 30, X86, release=release) == Reservation(256 << 20, None,
                                                                      False, None)
    assert in_force(line, release) == "256M"
    with pytest.raises(InvalidCrashkernel, match="unexpected ','"):
        evaluate(line, 8 << 30, X86, release="6.15.9")
    assert in_force(line) == "64M,cma"


def test_kernels_before_6_0_match_ranges_against_the_ram_total_as_it_is() -> None:
    """Found by review: 6.0 began rounding the RAM total up to 128 MiB before matching
    ranges; Debian 11's 5.10 matches what memblock counts, so a 4 GiB virtual machine
    (4 GiB less 385 KiB) falls in 1G-4G there and in 4G-64G from 6.0 on."""
    default, ram = "crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M", (4 << 30) - 385 * 1024
    assert evaluate(default, ram, X86, release="5.10.0-30-amd64").size == 192 << 20
    assert evaluate(default, ram, X86, release="6.1.0-27-amd64").size == 256 << 20
    assert evaluate(default, ram, X86).size == 256 << 20  # no release: 6.12's rules
    with pytest.raises(InvalidCrashkernel, match=r"no range matches RAM .*GiB$"):
        evaluate("crashkernel=4G-8G:256M", ram, X86, release="5.10.0")


def test_arm64_kernels_before_5_19_have_no_high_or_low() -> None:
    with pytest.raises(InvalidCrashkernel, match="aarch64 5.10.0-30-arm64 kernel has no"):
        evaluate("crashkernel=512M,high", 8 << 30, ARM64, release="5.10.0-30-arm64")
    assert evaluate("crashkernel=512M,high", 8 << 30, ARM64, release="5.19.0").high
    assert evaluate("crashkernel=512M,high", 8 << 30, X86, release="5.10.0").high


@pytest.mark.parametrize(("arch", "ram"), [("aarch64", 4096 << 20), ("x86_64", 4056 << 20)])
def test_arm64_ram_counts_the_memory_marked_nomap(tmp_path: Path, arch: str, ram: int) -> None:
    """Found by review: arm64 names memblock memory marked nomap (the UEFI runtime's)
    "reserved" at the top of /proc/iomem, and memblock's total, which crashkernel= ranges
    match, counts it; x86's top-level Reserved is e820's, outside memblock."""
    from kdumpctl_py.facts.view import SystemView
    from tests.builders import synthetic_snapshot

    root = synthetic_snapshot(tmp_path, arch=arch)
    name = "reserved" if arch == "aarch64" else "Reserved"
    (root / "proc/iomem").write_text(
        f"40000000-41ffffff : System RAM\n42000000-447fffff : {name}\n"
        "44800000-13fffffff : System RAM\n")
    assert system_ram(SystemView(root))[0] == ram
