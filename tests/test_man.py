"""man/: lint-clean, every sub-command documented, kdumpctl-py.conf(5) from the table."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kdumpctl_py.config.man import render_man
from kdumpctl_py.config.settings import SETTINGS

MAN = Path(__file__).resolve().parents[1] / "man"
PAGES = ("kdumpctl-py.8", "kdumpctl-py.conf.5")


@pytest.mark.skipif(shutil.which("mandoc") is None, reason="no mandoc")
@pytest.mark.parametrize("page", PAGES)
def test_mandoc_lint_clean(page: str) -> None:
    r = subprocess.run(["mandoc", "-Tlint", str(MAN / page)], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr


def test_conf_page_is_generated_from_the_settings_table() -> None:
    text = (MAN / "kdumpctl-py.conf.5").read_text()
    assert text == render_man(), ("man/kdumpctl-py.conf.5 is stale: "
                                  "python -m kdumpctl_py.config.man > man/kdumpctl-py.conf.5")
    for s in SETTINGS:
        assert re.search(rf'^\.BI "{re.escape("|".join(s.names))} "', text, re.M), s.name
