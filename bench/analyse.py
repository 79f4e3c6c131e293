#!/usr/bin/env python3
"""Time `kdumpctl-py analyse` against crash in batch mode on the same dump and vmlinux.

    bench/analyse.py VMCORE --vmlinux VMLINUX [--crash crash]

Each side runs once, from command to finished report: `kdumpctl-py analyse
VMCORE --vmlinux VMLINUX` (text report), and `crash -s VMLINUX VMCORE -i CMDS`
with CMDS running `sys`, `bt` and `log`, then `quit`. Before timing, both files
are read once so that neither side pays for a cold page cache that the other
then enjoys. The last line is one JSON object:

    {"ours": {"seconds": s}, "crash": {"seconds": s}, "ratio": crash/ours}
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRASH_COMMANDS = "sys\nbt\nlog\nquit\n"


def warm(path: str) -> None:
    with open(path, "rb") as f:
        while f.read(16 << 20):
            pass


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


Run = subprocess.CompletedProcess[str]


def timed(argv: list[str], **kwargs: object) -> tuple[float, float, Run]:
    """Wall-clock seconds (what is compared), CPU seconds (less sensitive to a busy machine)."""
    cpu, start = _cpu(), time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       check=False, **kwargs)  # type: ignore[call-overload]
    return time.perf_counter() - start, _cpu() - cpu, r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("vmcore")
    ap.add_argument("--vmlinux", required=True)
    ap.add_argument("--crash", default="crash", help="crash binary (default: crash on PATH)")
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter with kdumpctl-py and drgn (default: this one)")
    args = ap.parse_args()
    if shutil.which(args.crash) is None:
        print(f"bench: {args.crash} is not installed", file=sys.stderr)
        return 1
    for path in (args.vmcore, args.vmlinux):
        warm(path)

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ours_s, ours_cpu, ours = timed([args.python, "-m", "kdumpctl_py", "analyse", args.vmcore,
                          "--vmlinux", args.vmlinux], env=env)
    if ours.returncode != 0:
        print(f"bench: kdumpctl-py analyse failed: {ours.stderr.strip()}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        cmds = Path(tmp) / "commands"
        cmds.write_text(CRASH_COMMANDS)
        crash_s, crash_cpu, crash = timed(
            [args.crash, "-s", args.vmlinux, args.vmcore, "-i", str(cmds)], cwd=tmp)
    if crash.returncode != 0:
        print(f"bench: crash failed ({crash.returncode}): {crash.stderr.strip()[-500:]}",
              file=sys.stderr)
        return 1

    print(f"kdumpctl-py analyse: {ours_s:7.2f} s ({ours_cpu:.2f} s CPU), "
          f"{len(ours.stdout.splitlines())} lines")
    print(f"crash sys, bt, log:  {crash_s:7.2f} s ({crash_cpu:.2f} s CPU), "
          f"{len(crash.stdout.splitlines())} lines")
    print(json.dumps({"ours": {"seconds": round(ours_s, 3)},
                      "crash": {"seconds": round(crash_s, 3)},
                      "ratio": round(crash_s / ours_s, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
