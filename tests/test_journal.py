"""Journal entries and warnings: structured under systemd, one stderr line elsewhere."""

from __future__ import annotations

from typing import Any

import pytest

from kdumpctl_py import journal
from kdumpctl_py.service import notify


def test_under_systemd(fake_systemd: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:1")
    journal.event("dump saved", notify.DUMP_SAVED, dump_path="/var/crash/x/vmcore")
    msg, fields = fake_systemd["journal"][0]
    assert msg == "dump saved" and fields["MESSAGE_ID"] == notify.DUMP_SAVED
    assert fields["DUMP_PATH"] == "/var/crash/x/vmcore" and fields["PRIORITY"] == "6"
    assert capsys.readouterr().err == ""


def test_elsewhere_plain_stderr(fake_systemd: dict[str, list[Any]],
                                monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    journal.event("dump saved", notify.DUMP_SAVED, dump_path="/x")
    journal.event("quiet", echo=False)
    assert fake_systemd == {"notify": [], "journal": []}
    assert capsys.readouterr().err == "kdumpctl-py: dump saved\n"


def test_a_warning_is_one_line_or_a_warning_entry(fake_systemd: dict[str, list[Any]],
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    journal.warn("the disk is nearly full")
    assert capsys.readouterr().err == "kdumpctl-py: warning: the disk is nearly full\n"
    monkeypatch.setenv("JOURNAL_STREAM", "8:1")
    journal.warn("the disk is nearly full")
    assert capsys.readouterr().err == ""
    ((msg, fields),) = fake_systemd["journal"]
    assert msg == "warning: the disk is nearly full" and fields["PRIORITY"] == "4"
    assert fields["SYSLOG_IDENTIFIER"] == "kdumpctl-py"


def test_no_warning_is_printed_directly() -> None:
    """Every `kdumpctl-py: warning:` goes through journal.warn, so the journal gets them all."""
    from pathlib import Path

    root = Path(journal.__file__).parent
    direct = [f"{p.relative_to(root)}:{n}" for p in sorted(root.rglob("*.py"))
              for n, line in enumerate(p.read_text().splitlines(), 1)
              if "print(" in line and "warning: " in line]
    assert direct == []
