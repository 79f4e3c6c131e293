"""`kdumpctl-py report`, what kdumpctl-py-report.service runs at the next boot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdumpctl_py.cli import main
from tests.analyse import panics
from tests.builders import panic_vmcore


def test_reports_each_new_dump_once(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    crash = tmp_path / "crash"
    (crash / "vm-2026-12-01-09:00:00").mkdir(parents=True)
    vmcore = panic_vmcore(crash / "vm-2026-12-01-09:00:00" / "vmcore", panics.OOPS_X86_64)
    conf = tmp_path / "kdump.conf"
    conf.write_text(f"path {crash}\n")
    monkeypatch.setenv("KDUMPCTL_CONFIG", str(conf))
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)  # no journal: standard output
    assert main(["report"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("kdumpctl-py: crash on vm at 2026-12-01T09:00:00Z, kernel "
                          "6.1.0-57-cloud-amd64: BUG: kernel NULL pointer dereference")
    assert f"; dump {vmcore}\n" in out and "kdumpctl_oops_write < kdumpctl_oops_init" in out
    assert (vmcore.parent / "analysis.json").exists()
    assert main(["report"]) == 0
    assert capsys.readouterr().out == "kdumpctl-py: no dump to report\n"
    stale = json.loads((vmcore.parent / "analysis.json").read_text())
    stale["signature"]["version"] = 0  # older rules: triage updates it, no second report
    (vmcore.parent / "analysis.json").write_text(json.dumps(stale))
    assert main(["report"]) == 0
    assert capsys.readouterr().out == "kdumpctl-py: no dump to report\n"
    conf.write_text(f"path {tmp_path}/never-made\n")  # nothing saved yet: not an error
    assert main(["report"]) == 0 and main(["dumps"]) == 0
    assert capsys.readouterr().out == ("kdumpctl-py: no dump to report\n"
                                       f"no dumps under {tmp_path}/never-made\n")


def test_journal_fields(tmp_path: Path) -> None:
    from kdumpctl_py.analyse.stored import analyse
    from kdumpctl_py.service.report import message
    from kdumpctl_py.triage.found import find

    (tmp_path / "d").mkdir()
    panic_vmcore(tmp_path / "d" / "vmcore", panics.BOOKWORM_X86_64, build_id="cd" * 20)
    (dump,) = find([str(tmp_path)])
    analysis = analyse(dump.vmcore)
    m = message(dump, analysis, None)
    assert m.fields == {"DUMP_PATH": dump.vmcore,
                        "PANIC": "Kernel panic - not syncing: sysrq triggered crash",
                        "SIGNATURE": analysis["signature"]["id"],
                        "KERNEL_RELEASE": "6.1.0-57-cloud-amd64", "BUILD_ID": "cd" * 20,
                        "DUMP_COMPLETE": "1"}
    failed = message(dump, None, "UsageError: truncated")
    assert failed.priority == 3 and "could not be analysed: UsageError" in failed.text
    assert failed.fields["SIGNATURE"] == ""


def test_network_targets_are_not_here(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "kdump.conf"
    conf.write_text("ssh kdump@dumps.example.org\n")
    monkeypatch.setenv("KDUMPCTL_CONFIG", str(conf))
    assert main(["report"]) == 0
    assert "not on this machine" in capsys.readouterr().out


def test_debuginfo_fetch_only_when_configured(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A fetch that fails (here drgn cannot open the dump at all) is said, and the report
    still comes from the log; without debuginfo_fetch nothing is tried."""
    (tmp_path / "vm-2026-12-01-09:00:00").mkdir()
    panic_vmcore(tmp_path / "vm-2026-12-01-09:00:00" / "vmcore", panics.BOOKWORM_X86_64)
    conf = tmp_path / "kdump.conf"
    conf.write_text(f"path {tmp_path}\ndebuginfo_fetch yes\n")
    monkeypatch.setenv("KDUMPCTL_CONFIG", str(conf))
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    assert main(["report"]) == 0
    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith("kdumpctl-py: no debug info fetched for ")
    assert "sysrq triggered crash (signature " in second
    (tmp_path / "vm-2026-12-01-09:00:00" / "analysis.json").unlink()
    conf.write_text(f"path {tmp_path}\n")
    assert main(["report"]) == 0
    assert "no debug info" not in capsys.readouterr().out


def test_an_nfs_export_is_mounted_for_the_report(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from kdumpctl_py.cli import report
    from kdumpctl_py.service import actions

    mnt = tmp_path / "mnt"
    calls: list[tuple[str, ...]] = []

    class Fake:
        def mount(self, fstype: str, device: str, options: str, mountpoint: str) -> None:
            calls.append(("mount", fstype, device, mountpoint))
            (mnt / "crash" / "vm-2026-12-01-09:00:00").mkdir(parents=True)
            panic_vmcore(mnt / "crash" / "vm-2026-12-01-09:00:00" / "vmcore",
                         panics.BOOKWORM_X86_64)

        def umount(self, mountpoint: str) -> None:
            calls.append(("umount", mountpoint))

    monkeypatch.setattr(actions, "System", Fake)
    monkeypatch.setattr(report, "NFS_MOUNT", str(mnt))
    conf = tmp_path / "kdump.conf"
    conf.write_text("nfs server.example:/dumps\npath /crash\n")
    monkeypatch.setenv("KDUMPCTL_CONFIG", str(conf))
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    assert main(["report"]) == 0
    assert [c[0] for c in calls] == ["mount", "umount"]
    assert calls[0][1:3] == ("nfs4", "server.example:/dumps")
    out = capsys.readouterr().out  # the dump as the export names it, not the mount point
    assert "; dump server.example:/dumps/crash/vm-2026-12-01-09:00:00/vmcore\n" in out
    assert (mnt / "crash" / "vm-2026-12-01-09:00:00" / "analysis.json").exists()
