from __future__ import annotations

from pathlib import Path

import pytest

from kdumpctl_py.errors import UsageError
from kdumpctl_py.facts.view import SystemView
from kdumpctl_py.plan.method import choose_method
from tests.conftest import SNAPSHOTS
from tests.snapshots import make_snapshot

ALL = {"extended": "available", "kexec_file_load": "available", "kexec_load": "available"}


def view(tmp_path: Path, probes: dict[str, str], lockdown: str | None = None) -> SystemView:
    files = {}
    if lockdown:
        files["/sys/kernel/security/lockdown"] = (
            " ".join(f"[{m}]" if m == lockdown else m
                     for m in ("none", "integrity", "confidentiality")) + "\n")
    return SystemView(make_snapshot(tmp_path, "aarch64", files, probes=probes))


@pytest.mark.parametrize("probes,lockdown,dtb,method", [
    (ALL, None, True, "extended"),
    (ALL, None, False, "file"),  # the extended call adds nothing without a device tree
    (ALL, "integrity", True, "file"),  # the kernel refuses a user-space DTB under lockdown
    ({**ALL, "kexec_file_load": "missing"}, "integrity", True, "extended"),
    ({**ALL, "extended": "missing"}, None, True, "file"),
    ({**ALL, "extended": "missing"}, None, False, "file"),
    ({"extended": "missing", "kexec_file_load": "missing", "kexec_load": "available"}, None,
     False, "classic"),
    ({"extended": "missing", "kexec_file_load": "missing", "kexec_load": "available"},
     "integrity", False, None),
    ({"extended": "missing", "kexec_file_load": "missing", "kexec_load": "missing"}, None,
     False, None),
])
def test_auto(tmp_path: Path, probes: dict[str, str], lockdown: str | None, dtb: bool,
              method: str | None) -> None:
    choice = choose_method(view(tmp_path, probes, lockdown), with_dtb=dtb)
    assert choice.method == method and choice.why


@pytest.mark.parametrize("kexec_load", ["available", "not-permitted"])
def test_lockdown_without_kexec_file_load_says_so(tmp_path: Path, kexec_load: str) -> None:
    """Under lockdown kexec_load's probe meets EPERM itself: the reason is lockdown, not root."""
    probes = {"extended": "missing", "kexec_file_load": "missing", "kexec_load": kexec_load}
    choice = choose_method(view(tmp_path, probes, "integrity"))
    assert choice.method is None
    assert choice.why == ("kexec_load is blocked by lockdown (integrity) and this kernel has no "
                          "kexec_file_load, the only call lockdown allows: boot a kernel built "
                          "with CONFIG_KEXEC_FILE, or boot without lockdown (no lockdown= word, "
                          "Secure Boot off)")


def test_auto_says_a_given_dtb_goes_unused(tmp_path: Path) -> None:
    choice = choose_method(view(tmp_path, {**ALL, "extended": "missing"}), with_dtb=True)
    assert choice.method == "file" and "device tree given is not used" in choice.why


def test_forced(tmp_path: Path) -> None:
    v = view(tmp_path, {**ALL, "extended": "missing"})
    assert choose_method(v, "classic").method == "classic"
    assert choose_method(v, "extended").method is None
    unknown = view(tmp_path / "unknown", {**ALL, "kexec_load": "unknown"})
    refused = choose_method(unknown, "classic")
    assert refused.method is None and "kexec_load is unknown" in refused.why
    with pytest.raises(UsageError):
        choose_method(v, "bogus")


def test_spent_panic_limit_names_both_sysctls(tmp_path: Path) -> None:
    files = {"/proc/sys/kernel/kexec_load_limit_panic": "0\n",
             "/proc/sys/kernel/kexec_load_limit_reboot": "4\n",
             "/boot/config-6.1.0-test": "CONFIG_KEXEC_FILE=y\nCONFIG_KEXEC=y\n"}
    v = SystemView(make_snapshot(tmp_path, "aarch64", files, probes={}))
    choice = choose_method(v)
    assert choice.method is None
    assert "kernel.kexec_load_limit_panic=0" in choice.why
    assert "kernel.kexec_load_limit_reboot=4" in choice.why


def test_riscv64_says_kexec_load_is_the_only_path() -> None:
    """Debian's riscv64 kernel answers ENOSYS to kexec_file_load: status says why classic."""
    choice = choose_method(SystemView(SNAPSHOTS / "debian13-riscv64"))
    assert choice.method == "classic"
    assert choice.why.startswith("kexec_load is the only path: this riscv64 kernel has no "
                                 "KEXEC_FILE")
