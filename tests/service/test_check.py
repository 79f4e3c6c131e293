"""The target check before arming, against a real sshd on 127.0.0.1; an NFS export's
mount through a stand-in (this machine's kernel may have no NFS client: the VM
tier's NFS cycle mounts a real one)."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from kdumpctl_py.config import Config, parse_text
from kdumpctl_py.errors import KdumpError
from kdumpctl_py.facts.view import SystemView
from kdumpctl_py.service.check import TargetCheck, arm_decision, check_target
from kdumpctl_py.units import format_bytes
from tests.service.sshd import Server, sshd

LIVE = SystemView()


def ssh_config(server: Server, path: Path, **kw: object) -> Config:
    return dataclasses.replace(Config(), target=server.target, sshkey=server.key,
                               path=str(path), **kw)  # type: ignore[arg-type]


def test_a_reachable_writable_server_passes(tmp_path: Path) -> None:
    with sshd(tmp_path / "server") as server:
        check = check_target(ssh_config(server, tmp_path / "dumps"), LIVE)
    assert check is not None and check.ok is True, check
    assert "reachable with" in check.detail and "writable" in check.detail
    assert "free" in check.detail and (tmp_path / "dumps").is_dir()
    assert check.route == "lo (127.0.0.1)" and check.detail.endswith("through lo (127.0.0.1)")
    assert check.free_bytes and check.dump_bytes and check.to_json()["dump_bytes"]
    assert list((tmp_path / "dumps").iterdir()) == []  # the probe file is gone


def test_a_refused_key_or_a_server_down_fails_in_one_line(tmp_path: Path) -> None:
    with sshd(tmp_path / "server") as server:
        server.authorized_keys.write_text("")
        refused = check_target(ssh_config(server, tmp_path / "dumps"), LIVE)
        server.proc.terminate()
        server.proc.wait(10)
        down = check_target(ssh_config(server, tmp_path / "dumps"), LIVE)
    assert refused is not None and refused.ok is False and "Permission denied" in refused.detail
    assert down is not None and down.ok is False and "Connection refused" in down.detail
    assert "\n" not in refused.detail + down.detail


def test_start_refuses_unless_dump_to_rootfs() -> None:
    bad = TargetCheck("u@h:/var/crash", False, "ssh target u@h:/var/crash fails: x")
    cfg = parse_text("ssh u@h\n", "f")
    assert (arm_decision(cfg, bad) or "").startswith("error: ssh target u@h:/var/crash fails")
    rootfs = dataclasses.replace(cfg, failure_action="dump_to_rootfs")
    assert (arm_decision(rootfs, bad) or "").startswith("warning: ")
    assert "root file system" in (arm_decision(rootfs, bad) or "")
    assert arm_decision(cfg, dataclasses.replace(bad, ok=True)) is None
    assert arm_decision(cfg, None) is None


class Mounts:
    """Records the check's mount and umount; `fails` makes mount fail as mount.nfs4 does.
    The mount point stays a plain directory, so the rest of the check runs for real;
    umount moves what was written there to `export`, as the server would keep it."""

    def __init__(self, export: Path, fails: str = "") -> None:
        self.export, self.fails = export, fails
        self.calls: list[tuple[str, ...]] = []

    def mount(self, fstype: str, device: str, options: str, mountpoint: str) -> None:
        self.calls.append(("mount", fstype, device, options, mountpoint))
        if self.fails:
            raise KdumpError(self.fails)

    def umount(self, mountpoint: str) -> None:
        self.calls.append(("umount", mountpoint))
        shutil.copytree(mountpoint, self.export)
        shutil.rmtree(mountpoint)
        os.mkdir(mountpoint)


def test_an_nfs_export_is_mounted_written_and_unmounted(tmp_path: Path) -> None:
    cfg = parse_text("nfs srv:/export port=2050\npath /d\n", "f")
    mounts = Mounts(tmp_path / "export")
    check = check_target(cfg, LIVE, mounts, str(tmp_path / "run"))
    assert check is not None and check.ok is True, check
    assert check.target == "srv:/export/d" and "mountable, writable" in check.detail
    ((_, fstype, device, options, mnt), umount) = mounts.calls
    assert (fstype, device, umount) == ("nfs4", "srv:/export", ("umount", mnt))
    assert options == "vers=4,soft,timeo=100,retrans=3,retry=0,port=2050"
    assert check.free_bytes and f"{format_bytes(check.free_bytes)} free" in check.detail
    assert not Path(mnt).exists() and list((tmp_path / "run").iterdir()) == []
    assert list((tmp_path / "export/d").iterdir()) == []  # made there, the probe removed


def test_an_nfs_export_that_cannot_be_mounted_fails_in_one_line(tmp_path: Path) -> None:
    cfg = parse_text("nfs srv:/export\npath /d\n", "f")
    mounts = Mounts(tmp_path / "export", "mount.nfs4: Connection refused")
    check = check_target(cfg, LIVE, mounts, str(tmp_path / "run"))
    assert check is not None and check.ok is False
    assert check.detail == "nfs target srv:/export/d fails: mount.nfs4: Connection refused"
    assert [c[0] for c in mounts.calls] == ["mount"]
    assert list((tmp_path / "run").iterdir()) == []
    assert arm_decision(cfg, check) is not None


def test_local_targets_are_not_checked_here() -> None:
    assert check_target(Config(), LIVE) is None


def test_less_free_space_than_the_estimate_is_warned_about(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "kdumpctl-snapshot.json").write_text("{}")
    (root / "proc/meminfo").write_text("MemTotal: 17179869184 kB\nMemFree: 1024 kB\n")
    with sshd(tmp_path / "server") as server:
        check = check_target(ssh_config(server, tmp_path / "dumps"), SystemView(root))
    assert check is not None and check.ok is True and check.free_bytes
    assert check.dump_bytes == (17179869184 - 1024) * 1024
    assert check.warning and f"has {format_bytes(check.free_bytes)} free and the dump may " \
        "need up to 16.0 TiB (the pages kept at -d 31, before compression)" in check.warning


def test_a_system_without_boot_network_is_warned_about(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "root/kdumpctl-snapshot.json").write_text("{}")
    with sshd(tmp_path / "server") as server:
        check = check_target(ssh_config(server, tmp_path / "dumps"), SystemView(tmp_path / "root"))
    assert check is not None and check.ok is True and check.boot_network is None
    assert check.warning and "no network configuration starts at boot" in check.warning
