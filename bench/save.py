#!/usr/bin/env python3
"""kdumpctl-py save against makedumpfile on the same vmcore, side by side in one run.

    bench/save.py [--vmcore PATH] [--dump-level 31] [--compress zlib] [--repeat 3]

Both tools read the same ELF vmcore and write a kdump-compressed file with the
same dump level and per-page compression (makedumpfile: -c zlib, -l lzo; Debian's
build has no zstd), alternately, `--repeat` times. Each run is a child process,
timed by wall clock, with its peak RSS from wait4(). Without --vmcore the input is
a crash-cycle vmcore of a 2 GiB x86_64 guest, made once with tests/vm/crash-cycle
and kept in ~/.cache/kdumpctl-py/bench. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("KDUMPCTL_BENCH_CACHE", Path.home() / ".cache/kdumpctl-py/bench"))
MDF_FLAG = {"zlib": "-c", "lzo": "-l", "zstd": "-z", "none": ""}


def run(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one child process."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench: {argv[0]} failed: {err.strip()[-500:]}")
    return seconds, usage.ru_maxrss * 1024


def default_vmcore() -> Path:
    """A 2 GiB x86_64 crash-cycle vmcore (ELF, unfiltered), made once and cached."""
    target = CACHE / "vmcore-x86_64-2g"
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        subprocess.run([sys.executable, str(ROOT / "tests/vm/crash-cycle"), "--arch", "x86_64",
                        "--mem", "2048", "--crashkernel", "384M", "--impl", "save=copy",
                        "--out", tmp], check=True)
        found = sorted(Path(tmp).glob("dumps/*/vmcore"))
        if not found:
            sys.exit("bench: the crash cycle saved no vmcore")
        shutil.move(str(found[0]), target)
    return target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vmcore", type=Path)
    ap.add_argument("--dump-level", type=int, default=31)
    ap.add_argument("--compress", choices=sorted(MDF_FLAG), default="zlib")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    vmcore = args.vmcore or default_vmcore()
    ours_bin = shutil.which("kdumpctl-py") or str(ROOT / ".venv/bin/kdumpctl-py")
    mdf = shutil.which("makedumpfile")
    if mdf is None:
        sys.exit("bench: makedumpfile is not installed (apt-get install makedumpfile)")
    results: dict[str, list[tuple[float, int, int]]] = {"ours": [], "makedumpfile": []}
    with tempfile.TemporaryDirectory(prefix="kdumpctl-bench-") as tmp:
        for i in range(args.repeat):
            out = Path(tmp) / f"ours{i}"
            secs, rss = run([ours_bin, "save", "--vmcore", str(vmcore), "--target", str(out),
                             "--dump-level", str(args.dump_level), "--compress", args.compress,
                             "--no-progress"])
            (dump,) = out.glob("*/vmcore")
            results["ours"].append((secs, dump.stat().st_size, rss))
            shutil.rmtree(out)
            mout = Path(tmp) / f"mdf{i}"
            argv = [mdf, *filter(None, [MDF_FLAG[args.compress]]), "-d", str(args.dump_level),
                    str(vmcore), str(mout)]
            secs, rss = run(argv)
            results["makedumpfile"].append((secs, mout.stat().st_size, rss))
            mout.unlink()
    summary = {}
    for name, rows in results.items():
        summary[name] = {"seconds": round(statistics.median(r[0] for r in rows), 3),
                         "bytes_out": rows[0][1], "peak_rss": max(r[2] for r in rows)}
        print(f"{name:>13}: {summary[name]['seconds']:7.2f} s  {rows[0][1] / 1e6:8.1f} MB  "
              f"peak RSS {summary[name]['peak_rss'] / 1e6:6.1f} MB  (runs: "
              + ", ".join(f"{r[0]:.2f}" for r in rows) + ")")
    summary["input"] = {"vmcore": str(vmcore), "bytes": vmcore.stat().st_size,
                        "dump_level": args.dump_level, "compress": args.compress}
    summary["ratio"] = {
        "speed": round(summary["makedumpfile"]["seconds"] / summary["ours"]["seconds"], 3),
        "size": round(summary["ours"]["bytes_out"] / summary["makedumpfile"]["bytes_out"], 4),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
