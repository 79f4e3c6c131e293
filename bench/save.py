#!/usr/bin/env python3
"""kdumpctl-py save against makedumpfile on the same vmcore, side by side in one run.

    bench/save.py [--vmcore PATH] [--threads 1] [--dump-level 31] [--compress zlib] [--repeat 3]
                  [--ours-option=--zlib-engine=zlib ...]

Both tools read the same ELF vmcore and write a kdump-compressed file with the
same dump level and per-page compression (makedumpfile: -c zlib, -l lzo; Debian's
build has no zstd), alternately (the one going first changing each time),
`--repeat` times, each pinned to the first `--threads` CPUs. kdumpctl-py (this
checkout's, run by this Python) runs with `--threads N` (1 by default, as in the
capture kernel); makedumpfile at its best on N CPUs: single-threaded, and at N > 1
also with `--num-threads N`, the faster of the two counting (Debian's static
build sometimes dies threaded: "libgcc_s.so.1 must be installed for pthread_exit
to work"). Each run is a child process, timed by wall clock, with its CPU time
and peak RSS from wait4(); makedumpfile's is followed by `sync -f` of its file, as
kdump runs it (synced): ours fsyncs its dump before it exits. Runs start from a
page cache dropped and warmed by one untimed run of each tool (fresh_page_cache),
the state a machine is in after boot; what earlier runs left dirty is written back
and the vmcore's data read into the page cache before each run (cache_data).
Without --vmcore the input is a crash-cycle vmcore of a 2 GiB x86_64 guest, made
once with tests/vm/crash-cycle and kept in ~/.cache/kdumpctl-py/bench. The last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.measure import Measurement, load_average, run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("KDUMPCTL_BENCH_CACHE", Path.home() / ".cache/kdumpctl-py/bench"))
MDF_FLAG = {"zlib": "-c", "lzo": "-l", "zstd": "-z", "none": ""}


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


def ours_argv(vmcore: Path, out: Path, level: int, compress: str, threads: int,
              extra: list[str] | None = None) -> list[str]:
    return [sys.executable, "-m", "kdumpctl_py", "save", "--vmcore", str(vmcore), "--target",
            str(out), "--dump-level", str(level), "--compress", compress, "--threads",
            str(threads), "--no-progress", *(extra or [])]


def ours_env() -> dict[str, str]:
    """kdumpctl-py from this checkout, whatever is installed, from its bytecode compiled
    first (as pip installs it), not compiled again by every run."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "kdumpctl_py")],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    return env


def mdf_argv(vmcore: Path, out: Path, level: int, compress: str,
             threads: int = 1, extra: list[str] | None = None) -> list[str]:
    mdf = shutil.which("makedumpfile")
    if mdf is None:
        sys.exit("bench: makedumpfile is not installed (apt-get install makedumpfile)")
    return [mdf, *filter(None, [MDF_FLAG[compress]]), "-d", str(level),
            *(["--num-threads", str(threads)] if threads > 1 else []), *(extra or []),
            str(vmcore), str(out)]


def synced(argv: list[str], out: Path) -> list[str]:
    """makedumpfile's argv as kdump runs it, then `sync -f OUT` (Fedora's dump_fs, kdump-utils'
    localfs): a dump is saved once it is on the disk. Ours fsyncs its file and directories
    before it exits; makedumpfile leaves that to its caller, and timed alone it was spared
    writing 11 MB to the disk that ours paid for (15-80 ms, of 0.34-0.45 s, at 4 GiB on
    2026-12-05)."""
    return ["sh", "-c", 'out=$1; shift; "$@" && sync -f "$out"', "sh", str(out), *argv]


