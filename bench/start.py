#!/usr/bin/env python3
"""How long `kdumpctl-py start --dry-run` takes, Python's start-up included.

    bench/start.py [--fixture debian12-arm64] [--repeat 11]

start --dry-run does everything but the system call: read the facts, choose the
method, read and unpack the kernel, and for kexec_load build the elfcorehdr,
the capture DTB, the purgatory and the segment list. This machine has no crash
region, so the run uses a fixture snapshot of a real guest with its kernel (the
crash-cycle cache's Debian kernel when present, else a 30 MiB stand-in Image)
and a 24 MiB initrd under --sysroot. The last line is {"seconds": median}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests/fixtures/snapshots"
VM_CACHE = Path.home() / ".cache/kdumpctl-py/vm/pkgs"


def stand_in_image(size: int) -> bytes:
    head = struct.pack("<IIQQQQQQ4sI", 0x5A4D, 0, 0, size, 0b0010, 0, 0, 0, b"ARM\x64", 0)
    return head + bytes(size - len(head))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixture", default="debian12-arm64")
    ap.add_argument("--repeat", type=int, default=11)
    args = ap.parse_args()
    exe = shutil.which("kdumpctl-py") or str(ROOT / ".venv/bin/kdumpctl-py")
    with tempfile.TemporaryDirectory(prefix="kdumpctl-bench-start-") as tmp:
        root = Path(tmp) / "root"
        shutil.copytree(FIXTURES / args.fixture, root)
        meta = json.loads((root / "kdumpctl-snapshot.json").read_text())
        release = meta["uname"]["release"]
        (root / "boot").mkdir(exist_ok=True)
        real = sorted(VM_CACHE.glob(f"*/linux-image-{release}_*/boot/vmlinuz-{release}"))
        kernel = real[0].read_bytes() if real else stand_in_image(30 << 20)
        (root / f"boot/vmlinuz-{release}").write_bytes(kernel)
        (root / f"boot/initrd.img-{release}").write_bytes(bytes(24 << 20))
        argv = [exe, "--sysroot", str(root), "start", "--dry-run"]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)  # warm the page cache
        times = []
        for _ in range(args.repeat):
            t = time.monotonic()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
            times.append(time.monotonic() - t)
    median = statistics.median(times)
    print(f"start --dry-run on {args.fixture} ({'Debian kernel' if real else 'stand-in'}): "
          f"median {median:.3f} s, min {min(times):.3f} s, max {max(times):.3f} s",
          file=sys.stderr)
    print(json.dumps({"seconds": round(median, 3)}))


if __name__ == "__main__":
    main()
