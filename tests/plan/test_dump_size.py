from __future__ import annotations

from kdumpctl_py.plan.dump_size import dump_size_estimate

MEMINFO = {"MemTotal": 1000, "MemFree": 400, "Cached": 250, "Shmem": 50, "Buffers": 10,
           "AnonPages": 100}


def test_each_dump_level_bit_leaves_its_pages_out() -> None:
    assert dump_size_estimate(MEMINFO, 0) == 1000
    assert dump_size_estimate(MEMINFO, 1) == 1000  # zero pages cannot be told from here
    assert dump_size_estimate(MEMINFO, 16) == 600
    assert dump_size_estimate(MEMINFO, 2) == dump_size_estimate(MEMINFO, 4) == 790  # not shmem
    assert dump_size_estimate(MEMINFO, 8) == 900
    assert dump_size_estimate(MEMINFO, 31) == 290
    assert dump_size_estimate({}, 31) is None
    assert dump_size_estimate({"MemTotal": 10, "MemFree": 20}, 16) == 0
