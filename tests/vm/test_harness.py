"""Quick-tier tests of the crash-cycle harness's pure parts (no QEMU, no network)."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import marshal
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

from tests.vm.harness import (
    aptsources,
    cpio,
    efidisk,
    elf,
    firstboot,
    foreignroot,
    guestinit,
    makedumpfile,
    stages,
    uefi,
)
from tests.vm.harness.analysis import choose_analyser, find_vmcore
from tests.vm.harness.cli import parse_args
from tests.vm.harness.config import ARCHES
from tests.vm.harness.console import Console, split_console
from tests.vm.harness.debian import Package, _control_fields
from tests.vm.harness.errors import HarnessError
from tests.vm.harness.guestroot import Entry, Tree, canonical
from tests.vm.harness.qemu import VmSpec, argv
from tests.vm.harness.wheel import launcher


def _archive(tree: Tree) -> bytes:
    buf = io.BytesIO()
    w = cpio.NewcWriter(buf)
    tree.write(w)
    w.close()
    return buf.getvalue()


def test_newc_round_trip_and_parents_first() -> None:
    t = Tree()
    t.add("usr/bin/tool", Entry("file", perm=0o755, data=b"#!/bin/sh\n"))
    t.add("bin", Entry("symlink", target="usr/bin"))
    t.add("dev/console", Entry("chardev", perm=0o600, rdev=(5, 1)))
    entries = cpio.read_names(_archive(t))
    names = [n for n, _, _ in entries]
    assert names == ["bin", "dev", "dev/console", "usr", "usr/bin", "usr/bin/tool"]
    modes = {n: m for n, m, _ in entries}
    assert modes["dev/console"] == 0o20600 and modes["usr/bin/tool"] == 0o100755
    assert dict((n, d) for n, _, d in entries)["bin"] == b"usr/bin"


@pytest.mark.skipif(shutil.which("cpio") is None, reason="GNU cpio not installed")
def test_newc_is_read_by_gnu_cpio() -> None:
    t = Tree()
    t.add("etc/x", Entry("file", data=b"hello"))
    listing = subprocess.run(["cpio", "-i", "-t", "--quiet"], input=_archive(t),
                             capture_output=True, check=True).stdout.decode().split()
    assert listing == ["etc", "etc/x"]


def test_concatenated_gzip_archives_read_as_one() -> None:
    parts = []
    for name in ("a", "b"):
        t = Tree()
        t.add(name, Entry("file", data=name.encode()))
        parts.append(gzip.compress(_archive(t)))
    joined = parts[0] + b"\0" * (-len(parts[0]) % 4 + 4) + parts[1]
    # As init/initramfs.c does: decompress one member, skip zero padding, repeat.
    data, rest = b"", joined
    while rest:
        d = zlib.decompressobj(wbits=31)
        data += d.decompress(rest)
        rest = d.unused_data.lstrip(b"\0")
    names = [n for n, _, _ in cpio.read_names(data)]
    assert names == ["a", "b"]


def test_usr_merge_and_symlink_resolution() -> None:
    assert canonical("/lib/x86_64-linux-gnu/libc.so.6") == "usr/lib/x86_64-linux-gnu/libc.so.6"
    assert canonical("etc/passwd") == "etc/passwd"
    t = Tree()
    t.add("usr/lib/t/libz.so.1.2", Entry("file", data=b""))
    t.add("usr/lib/t/libz.so.1", Entry("symlink", target="libz.so.1.2"))
    t.add("usr/lib64/ld.so", Entry("symlink", target="/lib/t/libz.so.1"))
    t.add_skeleton()
    assert t.resolve("lib64/ld.so") == "usr/lib/t/libz.so.1.2"
    assert t.resolve("usr/lib/t/missing") is None


def test_library_check_reports_what_is_missing() -> None:
    python = Path(os.path.realpath(sys.executable))
    head = python.read_bytes()
    try:
        dyn = elf.dynamic(head)
    except elf.NotElf64:
        pytest.skip("host interpreter is not little-endian ELF64")
    if not dyn.needed:
        pytest.skip("host interpreter is statically linked")
    t = Tree()
    t.add("usr/bin/python3", Entry("file", source=python))
    problems = t.check_libraries("x86_64-linux-gnu")
    assert any(dyn.needed[0] in p for p in problems)


def _host_libraries(tree: Tree, triplet: str) -> None:
    """The host's shared libraries and loader link in `tree`, as a package would put them."""
    libdir = Path("/usr/lib") / triplet
    for lib in libdir.glob("*.so*"):
        path = f"usr/lib/{triplet}/{lib.name}"
        if lib.is_symlink():
            tree.add(path, Entry("symlink", target=os.readlink(lib)))
        elif lib.is_file():
            tree.add(path, Entry("file", source=lib))
    loader = Path("/lib64/ld-linux-x86-64.so.2")
    if loader.is_symlink():
        tree.add("usr/lib64/ld-linux-x86-64.so.2", Entry("symlink", target=os.readlink(loader)))
    tree.add_skeleton()


