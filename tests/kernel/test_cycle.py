"""VM tier: crash cycles on kernel/build's arm64 kernels, with and without the series.

Both kernels are Debian's linux-source-6.12 built from one config fragment; the
patched one has kernel/patches. kernel/build caches them (a cold build takes
minutes, see kernel/README.md), the unpatched one first because the
patched build starts from its objects. Each cycle boots the Image under QEMU with
no modules, runs `kdumpctl-py status` and `start`, crashes, saves and analyses the
dump with the build's vmlinux (no DWARF: the release, the panic message and the
kernel's own Call Trace come from VMCOREINFO, kallsyms and the log).

Run with `pytest --vm tests/kernel`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "kernel" / "build"
GUEST_ABI = Path(__file__).with_name("guest_abi.py")
sys.path.insert(0, str(REPO / "tests" / "vm"))

from cycles import CRASH_CYCLE, Cycle, assert_good_dump  # noqa: E402

BUILD_TIMEOUT_S = 60 * 60  # a cold build on a busy 2-core machine
CYCLE_TIMEOUT_S = 20 * 60
MARKER = "issue-12.capture-dtb"

# What the patched kernel answers to each refusal in guest_abi.py.
REFUSALS = {
    "null set (the probe)": "EFAULT",
    "more than 8 entries": "EINVAL",
    "unknown type": "EINVAL",
    "kernel twice": "EINVAL",
    "no kernel": "EINVAL",
    "kernel_fd argument": "EINVAL",
    "initrd_fd argument": "EINVAL",
    "with unload": "EINVAL",
    "no-initramfs with an initrd": "EINVAL",
    "negative fd": "EBADF",
    "closed fd": "EBADF",
    "dtb not an fdt": "EINVAL",
    "dtb over 2 MiB": "EFBIG",
    "dtb shorter than its totalsize": "EINVAL",
}


@pytest.fixture(scope="session")
def kernels() -> dict[str, Path]:
    """variant -> built Image (its vmlinux and build.json beside it)."""
    images = {}
    for variant in ("unpatched", "patched"):  # in this order: see the module doc
        r = subprocess.run([sys.executable, str(BUILD), f"--{variant}"], capture_output=True,
                           text=True, timeout=BUILD_TIMEOUT_S, check=False)
        assert r.returncode == 0, f"kernel/build --{variant} failed:\n{r.stderr[-3000:]}"
        images[variant] = Path(r.stdout.strip().splitlines()[-1])
    return images


@pytest.fixture(scope="session")
def kernel_cycles(tmp_path_factory: pytest.TempPathFactory,
                  kernels: dict[str, Path]) -> Callable[[str], Cycle]:
    done: dict[str, Cycle] = {}

    def get(variant: str) -> Cycle:
        if variant not in done:
            out = tmp_path_factory.mktemp(f"kernel-{variant}")
            args = ["--arch", "arm64", "--kernel-image", str(kernels[variant]),
                    "--check-script", str(GUEST_ABI)]
            if variant == "patched":
                args += ["--dtb-marker", MARKER]
            with open(out / "crash-cycle.log", "wb") as log:
                rc = subprocess.run([sys.executable, str(CRASH_CYCLE), "--out", str(out), *args],
                                    stdout=log, stderr=subprocess.STDOUT,
                                    timeout=CYCLE_TIMEOUT_S, check=False).returncode
            result_path = out / "result.json"
            result = json.loads(result_path.read_text()) if result_path.exists() else {}
            done[variant] = Cycle(out, rc, result)
        return done[variant]

    return get


def status(c: Cycle) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((c.out / "status.json").read_text())
    return data


def first_out(c: Cycle, stage: str) -> str:
    return (c.out / "results" / "first" / f"{stage}.out").read_text()


def build_info(image: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(image.with_name("build.json").read_text())
    return data


@pytest.mark.vm
def test_unpatched_kernel_dumps_through_kexec_file_load(
        kernel_cycles: Callable[[str], Cycle], kernels: dict[str, Path]) -> None:
    c = kernel_cycles("unpatched")
    assert_good_dump(c)
    s = status(c)
    assert s["load_paths"]["extended"] == "missing"
    assert s["load_paths"]["kexec_file_load"] == "available"
    assert s["method"] == "file"
    assert "capture kernel loaded with file" in first_out(c, "load")
    assert c.report["release"] == build_info(kernels["unpatched"])["release"]


@pytest.mark.vm
def test_unpatched_kernel_rejects_the_flag(kernel_cycles: Callable[[str], Cycle]) -> None:
    """Mainline behaviour: KEXEC_FILE_FDSET is an unknown flag, whatever else is passed."""
    c = kernel_cycles("unpatched")
    assert c.guest("check").get("rc") == 0, c.explain()
    abi = json.loads(first_out(c, "check"))
    assert set(abi["cases"].values()) == {"EINVAL"}, abi
    assert abi["crash_loaded_after"] is False


@pytest.mark.vm
def test_patched_kernel_dumps_through_the_extended_call_with_our_dtb(
        kernel_cycles: Callable[[str], Cycle], kernels: dict[str, Path]) -> None:
    c = kernel_cycles("patched")
    assert_good_dump(c)
    s = status(c)
    assert s["load_paths"]["extended"] == "available"
    assert s["method"] == "extended"
    assert "capture kernel loaded with extended" in first_out(c, "load")
    # The capture kernel booted with the DTB the guest passed: /chosen has the marker.
    marker = (c.out / "results" / "capture" / "capture-dt.out").read_bytes()
    assert marker.rstrip(b"\0\n") == MARKER.encode(), marker
    assert c.report["release"] == build_info(kernels["patched"])["release"]


@pytest.mark.vm
def test_patched_kernel_refuses_bad_sets_and_changes_nothing(
        kernel_cycles: Callable[[str], Cycle]) -> None:
    c = kernel_cycles("patched")
    assert c.guest("check").get("rc") == 0, c.explain()
    abi = json.loads(first_out(c, "check"))
    assert abi["cases"] == REFUSALS
    assert abi["crash_loaded_after"] is False
