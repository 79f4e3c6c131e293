"""Test tiers: plain `pytest` runs the quick tier; `pytest --vm` adds QEMU crash cycles.

With `--vm` and KDUMPCTL_TEST_NO_SKIP=1 (as .ci/run sets it) a skipped test fails, as
drgn's CI does: what the VM tier cannot run is a failure there, never a silent gap.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import settings

# Property tests check what holds, not how fast: on a host busy with TCG guests an
# example can take seconds, and hypothesis's default 200 ms deadline failed them.
settings.register_profile("kdumpctl", deadline=None)
settings.load_profile("kdumpctl")

if TYPE_CHECKING:
    from tests.analyse.dumps import Dump
    from tests.vm.cycles import Cycle
    from tests.vm.harness.oracles import Oracles

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


def boots_a_built_kernel(item: pytest.Item) -> bool:
    """Whether the test boots one of kernel/build's kernels (tests/kernel's `kernels`)."""
    return "kernels" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--vm"):
        # Last, so that their kernels build in the background meanwhile (kernel_builds)
        # on the CPU the rest leaves idle; the order is otherwise kept (a stable sort).
        items.sort(key=boots_a_built_kernel)
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


@pytest.fixture(scope="session")
def cycles(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Cycle]:
    """Run a crash cycle for a set of arguments once per session; later calls reuse it."""
    from tests.vm.cycles import make_cycles

    return make_cycles(tmp_path_factory)


@pytest.fixture(scope="session", autouse=True)
def installed_roots(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                    ) -> Generator[Callable[[str], None], None, None]:
    """With --vm, the installed cycles' roots are built in the background from the
    session's start, at nice 10 (tests/vm/README.md), one arch after the other; a cycle
    calls this with its arch to wait for that one's root only."""
    arches = list(dict.fromkeys(
        item.callspec.params["arch"] for item in request.session.items
        if item.path.name == "test_installed_cycle.py" and hasattr(item, "callspec")))
    if not request.config.getoption("--vm") or not arches:
        yield lambda arch: None
        return
    log = tmp_path_factory.getbasetemp() / "installed-roots.log"
    ready = tmp_path_factory.mktemp("installed-roots")  # a file ARCH: that root is built
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["nice", "-n", "10", sys.executable, "-m", "tests.vm.installed_cycle", "--roots",
             "--ready", str(ready), *arches], cwd=Path(__file__).parents[1], stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)

    def wait(arch: str) -> None:
        while not (ready / arch).exists():
            if proc.poll() is not None:
                if proc.returncode:  # the cycle builds the root itself and says what failed
                    print(f"building the installed roots in the background failed: {log}")
                return
            time.sleep(1)

    try:
        yield wait
    finally:
        interrupt(proc)  # SIGINT lets the half-built cache entry be removed


@pytest.fixture(scope="session", autouse=True)
def kernel_builds(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                  ) -> Generator[None, None, None]:
    """With --vm, the patched kernels that the collected tests boot are built in the
    background from the session's start, at nice 10, one after the other. A crash cycle
    is about one busy CPU of two (an arm64 cycle: 71 CPU s in 67 s), and each of a fresh
    machine's two builds takes both for 6-9 minutes; the tests that boot them run last.
    kernel/build locks each build: a test there first waits for the one under way and
    takes it from the cache, or builds its own and the background finds it built."""
    from tests.kernel import build_command

    wanted = list(dict.fromkeys(
        (item.callspec.params["series"], item.callspec.params["profile"])
        for item in request.session.items
        if boots_a_built_kernel(item) and hasattr(item, "callspec")
        and {"series", "profile"} <= item.callspec.params.keys()))
    if not request.config.getoption("--vm") or not wanted:
        yield
        return
    log = tmp_path_factory.getbasetemp() / "kernel-builds.log"
    stop = threading.Event()
    guard = threading.Lock()  # no build starts once the session has stopped them
    current: subprocess.Popen[bytes] | None = None

    def build_all() -> None:
        nonlocal current
        with log.open("ab") as out:
            for series, profile in wanted:
                with guard:
                    if stop.is_set():
                        return
                    current = proc = subprocess.Popen(
                        ["nice", "-n", "10",
                         *build_command("--series", series, "--profile", profile)],
                        stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
                if proc.wait() and not stop.is_set():  # the test's own build says what failed
                    print(f"building kernel {series} ({profile}) in the background failed: "
                          f"{log}")

    worker = threading.Thread(target=build_all, daemon=True)
    worker.start()
    try:
        yield
    finally:
        with guard:
            stop.set()
        if current is not None:  # cut short, it leaves no result: kernel/build renames one in whole
            interrupt(current)
        worker.join()


def interrupt(proc: subprocess.Popen[bytes]) -> None:
    """Stop a background process group, if still running: SIGINT, which lets it clean
    up, then SIGKILL after a minute."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


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

    lines = tally.summary()
    if lines:
        terminalreporter.section("robustness: inputs tried and faults injected")
        for line in lines:
            terminalreporter.write_line(line)
