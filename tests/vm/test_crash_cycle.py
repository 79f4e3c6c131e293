"""VM tier: whole crash cycles under QEMU (TCG), through tests/vm/crash-cycle.

Run with `pytest --vm tests/vm`. Each cycle runs once per session (session-scoped
fixtures); a warm cache makes the whole tier take a few minutes, a fresh machine
adds the Debian downloads (see tests/vm/README.md for measured times).
"""

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


@pytest.fixture(scope="session")
def cycles(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Cycle]:
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


@pytest.mark.vm
def test_x86_64_cycle(cycles: Callable[..., Cycle]) -> None:
    """x86_64 bookworm with the project wherever it has the subcommand."""
    assert_good_dump(cycles("--arch", "x86_64"))


@pytest.mark.vm
def test_x86_64_reference_cycle(cycles: Callable[..., Cycle]) -> None:
    """x86_64 bookworm with the incumbent only (kexec-tools, copy, drgn): checks the harness."""
    c = cycles("--arch", "x86_64", "--loader", "kexec-tools", "--impl", "save=copy",
               "--impl", "analyse=drgn-script")
    assert_good_dump(c)
    assert c.result["loader"] == "kexec-tools"


@pytest.mark.vm
def test_arm64_cycle(cycles: Callable[..., Cycle]) -> None:
    """arm64 bookworm with whichever loader works today.

    kdumpctl-py start when the wheel has it; without it the harness falls back to
    kexec-tools, which must then fail the way the README records, and the test is
    an expected failure (issue 7).
    """
    c = cycles("--arch", "arm64")
    if c.result.get("loader") == "kexec-tools":
        assert_kexec_tools_kaslr_outcome(c)
        pytest.xfail(ISSUE_7)
    assert_good_dump(c)


def assert_kexec_tools_kaslr_outcome(c: Cycle) -> None:
    """Debian 12 kexec-tools with KASLR: loads, but the vmcore claims ~2**64 bytes."""
    assert c.exit_status == 3, c.explain()
    assert c.result["failed_stage"] == "save", c.explain()
    assert "Can't get the symbol of _text" in c.guest("load").get("stderr_tail", "")
    if c.result["implementations"]["save"] == "copy":  # it lists /proc/vmcore first
        listing = (c.out / "results" / "capture" / "save.out").read_text()
        m = re.search(r"\s(\d+)\s+\w+\s+\d+\s+[\d:]+\s+/proc/vmcore", listing)
        assert m and int(m.group(1)) > 2**60, listing


@pytest.mark.vm
def test_arm64_kexec_tools_with_kaslr_writes_an_unreadable_vmcore(
        cycles: Callable[..., Cycle]) -> None:
    """The incumbent's recorded outcome on arm64 (README): a bogus kernel-text PT_LOAD."""
    assert_kexec_tools_kaslr_outcome(cycles("--arch", "arm64", "--loader", "kexec-tools",
                                            "--impl", "save=copy"))


@pytest.mark.vm
def test_arm64_kexec_tools_with_nokaslr_cannot_load(cycles: Callable[..., Cycle]) -> None:
    """The incumbent's recorded outcome on arm64 with nokaslr: the load itself fails."""
    c = cycles("--arch", "arm64", "--loader", "kexec-tools", "--append", "nokaslr")
    assert c.exit_status == 3, c.explain()
    assert c.result["failed_stage"] == "load", c.explain()
    assert "setup_2nd_dtb failed" in c.guest("load")["stderr_tail"]
