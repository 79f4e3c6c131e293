#!/usr/bin/env python3
"""Every save benchmark in one go: bench/save.py at one and two threads, then bench/scale.py.

    bench/all.py [--repeat 3] [--sizes 4G,64G,256G,1T] [--memory-limit 160M]
                 [--ours-option=--zlib-engine=zlib ...]

Each runs as it would alone (its own lines pass through); the last line is one JSON
object with each one's summary: {"save_threads_1": {...}, "save_threads_2": {...},
"scale": {...}, "load_average": [before, after]}, each holding its "ratio".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def last_json(argv: list[str]) -> dict[str, object]:
    """Run one benchmark, its output shown as it comes; its last line, parsed."""
    print(f"bench: {' '.join(argv)}", flush=True)
    proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    last = ""
    for line in proc.stdout:
        print(line, end="", flush=True)
        last = line
    if proc.wait() != 0:
        sys.exit(f"bench: {argv[0]} failed")
    out: dict[str, object] = json.loads(last)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes", default="4G,64G,256G,1T")
    ap.add_argument("--memory-limit", default="160M")
    ap.add_argument("--ours-option", action="append", default=[], metavar="OPT",
                    help="extra option for kdumpctl-py save in every benchmark (repeatable)")
    args = ap.parse_args()
    repeat = ["--repeat", str(args.repeat), *(f"--ours-option={o}" for o in args.ours_option)]
    before = round(os.getloadavg()[0], 2)
    summary: dict[str, object] = {}
    for threads in (1, 2):
        summary[f"save_threads_{threads}"] = last_json(
            [str(BENCH / "save.py"), "--threads", str(threads), *repeat])
    summary["scale"] = last_json([str(BENCH / "scale.py"), "--sizes", args.sizes,
                                  "--memory-limit", args.memory_limit, *repeat])
    summary["load_average"] = [before, round(os.getloadavg()[0], 2)]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
