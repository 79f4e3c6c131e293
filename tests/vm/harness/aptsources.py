"""Read the Debian archive URIs from this machine's own apt sources.

The repository never names a mirror: whatever mirror the host uses for its own
Debian suite is reused for the guest's suite, under a private apt configuration.
The parsing is kdumpctl-py's own (`kdumpctl_py.analyse.apt`, which `debuginfo
fetch` uses the same way); this module only picks the host's suite and turns a
failure into the harness's error.
"""

from __future__ import annotations

import re

from kdumpctl_py.analyse.apt import (
    DEFAULT_KEYRING,
    Mirrors,
    SourceEntry,
    debian_mirrors,
    machine_entries,
    parse_deb822,
    parse_one_line,
    prepare_private,
    private_options,
    private_sources,
)
from kdumpctl_py.errors import KdumpError

from .errors import HarnessError

__all__ = ["DEFAULT_KEYRING", "Mirrors", "SourceEntry", "find_mirrors", "machine_entries",
           "parse_deb822", "parse_one_line", "prepare_private", "private_options",
           "private_sources"]


def find_mirrors(entries: list[SourceEntry]) -> Mirrors:
    """The main archive and -security archive of the host's own Debian suite."""
    suites = [s for e in entries if "main" in e.components for s in e.suites
              if re.fullmatch(r"[a-z]+", s)]
    try:
        if not suites:
            raise KdumpError("no Debian suite with component main")
        return debian_mirrors(entries, suites[0])
    except KdumpError as e:
        raise HarnessError(
            f"no Debian archive with component 'main' found in /etc/apt sources ({e})",
            hint="the harness reuses the host's own Debian mirror; configure apt first",
        ) from None
