"""Turn the saved dump into report.json: `kdumpctl-py analyse` when it exists, else drgn."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .errors import HarnessError
from .proc import run
from .wheel import ProjectWheel, host_command, host_env, host_python

log = logging.getLogger("crash-cycle")

DRGN_SCRIPT = Path(__file__).with_name("drgn_report.py")


def find_vmcore(dumps: Path) -> Path | None:
    """The newest complete dump file under dumps/<name>/ (never *-incomplete)."""
    found = [
        p for p in dumps.glob("*/*")
        if p.is_file() and p.name.startswith(("vmcore", "dump"))
        and "incomplete" not in p.name and not p.name.endswith((".txt", ".json"))
    ]
    return max(found, key=lambda p: (p.parent.name, p.stat().st_size)) if found else None


# The host-side "analyse" step, chosen like a guest stage (see stages.choose).
ANALYSERS = ("drgn-script", "kdumpctl-py")


def choose_analyser(subcommands: frozenset[str], override: str | None) -> str:
    """kdumpctl-py analyse once the wheel has it, else the drgn script."""
    if override:
        return override
    return "kdumpctl-py" if "analyse" in subcommands else "drgn-script"


def analyse(analyser: str, vmcore: Path, vmlinux: Path, repo: Path,
            wheel: ProjectWheel | None, log_path: Path) -> dict[str, Any]:
    """Run the analyser and return its JSON; the analyser's stderr goes to log_path."""
    if analyser == "kdumpctl-py":
        if wheel is None:
            raise HarnessError("analyser kdumpctl-py asked for, but there is no wheel")
        argv = [*host_command(wheel, repo), "analyse", str(vmcore), "--vmlinux", str(vmlinux),
                "--json"]
        env: dict[str, str] | None = host_env(wheel)
    else:
        argv = [host_python(repo), str(DRGN_SCRIPT), str(vmcore), "--vmlinux", str(vmlinux)]
        env = None
    r = run(argv, env=env, check=False, timeout=1800)
    log_path.write_text(r.stderr)
    if r.returncode != 0:
        raise HarnessError(f"{analyser} failed with exit status {r.returncode}: "
                           f"{r.stderr.strip()[-1500:]}")
    try:
        result: dict[str, Any] = json.loads(r.stdout)
    except json.JSONDecodeError as e:
        raise HarnessError(f"{analyser} printed no JSON: {r.stdout[:500]!r}") from e
    result["harness_analyser"] = analyser
    return result
