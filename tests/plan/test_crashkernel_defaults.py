from __future__ import annotations

import pytest

from kdumpctl_py.arch import ARCHES, get_arch
from kdumpctl_py.errors import UsageError
from kdumpctl_py.facts.view import SystemView
from kdumpctl_py.plan.crashkernel import check_value, evaluate_value
from kdumpctl_py.plan.crashkernel_defaults import (
    PAGE_4K,
    PAGE_64K,
    default_crashkernel,
    page_size,
    parse_page_size,
)
from tests.conftest import SNAPSHOT_NAMES, SNAPSHOTS

G, M = 1 << 30, 1 << 20


def test_measured_then_fedora_values() -> None:
    """Up to 4G the crash cycle's minimum plus 48M (x86_64 144M, arm64 112M, riscv64 192M),
    then Fedora's."""
    assert default_crashkernel(get_arch("x86_64")) == "1G-4G:192M,4G-64G:256M,64G-:512M"
    assert default_crashkernel(get_arch("s390x")) == "2G-64G:256M,64G-:512M"
    assert default_crashkernel(get_arch("aarch64")) == "1G-4G:160M,4G-64G:320M,64G-:576M"
    assert default_crashkernel(get_arch("aarch64"), PAGE_64K) == "1G-4G:260M,4G-64G:420M,64G-:676M"
    assert default_crashkernel(get_arch("aarch64"), 16 << 10) == default_crashkernel(
        get_arch("aarch64"))
    assert default_crashkernel(get_arch("ppc64le")).startswith("2G-4G:400M,4G-16G:528M,")
    # riscv64: 192M measured (Sv57 and Sv39) plus 48M, then arm64's rows
    assert default_crashkernel(get_arch("riscv64")) == "1G-4G:240M,4G-64G:320M,64G-:576M"


@pytest.mark.parametrize("arch", [a.name for a in ARCHES])
def test_every_default_is_valid_and_grows_with_ram(arch: str) -> None:
    a = get_arch(arch)
    value = default_crashkernel(a)
    check_value(value, a)
    sizes = [evaluate_value(value, ram, a).size for ram in (2 * G, 8 * G, 100 * G, 300 * G)]
    assert sizes == sorted(sizes) and sizes[0] >= 160 * M


def test_no_64k_pages_on_x86() -> None:
    with pytest.raises(UsageError, match="no 64K pages"):
        default_crashkernel(get_arch("x86_64"), PAGE_64K)


def test_parse_page_size() -> None:
    assert parse_page_size("4K") == PAGE_4K
    assert parse_page_size("64k") == PAGE_64K
    with pytest.raises(UsageError):
        parse_page_size("16K")


@pytest.mark.parametrize("name", SNAPSHOT_NAMES)
def test_page_size_of_fixtures(name: str) -> None:
    view = SystemView(SNAPSHOTS / name)
    assert page_size(view) in (4 << 10, 16 << 10, 64 << 10)


def test_auto_reset_follows_a_default_only() -> None:
    """Fedora's auto_reset_crashkernel: a new kernel gets its default only when the value in
    force is a default, today's or a former one; an admin's own value is left alone."""
    from kdumpctl_py.plan.crashkernel_defaults import auto_reset, is_default

    x86, arm = get_arch("x86_64"), get_arch("aarch64")
    today = default_crashkernel(x86)
    assert is_default(today, x86) and is_default("2G-64G:256M,64G-:512M", x86)
    assert not is_default("384M", x86) and not is_default(today, get_arch("s390x"))
    assert auto_reset([today], x86, PAGE_4K, PAGE_4K) == today
    assert auto_reset(["2G-64G:256M,64G-:512M"], x86, PAGE_4K, PAGE_4K) == today
    assert auto_reset(["384M"], x86, PAGE_4K, PAGE_4K) is None
    assert auto_reset([], x86, PAGE_4K, PAGE_4K) is None
    assert auto_reset([today, "384M"], x86, PAGE_4K, PAGE_4K) is None
    # A 64K-page kernel installed beside a 4K one gets the 64K default, and back.
    arm4, arm64k = default_crashkernel(arm), default_crashkernel(arm, PAGE_64K)
    assert auto_reset([arm4], arm, PAGE_4K, PAGE_64K) == arm64k
    assert auto_reset(["2G-4G:356M,4G-64G:420M,64G-:676M"], arm, PAGE_64K, PAGE_4K) == arm4


def test_riscv64_fixture_default_and_former_one() -> None:
    """get-default-crashkernel on the riscv64 guest's snapshot; the generic value it wrote
    before is still recognised as a default (reset-crashkernel --auto)."""
    from kdumpctl_py.plan.crashkernel_defaults import is_default

    view = SystemView(SNAPSHOTS / "debian13-riscv64")
    value = default_crashkernel(view.arch, page_size(view))
    assert value == "1G-4G:240M,4G-64G:320M,64G-:576M"
    assert evaluate_value(value, 1 * G, view.arch).size == 240 * M
    assert is_default("2G-64G:256M,64G-:512M", view.arch)


def test_admins_own_finds_a_value_no_default_of_ours_in_the_files() -> None:
    from pathlib import Path

    from kdumpctl_py.plan.bootloader import FileEdit
    from kdumpctl_py.plan.crashkernel_defaults import admins_own

    x86 = get_arch("x86_64")
    default = default_crashkernel(x86, 4096)
    grub = FileEdit(Path("/etc/default/grub"),
                    f'GRUB_CMDLINE_LINUX="ro crashkernel={default} crashkernel=64M,cma"\n'.encode(),
                    "")
    assert admins_own([grub], x86) is None  # the default, and an admin's CMA area beside it
    own = FileEdit(Path("/etc/default/grub"), b'GRUB_CMDLINE_LINUX="crashkernel=512M"\n', "")
    assert admins_own([grub, own], x86) == ("/etc/default/grub", "512M")
