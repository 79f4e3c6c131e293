"""`kdumpctl-py test` bookkeeping, after Fedora's kdumpctl test.

The first kernel records a pending id in /var/lib/kdumpctl-py/test.json and
puts `kdumpctl_py.test_id=ID` on the capture kernel's command line; the
capture kernel writes `kdumpctl-py-test-ID.status` into the dump's directory
(or into the dump directory itself when no dump was made); after the reboot
`status` reads the record and looks for that file.
"""

from __future__ import annotations

import datetime
import json
import os
from typing import TYPE_CHECKING

from kdumpctl_py.facts.cmdline import param_values
from kdumpctl_py.fileio import replace_atomically

if TYPE_CHECKING:
    from kdumpctl_py.facts.view import SystemView

STATE_DIR = "/var/lib/kdumpctl-py"
RECORD = f"{STATE_DIR}/test.json"
PARAM = "kdumpctl_py.test_id"


def new_id(now: datetime.datetime | None = None) -> str:
    return (now or datetime.datetime.now(datetime.UTC)).strftime("%Y%m%d-%H%M%S")


def status_name(test_id: str) -> str:
    return f"kdumpctl-py-test-{test_id}.status"


def from_cmdline(cmdline: str) -> str | None:
    values = param_values(cmdline, PARAM)
    return values[-1] if values and values[-1] else None


def record(test_id: str, dump_dir: str, root: str = "/") -> str:
    """Write the pending record; returns its path."""
    path = os.path.join(root, RECORD.lstrip("/"))
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    data = {"id": test_id, "dump_dir": dump_dir,
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    replace_atomically(path, (json.dumps(data, indent=2) + "\n").encode(), backup=False)
    return path


def forget(test_id: str, root: str = "/") -> None:
    path = os.path.join(root, RECORD.lstrip("/"))
    try:
        with open(path) as f:
            if json.load(f).get("id") != test_id:
                return
    except (OSError, ValueError):
        return
    os.unlink(path)


def write_result(directory: str, test_id: str, ok: bool, detail: str) -> str:
    """The capture kernel's answer: `saved DIR` or `failed: WHY`, one line."""
    path = os.path.join(directory, status_name(test_id))
    text = f"saved {detail}\n" if ok else f"failed: {detail}\n"
    replace_atomically(path, text.encode(), backup=False)
    return path


def last_test(view: SystemView, dump_dir: str | None) -> str | None:
    """One line for `status`: the pending test's id and what became of it."""
    raw = view.data(RECORD)
    if raw is None:
        return None
    try:
        rec = json.loads(raw)
        test_id = str(rec["id"])
    except (ValueError, KeyError, TypeError):
        return f"unreadable record {RECORD}"
    where = dump_dir or str(rec.get("dump_dir") or "")
    name = status_name(test_id)
    # The capture kernel leaves it on the root file system when the target failed it.
    candidates = [f"{STATE_DIR}/{name}"]
    if dump_dir is None:
        if view.text(candidates[0]) is None:
            return (f"{test_id}: the dump target is not mounted here; cannot look for the "
                    "result")
    else:
        candidates += [f"{where}/{name}"] + [f"{where}/{d}/{name}" for d in view.listdir(where)]
    for path in candidates:
        text = view.text(path)
        if text is not None:
            line = text.strip().splitlines()[0] if text.strip() else "empty status file"
            if line.startswith("saved "):
                return f"{test_id}: dump created, {line[6:]}"
            return f"{test_id}: dump NOT created, {line}"
    return (f"{test_id}: no result in {where} (started {rec.get('started', '?')}; "
            "the crash has not happened yet, or the capture kernel wrote nothing)")
