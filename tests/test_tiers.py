"""The test tiers themselves: KDUMPCTL_TEST_NO_SKIP=1 makes a skip under --vm a failure."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

TESTS = """
import pytest

def test_skips():
    pytest.skip("nothing to run on")

@pytest.mark.skipif(True, reason="not here")
def test_marked():
    pass

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False

@pytest.mark.vm
def test_in_a_guest():
    pass
"""


@pytest.fixture
def tiers(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest("from tests.conftest import (pytest_addoption,"
                          " pytest_collection_modifyitems, pytest_runtest_makereport)\n")
    pytester.makeini('[pytest]\nmarkers =\n    vm: boots QEMU guests\n')
    pytester.makepyfile(TESTS)
    return pytester


@pytest.mark.parametrize("vm,env,outcome", [
    (True, "1", {"passed": 1, "failed": 1, "errors": 1, "xfailed": 1}),  # a setup skip: error
    (True, None, {"passed": 1, "skipped": 2, "xfailed": 1}),
    (False, "1", {"skipped": 3, "xfailed": 1}),  # the quick tier may skip
], ids=["vm-no-skip", "vm", "quick-no-skip"])
def test_no_skip_fails_every_skip_of_the_vm_tier(tiers: pytest.Pytester,
                                                 monkeypatch: pytest.MonkeyPatch, vm: bool,
                                                 env: str | None,
                                                 outcome: dict[str, int]) -> None:
    if env is None:
        monkeypatch.delenv("KDUMPCTL_TEST_NO_SKIP", raising=False)
    else:
        monkeypatch.setenv("KDUMPCTL_TEST_NO_SKIP", env)
    result = tiers.runpytest("--vm", "-p", "no:cacheprovider") if vm else tiers.runpytest(
        "-p", "no:cacheprovider")
    result.assert_outcomes(**outcome)
    if vm and env:
        said = "*skipped under KDUMPCTL_TEST_NO_SKIP=1: Skipped: "
        result.stdout.fnmatch_lines([said + "not here*", said + "nothing to run on*"])
