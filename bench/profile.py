#!/usr/bin/env python3
"""Where each tool's CPU time goes when saving the same vmcore: perf, by category.

    bench/profile.py [--vmcore PATH] [--dump-level 31] [--compress zlib] [--repeat 3]
                     [--freq 1999] [--libz DIR]

kdumpctl-py (this checkout's) and makedumpfile save the same ELF vmcore at the
same level, one after the other, each pinned to one CPU under `perf record
--call-graph dwarf` (apt-get install linux-perf). Every sample goes to one
category by its call chain (a chain DWARF cannot unwind, by its leaf): zlib,
split into LZ77 matching, Huffman trees and block output, adler32, and stream
set-up and teardown (deflateInit's malloc and CLEAR_HASH memset, deflateEnd);
the kernel (reads, writes, page faults, memory mapping, process start and exit,
other); the Python interpreter; numpy; libc called from elsewhere; the
makedumpfile binary itself. Our start-up (an interpreter importing what a save
imports) is measured apart with `perf stat`, as are page faults.

Debian's libz has no symbols: its time is one figure unless `--libz DIR` names
a build of the same zlib with them, which both tools then load through
LD_LIBRARY_PATH (the same source and flags make the same bytes at the same
speed: Debian's source package built with `dpkg-buildflags` CFLAGS plus -O3
-DUNALIGNED_OK, as its debian/rules does). Each category's figure is the median
over `--repeat` runs; the last line is one JSON object: {"ours": {"cpu_seconds":
..., "page_faults": ..., "startup_cpu_seconds": ..., "categories": {...}},
"makedumpfile": {...}, "input": {...}}.
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
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from save import default_vmcore, mdf_argv, ours_argv, ours_env  # noqa: E402

LZ77 = {"deflate_fast", "deflate_slow", "deflate_stored", "longest_match", "fill_window",
        "read_buf", "deflate"}
HUFFMAN = {"build_tree", "pqdownheap", "gen_bitlen", "gen_codes", "bi_reverse", "scan_tree",
           "send_tree", "build_bl_tree", "send_all_trees", "compress_block", "_tr_flush_block",
           "_tr_stored_block", "_tr_align", "_tr_init", "init_block", "bi_flush",
           "bi_windup", "_tr_flush_bits", "flush_pending", "detect_data_type"}
SETUP = {"deflateInit_", "deflateInit2_", "deflateReset", "deflateResetKeep", "lm_init",
         "deflateEnd", "zcalloc", "zcfree", "deflateStateCheck", "compress2", "compress",
         "deflateBound", "compressBound"}
LIBC = ("__mem", "mem", "__GI_", "_int_", "malloc", "free", "cfree")
KERNEL = [  # the first of these found in a kernel call chain names the sample's category
    ("kernel: page faults", ("asm_exc_page_fault", "exc_page_fault", "handle_mm_fault")),
    ("kernel: reads", ("ksys_pread64", "ksys_read", "vfs_read", "do_preadv", "vfs_readv",
                       "__x64_sys_pread64", "__x64_sys_read", "__x64_sys_preadv")),
    ("kernel: writes and fsync", ("ksys_pwrite64", "ksys_write", "vfs_write", "do_pwritev",
                                  "vfs_fsync_range", "__x64_sys_fsync",
                                  "__x64_sys_pwrite64", "__x64_sys_write")),
    ("kernel: mmap, munmap, brk", ("__vm_munmap", "do_mmap", "__do_sys_brk", "do_vmi_munmap",
                                  "__x64_sys_munmap", "__x64_sys_mmap", "__x64_sys_brk")),
    ("kernel: process start and exit", ("do_execveat_common", "do_exit", "exit_mmap",
                                        "load_elf_binary", "do_group_exit")),
    ("kernel: opening files", ("do_sys_openat2", "do_filp_open", "__x64_sys_newfstatat",
                               "vfs_statx", "__x64_sys_getdents64")),
]


def category(frames: list[tuple[str, str]]) -> str:
    """One sample's category from its call chain, leaf first: (symbol, dso) per frame."""
    sym, dso = frames[0]
    if dso == "[kernel.kallsyms]":
        names = {s for s, d in frames if d == "[kernel.kallsyms]"}
        return next((name for name, marks in KERNEL if names.intersection(marks)),
                    "kernel: other")
    for s, d in frames:
        if "libz.so" in d:
            return _zlib(s, dso)
        if "libc.so" not in d and "ld-linux" not in d:
            break
    if "ld-linux" in dso:
        return "dynamic loader"
    if "libc.so" in dso:
        caller = next((d for _, d in frames if "libc.so" not in d), "")
        return ("libc from makedumpfile (memcpy, memset)" if "makedumpfile" in caller else
                "libc from Python or numpy" if caller else
                "libc, caller not unwound (memset, memcpy, malloc)")
    if "/numpy/" in dso or "/numpy.libs/" in dso:
        return "numpy"
    if os.path.basename(dso).startswith("python3"):
        return "Python: interpreter"
    if "makedumpfile" in dso:
        return "makedumpfile itself"
    return f"other: {os.path.basename(dso)}"


def _zlib(sym: str, dso: str) -> str:
    """A sample in zlib (or in libc under it: `dso` is the leaf's) by what zlib was doing."""
    if sym.startswith("adler32"):
        return "zlib: adler32"
    if sym in LZ77:
        return "zlib: LZ77 (deflate_fast, longest_match, fill_window)"
    if sym in HUFFMAN:
        return "zlib: Huffman trees and block output"
    if sym in SETUP or "libc.so" in dso:
        return "zlib: stream set-up and teardown (deflateInit/End, CLEAR_HASH, malloc)"
    if sym.startswith(("[", "0x")):
        return "zlib: no symbols (Debian's libz)"
    return f"zlib: {sym}"


