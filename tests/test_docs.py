"""README's command table and the man page's COMMANDS list what the parser accepts.

Every sub-command must have a README row and a man page section naming it, and
every option it takes must appear there; neither may name a command that does
not exist (issue 23, item 14).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from kdumpctl_py.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
GLOBAL = {"-h", "--help", "--debug", "--sysroot"}


def commands() -> dict[str, set[tuple[str, ...]]]:
    """Each top-level command (not its aliases) and the option spellings of it and its
    sub-commands: one tuple of spellings an option."""
    out: dict[str, set[tuple[str, ...]]] = {}

    def options(parser: argparse.ArgumentParser) -> set[tuple[str, ...]]:
        found = set()
        for action in parser._actions:
            spellings = tuple(o for o in action.option_strings if o not in GLOBAL)
            if spellings:
                found.add(spellings)
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    found |= options(action.choices[choice.dest])
        return found

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    for choice in sub._choices_actions:
        out[choice.dest] = options(sub.choices[choice.dest])
    return out


def readme_rows() -> list[tuple[set[str], str]]:
    """(commands named, first cell) of each row of README's command table."""
    rows = []
    for line in (ROOT / "README.md").read_text().splitlines():
        m = re.match(r"\| `kdumpctl-py (.*?)` \| ", line)
        if m:
            cell = m.group(1).replace("\\|", "|")
            names = set()
            for part in re.split(r"` / `", cell):
                names |= set(part.split(" ", 1)[0].split("|"))
            rows.append((names, cell))
    return rows


def man_sections() -> list[tuple[set[str], str]]:
    """(commands named, heading and text) of each section of kdumpctl-py(8)'s COMMANDS."""
    text = (ROOT / "man" / "kdumpctl-py.8").read_text().replace("\\-", "-")
    body = text.split(".SH COMMANDS", 1)[1].split("\n.SH ", 1)[0]
    return [(set(section.split(" ", 1)[0].split("\n")[0].split("|")), section)
            for section in body.split("\n.SS ")[1:]]


@pytest.mark.parametrize("where", ["README.md", "man/kdumpctl-py.8"])
def test_docs_list_every_command_and_option(where: str) -> None:
    places = readme_rows() if where == "README.md" else man_sections()
    parsed = commands()
    named = set().union(*(names for names, _ in places))
    assert named - set(parsed) == set(), f"{where} names commands the parser does not have"
    for command, options in parsed.items():
        text = " ".join(t for names, t in places if command in names)
        assert text, f"{where} does not describe {command}"
        missing = [spellings for spellings in options
                   if not any(re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", text)
                              for s in spellings)]
        assert missing == [], f"{where} does not give {command} these options"


def test_every_help_has_a_description_line() -> None:
    from kdumpctl_py.service.lock import STATE_COMMANDS

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    for choice in sub._choices_actions:
        description = sub.choices[choice.dest].description or ""
        assert description.endswith("."), choice.dest
        assert ("changes this machine" in description) == (choice.dest in STATE_COMMANDS)


def test_dmesg_and_analyse_refuse_what_is_no_dump_alike(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kdumpctl_py.cli import main

    pytest.importorskip("drgn")
    (tmp_path / "text").write_text("hello")
    (tmp_path / "flat").write_bytes(b"makedumpfile\0\0\0\0" + bytes(100))
    for name in ("text", "flat", "missing"):
        errors = []
        for command in ("dmesg", "analyse"):
            assert main([command, str(tmp_path / name)]) == 2
            errors.append(capsys.readouterr().err)
        assert errors[0] == errors[1] and errors[0].count("\n") == 1
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    vmcore = next(a for a in sub.choices["dmesg"]._actions if a.dest == "vmcore")
    assert "kdump-compressed" in (vmcore.help or "")
