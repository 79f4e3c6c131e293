#!/usr/bin/env python3
"""kdumpctl-py save against makedumpfile on /proc/vmcore, inside a capture kernel.

    bench/capture.py [--repeat 2] [--mem 2048] [--crashkernel 384M] [--dump-level 31]
                     [--compress zlib] [--no-busy] [--ours-option=--zlib-engine=zlib ...]

bench/save.py and bench/scale.py read a vmcore file on the host; a capture kernel
reads /proc/vmcore, which copies old memory page by page (read_from_oldmem), and
makedumpfile reads it through mmap() where we pread page data. This runs
`tests/vm/crash-cycle --arch x86_64 --busy` alternately with `--impl
save=kdumpctl-py` (`--compress`, `--threads 1`) and `--impl save=makedumpfile`
(`-c`, zlib), `--repeat` times each, one guest at a time, and reports for each run
the save command's seconds by the capture kernel's own clock (nr_cpus=1; ours
include starting Python and its imports, which the cycle's `capture-imports`
stage times apart, `imported` in result.json's memory), the dump's
bytes and the saver's peak RSS (the harness's memwatch, sampled each second), then
medians; the last line is one JSON object.

Each cycle is one QEMU guest under TCG, software emulation, no KVM: TCG changes
the relative cost of memory copies, page-table updates (ioremap per page,
mmap of 4 MiB regions) and system calls against real hardware, so the ratio
here is for /proc/vmcore under TCG, not a prediction for a physical machine. The
guest CPU is QEMU's default model (qemu64: the capture kernel's "x87 FPU will use
FXSAVE", no AVX), so ISA-L's deflate runs its baseline code, not its AVX2 one.
`--busy` fills memory before the crash in a way that varies run to run, so the
dumps differ a little in size: compare the bytes too.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.measure import load_average, run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("kdumpctl-py", "makedumpfile")
# First-kernel probes no figure here needs: each is a Python start under TCG.
SKIPS = ("status=skip", "snapshot=skip", "status-loaded=skip", "estimate=skip")


def cycle_argv(tool: str, out: Path, args: argparse.Namespace) -> list[str]:
    """The crash-cycle command line of one run."""
    argv = [sys.executable, str(ROOT / "tests/vm/crash-cycle"), "--arch", "x86_64",
            "--out", str(out), "--mem", str(args.mem), "--crashkernel", args.crashkernel,
            "--dump-level", str(args.dump_level), "--impl", f"save={tool}"]
    for skip in SKIPS:
        argv += ["--impl", skip]
    if not args.no_busy:
        argv.append("--busy")
    if tool == "kdumpctl-py":
        argv += [f"--save-option={o}" for o in
                 (f"--compress={args.compress}", "--threads=1", *args.ours_option)]
    return argv


def figures(out: Path) -> dict[str, Any]:
    """What one cycle's result.json says of its save."""
    try:
        result = json.loads((out / "result.json").read_text())
    except (OSError, ValueError):
        result = {"failed_stage": "crash-cycle wrote no result.json"}
    stages = result.get("memory", {}).get("stages", {})
    saved, imported = stages.get("saved", {}), stages.get("imported", {})
    return {"ok": result.get("ok", False), "failed_stage": result.get("failed_stage"),
            "save_seconds": saved.get("seconds"), "bytes": result.get("vmcore_bytes"),
            "peak_rss_kb": saved.get("VmHWM_kb"),
            "min_available_kb": saved.get("min_available_kb"),
            "imports_seconds": imported.get("seconds"),
            "kernel": result.get("kernel", {}).get("release")}


def median_of(rows: list[dict[str, Any]], key: str) -> dict[str, float] | None:
    values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    if not values:
        return None
    return {"median": round(statistics.median(values), 3), "min": min(values),
            "max": max(values)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2, help="runs of each tool (default 2)")
    ap.add_argument("--mem", type=int, default=2048, help="guest MiB (default 2048)")
    ap.add_argument("--crashkernel", default="384M", help="crashkernel= (default 384M)")
    ap.add_argument("--dump-level", type=int, default=31)
    ap.add_argument("--compress", default="zlib",
                    help="kdumpctl-py's compression (makedumpfile always -c, zlib)")
    ap.add_argument("--no-busy", action="store_true", help="crash an idle guest")
    ap.add_argument("--ours-option", action="append", default=[], metavar="OPT",
                    help="extra argument for kdumpctl-py save (repeatable), e.g. "
                         "--ours-option=--zlib-engine=zlib")
    ap.add_argument("--keep", type=Path, metavar="DIR",
                    help="keep each cycle's directory (without its dump) under DIR")
    args = ap.parse_args()
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in TOOLS}
    with tempfile.TemporaryDirectory(prefix="kdumpctl-capture-") as tmp:
        for i in range(args.repeat):
            for tool in TOOLS:
                out = Path(tmp) / f"{tool}-{i}"
                load = load_average()[0]
                m = run(cycle_argv(tool, out, args))
                row = {**figures(out), "cycle_seconds": round(m.seconds, 1),
                       "cycle_cpu_seconds": round(m.cpu_seconds, 1),
                       "load_before": round(load, 2), "load_after": round(load_average()[0], 2)}
                if not row["ok"]:
                    print(m.stderr[-3000:], file=sys.stderr)
                rows[tool].append(row)
                imports = (f", of which Python's start and imports about "
                           f"{row['imports_seconds']} s" if tool == "kdumpctl-py" else "")
                print(f"{tool:>13} run {i + 1}: save {row['save_seconds']} s{imports}, "
                      f"{(row['bytes'] or 0) / 1e6:.1f} MB, peak RSS "
                      f"{(row['peak_rss_kb'] or 0) / 1024:.1f} MiB "
                      f"(cycle {row['cycle_seconds']} s, "
                      f"{row['cycle_cpu_seconds']} s CPU, load {row['load_before']}-"
                      f"{row['load_after']}){'' if row['ok'] else ' FAILED: '}"
                      f"{row['failed_stage'] or ''}", flush=True)
                if args.keep:
                    for dump in out.glob("dumps/*/vmcore*"):
                        dump.unlink()
                    shutil.copytree(out, args.keep / out.name, dirs_exist_ok=True)
                shutil.rmtree(out)
    summary: dict[str, Any] = {}
    for tool, tool_rows in rows.items():
        ok = [r for r in tool_rows if r["ok"]]
        keys = ("save_seconds", "bytes", "peak_rss_kb", "imports_seconds")
        summary[tool] = {key: median_of(ok, key) for key in
                         keys[:3] + (keys[3:] if tool == "kdumpctl-py" else ())}
        summary[tool]["runs"] = tool_rows
        s = summary[tool]["save_seconds"]
        print(f"{tool:>13}: save median {s and s['median']} s "
              f"(range {s and s['min']}-{s and s['max']}), {len(ok)} of {len(tool_rows)} ok")
    ours, mdf = summary["kdumpctl-py"]["save_seconds"], summary["makedumpfile"]["save_seconds"]
    summary["ratio"] = {"speed": round(mdf["median"] / ours["median"], 3)
                        if ours and mdf else None}
    summary["input"] = {"mem_mib": args.mem, "crashkernel": args.crashkernel,
                        "dump_level": args.dump_level, "compress": args.compress,
                        "busy": not args.no_busy, "ours_options": args.ours_option,
                        "accel": "tcg"}
    print(json.dumps(summary))
    return 0 if all(r["ok"] for tool_rows in rows.values() for r in tool_rows) else 1


if __name__ == "__main__":
    sys.exit(main())
