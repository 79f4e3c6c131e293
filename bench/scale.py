#!/usr/bin/env python3
"""kdumpctl-py save against makedumpfile on synthetic vmcores from 4 GiB to 1 TiB of RAM.

    bench/scale.py [--sizes 4G,64G,256G,1T] [--memory-limit 160M] [--repeat 3]

Each size is a sparse x86_64 ELF vmcore made by tests/synthetic_vmcore.py (a
realistic mix of struct pages: free buddy blocks of every order, page cache,
anonymous memory, slab, hugetlb, zero and random pages), written once and kept
in ~/.cache/kdumpctl-py/bench (1 TiB takes 9.5 GB of disk). For each size,
`--repeat` times, both tools save it at -d 31 with zlib, one after the other
(the one going first changing each time),
each pinned to one CPU and in a fresh memory cgroup limited to `--memory-limit`
(makedumpfile followed by `sync -f` of its file, as kdump runs it: ours fsyncs its dump)
(page cache included; ours is given the same figure as its --memory-limit),
each finding the file's data in the page cache, read there from outside the
cgroups just before (cache_data), after a page cache dropped and warmed by one
untimed run of each tool (bench/save.py's fresh_page_cache) and one more of
each on every size before its timed ones (warm_up): seconds
(wall), CPU seconds and peak RSS from wait4(), and the bytes written. Our 1st
and 2nd bitmaps must equal makedumpfile's at every size (that keeps the
generator honest); whether the whole files are identical is reported too. The
last line is one JSON object:
{"sizes": {"4G": {"ours": {...}, "makedumpfile": {...}}, ...},
 "ratio": {"speed_min": ..., "rss_max": ...}} with speed = makedumpfile's seconds
/ ours and rss = our peak RSS / makedumpfile's, the worst over the sizes. Each size
also has "paired": the median and range of makedumpfile's seconds over ours within each
repetition, whose two runs are seconds apart: a noisy host (the same CPU-bound loop 0.34
to 0.54 s from one run to the next, on the machine of 2026-12-02) moves both alike there.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from save import (  # noqa: E402
    CACHE,
    ROOT,
    cache_data,
    checked,
    fresh_page_cache,
    mdf_argv,
    ours_argv,
    ours_env,
    summarise,
    synced,
)

from kdumpctl_py.units import parse_size  # noqa: E402
from tests.measure import Measurement, MemoryCgroup, load_average, run  # noqa: E402

# 2: struct pages with a real kernel's zone bits in their flags; 3: and what else a running
# kernel leaves in them (lru lists, index, _refcount: synthetic_vmcore._in_use); 4: and
# compound tails their own lru.prev
GENERATOR_VERSION = 4


def synthetic(size: str) -> Path:
    path = CACHE / f"synthetic-x86_64-{size}-v{GENERATOR_VERSION}"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        print(f"bench: writing the {size} vmcore {path}", file=sys.stderr, flush=True)
        # in a child: this process must not map numpy before fresh_page_cache drops it
        subprocess.run([sys.executable, "-c", "import sys; from tests.synthetic_vmcore "
                        "import write_vmcore; write_vmcore(sys.argv[1], int(sys.argv[2]))",
                        str(tmp), str(parse_size(size))], cwd=ROOT, check=True)
        tmp.rename(path)
    return path


def bitmaps(path: Path) -> bytes:
    """Both bitmaps of a kdump-compressed file, as stored."""
    # imported here, after fresh_page_cache: the module maps numpy
    from kdumpctl_py.capture.kdumpfile import DISK_DUMP_HEADER

    with open(path, "rb") as f:
        head = f.read(DISK_DUMP_HEADER.size)
        fields = DISK_DUMP_HEADER.unpack(head)
        block, sub_blocks, bm_blocks = fields[6], fields[7], fields[8]
        f.seek((1 + sub_blocks) * block)
        return f.read(bm_blocks * block)


def one(vmcore: Path, tmp: Path, limit: int, extra: list[str], ours_first: bool) -> tuple[
        tuple[Measurement, int], tuple[Measurement, int], bool, bool]:
    ours_dir, mdf_out = tmp / "ours", tmp / "mdf"
    argvs = {"ours": ours_argv(vmcore, ours_dir, 31, "zlib", 1,
                               ["--memory-limit", str(limit), *extra]),
             "makedumpfile": synced(mdf_argv(vmcore, mdf_out, 31, "zlib"), mdf_out)}
    runs: dict[str, Measurement] = {}
    for tool in ("ours", "makedumpfile")[::1 if ours_first else -1]:
        cache_data(vmcore)
        with MemoryCgroup(limit) as cg:
            runs[tool] = checked(run(argvs[tool], cpus=1, cgroup=cg,
                                     env=ours_env() if tool == "ours" else None), tool)
    m, md = runs["ours"], runs["makedumpfile"]
    (dump,) = ours_dir.glob("*/vmcore")
    same_bitmaps = bitmaps(dump) == bitmaps(mdf_out)
    identical = filecmp.cmp(dump, mdf_out, shallow=False)
    result = (m, dump.stat().st_size), (md, mdf_out.stat().st_size), same_bitmaps, identical
    dump.unlink()
    mdf_out.unlink()
    return result


def warm_up(vmcore: Path, limit: int, extra: list[str]) -> None:
    """One untimed run of each tool: cache_data alone does not make the first runs find
    a big file in the page cache. On 2026-12-03, from a cold page cache, cache_data
    took 454 s to read the 1 TiB file (9.5 GB of data, 18-19 GB cached with the holes
    read ahead around it) and our first save then read 2.4 GB of it from disk: 303 s
    (61 of CPU), then 45 and 53 s (188 and 41 MB read); another series 147 s, 72, then
    41-48. That host's DAMON pages out memory left idle for 60 s (kdamond's `pageout`
    scheme, up to 128 MiB a second), so what a slow first read brought in early was
    gone by its end."""
    with tempfile.TemporaryDirectory(prefix="kdumpctl-scale-", dir=CACHE) as tmp:
        one(vmcore, Path(tmp), limit, extra, True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="4G,64G,256G,1T")
    ap.add_argument("--memory-limit", default="160M")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ours-option", action="append", default=[], metavar="OPT",
                    help="extra option for kdumpctl-py save (repeatable)")
    args = ap.parse_args()
    limit = parse_size(args.memory_limit)
    out: dict[str, object] = {}
    sizes: dict[str, object] = {}
    speed, rss = [], []
    load = [round(load_average()[0], 2)]
    first = synthetic(args.sizes.split(",")[0])  # makes CACHE on a new machine
    with tempfile.TemporaryDirectory(prefix="kdumpctl-scale-", dir=CACHE) as tmp:
        fresh_page_cache([(ours_argv(first, Path(tmp) / "ours", 31, "zlib", 1,
                                     ["--memory-limit", str(limit), *args.ours_option]),
                           ours_env()),
                          (mdf_argv(first, Path(tmp) / "mdf", 31, "zlib"), None)])
    for size in args.sizes.split(","):
        vmcore = synthetic(size)
        ours_rows, mdf_rows = [], []
        same, identical = True, True
        warm_up(vmcore, limit, args.ours_option)
        for r in range(args.repeat):
            # the one going first changes each time: what the order does falls on both alike
            with tempfile.TemporaryDirectory(prefix="kdumpctl-scale-", dir=CACHE) as tmp:
                o, m, s, i = one(vmcore, Path(tmp), limit, args.ours_option, r % 2 == 0)
            ours_rows.append(o)
            mdf_rows.append(m)
            same, identical = same and s, identical and i
            load.append(round(load_average()[0], 2))
        ours, mdf = summarise(f"ours at {size}", ours_rows), summarise(
            f"makedumpfile at {size}", mdf_rows)
        pairs = [m.seconds / o.seconds for (o, _), (m, _) in zip(ours_rows, mdf_rows, strict=True)]
        paired = {"median": round(statistics.median(pairs), 3),
                  "range": [round(min(pairs), 3), round(max(pairs), 3)]}
        sizes[size] = {"ours": ours, "makedumpfile": mdf, "paired": paired, "bitmaps_equal": same,
                       "identical_files": identical,
                       "disk_bytes": vmcore.stat().st_blocks * 512}
        speed.append(mdf["seconds"] / ours["seconds"])
        rss.append(ours["peak_rss"] / mdf["peak_rss"])
        print(f"{size:>5}: ours {ours['seconds']:7.2f} s (cpu {ours['cpu_seconds']:.2f}) "
              f"RSS {int(ours['peak_rss']) / 1e6:6.1f} MB | makedumpfile {mdf['seconds']:7.2f} s "
              f"(cpu {mdf['cpu_seconds']:.2f}) RSS {int(mdf['peak_rss']) / 1e6:6.1f} MB | "
              f"paired {paired['median']:.2f} | bitmaps {'equal' if same else 'DIFFER'}",
              flush=True)
        if not same:
            sys.exit(f"bench: our bitmaps differ from makedumpfile's at {size}")
    out["sizes"] = sizes
    out["ratio"] = {"speed_min": round(min(speed), 3), "rss_max": round(max(rss), 3)}
    out["memory_limit"] = limit
    out["load_average"] = load
    print(json.dumps(out))


if __name__ == "__main__":
    main()
