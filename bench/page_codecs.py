#!/usr/bin/env python3
"""What compressing one page costs, codec by codec, on the pages a save at -d 31 writes.

    bench/page_codecs.py [--vmcore PATH] [--repeat 5]

The pages are those `kdumpctl-py save --compress none` writes from the vmcore
(default: bench/save.py's 2 GiB crash-cycle vmcore), zero pages left out. Each
codec compresses every page on its own, as the kdump-compressed format wants,
in one thread called by map() as the saver calls it; CPU microseconds per page
(thread time, median and range over `--repeat` passes) and the bytes written
(a page that does not shrink counted as stored). Beside the one-shot calls:
ISA-L through igzip_lib with its smallest level buffer and history (what a
fresh stream per page allocates and clears), one held ISA-L stream flushed
after each page (no set-up per page; the pages are then not independent
streams, so no save could use it), and the whole data as one buffer (no block
per page): the floor of what per-page blocks cost. The last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from save import default_vmcore, ours_argv, ours_env  # noqa: E402

from kdumpctl_py.capture.kdumpfile import PAGE_DESC_DTYPE, read_kdump  # noqa: E402


def dumped_pages(vmcore: Path, tmp: Path) -> tuple[bytes, int]:
    """The data of every page a -d 31 save writes (uncompressed), and the page size."""
    subprocess.run(ours_argv(vmcore, tmp, 31, "none", 1), env=ours_env(), check=True,
                   stdout=subprocess.DEVNULL)
    (path,) = tmp.glob("*/vmcore")
    dump = read_kdump(str(path))
    with open(path, "rb") as f:
        f.seek(dump.descs_offset)
        descs = np.frombuffer(f.read(int(dump.bitmap2.sum()) * 24), PAGE_DESC_DTYPE)
        offsets = np.unique(descs["offset"]).tolist()  # the shared zero page once
        ps = dump.header.block_size
        pages = b"".join(os.pread(f.fileno(), ps, o) for o in offsets)
    words = np.frombuffer(pages, np.uint64).reshape(len(offsets), -1)
    nonzero = words.any(axis=1)
    return b"".join(pages[i * ps:(i + 1) * ps] for i in np.flatnonzero(nonzero).tolist()), ps


def held_isal() -> Callable[[memoryview], bytes]:
    from isal import isal_zlib

    stream = isal_zlib.compressobj(1)
    return lambda page: stream.compress(page) + stream.flush(isal_zlib.Z_FULL_FLUSH)


def codecs() -> dict[str, Callable[[], Callable[[memoryview], bytes]]]:
    import zstandard
    from isal import igzip_lib, isal_zlib

    small = functools.partial(igzip_lib.compress, level=1, flag=igzip_lib.COMP_ZLIB,
                              mem_level=igzip_lib.MEM_LEVEL_MIN, hist_bits=12)
    return {
        "zlib level 1 (makedumpfile's)": lambda: functools.partial(zlib.compress, level=1),
        "isal level 1 (ours)": lambda: functools.partial(isal_zlib.compress, level=1),
        "isal level 0": lambda: functools.partial(isal_zlib.compress, level=0),
        "isal level 1, smallest level buffer, 4 KiB history": lambda: small,
        "isal level 1, one held stream, full flush per page": held_isal,
        "zstd level 1": lambda: zstandard.ZstdCompressor(level=1).compress,
    }


def measure(pages: list[memoryview], make: Callable[[], Callable[[memoryview], bytes]],
            repeat: int, size: int) -> dict[str, object]:
    times, out = [], 0
    for _ in range(repeat):
        compress = make()
        start = time.thread_time()
        parts = list(map(compress, pages))
        times.append((time.thread_time() - start) * 1e6 / len(pages))
        out = sum(min(len(p), size) for p in parts)
    return {"us_per_page": round(statistics.median(times), 2),
            "range": [round(min(times), 2), round(max(times), 2)], "bytes": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vmcore", type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    vmcore = args.vmcore or default_vmcore()
    with tempfile.TemporaryDirectory(prefix="kdumpctl-codecs-") as tmp:
        data, ps = dumped_pages(vmcore, Path(tmp))
    view = memoryview(data)
    pages = [view[o:o + ps] for o in range(0, len(data), ps)]
    results: dict[str, object] = {}
    for name, make in codecs().items():
        results[name] = r = measure(pages, make, args.repeat, ps)
        print(f"{name:52s} {r['us_per_page']:6.2f} us/page {r['range']}  {r['bytes']:>11,} B",
              flush=True)
    from isal import isal_zlib

    start = time.thread_time()
    whole = len(isal_zlib.compress(data, 1))
    per_page = (time.thread_time() - start) * 1e6 / len(pages)
    print(f"{'isal level 1, all pages as one buffer':52s} {per_page:6.2f} us/page  {whole:>11,} B")
    results["isal level 1, all pages as one buffer"] = {"us_per_page": round(per_page, 2),
                                                        "bytes": whole}
    print(json.dumps({"codecs": results,
                      "input": {"vmcore": str(vmcore), "pages": len(pages), "page_size": ps,
                                "repeat": args.repeat}}))


if __name__ == "__main__":
    main()
