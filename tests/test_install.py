"""A plain `pip install` of the wheel is enough for what every machine runs: the default save.

Installs the wheel with its required dependencies only (from the package index, through
pip's cache) into a fresh virtual environment of Debian's Python, saves a synthetic vmcore
with the configuration's defaults, and checks that `analyse` names the extra it lacks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kdumpctl_py.capture.compress import DUMP_DH_COMPRESSED_ZSTD
from kdumpctl_py.capture.kdumpfile import read_kdump
from tests.synthetic_vmcore import write_vmcore

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.vm  # minutes, and it needs the package index


def run(*argv: str | Path, ok: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    """Run with this environment less PYTHONPATH (a checkout on it looks installed to pip)."""
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | env
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=900,
                          env=clean)
    if ok:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with the wheel and nothing else; its bin directory."""
    work = tmp_path_factory.mktemp("install")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", work, ROOT)
    (wheel,) = work.glob("kdumpctl_py-*.whl")
    run("/usr/bin/python3", "-m", "venv", work / "venv")
    run(work / "venv/bin/python", "-m", "pip", "install", "-q", wheel)
    return work / "venv/bin"


def test_a_plain_install_saves_with_the_defaults(plain: Path, tmp_path: Path) -> None:
    vmcore = tmp_path / "vmcore"
    write_vmcore(str(vmcore), 1 << 30)
    config = tmp_path / "kdump.conf"
    config.write_text("")  # the defaults: -d 31, zstd, the kdump format
    run(plain / "kdumpctl-py", "save", "--vmcore", vmcore, "--target", tmp_path / "out",
        "--no-progress", "--no-space-check", KDUMPCTL_CONFIG=str(config))
    (dump,) = (tmp_path / "out").glob("*/vmcore")
    assert read_kdump(str(dump)).header.status & DUMP_DH_COMPRESSED_ZSTD


def test_a_plain_install_says_what_analysis_needs(plain: Path, tmp_path: Path) -> None:
    assert run(plain / "python", "-c", "import drgn", ok=False).returncode != 0
    done = run(plain / "kdumpctl-py", "analyse", tmp_path / "vmcore", ok=False)
    assert done.returncode == 1
    assert "kdumpctl-py[analyse]" in done.stderr and "Traceback" not in done.stderr
