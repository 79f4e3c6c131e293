from __future__ import annotations

from typing import Any

import pytest

from kdumpctl_py.service import notify


def test_status_under_systemd(fake_systemd: dict[str, list[Any]],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/x")
    notify.status("saving")
    assert fake_systemd["notify"] == ["STATUS=saving"]


def test_no_status_elsewhere(fake_systemd: dict[str, list[Any]],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notify.status("saving")
    assert fake_systemd == {"notify": [], "journal": []}


def test_message_ids_are_distinct_128_bit_hex() -> None:
    ids = [notify.DUMP_SAVED, notify.DUMP_FAILED, notify.DUMP_SKIPPED, notify.CAPTURE_LOADED,
           notify.TEST_STARTED]
    assert len(set(ids)) == len(ids) and all(len(i) == 32 and int(i, 16) for i in ids)
