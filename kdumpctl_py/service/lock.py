"""One state-changing kdumpctl-py command at a time, as Fedora's kdumpctl does.

load, start, stop, restart, reload, unload, reset-crashkernel, shrink, test and
capture take an exclusive flock(2) on /run/kdumpctl-py.lock (KDUMPCTL_LOCK
names another file); a second one says it is waiting, then waits. The lock goes
with the process, however it ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator

LOCK_PATH = "/run/kdumpctl-py.lock"
ENV_LOCK = "KDUMPCTL_LOCK"
STATE_COMMANDS = frozenset({"load", "start", "stop", "restart", "reload", "unload",
                            "reset-crashkernel", "shrink", "test", "capture",
                            "initramfs"})


def lock_path() -> str:
    return os.environ.get(ENV_LOCK) or LOCK_PATH


@contextlib.contextmanager
def state_lock(command: str, path: str | None = None) -> Iterator[None]:
    """Hold the lock for the block; say so on stderr if another command has it."""
    path = path or lock_path()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            who = f" ({holder})" if holder else ""
            print(f"kdumpctl-py: waiting for another kdumpctl-py command{who} to finish",
                  file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {command}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
