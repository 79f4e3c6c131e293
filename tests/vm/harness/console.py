"""The serial console: collect it as QEMU writes it, wait for stage markers, split it.

Markers are lines `KDUMPCTL-VM: <stage> <begin|ok|failed rc=N> ...` printed by
the generated /init. Kernel messages may interleave, so a marker is matched
anywhere in a line, and waiting never looks at text before the last match.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

# Only whole lines count: a marker read half-way ("save failed" before " rc=139"
# arrives) must not match early.
MARKER_RE = re.compile(
    rb"KDUMPCTL-VM: (?P<stage>[a-z0-9-]+) (?P<status>begin|ok|failed)(?: rc=(?P<rc>\d+))?"
    rb"(?: [^\n]*)?\n"
)
_BANNER_RE = re.compile(rb"^(?:\[[ \d.]+\] )?(?:Booting Linux on physical CPU|Linux version )",
                        re.M)
_BANNER_OR_CRASH_RE = re.compile(
    _BANNER_RE.pattern + rb"|KDUMPCTL-VM: crash (?:ok|failed)", re.M)


@dataclass(frozen=True)
class Marker:
    stage: str
    status: str  # begin | ok | failed
    rc: int | None
    at: float  # host monotonic time it was seen
    end: int  # console offset just after it


class Console:
    """Reads a QEMU stdout pipe in a thread into memory and a log file."""

    def __init__(self, stream: IO[bytes], log_path: os.PathLike[str] | str) -> None:
        self._stream = stream
        self._log = open(log_path, "wb")
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._eof = False
        self._thread = threading.Thread(target=self._pump, name="console", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        fd = self._stream.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            with self._cond:
                if not chunk:
                    self._eof = True
                    self._cond.notify_all()
                    break
                chunk = chunk.replace(b"\r\n", b"\n")
                self._buf += chunk
                self._log.write(chunk)
                self._log.flush()
                self._cond.notify_all()
        self._log.close()

    @property
    def eof(self) -> bool:
        with self._cond:
            return self._eof

    def text(self) -> bytes:
        with self._cond:
            return bytes(self._buf)

    def tail(self, lines: int = 40) -> str:
        text = self.text().decode(errors="replace")
        return "\n".join(text.rstrip("\n").splitlines()[-lines:])

    def wait_marker(self, start: int, stages: set[str], statuses: set[str],
                    timeout: float) -> Marker | None:
        """First marker after offset `start` for one of `stages` with one of `statuses`.

        Returns None on timeout or when the console ends (QEMU exited) first.
        """
        def accept(m: re.Match[bytes]) -> bool:
            return m["stage"].decode() in stages and m["status"].decode() in statuses

        found = self.wait_regex(start, MARKER_RE, timeout, accept)
        if found is None:
            return None
        m, at = found
        rc = int(m["rc"]) if m["rc"] is not None else None
        return Marker(m["stage"].decode(), m["status"].decode(), rc, at, m.end())

    def wait_banner(self, start: int, timeout: float) -> tuple[re.Match[bytes], float] | None:
        """A kernel boot banner, or a crash-stage marker (the trigger came back)."""
        return self.wait_regex(start, _BANNER_OR_CRASH_RE, timeout)

    def wait_regex(self, start: int, regex: re.Pattern[bytes], timeout: float,
                   accept: Callable[[re.Match[bytes]], bool] | None = None,
                   ) -> tuple[re.Match[bytes], float] | None:
        """First match after offset `start` (that `accept` takes), with the time seen."""
        deadline = time.monotonic() + timeout
        pos = start
        with self._cond:
            while True:
                for m in regex.finditer(self._buf, pos):
                    if accept is None or accept(m):
                        return m, time.monotonic()
                # Resume just before the tail, in case a line is half written.
                pos = max(pos, len(self._buf) - 200)
                if self._eof:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 1.0))

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)


def split_console(text: bytes) -> tuple[bytes, bytes]:
    """(first kernel, capture kernel): split at the first kernel banner after the crash.

    The crash is the first "sysrq triggered crash" (or "Kernel panic"); without one,
    everything belongs to the first kernel.
    """
    crash = text.find(b"sysrq triggered crash")
    if crash < 0:
        crash = text.find(b"Kernel panic")
    if crash < 0:
        return text, b""
    m = _BANNER_RE.search(text, crash)
    if not m:
        return text, b""
    return text[:m.start()], text[m.start():]
