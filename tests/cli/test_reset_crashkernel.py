"""reset-crashkernel end to end on snapshot roots: dry run, atomic write with backup, refusals."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kdumpctl_py.cli import main
from kdumpctl_py.cli.reset_crashkernel import apply
from kdumpctl_py.errors import KdumpError
from kdumpctl_py.fileio import BACKUP_SUFFIX
from kdumpctl_py.plan.bootloader import plan_reset
from tests.builders import (
    DEBIAN_GRUB,
    FEDORA_ENTRY,
    RELEASE,
    as_if_live,
    debian,
    synthetic_snapshot,
)

RUNNING = "6.18.44-fc-v657"  # the release of the x86_64 fixture
DEFAULT = "1G-4G:192M,4G-64G:256M,64G-:512M"


def reset(capsys: pytest.CaptureFixture[str], root: Path, *argv: str) -> tuple[int, str, str]:
    """--dry-run under --sysroot; otherwise as if root were this machine's own files."""
    if "--dry-run" in argv:
        code = main(["--sysroot", str(root), "reset-crashkernel", *argv])
    else:
        with pytest.MonkeyPatch.context() as mp:
            as_if_live(mp, root)
            code = main(["reset-crashkernel", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_dry_run_prints_a_diff_and_writes_nothing(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = synthetic_snapshot(tmp_path)
    grub = debian(root)
    code, out, err = reset(capsys, root, "--dry-run", "--force")
    assert code == 0 and err.startswith("kdumpctl-py: warning: crashkernel=")
    assert f"note: run update-grub inside {root.resolve()}" in out
    assert f"--- {root.resolve()}/etc/default/grub\n+++ " in out
    assert f'-GRUB_CMDLINE_LINUX=""\n+GRUB_CMDLINE_LINUX="crashkernel={DEFAULT}"\n' in out
    assert grub.read_text() == DEBIAN_GRUB
    assert not grub.with_name("grub" + BACKUP_SUFFIX).exists()


def test_write_is_atomic_with_a_backup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = synthetic_snapshot(tmp_path)
    grub = debian(root)
    grub.chmod(0o640)
    code, out, err = reset(capsys, root, "--value", "512M")
    assert (code, err) == (0, "")
    assert f"updated {grub.resolve()}" in out
    assert grub.read_text() == DEBIAN_GRUB.replace('GRUB_CMDLINE_LINUX=""',
                                                   'GRUB_CMDLINE_LINUX="crashkernel=512M"')
    assert grub.with_name("grub" + BACKUP_SUFFIX).read_text() == DEBIAN_GRUB
    assert stat.S_IMODE(grub.stat().st_mode) == 0o640
    assert [p.name for p in grub.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert reset(capsys, root, "--value", "512M")[1].endswith("crashkernel=512M is set already\n")


def test_fedora_bls_running_kernel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = synthetic_snapshot(tmp_path)
    entries = root / "boot/loader/entries"
    entries.mkdir(parents=True)
    mine = entries / f"abc-{RUNNING}.conf"
    before = FEDORA_ENTRY.replace(RELEASE, RUNNING).replace(f"crashkernel={DEFAULT}",
                                                            "crashkernel=256M")
    mine.write_text(before)
    other = entries / f"abc-{RELEASE}.conf"
    other.write_text(FEDORA_ENTRY)
    assert reset(capsys, root, "--force")[0] == 0
    assert f"crashkernel={DEFAULT}\n" in mine.read_text()
    assert other.read_text() == FEDORA_ENTRY
    assert mine.with_name(mine.name + BACKUP_SUFFIX).read_text() == before


@pytest.mark.parametrize("grub,argv,code,why", [
    ('GRUB_CMDLINE_LINUX="$EXTRA quiet"\n', ["--value", "512M"], 1,
     "uses $, ` or \\, which the shell expands"),
    (DEBIAN_GRUB, ["--value", "1G,low"], 2, ",low alone reserves nothing"),
    (DEBIAN_GRUB, ["--value", "256M quiet"], 2, "must be one word"),
    (DEBIAN_GRUB, ["--kernel", "/boot/vmlinuz-6.1.0-13-amd64", "--value", "512M"], 2,
     "use --kernel ALL"),
])
def test_refusals_leave_files_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str], grub: str,
                                    argv: list[str], code: int, why: str) -> None:
    root = synthetic_snapshot(tmp_path)
    path = debian(root)
    path.write_text(grub)
    got, out, err = reset(capsys, root, *argv)
    assert (got, out) == (code, "")
    assert err.startswith("kdumpctl-py: error: ") and err.count("\n") == 1 and why in err
    assert path.read_text() == grub
    assert list(path.parent.iterdir()) == [path]


def test_concurrent_edit_is_detected(tmp_path: Path) -> None:
    grub = debian(tmp_path)
    plan = plan_reset(tmp_path, "512M", None, RUNNING, run_tools=False)
    grub.write_text(DEBIAN_GRUB + "GRUB_TIMEOUT=1\n")  # someone else, in between
    with pytest.raises(KdumpError, match="changed while kdumpctl-py was editing it"):
        apply(plan)
    assert grub.read_text() == DEBIAN_GRUB + "GRUB_TIMEOUT=1\n"


@pytest.mark.parametrize("argv,why", [
    (["--value", "64G-:512M"], "crashkernel=64G-:512M reserves nothing at this RAM (24.0 GiB): "),
    ([], f"crashkernel={DEFAULT} reserves 256 MiB at this RAM (24.0 GiB), below the 448 MiB "
         "that kdumpctl-py estimate says the capture kernel needs; give --value 448M, or "
         "--force to write it anyway"),
])
def test_too_small_a_value_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       argv: list[str], why: str) -> None:
    """The default and the estimate agree, or the administrator says --force (issue 23, item 3)."""
    root = synthetic_snapshot(tmp_path)
    grub = debian(root)
    for dry_run in ([], ["--dry-run"]):
        code, out, err = reset(capsys, root, *argv, *dry_run)
        assert (code, out) == (2, "") and err.count("\n") == 1 and why in err
        assert grub.read_text() == DEBIAN_GRUB
    code, out, err = reset(capsys, root, *argv, "--force")
    assert code == 0 and err.startswith(f"kdumpctl-py: warning: {why.split('; give')[0]}")
    assert "crashkernel=" in grub.read_text()
    assert reset(capsys, root, "--value", "448M")[0] == 0


def test_no_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = reset(capsys, synthetic_snapshot(tmp_path), "--force")
    assert code == 1 and "no boot loader configuration found" in err
    assert os.listdir(tmp_path / "snap/etc") == ["os-release"]


def test_auto_follows_the_default_on_a_shared_command_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The kernel hooks' --auto: /etc/default/grub serves every kernel, so a new kernel's
    default is written there when the value in force is a (former) default."""
    root = synthetic_snapshot(tmp_path / "a", cmdline="ro crashkernel=2G-64G:256M,64G-:512M")
    grub = debian(root)
    code, out, err = reset(capsys, root, "--auto", "--kernel", "/boot/vmlinuz-7.0.0-new",
                           "--dry-run")
    assert code == 0 and f'+GRUB_CMDLINE_LINUX="crashkernel={DEFAULT}"' in out
    root = synthetic_snapshot(tmp_path / "b", cmdline="ro crashkernel=384M")
    debian(root)
    code, out, err = reset(capsys, root, "--auto", "--kernel", "/boot/vmlinuz-7.0.0-new",
                           "--dry-run")
    assert (code, err) == (0, "")
    assert out == "the crashkernel= in force is not kdumpctl-py's default; left as it is\n"
    # Found by the new-administrator sweep: with none in force it said the same, as if an
    # admin's value were there.
    root = synthetic_snapshot(tmp_path / "c", cmdline="ro quiet")
    debian(root)
    code, out, err = reset(capsys, root, "--auto", "--kernel", "/boot/vmlinuz-7.0.0-new",
                           "--dry-run")
    assert (code, err) == (0, "")
    assert out == ("no crashkernel= is in force (/proc/cmdline); left as it is: "
                   "kdumpctl-py reset-crashkernel sets one\n")
    assert grub.read_text() == DEBIAN_GRUB
    assert reset(capsys, root, "--auto", "--value", "512M", "--dry-run")[0] == 2


def test_auto_edits_the_new_kernels_bls_entry(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    root = synthetic_snapshot(tmp_path, cmdline=f"ro crashkernel={DEFAULT}")
    entries = root / "boot/loader/entries"
    entries.mkdir(parents=True)
    new = entries / f"abc-{RELEASE}.conf"
    new.write_text(FEDORA_ENTRY.replace(f"crashkernel={DEFAULT}",
                                        "crashkernel=2G-64G:256M,64G-:512M"))  # a former default
    assert reset(capsys, root, "--auto", "--kernel", f"/boot/vmlinuz-{RELEASE}")[0] == 0
    assert new.read_text() == FEDORA_ENTRY


def test_auto_leaves_an_admins_value_set_since_the_boot(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: --auto judged the value in force by /proc/cmdline alone, so a kernel
    update after an admin had written their own value, before the reboot, put the default
    back over it."""
    root = synthetic_snapshot(tmp_path, cmdline=f"ro crashkernel={DEFAULT}")
    grub = debian(root)
    grub.write_text(DEBIAN_GRUB.replace('GRUB_CMDLINE_LINUX=""',
                                        'GRUB_CMDLINE_LINUX="crashkernel=512M"'))
    code, out, err = reset(capsys, root, "--auto", "--kernel", "/boot/vmlinuz-7.0.0-new",
                           "--dry-run")
    assert (code, err) == (0, "")
    assert out == (f"{grub} holds crashkernel=512M, not kdumpctl-py's default (set since "
                   "this boot?); left as it is\n")
