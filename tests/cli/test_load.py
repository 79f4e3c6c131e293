"""`start` checks a network target before arming: one that fails stops it with one
line, unless failure_action dump_to_rootfs (then it arms and warns); a load that fell
back from the extended call to the plain one says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdumpctl_py.cli.load import check_before_arming
from kdumpctl_py.errors import KdumpError
from kdumpctl_py.facts.view import SystemView
from tests.localserver import free_port


def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str = "") -> None:
    conf = tmp_path / "kdump.conf"  # a server down: nothing listens on the port
    conf.write_text(f"ssh kdump@127.0.0.1:{free_port()}\nsshkey {tmp_path}/id\n" + extra)
    monkeypatch.setenv("KDUMPCTL_CONFIG", str(conf))


def test_an_unreachable_target_is_not_armed(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    config(tmp_path, monkeypatch)
    with pytest.raises(KdumpError) as e:
        check_before_arming(SystemView())
    line = str(e.value)
    assert "\n" not in line and line.startswith("ssh target kdump@127.0.0.1:/var/crash fails")
    assert "Connection refused" in line and line.endswith(
        "not armed (fix the target, or set failure_action dump_to_rootfs to arm with the "
        "root file system as fallback)")


def test_dump_to_rootfs_arms_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    config(tmp_path, monkeypatch, "failure_action dump_to_rootfs\n")
    check_before_arming(SystemView())
    err = capsys.readouterr().err
    assert "kdumpctl-py: warning: ssh target kdump@127.0.0.1:/var/crash fails" in err
    assert "armed anyway: failure_action dump_to_rootfs saves the dump under /var/crash" in err


def test_a_fall_back_is_one_warning_and_names_the_call_used(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from kdumpctl_py.cli.load import carry_out
    from kdumpctl_py.load import loader
    from kdumpctl_py.service import notify

    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.setattr(notify, "status", lambda message: None)
    monkeypatch.setattr(loader, "load", lambda view, plan: "the extended call was refused")
    plan = type("Plan", (), {"method": "extended", "kernel_path": "/boot/k",
                             "initrd_path": None, "cmdline": "c"})()
    carry_out(SystemView(), plan, replace=False)
    out = capsys.readouterr()
    assert out.err == "kdumpctl-py: warning: the extended call was refused\n"
    assert out.out == "capture kernel loaded with file: /boot/k, initrd none\n"


@pytest.mark.parametrize("verb", ["load", "start", "restart", "reload"])
def test_an_initrd_and_no_initrd_together_are_bad_usage(
        verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by the new-administrator sweep: `load --dry-run --no-initrd --initrd X` went
    on, one of the two silently ignored."""
    from kdumpctl_py.cli import main

    assert main([verb, "--dry-run", "--no-initrd", "--initrd", "/x"]) == 2
    err = capsys.readouterr().err
    assert "argument --initrd: not allowed with argument --no-initrd" in err, err


@pytest.mark.parametrize("verb", ["start", "restart"])
def test_start_with_nothing_reserved_fails_before_building_the_initramfs(
        verb: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the new-administrator sweep, reading run_load: on a machine with no
    crashkernel= yet, `start` first built kdumpctl-py's capture initramfs (minutes of xz
    under initramfs-tools) and only then learnt from the kernel that there is nothing to
    load into; Fedora's kdumpctl checks the reservation first."""
    import kdumpctl_py.cli
    import kdumpctl_py.service.initramfs
    from kdumpctl_py.cli import main
    from tests.builders import synthetic_snapshot

    view = SystemView(synthetic_snapshot(tmp_path))
    assert view.kexec_crash_size == 0
    view.live = True  # as the live machine, which alone builds an initramfs
    monkeypatch.setattr(kdumpctl_py.cli, "open_view", lambda args, probe=False: view)
    monkeypatch.setattr(kdumpctl_py.service.initramfs, "refresh",
                        lambda view: pytest.fail("built the initramfs"))
    monkeypatch.setenv("KDUMPCTL_LOCK", str(tmp_path / "lock"))
    assert main([verb]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kdumpctl-py: error: no memory is reserved for a capture kernel")


def test_start_dry_run_says_a_loaded_capture_kernel_stays(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by the load-plan review: start does nothing while a capture kernel is loaded,
    and its dry run printed the plan as if it would load it."""
    import shutil

    from kdumpctl_py.cli import main
    from tests.conftest import SNAPSHOTS

    root = tmp_path / "snap"
    shutil.copytree(SNAPSHOTS / "debian13-arm64", root)
    (root / "sys/kernel/kexec_crash_loaded").write_text("1\n")
    note = ("note: a capture kernel is already loaded: start would leave it and load nothing "
            "(kdumpctl-py restart replaces it)\n")
    assert main(["--sysroot", str(root), "start", "--dry-run"]) == 0
    assert capsys.readouterr().out.endswith(note)
    assert main(["--sysroot", str(root), "restart", "--dry-run"]) == 0
    assert note not in capsys.readouterr().out
