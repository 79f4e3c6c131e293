"""VM tier: the smallest crashkernel= that still saves at -d 31, per architecture (issue 24).

The search starts from the minimum recorded here (and in the README): that size must
save and one step less must not. When either answer is wrong it walks on in 16M steps,
a few cycles at most, and fails naming the new minimum, so a change that grows (or
shrinks) the capture kernel's needs is seen at once. One 1 GiB, 2-CPU guest at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.vm.cycles import Cycle

# Measured with tests/vm/crash-cycle, Debian 12 cloud kernels (README, "Smallest crashkernel").
MINIMUM_MIB = {"x86_64": 144, "arm64": 112}
STEP_MIB = 16
MORE_STEPS = 3  # beyond the two cycles a correct record costs
GOAL_MIB = 160  # issue 24: what a 1-4 GiB machine should need
ESTIMATE_SLACK_MIB = 32  # `estimate` may ask for this much more than the minimum


def cycle_args(arch: str, mib: int) -> tuple[str, ...]:
    return ("--arch", arch, "--crashkernel", f"{mib}M", "--dump-level", "31")


def _saves(cycles: Callable[..., Cycle], arch: str, mib: int) -> tuple[bool, Cycle]:
    c = cycles(*cycle_args(arch, mib))
    if c.exit_status == 0:
        return True, c
    # Too small shows as a guest stage that fails (load, capture boot, save): anything
    # else is a broken run, not an answer.
    assert c.exit_status == 3, c.explain()
    return False, c


def smallest(cycles: Callable[..., Cycle], arch: str) -> tuple[int, Cycle, dict[int, str]]:
    """The smallest size in 16M steps that saves, from the recorded one; the cycle at it."""
    seen: dict[int, str] = {}
    size = MINIMUM_MIB[arch]
    ok, good = _saves(cycles, arch, size)
    seen[size] = "saved" if ok else good.result.get("failed_stage") or "failed"
    step = -STEP_MIB if ok else STEP_MIB
    for _ in range(MORE_STEPS + 1):
        nxt = size + step
        ok_next, c = _saves(cycles, arch, nxt)
        seen[nxt] = "saved" if ok_next else c.result.get("failed_stage") or "failed"
        if step < 0 and not ok_next:
            return size, good, seen
        if step > 0 and ok_next:
            return nxt, c, seen
        size = nxt
        if ok_next:
            good = c
    pytest.fail(f"{arch}: no minimum within {MORE_STEPS} steps of {MINIMUM_MIB[arch]}M: {seen}")


@pytest.mark.vm
@pytest.mark.parametrize("arch", [
    # The two cycles a correct record costs: its minimum, which saves, and one step less.
    pytest.param(arch, marks=[pytest.mark.cycle(*cycle_args(arch, MINIMUM_MIB[arch] - step))
                              for step in (0, STEP_MIB)])
    for arch in ("x86_64", "arm64")])
def test_smallest_crashkernel_that_saves(cycles: Callable[..., Cycle], arch: str) -> None:
    found, good, seen = smallest(cycles, arch)
    runs = ", ".join(f"{k}M {v}" for k, v in sorted(seen.items()))
    print(f"{arch}: smallest crashkernel that saves at -d 31: {found}M ({runs}); "
          f"capture memory {good.result.get('memory')}")
    assert found <= GOAL_MIB, f"{arch} needs {found}M, more than the goal {GOAL_MIB}M ({runs})"
    assert found == MINIMUM_MIB[arch], (
        f"{arch}: the smallest crashkernel that saves is now {found}M, not "
        f"{MINIMUM_MIB[arch]}M ({runs}); update MINIMUM_MIB, the README and "
        "plan/estimate.py's constants")
    needed = good.result.get("estimate_needed")
    assert needed is not None, good.explain()
    assert found << 20 <= needed <= (found + ESTIMATE_SLACK_MIB) << 20, (
        f"{arch}: estimate says {needed >> 20}M for a measured minimum of {found}M")
