"""The project under test: built as a wheel each run, unpacked into the guest.

The wheel is pure Python, so one wheel serves both guest architectures. Which
kdumpctl-py subcommands exist decides which stage implementations run (see
stages.py); that is probed on the host, from the same wheel, before the guest boots.
"""

from __future__ import annotations

import configparser
import fcntl
import logging
import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import HarnessError
from .guestroot import Entry
from .proc import run

log = logging.getLogger("crash-cycle")

DIST_PACKAGES = "usr/lib/python3/dist-packages"
DEFAULT_ENTRY = "kdumpctl_py.cli:main"
# Subcommands the cycle can use once they exist.
KNOWN_SUBCOMMANDS = ("status", "snapshot", "start", "save", "analyse")


@dataclass(frozen=True)
class ProjectWheel:
    path: Path
    unpacked: Path  # host copy, importable with PYTHONPATH
    entry: str  # module:function behind the kdumpctl-py console script


def host_python(repo: Path) -> str:
    """A host interpreter with the project's dependencies (drgn, pyelftools...)."""
    env = os.environ.get("KDUMPCTL_VM_PYTHON")
    if env:
        return env
    venv = repo / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def build(repo: Path, work: Path) -> ProjectWheel | None:
    """`pip wheel --no-deps` of the repository; None (with a warning) if it has no build file."""
    if not (repo / "pyproject.toml").exists() and not (repo / "setup.py").exists():
        log.warning("no pyproject.toml in %s yet: the guest gets no kdumpctl-py, "
                    "its stages will record the failure", repo)
        return None
    out = work / "wheel"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.whl"):
        old.unlink()
    # setuptools builds in the tree (build/): two guests of the VM tier's two lanes
    # (tests/lane.py) building at once would share its directories.
    (repo / "build").mkdir(exist_ok=True)
    with open(repo / "build" / ".wheel.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        run([host_python(repo), "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", out, repo],
            timeout=900)
    wheels = sorted(out.glob("kdumpctl_py-*.whl")) or sorted(out.glob("*.whl"))
    if not wheels:
        raise HarnessError(f"pip wheel produced no wheel in {out}")
    unpacked = work / "wheel-unpacked"
    with zipfile.ZipFile(wheels[0]) as z:
        z.extractall(unpacked)
    return ProjectWheel(wheels[0], unpacked, _entry_point(unpacked))


def _entry_point(unpacked: Path) -> str:
    for ep in unpacked.glob("*.dist-info/entry_points.txt"):
        cp = configparser.ConfigParser(delimiters=("=",))
        cp.optionxform = str  # type: ignore[assignment,method-assign]
        cp.read(ep)
        if cp.has_option("console_scripts", "kdumpctl-py"):
            return cp.get("console_scripts", "kdumpctl-py").strip()
    log.warning("the wheel declares no kdumpctl-py console script; assuming %s", DEFAULT_ENTRY)
    return DEFAULT_ENTRY


def launcher(entry: str, python: str = "/usr/bin/python3") -> str:
    module, _, func = entry.partition(":")
    return (
        f"#!{python}\n"
        "# kdumpctl-py launcher written by tests/vm/harness/wheel.py\n"
        "import sys\n"
        f"from {module} import {func}\n"
        f"sys.exit({func}())\n"
    )


def host_command(wheel: ProjectWheel, repo: Path) -> list[str]:
    """argv prefix that runs this wheel's kdumpctl-py on the host."""
    module, _, func = wheel.entry.partition(":")
    return [
        host_python(repo), "-c",
        f"import sys; sys.argv[0] = 'kdumpctl-py'; from {module} import {func}; "
        f"sys.exit({func}())",
    ]


def host_env(wheel: ProjectWheel) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(wheel.unpacked) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def subcommands(wheel: ProjectWheel | None, repo: Path) -> frozenset[str]:
    """Which of KNOWN_SUBCOMMANDS the wheel's CLI accepts (`SUB --help` exits 0)."""
    if wheel is None:
        return frozenset()
    found = set()
    for sub in KNOWN_SUBCOMMANDS:
        r = run([*host_command(wheel, repo), sub, "--help"], env=host_env(wheel),
                check=False, timeout=120)
        if r.returncode == 0:
            found.add(sub)
    log.info("kdumpctl-py subcommands in this wheel: %s", ", ".join(sorted(found)) or "none")
    return frozenset(found)


def guest_files(wheel: ProjectWheel | None,
                modules: set[str] | None = None) -> dict[str, Entry]:
    """Overlay entries: the unpacked wheel in dist-packages and /usr/bin/kdumpctl-py.

    With `modules`, only those modules' files (the capture initramfs).
    """
    if wheel is None:
        return {}
    files: dict[str, Entry] = {}
    with zipfile.ZipFile(wheel.path) as z:
        for info in z.infolist():
            if info.is_dir() or info.filename.split("/", 1)[0].endswith(".data"):
                continue
            name = info.filename.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            if modules is not None and (not info.filename.endswith(".py") or name not in modules):
                continue
            files[f"{DIST_PACKAGES}/{info.filename}"] = Entry(
                "file", perm=0o644, data=z.read(info))
    files["usr/bin/kdumpctl-py"] = Entry("file", perm=0o755,
                                         data=launcher(wheel.entry).encode())
    return files


# The `isal` package (ISA-L's deflate, capture/compress.py) goes into x86_64 guests only.
# arm64 has wheels too, but their extensions take 1.04 MB (0.94 on x86_64) and with them the
# smallest crashkernel= that saves on arm64 went from 112M to 128M (the rootfs full when the
# capture kernel loads its modules): arm64 guests, as riscv64 ones (no wheel), save zlib
# pages with the system zlib.
ISAL_MACHINES = ("x86_64",)


def isal_files(cache: Path, machine: str, python: str, host: str) -> dict[str, Entry]:
    """The isal package for a guest's dist-packages (Debian has no package of it): its
    Python modules and C extensions from the manylinux wheel of the version the host
    interpreter `host` (host_python: the one with the project's dependencies, not
    necessarily the one running the harness) has, for the guest's machine and Python,
    kept in `cache`; none where there is no wheel."""
    if machine not in ISAL_MACHINES:
        return {}
    asked = run([host, "-c", "from importlib.metadata import version; print(version('isal'))"],
                check=False)
    if asked.returncode != 0:
        raise HarnessError(f"{host} has no isal module to match the guest's",
                           hint="setup.sh installs kdumpctl-py's dependencies")
    wanted = asked.stdout.strip()
    tag = "cp" + python.replace(".", "")
    cache.mkdir(parents=True, exist_ok=True)
    pattern = f"isal-{wanted}-{tag}-{tag}-*_{machine}*.whl"
    if not sorted(cache.glob(pattern)):
        run([host, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--platform", f"manylinux2014_{machine}", "--python-version",
             python, "--implementation", "cp", "-d", cache, f"isal=={wanted}"], timeout=300)
    found = sorted(cache.glob(pattern))
    if not found:
        raise HarnessError(f"pip downloaded no {pattern} into {cache}")
    files: dict[str, Entry] = {}
    with zipfile.ZipFile(found[0]) as z:
        for info in z.infolist():
            if info.filename.startswith("isal/") and info.filename.endswith((".py", ".so")):
                files[f"{DIST_PACKAGES}/{info.filename}"] = Entry(
                    "file", perm=0o644, data=z.read(info))
    return files
