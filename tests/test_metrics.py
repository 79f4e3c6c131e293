"""status --prometheus: the textfile collector's format, checked with prometheus_client's
own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from kdumpctl_py.facts.view import DumpEntry
from kdumpctl_py.metrics import Facts, dump_time, outcome_of_test, render

FACTS = Facts(operational=True, crash_region_bytes=256 << 20, loaded=True,
              dumps=[DumpEntry("web-2026-11-30-08:15:02", True, 100),
                     DumpEntry("web-2026-12-01-09:00:00", False, 5)],
              last_test="20261201-085959: dump created, /var/crash/web-2026-12-01-09:00:00",
              reserved_bytes=256 << 20, needed_bytes=176 << 20)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge" and family.documentation
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_every_metric_parses() -> None:
    got = samples(render(FACTS))
    assert got == {
        ("kdumpctl_py_operational", ()): 1,
        ("kdumpctl_py_crash_region_bytes", ()): 256 << 20,
        ("kdumpctl_py_capture_kernel_loaded", ()): 1,
        ("kdumpctl_py_last_dump_timestamp_seconds", ()): 1796115600,
        ("kdumpctl_py_dumps", (("complete", "true"),)): 1,
        ("kdumpctl_py_dumps", (("complete", "false"),)): 1,
        ("kdumpctl_py_last_test_success", ()): 1,
        ("kdumpctl_py_last_test_timestamp_seconds", ()): 1796115599,
        ("kdumpctl_py_reservation_bytes", ()): 256 << 20,
        ("kdumpctl_py_estimate_bytes", ()): 176 << 20,
    }


def test_what_is_unknown_is_left_out() -> None:
    text = render(Facts(False, None, None, [], None, None, None))
    assert set(samples(text)) == {("kdumpctl_py_operational", ()),
                                  ("kdumpctl_py_dumps", (("complete", "true"),)),
                                  ("kdumpctl_py_dumps", (("complete", "false"),))}


def test_outcome_of_tests_and_dump_times() -> None:
    assert outcome_of_test("20261201-085959: dump NOT created, failed: no space")[0] == 0
    assert outcome_of_test("20261201-085959: no result in /var/crash (started ...)") == (
        None, 1796115599)
    assert outcome_of_test("unreadable record /var/lib/kdumpctl-py/test.json") == (None, None)
    assert dump_time("by-hand") is None
