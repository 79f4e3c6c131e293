"""The wall and CPU seconds of a build's steps, kept beside what they built: a cache
entry says what it costs on a fresh machine, and the host's load when it was made."""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Costs:
    def __init__(self) -> None:
        self.steps: dict[str, dict[str, float]] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the block; its CPU is its children's (QEMU, proot and what they run)."""
        t0, r0 = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
        load0 = os.getloadavg()[0]
        yield
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.steps[name] = {"wall_s": round(time.monotonic() - t0, 1),
                            "user_s": round(r1.ru_utime - r0.ru_utime, 1),
                            "sys_s": round(r1.ru_stime - r0.ru_stime, 1),
                            "load_start": round(load0, 1),
                            "load_end": round(os.getloadavg()[0], 1)}

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.steps, indent=2) + "\n")