def profile(argv: list[str], env: dict[str, str], freq: int, tmp: Path) -> dict[str, float]:
    """CPU seconds by category for one run of argv on one CPU."""
    data = tmp / "perf.data"
    subprocess.run(["perf", "record", "-q", "-F", str(freq), "--call-graph", "dwarf,16384",
                    "-o", str(data), "taskset", "-c", "0", *argv], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    script = subprocess.run(["perf", "script", "-i", str(data), "-F", "comm,period,ip,sym,dso"],
                            capture_output=True, text=True, check=True).stdout
    data.unlink()
    out: dict[str, float] = defaultdict(float)
    for block in script.split("\n\n"):
        lines = block.strip().splitlines()
        if len(lines) < 2 or lines[0].split()[0] in ("taskset", "perf"):
            continue  # the launcher's and perf's own samples
        frames: list[tuple[str, str]] = []
        inlined = 0  # frames inlined into the next real one: they take its dso
        for line in lines[1:]:
            sym, _, dso = line.strip().partition(" ")[2].rpartition(" (")
            dso = dso.rstrip(")")
            if dso == "inlined" and sym.startswith(LIBC):  # perf says so of libc's memcpy
                dso = "libc.so.6"
            if dso == "inlined":
                inlined += 1
                frames.append((sym, dso))
                continue
            frames[len(frames) - inlined:] = [(s, dso) for s, _ in frames[len(frames) - inlined:]]
            inlined = 0
            frames.append((sym.split("+")[0], dso))
        out[category(frames)] += int(lines[0].split()[-1]) / 1e9
    return dict(out)


def faults(argv: list[str], env: dict[str, str]) -> int:
    res = subprocess.run(["perf", "stat", "-x,", "-e", "page-faults", "taskset", "-c", "0",
                          *argv], env=env, capture_output=True, text=True, check=True)
    line = next(ln for ln in res.stderr.splitlines() if "page-faults" in ln)
    return int(line.split(",")[0])


def startup(env: dict[str, str]) -> float:
    """CPU seconds of an interpreter that imports what a save imports, and exits."""
    res = subprocess.run(["perf", "stat", "-x,", "-e", "task-clock", "taskset", "-c", "0",
                          sys.executable, "-c", STARTUP], env=env, capture_output=True,
                         text=True, check=True)
    line = next(ln for ln in res.stderr.splitlines() if "task-clock" in ln)
    return float(line.split(",")[0]) / 1e3


STARTUP = ("import kdumpctl_py.cli, kdumpctl_py.capture.save, kdumpctl_py.capture.dmesg, "
           "kdumpctl_py.capture.filter")


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vmcore", type=Path)
    ap.add_argument("--dump-level", type=int, default=31)
    ap.add_argument("--compress", default="zlib")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--freq", type=int, default=1999)
    ap.add_argument("--libz", type=Path, help="a directory with a libz.so.1 that has symbols")
    args = ap.parse_args()
    if shutil.which("perf") is None:
        sys.exit("bench: perf is not installed (apt-get install linux-perf)")
    vmcore = args.vmcore or default_vmcore()
    env = ours_env()
    if args.libz:
        env["LD_LIBRARY_PATH"] = str(args.libz.resolve())
    runs: dict[str, list[dict[str, float]]] = {"ours": [], "makedumpfile": []}
    nfaults: dict[str, list[int]] = {"ours": [], "makedumpfile": []}
    starts: list[float] = []
    load = [round(os.getloadavg()[0], 2)]
    with tempfile.TemporaryDirectory(prefix="kdumpctl-profile-") as name:
        tmp = Path(name)
        for _ in range(args.repeat):
            for tool in runs:
                out = tmp / "out"
                argv = (ours_argv(vmcore, out, args.dump_level, args.compress, 1)
                        if tool == "ours" else
                        mdf_argv(vmcore, out, args.dump_level, args.compress))
                runs[tool].append(profile(argv, env, args.freq, tmp))
                remove(out)
                nfaults[tool].append(faults(argv, env))
                remove(out)
            starts.append(startup(env))
            load.append(round(os.getloadavg()[0], 2))
    summary: dict[str, object] = {}
    for tool, rows in runs.items():
        names = sorted({k for r in rows for k in r})
        cats = {k: round(statistics.median(r.get(k, 0.0) for r in rows), 3) for k in names}
        total = [sum(r.values()) for r in rows]
        summary[tool] = {"cpu_seconds": round(statistics.median(total), 3),
                         "cpu_range": [round(min(total), 3), round(max(total), 3)],
                         "page_faults": int(statistics.median(nfaults[tool])),
                         "categories": dict(sorted(cats.items(), key=lambda kv: -kv[1]))}
        if tool == "ours":
            summary[tool]["startup_cpu_seconds"] = round(  # type: ignore[index]
                statistics.median(starts), 3)
        print(f"{tool}: {summary[tool]['cpu_seconds']:.3f} CPU s "  # type: ignore[index]
              f"({min(total):.3f}-{max(total):.3f}), "
              f"{int(statistics.median(nfaults[tool]))} page faults")
        for k, v in summary[tool]["categories"].items():  # type: ignore[index]
            if v >= 0.001:
                print(f"  {v:7.3f}  {k}")
        if tool == "ours":
            print(f"  (of which start-up, interpreter and imports: {statistics.median(starts):.3f}"
                  " CPU s, measured apart)")
    summary["input"] = {"vmcore": str(vmcore), "dump_level": args.dump_level,
                        "compress": args.compress, "threads": 1, "freq": args.freq,
                        "libz": str(args.libz) if args.libz else "system",
                        "load_average": load}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
