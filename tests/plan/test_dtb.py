"""The capture DTB, checked by decompiling it with dtc (an independent reader).

Bases: QEMU's arm64 virt DTB (committed, and made fresh when qemu is here)
and small hand-made trees compiled with dtc for the edge cases.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import libfdt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdumpctl_py.errors import KdumpError, UsageError
from kdumpctl_py.plan.dtb import (
    ELFCOREHDR,
    MAX_FDT_SIZE,
    USABLE,
    build_capture_dtb,
    dtb_placement_problem,
    place_dtb,
    read_number,
    summarize,
)
from kdumpctl_py.units import MASK64
from tests.builders import QEMU_DTB, board, cells, chosen_props, dts, memreserve
from tests.conftest import FIXTURES

# /sys/firmware/fdt of Debian 12's arm64 kernel booted by qemu-efi-aarch64 on
# `-machine virt,acpi=on` (tests/vm/crash-cycle --arch arm64 --firmware uefi --append
# earlycon, from its snapshot.tar.gz): the firmware gave ACPI and no device tree, so
# this is the EFI stub's own tree.
EFI_STUB_DTB = FIXTURES / "dtb" / "efi-stub-acpi-arm64.dtb"
UEFI_PROPS = ("linux,uefi-system-table", "linux,uefi-mmap-start", "linux,uefi-mmap-size",
              "linux,uefi-mmap-desc-size", "linux,uefi-mmap-desc-ver",
              "linux,uefi-secure-boot")
FDT_NOP = struct.pack(">I", 4)
MiB = 1 << 20

pytestmark = pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc is not installed")


# -- dtc, the independent reader -----------------------------------------------


def outside(text: str) -> str:
    """dtc output without /chosen and the reservation map: what must never change."""
    text = re.sub(r"^\tchosen \{\n.*?^\t\};\n", "", text, flags=re.M | re.S)
    return re.sub(r"^(/memreserve/.*)?\n", "", text, flags=re.M)


def seeded(first: int = 0x81) -> Callable[[int], bytes]:
    """Deterministic 'random' bytes, all >= 0x80 so dtc never mistakes them for a string."""
    state = [first]

    def randbytes(n: int) -> bytes:
        out = bytes(0x80 | ((state[0] + i) & 0x7F) for i in range(n))
        state[0] += n
        return out

    return randbytes


def seed_cells(data: bytes) -> str:
    return "<" + " ".join(f"{w:#010x}" for w in struct.unpack(f">{len(data) // 4}I", data)) + ">"


def nop_property(blob: bytes, path: str, name: str) -> bytes:
    """Overwrite a property with FDT_NOP tags in place, as the kernel does to rng-seed."""
    fdt = libfdt.Fdt(blob)
    offset = fdt.first_property_offset(fdt.path_offset(path))
    while fdt.get_property_by_offset(offset).name != name:
        offset = fdt.next_property_offset(offset)
    length = 12 + (len(fdt.get_property_by_offset(offset)) + 3) // 4 * 4
    start = fdt.off_dt_struct() + offset
    return blob[:start] + FDT_NOP * (length // 4) + blob[start + length:]


@pytest.fixture(params=["committed", "fresh"])
def qemu_dtb(request: pytest.FixtureRequest, tmp_path: Path) -> bytes:
    """QEMU virt's arm64 DTB: the committed copy, and one dumped by this machine's qemu."""
    if request.param == "committed":
        return QEMU_DTB.read_bytes()
    qemu = shutil.which("qemu-system-aarch64")
    if qemu is None:
        pytest.skip("qemu-system-aarch64 is not installed")
    out = tmp_path / "virt.dtb"
    subprocess.run([qemu, "-M", "virt", "-cpu", "cortex-a57", "-m", "1024",
                    "-machine", f"dumpdtb={out}", "-nographic"],
                   capture_output=True, check=True, timeout=60)
    return out.read_bytes()


CRASH = (0x50000000, 0x10000000)
LOW = (0x8000000, 0x1000000)
ELF = (0x5FF00000, 0x1000)
INITRD = (0x58000000, 0x123456)


# -- a real DTB ---------------------------------------------------------------------------


def test_qemu_virt(qemu_dtb: bytes) -> None:
    base_text = dts(qemu_dtb)
    random = seeded()
    out = build_capture_dtb(qemu_dtb, [CRASH, LOW], ELF, initrd=INITRD,
                            cmdline="console=ttyAMA0 nr_cpus=1 reset_devices", randbytes=random)
    text = dts(out)
    expect_seeds = seeded()
    kaslr, rng = expect_seeds(8), expect_seeds(128)
    assert chosen_props(text) == {
        "stdout-path": '"/pl011@9000000"',
        "bootargs": '"console=ttyAMA0 nr_cpus=1 reset_devices"',
        USABLE: cells((CRASH[0], 2), (CRASH[1], 2), (LOW[0], 2), (LOW[1], 2)),
        ELFCOREHDR: cells((ELF[0], 2), (ELF[1], 2)),
        "linux,initrd-start": cells((INITRD[0], 2)),
        "linux,initrd-end": cells((INITRD[0] + INITRD[1], 2)),
        "kaslr-seed": seed_cells(kaslr),
        "rng-seed": seed_cells(rng),
        "linux,booted-from-kexec": "",
    }
    assert chosen_props(base_text)["kaslr-seed"] != seed_cells(kaslr)
    assert memreserve(text) == [INITRD, ELF]
    assert outside(text) == outside(base_text)
    assert libfdt.Fdt(out).totalsize() == len(out) < MAX_FDT_SIZE


def test_efi_stub_tree() -> None:
    """ACPI arm64: the capture kernel finds its memory and ACPI tables through the EFI
    system table and memory map named in /chosen (drivers/firmware/efi/efi-init.c), then
    caps memory to linux,usable-memory-range; the tree has no memory node for it to use.
    So every linux,uefi-* property stays as it was, and nothing else is invented."""
    base = EFI_STUB_DTB.read_bytes()
    base_text = dts(base)
    base_props = chosen_props(base_text)
    assert set(UEFI_PROPS) <= set(base_props)
    assert not re.search(r"^\tmemory|\"memory\"", base_text, re.M)
    assert memreserve(base_text) == []
    out = build_capture_dtb(base, [CRASH], ELF, initrd=INITRD, cmdline="console=ttyAMA0",
                            randbytes=seeded())
    text = dts(out)
    props = chosen_props(text)
    assert {k: props[k] for k in UEFI_PROPS} == {k: base_props[k] for k in UEFI_PROPS}
    # The stub's root has 2 cells each (EFI_DT_{ADDR,SIZE}_CELLS_DEFAULT).
    assert props[USABLE] == cells((CRASH[0], 2), (CRASH[1], 2))
    assert props["bootargs"] == '"console=ttyAMA0"'
    assert memreserve(text) == [INITRD, ELF]
    assert outside(text) == outside(base_text)


def test_fdt_nop_in_the_base() -> None:
    """The running kernel leaves FDT_NOP where it wiped rng-seed; NOPs elsewhere stay harmless."""
    original = QEMU_DTB.read_bytes()
    base = nop_property(nop_property(original, "/chosen", "rng-seed"), "/psci", "migrate")
    changed = [i for i in range(0, len(base), 4) if base[i:i + 4] != original[i:i + 4]]
    # Both properties, header and value, became FDT_NOP words (migrate's length, 4, already was).
    assert len(changed) == 2 * 3 + 8 + 1 - 1
    assert all(base[i:i + 4] == FDT_NOP for i in changed)
    base_text = dts(base)
    assert "migrate" not in base_text and "rng-seed" not in base_text
    out = build_capture_dtb(base, [CRASH], ELF, randbytes=seeded())
    text = dts(out)
    assert outside(text) == outside(base_text)
    props = chosen_props(text)
    assert len(props["rng-seed"].split()) == 32
    assert props[USABLE] == cells((CRASH[0], 2), (CRASH[1], 2))
    assert memreserve(text) == [ELF]


# -- hand-made edge cases -------------------------------------------------------------


def test_missing_chosen_is_created() -> None:
    base = board(chosen=None)
    assert "chosen" not in dts(base)
    text = dts(build_capture_dtb(base, [CRASH], ELF, cmdline="console=ttyAMA0",
                                 randbytes=seeded()))
    props = chosen_props(text)
    assert props["bootargs"] == '"console=ttyAMA0"'
    assert props[USABLE] == cells((CRASH[0], 2), (CRASH[1], 2))
    assert props[ELFCOREHDR] == cells((ELF[0], 2), (ELF[1], 2))
    assert "linux,initrd-start" not in props
    assert outside(text) == outside(dts(base))


@pytest.mark.parametrize(
    ("cells_lines", "address_cells", "size_cells"),
    [
        ("#address-cells = <1>;\n\t#size-cells = <1>;", 1, 1),
        ("", 1, 1),  # the capture kernel's defaults, not libfdt's 2/1
        ("#address-cells = <2>;", 2, 1),
        ("#size-cells = <2>;", 1, 2),
        ("#address-cells = <1>;\n\t#size-cells = <2>;", 1, 2),
    ],
    ids=["1-cell", "no-cells", "address-only", "size-only", "1+2"],
)
def test_root_cells(cells_lines: str, address_cells: int, size_cells: int) -> None:
    base = board(cells_lines=cells_lines)
    out = build_capture_dtb(base, [CRASH, LOW], ELF, initrd=INITRD, randbytes=seeded())
    props = chosen_props(dts(out))
    assert props[USABLE] == cells((CRASH[0], address_cells), (CRASH[1], size_cells),
                                  (LOW[0], address_cells), (LOW[1], size_cells))
    assert props[ELFCOREHDR] == cells((ELF[0], address_cells), (ELF[1], size_cells))
    # initrd-start/-end are u64 whatever the root says: fdt_setprop_u64 in of_kexec, and
    # early_init_dt_check_for_initrd() reads len / 4 cells.
    assert props["linux,initrd-start"] == cells((INITRD[0], 2))
    summary = summarize(out)
    assert (summary.address_cells, summary.size_cells) == (address_cells, size_cells)
    assert summary.ranges(USABLE) == [CRASH, LOW]


@pytest.mark.parametrize(
    ("usable", "elf", "message"),
    [
        ([(0x1_0000_0000, 0x1000)], ELF, "linux,usable-memory-range address 0x100000000 "
         "does not fit in 1 cell (#address-cells = <1>"),
        ([(0x1000, 0x1_0000_0000)], ELF, "linux,usable-memory-range size 0x100000000 "
         "does not fit in 1 cell (#size-cells = <1>"),
        ([CRASH], (0x2_0000_0000, 0x1000), "linux,elfcorehdr address 0x200000000 does not fit"),
    ],
)
def test_values_too_large_for_one_cell(usable: list[tuple[int, int]], elf: tuple[int, int],
                                       message: str) -> None:
    base = board(cells_lines="#address-cells = <1>;\n\t#size-cells = <1>;")
    with pytest.raises(UsageError, match=re.escape(message)):
        build_capture_dtb(base, usable, elf, randbytes=seeded())


def test_two_cells_hold_64_bits() -> None:
    big = (0xFFFF_FFFF_0000_0000, 0xFFFF_FFFF)
    out = build_capture_dtb(board(), [big], ELF, randbytes=seeded())
    assert summarize(out).ranges(USABLE) == [big]


@pytest.mark.parametrize(
    ("cells_lines", "message"),
    [
        ("#address-cells = <3>;\n\t#size-cells = <2>;", "#address-cells is 3; only 1 or 2"),
        ("#address-cells = <2>;\n\t#size-cells = <0>;", "#size-cells is 0; only 1 or 2"),
        ("#address-cells = <0 2>;", "#address-cells is 8 bytes, not one cell"),
    ],
)
def test_unsupported_cells_are_refused(cells_lines: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        build_capture_dtb(board(cells_lines=cells_lines), [CRASH], ELF, randbytes=seeded())


def test_stale_properties_are_replaced() -> None:
    """A base that already describes a crash boot (or an IMA log, a KHO handover) loses it all."""
    base = board(
        chosen="""bootargs = "old";
