"""The one finder of a release's kernel and capture initrd: ours first, then the system's."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdumpctl_py.errors import UsageError
from kdumpctl_py.facts.view import SystemView
from kdumpctl_py.plan.bootfiles import find_initrd, find_kernel, own_initrd_path, system_initrd
from kdumpctl_py.plan.estimate import estimate
from kdumpctl_py.plan.load import default_initrd, default_kernel
from tests.builders import synthetic_snapshot

M = 1 << 20
RUNNING = "6.18.44-fc-v657"  # the release of the x86_64 fixture


def view(tmp_path: Path, boot: dict[str, int]) -> SystemView:
    return SystemView(synthetic_snapshot(tmp_path, boot=boot))


def test_ours_first_then_the_systems(tmp_path: Path) -> None:
    boot = {f"vmlinuz-{RUNNING}": 8 * M, f"initrd.img-{RUNNING}": 36 * M,
            f"kdumpctl-py-initrd-{RUNNING}.img": 9 * M, "initrd.img-6.1.0-old": 30 * M}
    v = view(tmp_path / "a", boot)
    assert find_kernel(v, RUNNING) == (f"vmlinuz-{RUNNING}", 8 * M)
    assert find_initrd(v, RUNNING) == (f"kdumpctl-py-initrd-{RUNNING}.img", 9 * M)
    assert system_initrd(v, RUNNING) == (f"initrd.img-{RUNNING}", 36 * M)
    # start loads, and estimate models, the same file.
    assert default_kernel(v) == f"/boot/vmlinuz-{RUNNING}"
    assert default_initrd(v) == own_initrd_path(RUNNING)
    parts = {p.name: p for p in estimate(v).parts}
    assert parts["initramfs"].bytes == 9 * M and own_initrd_path(RUNNING) in parts["initramfs"].how


def test_without_ours_the_systems(tmp_path: Path) -> None:
    v = view(tmp_path, {f"vmlinuz-{RUNNING}": 8 * M, f"initramfs-{RUNNING}.img": 30 * M})
    assert default_initrd(v) == f"/boot/initramfs-{RUNNING}.img"
    assert {p.name: p for p in estimate(v).parts}["initramfs"].bytes == 30 * M


@pytest.mark.parametrize("release", ["", "../etc", "a/b", ".hidden"])
def test_a_release_is_never_a_path(release: str) -> None:
    with pytest.raises(UsageError, match="not a kernel release"):
        own_initrd_path(release)
