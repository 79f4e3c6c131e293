"""What systemd and the journal hear: sd_notify STATUS= and structured journal entries.

systemd-python is optional and imported inside the functions: without it, or
outside a service, messages go to stderr as plain lines.
"""

from __future__ import annotations

import os
import sys

# MESSAGE_ID= values, so `journalctl MESSAGE_ID=...` finds every such event.
DUMP_SAVED = "20d3aca9586c4e8a84720044d953b868"
DUMP_FAILED = "bf1e34acaeff4db1a5111c7a74f0a8d8"
DUMP_SKIPPED = "385207b5dd7549faa13acb3e09c43ee5"
CAPTURE_LOADED = "4542ace01cb74b218d818c410d59ee25"
TEST_STARTED = "1f3632b53a0f49eab96c8d29bd184b2c"
DUMP_REPORT = "c46fb451ece84c60adb7c03dd2547a66"


def status(text: str) -> None:
    """STATUS= for `systemctl status`; nothing outside a service."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return
    try:
        from systemd import daemon  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return
    daemon.notify(f"STATUS={text}")


def event(message: str, message_id: str | None = None, priority: int = 6, *,
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