@pytest.mark.skipif(not Path("/usr/bin/makedumpfile").is_file()
                    or not Path("/usr/lib/x86_64-linux-gnu").is_dir(),
                    reason="needs the host's makedumpfile (setup.sh) on x86_64")
def test_makedumpfile_comes_with_the_libraries_it_loads_and_no_more() -> None:
    triplet = "x86_64-linux-gnu"
    tree = Tree()
    tree.add("usr/bin/makedumpfile", Entry("file", source=Path("/usr/bin/makedumpfile")))
    _host_libraries(tree, triplet)
    files = makedumpfile.binary_files(tree, triplet)
    names = {p.rsplit("/", 1)[-1] for p in files}
    assert {"makedumpfile", "libdw.so.1", "libelf.so.1", "liblzo2.so.2", "libz.so.1",
            "libc.so.6", "ld-linux-x86-64.so.2"} <= names
    assert "usr/lib64/ld-linux-x86-64.so.2" in files  # its PT_INTERP, through the link
    assert not any("perl" in n or "python" in n for n in names)
    assert all(e.kind in ("file", "symlink") for e in files.values())
    del tree.entries[f"usr/lib/{triplet}/liblzo2.so.2"]
    with pytest.raises(HarnessError, match="liblzo2"):
        makedumpfile.binary_files(tree, triplet)
    with pytest.raises(HarnessError, match="no /usr/bin"):
        makedumpfile.binary_files(Tree(), triplet)


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox not installed")
def test_makedumpfile_save_is_measured_and_renamed_when_whole(tmp_path: Path) -> None:
    args = parse_args(["--arch", "x86_64", "--out", "/tmp/x", "--impl", "save=makedumpfile",
                       "--save-option=--compress=zlib", "--save-option=--threads=1"])
    assert args.impl == {"save": "makedumpfile"} and args.save_option == [
        "--compress=zlib", "--threads=1"]
    with pytest.raises(SystemExit):
        parse_args(["--arch", "x86_64", "--out", "/tmp/x", "--save-option", "a;reboot"])
    impls = {s.name: stages.choose(s, frozenset({"save"}), args.impl) for s in stages.STAGES}
    assert stages.choose(stages.by_name("save"), frozenset({"save"})) == "kdumpctl-py"
    text = guestinit.render_init(impls)
    (tmp_path / "init").write_text(text)
    subprocess.run(["busybox", "sh", "-n", str(tmp_path / "init")], check=True)
    save = stages.by_name("save").commands["makedumpfile"]
    # The save runs in a shell whose makedumpfile writes what it is given, or fails.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "makedumpfile").write_text(
        '#!/bin/sh\necho "$@" > "$5"; [ -z "$FAIL" ] || exit 3\n')
    (bindir / "makedumpfile").chmod(0o755)
    dumps = tmp_path / "mnt"
    script = (f"memwatch() {{ :; }}; memsummary() {{ echo VmHWM_kb=1; }}; "
              f"memstat() {{ echo \"$@\" >> {tmp_path}/memstat; }}; "
              f"R={tmp_path}; MDF_DUMP_LEVEL=31; PATH={bindir}:$PATH; "
              + save.replace("/mnt/dumps", str(dumps)))
    for fail, rc, name in (("", 0, "vmcore"), ("1", 3, "vmcore-incomplete")):
        shutil.rmtree(dumps, ignore_errors=True)
        r = subprocess.run(["busybox", "sh", "-c", script], env={"FAIL": fail, "PATH":
                           os.environ["PATH"]}, capture_output=True, text=True, check=False)
        assert r.returncode == rc, r.stderr
        (dump,) = dumps.glob("*/vmcore*")
        assert dump.name == name
        assert dump.read_text().split()[:3] == ["-c", "-d", "31"]
        assert dump.read_text().split()[3] == "/proc/vmcore"
    # memwatch's file may not be there when makedumpfile returns at once: no peak then.
    lines = (tmp_path / "memstat").read_text().splitlines()
    assert len(lines) == 2 and all(ln.startswith("saved ") and " seconds=" in ln for ln in lines)


