"""The running kernel's build configuration (/boot/config-*, /proc/config.gz)."""

from __future__ import annotations


def parse_kconfig(text: str) -> dict[str, str]:
    """CONFIG_FOO=y lines into {"CONFIG_FOO": "y"}; "is not set" lines are left out."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_"):
            key, sep, value = line.partition("=")
            if sep:
                out[key] = value.strip('"')
    return out