\t\tlinux,usable-memory-range = <0x0 0x1000 0x0 0x2000>;
\t\tlinux,elfcorehdr = <0x0 0x3000 0x0 0x1000>;
\t\tlinux,initrd-start = <0x0 0x48000000>;
\t\tlinux,initrd-end = <0x0 0x49000000>;
\t\tlinux,ima-kexec-buffer = <0x0 0x60000000 0x0 0x4000>;
\t\tlinux,kho-fdt = <0x0 0x70000000 0x0 0x1000>;
\t\tkaslr-seed = <0x0 0x0>;
\t\trng-seed = <0x1 0x2>;
\t\tstdout-path = "/soc/uart";""",
        reserve="/memreserve/ 0x48000000 0x1000000;\n/memreserve/ 0x60000000 0x4000;\n"
                "/memreserve/ 0x1000 0x1000;",
    )
    random = seeded()
    out = build_capture_dtb(base, [CRASH], ELF, randbytes=random)
    text = dts(out)
    expect = seeded()
    assert chosen_props(text) == {
        "stdout-path": '"/soc/uart"',
        USABLE: cells((CRASH[0], 2), (CRASH[1], 2)),
        ELFCOREHDR: cells((ELF[0], 2), (ELF[1], 2)),
        "kaslr-seed": seed_cells(expect(8)),
        "rng-seed": seed_cells(expect(128)),
        "linux,booted-from-kexec": "",
    }
    assert memreserve(text) == [(0x1000, 0x1000), ELF]


@pytest.mark.parametrize(
    ("reserved", "initrd_end", "page_size", "dropped"),
    [
        (0x123456, "<0x0 0x48123456>", 4096, True),  # exact, as kexec reserves it
        (0x124000, "<0x0 0x48123456>", 4096, True),  # page-rounded, as firmware may
        (0x130000, "<0x48123456>", 65536, True),  # a 64 KiB-page kernel; 1-cell end
        (0x130000, "<0x0 0x48123456>", 4096, False),  # neither: not ours to drop
        (0x123457, "<0x0 0x48123456>", 4096, False),
    ],
)
def test_old_initrd_reservation(reserved: int, initrd_end: str, page_size: int,
                                dropped: bool) -> None:
    base = board(
        chosen=f"linux,initrd-start = <0x48000000>;\n\t\tlinux,initrd-end = {initrd_end};",
        reserve=f"/memreserve/ 0x1000 0x1000;\n/memreserve/ 0x48000000 {reserved:#x};",
    )
    out = build_capture_dtb(base, [CRASH], ELF, initrd=INITRD, page_size=page_size,
                            randbytes=seeded())
    kept = [(0x1000, 0x1000)] + ([] if dropped else [(0x48000000, reserved)])
    text = dts(out)
    assert memreserve(text) == [*kept, INITRD, ELF]
    assert chosen_props(text)["linux,initrd-end"] == cells((INITRD[0] + INITRD[1], 2))


def test_only_the_first_matching_reservation_goes() -> None:
    base = board(chosen="linux,initrd-start = <0x0 0x48000000>;\n"
                        "\t\tlinux,initrd-end = <0x0 0x49000000>;",
                 reserve="/memreserve/ 0x48000000 0x1000000;\n"
                         "/memreserve/ 0x48000000 0x1000000;")
    text = dts(build_capture_dtb(base, [CRASH], ELF, randbytes=seeded()))
    assert memreserve(text) == [(0x48000000, 0x1000000), ELF]
    assert "linux,initrd-start" not in chosen_props(text)


def test_initrd_start_without_end_is_refused() -> None:
    base = board(chosen="linux,initrd-start = <0x0 0x48000000>;")
    with pytest.raises(UsageError, match="linux,initrd-start but no linux,initrd-end"):
        build_capture_dtb(base, [CRASH], ELF, randbytes=seeded())


def test_no_cmdline_deletes_bootargs() -> None:
    """of_kexec deletes bootargs for a NULL cmdline: the running kernel's line is never reused."""
    out = build_capture_dtb(board(), [CRASH], ELF, randbytes=seeded())
    assert "bootargs" not in chosen_props(dts(out))
    out = build_capture_dtb(board(), [CRASH], ELF, cmdline="", randbytes=seeded())
    assert chosen_props(dts(out))["bootargs"] == "[00]"  # dtc's rendering of ""


