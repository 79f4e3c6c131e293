"""One way to run host commands: argv lists, logged, failures raised once with stderr."""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import HarnessError

log = logging.getLogger("crash-cycle")


def run(
    argv: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = None,
    stdout_path: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv without a shell; raise HarnessError with its stderr when it fails.

    stdout_path sends stdout to a file (for large outputs such as a .deb's tar stream).
    """
    args = [str(a) for a in argv]
    log.debug("$ %s", shlex.join(args))
    try:
        if stdout_path is not None:
            with open(stdout_path, "wb") as out:
                done = subprocess.run(
                    args, cwd=cwd, env=env, stdout=out, stderr=subprocess.PIPE,
                    timeout=timeout, check=False,
                )
            result = subprocess.CompletedProcess(
                args, done.returncode, "", done.stderr.decode(errors="replace")
            )
        else:
            result = subprocess.run(
                args, cwd=cwd, env=env, capture_output=capture, text=True,
                errors="replace", timeout=timeout, check=False,
            )
    except FileNotFoundError as e:
        raise HarnessError(f"command not found: {args[0]}") from e
    except subprocess.TimeoutExpired as e:
        raise HarnessError(f"command timed out after {timeout} s: {shlex.join(args)}") from e
    if check and result.returncode != 0:
        tail = "\n".join((result.stderr or "").strip().splitlines()[-20:])
        raise HarnessError(
            f"command failed with exit status {result.returncode}: {shlex.join(args)}\n{tail}"
        )
    return result