def test_deb822_and_one_line_sources() -> None:
    text = (
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://security.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n"
    )
    entries = aptsources.parse_deb822(text)
    entries += aptsources.parse_one_line("deb-src http://x/ bookworm main\n")
    m = aptsources.find_mirrors(entries)
    assert m.archive == "http://mirror.example/debian"
    assert m.security == "http://security.example/debian-security"
    out = aptsources.private_sources(m, "trixie")
    assert "Suites: trixie trixie-updates" in out and "Suites: trixie-security" in out


def test_apt_fields_and_deb_names() -> None:
    fields = _control_fields("Package: a\nVersion: 1:2.0-1\nDepends: b (>= 1),\n c\n\nPackage: x")
    assert fields["version"] == "1:2.0-1" and fields["depends"] == "b (>= 1),\nc"
    assert Package("kexec-tools", "1:2.0.25-3", "arm64").deb_name == \
        "kexec-tools_1%3a2.0.25-3_arm64.deb"


def test_stage_choice_prefers_kdumpctl_py_when_present() -> None:
    load = stages.by_name("load")
    assert stages.choose(load, frozenset()) == "kexec-tools"
    assert stages.choose(load, frozenset({"start"})) == "kdumpctl-py"
    assert stages.choose(load, frozenset({"start"}), {"load": "kexec-tools"}) == "kexec-tools"
    assert choose_analyser(frozenset(), None) == "drgn-script"
    assert choose_analyser(frozenset({"analyse"}), None) == "kdumpctl-py"


def test_stage_names_are_unique_and_cli_overrides_parse() -> None:
    names = [s.name for s in stages.STAGES]
    assert len(names) == len(set(names))
    args = parse_args(["--arch", "arm64", "--out", "/tmp/x", "--loader", "kexec-tools",
                       "--impl", "save=copy"])
    assert args.impl == {"load": "kexec-tools", "save": "copy"}
    with pytest.raises(SystemExit):
        parse_args(["--arch", "arm64", "--out", "/tmp/x", "--impl", "load=nothing"])


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox not installed")
def test_generated_init_is_valid_busybox_sh(tmp_path: Path) -> None:
    text = guestinit.render_init({s.name: stages.choose(s, frozenset()) for s in stages.STAGES})
    (tmp_path / "init").write_text(text)
    subprocess.run(["busybox", "sh", "-n", str(tmp_path / "init")], check=True)
    for s in stages.STAGES:
        assert f"run_stage {s.name} " in text
    env = guestinit.render_env({"CAPTURE_APPEND": "console=ttyS0 nr_cpus=1", "X": "it's"})
    (tmp_path / "env").write_text(env)
    out = subprocess.run(["busybox", "sh", "-c", f". {tmp_path}/env; echo \"$X|$CAPTURE_APPEND\""],
                         capture_output=True, text=True, check=True).stdout
    assert out == "it's|console=ttyS0 nr_cpus=1\n"


