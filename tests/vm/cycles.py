"""Running crash cycles for the VM tier: one run per set of arguments per session."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CRASH_CYCLE = Path(__file__).resolve().with_name("crash-cycle")
PANIC = "sysrq triggered crash"
CRASHER = "kdumpcrasher"
CYCLE_TIMEOUT_S = 40 * 60  # a cold cache downloads ~350 MB per arch, most of it -dbg
ISSUE_7 = ("issue 7: no capture-kernel loader works on Debian 12 arm64 without "
           "kdumpctl-py start; Debian's kexec-tools 2.0.25 fails there (tests/vm/README.md)")


@dataclass(frozen=True)
class Cycle:
    """One finished run of crash-cycle and what it left behind."""

    out: Path
    exit_status: int
    result: dict[str, Any]

    @property
    def report(self) -> dict[str, Any]:
        path = self.out / "report.json"
        assert path.exists(), self.explain()
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def explain(self) -> str:
        log = (self.out / "crash-cycle.log").read_text(errors="replace")
        return (f"crash-cycle exited {self.exit_status}; failed stage "
                f"{self.result.get('failed_stage')}: {self.result.get('failure')}\n"
                + "\n".join(log.splitlines()[-60:]))

    def guest(self, stage: str) -> dict[str, Any]:
        info: dict[str, Any] = self.result.get("guest_results", {}).get(stage, {})
        return info


def make_cycles(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Cycle]:
    """Run a cycle for a set of arguments once per session; later calls reuse it."""
    done: dict[tuple[str, ...], Cycle] = {}

    def get(*args: str) -> Cycle:
        if args not in done:
            out = tmp_path_factory.mktemp("cycle-" + "-".join(
                re.sub(r"[^A-Za-z0-9_]+", "", a) for a in args if not a.startswith("-")))
            with open(out / "crash-cycle.log", "wb") as log:
                rc = subprocess.run(
                    [sys.executable, str(CRASH_CYCLE), "--out", str(out), *args],
                    stdout=log, stderr=subprocess.STDOUT, timeout=CYCLE_TIMEOUT_S,
                    check=False,
                ).returncode
            result_path = out / "result.json"
            result = json.loads(result_path.read_text()) if result_path.exists() else {}
            done[args] = Cycle(out, rc, result)
        return done[args]

    return get


def backtrace_functions(report: dict[str, Any]) -> list[str]:
    """Function names of the crashed thread's frames, from either analyser's schema."""
    names = []
    for frame in report.get("backtrace", []):
        for key in ("function", "symbol"):
            if frame.get(key):
                names.append(frame[key])
    return names


def assert_good_dump(cycle: Cycle) -> None:
    """The dump was saved, read back and shows the crash the guest was told to make."""
    assert cycle.exit_status == 0, cycle.explain()
    report = cycle.report
    panic = report.get("panic_message") or report.get("panic_log_line") or ""
    assert PANIC in panic, f"panic message {panic!r}"
    assert "sysrq_handle_crash" in backtrace_functions(report), report.get("backtrace")
    assert report["crashed_thread"]["comm"] == CRASHER
    capture_log = (cycle.out / "console-capture.log").read_bytes()
    assert b"Linux version" in capture_log and b"KDUMPCTL-VM: save ok" in capture_log
