"""take_snapshot's refusals, before it reads anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdumpctl_py.errors import KdumpError
from kdumpctl_py.facts.snapshot import take_snapshot
from kdumpctl_py.facts.view import META, SystemView


def test_a_missing_directory_is_named_not_the_partial_file(tmp_path: Path) -> None:
    """Found by the new-administrator sweep: `snapshot /nodir/x.tar.gz` said
    `/nodir/x.tar.gz.incomplete: No such file or directory`, a file nobody named."""
    (tmp_path / META).write_text(json.dumps({"uname": {"machine": "x86_64", "release": "6.1"}}))
    out = tmp_path / "nodir" / "x.tar.gz"
    with pytest.raises(KdumpError) as e:
        take_snapshot(str(out), SystemView(tmp_path))
    assert str(e.value) == (f"cannot write {out}: {out.parent} is not a directory; create "
                            "it, or name another file")
