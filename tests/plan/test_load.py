"""The load planner on every fixture snapshot of a real guest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kdumpctl_py.cli import main
from kdumpctl_py.config.model import Config
from kdumpctl_py.errors import KdumpError, UsageError
from kdumpctl_py.facts.view import SystemView
from kdumpctl_py.plan.elfcorehdr import plan_elfcorehdr
from kdumpctl_py.plan.load import LoadRequest, plan_capture_load
from tests.builders import arm64_image, riscv_image
from tests.conftest import SNAPSHOT_NAMES, SNAPSHOTS, expected_facts

GUESTS = [n for n in SNAPSHOT_NAMES if not n.startswith("host-")]


def bzimage() -> bytes:
    data = bytearray(0x4000)
    data[0x202:0x206] = b"HdrS"
    data[0x206:0x208] = (0x20F).to_bytes(2, "little")
    return bytes(data)


def with_boot(tmp_path: Path, name: str) -> SystemView:
    root = tmp_path / name
    shutil.copytree(SNAPSHOTS / name, root)
    view = SystemView(root)
    release = view.uname.release
    (root / "boot").mkdir(exist_ok=True)
    image = {"aarch64": arm64_image(40 << 20), "riscv64": riscv_image(32 << 20)}.get(
        view.arch.name, bzimage())
    (root / kernel_name(view)).write_bytes(image)
    (root / f"boot/initrd.img-{release}").write_bytes(b"\x07" * (20 << 20))
    return SystemView(root)


def kernel_name(view: SystemView) -> str:
    """Where Debian installs the kernel: /boot/vmlinuz-REL, on riscv64 /boot/vmlinux-REL."""
    stem = "vmlinux" if view.arch.name == "riscv64" else "vmlinuz"
    return f"boot/{stem}-{view.uname.release}"


@pytest.mark.parametrize("name", GUESTS)
def test_plan_on_fixture(tmp_path: Path, name: str) -> None:
    view = with_boot(tmp_path, name)
    want = expected_facts(name)
    plan = plan_capture_load(view, Config(), LoadRequest(), randbytes=lambda n: b"\x11" * n)
    assert plan.method == want["method"]
    assert "crashkernel=" not in plan.cmdline and "reset_devices" in plan.cmdline
    assert plan.kernel_path == "/" + kernel_name(view)
    if plan.method != "classic":
        assert plan.classic is None
        return
    (start, end), = want["regions"]
    c = plan.classic
    assert c is not None and (c.region.start, c.region.end) == (start, end)
    for s in c.segments:
        assert start <= s.mem and s.end - 1 <= end and s.mem % 4096 == 0
    assert c.segment("kernel").mem % (2 << 20) == 0
    assert c.segment("elfcorehdr").end == end + 1


@pytest.mark.parametrize("name", GUESTS)
def test_elfcorehdr_on_fixture(name: str) -> None:
    view = SystemView(SNAPSHOTS / name)
    want = expected_facts(name)
    hdr = plan_elfcorehdr(view)
    assert len(hdr.notes) == want["possible_cpus"] + 1
    (start, end), = want["regions"]
    text, *ram = hdr.loads
    assert text.vaddr >= 0xFFFF000000000000
    for p in ram:  # no RAM range touches the crash region
        assert p.paddr + p.memsz <= start or p.paddr > end
    assert sum(p.memsz for p in ram) + (end - start + 1) >= 0.95 * (1 << 30)


@pytest.mark.parametrize("name", GUESTS)
def test_dry_run_cli(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    view = with_boot(tmp_path, name)
    assert main(["--sysroot", str(view.root), "load", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"method   {expected_facts(name)['method']}:")


def test_wrong_arch_kernel_is_refused(tmp_path: Path) -> None:
    view = with_boot(tmp_path, "debian12-arm64")
    (view.root / f"boot/vmlinuz-{view.uname.release}").write_bytes(bzimage())
    with pytest.raises(UsageError, match="is a x86_64 kernel"):
        plan_capture_load(SystemView(view.root), Config(), LoadRequest())


def test_region_too_small_says_so(tmp_path: Path) -> None:
    view = with_boot(tmp_path, "debian12-arm64")
    (view.root / f"boot/initrd.img-{view.uname.release}").write_bytes(bytes(230 << 20))
    with pytest.raises(KdumpError, match="cannot hold"):
        plan_capture_load(SystemView(view.root), Config(), LoadRequest())


@pytest.mark.parametrize("name", GUESTS)
def test_dry_run_on_a_snapshot_without_boot(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Planned with what the snapshot knows: names, sizes, headers (issue 23, item 7)."""
    view = SystemView(SNAPSHOTS / name)
    release = view.uname.release
    assert main(["--sysroot", str(SNAPSHOTS / name), "load", "--dry-run"]) == 0
    out = capsys.readouterr().out
    kernel = kernel_name(view)
    size = view.boot_files[kernel.removeprefix("boot/")]
    assert f"kernel   /{kernel} (" in out and f"{size / (1 << 20):.1f} MiB)" in out
    assert (f"note: the snapshot was taken without --with-boot: /{kernel}, "
            f"/boot/initrd.img-{release} known by name, size and header only") in out


