"""`kdumpctl-py save`: write the vmcore and its kernel log, filtered and compressed.

Options not given come from the configuration (path, dump_level, compress,
format, core_collector); `capture` does the same with everything around it.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, TypeVar

from kdumpctl_py.config.settings import COMPRESSIONS, FORMATS, ZLIB_ENGINES

T = TypeVar("T")

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands



def register(sub: Commands) -> None:
    from kdumpctl_py.cli import nonempty

    p = sub.add_parser("save", help="save /proc/vmcore (or an ELF vmcore file) as a dump")
    p.add_argument("--vmcore", default="/proc/vmcore", metavar="PATH", type=nonempty,
                   help="the ELF vmcore to read (default: /proc/vmcore)")
    p.add_argument("--target", default=None, metavar="DIR", type=nonempty,
                   help="directory that receives <host>-<date>/, created if its parent "
                   "exists (default: the configuration's path, /var/crash); "
                   "'-' with --flat writes the stream to standard output")
    p.add_argument("--dump-level", type=int, default=None, metavar="0-31",
                   help="makedumpfile -d bits: 1 zero, 2 cache, 4 private cache, 8 user data, "
                   "16 free pages (default: the configuration's, 31)")
    p.add_argument("--compress", choices=COMPRESSIONS, default=None,
                   help="per-page compression (default: the configuration's, zstd)")
    p.add_argument("--zlib-engine", choices=ZLIB_ENGINES, default=None,
                   help="what writes zlib pages: isal (ISA-L, about half the CPU time of a save), "
                   "zlib (the system zlib, makedumpfile's bytes exactly) or auto, isal when "
                   "installed (default: the configuration's zlib_engine, auto)")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="kdump-compressed, as makedumpfile writes (the default), or ELF "
                   "(uncompressed; zero pages left out at dump level bit 1)")
    p.add_argument("--flat", action="store_true",
                   help="write makedumpfile's flattened stream, as DIR/<host>-<date>/vmcore.flat "
                   "or with --target - to standard output (makedumpfile -F writes only there)")
    p.add_argument("--threads", type=_thread_count, default=None, metavar="N",
                   help="compression threads (default, or 0: one per CPU), no more than the "
                   "memory limit holds the chunks of (4 MiB in flight each), with a warning")
    p.add_argument("--memory-limit", type=_memory_limit, default=None, metavar="SIZE",
                   help="memory saving may use (K/M/G, at least 56M, or auto); the page "
                   "bitmaps are handled in windows that fit (default: the configuration's "
                   "memory_limit, auto: half of MemAvailable, at least 56M)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    p.add_argument("--no-space-check", action="store_true",
                   help="write even when the free space looks too small for the estimate")
    p.add_argument("--fallback", action="store_true",
                   help="when filtering fails, save again with less (as capture does): the "
                   "level keeping what the page filter failed on, then -d 1 without struct "
                   "pages, then a plain ELF copy; save.json beside the dump says what happened")
    p.set_defaults(func=run)


def _thread_count(text: str) -> int:
    """--threads for argparse, which then names the option in its one-line error."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"'{text}' is not 0 (one per CPU) or more")
    return int(text)


