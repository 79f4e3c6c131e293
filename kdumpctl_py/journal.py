"""What the journal hears, and the one way to warn.

A message becomes a journal entry with structured fields when this process's
stderr is the journal (JOURNAL_STREAM, as systemd sets it for a service) and
systemd-python is installed; else it is one `kdumpctl-py: ...` line on stderr.
systemd-python is imported inside `event`, so nothing here costs an import
elsewhere (the capture kernel's saver uses it too).
"""

from __future__ import annotations

import os
import sys

PRIORITY_WARNING = 4
PRIORITY_INFO = 6


def event(message: str, message_id: str | None = None, priority: int = PRIORITY_INFO, *,
          echo: bool = True, **fields: str) -> bool:
    """One journal entry with structured fields (DUMP_PATH=...) when the journal is
    this process's stderr and systemd-python is there; else one stderr line (none
    with echo=False, for callers that print the message themselves). True when the
    journal got it."""
    if os.environ.get("JOURNAL_STREAM"):
        try:
            from systemd import journal
        except ImportError:
            pass
        else:
            extra = {k.upper(): v for k, v in fields.items()}
            if message_id:
                extra["MESSAGE_ID"] = message_id
            journal.send(message, PRIORITY=str(priority), SYSLOG_IDENTIFIER="kdumpctl-py",
                         **extra)
            return True
    if echo:
        print(f"kdumpctl-py: {message}", file=sys.stderr, flush=True)
    return False


def warn(message: str) -> None:
    """`kdumpctl-py: warning: MESSAGE`, at the journal's warning priority under systemd."""
    event(f"warning: {message}", priority=PRIORITY_WARNING)
