"""What a run leaves in --out: timings.json and result.json, written even when it fails."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class Timings:
    """Seconds per named step, host steps and guest stages apart; thread-safe."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.host: dict[str, float] = {}
        self.guest: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                self.host[name] = round(self.host.get(name, 0.0) + time.monotonic() - t0, 2)

    def stage(self, name: str, seconds: float) -> None:
        with self._lock:
            self.guest[name] = round(seconds, 2)

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "host": dict(self.host),
                "guest_stages": dict(self.guest),
                "total": round(time.monotonic() - self.start, 2),
            }


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    tmp.rename(path)


def guest_results(results: Path) -> dict[str, dict[str, Any]]:
    """Per-stage rc and stderr tail from the disk's /results/<kernel>/ directories."""
    out: dict[str, dict[str, Any]] = {}
    for rc_file in sorted(results.glob("*/*.rc")):
        stage = rc_file.stem
        try:
            rc: int | None = int(rc_file.read_text().strip())
        except ValueError:
            rc = None
        err = rc_file.with_suffix(".err")
        stderr = err.read_text(errors="replace") if err.exists() else ""
        out[stage] = {
            "kernel": rc_file.parent.name,
            "rc": rc,
            "stderr_tail": "\n".join(stderr.strip().splitlines()[-15:]),
        }
    return out