def _memory_limit(text: str) -> int:
    """--memory-limit for argparse, read as the memory_limit directive is (auto: 0)."""
    from kdumpctl_py.config.values import memory_limit

    try:
        return memory_limit(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _check_target(target: str) -> None:
    """A --target may be new (a fresh file system has no crash directory yet) but not in a
    missing directory: mistyped, it would put the dump where nobody looks for it; nor a
    file, a mistyped path too."""
    from kdumpctl_py.errors import UsageError

    parent = os.path.dirname(os.path.abspath(target))
    if target == "-":
        return
    if os.path.lexists(target) and not os.path.isdir(target):
        raise UsageError(f"the target {target} is not a directory; give a directory as "
                         "--target (the dump is saved in a new directory under it)")
    if os.path.isdir(parent):
        return
    what = "is not a directory" if os.path.lexists(parent) else "does not exist"
    raise UsageError(f"the target {target} cannot be made: {parent} {what}; create that "
                     "directory, or give another --target")


def _check_vmcore(path: str) -> None:
    """Save reads an ELF vmcore; one that is not (looked at when opening it failed, not
    before every save) is named for what it is, a dump saved already too, in the words
    dmesg and analyse use for a file that is not a dump."""
    from kdumpctl_py.capture.dumpkind import KDUMP, readable_dump
    from kdumpctl_py.errors import UsageError

    if readable_dump(path)[0] == KDUMP:
        raise UsageError(f"{path} is a kdump-compressed dump, saved already: save reads an "
                         "ELF vmcore such as /proc/vmcore; analyse and dmesg read this one as "
                         "it is")


def _check_stream(target: str, flat: bool) -> None:
    """--target - writes the flattened stream to standard output, never onto a terminal."""
    from kdumpctl_py.cli import ClosedOutput
    from kdumpctl_py.errors import UsageError

    if target != "-":
        return
    if not flat:
        raise UsageError("--target - writes a stream; add --flat")
    if sys.stdout is None or isinstance(sys.stdout, ClosedOutput):
        raise UsageError("--target - writes the stream to standard output, which is closed; "
                         "pipe it to the command that takes the stream, or redirect it")
    if sys.stdout.isatty():
        raise UsageError("--target - would write the dump onto this terminal; pipe standard "
                         "output to the command that takes the stream, or redirect it")


def run(args: argparse.Namespace) -> int:
    from kdumpctl_py.capture.budget import default_limit
    from kdumpctl_py.capture.save import SaveOptions, save_vmcore
    from kdumpctl_py.capture.vmcore import firmware_memory_of
    from kdumpctl_py.cli import open_view
    from kdumpctl_py.config import read_config
    from kdumpctl_py.errors import KdumpError, UsageError
    from kdumpctl_py.units import format_bytes

    view = open_view(args)
    cfg = read_config(view)

    def given(value: T | None, default: T) -> T:
        return default if value is None else value

    if args.sysroot and args.target is None:
        raise UsageError("under --sysroot the configuration's path is a directory of that "
                         "machine; give --target")
    if args.target is not None:
        _check_target(args.target)
    args.target = given(args.target, cfg.path)
    flat = args.flat or cfg.flat
    _check_stream(args.target, flat)
    if given(args.format, cfg.format) == "elf" and args.compress not in (None, "none"):
        raise UsageError("--format elf writes an uncompressed ELF dump; drop --compress")
    limit = given(args.memory_limit, cfg.memory_limit)
    options = SaveOptions(dump_level=given(args.dump_level, cfg.dump_level),
                          compress=given(args.compress, cfg.compress),
                          zlib_engine=given(args.zlib_engine, cfg.zlib_engine), flat=flat,
                          format=given(args.format, cfg.format),
                          threads=given(args.threads, cfg.threads),
                          progress=not args.no_progress,
                          check_space=not args.no_space_check,
                          memory_limit=limit or default_limit(view.meminfo),
                          firmware=firmware_memory_of(view))
    stream = sys.stdout.buffer if args.target == "-" else None
    if args.fallback and stream is not None:
        raise UsageError("--fallback cannot save a stream again; give a --target directory")
    if args.fallback:
        _check_vmcore(args.vmcore)  # its plain copy would take any file, a saved dump too
        from dataclasses import asdict

        from kdumpctl_py.capture.fallback import save_with_fallback
        from kdumpctl_py.capture.record import summary

        result, record = save_with_fallback(args.vmcore, args.target, options)
        print(f"saved {result.directory}/{record.vmcore}: {summary(asdict(record))}; "
              f"{format_bytes(result.bytes_out)}, {record.seconds:.1f} s")
        return 0
    try:
        result = save_vmcore(args.vmcore, args.target, options, stream)
    except UsageError:
        _check_vmcore(args.vmcore)
        raise
    except BrokenPipeError:
        if stream is None:
            raise
        # what is still buffered for the closed pipe goes nowhere, not into a second error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise KdumpError("what read standard output went away: the stream is cut short and "
                         "no dump was saved; check the command it was piped to") from None
    where = f"{result.directory}/{result.vmcore}" if result.directory else "standard output"
    zero = f" ({result.pages_zero} zero pages left out)" if result.pages_zero else ""
    print(f"saved {where}: {result.pages_dumped} of {result.pages_total} pages written{zero}, "
          f"{format_bytes(result.bytes_out)}, {result.seconds:.1f} s, peak memory "
          f"{format_bytes(result.peak_rss)} (budget {format_bytes(options.memory_limit)})",
          file=sys.stderr if stream else sys.stdout)
    return 0
