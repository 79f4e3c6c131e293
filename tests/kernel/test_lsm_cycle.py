"""VM tier, opt-in (KDUMPCTL_KERNEL_LSM=1): the 7.3 series with IMA, SELinux, LoadPin,
IPE and lockdown built in (kernel/build --profile arm64-lsm).

The same cycle as test_cycle.py's without the kselftest: every refusal of
guest_abi.py answers as there with the security modules active, and the extended
load with a DTB then meets IMA. Without a policy it passes; with the capture kernel
loaded the guest writes `appraise func=KEXEC_DTB_CHECK` and the same load is refused
with EACCES (the DTB has no signature), the capture kernel loaded before stays loaded,
and it is the one that boots at the crash (its DTB's marker) and saves the dump.
LoadPin names the device tree's reads `kexec-dtb` (not enforced: it logs them).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.kernel import MARKER, REFUSALS
from tests.vm.cycles import Cycle, assert_good_dump

SERIES = "7.3"
PROFILE = "arm64-lsm"


def abi(c: Cycle, stage: str) -> dict[str, Any]:
    assert c.guest(stage).get("rc") == 0, c.explain()
    data: dict[str, Any] = json.loads(
        (c.out / "results" / "first" / f"{stage}.out").read_text())
    return data


@pytest.mark.vm
def test_the_security_modules_are_active_and_change_no_refusal(
        kernel_cycles: Callable[..., Cycle]) -> None:
    c = kernel_cycles(SERIES, PROFILE)
    for stage in ("check", "check-loaded"):
        data = abi(c, stage)
        assert data["cases"] == REFUSALS, stage
        assert data["ima"] is not None, stage
        active = set(data["ima"]["lsm"].split(","))
        assert {"lockdown", "loadpin", "selinux", "ipe", "ima"} <= active, active


@pytest.mark.vm
def test_ima_appraises_the_dtb_and_the_loaded_kernel_stays(
        kernel_cycles: Callable[..., Cycle]) -> None:
    c = kernel_cycles(SERIES, PROFILE)
    before = abi(c, "check")["ima"]
    assert before["policy"] is None and before["extended_load_with_dtb"] == "ok", before
    loaded = abi(c, "check-loaded")
    ima = loaded["ima"]
    assert ima["policy"] == "appraise func=KEXEC_DTB_CHECK"
    assert ima["extended_load_with_dtb"] == "EACCES", ima
    assert loaded["crash_loaded_before"] is True and ima["crash_loaded_after"] is True
    assert any("kexec-dtb" in line for line in ima["log"]), ima["log"]
    # The kernel loaded before the refusal is the one that boots and saves.
    assert_good_dump(c)
    marker = (c.out / "results" / "capture" / "capture-dt.out").read_bytes()
    assert marker.rstrip(b"\0\n") == MARKER.encode(), marker
