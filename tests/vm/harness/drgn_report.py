"""Summarise a vmcore with drgn, until `kdumpctl-py analyse` exists.

Run as a script by an interpreter that has drgn (the repository's .venv):
    python drgn_report.py VMCORE --vmlinux VMLINUX
prints JSON: release, panic message, crashed thread (pid, comm) and its
symbolised backtrace. Standalone on purpose: it imports nothing from the harness.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import drgn
from drgn.helpers.linux.panic import panic_message
from drgn.helpers.linux.printk import get_printk_records
from drgn.helpers.linux.sched import task_cpu

PANIC_TEXT = "sysrq triggered crash"


def report(vmcore: str, vmlinux: str) -> dict[str, Any]:
    prog = drgn.Program()
    prog.set_core_dump(vmcore)
    warnings = []
    try:
        prog.load_debug_info([vmlinux])
    except drgn.MissingDebugInfoError as e:  # modules without debug info: expected
        warnings.append(str(e).splitlines()[0])
    out: dict[str, Any] = {
        "analyser": "drgn-script",
        "drgn_version": drgn.__version__,
        "vmcore": vmcore,
        "vmlinux": vmlinux,
        "warnings": warnings,
        "release": prog["init_uts_ns"].name.release.string_().decode(),
    }
    records = [r.text.decode(errors="replace") for r in get_printk_records(prog)]
    out["panic_log_line"] = next((t for t in records if PANIC_TEXT in t), None)
    msg = panic_message(prog)
    out["panic_message"] = msg.decode(errors="replace") if msg is not None else None
    thread = prog.crashed_thread()
    task = thread.object
    out["crashed_thread"] = {
        "pid": thread.tid,
        "comm": task.comm.string_().decode(errors="replace"),
        "cpu": task_cpu(task),
    }
    frames = []
    for frame in thread.stack_trace():
        try:
            sym = prog.symbol(frame.pc).name
        except LookupError:
            sym = None
        name = frame.name or sym
        try:
            filename, line, _col = frame.source()
            where = f"{filename}:{line}"
        except LookupError:
            where = None
        frames.append({"pc": hex(frame.pc), "function": name, "source": where,
                       "inline": frame.is_inline})
    out["backtrace"] = frames
    out["backtrace_functions"] = [f["function"] for f in frames]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("vmcore")
    ap.add_argument("--vmlinux", required=True)
    args = ap.parse_args()
    json.dump(report(args.vmcore, args.vmlinux), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
