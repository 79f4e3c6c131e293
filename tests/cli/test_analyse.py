from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kdumpctl_py.cli import main
from tests.analyse.dumps import DumpOf


def test_missing_vmcore_is_bad_usage(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pytest.importorskip("drgn")
    assert main(["analyse", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot open" in err


def test_a_file_that_is_no_dump_is_bad_usage(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    pytest.importorskip("drgn")
    (tmp_path / "x").write_bytes(b"hello world, not a dump")
    assert main(["analyse", str(tmp_path / "x")]) == 2
    assert "neither an ELF vmcore nor a kdump-compressed dump" in capsys.readouterr().err
    (tmp_path / "flat").write_bytes(b"makedumpfile\0\0\0\0" + bytes(100))
    assert main(["analyse", str(tmp_path / "flat")]) == 2
    assert "kdumpctl-py reassemble" in capsys.readouterr().err


def test_json_and_shell_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyse", "x", "--json", "--shell"]) == 2
    assert "not allowed with" in capsys.readouterr().err


def test_cli_starts_without_importing_drgn() -> None:
    code = ("import sys; from kdumpctl_py.cli import build_parser; build_parser(); "
            "print('drgn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_json_on_the_real_dump(crash_dump: DumpOf, capsys: pytest.CaptureFixture[str],
                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the VM harness runs: `analyse VMCORE --vmlinux V --json`."""
    dump = crash_dump("x86")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["analyse", str(dump.vmcore), "--vmlinux", str(dump.vmlinux), "--json",
                 "--log-lines", "5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == 1 and data["release"]
    assert "sysrq triggered crash" in data["panic_message"]
    assert data["crashed_thread"]["comm"] == "kdumpcrasher"
    assert {"pid", "comm", "cpu"} <= set(data["crashed_thread"])
    assert "sysrq_handle_crash" in [f["function"] for f in data["backtrace"]]
    assert len(data["log"]["tail"]) == 5


def test_text_on_the_real_dump_without_dwarf(crash_dump: DumpOf,
                                             capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    dump = crash_dump("x86", vmlinux=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.chdir(dump.vmcore.parent)  # a path longer than a line overflows it whole
    assert main(["analyse", "vmcore", "--debug-dir", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 80 for line in out.splitlines()), out
    assert f"RELEASE: {dump.release}" in out
    assert '"Kernel panic - not syncing: sysrq triggered crash"' in out
    assert "kdumpcrasher" in out and "sysrq_handle_crash" in out
    assert "kdumpctl-py debuginfo fetch vmcore" in " ".join(out.split())


def test_debuginfo_find(crash_dump: DumpOf, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    dump = crash_dump("x86")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["debuginfo", "find", str(dump.vmcore), "--vmlinux", str(dump.vmlinux),
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["vmlinux"] == str(dump.vmlinux) and data["build_id"] == dump.build_id
    assert main(["debuginfo", "find", str(dump.vmcore), "--debug-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "no matching vmlinux found" in out and "debuginfo fetch" in out


def test_shell_hands_drgn_the_program(crash_dump: DumpOf, capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dump = crash_dump("x86", vmlinux=False)
    import drgn.cli

    seen: dict[str, object] = {}

    def fake_run_interactive(prog: object, banner_func: object = None, **kw: object) -> None:
        seen["prog"] = prog
        seen["banner"] = banner_func("drgn banner") if callable(banner_func) else None

    monkeypatch.setattr(drgn.cli, "run_interactive", fake_run_interactive)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["analyse", str(dump.vmcore), "--shell", "--debug-dir", str(tmp_path)]) == 0
    assert isinstance(seen["prog"], drgn.Program)
    banner = str(seen["banner"])
    assert banner.startswith("drgn banner\nkdumpctl-py: ") and "no DWARF" in banner
    assert "debuginfo fetch" in banner