def test_console_waits_for_whole_marker_lines(tmp_path: Path) -> None:
    r, w = os.pipe()
    con = Console(os.fdopen(r, "rb"), tmp_path / "console.log")

    def feed() -> None:
        os.write(w, b"[ 1.0] noise\r\nKDUMPCTL-VM: save failed")
        time.sleep(0.3)
        os.write(w, b" rc=139 t=3.1\nmore\n")
        os.close(w)

    threading.Thread(target=feed).start()
    m = con.wait_marker(0, {"save"}, {"ok", "failed"}, timeout=10)
    assert m is not None and m.status == "failed" and m.rc == 139
    assert con.wait_marker(m.end, {"save"}, {"ok"}, timeout=10) is None
    assert con.eof
    con.join()
    assert (tmp_path / "console.log").read_bytes().count(b"\r") == 0


def test_split_console_at_the_capture_kernel_banner() -> None:
    text = (b"[    0.000000] Linux version 6.1 first\nboot\n"
            b"[   17.0] Kernel panic - not syncing: sysrq triggered crash\n"
            b"[    0.000000] Booting Linux on physical CPU 0x0\n"
            b"[    0.000000] Linux version 6.1 capture\n")
    first, capture = split_console(text)
    assert first.endswith(b"sysrq triggered crash\n")
    assert capture.startswith(b"[    0.000000] Booting Linux")
    assert split_console(b"no crash here\n") == (b"no crash here\n", b"")


def test_find_vmcore_skips_incomplete_and_text(tmp_path: Path) -> None:
    d = tmp_path / "2026-01-01-000000"
    d.mkdir()
    (d / "vmcore-incomplete").write_bytes(b"x")
    (d / "vmcore-dmesg.txt").write_text("x")
    assert find_vmcore(tmp_path) is None
    (d / "vmcore").write_bytes(b"x")
    assert find_vmcore(tmp_path) == d / "vmcore"


def test_launcher_calls_the_console_script() -> None:
    text = launcher("kdumpctl_py.cli:main")
    assert text.startswith("#!/usr/bin/python3\n")
    assert "from kdumpctl_py.cli import main" in text and "sys.exit(main())" in text


def test_apt_answers_are_kept_until_the_lists_change(tmp_path: Path) -> None:
    from tests.vm.harness.config import ARCHES
    from tests.vm.harness.debian import AptState

    mirrors = aptsources.Mirrors("http://mirror.example/debian", aptsources.DEFAULT_KEYRING,
                                 None, aptsources.DEFAULT_KEYRING)
    apt = AptState(tmp_path, "bookworm", ARCHES["arm64"], mirrors)
    calls = []

    def compute() -> str:
        calls.append(1)
        return f"answer {len(calls)}"

    assert apt._memo("k", compute) == "answer 1"
    assert apt._memo("k", compute) == "answer 1"
    (apt.dir / "updated").touch()
    os.utime(apt.dir / "updated", (1, 1))
    assert apt._memo("k", compute) == "answer 2"


def test_uefi_boot_argv() -> None:
    """--firmware uefi: Debian's firmware, and arm64 on ACPI instead of a device tree."""
    if not uefi.FIRMWARE["arm64"].exists():
        pytest.skip("qemu-efi-aarch64 is not installed")
    assert parse_args(["--arch", "arm64", "--out", "x", "--firmware", "uefi"]).firmware == "uefi"
    spec = VmSpec(arch=ARCHES["arm64"], kernel=Path("k"), initrd=Path("i"), append="",
                  disk=Path("d"), mem_mib=1024, smp=2, uefi=True)
    line = argv(spec)
    assert line[line.index("-machine") + 1] == "virt,acpi=on"
    assert line[line.index("-bios") + 1] == str(uefi.FIRMWARE["arm64"])
    assert "-kernel" in line  # the firmware starts the kernel's EFI stub
    plain = argv(dataclasses.replace(spec, uefi=False))
    assert "-bios" not in plain and plain[plain.index("-machine") + 1] == "virt"


