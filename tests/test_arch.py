from __future__ import annotations

import argparse

import pytest

from kdumpctl_py.arch import ARCHES, get_arch
from kdumpctl_py.cli import build_parser

Path = tuple[str, ...]


def _arch_options(parser: argparse.ArgumentParser, path: Path = ()) -> list[Path]:
    """The command paths of every sub-command that takes --arch."""
    found = []
    for action in parser._actions:
        if "--arch" in action.option_strings:
            found.append(path)
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.extend(_arch_options(sub, (*path, name)))
    return found


def test_some_commands_take_an_architecture() -> None:
    assert ("get-default-crashkernel",) in _arch_options(build_parser())


@pytest.mark.parametrize("name", ["amd64", "arm64", "x86_64", "aarch64", "ppc64el"])
def test_every_arch_option_takes_debian_and_uname_names(name: str) -> None:
    parser = build_parser()
    for path in _arch_options(parser):
        extra = ["0", "--ram", "1G"] if path == ("crashkernel", "eval") else []
        args = parser.parse_args([*path, *extra, "--arch", name])
        assert get_arch(args.arch).name == get_arch(name).name


def test_debian_names_are_the_same_arch() -> None:
    assert get_arch("amd64") is ARCHES[0] and get_arch("arm64").name == "aarch64"


def test_no_architecture_branches_outside_the_table() -> None:
    """Per-architecture facts are fields of Arch (issue 20), as drgn's platform tables:
    no code tests an ELF machine number or an architecture's name."""
    import re
    from pathlib import Path

    import kdumpctl_py

    branch = re.compile(r"""(machine|\barch|arch\.name)\s*(==|!=|not in|in)\s*\(?(EM_|["'])""")
    package = Path(kdumpctl_py.__file__).parent
    found = [f"{path.relative_to(package)}:{n}: {line.strip()}"
             for path in sorted(package.rglob("*.py")) if path.name != "arch.py"
             for n, line in enumerate(path.read_text().splitlines(), 1) if branch.search(line)]
    assert found == []
