"""Each page's stored form: compress2's bytes, or the page itself when they are not smaller;
which engine writes zlib pages."""

from __future__ import annotations

import os
import sys
import zlib

import pytest

from kdumpctl_py.capture.compress import codec, stored_forms, zlib_engine
from kdumpctl_py.errors import UsageError


@pytest.mark.parametrize("name,engine", [("zlib", "zlib"), ("zlib", "isal"), ("zstd", "auto"),
                                         ("lzo", "auto")])
def test_stored_forms_keep_pages_that_do_not_shrink_raw(name: str, engine: str) -> None:
    comp = codec(name, engine)
    assert comp is not None
    text = b"kdumpctl-py " * 400
    data = text[:4096] + os.urandom(4096) + bytes(4096)
    forms = stored_forms(data, [0, 4096, 8192], 4096, comp.make())
    assert forms[1] == data[4096:8192]
    assert len(forms[0]) < 4096 and len(forms[2]) < 4096
    if name == "zlib":  # a zlib stream (header and adler32) that zlib itself reads back
        assert zlib.decompress(forms[0]) == text[:4096]
        assert zlib.decompress(forms[2]) == bytes(4096)
    if engine == "zlib":  # makedumpfile's compress2 at Z_BEST_SPEED, to the byte
        assert forms[0] == zlib.compress(text[:4096], 1)
        assert forms[2] == zlib.compress(bytes(4096), 1)


def test_auto_takes_isal_when_it_imports() -> None:
    assert zlib_engine("auto") == "isal" and zlib_engine("zlib") == "zlib"


def test_without_isal_auto_falls_back_to_the_system_zlib(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """As on riscv64, which has no isal wheel: nothing is lost, the pages are compress2's."""
    monkeypatch.setitem(sys.modules, "isal", None)  # `import isal...` raises ImportError
    monkeypatch.setitem(sys.modules, "isal.isal_zlib", None)
    assert zlib_engine("auto") == "zlib"
    comp = codec("zlib")
    assert comp is not None
    page = b"kdumpctl-py " * 341 + b"kdum"
    assert comp.make()(memoryview(page)) == zlib.compress(page, 1)
    with pytest.raises(UsageError, match="needs the Python module 'isal'"):
        codec("zlib", "isal")


def test_unknown_engine_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown zlib engine 'gzip'"):
        zlib_engine("gzip")
