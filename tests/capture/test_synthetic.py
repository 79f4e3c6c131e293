"""A synthetic 4 GiB machine: our dump is makedumpfile's, byte for byte."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kdumpctl_py.capture.save import SaveOptions, save_vmcore
from tests.synthetic_vmcore import write_vmcore


@pytest.fixture(scope="module")
def vmcore_4g(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synthetic") / "vmcore-4g"
    write_vmcore(str(path), 4 << 30)
    return path


def test_sparse(vmcore_4g: Path) -> None:
    assert vmcore_4g.stat().st_size > 4 << 30
    assert vmcore_4g.stat().st_blocks * 512 < 64 << 20


def test_same_file_as_makedumpfile(vmcore_4g: Path, tmp_path: Path) -> None:
    mdf = shutil.which("makedumpfile")
    if mdf is None:
        pytest.skip("makedumpfile is not installed (setup.sh installs it)")
    subprocess.run([mdf, "-c", "-d", "31", str(vmcore_4g), str(tmp_path / "mdf")], check=True,
                   capture_output=True)
    result = save_vmcore(str(vmcore_4g), str(tmp_path / "ours"),
                         SaveOptions(31, "zlib", threads=1, progress=False))
    assert result.directory
    assert (Path(result.directory) / "vmcore").read_bytes() == (tmp_path / "mdf").read_bytes()