def test_kernel_option_is_resolved_inside_the_snapshot(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    view = with_boot(tmp_path, "debian12-amd64")
    (view.root / "boot/other").write_bytes(bzimage())
    root = str(view.root)
    assert main(["--sysroot", root, "load", "--dry-run", "--kernel", "/boot/other"]) == 0
    assert (f"note: --kernel /boot/other is read inside the snapshot {view.root}, not on this "
            "machine") in capsys.readouterr().out
    assert main(["--sysroot", root, "load", "--dry-run", "--kernel", "/boot/nothing"]) == 2
    assert capsys.readouterr().err == (
        f"kdumpctl-py: error: cannot read kernel /boot/nothing (inside the snapshot "
        f"{view.root}): No such file or directory\n")


def test_an_elf_vmlinux_is_not_for_x86_kexec_file_load(tmp_path: Path) -> None:
    from tests.elfwriter import kcore_bytes

    view = with_boot(tmp_path, "debian12-amd64")
    (view.root / "boot/vmlinux").write_bytes(kcore_bytes([], b"", tail=0))
    with pytest.raises(UsageError, match="is an elf image; x86_64 kexec_file_load boots only a "
                       "bzImage"):
        plan_capture_load(view, Config(), LoadRequest(kernel="/boot/vmlinux"))


def test_a_kernel_larger_than_the_region_is_refused(tmp_path: Path) -> None:
    view = with_boot(tmp_path, "debian12-amd64")
    big = bytearray(bzimage())
    big[0x260:0x264] = (240 << 20).to_bytes(4, "little")  # init_size: 240 MiB in memory
    (view.root / f"boot/vmlinuz-{view.uname.release}").write_bytes(big)
    with pytest.raises(KdumpError, match=r"the capture kernel \(240 MiB in memory\) and initrd "
                       r"\(20 MiB\) need 260 MiB, more than the 256 MiB crash region"):
        plan_capture_load(SystemView(view.root), Config(), LoadRequest())


@pytest.mark.parametrize("verb", ["start", "load"])
def test_a_dry_run_with_nothing_reserved_fails_as_start_would(
        tmp_path: Path, verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    """kexec_file_load's plan has no segments of its own to place: with no crash region
    its dry run printed a plan and exited 0, where start refuses and the kernel would too."""
    view = with_boot(tmp_path, "debian12-amd64")
    iomem = view.root / "proc/iomem"
    iomem.write_text("".join(ln for ln in iomem.read_text().splitlines(keepends=True)
                             if "Crash kernel" not in ln))
    (view.root / "sys/kernel/kexec_crash_size").write_text("0\n")
    assert main(["--sysroot", str(view.root), verb, "--dry-run"]) == 1
    assert capsys.readouterr().err == (
        "kdumpctl-py: error: no memory is reserved for a capture kernel: run kdumpctl-py "
        "reset-crashkernel, then reboot (kdumpctl-py status says more)\n")


def test_kexec_file_load_fits_the_high_region_alone(tmp_path: Path) -> None:
    """crashkernel=32M,high with its 256M low region: kexec_file_load places every segment
    in crashk_res (kexec_walk_resources()), so 288 MiB in all does not make 78 MiB fit."""
    view = with_boot(tmp_path, "debian12-amd64")
    (view.root / "proc/iomem").write_text(
        "00001000-0009fbff : System RAM\n"
        "00100000-bfffffff : System RAM\n"
        "  26000000-35ffffff : Crash kernel\n"
        "100000000-43fffffff : System RAM\n"
        "  43e000000-43fffffff : Crash kernel\n")
    (view.root / "sys/kernel/kexec_crash_size").write_text(f"{288 << 20}\n")
    big = bytearray(bzimage())
    big[0x260:0x264] = (52 << 20).to_bytes(4, "little")  # init_size: 52 MiB in memory
    (view.root / f"boot/vmlinuz-{view.uname.release}").write_bytes(big)
    with pytest.raises(KdumpError, match=r"need 72 MiB, more than the 32 MiB high crash region "
                       r"at 0x43e000000 \(kexec_file_load uses none of the 256 MiB low one\); "
                       r"raise the crashkernel=...,high size"):
        plan_capture_load(SystemView(view.root), Config(), LoadRequest())


@pytest.mark.parametrize("name", GUESTS)
def test_one_capture_command_line_whichever_path(
        tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """kexec_file_load's argument, kexec_load's DTB bootargs, `load --dry-run`, `status`
    and `test` carry the one line, cmdline_remove and cmdline_append applied (issue 20)."""
    import json

    import libfdt

    from kdumpctl_py.cli.load import plan_from_args

    view = with_boot(tmp_path, name)
    conf = tmp_path / "kdump.conf"
    conf.write_text("cmdline_remove reset_devices console\n"
                    "cmdline_append dyndbg=+p ignore_loglevel\n")
    monkeypatch.setenv("KDUMPCTL_CONFIG", str(conf))
    plan = plan_from_args(view)
    words = plan.cmdline.split()
    assert "reset_devices" not in words and not any(w.startswith("console=") for w in words)
    assert words[-2:] == ["dyndbg=+p", "ignore_loglevel"] and "nr_cpus=1" in words
    if plan.classic is not None:  # kexec_load: the line is the DTB's /chosen/bootargs
        fdt = libfdt.Fdt(plan.classic.segment("dtb").data)
        bootargs = fdt.getprop(fdt.path_offset("/chosen"), "bootargs").as_str()
        assert bootargs == plan.cmdline
    else:  # kexec_file_load: the line itself (load/loader.py hands plan.cmdline over)
        assert plan.method in ("file", "extended")
    root = str(view.root)
    assert main(["--sysroot", root, "load", "--dry-run"]) == 0
    assert f"\ncmdline  {plan.cmdline}\n" in capsys.readouterr().out
    main(["--sysroot", root, "status", "--json"])
    assert json.loads(capsys.readouterr().out)["capture_cmdline"] == plan.cmdline
    tested = plan_from_args(view, extra_append=("kdumpctl_py.test_id=T",))
    assert tested.cmdline == f"{plan.cmdline} kdumpctl_py.test_id=T"


@pytest.mark.parametrize("config,option,method", [
    ("", None, "file"),
    ("dtb /boot/board.dtb\n", None, "extended"),
    ("", "/boot/board.dtb", "extended"),
], ids=["no-dtb", "config-dtb", "option-dtb"])
def test_auto_takes_the_extended_call_only_with_a_dtb(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        config: str, option: str | None, method: str) -> None:
    """A kernel with the extended call: without a device tree, auto loads by plain
    kexec_file_load, which hands over nothing the kernel does not build itself."""
    import json

    from kdumpctl_py.facts.view import META

    view = with_boot(tmp_path, "debian12-amd64")
    meta = json.loads((view.root / META).read_text())
    meta["probes"] = {"extended": "available", "kexec_file_load": "available",
                      "kexec_load": "available"}
    (view.root / META).write_text(json.dumps(meta))
    (view.root / "boot/board.dtb").write_bytes(b"\xd0\x0d\xfe\xed-board")
    conf = tmp_path / "kdump.conf"
    conf.write_text(config)
    monkeypatch.setenv("KDUMPCTL_CONFIG", str(conf))
    args = ["--sysroot", str(view.root), "start", "--dry-run"]
    assert main(args + (["--dtb", option] if option else [])) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"method   {method}: ")
    assert ("dtb      " in out) == (method == "extended")
    # Found by review: the dry run did not say that a refused extended call falls back.
    assert ("\nfallback plain kexec_file_load" in out) == (method == "extended")
    assert main(args + ["--dtb", "/boot/board.dtb", "--method", "extended"]) == 0
    assert "fallback" not in capsys.readouterr().out  # forced: never falls back
