from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kdumpctl_py.facts.view import SystemView
from kdumpctl_py.plan.estimate import PROVISIONAL_CONSTANTS, estimate
from tests.cli.test_showmem import synthetic_snapshot
from tests.conftest import SNAPSHOT_NAMES, SNAPSHOTS

M, G = 1 << 20, 1 << 30
RELEASE = "6.18.44-fc-v657"  # the x86_64 fixture's


@pytest.mark.parametrize("name", SNAPSHOT_NAMES)
def test_estimate_on_fixture(name: str) -> None:
    e = estimate(SystemView(SNAPSHOTS / name))
    assert e.needed % PROVISIONAL_CONSTANTS.round_to == 0
    assert 128 * M <= e.needed <= 4 * G
    assert e.needed >= sum(p.bytes for p in e.parts)
    assert {p.name for p in e.parts} >= {"kernel", "initramfs", "initramfs unpacked", "per-CPU",
                                         "page bitmaps", "user space"}
    assert (e.reserved is None) == (e.too_small is None)


def test_boot_files_and_verdicts(tmp_path: Path) -> None:
    boot = {f"vmlinuz-{RELEASE}": 10 * M, f"initrd.img-{RELEASE}": 40 * M,
            f"initramfs-{RELEASE}kdump.img": 30 * M, "vmlinuz-6.1.0-old": 99 * M}
    small = estimate(SystemView(synthetic_snapshot(
        tmp_path / "a", crash=((0x2F000000, 0x3EFFFFFF),), boot=boot)))
    parts = {p.name: p for p in small.parts}
    assert parts["kernel"].bytes == 40 * M and f"/boot/vmlinuz-{RELEASE}" in parts["kernel"].how
    assert parts["initramfs"].bytes == 30 * M and "kdump.img" in parts["initramfs"].how
    assert parts["initramfs unpacked"].bytes == 90 * M
    assert small.reserved == 256 * M and small.too_small is True
    assert small.verdict.startswith("TOO SMALL: 256 MiB reserved")
    big = estimate(SystemView(synthetic_snapshot(
        tmp_path / "b", crash=((0x40000000, 0x7FFFFFFF),), boot=boot)))
    assert big.too_small is False and big.verdict.startswith("enough: 1 GiB reserved")
    none = estimate(SystemView(synthetic_snapshot(tmp_path / "c", boot=boot)))
    assert none.too_small is True and "nothing is reserved" in none.verdict


def test_the_sum(tmp_path: Path) -> None:
    """needed = (parts / (1 - memmap share)) * (1 + margin), rounded up."""
    c = dataclasses.replace(PROVISIONAL_CONSTANTS, margin=0.0, round_to=1 << 20)
    e = estimate(SystemView(synthetic_snapshot(tmp_path)), c)
    base = sum(p.bytes for p in e.parts if p.name not in ("memmap", "margin"))
    assert e.needed == -(-int(base / (1 - 64 / 4096)) // M) * M
    bitmaps = next(p for p in e.parts if p.name == "page bitmaps")
    frames = (e.ram or 0) // 4096
    assert bitmaps.bytes == -(-frames * 2 // 8) and f"{frames} page frames" in bitmaps.how
    assert "assumed" in next(p for p in e.parts if p.name == "kernel").how
