"""One child process measured: wall and CPU seconds, peak RSS, on chosen CPUs and under
a memory limit (a cgroup v1 or v2 memory controller), for the benchmarks and tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
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
    disk_read: int  # bytes read from block devices (wait4's ru_inblock): page-cache misses
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


# Peak RSS counts the memory a process had before exec() too, so a child forked from a
# big parent (one that just wrote a vmcore) would report the parent's size: the child is
# started by this small launcher, which sets CPUs and cgroup, forks it from its own few
# MB and writes what wait4() says of it to a file, with the child's own wall time: the
# launcher's start (a Python's, 25-30 ms) is neither tool's.
LAUNCHER = """
import os, sys, time
out, cpus, cgroup = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if cpus:
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cpus])
if cgroup:
    with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
start = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[4], sys.argv[4:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.monotonic() - start
with open(out, "w") as f:
    f.write(f"{usage.ru_utime + usage.ru_stime} {usage.ru_maxrss * 1024} {seconds} "
            f"{usage.ru_inblock * 512}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run(argv: list[str], cpus: int | None = None, cgroup: MemoryCgroup | None = None,
        env: dict[str, str] | None = None) -> Measurement:
    """Run argv to completion; `cpus` pins it to the first N CPUs."""
    with tempfile.NamedTemporaryFile(prefix="kdumpctl-measure-") as out:
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", LAUNCHER, out.name, str(cpus or 0),
                               str(cgroup.path) if cgroup else "", *argv], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seconds = time.monotonic() - start  # the launcher's too, if it wrote nothing
        fields = Path(out.name).read_text().split()
    cpu, peak, seconds, disk_read = ((float(fields[0]), int(fields[1]), float(fields[2]),
                                      int(fields[3])) if fields else (0.0, 0, seconds, 0))
    return Measurement(seconds, cpu, peak, disk_read, proc.returncode,
                       proc.stderr.decode(errors="replace"))


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()
