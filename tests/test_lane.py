"""The VM tier's lane (tests/lane.py): jobs run once, from the last test's back, and a
test runs what the lane has not begun."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from tests.lane import Job, Key, Lane, Spawn, run

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def recording(log: list[tuple[Key, str]], gate: threading.Event | None = None) -> Any:
    def make(key: Key) -> Job:
        def job(spawn: Spawn) -> Key:
            log.append((key, threading.current_thread().name))
            if gate is not None and key == ("c",):
                gate.wait(10)
            run(spawn, [sys.executable, "-c", "pass"], 10)
            return key
        return job
    return make


def test_the_lane_starts_from_the_last_and_the_test_runs_what_it_has_not_begun() -> None:
    log: list[tuple[Key, str]] = []
    gate = threading.Event()
    lane = Lane(recording(log, gate), [("a",), ("b",), ("c",)], nice=lambda key: 0)
    lane.start()
    while not log:
        time.sleep(0.01)
    assert log == [(("c",), "lane")]  # the last first, and held there
    assert lane.take(("a",)) == ("a",)  # not begun: run here
    assert log[-1] == (("a",), threading.current_thread().name)
    gate.set()
    assert lane.take(("c",)) == ("c",)  # begun by the lane: its result
    assert lane.take(("b",)) == ("b",)
    assert lane.take(("d",)) == ("d",)  # never queued: run here
    lane.stop()
    assert sorted(k for k, _ in log) == [("a",), ("b",), ("c",), ("d",)]  # each once
    assert lane.unasked() == []


def test_a_jobs_exception_reaches_the_test_that_takes_it() -> None:
    def make(key: Key) -> Job:
        def job(spawn: Spawn) -> None:
            raise AssertionError(f"{key} failed")
        return job

    lane = Lane(make, [("x",)], nice=lambda key: 0)
    lane.start()
    with pytest.raises(AssertionError, match="failed"):
        lane.take(("x",))
    lane.stop()


def test_stop_interrupts_the_job_under_way_and_names_what_nobody_took() -> None:
    started = threading.Event()
    procs: list[subprocess.Popen[Any]] = []

    def make(key: Key) -> Job:
        def job(spawn: Spawn) -> None:
            proc = spawn(SLEEP)
            procs.append(proc)
            started.set()
            proc.wait()
        return job

    lane = Lane(make, [("slow",)], nice=lambda key: 10)
    lane.start()
    assert started.wait(10)
    t0 = time.monotonic()
    lane.stop()
    assert time.monotonic() - t0 < 30
    assert procs[0].returncode is not None
    assert lane.unasked() == [("slow",)]
