"""What systemd hears: sd_notify STATUS=, and the MESSAGE_IDs of journal entries
(`kdumpctl_py.journal.event` sends them).

systemd-python is optional and imported inside the function: without it, or
outside a service, there is no STATUS=.
"""

from __future__ import annotations

import os

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
        from systemd import daemon
    except ImportError:
        return
    daemon.notify(f"STATUS={text}")