def fresh_page_cache(runs: list[tuple[list[str], dict[str, str] | None]]) -> None:
    """Drop the clean page cache, then make each run once, untimed.

    A process's peak RSS counts the pages of the executables and libraries it maps,
    and how many a fault maps depends on how the file came into the page cache:
    Linux 6.18 keeps a file that pip has just written in large folios and maps them
    whole, so right after setup.sh ours peaked 6 MB higher (42.9 MB against 37.0 on
    the 2 GiB vmcore) and started faster than after a reboot, while makedumpfile,
    from dpkg, did not change (36.7 MB). Both tools are measured as a machine runs
    them after boot, their files read in by their first run. The page cache keeps what
    a process maps, so the bench itself must not have numpy loaded yet: on 2026-12-03,
    right after setup.sh, bench/scale.py with the generator imported read ours at 41.2
    MB against makedumpfile's 36.9 at 4 GiB, and at 34.3 once it was not."""
    assert not {"numpy", "isal"} & sys.modules.keys(), "the bench maps ours' libraries"
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError as e:
        print(f"bench: warning: the page cache was not dropped ({e.strerror}): peak RSS "
              "depends on how each tool's libraries entered it", file=sys.stderr)
    for argv, env in runs:
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)


def cache_data(path: Path) -> None:
    """Before each tool's run: write back what earlier runs left dirty, then read the
    file's data (not its holes) into the page cache, charged to this process's cgroup and
    not to the tools' limited ones.

    The sync: makedumpfile never fsyncs its output (kdump's scripts sync after it), ours
    does, and an ext4 journal commit writes back every dirty data block with it
    (data=ordered), so our fsync of a directory waited on makedumpfile's previous output:
    0.15 s each for two at 4 GiB, 2026-12-05, where 15 ms was usual. No capture kernel has
    another writer. The read: /proc/vmcore is memory, and a tool that found the data
    evicted by the previous one would wait on the disk (makedumpfile's time at 64 GiB was
    bimodal, 3.2 s or 6.0 s, by what was left)."""
    os.sync()
    buf = bytearray(1 << 20)
    with open(path, "rb", buffering=0) as f:
        fd, pos = f.fileno(), 0
        while True:
            try:
                pos = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:  # no data past pos
                    return
                raise
            hole = os.lseek(fd, pos, os.SEEK_HOLE)
            while pos < hole:
                pos += os.preadv(fd, [memoryview(buf)[:hole - pos]], pos) or hole - pos


def checked(m: Measurement, what: str) -> Measurement:
    if m.status != 0:
        sys.exit(f"bench: {what} failed: {m.stderr.strip()[-500:]}")
    return m


class Summary(TypedDict):
    seconds: float  # median wall
    range: list[float]
    cpu_seconds: float  # median user + sys
    bytes_out: int
    peak_rss: int
    # each run's [wall, CPU] seconds and MB read from disk: a run far off the median whose
    # CPU is not tells the host's stall from the tool's own work, and the disk's MB say
    # whether that stall was the vmcore's data, evicted from the page cache, read again
    runs: list[list[float]]


# A run that read more than this from disk may have waited on it for seconds (this host's
# disk reads 10-40 MB/s); here 4 GiB to 256 GiB runs read nothing, 1 TiB ones 41-253 MB
# in about their usual time and 2.4 GB in six times it
DISK_READ_WARN = 64 << 20


