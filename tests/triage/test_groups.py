from __future__ import annotations

from typing import Any

from kdumpctl_py.triage.found import Dump
from kdumpctl_py.triage.groups import Analysed, group


def analysed(host: str, date: str, sig: str | None, release: str = "6.1.0") -> Analysed:
    dump = Dump(f"/d/{host}-{date}", f"/d/{host}-{date}/vmcore", host, date, True, 1, None)
    if sig is None:
        return Analysed(dump, None, "ValueError: bad dump")
    analysis: dict[str, Any] = {
        "release": release, "panic_message": f"panic {sig}",
        "signature": {"id": sig, "kind": "panic", "message": sig, "frames": ["f", "g"]}}
    return Analysed(dump, analysis)


def test_groups_by_signature_commonest_first() -> None:
    items = [analysed("a", "2026-11-01T00:00:00", "one"),
             analysed("b", "2026-11-03T00:00:00", "two", "6.12.0"),
             analysed("c", "2026-11-02T00:00:00", "two"),
             analysed("d", "2026-11-04T00:00:00", "three"),
             analysed("e", "2026-11-05T00:00:00", None)]
    groups, unsigned = group(items)
    assert [g.signature["id"] for g in groups] == ["two", "three", "one"]
    two = groups[0].to_json()
    assert two["count"] == 2 and two["hosts"] == ["b", "c"]
    assert two["kernels"] == ["6.1.0", "6.12.0"]
    assert (two["first_seen"], two["last_seen"]) == ("2026-11-02T00:00:00",
                                                     "2026-11-03T00:00:00")
    assert two["example"] == {"dump": "/d/b-2026-11-03T00:00:00/vmcore",
                              "panic_message": "panic two"}
    assert two["frames"] == ["f", "g"] and two["kind"] == "panic"
    assert [a.dump.host for a in unsigned] == ["e"]
