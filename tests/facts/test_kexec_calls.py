"""Judging the kexec calls without a call: the fd-type list, the load limits, the config."""

from __future__ import annotations

from kdumpctl_py.facts.kexec_calls import (
    calls_from_evidence,
    extended_from_types,
    limits_set,
    why_not_probed,
)


def test_the_types_file_decides_without_a_call() -> None:
    assert extended_from_types("kernel initrd dtb") == "available"
    assert extended_from_types("kernel initrd dtb future") == "available"
    # A kernel that takes sets but no device tree offers nothing this project uses.
    assert extended_from_types("kernel initrd") == "missing"
    assert extended_from_types("") == "missing"
    # No file: the caller falls back to the errno probe.
    assert extended_from_types(None) is None


def test_limits_decide_whether_to_probe() -> None:
    assert not limits_set({}) and not limits_set({"panic": -1, "reboot": -1})
    assert limits_set({"panic": -1, "reboot": 0})
    assert why_not_probed({"panic": -1, "reboot": -1}) is None
    why = why_not_probed({"panic": 8, "reboot": 0})
    assert why and "kernel.kexec_load_limit_panic=8" in why
    assert "kernel.kexec_load_limit_reboot=0" in why


def test_evidence_without_a_call() -> None:
    config = {"CONFIG_KEXEC_FILE": "y", "CONFIG_KEXEC": "y"}
    limits = {"panic": 8, "reboot": 0}
    assert calls_from_evidence(limits, config, "kernel initrd dtb", False) == {
        "extended": "available", "kexec_file_load": "available", "kexec_load": "available"}
    # The panic limit spent: no crash load will be taken until reboot.
    assert calls_from_evidence({"panic": 0, "reboot": 4}, config, None, False) == {
        "extended": "missing", "kexec_file_load": "not-permitted",
        "kexec_load": "not-permitted"}
    assert calls_from_evidence(limits, None, None, None) == {
        "extended": "unknown", "kexec_file_load": "unknown", "kexec_load": "unknown"}