def summarise(name: str, rows: list[tuple[Measurement, int]]) -> Summary:
    """Median and range of the runs, each run's figures, and a warning for each run that
    read the vmcore from disk: on 2026-12-03 a 1 TiB save that read 2.4 GB took 303 s
    (61 s of CPU) where those finding the page cache warm took 41-53."""
    secs = [m.seconds for m, _ in rows]
    for i, (m, _) in enumerate(rows):
        if m.disk_read > DISK_READ_WARN:
            print(f"bench: warning: {name}, run {i + 1}: {m.disk_read / 1e6:.0f} MB read from "
                  f"disk, not the page cache: {m.seconds:.2f} s, {m.cpu_seconds:.2f} s of them "
                  "CPU", file=sys.stderr, flush=True)
    return {"seconds": round(statistics.median(secs), 3),
            "range": [round(min(secs), 3), round(max(secs), 3)],
            "cpu_seconds": round(statistics.median(m.cpu_seconds for m, _ in rows), 3),
            "bytes_out": rows[0][1], "peak_rss": max(m.peak_rss for m, _ in rows),
            "runs": [[round(m.seconds, 3), round(m.cpu_seconds, 3), round(m.disk_read / 1e6, 1)]
                     for m, _ in rows]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vmcore", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dump-level", type=int, default=31)
    ap.add_argument("--compress", choices=sorted(MDF_FLAG), default="zlib")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ours-option", action="append", default=[], metavar="OPT",
                    help="extra option for kdumpctl-py save (repeatable)")
    args = ap.parse_args()
    vmcore = args.vmcore or default_vmcore()
    n, level, comp = args.threads, args.dump_level, args.compress
    results: dict[str, list[tuple[Measurement, int]]] = {"ours": [], "makedumpfile": []}
    threaded_failures = 0
    load = [load_average()[0]]
    env = ours_env()
    with tempfile.TemporaryDirectory(prefix="kdumpctl-bench-") as tmp:
        fresh_page_cache([(ours_argv(vmcore, Path(tmp) / "warm", level, comp, n,
                                     args.ours_option), env),
                          (mdf_argv(vmcore, Path(tmp) / "warm.mdf", level, comp), None)])
        shutil.rmtree(Path(tmp) / "warm", ignore_errors=True)
        Path(tmp, "warm.mdf").unlink(missing_ok=True)
        for i in range(args.repeat):
            # the one going first changes each time: what the order does (a CPU woken by
            # the first run, say) falls on both alike
            for tool in ("ours", "makedumpfile")[::1 if i % 2 == 0 else -1]:
                if tool == "ours":
                    out = Path(tmp) / f"ours{i}"
                    cache_data(vmcore)
                    m = checked(run(ours_argv(vmcore, out, level, comp, n, args.ours_option),
                                    cpus=n, env=env),
                                "kdumpctl-py")
                    (dump,) = out.glob("*/vmcore")
                    results["ours"].append((m, dump.stat().st_size))
                    shutil.rmtree(out)
                    continue
                best: tuple[Measurement, int] | None = None
                for t in sorted({1, n}):
                    mout = Path(tmp) / f"mdf{i}-{t}"
                    cache_data(vmcore)
                    m = run(synced(mdf_argv(vmcore, mout, level, comp, t), mout), cpus=n)
                    if m.status != 0 and t > 1:
                        threaded_failures += 1
                        continue
                    checked(m, "makedumpfile")
                    if best is None or m.seconds < best[0].seconds:
                        best = (m, mout.stat().st_size)
                    mout.unlink()
                assert best is not None
                results["makedumpfile"].append(best)
            load.append(load_average()[0])
    summary: dict[str, object] = {}
    for name, rows in results.items():
        s = summarise(name, rows)
        summary[name] = s
        print(f"{name:>13}: {s['seconds']:7.2f} s (cpu {s['cpu_seconds']:.2f} s)  "
              f"{rows[0][1] / 1e6:8.1f} MB  peak RSS {max(m.peak_rss for m, _ in rows) / 1e6:6.1f}"
              " MB  (runs: " + ", ".join(f"{m.seconds:.2f}" for m, _ in rows) + ")")
    ours, mdf = summary["ours"], summary["makedumpfile"]
    assert isinstance(ours, dict) and isinstance(mdf, dict)
    summary["input"] = {"vmcore": str(vmcore), "bytes": vmcore.stat().st_size,
                        "dump_level": level, "compress": comp, "threads": n,
                        "ours_options": args.ours_option,
                        "makedumpfile_threaded_failures": threaded_failures,
                        "load_average": [round(x, 2) for x in load]}
    summary["ratio"] = {"speed": round(mdf["seconds"] / ours["seconds"], 3),
                        "size": round(ours["bytes_out"] / mdf["bytes_out"], 4),
                        "rss": round(ours["peak_rss"] / mdf["peak_rss"], 3)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
