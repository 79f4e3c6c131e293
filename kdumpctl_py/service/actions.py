"""The capture kernel's side effects: programs, mounts, and the final or failure action.

Everything runs as an argument vector, never through a shell. `System` does
it for real; tests hand the capture run a recording stand-in.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from kdumpctl_py.errors import KdumpError
from kdumpctl_py.journal import warn

HOOK_TIMEOUT_S = 600
DEVICE_WAIT_S = 60


def action_argv(action: str, systemd: bool) -> list[str]:
    """The command for reboot|halt|poweroff|shell. With systemd, `-f`: no unit is
    stopped, file systems are unmounted or made read-only, then the machine stops."""
    if action == "shell":
        return (["systemctl", "--no-block", "isolate", "emergency.target"] if systemd
                else ["/bin/sh"])
    if action not in ("reboot", "halt", "poweroff"):
        raise KdumpError(f"unknown action {action!r}")
    return ["systemctl", action, "-f"] if systemd else [action, "-f"]


class System:
    """The real machine."""

    def run(self, argv: list[str]) -> int:
        try:
            return subprocess.run(argv, stdin=subprocess.DEVNULL, timeout=HOOK_TIMEOUT_S,
                                  check=False).returncode
        except FileNotFoundError:
            warn(f"{argv[0]}: not found")
            return 127
        except OSError as e:  # not executable, and the like: a hook must not stop the run
            warn(f"{argv[0]}: {e.strerror or e}")
            return 126
        except subprocess.TimeoutExpired:
            warn(f"{argv[0]}: still running after {HOOK_TIMEOUT_S} s, killed")
            return 124

    def wait_for(self, path: str, seconds: float = DEVICE_WAIT_S) -> bool:
        deadline = time.monotonic() + seconds
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True

    def mount(self, fstype: str, device: str, options: str, mountpoint: str) -> None:
        """Mount the target; a failure carries mount's own last line (found by review: an
        NFS export's "access denied by server" reached the journal apart from the error,
        and save.json had only the exit status)."""
        os.makedirs(mountpoint, mode=0o700, exist_ok=True)
        argv = ["mount", "-t", fstype, *(["-o", options] if options else []), device,
                mountpoint]
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, errors="replace", timeout=HOOK_TIMEOUT_S,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise KdumpError(f"{' '.join(argv)} failed: {e}") from None
        if done.returncode != 0:
            said = (done.stderr.strip().splitlines() or [""])[-1]
            raise KdumpError(f"{' '.join(argv)} failed (exit status {done.returncode})"
                             + (f": {said}" if said else ""))

    def umount(self, mountpoint: str) -> None:
        self.run(["umount", mountpoint])

    def act(self, action: str) -> None:
        os.sync()
        argv = action_argv(action, os.path.isdir("/run/systemd/system"))
        print(f"kdumpctl-py: {action}: {' '.join(argv)}", file=sys.stderr, flush=True)
        self.run(argv)
