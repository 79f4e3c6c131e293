"""Test tiers: plain `pytest` runs the quick tier; `pytest --vm` adds QEMU crash cycles.

With `--vm` and KDUMPCTL_TEST_NO_SKIP=1 (as .ci/run sets it) a skipped test fails, as
drgn's CI does: what the VM tier cannot run is a failure there, never a silent gap.
"""

from __future__ import annotations

import json
import os
import sys
import types
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import settings

from tests.lane import Job, Key, Lane

# Property tests check what holds, not how fast: on a host busy with TCG guests an
# example can take seconds, and hypothesis's default 200 ms deadline failed them.
settings.register_profile("kdumpctl", deadline=None)
settings.load_profile("kdumpctl")

if TYPE_CHECKING:
    from tests.analyse.dumps import Dump
    from tests.vm.cycles import Cycle
    from tests.vm.harness.oracles import Oracles
    from tests.vm.installed_cycle import Result as InstalledResult

FIXTURES = Path(__file__).parent / "fixtures"
SNAPSHOTS = FIXTURES / "snapshots"
SNAPSHOT_NAMES = sorted(p.name for p in SNAPSHOTS.iterdir() if p.is_dir())


@pytest.fixture
def fake_systemd(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """systemd-python's daemon.notify and journal.send, recording what they are given."""
    sent: dict[str, list[Any]] = {"notify": [], "journal": []}
    pkg = types.ModuleType("systemd")
    daemon = types.ModuleType("systemd.daemon")
    journal = types.ModuleType("systemd.journal")
    daemon.notify = lambda text: sent["notify"].append(text)  # type: ignore[attr-defined]
    journal.send = lambda msg, **f: sent["journal"].append((msg, f))  # type: ignore[attr-defined]
    pkg.daemon, pkg.journal = daemon, journal  # type: ignore[attr-defined]
    for name, mod in (("systemd", pkg), ("systemd.daemon", daemon),
                      ("systemd.journal", journal)):
        monkeypatch.setitem(sys.modules, name, mod)
    return sent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--vm", action="store_true", help="also run the VM tier (QEMU crash cycles)")


# Fixtures whose jobs the lane runs ahead (tests/lane.py): fixture -> the job a test
# takes through it, from the test's parameters. A crash cycle is named by a `cycle` mark.
LANE_FIXTURES: dict[str, Callable[[dict[str, Any]], Key]] = {
    "installed_systems": lambda p: ("installed", p["arch"]),
    "kernel_cycles": lambda p: ("kernel-cycle", p["series"], p["profile"]),
    "kernels": lambda p: ("kernel", p["series"], p["profile"]),
    "kernel_objects": lambda p: ("objects", p["series"], p["profile"]),
    "kernel_source": lambda p: ("kernel", p["series"], "arm64"),  # the build unpacks it
}
UNASKED = pytest.StashKey[list[Key]]()


def lane_keys(item: pytest.Item) -> list[Key]:
    """The lane's jobs that a test will take, from its fixtures' parameters and marks."""
    keys: list[Key] = [("cycle", tuple(mark.args)) for mark in item.iter_markers("cycle")]
    params = getattr(getattr(item, "callspec", None), "params", {})
    for fixture in getattr(item, "fixturenames", ()):
        if fixture in LANE_FIXTURES:
            try:
                keys.append(LANE_FIXTURES[fixture](params))
            except KeyError:  # not parametrized by what names the job: nothing ahead
                pass
    return keys


def vm_order(item: pytest.Item) -> int:
    """Where a test runs under --vm: first those whose guests are their own (the systemd
    and network cycles, with their servers), then those that take the lane's jobs, the
    longest of these last: the installed systems, then the kernel builds. The lane starts
    from the end, so it begins with the longest jobs while the tests run the rest, and
    the two meet among the short crash cycles."""
    kinds = {key[0] for key in lane_keys(item)}
    if kinds & {"kernel", "objects", "kernel-cycle"}:
        return 3
    if "installed" in kinds:
        return 2
    return 1 if kinds else 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--vm"):
        items.sort(key=vm_order)  # a stable sort: the order is otherwise kept
        return
    skip = pytest.mark.skip(reason="VM tier: run with --vm")
    for item in items:
        if item.get_closest_marker("vm"):  # the marker, not the tests/vm directory's name
            item.add_marker(skip)


@pytest.fixture(scope="session")
def _run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("run")


@pytest.fixture(autouse=True)
def probe_cache(_run_dir: Path, request: pytest.FixtureRequest,
                monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own probe cache for live views (made only when written): a test that
    fakes the kernel's answers must leave them neither in this host's /run nor to
    another test."""
    import hashlib

    from kdumpctl_py.load import probe

    name = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]
    path = _run_dir / name / "probe.json"
    monkeypatch.setattr(probe, "CACHE", str(path))
    return path


def no_skip(config: pytest.Config) -> bool:
    return bool(config.getoption("--vm")) and os.environ.get("KDUMPCTL_TEST_NO_SKIP") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and no_skip(item.config):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under KDUMPCTL_TEST_NO_SKIP=1: {reason}"


@pytest.fixture(scope="session", autouse=True)
def lane(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Generator[Lane, None, None]:
    """The VM tier's second lane (tests/lane.py): with --vm it runs, from the session's
    start, the jobs the collected tests will take, from the last test's back; without,
    each job runs when a test takes it."""
    from tests import kernel
    from tests.vm import cycles as crash_cycles
    from tests.vm import installed_cycle

    def make(key: Key) -> Job:
        match key:
            case ("cycle", tuple() as args):
                return crash_cycles.cycle_job(args, tmp_path_factory)
            case ("installed", str() as arch):
                return installed_cycle.cycle_job(arch, tmp_path_factory)
            case ("kernel", str() as series, str() as profile):
                return kernel.build_job(series, profile)
            case ("objects", str() as series, str() as profile):
                return kernel.build_job(series, profile, "--objects-only")
            case ("kernel-cycle", str() as series, str() as profile):
                return kernel.cycle_job(series, profile, the_lane, tmp_path_factory)
        raise ValueError(f"no lane job is named {key}")

    ahead = ([key for item in request.session.items for key in lane_keys(item)]
             if request.config.getoption("--vm") else [])
    # A kernel build yields to the guests (nice 10); the lane's own guests do not, so
    # that neither lane's guest crawls past its timeouts.
    the_lane = Lane(make, ahead, nice=lambda key: 10 if key[0] in ("kernel", "objects") else 0)
    the_lane.start()
    try:
        yield the_lane
    finally:
        the_lane.stop()
        request.config.stash[UNASKED] = the_lane.unasked()


@pytest.fixture(scope="session")
def cycles(lane: Lane) -> Callable[..., Cycle]:
    """Run a crash cycle for a set of arguments once per session; later calls reuse it.
    A test's `cycle` mark with the same arguments lets the lane run it ahead."""
    return lambda *args: lane.take(("cycle", args))


@pytest.fixture(scope="session")
def installed_systems(lane: Lane) -> Callable[[str], InstalledResult]:
    """An arch -> its installed-system cycle (tests/vm/installed_cycle.py), run once."""
    return lambda arch: lane.take(("installed", arch))


@pytest.fixture(scope="session")
def tools() -> Callable[[str, str], Oracles]:
    """A suite's makedumpfile and crash for an architecture, unpacked once per session."""
    from tests.vm.harness import aptsources
    from tests.vm.harness.cache import cache_root
    from tests.vm.harness.config import ARCHES
    from tests.vm.harness.oracles import oracles

    made: dict[tuple[str, str], Oracles] = {}

    def get(suite: str, arch: str) -> Oracles:
        if (suite, arch) not in made:
            mirrors = aptsources.find_mirrors(aptsources.machine_entries())
            made[suite, arch] = oracles(cache_root(), suite, ARCHES[arch], mirrors)
        return made[suite, arch]

    return get


@pytest.fixture(scope="session")
def crash_dump(request: pytest.FixtureRequest,
               cycles: Callable[..., Cycle]) -> Callable[..., Dump]:
    """A real crash-cycle dump per architecture (tests/analyse/dumps.py): the VM tier's
    own, run with --vm when the cache has none made from these sources."""
    from tests.analyse.dumps import dump_getter

    return dump_getter(request.config, cycles)


def expected_facts(name: str) -> dict[str, Any]:
    """What is known to be true of a fixture machine, written when it was captured."""
    result: dict[str, Any] = json.loads((SNAPSHOTS / f"{name}.expected.json").read_text())
    return result


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.robustness import tally

    unasked = terminalreporter.config.stash.get(UNASKED, [])
    if unasked:
        terminalreporter.section("the lane ran jobs that no test took (a stale mark?)")
        for key in unasked:
            terminalreporter.write_line(repr(key))

    lines = tally.summary()
    if lines:
        terminalreporter.section("robustness: inputs tried and faults injected")
        for line in lines:
            terminalreporter.write_line(line)
