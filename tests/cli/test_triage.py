from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdumpctl_py.cli import main
from tests.analyse import panics
from tests.builders import panic_vmcore


def test_groups_two_bugs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for rel, text in (("a-2026-11-30-08:00:00", panics.BOOKWORM_X86_64),
                      ("b-2026-12-01-08:00:00", panics.TRIXIE_ARM64),
                      ("c-2026-12-01-09:00:00", panics.OOPS_X86_64)):
        (tmp_path / rel).mkdir()
        panic_vmcore(tmp_path / rel / "vmcore", text)
    assert main(["triage", "--json", "--jobs", "2", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dumps"] == 3 and out["unsigned"] == []
    sysrq, oops = out["groups"]
    assert (sysrq["count"], sysrq["hosts"], oops["count"]) == (2, ["a", "b"], 1)
    assert sysrq["frames"] == ["sysrq_handle_crash", "__handle_sysrq", "write_sysrq_trigger"]
    assert (sysrq["first_seen"], sysrq["last_seen"]) == ("2026-11-30T08:00:00",
                                                         "2026-12-01T08:00:00")
    assert main(["triage", "--since", "2026-12-01", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("2 signatures in 2 dumps\n")
    assert f"{oops['signature']}  1 dump  oops: kernel NULL pointer dereference" in text


def test_bad_usage(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["triage", "--since", "yesterday", str(tmp_path)]) == 2
    assert "is not YYYY-MM-DD" in capsys.readouterr().err
    assert main(["triage", "--jobs", "0", str(tmp_path)]) == 2
    assert main(["triage", str(tmp_path / "nowhere")]) == 2
    assert "nowhere does not exist" in capsys.readouterr().err
    assert main(["triage", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "0 signatures in 0 dumps\n"


def test_a_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    import os
    import pty
    import subprocess
    import sys

    (tmp_path / "a-2026-11-30-08:00:00").mkdir()
    panic_vmcore(tmp_path / "a-2026-11-30-08:00:00" / "vmcore", panics.BOOKWORM_X86_64)
    leader, follower = pty.openpty()
    r = subprocess.run([sys.executable, "-m", "kdumpctl_py", "triage", str(tmp_path)],
                       stdout=subprocess.PIPE, stderr=follower, check=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": os.getcwd()})
    os.close(follower)
    shown = os.read(leader, 4096).decode()
    os.close(leader)
    assert shown.endswith("] 1/1\r\n") and "\ranalysing dumps [" in shown, shown
    assert r.stdout.decode().startswith("1 signature in 1 dump\n")
    r = subprocess.run([sys.executable, "-m", "kdumpctl_py", "triage", str(tmp_path)],
                       capture_output=True, check=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert r.stderr == b""  # not a terminal (and nothing left to analyse)
