"""One child process measured: wall and CPU seconds, peak RSS, on chosen CPUs and
under a memory limit (a cgroup v1 or v2 memory controller), for the benchmarks."""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

CGROUP_V2 = Path("/sys/fs/cgroup")
CGROUP_V1 = Path("/sys/fs/cgroup/memory")


@dataclass(frozen=True)
class Measurement:
    seconds: float
    cpu_seconds: float
    peak_rss: int
    status: int
    stderr: str


class MemoryCgroup:
    """A fresh memory cgroup with a hard limit; removed on exit."""

    def __init__(self, limit: int) -> None:
        name = f"kdumpctl-bench-{uuid.uuid4().hex[:8]}"
        if (CGROUP_V2 / "cgroup.controllers").exists():
            self.path = CGROUP_V2 / name
            self.path.mkdir()
            (self.path / "memory.max").write_text(str(limit))
            (self.path / "memory.swap.max").write_text("0")
        else:
            self.path = CGROUP_V1 / name
            self.path.mkdir()
            (self.path / "memory.limit_in_bytes").write_text(str(limit))

    def __enter__(self) -> MemoryCgroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.rmdir()

    def join(self) -> None:
        """Move the calling process in (run in the child before exec)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))


def run(argv: list[str], cpus: int | None = None, cgroup: MemoryCgroup | None = None,
        env: dict[str, str] | None = None) -> Measurement:
    """Run argv to completion; `cpus` pins it to the first N CPUs."""
    def setup() -> None:
        if cpus:
            os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cpus])
        if cgroup is not None:
            cgroup.join()

    start = os.times()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=setup, env=env)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    _, status, usage = os.wait4(proc.pid, 0)
    end = os.times()
    return Measurement(end.elapsed - start.elapsed, usage.ru_utime + usage.ru_stime,
                       usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status), err)


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()
