"""VM tier, opt-in (KDUMPCTL_KERNEL_LSM=1): the 7.3 series with IMA, SELinux, LoadPin,
IPE and lockdown built in (kernel/build --profile arm64-lsm).

The same cycle as test_cycle.py's without the kselftest: every refusal of
guest_abi.py answers as there with the security modules active, and the extended
load with a DTB then meets LoadPin and IMA. Without a policy it passes. With the
capture kernel loaded, LoadPin enforced refuses the memfd DTB (EPERM) and then the IMA
policy `appraise func=KEXEC_DTB_CHECK` refuses it (EACCES: no signature); each time
the loaded capture kernel stays loaded, the plain kexec_file_load of the same files
passes, and `kdumpctl-py restart --dtb` falls back to it with one warning. The
capture kernel that boots at the crash is that fallback's (its DTB the kernel's own,
without the cycle's marker) and saves the dump.
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


def fallback(refusal: dict[str, Any], errno_name: str) -> None:
    """The extended load refused with errno_name, nothing lost, the plain load and
    kdumpctl-py's fallback (one warning naming the errno) passing."""
    assert refusal["extended_load_with_dtb"] == errno_name, refusal
    assert refusal["crash_loaded_after"] is True, refusal
    assert refusal["plain_load"] == "ok", refusal
    ours = refusal["kdumpctl_py"]
    assert ours["rc"] == 0 and ours["crash_loaded_after"] is True, ours
    warnings = [line for line in ours["stderr"] if line.startswith("kdumpctl-py: warning:")]
    assert len(warnings) == 1 and errno_name in warnings[0], ours["stderr"]
    assert any("loaded with file" in line for line in ours["stdout"]), ours["stdout"]


@pytest.mark.vm
def test_the_security_modules_are_active_and_change_no_refusal(
        kernel_cycles: Callable[..., Cycle]) -> None:
    c = kernel_cycles(SERIES, PROFILE)
    for stage in ("check", "check-loaded"):
        data = abi(c, stage)
        assert data["cases"] == REFUSALS, stage
        assert data["security"] is not None, stage
        active = set(data["security"]["lsm"].split(","))
        assert {"lockdown", "loadpin", "selinux", "ipe", "ima"} <= active, active


@pytest.mark.vm
def test_loadpin_and_ima_refuse_the_dtb_and_kdumpctl_py_falls_back(
        kernel_cycles: Callable[..., Cycle]) -> None:
    c = kernel_cycles(SERIES, PROFILE)
    assert abi(c, "check")["security"]["extended_load_with_dtb"] == "ok"
    loaded = abi(c, "check-loaded")
    assert loaded["crash_loaded_before"] is True
    sec = loaded["security"]
    fallback(sec["loadpin"], "EPERM")
    assert any("kexec-dtb" in line and "denied" in line for line in sec["log"]), sec["log"]
    assert sec["ima"]["policy"] == "appraise func=KEXEC_DTB_CHECK"
    fallback(sec["ima"], "EACCES")
    # The fallback's capture kernel boots and saves; its DTB is the kernel's own.
    assert_good_dump(c)
    marker = c.out / "results" / "capture" / "capture-dt.out"
    assert not marker.exists() or MARKER.encode() not in marker.read_bytes()
