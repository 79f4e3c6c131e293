"""Per-page compression for the kdump-compressed format.

Each page is compressed on its own (the format's readers decompress page by
page) and stored raw when compression does not make it smaller, as
makedumpfile does. zlib runs at level 1 (makedumpfile's Z_BEST_SPEED, through
compress2: a fresh stream per page), zstd at level 1; both release the GIL, so
chunks compress on several threads. Python's zlib.compress makes the same
bytes as compress2 and, measured per page, costs no more than a stream reused
through deflateReset: deflate itself is the cost. So the pages of a chunk go
through the codec by map(), which calls it from C: no Python frame per page.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kdumpctl_py.config.settings import COMPRESSIONS
from kdumpctl_py.errors import UsageError

# page_desc.flags and disk_dump_header.status bits (makedumpfile's diskdump_mod.h)
DUMP_DH_COMPRESSED_ZLIB = 0x1
DUMP_DH_COMPRESSED_LZO = 0x2
DUMP_DH_COMPRESSED_SNAPPY = 0x4
DUMP_DH_COMPRESSED_ZSTD = 0x20

# compress(page): the page compressed (maybe larger than the page: see stored_forms)
Compressor = Callable[[memoryview], bytes]


@dataclass(frozen=True)
class Codec:
    name: str
    flag: int  # page_desc.flags and disk_dump_header.status bit
    make: Callable[[], Compressor]  # one compressor per thread


def _zlib() -> Compressor:
    return functools.partial(zlib.compress, level=1)


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


def stored_forms(data: bytes | bytearray, offsets: list[int], size: int,
                 compressor: Compressor) -> list[bytes]:
    """The stored form of each page data[offset:offset+size]: compressed, or the page
    itself when compression does not make it smaller (makedumpfile's rule)."""
    view = memoryview(data)
    parts = list(map(compressor, [view[o:o + size] for o in offsets]))
    lengths = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    for i in np.flatnonzero(lengths >= size).tolist():
        parts[i] = bytes(view[offsets[i]:offsets[i] + size])
    return parts


def codec(name: str) -> Codec | None:
    """The codec for a --compress name; None for "none". Says what to install if missing."""
    if name == "none":
        return None
    table = {"zlib": (DUMP_DH_COMPRESSED_ZLIB, _zlib, "zlib"),
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
