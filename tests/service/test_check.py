"""The target check before arming, against a real sshd on 127.0.0.1."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kdumpctl_py.config import Config, parse_text
from kdumpctl_py.service.check import TargetCheck, arm_decision, check_target, parse_route
from tests.service.sshd import Server, sshd


def ssh_config(server: Server, path: Path, **kw: object) -> Config:
    return dataclasses.replace(Config(), target=server.target, sshkey=server.key,
                               path=str(path), **kw)  # type: ignore[arg-type]


def test_a_reachable_writable_server_passes(tmp_path: Path) -> None:
    with sshd(tmp_path / "server") as server:
        check = check_target(ssh_config(server, tmp_path / "dumps"))
    assert check is not None and check.ok is True, check
    assert "reachable with" in check.detail and "writable" in check.detail
    assert "free" in check.detail and (tmp_path / "dumps").is_dir()
    assert check.route == "lo (127.0.0.1)" and check.detail.endswith("through lo (127.0.0.1)")
    assert list((tmp_path / "dumps").iterdir()) == []  # the probe file is gone


def test_a_refused_key_or_a_server_down_fails_in_one_line(tmp_path: Path) -> None:
    with sshd(tmp_path / "server") as server:
        server.authorized_keys.write_text("")
        refused = check_target(ssh_config(server, tmp_path / "dumps"))
        server.proc.terminate()
        server.proc.wait(10)
        down = check_target(ssh_config(server, tmp_path / "dumps"))
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


def test_local_and_nfs_targets() -> None:
    assert check_target(Config()) is None
    nfs = check_target(parse_text("nfs srv:/export\npath /d\n", "f"))
    assert nfs is not None and nfs.ok is None and nfs.target == "srv:/export/d"


def test_route_is_read_from_ip_route_get() -> None:
    assert parse_route("10.0.2.100 via 192.0.2.1 dev eth0 src 192.0.2.2 uid 0 \\    cache")\
        == "eth0 (192.0.2.2)"
    assert parse_route("local 127.0.0.1 dev lo table local") == "lo"
    assert parse_route("") is None


def test_a_system_without_boot_network_is_warned_about(tmp_path: Path) -> None:
    from kdumpctl_py.facts.view import SystemView

    (tmp_path / "root").mkdir()
    (tmp_path / "root/kdumpctl-snapshot.json").write_text("{}")
    with sshd(tmp_path / "server") as server:
        check = check_target(ssh_config(server, tmp_path / "dumps"), SystemView(tmp_path / "root"))
    assert check is not None and check.ok is True and check.boot_network is None
    assert check.warning and "no network configuration starts at boot" in check.warning