@pytest.mark.skipif(not all(shutil.which(t) for t in ("sfdisk", "mkfs.vfat", "mcopy",
                                                      "mke2fs", "debugfs")),
                    reason="needs fdisk, dosfstools, mtools and e2fsprogs")
def test_efi_disk_is_assembled_without_mounts(tmp_path: Path) -> None:
    """GPT with the ESP (GRUB at the removable path) and the root, both read back."""
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/hostname").write_text("kdumpvm\n")
    efi = tmp_path / "BOOTX64.EFI"
    efi.write_bytes(b"MZ" + bytes(100))
    esp, root, disk = tmp_path / "esp.img", tmp_path / "root.img", tmp_path / "disk.img"
    efidisk.make_esp(esp, efi, "BOOTX64.EFI")
    efidisk.make_root(root, tree, 16)
    efidisk.assemble(disk, "amd64", esp, root)
    table = json.loads(subprocess.run(["sfdisk", "--json", str(disk)], capture_output=True,
                                      check=True, text=True).stdout)["partitiontable"]
    assert table["label"] == "gpt"
    parts = [(p["start"], p["size"], p["type"]) for p in table["partitions"]]
    assert parts == [(2048, 64 * 2048, efidisk.ESP_TYPE),
                     (2048 + 64 * 2048, 16 * 2048, efidisk.ROOT_TYPES["amd64"])]
    listing = subprocess.run(["mdir", "-b", "-i", f"{disk}@@1M", "::/EFI/BOOT"],
                             capture_output=True, check=True, text=True).stdout
    assert "BOOTX64.EFI" in listing
    back = tmp_path / "back.img"
    efidisk.extract_root(disk, efidisk.ESP_MIB, back)
    cat = subprocess.run(["debugfs", "-R", "cat /etc/hostname", str(back)],
                         capture_output=True, check=True, text=True).stdout
    assert cat == "kdumpvm\n"


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="not a Debian host")
def test_hosts_dpkg_deb_runs_from_its_staged_loader(tmp_path: Path) -> None:
    """What the foreign root's dpkg runs as `dpkg-deb`: the host's, through its own loader
    and libraries copied beside it, with nothing of the host's /lib needed."""
    host = tmp_path / "host"
    foreignroot.stage_dpkg_deb(host)
    wrapper = (host / "bin/dpkg-deb").read_text()
    loader = wrapper.split(f"{foreignroot.HOST}/lib/", 1)[1].split()[0]
    assert (host / "lib" / loader).is_file() and (host / "lib/libc.so.6").is_file()
    out = subprocess.run([host / "lib" / loader, "--library-path", host / "lib",
                          host / "dpkg-deb", "--version"], capture_output=True, text=True,
                         check=True, env={"LD_LIBRARY_PATH": ""}).stdout
    assert "dpkg-deb" in out


def test_second_stage_restores_what_it_set_aside(tmp_path: Path) -> None:
    script = tmp_path / "second-stage"
    script.write_text(foreignroot.SECOND_STAGE)
    subprocess.run(["sh", "-n", str(script)], check=True)
    # set aside after the unpack, each put back after the configure
    assert foreignroot.SECOND_STAGE.count(f"for path in {' '.join(foreignroot.DEFERRED)}") == 2
    for path, placeholder in foreignroot.DEFERRED.items():
        assert (f"ln -s {placeholder} {path}\n" in foreignroot.SECOND_STAGE) == bool(placeholder)
    assert "update-ca-certificates" in firstboot.INIT  # left for the first boot



