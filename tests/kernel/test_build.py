"""kernel/build's pure parts: the cache key, the config check, patching a hard-linked tree."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.kernel import build_module

kb = build_module()
GCC = "aarch64-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0"


def test_cache_root_honours_the_environment(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setenv("KDUMPCTL_KERNEL_CACHE", str(tmp_path))
    assert kb.cache_root() == tmp_path
    monkeypatch.delenv("KDUMPCTL_KERNEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert kb.cache_root() == tmp_path / "xdg" / "kdumpctl-py" / "kernel"


def test_the_key_follows_version_fragment_and_patches(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    fragment = tmp_path / "arm64.config"
    fragment.write_text("CONFIG_KEXEC_FILE=y\n")
    patches = tmp_path / "patches"
    (patches / "6.12").mkdir(parents=True)
    (patches / "6.12" / "0001-a.patch").write_text("one\n")
    monkeypatch.setattr(kb, "FRAGMENT", fragment)
    monkeypatch.setattr(kb, "PATCHES", patches)
    series = kb.SERIES["6.12"]

    base = kb.build_key(series, "6.12.118-1", "patched", GCC)
    assert base == kb.build_key(series, "6.12.118-1", "patched", GCC)
    assert base != kb.build_key(series, "6.12.119-1", "patched", GCC)
    assert base != kb.build_key(series, "6.12.118-1", "unpatched", GCC)
    assert base != kb.build_key(series, "6.12.118-1", "patched", GCC + " (other)")
    unpatched = kb.build_key(series, "6.12.118-1", "unpatched", GCC)

    (patches / "6.12" / "0001-a.patch").write_text("two\n")
    assert kb.build_key(series, "6.12.118-1", "patched", GCC) != base
    assert kb.build_key(series, "6.12.118-1", "unpatched", GCC) == unpatched  # no patches
    # Another series' patches are not this one's.
    (patches / "7.3").mkdir()
    (patches / "7.3" / "0001-b.patch").write_text("three\n")
    assert kb.build_key(series, "6.12.118-1", "unpatched", GCC) == unpatched

    fragment.write_text("CONFIG_KEXEC_FILE=y\nCONFIG_EXT4_FS=y\n")
    assert kb.build_key(series, "6.12.118-1", "unpatched", GCC) != unpatched


def test_each_series_has_its_patches_and_package() -> None:
    assert list(kb.SERIES) == ["7.3", "6.12"]  # the newest, the default, first
    for name, series in kb.SERIES.items():
        assert series.package == f"linux-source-{name}"
        assert series.patches(), name
        assert all(p.parent.name == name for p in series.patches())


def test_the_fragment_names_what_the_cycle_needs() -> None:
    symbols = set(kb.fragment_symbols())
    needed = {
        # kdump on arm64 through both kexec calls
        "CONFIG_KEXEC=y", "CONFIG_KEXEC_FILE=y", "CONFIG_CRASH_DUMP=y", "CONFIG_PROC_VMCORE=y",
        "CONFIG_PROC_KCORE=y", "CONFIG_MAGIC_SYSRQ=y", "CONFIG_RANDOMIZE_BASE=y",
        # the dump disk, with virtio-blk's dependencies spelled out
        "CONFIG_VIRTIO_MENU=y", "CONFIG_VIRTIO_MMIO=y", "CONFIG_BLOCK=y", "CONFIG_BLK_DEV=y",
        "CONFIG_VIRTIO_BLK=y", "CONFIG_EXT4_FS=y",
        # the initramfs and Python
        "CONFIG_BLK_DEV_INITRD=y", "CONFIG_RD_GZIP=y", "CONFIG_BINFMT_ELF=y",
        "CONFIG_BINFMT_SCRIPT=y", "CONFIG_MULTIUSER=y", "CONFIG_FUTEX=y",
        "CONFIG_MEMFD_CREATE=y", "CONFIG_FILE_LOCKING=y",
        # the console
        "CONFIG_SERIAL_AMBA_PL011=y", "CONFIG_SERIAL_AMBA_PL011_CONSOLE=y", "CONFIG_PRINTK=y",
    }
    assert needed <= symbols, needed - symbols


def test_check_config_reports_what_olddefconfig_dropped(tmp_path: Path) -> None:
    symbols = kb.fragment_symbols()
    (tmp_path / ".config").write_text("\n".join(symbols) + "\n")
    kb.check_config(tmp_path, "unpatched")
    with pytest.raises(kb.BuildError, match="CONFIG_KEXEC_FILE_FDSET"):
        kb.check_config(tmp_path, "patched")
    (tmp_path / ".config").write_text(
        "\n".join(s for s in symbols if s != "CONFIG_VIRTIO_BLK=y") + "\n"
        "CONFIG_KEXEC_FILE_FDSET=y\n")
    with pytest.raises(kb.BuildError, match="CONFIG_VIRTIO_BLK=y"):
        kb.check_config(tmp_path, "patched")


def test_check_config_lets_symbols_the_release_dropped_go(tmp_path: Path) -> None:
    """PROC_SYSCTL is gone after 6.12: not declared in the tree, so not required."""
    tree = tmp_path / "tree"
    (tree / "fs").mkdir(parents=True)
    (tree / "fs" / "Kconfig").write_text("config EXT4_FS\n\tbool\n")
    objdir = tmp_path / "o"
    objdir.mkdir()
    (objdir / ".config").write_text("CONFIG_EXT4_FS=y\n")
    symbols = ["CONFIG_EXT4_FS=y", "CONFIG_PROC_SYSCTL=y"]
    with pytest.MonkeyPatch.context() as m:
        m.setattr(kb, "fragment_symbols", lambda profile=None: symbols)
        kb.check_config(objdir, "unpatched", tree)
        with pytest.raises(kb.BuildError, match="PROC_SYSCTL"):
            kb.check_config(objdir, "unpatched")
        (objdir / ".config").write_text("")
        with pytest.raises(kb.BuildError, match="EXT4_FS"):
            kb.check_config(objdir, "unpatched", tree)


@pytest.mark.skipif(shutil.which("patch") is None, reason="patch is not installed")
def test_patching_a_hard_linked_tree_leaves_the_source_alone(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "kernel").mkdir(parents=True)
    (source / "kernel" / "a.c").write_text("one\ntwo\nthree\n")
    (source / "kernel" / "b.c").write_text("untouched\n")
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "0001-x.patch").write_text(
        "--- a/kernel/a.c\n+++ b/kernel/a.c\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n")
    tree = tmp_path / "tree"
    kb.hardlink_tree(source, tree)
    kb.apply_patches(tree, sorted(patches.glob("*.patch")))
    assert (tree / "kernel" / "a.c").read_text() == "one\nTWO\nthree\n"
    assert (source / "kernel" / "a.c").read_text() == "one\ntwo\nthree\n"
    assert os.stat(tree / "kernel" / "b.c").st_ino == os.stat(source / "kernel" / "b.c").st_ino


def test_help_runs() -> None:
    with pytest.raises(SystemExit) as e:
        kb.main(["--help"])
    assert e.value.code == 0


def test_the_profiles() -> None:
    assert kb.DEFAULT is kb.PROFILES["arm64"]
    for profile in kb.PROFILES.values():
        assert all(path.exists() for path in profile.fragment_paths()), profile.name
    assert kb.PROFILES["riscv64"].image is None  # the series' objects only
    lsm = set(kb.fragment_symbols(kb.PROFILES["arm64-lsm"]))
    assert {"CONFIG_IMA=y", "CONFIG_IMA_APPRAISE=y", "CONFIG_SECURITY_SELINUX=y",
            "CONFIG_SECURITY_LOADPIN=y"} <= lsm
    assert set(kb.fragment_symbols()) < lsm
    riscv = set(kb.fragment_symbols(kb.PROFILES["riscv64"]))
    assert "CONFIG_KEXEC_FILE=y" in riscv and "CONFIG_IMA=y" in riscv
    # The riscv64 crash cycle's kernel: an Image with both kexec calls, no security modules.
    virt = kb.PROFILES["riscv64-virt"]
    assert virt.arch == "riscv" and virt.image == "arch/riscv/boot/Image"
    symbols = set(kb.fragment_symbols(virt))
    assert {"CONFIG_KEXEC=y", "CONFIG_KEXEC_FILE=y", "CONFIG_CRASH_DUMP=y", "CONFIG_FPU=y",
            "CONFIG_MEMFD_CREATE=y"} <= symbols and "CONFIG_IMA=y" not in symbols


def test_each_profile_has_its_key() -> None:
    series = kb.SERIES["7.3"]
    keys = {kb.build_key(series, "7.3.4-1", "patched", GCC, p) for p in kb.PROFILES.values()}
    assert len(keys) == len(kb.PROFILES)
    # The arm64 profile's key is the one from before profiles: cached builds stay valid.
    assert kb.build_key(series, "7.3.4-1", "patched", GCC) == kb.build_key(
        series, "7.3.4-1", "patched", GCC, kb.DEFAULT)


def test_the_profile_without_an_image_has_no_unpatched_build(tmp_path: Path) -> None:
    with pytest.raises(kb.BuildError, match="objects only"):
        kb.build(tmp_path, kb.SERIES["7.3"], "7.3.4-1", "unpatched", 1, kb.PROFILES["riscv64"])


@pytest.mark.parametrize("series", ["7.3", "6.12"])
def test_touched_objects_are_the_series_c_files_of_this_architecture(series: str) -> None:
    patches = kb.SERIES[series].patches()
    arm64 = kb.touched_objects(patches, kb.PROFILES["arm64"])
    riscv = kb.touched_objects(patches, kb.PROFILES["riscv64"])
    common = {"kernel/kexec_file.o", "drivers/of/kexec.o", "security/integrity/ima/ima_main.o",
              "security/integrity/ima/ima_policy.o", "security/ipe/hooks.o"}
    assert common | {"arch/arm64/kernel/machine_kexec_file.o"} <= set(arm64)
    assert common | {"arch/riscv/kernel/machine_kexec_file.o"} <= set(riscv)
    assert not any(o.startswith(("tools/", "arch/riscv/")) for o in arm64)
    assert not any(o.startswith(("tools/", "arch/arm64/")) for o in riscv)


def test_a_w1_warning_counts_only_on_a_line_the_series_adds(tmp_path: Path) -> None:
    source, tree = tmp_path / "src", tmp_path / "tree"
    for d, body in ((source, "a\nb\nc\n"), (tree, "a\nB\nc\nd\n")):
        (d / "kernel").mkdir(parents=True)
        (d / "kernel" / "x.c").write_text(body)
    assert kb.added_lines(source, tree, "kernel/x.c") == {2, 4}
    out = ("../kernel/x.c:2:5: warning: unused variable 'y' [-Wunused-variable]\n"
           "  CC      kernel/x.o\n"
           "../kernel/x.c:3: warning: Function parameter 'z' not described in 'f'\n")
    found = [(m.group(1), int(m.group(2))) for m in kb.W1_WARNING.finditer(out)]
    assert found == [("kernel/x.c", 2), ("kernel/x.c", 3)]


@pytest.mark.vm
@pytest.mark.parametrize("profile", ["arm64-lsm", "riscv64"])
@pytest.mark.parametrize("series", ["7.3", "6.12"])
def test_the_series_objects_compile_with_the_security_modules(
        series: str, profile: str, kernel_objects: Callable[[str, str], Path]) -> None:
    """The objects the series touches (and LoadPin's, which counts the read ids), compiled
    with IMA, IMA_APPRAISE, SELinux, LoadPin, IPE and lockdown: arm64 on tinyconfig,
    riscv64 on defconfig with KEXEC_FILE, cross-compiled (1-4 minutes each, no Image);
    kernel/build fails on a W=1 warning on a line the series adds."""
    path = kernel_objects(series, profile)
    info = json.loads(path.read_text())
    assert info["profile"] == profile and info["image_bytes"] is None
    arch = "riscv" if profile == "riscv64" else "arm64"
    expected = {f"arch/{arch}/kernel/machine_kexec_file.o", "kernel/kexec_file.o",
                "drivers/of/kexec.o", "security/integrity/ima/ima_main.o",
                "security/integrity/ima/ima_policy.o", "security/ipe/hooks.o",
                "security/loadpin/loadpin.o"}
    if series != "6.12":  # 6.12's SELinux is untouched
        expected.add("security/selinux/hooks.o")
    assert expected <= set(info["w1_objects"])
    config = path.with_name("config").read_text().splitlines()
    assert {"CONFIG_IMA_APPRAISE=y", "CONFIG_SECURITY_SELINUX=y"} <= set(config)
