"""The memory budget and the window it buys."""

from __future__ import annotations

from kdumpctl_py.capture.budget import (
    DEFAULT_LIMIT,
    MAX_WINDOW_PAGES,
    MIN_LIMIT,
    default_limit,
    window_pages,
)


def test_default_is_half_of_memavailable_with_a_floor() -> None:
    assert default_limit({"MemAvailable": 400 << 20}) == 200 << 20
    assert default_limit({"MemAvailable": 91 << 20}) == MIN_LIMIT
    assert default_limit({}) == DEFAULT_LIMIT


def test_window_grows_with_the_budget_and_shrinks_with_threads() -> None:
    assert window_pages(1, 1) == 1  # the filter rounds it up to one section
    assert window_pages(48 << 20, 1) > window_pages(48 << 20, 4) > 0
    assert window_pages(1 << 40, 1) == MAX_WINDOW_PAGES
