"""What the tests' own servers share (tests/service/sshd.py, tests/vm/nfsd.py): a free
port on 127.0.0.1, waiting until the server listens there, and a small disk that fills."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, name: str,
                   seconds: float = 20) -> None:
    """Until 127.0.0.1:port accepts; the server's log tail in the error otherwise."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"{name} did not start: {tail}") from None
            time.sleep(0.05)


def tmpfs(directory: Path, size: str) -> None:
    """A tmpfs of `size` on `directory` (umount it when done); a skip where the machine
    cannot mount one (a container without CAP_SYS_ADMIN)."""
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
