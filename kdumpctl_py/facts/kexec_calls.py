"""What the kernel says about its kexec calls without being called.

A probe is not free when an administrator limited kexec loads:
kexec_load_permitted() decrements kernel.kexec_load_limit_reboot (or _panic
for a crash load) before it looks at the flags, so each probe spends a load
and at 0 every later one reads "not permitted". With a limit set, the answer
comes from the kernel configuration and sysfs instead.
"""

from __future__ import annotations

from typing import Literal

Availability = Literal["available", "missing", "not-permitted", "unknown"]

# kernel.kexec_load_limit_{panic,reboot} (Linux 6.6+): -1 is unlimited.
LIMIT_FILES = {
    "panic": "/proc/sys/kernel/kexec_load_limit_panic",
    "reboot": "/proc/sys/kernel/kexec_load_limit_reboot",
}
# Where the kernel lists the fd types KEXEC_FILE_FDSET takes: the newer series first, then 6.12's.
FDSET_TYPES_FILES = ("/sys/kernel/kexec/file_fdset_types", "/sys/kernel/kexec_file_fdset_types")


def extended_from_types(line: str | None) -> Availability | None:
    """What the kernel's list of fd types says; None without the list (then probe)."""
    if line is None:
        return None
    return "available" if {"kernel", "dtb"} <= set(line.split()) else "missing"


def limits_set(limits: dict[str, int]) -> bool:
    """Whether a probe would spend one of a limited number of loads."""
    return any(v != -1 for v in limits.values())


def why_not_probed(limits: dict[str, int]) -> str | None:
    """The sentence status prints when the calls were judged without a probe."""
    if not limits_set(limits):
        return None
    values = ", ".join(f"kernel.kexec_load_limit_{k}={limits[k]}" for k in sorted(limits))
    return (f"not probed: {values} (a probe would spend a load); "
            "judged from the kernel configuration and /sys")


def _from_config(config: dict[str, str] | None, option: str) -> Availability:
    if config is None:
        return "unknown"
    return "available" if config.get(option) == "y" else "missing"


def calls_from_evidence(limits: dict[str, int], config: dict[str, str] | None,
                        fdset_types: str | None, disabled: bool | None) -> dict[str, Availability]:
    """The probes' answers told from the limits, the kernel configuration and sysfs."""
    file_load = _from_config(config, "CONFIG_KEXEC_FILE")
    out: dict[str, Availability] = {
        "extended": extended_from_types(fdset_types) or (
            "missing" if file_load != "unknown" else "unknown"),
        "kexec_file_load": file_load,
        "kexec_load": _from_config(config, "CONFIG_KEXEC"),
    }
    if disabled or limits.get("panic") == 0:  # every crash load is refused from now on
        return {k: "not-permitted" if v == "available" else v for k, v in out.items()}
    return out