def test_kaslr_seed_is_never_zero() -> None:
    source = iter([bytes(8), bytes(8), b"\x80" * 8, b"\x90" * 128])
    out = build_capture_dtb(board(), [CRASH], ELF, randbytes=lambda n: next(source))
    assert summarize(out).chosen["kaslr-seed"] == b"\x80" * 8  # type: ignore[index]
    with pytest.raises(KdumpError, match="zeros"):
        build_capture_dtb(board(), [CRASH], ELF, randbytes=bytes)


def test_default_randomness_differs_between_builds() -> None:
    one, two = (summarize(build_capture_dtb(board(), [CRASH], ELF)).chosen for _ in range(2))
    assert one and two
    assert one["kaslr-seed"] != two["kaslr-seed"] and one["rng-seed"] != two["rng-seed"]
    assert len(one["rng-seed"]) == 128


# -- bad input: one line, never a traceback ----------------------------------------------


def _corrupt_struct(blob: bytes) -> bytes:
    start = libfdt.Fdt(blob).off_dt_struct()
    return blob[:start] + struct.pack(">I", 0x0A) + blob[start + 4:]


def _set_word(blob: bytes, offset: int, value: int) -> bytes:
    return blob[:offset] + struct.pack(">I", value) + blob[offset + 4:]


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda b: b"", "too short for a device tree header"),
        (lambda b: b"not a device tree, just text" * 4, "not a device tree blob (magic"),
        (lambda b: b[:100], "truncated: the header says"),
        (lambda b: b"\x7fELF" + b[4:], "not a device tree blob"),
        (lambda b: _set_word(b, 24, 18), "unsupported device tree version 17 (last compatible 18)"),
        (lambda b: _set_word(b, 20, 1), "unsupported device tree version 1"),
        (_corrupt_struct, "malformed device tree"),
    ],
    ids=["empty", "text", "truncated", "elf", "newer", "older", "bad-struct"],
)
def test_bad_base_is_one_line(mangle: Callable[[bytes], bytes], message: str) -> None:
    blob = mangle(QEMU_DTB.read_bytes())
    for action in (lambda: build_capture_dtb(blob, [CRASH], ELF, randbytes=seeded()),
                   lambda: summarize(blob)):
        with pytest.raises(UsageError, match=re.escape(message)) as caught:
            action()
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("usable", "elf", "initrd", "message"),
    [
        ([], ELF, None, "give 1 to 2 usable memory ranges"),
        ([CRASH, LOW, LOW], ELF, None, "not 3"),
        ([(0x1000, 0)], ELF, None, "usable memory range 0x1000+0x0"),
        ([CRASH], (0xFFFF_FFFF_FFFF_F000, 0x2000), None, "not a non-empty range ending below 2^64"),
        ([CRASH], ELF, (0, 0x1000), "an initrd at address 0"),
    ],
)
def test_bad_ranges(usable: list[tuple[int, int]], elf: tuple[int, int],
                    initrd: tuple[int, int] | None, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        build_capture_dtb(board(), usable, elf, initrd=initrd, randbytes=seeded())


# -- round trip ---------------------------------------------------------------------------

CELL_LINES = {(a, s): f"#address-cells = <{a}>;\n\t#size-cells = <{s}>;"
              for a in (1, 2) for s in (1, 2)}


@cache
def _base(root_cells: tuple[int, int]) -> tuple[bytes, str]:
    blob = board(cells_lines=CELL_LINES[root_cells], reserve="/memreserve/ 0x1000 0x1000;")
    return blob, outside(dts(blob))


@st.composite
def _crash_setup(draw: st.DrawFn) -> tuple[tuple[int, int], list[tuple[int, int]],
                                           tuple[int, int], tuple[int, int] | None]:
    root_cells = draw(st.sampled_from(sorted(CELL_LINES)))
    max_size = (1 << (32 * root_cells[1])) - 1
    max_start = min((1 << (32 * root_cells[0])) - 1, MASK64 - 1)  # room for one byte
    extent = st.integers(0, max_start).flatmap(
        lambda start: st.tuples(st.just(start), st.integers(1, min(max_size, MASK64 - start))))
    ranges = draw(st.lists(extent, min_size=1, max_size=2))
    elf = draw(extent)
    initrd = draw(st.none() | st.integers(1, 1 << 63).flatmap(
        lambda start: st.tuples(st.just(start), st.integers(1, MASK64 - start))))
    return root_cells, ranges, elf, initrd


@settings(deadline=None, max_examples=60)
@given(_crash_setup())
def test_round_trip(setup: tuple[tuple[int, int], list[tuple[int, int]], tuple[int, int],
                                 tuple[int, int] | None]) -> None:
    root_cells, ranges, elf, initrd = setup
    base, base_outside = _base(root_cells)
    out = build_capture_dtb(base, ranges, elf, initrd=initrd, randbytes=seeded())
    summary = summarize(out)
    assert summary.ranges(USABLE) == ranges
    assert summary.ranges(ELFCOREHDR) == [elf]
    assert summary.chosen is not None
    if initrd is None:
        assert "linux,initrd-start" not in summary.chosen
    else:
        assert read_number(summary.chosen["linux,initrd-start"]) == initrd[0]
        assert read_number(summary.chosen["linux,initrd-end"]) == initrd[0] + initrd[1]
    assert summary.reservations == [(0x1000, 0x1000), *([initrd] if initrd else []), elf]
    text = dts(out)
    assert memreserve(text) == summary.reservations
    assert outside(text) == base_outside


# -- placement (arm64 booting.rst) -------------------------------------------------------------


def test_placement_rule() -> None:
    assert dtb_placement_problem(0x4000_0000, 0x2000) is None
    assert dtb_placement_problem(0x401F_E000, 0x2000) is None  # ends exactly at the boundary
    assert "not 8-byte aligned" in (dtb_placement_problem(0x4000_0004, 0x2000) or "")
    assert "crosses a 2 MiB boundary" in (dtb_placement_problem(0x401F_F000, 0x2000) or "")
    assert "at most 2 MiB" in (dtb_placement_problem(0x4000_0000, MAX_FDT_SIZE + 1) or "")
    assert dtb_placement_problem(0x4000_0000, MAX_FDT_SIZE) is None


def test_place_dtb() -> None:
    window = (0x401F_E000, 0x100_0000)
    assert place_dtb(0x1000, window) == 0x401F_E000
    assert place_dtb(0x3000, window) == 0x4020_0000  # would cross: next block
    assert place_dtb(0x3000, window, top_down=True) == 0x411F_B000
    assert place_dtb(0x3000, (0x4000_0000, 0x20_1000), top_down=True) == 0x401F_D000
    assert place_dtb(0x3000, (0x401F_E000, 0x4000)) is None
    assert place_dtb(MAX_FDT_SIZE + 1, window) is None
    assert place_dtb(0x10, (0x1001, 0x100), align=4096) is None
    assert place_dtb(0x10, (0x1001, 0x1100), align=4096) == 0x2000
    with pytest.raises(ValueError):
        place_dtb(0x10, window, align=12)


def _candidates(size: int, lo: int, end: int, align: int) -> Iterator[int]:
    first = -(-lo // align) * align
    for address in range(first, end - size + 1, align):
        if dtb_placement_problem(address, size) is None:
            yield address


@settings(deadline=None, max_examples=150)
@given(size=st.integers(1, MAX_FDT_SIZE), lo=st.integers(0, 6 * MiB),
       length=st.integers(0, 6 * MiB), align=st.sampled_from([64 * 1024, 256 * 1024, MiB]),
       top_down=st.booleans())
def test_place_dtb_finds_the_first_fit(size: int, lo: int, length: int, align: int,
                                       top_down: bool) -> None:
    """Against brute force: the lowest (highest) address that obeys the rule, or None."""
    fits = list(_candidates(size, lo, lo + length, align))
    want = (fits[-1] if top_down else fits[0]) if fits else None
    assert place_dtb(size, (lo, length), align=align, top_down=top_down) == want


def test_firmware_memory_is_m_mode_and_no_map_reserved_memory() -> None:
    """The riscv64 fixture's OpenSBI region, and a hand-made tree with one of each kind."""
    from kdumpctl_py.plan.dtb import firmware_memory
    from tests.conftest import SNAPSHOTS

    fixture = (SNAPSHOTS / "debian13-riscv64/sys/firmware/fdt").read_bytes()
    assert firmware_memory(fixture) == [(0x80000000, 0x80000)]
    text = """/dts-v1/;
/ { #address-cells = <2>; #size-cells = <2>;
    reserved-memory { #address-cells = <1>; #size-cells = <1>; ranges;
        mmode_resv1@80040000 { reg = <0x80040000 0x20000>; };
        nomap@90000000 { reg = <0x90000000 0x1000>; no-map; };
        shared@a0000000 { reg = <0xa0000000 0x1000>; };
    };
};
"""
    blob = subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-"], input=text.encode(),
                          capture_output=True, check=True).stdout
    assert firmware_memory(blob) == [(0x80040000, 0x20000), (0x90000000, 0x1000)]
    bare = subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-"],
                          input=b"/dts-v1/;\n/ { };\n", capture_output=True, check=True).stdout
    assert firmware_memory(bare) == []
