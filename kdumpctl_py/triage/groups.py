"""Dumps grouped by crash signature: how often each bug struck, where, and since when.

Pure: analyses in, groups out, sorted by count (then by the newest crash), so the
bug that struck most comes first. Dumps whose analysis failed or found nothing to
sign are kept apart, with the reason, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kdumpctl_py.triage.found import Dump


@dataclass(frozen=True)
class Analysed:
    dump: Dump
    analysis: dict[str, Any] | None
    error: str | None = None

    @property
    def host(self) -> str | None:
        return self.dump.host or (self.analysis or {}).get("nodename")

    @property
    def signature(self) -> dict[str, Any] | None:
        sig = (self.analysis or {}).get("signature")
        return sig if isinstance(sig, dict) else None


@dataclass
class Group:
    signature: dict[str, Any]
    dumps: list[Analysed] = field(default_factory=list)  # newest first

    @property
    def example(self) -> Analysed:
        return self.dumps[0]

    def to_json(self) -> dict[str, Any]:
        first = self.example
        return {
            "signature": self.signature.get("id"),
            "kind": self.signature.get("kind"),
            "message": self.signature.get("message"),
            "frames": list(self.signature.get("frames") or []),
            "count": len(self.dumps),
            "hosts": sorted({d.host for d in self.dumps if d.host}),
            "kernels": sorted({str(d.analysis.get("release")) for d in self.dumps
                               if d.analysis and d.analysis.get("release")}),
            "first_seen": min(d.dump.date for d in self.dumps),
            "last_seen": max(d.dump.date for d in self.dumps),
            "example": {"dump": first.dump.vmcore,
                        "panic_message": (first.analysis or {}).get("panic_message")},
            "dumps": [d.dump.vmcore for d in self.dumps],
        }


def group(analysed: list[Analysed]) -> tuple[list[Group], list[Analysed]]:
    """(groups by signature, most dumps first; the dumps without a signature)."""
    groups: dict[str, Group] = {}
    unsigned = []
    for a in sorted(analysed, key=lambda a: a.dump.date, reverse=True):
        sig = a.signature
        if sig is None or not sig.get("id"):
            unsigned.append(a)
            continue
        groups.setdefault(str(sig["id"]), Group(sig)).dumps.append(a)
    ordered = sorted(groups.values(), key=lambda g: g.example.dump.date, reverse=True)
    ordered.sort(key=lambda g: -len(g.dumps))  # stable: the newest first among equals
    return ordered, unsigned
