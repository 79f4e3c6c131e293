"""The VM tier's second lane: the slow work the collected tests will ask for (crash
cycles, installed systems, kernel builds), done ahead of them on the CPU the tests
leave idle.

A TCG guest keeps about one host CPU of two busy (an arm64 cycle: 71 CPU s in 67 s),
so a session that runs its guests one at a time leaves the other CPU mostly idle. The
lane runs one job at a time in a background thread, starting from the job of the last
test and walking back; the tests walk forward. A test takes a job: a finished one's
result at once, a running one's when it ends, and a job the lane has not begun the test
runs itself. So the two ends meet wherever the work divides, with no estimate of what
each job costs, and no job runs twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Future
from typing import Any

Key = tuple[Hashable, ...]
# Starts a job's processes: subprocess.Popen's arguments, returns the process.
Spawn = Callable[..., "subprocess.Popen[Any]"]
Job = Callable[[Spawn], Any]


class Lane:
    """`make(key)` gives the job for a key; `ahead` the keys the tests will take, in
    their order; the lane starts from its end. `nice(key)` is the lane's niceness for
    that job's processes (a kernel build yields to the tests' guests; a guest does not,
    so that neither lane's guest crawls)."""

    def __init__(self, make: Callable[[Key], Job], ahead: Iterable[Key],
                 nice: Callable[[Key], int]) -> None:
        self._make, self._nice = make, nice
        self._queue = list(dict.fromkeys(ahead))
        self._jobs: dict[Key, Future[Any]] = {}
        self._ran_ahead: set[Key] = set()
        self._taken: set[Key] = set()
        self._lock = threading.Lock()
        self._stopped = False
        self._proc: subprocess.Popen[Any] | None = None
        self._thread = threading.Thread(target=self._walk, name="lane", daemon=True)

    def start(self) -> None:
        if self._queue:
            self._thread.start()

    def take(self, key: Key) -> Any:
        """The job's result (or its exception), running it here if the lane has not."""
        with self._lock:
            self._taken.add(key)
            job = self._jobs.get(key)
            mine = job is None
            if job is None:
                job = self._jobs[key] = Future()
                if key in self._queue:
                    self._queue.remove(key)
        if mine:
            in_lane = threading.current_thread() is self._thread  # a job taking another
            self._run(key, job, self._spawn(key) if in_lane else subprocess.Popen)
        return job.result()

    def unasked(self) -> list[Key]:
        """Jobs the lane ran that no test took: a test's mark names a job it does not use."""
        with self._lock:
            return sorted(self._ran_ahead - self._taken, key=repr)

    def stop(self) -> None:
        """Leave the queue and interrupt the job under way (it leaves no result behind:
        each job keeps only what it finished)."""
        with self._lock:
            self._stopped = True
            proc = self._proc
        if proc is not None:
            interrupt(proc)
        if self._thread.is_alive():
            self._thread.join()

    def _walk(self) -> None:
        while True:
            with self._lock:
                if self._stopped or not self._queue:
                    return
                key = self._queue.pop()
                job = self._jobs[key] = Future()
                self._ran_ahead.add(key)
            self._run(key, job, self._spawn(key))

    def _run(self, key: Key, job: Future[Any], spawn: Spawn) -> None:
        try:
            job.set_result(self._make(key)(spawn))
        except BaseException as e:  # the test that takes it sees it, as if it had run it
            job.set_exception(e)

    def _spawn(self, key: Key) -> Spawn:
        def spawn(argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
            with self._lock:
                if self._stopped:
                    raise RuntimeError("the session ended before this job started")
                self._proc = subprocess.Popen(["nice", "-n", str(self._nice(key)), *argv],
                                              start_new_session=True, **kwargs)
                return self._proc

        return spawn


def run(spawn: Spawn, argv: list[str], timeout: float, **kwargs: Any
        ) -> subprocess.CompletedProcess[Any]:
    """subprocess.run through `spawn`: the process killed at the timeout."""
    with spawn(argv, **kwargs) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def interrupt(proc: subprocess.Popen[Any]) -> None:
    """Stop a background process group, if still running: SIGINT, which lets it clean
    up, then SIGKILL after a minute."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
