from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdumpctl_py.cli import main
from kdumpctl_py.service.lock import STATE_COMMANDS, state_lock

HOLD = """
import sys, time
from kdumpctl_py.service.lock import state_lock
with state_lock("holder", sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_second_command_waits_and_says_so(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    lock = tmp_path / "lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), "1.5"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    t0 = time.monotonic()
    with state_lock("second", str(lock)):
        waited = time.monotonic() - t0
        assert lock.read_text().startswith("pid ") and "second" in lock.read_text()
    holder.wait()
    assert waited > 0.5
    err = capsys.readouterr().err
    assert err.startswith("kdumpctl-py: waiting for another kdumpctl-py command (pid ")
    assert "holder" in err


def test_free_lock_is_silent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with state_lock("x", str(tmp_path / "lock")):
        pass
    assert capsys.readouterr().err == ""


def test_state_commands_take_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert {"load", "start", "stop", "restart", "reload", "unload", "reset-crashkernel",
            "shrink", "test", "capture", "initramfs"} == STATE_COMMANDS
    lock = tmp_path / "lock"
    monkeypatch.setenv("KDUMPCTL_LOCK", str(lock))
    seen: list[str] = []
    import kdumpctl_py.cli.load as load_mod

    def run_unload(args: object) -> int:
        seen.append(lock.read_text())
        return 0

    monkeypatch.setattr(load_mod, "run_unload", run_unload)
    assert main(["unload"]) == 0
    assert seen == [f"pid {__import__('os').getpid()}: unload\n"]
