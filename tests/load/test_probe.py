"""load/probe.py: the live kernel is probed at most once per boot, never when a probe
would spend a limited load, and views rooted at a snapshot never touch the cache."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from kdumpctl_py.cli import main
from kdumpctl_py.facts.view import SystemView, Uname
from kdumpctl_py.load import extended, probe, syscalls
from tests.builders import synthetic_snapshot

RECORDED = {"extended": "missing", "kexec_file_load": "available", "kexec_load": "available"}


class Kernel:
    """Stands in for raw_syscall: counts the probes and answers `err` to each."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, err: int = errno.EINVAL) -> None:
        self.err = err
        self.calls: list[int] = []
        monkeypatch.setattr(syscalls, "raw_syscall", self)
        monkeypatch.setattr(extended, "raw_syscall", self)

    def __call__(self, nr: int, *args: int | None) -> int:
        self.calls.append(nr)
        return self.err


def live(boot_id: str | None = "b1", release: str | None = None,
         limits: dict[str, int] | None = None) -> SystemView:
    """The live view with the facts the cache is keyed by set, /sys's fd types absent."""
    view = SystemView("/")
    facts: dict[str, object] = {
        "boot_id": boot_id, "kexec_load_limits": limits or {"panic": -1, "reboot": -1},
        "kexec_file_fdset_types": None, "lockdown": "none", "kexec_load_disabled": False}
    if release is not None:
        u = view.uname
        facts["uname"] = Uname(u.sysname, u.nodename, release, u.version, u.machine)
    view.__dict__.update(facts)
    return view


def test_probed_once_per_boot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    kernel = Kernel(monkeypatch)
    cache = str(tmp_path / "run/kdumpctl-py/probe.json")
    first = probe.probe_calls(live(), cache)
    assert first == RECORDED and len(kernel.calls) == 3
    assert probe.probe_calls(live(), cache) == first and len(kernel.calls) == 3
    assert json.loads(Path(cache).read_text())["key"]["boot_id"] == "b1"
    # Another boot, or another kernel release under the same id: probed again.
    assert probe.probe_calls(live(boot_id="b2"), cache) == first and len(kernel.calls) == 6
    assert probe.probe_calls(live(boot_id="b2", release="9.9-other"), cache) == first
    assert len(kernel.calls) == 9


def test_the_view_holds_what_was_handed_in(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    Kernel(monkeypatch)
    view = probe.probed_view(live(), str(tmp_path / "probe.json"))
    view.__dict__["kexec_load_limits"] = {"panic": -1, "reboot": -1}
    assert view.probes == RECORDED


@pytest.mark.parametrize("text", ["{", "[]", '{"key": 1}', json.dumps(
    {"key": None, "probes": RECORDED})], ids=["cut", "list", "bad-key", "other-key"])
def test_a_damaged_or_foreign_cache_is_probed_again(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path, text: str) -> None:
    kernel = Kernel(monkeypatch)
    cache = tmp_path / "probe.json"
    cache.write_text(text)
    assert probe.probe_calls(live(), str(cache)) == RECORDED and len(kernel.calls) == 3
    assert json.loads(cache.read_text())["probes"] == RECORDED


def test_a_cached_answer_outside_the_vocabulary_is_probed_again(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    kernel = Kernel(monkeypatch)
    cache = tmp_path / "probe.json"
    probe.probe_calls(live(), str(cache))
    data = json.loads(cache.read_text())
    data["probes"]["kexec_load"] = "maybe"
    cache.write_text(json.dumps(data))
    assert probe.probe_calls(live(), str(cache)) == RECORDED and len(kernel.calls) == 6


def test_unknown_answers_and_unknown_boots_are_not_cached(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    Kernel(monkeypatch, err=errno.EIO)
    cache = tmp_path / "probe.json"
    answers = probe.probe_calls(live(), str(cache))
    assert answers is not None and set(answers.values()) == {"unknown"}
    assert not cache.exists()
    Kernel(monkeypatch)
    assert probe.probe_calls(live(boot_id=None), str(cache)) == RECORDED
    assert not cache.exists()


def test_a_limited_kernel_is_not_probed(monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    """kexec_load_permitted() counts a probe as a load: with a limit, no call is made and
    the view judges from the kernel configuration and /sys."""
    kernel = Kernel(monkeypatch)
    cache = tmp_path / "probe.json"
    view = live(limits={"panic": 8, "reboot": 4})
    assert probe.probe_calls(view, str(cache)) is None
    assert probe.probed_view(view, str(cache)) is view
    assert set(view.probes) == {"extended", "kexec_file_load", "kexec_load"}
    assert kernel.calls == [] and not cache.exists()


def test_snapshot_views_never_read_or_write_the_cache(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path,
                                                      probe_cache: Path) -> None:
    kernel = Kernel(monkeypatch)
    root = synthetic_snapshot(tmp_path / "snap")
    view = SystemView(root)
    recorded = view.probes
    probe_cache.parent.mkdir(parents=True)
    planted = json.dumps({"key": {"boot_id": None}, "probes": {"kexec_load": "missing"}})
    probe_cache.write_text(planted)
    assert probe.probe_calls(view) is None and probe.probed_view(view) is view
    assert main(["--sysroot", str(root), "status", "--json"]) in (0, 3)
    assert main(["--sysroot", str(root), "start", "--dry-run"]) in (0, 1, 2)
    assert SystemView(root).probes == recorded
    assert probe_cache.read_text() == planted and kernel.calls == []