def test_first_boot_driver_policy_is_the_installers(tmp_path: Path) -> None:
    """"targeted" is MODULES=dep in conf.d, which overrides initramfs.conf's MODULES=most;
    "generic" leaves initramfs.conf alone; the two roots are cached apart."""
    conf = tmp_path / "driver-policy"
    conf.write_text(firstboot.POLICY_TEXT[firstboot.TARGETED] or "")
    out = subprocess.run(["sh", "-c", f"MODULES=most; . {conf}; echo $MODULES"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "dep"
    assert firstboot.POLICY_TEXT[firstboot.GENERIC] is None
    assert firstboot.options(firstboot.TARGETED) != firstboot.options(firstboot.GENERIC)
    # mkinitramfs's dep mode walks sysfs from the root's disk: the first boot's disk is on
    # PCI as the installed system's is, and the busybox initramfs can drive it.
    assert "virtio_pci" in firstboot.MODULES

def test_byte_compile_on_the_host_names_the_guests_paths(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / f"usr/lib/python{sys.version_info.major}.{sys.version_info.minor}").mkdir(parents=True)
    pkg = root / "usr/lib/python3/dist-packages"
    pkg.mkdir(parents=True)
    (pkg / "mod.py").write_text("def f():\n    return 1\n")
    foreignroot.byte_compile(root)
    pyc = next((pkg / "__pycache__").glob("mod.*.pyc"))
    code = marshal.loads(pyc.read_bytes()[16:])
    assert code.co_filename == "/usr/lib/python3/dist-packages/mod.py"


def test_byte_compile_leaves_another_pythons_root_alone(tmp_path: Path) -> None:
    pkg = tmp_path / "usr/lib/python3/dist-packages"
    pkg.mkdir(parents=True)
    (pkg / "mod.py").write_text("x = 1\n")
    foreignroot.byte_compile(tmp_path)  # no usr/lib/python3.N of the host's version
    assert not (pkg / "__pycache__").exists()


def _boot_fdt(reserved_memory: bool) -> bytes:
    import libfdt

    sw = libfdt.FdtSw()
    sw.finish_reservemap()
    with sw.add_node(""):
        sw.property_u32("#address-cells", 2)
        sw.property_u32("#size-cells", 2)
        with sw.add_node("chosen"):
            pass
        if reserved_memory:
            with sw.add_node("reserved-memory"):
                sw.property_u32("#address-cells", 2)
                sw.property_u32("#size-cells", 2)
                sw.property("ranges", b"")
                with sw.add_node("mmode_resv0@80000000"):
                    sw.property("reg", struct.pack(">QQ", 0x80000000, 0x40000))
    return bytes(sw.as_fdt().as_bytearray())


@pytest.mark.parametrize("reserved_memory", [False, True], ids=["arm64", "riscv64-opensbi"])
def test_marker_dtb_adds_its_node_beside_the_firmware_reserved_memory(
        tmp_path: Path, reserved_memory: bool) -> None:
    """riscv64's boot tree has a /reserved-memory node (OpenSBI's): marker_dtb.py adds its
    child there instead of failing to make a second node."""
    import libfdt

    from tests.vm.harness import marker_dtb

    src, dst = tmp_path / "boot.dtb", tmp_path / "capture.dtb"
    src.write_bytes(_boot_fdt(reserved_memory))
    with pytest.MonkeyPatch.context() as m:
        m.setattr(sys, "argv", ["marker_dtb.py", str(src), str(dst), "the-marker"])
        assert marker_dtb.main() == 0
    fdt = libfdt.Fdt(dst.read_bytes())
    assert fdt.getprop(fdt.path_offset("/chosen"), "kdumpctl-py,marker").as_str() == "the-marker"
    assert fdt.path_offset(marker_dtb.RESERVED_NODE) > 0
    assert (fdt.path_offset("/reserved-memory/mmode_resv0@80000000", [libfdt.NOTFOUND]) > 0) \
        is reserved_memory
    assert tuple(fdt.get_mem_rsv(0)) == marker_dtb.MEMRESERVE
