from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from kdumpctl_py.cli import main
from kdumpctl_py.cli import test as test_cmd
from kdumpctl_py.facts.view import SystemView
from kdumpctl_py.service import testid


def snapshot(tmp_path: Path) -> Path:
    (tmp_path / "kdumpctl-snapshot.json").write_text(json.dumps({}))
    return tmp_path


def test_id_cmdline_and_names() -> None:
    when = datetime.datetime(2026, 11, 26, 12, 0, 1, tzinfo=datetime.UTC)
    assert testid.new_id(when) == "20261126-120001"
    assert testid.from_cmdline("a kdumpctl_py.test_id=X b") == "X"
    assert testid.from_cmdline("a b") is None
    assert testid.status_name("X") == "kdumpctl-py-test-X.status"


def test_last_test_follows_the_record(tmp_path: Path) -> None:
    root = snapshot(tmp_path)
    view = SystemView(root)
    assert testid.last_test(view, "/var/crash") is None
    testid.record("T", "/var/crash", root=str(root))
    rec = json.loads((root / testid.RECORD.lstrip("/")).read_text())
    assert rec["id"] == "T" and rec["dump_dir"] == "/var/crash"
    assert "T: no result in /var/crash" in (testid.last_test(view, "/var/crash") or "")
    assert "not mounted" in (testid.last_test(view, None) or "")
    d = root / "var/crash/h-2026-11-26-12:00:00"
    d.mkdir(parents=True)
    testid.write_result(str(d), "T", True, "/var/crash/h-2026-11-26-12:00:00")
    assert testid.last_test(view, "/var/crash") == \
        "T: dump created, /var/crash/h-2026-11-26-12:00:00"
    (d / testid.status_name("T")).unlink()
    testid.write_result(str(root / "var/crash"), "T", False, "disk full")
    assert testid.last_test(view, "/var/crash") == "T: dump NOT created, failed: disk full"
    testid.forget("other", root=str(root))
    assert (root / testid.RECORD.lstrip("/")).exists()
    testid.forget("T", root=str(root))
    assert not (root / testid.RECORD.lstrip("/")).exists()


def test_status_shows_last_test(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = snapshot(tmp_path)
    testid.record("T9", "/var/crash", root=str(root))
    assert main(["--sysroot", str(root), "status", "--json"]) == 3
    st = json.loads(capsys.readouterr().out)
    assert st["last_test"].startswith("T9: no result in /var/crash")


def test_crash_now_writes_c(tmp_path: Path) -> None:
    trigger = tmp_path / "sysrq-trigger"
    test_cmd.crash_now(str(trigger))
    assert trigger.read_text() == "c"


def test_test_refuses_sysroot_and_needs_a_reservation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sysroot", str(snapshot(tmp_path)), "test", "--yes"]) == 2
    assert "drop --sysroot" in capsys.readouterr().err


class _View:
    kexec_crash_size = 256 << 20
    cmdline = "root=/dev/vda crashkernel=256M"
    live = True

    def data(self, rel: str, limit: int = 0) -> None:
        return None

    unknown = {"/etc/kdumpctl-py/kdump.conf": "No such file or directory"}


@pytest.fixture
def fake_test_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    import kdumpctl_py.cli as cli
    import kdumpctl_py.cli.load as load_mod

    calls: list[tuple[str, Any]] = []
    monkeypatch.setenv("KDUMPCTL_LOCK", str(tmp_path / "lock"))
    monkeypatch.setattr(testid, "RECORD", str(tmp_path / "test.json"))
    monkeypatch.setattr(cli, "open_view", lambda args, probe=False: _View())
    def plan_from_args(view: object, args: object = None,
                       extra_append: tuple[str, ...] = ()) -> str:
        calls.append(("plan", extra_append))
        return "PLAN"

    monkeypatch.setattr(load_mod, "plan_from_args", plan_from_args)
    monkeypatch.setattr(load_mod, "carry_out",
                        lambda view, plan, replace: calls.append(("load", replace)))
    monkeypatch.setattr(test_cmd, "crash_now", lambda: calls.append(
        ("crash", json.loads((tmp_path / "test.json").read_text())["id"])))
    return calls


def test_test_records_reloads_and_crashes(fake_test_run: list[tuple[str, Any]],
                                          tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "--yes"]) == 1  # the stand-in crash returns
    (plan, extra), load, crash = fake_test_run
    test_id = crash[1]
    assert plan == "plan" and extra == (f"kdumpctl_py.test_id={test_id}",)
    assert load == ("load", True)
    assert "the kernel did not panic" in capsys.readouterr().err


def test_test_asks_first(fake_test_run: list[tuple[str, Any]], tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("no\n"))
    assert main(["test"]) == 1
    assert [c[0] for c in fake_test_run] == ["plan"]  # nothing loaded, nothing crashed
    assert not (tmp_path / "test.json").exists()
    assert "test cancelled; nothing changed" in capsys.readouterr().out


def test_start_shows_the_last_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    import kdumpctl_py.cli as cli
    import kdumpctl_py.cli.load as load_mod

    root = snapshot(tmp_path)
    testid.record("T5", "/var/crash", root=str(root))
    view = SystemView(root)
    view.live = True  # as if this were the machine: start goes on to load
    monkeypatch.setenv("KDUMPCTL_LOCK", str(tmp_path / "lock"))
    monkeypatch.setattr(cli, "open_view", lambda args, probe=False: view)
    monkeypatch.setattr(load_mod, "plan_from_args", lambda view, args=None: "PLAN")
    monkeypatch.setattr(load_mod, "carry_out", lambda view, plan, replace: None)
    monkeypatch.setattr(SystemView, "kexec_crash_loaded", False, raising=False)
    assert main(["start"]) == 0
    assert "last test: T5: no result in /var/crash" in capsys.readouterr().out


def test_a_result_the_target_could_not_take_is_found_on_the_root(tmp_path: Path) -> None:
    """Found by review: a capture whose target never appeared (a missing driver, what a
    test is for) or whose kdump_pre failed left its result where status never looked."""
    root = snapshot(tmp_path)
    view = SystemView(root)
    testid.record("T", "/var/crash", root=str(root))
    state = root / testid.STATE_DIR.lstrip("/")
    state.mkdir(parents=True, exist_ok=True)
    testid.write_result(str(state), "T", False, "the target LABEL=crash did not appear")
    want = "T: dump NOT created, failed: the target LABEL=crash did not appear"
    assert testid.last_test(view, "/var/crash") == want
    assert testid.last_test(view, None) == want  # the target is not mounted here either
