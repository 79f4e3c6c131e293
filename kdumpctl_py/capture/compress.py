"""Per-page compression for the kdump-compressed format.

Each page is compressed on its own (the format's readers decompress page by
page) and stored raw when compression does not make it smaller, as
makedumpfile does. zlib runs at level 1 (makedumpfile's Z_BEST_SPEED), zstd
at level 1; both release the GIL, so chunks compress on several threads.

zlib goes through libz itself with one z_stream per thread, reset between
pages (deflateReset), as makedumpfile does: Python's zlib.compress sets up
and tears down a whole stream for every 4 KiB page, which costs more than
the compression. The bytes are the same as makedumpfile's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from kdumpctl_py.errors import UsageError

# page_desc.flags and disk_dump_header.status bits (makedumpfile's diskdump_mod.h)
DUMP_DH_COMPRESSED_ZLIB = 0x1
DUMP_DH_COMPRESSED_LZO = 0x2
DUMP_DH_COMPRESSED_SNAPPY = 0x4
DUMP_DH_COMPRESSED_ZSTD = 0x20

CODECS = ("zstd", "zlib", "lzo", "none")
# compress(data, offset, size): the page data[offset:offset+size] compressed, or None
# when that is not smaller than the page (it is then stored raw).
Compressor = Callable[[bytes, int, int], bytes | None]


@dataclass(frozen=True)
class Codec:
    name: str
    flag: int  # page_desc.flags and disk_dump_header.status bit
    make: Callable[[], Compressor]  # one compressor per thread


class _ZStream(ctypes.Structure):
    """struct z_stream (zlib.h)."""

    _fields_ = [
        ("next_in", ctypes.c_void_p), ("avail_in", ctypes.c_uint), ("total_in", ctypes.c_ulong),
        ("next_out", ctypes.c_void_p), ("avail_out", ctypes.c_uint), ("total_out", ctypes.c_ulong),
        ("msg", ctypes.c_char_p), ("state", ctypes.c_void_p), ("zalloc", ctypes.c_void_p),
        ("zfree", ctypes.c_void_p), ("opaque", ctypes.c_void_p), ("data_type", ctypes.c_int),
        ("adler", ctypes.c_ulong), ("reserved", ctypes.c_ulong),
    ]


Z_FINISH, Z_STREAM_END = 4, 1
_libz: ctypes.CDLL | None = None


def _load_libz() -> ctypes.CDLL | None:
    global _libz
    if _libz is None:
        name = ctypes.util.find_library("z")
        if name is None:
            return None
        _libz = ctypes.CDLL(name)
        _libz.zlibVersion.restype = ctypes.c_char_p
    return _libz


class _Deflater:
    """One reusable deflate stream at level 1, fed straight from the chunk's buffer.

    Per page only deflateReset and deflate run (both without the GIL), on a
    pointer into the chunk: no copy, no new stream.
    """

    def __init__(self, libz: ctypes.CDLL, limit: int = 1 << 16) -> None:
        self.stream = _ZStream()
        self.ref = ctypes.byref(self.stream)
        self.out = ctypes.create_string_buffer(limit)
        self.out_addr = ctypes.addressof(self.out)
        self.limit = limit
        self.reset, self.deflate, self.end = libz.deflateReset, libz.deflate, libz.deflateEnd
        self.base: tuple[int, int] = (0, 0)  # (id of the chunk, its address)
        if libz.deflateInit_(self.ref, 1, libz.zlibVersion(), ctypes.sizeof(self.stream)) != 0:
            raise MemoryError("deflateInit failed")

    def __call__(self, data: bytes, offset: int, size: int) -> bytes | None:
        if self.base[0] != id(data):
            self.keep = data  # the address stays valid while this reference lives
            self.base = (id(data), ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0)
        st = self.stream
        self.reset(self.ref)
        st.next_in = self.base[1] + offset
        st.avail_in = size
        st.next_out = self.out_addr
        st.avail_out = min(size - 1, self.limit)
        if self.deflate(self.ref, Z_FINISH) != Z_STREAM_END:
            return None  # did not fit in less than the page
        return ctypes.string_at(self.out_addr, st.total_out)

    def __del__(self) -> None:
        self.end(self.ref)


def _zlib() -> Compressor:
    libz = _load_libz()
    if libz is None:
        return lambda data, offset, size: zlib.compress(data[offset:offset + size], 1)
    return _Deflater(libz)


def _zstd() -> Compressor:
    import zstandard

    # No frame checksum, no content size: as makedumpfile's ZSTD_compressCCtx at level 1.
    cctx = zstandard.ZstdCompressor(level=1, write_content_size=True)
    return lambda data, offset, size: cctx.compress(memoryview(data)[offset:offset + size])


def _lzo() -> Compressor:
    import lzo

    # python-lzo prefixes its own 5-byte header; the format wants the raw lzo1x stream.
    return lambda data, offset, size: lzo.compress(data[offset:offset + size], 1, False)


def codec(name: str) -> Codec | None:
    """The codec for a --compress name; None for "none". Says what to install if missing."""
    if name == "none":
        return None
    table = {"zlib": (DUMP_DH_COMPRESSED_ZLIB, _zlib, "zlib"),
             "zstd": (DUMP_DH_COMPRESSED_ZSTD, _zstd, "zstandard"),
             "lzo": (DUMP_DH_COMPRESSED_LZO, _lzo, "lzo")}
    if name not in table:
        raise UsageError(f"unknown compression {name!r} (choose from {', '.join(CODECS)})")
    flag, make, module = table[name]
    try:
        __import__(module)
    except ImportError:
        raise UsageError(f"--compress {name} needs the Python module {module!r}; install it or "
                         "choose another compression") from None
    return Codec(name, flag, make)
