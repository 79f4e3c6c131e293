"""reassemble against makedumpfile -R, both ways: our flattened stream and makedumpfile's."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kdumpctl_py.capture.reassemble import reassemble
from kdumpctl_py.capture.save import SaveOptions, save_vmcore
from kdumpctl_py.errors import KdumpError
from tests.analyse.dumps import DumpOf
from tests.builders import make_vmcore


def makedumpfile_r(flat: Path, out: Path) -> bytes:
    if shutil.which("makedumpfile") is None:
        pytest.skip("makedumpfile is not installed")
    with open(flat, "rb") as src:
        subprocess.run(["makedumpfile", "-R", str(out)], stdin=src, check=True,
                       capture_output=True)
    return out.read_bytes()


@pytest.mark.parametrize("fmt", ["kdump", "elf"])
def test_our_stream_reassembles_as_makedumpfile_does(tmp_path: Path, fmt: str) -> None:
    src, _ = make_vmcore(tmp_path)
    compress = "zlib" if fmt == "kdump" else "none"
    plain = save_vmcore(str(src), str(tmp_path / "a"),
                        SaveOptions(1, compress, format=fmt, progress=False, zlib_engine="zlib"))
    flat = tmp_path / "flat"
    with open(flat, "wb") as f:
        save_vmcore(str(src), "-", SaveOptions(1, compress, flat=True, format=fmt,
                                               progress=False, zlib_engine="zlib"), f)
    out = tmp_path / "out"
    assert reassemble(str(flat), str(out)) == out.stat().st_size
    assert out.read_bytes() == (Path(plain.directory or "") / "vmcore").read_bytes()
    assert out.read_bytes() == makedumpfile_r(flat, tmp_path / "by-makedumpfile")
    assert not (tmp_path / "out-incomplete").exists()


def test_makedumpfiles_stream_reassembles_as_makedumpfile_does(tmp_path: Path,
                                                                crash_dump: DumpOf) -> None:
    if shutil.which("makedumpfile") is None:
        pytest.skip("makedumpfile is not installed")
    dump = crash_dump("x86", vmlinux=False)  # the VM tier's ELF vmcore
    flat = tmp_path / "flat"
    with open(flat, "wb") as f:
        r = subprocess.run(["makedumpfile", "-F", "-c", "-d", "31", str(dump.vmcore)],
                           stdout=f, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:  # a dump compressed with what this makedumpfile lacks (zstd)
        pytest.skip(f"makedumpfile -F cannot read {dump.vmcore}: {r.stderr.strip()[-120:]}")
    reassemble(str(flat), str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == makedumpfile_r(flat, tmp_path / "theirs")


@pytest.mark.parametrize("cut,says", [(100, "not a flattened dump"),
                                      (4096 + 8, "cut short at byte 4104: no end record"),
                                      (4096 + 40, "inside a record")])
def test_a_stream_cut_short_is_refused(tmp_path: Path, cut: int, says: str) -> None:
    src, _ = make_vmcore(tmp_path)
    flat = tmp_path / "flat"
    with open(flat, "wb") as f:
        save_vmcore(str(src), "-", SaveOptions(1, "zlib", flat=True, progress=False), f)
    flat.write_bytes(flat.read_bytes()[:cut])
    with pytest.raises(KdumpError, match=says):
        reassemble(str(flat), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("cut", [4096 + 8, 4096 + 40])
def test_a_stream_cut_short_names_what_it_left(tmp_path: Path, cut: int) -> None:
    """Found by review: a stream cut short left OUT-incomplete, which the README says is
    named, but the error only said where the stream ended."""
    src, _ = make_vmcore(tmp_path)
    flat = tmp_path / "flat"
    with open(flat, "wb") as f:
        save_vmcore(str(src), "-", SaveOptions(1, "zlib", flat=True, progress=False), f)
    flat.write_bytes(flat.read_bytes()[:cut])
    out = tmp_path / "out"
    with pytest.raises(KdumpError) as e:
        reassemble(str(flat), str(out))
    assert str(e.value).endswith(f"; what was written is left as {out}-incomplete")
    assert (tmp_path / "out-incomplete").exists()


def test_an_existing_output_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("mine")
    with pytest.raises(KdumpError, match="exists"):
        reassemble(str(tmp_path / "flat"), str(tmp_path / "out"))
    assert (tmp_path / "out").read_text() == "mine"


def test_an_output_made_meanwhile_is_never_overwritten(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """OUT was checked only at the start and OUT-incomplete renamed over it at the end: an
    OUT made meanwhile (a second reassemble to the same OUT, writing into the same
    OUT-incomplete) was replaced."""
    import kdumpctl_py.capture.reassemble as mod

    src, _ = make_vmcore(tmp_path)
    flat = tmp_path / "flat"
    with open(flat, "wb") as f:
        save_vmcore(str(src), "-", SaveOptions(1, "zlib", flat=True, progress=False), f)
    reassemble(str(flat), str(tmp_path / "whole"))
    out = tmp_path / "out"
    real = mod.reassemble_stream

    def another_run_meanwhile(*args: object, **kw: object) -> int:
        (tmp_path / "out-incomplete").write_text("the other run's")
        size = real(*args, **kw)  # type: ignore[arg-type]
        out.write_text("theirs")
        return size

    monkeypatch.setattr(mod, "reassemble_stream", another_run_meanwhile)
    with pytest.raises(KdumpError, match=f"^{re.escape(str(out))} appeared while "
                       f"{re.escape(str(flat))} was reassembled; the reassembled file is left "
                       "as .+: rename it, or remove it$") as e:
        reassemble(str(flat), str(out))
    assert out.read_text() == "theirs"
    left = Path(e.value.args[0].split(" left as ")[1].split(":")[0])
    assert left.parent == tmp_path and left.read_bytes() == (tmp_path / "whole").read_bytes()


def test_a_file_system_without_hard_links_still_gets_out(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """vfat (a USB stick a dump is carried on) refuses link() with EPERM: OUT is then made
    by rename, as before link() was used, never over an OUT already there."""
    import errno
    import os

    src, _ = make_vmcore(tmp_path)
    flat = tmp_path / "flat"
    with open(flat, "wb") as f:
        save_vmcore(str(src), "-", SaveOptions(1, "zlib", flat=True, progress=False), f)

    def no_links(*args: object, **kw: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    out = tmp_path / "out"
    assert reassemble(str(flat), str(out)) == out.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat", "out", src.name]
