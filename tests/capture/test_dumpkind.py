"""readable_dump's refusals say what to do with what was given instead of a dump."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdumpctl_py.capture.dumpkind import readable_dump
from kdumpctl_py.errors import UsageError


def test_a_flattened_dump_is_sent_to_reassemble(tmp_path: Path) -> None:
    """Found by the new-administrator sweep: analyse and dmesg sent a flattened dump to
    `makedumpfile -R`, which this machine may not have, instead of our own reassemble."""
    flat = tmp_path / "vmcore.flat"
    flat.write_bytes(b"makedumpfile\0\0\0\0" + bytes(100))
    with pytest.raises(UsageError) as e:
        readable_dump(str(flat))
    assert f"`kdumpctl-py reassemble {flat} {tmp_path}/vmcore` first" in str(e.value)


def test_a_dump_directory_names_its_vmcore(tmp_path: Path) -> None:
    """Found by the sweep: `analyse /var/crash/HOST-DATE` said only 'Is a directory'."""
    (tmp_path / "vmcore").write_bytes(b"")
    with pytest.raises(UsageError, match=f"^{tmp_path} is a directory; give the dump in it, "
                       f"{tmp_path}/vmcore$"):
        readable_dump(str(tmp_path))
