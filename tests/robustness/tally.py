"""What the robustness suites tried, for the summary printed at the end of the run."""

from __future__ import annotations

from collections import Counter

from kdumpctl_py.errors import KdumpError

counts: Counter[tuple[str, str]] = Counter()


def record(suite: str, outcome: str) -> None:
    counts[(suite, outcome)] += 1


def check_contract(parser: str, fn: object, *args: object) -> None:
    """Call a parser on outside data: it must work or refuse with one line, nothing else."""
    try:
        fn(*args)  # type: ignore[operator]
    except KdumpError as e:
        message = str(e)
        assert message and "\n" not in message, f"{parser}: not one line: {message!r}"
        record(parser, "refused")
        return
    record(parser, "accepted")


def summary() -> list[str]:
    if not counts:
        return []
    suites = sorted({s for s, _ in counts})
    outcomes = sorted({o for _, o in counts})
    width = max(len(s) for s in suites)
    lines = [f"{'':<{width}}  " + "  ".join(f"{o:>10}" for o in outcomes)]
    for s in suites:
        lines.append(f"{s:<{width}}  " + "  ".join(f"{counts[(s, o)]:>10}" for o in outcomes))
    return lines
