"""Test modules share helpers through tests/builders.py, never by importing each other."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent


def imported_modules(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def test_no_test_module_imports_another() -> None:
    found = {str(path.relative_to(TESTS)): sorted(m for m in imported_modules(path)
                                                  if m.startswith("tests.")
                                                  and m.rsplit(".", 1)[-1].startswith("test_"))
             for path in sorted(TESTS.rglob("*.py"))}
    assert {k: v for k, v in found.items() if v} == {}
