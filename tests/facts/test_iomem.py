from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kdumpctl_py.errors import UsageError
from kdumpctl_py.facts.iomem import Range, parse_iomem, subtract

X86 = """\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
000f0000-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-3ffdffff : System RAM
  01000000-01e01ce6 : Kernel code
  2f000000-3effffff : Crash kernel
3ffe0000-3fffffff : Reserved
100000000-13fffffff : System RAM
"""


def test_nesting_and_crash_regions() -> None:
    io = parse_iomem(X86)
    assert io.system_ram == [Range(0x1000, 0x9FBFF), Range(0x100000, 0x3FFDFFFF),
                             Range(0x100000000, 0x13FFFFFFF)]
    assert io.crash_regions == [Range(0x2F000000, 0x3EFFFFFF)]
    assert io.crash_regions[0].size == 256 << 20
    assert not io.masked


def test_masked_for_non_root() -> None:
    io = parse_iomem("00000000-00000000 : System RAM\n  00000000-00000000 : Crash kernel\n")
    assert io.masked


@pytest.mark.parametrize("bad", ["garbage\n", "10-1 : System RAM\n", "zz-10 : x\n"])
def test_bad_lines_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_iomem(bad)


def test_subtract() -> None:
    ram = [Range(0, 99), Range(200, 299)]
    assert subtract(ram, [Range(50, 59), Range(250, 400)]) == [
        Range(0, 49), Range(60, 99), Range(200, 249)]


ranges = st.builds(lambda a, n: Range(a, a + n), st.integers(0, 1000), st.integers(0, 200))


@given(st.lists(ranges, max_size=5), st.lists(ranges, max_size=5))
def test_subtract_is_set_difference(ram: list[Range], holes: list[Range]) -> None:
    def addrs(rs: list[Range]) -> set[int]:
        return {a for r in rs for a in range(r.start, r.end + 1)}

    # Overlapping RAM ranges do not occur in /proc/iomem; compare as sets.
    assert addrs(subtract(ram, holes)) == addrs(ram) - addrs(holes)
