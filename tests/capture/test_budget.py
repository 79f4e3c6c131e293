"""The memory budget, the window it buys and the compression threads it holds."""

from __future__ import annotations

from kdumpctl_py.capture.budget import (
    DEFAULT_LIMIT,
    MAX_WINDOW_PAGES,
    MIN_LIMIT,
    default_limit,
    threads_within,
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


def test_threads_are_what_the_budget_holds_the_chunks_of() -> None:
    """Each thread keeps two chunks in flight, each a read buffer and its compressed copy:
    --threads 64 at --memory-limit 56M would hold 256 MiB of them."""
    assert threads_within(MIN_LIMIT, 64) == 3
    assert threads_within(MIN_LIMIT, 2) == 2
    assert threads_within(1, 8) == 1  # one thread always
    assert threads_within(160 << 20, 64) == 29
    assert window_pages(MIN_LIMIT, threads_within(MIN_LIMIT, 64)) > 0
