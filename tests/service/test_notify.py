from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from kdumpctl_py.service import notify


@pytest.fixture
def fake_systemd(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    sent: dict[str, list[Any]] = {"notify": [], "journal": []}
    pkg = types.ModuleType("systemd")
    daemon = types.ModuleType("systemd.daemon")
    journal = types.ModuleType("systemd.journal")
    daemon.notify = lambda text: sent["notify"].append(text)  # type: ignore[attr-defined]
    journal.send = lambda msg, **f: sent["journal"].append((msg, f))  # type: ignore[attr-defined]
    pkg.daemon, pkg.journal = daemon, journal  # type: ignore[attr-defined]
    for name, mod in (("systemd", pkg), ("systemd.daemon", daemon),
                      ("systemd.journal", journal)):
        monkeypatch.setitem(sys.modules, name, mod)
    return sent


def test_under_systemd(fake_systemd: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/x")
    monkeypatch.setenv("JOURNAL_STREAM", "8:1")
    notify.status("saving")
    notify.event("dump saved", notify.DUMP_SAVED, dump_path="/var/crash/x/vmcore")
    assert fake_systemd["notify"] == ["STATUS=saving"]
    msg, fields = fake_systemd["journal"][0]
    assert msg == "dump saved" and fields["MESSAGE_ID"] == notify.DUMP_SAVED
    assert fields["DUMP_PATH"] == "/var/crash/x/vmcore" and fields["PRIORITY"] == "6"
    assert capsys.readouterr().err == ""


def test_elsewhere_plain_stderr(fake_systemd: dict[str, list[Any]],
                                monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    notify.status("saving")
    notify.event("dump saved", notify.DUMP_SAVED, dump_path="/x")
    notify.event("quiet", echo=False)
    assert fake_systemd == {"notify": [], "journal": []}
    assert capsys.readouterr().err == "kdumpctl-py: dump saved\n"


def test_message_ids_are_distinct_128_bit_hex() -> None:
    ids = [notify.DUMP_SAVED, notify.DUMP_FAILED, notify.DUMP_SKIPPED, notify.CAPTURE_LOADED,
           notify.TEST_STARTED]
    assert len(set(ids)) == len(ids) and all(len(i) == 32 and int(i, 16) for i in ids)
