"""The capture initramfs plan: generator, compression, when to build, the command line."""

from __future__ import annotations

import os
from pathlib import Path

from kdumpctl_py.facts.view import SystemView
from kdumpctl_py.plan.initramfs import (
    InitramfsPlan,
    best_compression,
    command,
    plan_initramfs,
)
from tests.builders import synthetic_snapshot

M = 1 << 20
RUNNING = "6.18.44-fc-v657"  # the release of the x86_64 fixture
OWN = f"kdumpctl-py-initrd-{RUNNING}.img"


def debian_root(tmp_path: Path, tools: tuple[str, ...] = ("mkinitramfs", "xz", "gzip"),
                config: str = "CONFIG_RD_GZIP=y\nCONFIG_RD_XZ=y\nCONFIG_RD_ZSTD=y\n",
                boot: tuple[str, ...] = (f"vmlinuz-{RUNNING}", f"initrd.img-{RUNNING}")) -> Path:
    """A snapshot with initramfs-tools, the given programs and /boot files (1 MiB each)."""
    root = synthetic_snapshot(tmp_path, boot={name: M for name in boot})
    for tool in tools:
        (root / "usr/sbin").mkdir(parents=True, exist_ok=True)
        (root / "usr/sbin" / tool).write_text("#!/bin/sh\n")
    (root / "etc/initramfs-tools/conf.d").mkdir(parents=True)
    (root / "etc/initramfs-tools/initramfs.conf").write_text("MODULES=most\n")
    (root / "boot").mkdir(exist_ok=True)
    for name in boot:
        (root / "boot" / name).write_bytes(b"x")
    (root / f"boot/config-{RUNNING}").write_text(config)
    return root


def age(root: Path, rel: str, when: float) -> None:
    os.utime(root / rel, (when, when))


def test_initramfs_tools_with_the_best_compression(tmp_path: Path) -> None:
    plan = plan_initramfs(SystemView(debian_root(tmp_path)))
    assert plan == InitramfsPlan(RUNNING, "initramfs-tools", "/usr/sbin/mkinitramfs",
                                 f"/boot/{OWN}", "xz", "not built yet")
    assert command(plan, "/tmp/c", "/boot/.new") == (
        "/usr/sbin/mkinitramfs", "-d", "/tmp/c", "-c", "xz", "-o", "/boot/.new", RUNNING)


def test_compression_is_what_both_the_kernel_and_the_system_have() -> None:
    config = {"CONFIG_RD_GZIP": "y", "CONFIG_RD_ZSTD": "y", "CONFIG_RD_XZ": "y"}
    assert best_compression(config, {"gzip", "zstd", "xz"}) == "xz"
    assert best_compression(config, {"gzip", "zstd"}) == "zstd"
    assert best_compression({"CONFIG_RD_GZIP": "y"}, {"gzip", "xz"}) == "gzip"
    assert best_compression(None, {"xz"}) == "gzip"  # an unknown kernel takes gzip


def test_dracut_where_it_is_the_generator(tmp_path: Path) -> None:
    root = debian_root(tmp_path, tools=("dracut", "zstd"))
    (root / "etc/initramfs-tools/initramfs.conf").unlink()
    plan = plan_initramfs(SystemView(root))
    assert plan is not None and (plan.generator, plan.compression) == ("dracut", "zstd")
    argv = command(plan, "unused", "/boot/.new")
    assert argv[0] == "/usr/sbin/dracut" and argv[-2:] == ("/boot/.new", RUNNING)
    assert "--hostonly" in argv and argv[argv.index("--omit") + 1] == "plymouth resume"


def test_no_generator_no_plan(tmp_path: Path) -> None:
    assert plan_initramfs(SystemView(debian_root(tmp_path, tools=("xz",)))) is None


def test_built_again_when_older_than_what_it_is_made_of(tmp_path: Path) -> None:
    root = debian_root(tmp_path, boot=(f"vmlinuz-{RUNNING}", f"initrd.img-{RUNNING}", OWN))
    for rel in (f"boot/vmlinuz-{RUNNING}", f"boot/initrd.img-{RUNNING}",
                "etc/initramfs-tools/initramfs.conf"):
        age(root, rel, 1000)
    age(root, f"boot/{OWN}", 2000)
    plan = plan_initramfs(SystemView(root), RUNNING)
    assert plan is not None and plan.why is None
    age(root, f"boot/initrd.img-{RUNNING}", 3000)  # update-initramfs -u after a change
    plan = plan_initramfs(SystemView(root), RUNNING)
    assert plan is not None and plan.why == \
        f"/boot/initrd.img-{RUNNING} changed since it was built"
    age(root, f"boot/{OWN}", 4000)
    (root / "etc/initramfs-tools/conf.d/local").write_text("MODULES=list\n")
    age(root, "etc/initramfs-tools/conf.d/local", 5000)
    plan = plan_initramfs(SystemView(root), RUNNING)
    assert plan is not None and plan.why and "conf.d/local changed" in plan.why


def test_another_release_uses_its_own_config(tmp_path: Path) -> None:
    root = debian_root(tmp_path)
    (root / "boot/config-7.0.0-new").write_text("CONFIG_RD_GZIP=y\n")
    plan = plan_initramfs(SystemView(root), "7.0.0-new")
    assert plan is not None and plan.compression == "gzip"
    assert plan.output == "/boot/kdumpctl-py-initrd-7.0.0-new.img"
