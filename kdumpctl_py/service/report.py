"""The next boot's report: each dump not analysed yet, analysed and told to the journal.

A dump without an analysis.json has not been reported: after a crash that is the
dump saved before this boot (and, the first time, any older one). Each gets its
analysis.json beside it, which also marks it reported, and one structured journal
message (MESSAGE_ID=DUMP_REPORT, DUMP_PATH, PANIC, SIGNATURE, KERNEL_RELEASE,
BUILD_ID) that monitoring can match on. An NFS target's export is mounted for the
report; an ssh target's dumps are not on this machine, and the server's
`kdumpctl-py triage` analyses them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kdumpctl_py.triage.found import Dump


@dataclass(frozen=True)
class Message:
    text: str
    fields: dict[str, str]
    priority: int


def message(dump: Dump, analysis: dict[str, Any] | None, error: str | None,
            path: str | None = None) -> Message:
    """The journal entry for one dump: what crashed, and its signature; `path` names the
    dump where its own path would not (an NFS export's, not this boot's mount point)."""
    path = path or dump.vmcore
    a = analysis or {}
    sig = a.get("signature") or {}
    panic = a.get("panic_message") or "no panic message found"
    release = a.get("release") or "unknown kernel"
    where = f"{dump.host or a.get('nodename') or 'this machine'} at {dump.date}Z"
    if analysis is None:
        text = f"dump {path} ({where}) could not be analysed: {error}"
    else:
        frames = " < ".join(sig.get("frames") or [])
        text = (f"crash on {where}, kernel {release}: {panic}"
                + (f" (signature {sig['id']}: {frames})" if sig.get("id") else "")
                + f"; dump {path}")
    fields = {"DUMP_PATH": path, "PANIC": a.get("panic_message") or "",
              "SIGNATURE": sig.get("id") or "", "KERNEL_RELEASE": a.get("release") or "",
              "BUILD_ID": a.get("build_id") or "",
              "DUMP_COMPLETE": "1" if dump.complete else "0"}
    return Message(text, fields, 4 if analysis is not None else 3)


def unreported(dumps: Sequence[Dump]) -> list[Dump]:
    """The dumps without an analysis.json, oldest first (the order they happened). One
    whose analysis is only stale (older signature rules) was reported already: `triage`
    and `dumps` bring it up to date, the journal does not hear of it twice."""
    from kdumpctl_py.analyse.stored import NAME

    return [d for d in reversed(dumps) if not os.path.exists(os.path.join(d.directory, NAME))]
