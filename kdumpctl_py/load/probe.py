"""Probing the live kernel's load calls, at most once per boot.

The probes are system calls, so the shell makes them here and hands the
answers to the SystemView (facts never call into this layer). Their answers
are kept in /run, which is emptied at every boot, keyed by the boot's id,
the kernel release and what may change an answer within a boot (the caller's
euid, lockdown, kexec_load_disabled). With a kexec load limit set nothing is
probed (a probe would spend a load): the view judges from evidence instead.
Views rooted at a snapshot never read or write the cache.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import get_args

from kdumpctl_py.facts.kexec_calls import Availability, extended_from_types, limits_set
from kdumpctl_py.facts.view import SystemView
from kdumpctl_py.fileio import replace_atomically
from kdumpctl_py.load.extended import probe_extended
from kdumpctl_py.load.syscalls import probe_kexec_file_load, probe_kexec_load

CACHE = "/run/kdumpctl-py/probe.json"
CALLS = ("extended", "kexec_file_load", "kexec_load")


def _key(view: SystemView) -> dict[str, object] | None:
    if view.boot_id is None:
        return None
    return {"boot_id": view.boot_id, "release": view.uname.release, "euid": os.geteuid(),
            "lockdown": view.lockdown, "kexec_load_disabled": view.kexec_load_disabled}


def _cached(path: Path, key: dict[str, object]) -> dict[str, Availability] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    answers = data.get("probes")
    known = get_args(Availability)
    if not isinstance(answers, dict) or sorted(answers) != sorted(CALLS) \
            or any(v not in known for v in answers.values()):
        return None
    return {k: answers[k] for k in CALLS}


def _probe(view: SystemView) -> dict[str, Availability]:
    return {
        "extended": (extended_from_types(view.kexec_file_fdset_types)
                     or probe_extended(view.arch)),
        "kexec_file_load": probe_kexec_file_load(view.arch),
        "kexec_load": probe_kexec_load(view.arch),
    }


def probe_calls(view: SystemView, cache: str | None = None) -> dict[str, Availability] | None:
    """The live kernel's answers, from this boot's cache or probed now (and cached when
    every answer is definite); None for a snapshot, or when a limit forbids probing."""
    if not view.live or limits_set(view.kexec_load_limits):
        return None
    key = _key(view)
    path = Path(cache or CACHE)
    if key is not None and (answers := _cached(path, key)) is not None:
        return answers
    answers = _probe(view)
    if key is not None and "unknown" not in answers.values():
        try:
            path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            replace_atomically(path, json.dumps({"key": key, "probes": answers}).encode(),
                               backup=False)
        except OSError:
            pass  # not root, or /run read-only: probe again next time
    return answers


def probed_view(view: SystemView, cache: str | None = None) -> SystemView:
    """`view` with the live kernel's probe answers handed in (a snapshot view as it is)."""
    answers = probe_calls(view, cache)
    return view if answers is None else SystemView(view.root, probes=answers)
