"""Each page's stored form: compress2's bytes, or the page itself when they are not smaller."""

from __future__ import annotations

import os
import zlib

import pytest

from kdumpctl_py.capture.compress import codec, stored_forms


@pytest.mark.parametrize("name", ["zlib", "zstd", "lzo"])
def test_stored_forms_keep_pages_that_do_not_shrink_raw(name: str) -> None:
    comp = codec(name)
    assert comp is not None
    text = b"kdumpctl-py " * 400
    data = text[:4096] + os.urandom(4096) + bytes(4096)
    forms = stored_forms(data, [0, 4096, 8192], 4096, comp.make())
    assert forms[1] == data[4096:8192]
    assert len(forms[0]) < 4096 and len(forms[2]) < 4096
    if name == "zlib":  # makedumpfile's compress2 at Z_BEST_SPEED
        assert forms[0] == zlib.compress(text[:4096], 1)
        assert forms[2] == zlib.compress(bytes(4096), 1)
