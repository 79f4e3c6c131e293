"""Per-page compression for the kdump-compressed format.

Each page is compressed on its own (the format's readers decompress page by
page) and stored raw when compression does not make it smaller, as
makedumpfile does. zstd runs at level 1; every codec releases the GIL, so
chunks compress on several threads. The pages of a chunk go through the codec
by map(), which calls it from C: no Python frame per page.

zlib has two engines (zlib_engine, below): the system zlib at level 1 makes
makedumpfile's bytes (Z_BEST_SPEED through compress2: a fresh stream per page),
but builds Huffman trees for every page, most of its cost; Intel's ISA-L
deflate (the `isal` module) writes the same format, a zlib stream with its
header and adler32 that every reader decompresses, in about a fifth of the CPU
time, a little larger and not byte-identical to makedumpfile's. Nor to itself:
the same page is not always the same bytes from one run to the next (about one
page in 20,000 differed by a byte on the 2 GiB bench vmcore), so a file the same
to the byte, windowed or not, threads or not, is the system zlib's promise only.
The cause is in ISA-L (2.31, in python-isal 1.9.1): the assembly body of its
levels 1 and 2 (igzip_icf_body_h1_gr_bt.asm), on a stream's first byte, takes
the hash of the third byte's position from `rcx >> 16` while rcx still holds
its argument, the address of the struct isal_zstream, not the input's bytes.
That slot then offers, now and then, another (verified, so valid) match. The
struct lies on the calling thread's stack in python-isal, which address-space
randomisation moves in every process and thread; no call of the module lets
us place it or skip that path, and level 3, whose body is another, costs 18 %
more CPU (docs/performance.md). So ISA-L's bytes stay as they come.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from kdumpctl_py.config.settings import COMPRESSIONS, ZLIB_ENGINES
from kdumpctl_py.errors import UsageError

# page_desc.flags and disk_dump_header.status bits (makedumpfile's diskdump_mod.h)
DUMP_DH_COMPRESSED_ZLIB = 0x1
DUMP_DH_COMPRESSED_LZO = 0x2
DUMP_DH_COMPRESSED_SNAPPY = 0x4
DUMP_DH_COMPRESSED_ZSTD = 0x20

# compress(page): the page compressed (maybe larger than the page: see stored_forms)
Compressor = Callable[[memoryview], bytes]


class Codec(NamedTuple):
    """A --compress choice: its flag in the file and a maker of compressors."""

    name: str
    flag: int  # page_desc.flags and disk_dump_header.status bit
    make: Callable[[], Compressor]  # one compressor per thread


ISAL_LEVEL = 1  # of 0-3: 0 saves a third of the CPU but writes 36 % more (docs/performance.md)
# Per page ISA-L costs its block's Huffman tables, not the call (bench/page_codecs.py,
# docs/performance.md)


def zlib_engine(choice: str = "auto") -> str:
    """The engine `--compress zlib` uses: "isal" when chosen or, for auto, when the module
    imports (its wheels are for x86_64 and arm64 only: riscv64 gets the system zlib),
    else "zlib"."""
    if choice not in ZLIB_ENGINES:
        raise UsageError(f"unknown zlib engine {choice!r} (choose from {', '.join(ZLIB_ENGINES)})")
    if choice == "zlib":
        return "zlib"
    try:
        import isal.isal_zlib  # noqa: F401
    except ImportError:
        if choice == "isal":
            raise UsageError("--zlib-engine isal needs the Python module 'isal'; install it or "
                             "choose --zlib-engine zlib") from None
        return "zlib"
    return "isal"


def _zlib() -> Compressor:
    return functools.partial(zlib.compress, level=1)


def _isal() -> Compressor:
    from isal import isal_zlib

    return functools.partial(isal_zlib.compress, level=ISAL_LEVEL)


def _zstd() -> Compressor:
    import zstandard

    # No frame checksum, no content size: as makedumpfile's ZSTD_compressCCtx at level 1.
    cctx = zstandard.ZstdCompressor(level=1, write_content_size=True)
    compress: Compressor = cctx.compress
    return compress


def _lzo() -> Compressor:
    import lzo

    # python-lzo prefixes its own 5-byte header; the format wants the raw lzo1x stream.
    return lambda page: lzo.compress(bytes(page), 1, False)


def stored_forms(data: bytes | bytearray | memoryview, offsets: list[int], size: int,
                 compressor: Compressor) -> list[bytes]:
    """The stored form of each page data[offset:offset+size]: compressed, or the page
    itself when compression does not make it smaller (makedumpfile's rule)."""
    view = memoryview(data)
    parts = list(map(compressor, [view[o:o + size] for o in offsets]))
    lengths = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    for i in np.flatnonzero(lengths >= size).tolist():
        parts[i] = bytes(view[offsets[i]:offsets[i] + size])
    return parts


def codec(name: str, engine: str = "auto") -> Codec | None:
    """The codec for a --compress name (zlib through `engine`, see zlib_engine); None for
    "none". Says what to install if missing."""
    if name == "none":
        return None
    zlib_make = _isal if name == "zlib" and zlib_engine(engine) == "isal" else _zlib
    table = {"zlib": (DUMP_DH_COMPRESSED_ZLIB, zlib_make, "zlib"),
             "zstd": (DUMP_DH_COMPRESSED_ZSTD, _zstd, "zstandard"),
             "lzo": (DUMP_DH_COMPRESSED_LZO, _lzo, "lzo")}
    if name not in table:
        raise UsageError(f"unknown compression {name!r} (choose from {', '.join(COMPRESSIONS)})")
    flag, make, module = table[name]
    try:
        __import__(module)
    except ImportError:
        raise UsageError(f"--compress {name} needs the Python module {module!r}; install it or "
                         "choose another compression") from None
    return Codec(name, flag, make)
