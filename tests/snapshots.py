"""Hand-made snapshot directories for tests that need a specific machine."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from kdumpctl_py.facts.view import META


def make_snapshot(root: Path, machine: str, files: Mapping[str, str | bytes],
                  release: str = "6.1.0-test", **meta: object) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / META).write_text(json.dumps(
        {"uname": {"machine": machine, "release": release}, **meta}))
    for rel, content in files.items():
        path = root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)
    return root
