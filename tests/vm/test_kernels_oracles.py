"""The harness's kernel suites and oracle sysroots, without a network or a guest."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vm.harness.aptsources import Mirrors
from tests.vm.harness.cli import parse_args
from tests.vm.harness.config import ARCHES
from tests.vm.harness.debian import Kernel, Package
from tests.vm.harness.kernels import KERNEL_SUITES, kernel_parts
from tests.vm.harness.oracles import Oracles

MIRRORS = Mirrors("http://mirror.invalid/debian", "/k.gpg", None, "/k.gpg")


def test_backports_sources_name_only_that_suite() -> None:
    text = KERNEL_SUITES["trixie-backports"].sources(MIRRORS)
    assert text is not None and "Suites: trixie-backports\n" in text
    assert "URIs: http://mirror.invalid/debian\n" in text
    assert KERNEL_SUITES["trixie"].sources(MIRRORS) is None  # suite, -updates, -security


class FakeApt:
    def __init__(self, depends: str, available: set[str]) -> None:
        self._depends, self.available = depends, available

    def depends(self, name: str) -> str:
        return self._depends

    def candidate(self, name: str) -> Package | None:
        return Package(name, "7.3.4-1", "amd64") if name in self.available else None


def test_split_kernel_packages_are_found() -> None:
    rel = "7.3.4+deb13-cloud-amd64"
    image = Package(f"linux-image-{rel}", "7.3.4-1", "amd64")
    apt = FakeApt(f"dracut | initramfs-tools, linux-base-{rel} (= 7.3.4-1), "
                  f"linux-binary-{rel} (= 7.3.4-1), linux-modules-{rel} (= 7.3.4-1)",
                  {f"linux-base-{rel}", f"linux-binary-{rel}", f"linux-modules-{rel}"})
    parts = kernel_parts(apt, Kernel(image, rel))  # type: ignore[arg-type]
    assert [p.name for p in parts] == [image.name, f"linux-base-{rel}", f"linux-binary-{rel}",
                                       f"linux-modules-{rel}"]
    old = Kernel(Package("linux-image-6.1.0-57-cloud-amd64", "6.1.192-3", "amd64"),
                 "6.1.0-57-cloud-amd64")
    assert kernel_parts(FakeApt("linux-base (>= 4.3~), initramfs-tools", set()),  # type: ignore[arg-type]
                        old) == [old.image]


def test_oracles_run_natively_through_the_sysroots_loader(tmp_path: Path) -> None:
    lib = tmp_path / "lib" / "x86_64-linux-gnu"
    lib.mkdir(parents=True)
    (lib / "ld-2.31.so").write_bytes(b"\x7fELF")
    (tmp_path / "lib64").mkdir()
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "usr" / "bin" / "crash").write_bytes(b"\x7fELF")
    # bullseye's libc6: an absolute symlink, which must resolve inside the sysroot
    (tmp_path / "lib64" / "ld-linux-x86-64.so.2").symlink_to("/lib/x86_64-linux-gnu/ld-2.31.so")
    argv = Oracles(tmp_path, ARCHES["x86_64"], "bullseye", {}).command("crash")
    assert argv[0] == str(lib / "ld-2.31.so") and argv[1] == "--library-path"
    assert argv[-1] == str(tmp_path / "usr" / "bin" / "crash")


def test_arm64_oracles_run_under_qemu_user(tmp_path: Path) -> None:
    argv = Oracles(tmp_path, ARCHES["arm64"], "bookworm", {}).command("makedumpfile")
    assert argv[:3] == ["qemu-aarch64-static", "-L", str(tmp_path)]


def test_kernel_suite_picks_a_userland_with_python_3_11() -> None:
    args = parse_args(["--arch", "x86_64", "--out", "o", "--kernel-suite", "bullseye"])
    assert (args.suite, args.kernel_suite) == ("bookworm", "bullseye")
    args = parse_args(["--arch", "arm64", "--out", "o", "--kernel-suite", "trixie-backports",
                       "--busy", "--whole-copy", "--impl", "save=capture"])
    assert args.suite == "trixie" and args.busy and args.whole_copy
    assert args.impl == {"save": "capture"}
    assert parse_args(["--arch", "x86_64", "--out", "o"]).suite == "bookworm"


def test_kernel_suite_and_kernel_image_exclude_each_other(tmp_path: Path) -> None:
    image = tmp_path / "Image"
    image.write_bytes(b"")
    (tmp_path / "vmlinux").write_bytes(b"")
    with pytest.raises(SystemExit):
        parse_args(["--arch", "arm64", "--out", "o", "--kernel-suite", "trixie",
                    "--kernel-image", str(image)])
