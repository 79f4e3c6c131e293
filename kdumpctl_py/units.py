"""Byte counts and addresses, for people and from people."""

from __future__ import annotations

from kdumpctl_py.errors import UsageError

MiB = 1 << 20
GiB = 1 << 30
MASK64 = (1 << 64) - 1  # u64 arithmetic wraps as the kernel's does

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def format_bytes(n: int | None) -> str:
    """1 GiB, 256 MiB, 1.5 GiB: exact binary units when they divide, one decimal otherwise."""
    if n is None:
        return "unknown"
    value = float(n)
    unit = 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    if value == int(value):
        return f"{int(value)} {_UNITS[unit]}"
    return f"{value:.1f} {_UNITS[unit]}"


_SUFFIXES = {"K": 1 << 10, "M": MiB, "G": GiB, "T": 1 << 40}


def parse_size(text: str) -> int:
    """An address or byte count typed by a person: 0x48000000, 4096, 512M, 0x10K.

    Any base Python's int() reads with a prefix (0x, 0o, 0b), so a leading
    zero is refused rather than guessed as octal; K, M, G and T (either case)
    multiply by powers of 1024.
    """
    body = text.strip()
    scale = _SUFFIXES.get(body[-1:].upper(), 1)
    if scale != 1:
        body = body[:-1]
    try:
        value = int(body, 0)
    except ValueError:
        raise UsageError(f"{text!r} is not a number (examples: 0x48000000, 4096, 512M)") from None
    if value < 0:
        raise UsageError(f"{text!r} is negative")
    return value * scale


def parse_range(text: str) -> tuple[int, int]:
    """START+SIZE (each as `parse_size` reads it) as (start, size); empty ranges are refused."""
    start, plus, size = text.partition("+")
    if not plus:
        raise UsageError(f"{text!r} is not START+SIZE (example: 0x48000000+16M)")
    value = (parse_size(start), parse_size(size))
    if value[1] == 0:
        raise UsageError(f"{text!r} is an empty range")
    return value
