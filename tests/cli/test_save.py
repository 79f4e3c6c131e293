from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from kdumpctl_py.cli import build_parser, main
from tests.builders import make_vmcore

ROOT = Path(__file__).resolve().parents[2]


def test_the_flat_output_rule_is_documented_and_kept(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--flat writes DIR/<host>-<date>/vmcore.flat, or standard output with --target -
    (makedumpfile -F writes only to standard output); help, README and man say so."""
    src, _ = make_vmcore(tmp_path)
    assert main(["save", "--vmcore", str(src), "--target", str(tmp_path / "t"), "--flat",
                 "--no-progress"]) == 0
    (saved,) = (tmp_path / "t").glob("*/vmcore.flat")
    out = capsys.readouterr().out
    assert f"saved {saved}: 27 of 296 pages written (13 zero pages left out)" in out
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    flat = next(a for a in sub.choices["save"]._actions if a.dest == "flat")
    readme = " ".join((ROOT / "README.md").read_text().split())
    man = (ROOT / "man" / "kdumpctl-py.8").read_text()
    for text in (flat.help or "", readme, man):
        assert "vmcore.flat" in text and "standard output" in text and "-F" in text
