"""VM tier: kdumpctl-py's builders against independent oracles on the same boot.

- x86_64: the kernel builds its own elfcorehdr in kexec_file_load (the reference
  cycle loads with Debian's kexec-tools -s); the PT_LOADs the capture kernel
  exposes in /proc/vmcore must be the ones kdumpctl-py plans from the snapshot
  taken in that same first kernel, and the notes must match.
- arm64: the capture kernel boots with kdumpctl-py's elfcorehdr, DTB and
  purgatory (kexec_load), its /proc/vmcore reads end to end (copied whole), and
  its PT_LOADs are ours.
- makedumpfile: on the x86_64 reference vmcore, at each dump level, our bitmaps
  equal makedumpfile's, and the zlib (through the system zlib) and lzo (Fedora's -l)
  kdump-compressed and the ELF dumps are its bytes; a zlib dump through ISA-L has its
  headers, bitmaps and pages, and makedumpfile re-filters it into its own dump to the
  byte; drgn and crash open every output format.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from kdumpctl_py.capture.filter import dumpable_pages
from kdumpctl_py.capture.kdumpfile import read_kdump
from kdumpctl_py.capture.save import SaveOptions, save_vmcore
from kdumpctl_py.capture.vmcore import Vmcore
from kdumpctl_py.elf import NT_PRSTATUS
from kdumpctl_py.facts.view import SystemView
from kdumpctl_py.plan.elfcorehdr import plan_elfcorehdr
from tests.builders import assert_same_pages
from tests.vm.cycles import ARM64_WHOLE, FORMATS, REFERENCE_X86, Cycle, assert_good_dump


def vmcore_of(c: Cycle) -> Path:
    assert c.exit_status == 0, c.explain()
    (path,) = sorted(c.out.glob("dumps/*/vmcore"))
    return path


def loads(phdrs: object) -> list[tuple[int, int, int]]:
    return sorted((p.paddr, p.vaddr, p.memsz) for p in phdrs)  # type: ignore[attr-defined]


def assert_same_header(c: Cycle) -> None:
    view = SystemView(c.out / "snapshot.tar.gz")
    ours = plan_elfcorehdr(view)
    with Vmcore(str(vmcore_of(c))) as v:
        assert loads(v.core.loads) == loads(ours.loads)
        cpus = [n for n in v.core.notes if n.type == NT_PRSTATUS and n.name == "CORE"]
        assert len(cpus) == len(view.crash_notes) == len(ours.notes) - 1
        assert v.vmcoreinfo.osrelease == view.uname.release


@pytest.mark.vm
def test_x86_64_elfcorehdr_equals_the_kernels(cycles: Callable[..., Cycle]) -> None:
    assert_same_header(cycles(*REFERENCE_X86))


@pytest.mark.vm
def test_arm64_capture_boots_with_ours_and_reads_whole(cycles: Callable[..., Cycle]) -> None:
    c = cycles(*ARM64_WHOLE)
    assert_good_dump(c)
    assert c.result["implementations"]["load"] == "kdumpctl-py"
    assert_same_header(c)
    with Vmcore(str(vmcore_of(c))) as v:  # the copy is whole: every segment is in the file
        end = max(s.offset + s.filesz for s in v.core.loads)
        assert v.size == end


@pytest.mark.vm
@pytest.mark.parametrize("level", [1, 2, 4, 8, 16, 31])
def test_bitmaps_equal_makedumpfiles(cycles: Callable[..., Cycle], tmp_path: Path,
                                     level: int) -> None:
    vmcore = vmcore_of(cycles(*REFERENCE_X86))
    out = tmp_path / "mdf.kdump"
    subprocess.run(["makedumpfile", "-d", str(level), str(vmcore), str(out)], check=True,
                   capture_output=True)
    theirs = read_kdump(str(out))
    with Vmcore(str(vmcore)) as v:
        present, keep = dumpable_pages(v, level)
    assert (theirs.bitmap1 == present).all()
    assert (theirs.bitmap2 == keep).all()


@pytest.mark.vm
@pytest.mark.parametrize("ours,theirs", [(SaveOptions(31, "zlib", progress=False,
                                                      zlib_engine="zlib"), ["-c"]),
                                         (SaveOptions(31, "lzo", progress=False), ["-l"]),
                                         (SaveOptions(31, format="elf", progress=False), ["-E"]),
                                         (SaveOptions(31, format="elf", progress=False,
                                                      memory_limit=1), ["-E"])],
                         ids=["kdump-zlib", "kdump-lzo", "elf", "elf-one-section-windows"])
def test_dump_is_makedumpfiles_to_the_byte(cycles: Callable[..., Cycle], tmp_path: Path,
                                          ours: SaveOptions, theirs: list[str]) -> None:
    """zlib through the system zlib (zlib_engine zlib): makedumpfile's compress2 bytes."""
    vmcore = vmcore_of(cycles(*REFERENCE_X86))
    mdf = tmp_path / "mdf"
    subprocess.run(["makedumpfile", *theirs, "-d", "31", str(vmcore), str(mdf)], check=True,
                   capture_output=True)
    result = save_vmcore(str(vmcore), str(tmp_path / "ours"), ours)
    assert (Path(result.directory or "") / "vmcore").read_bytes() == mdf.read_bytes()


@pytest.mark.vm
@pytest.mark.parametrize("limit", [0, 1], ids=["one-window", "one-section-windows"])
def test_makedumpfile_refilters_our_isal_dump_into_its_own(cycles: Callable[..., Cycle],
                                                          tmp_path: Path, limit: int) -> None:
    """ISA-L's zlib pages (the default engine) are not compress2's bytes, but the headers,
    bitmaps and every page are makedumpfile's; and makedumpfile itself, reading every page of
    our dump back (-c -d 31 again), writes exactly its own dump of the vmcore."""
    vmcore = vmcore_of(cycles(*REFERENCE_X86))
    mdf = tmp_path / "mdf"
    subprocess.run(["makedumpfile", "-c", "-d", "31", str(vmcore), str(mdf)], check=True,
                   capture_output=True)
    result = save_vmcore(str(vmcore), str(tmp_path / "ours"),
                         SaveOptions(31, "zlib", progress=False, memory_limit=limit,
                                     zlib_engine="isal"))
    ours = Path(result.directory or "") / "vmcore"
    assert ours.read_bytes() != mdf.read_bytes()
    assert_same_pages(ours, mdf)
    again = tmp_path / "again"
    subprocess.run(["makedumpfile", "-c", "-d", "31", str(ours), str(again)], check=True,
                   capture_output=True)
    assert again.read_bytes() == mdf.read_bytes()


def with_partial_pages(vmcore: Path, out: Path) -> tuple[int, int]:
    """A copy of `vmcore` whose largest PT_LOAD starts 0x100 bytes into its first page
    and ends 0x400 bytes before the end of its last (the program header edited, the
    data where it was); the first and end byte of that segment now."""
    import shutil
    import struct

    shutil.copyfile(vmcore, out)
    with open(out, "r+b") as f:
        head = f.read(64)
        (phoff,), (phnum,) = struct.unpack_from("<Q", head, 32), struct.unpack_from("<H", head, 56)
        phdrs = []
        for i in range(phnum):
            f.seek(phoff + 56 * i)
            phdrs.append(list(struct.unpack("<IIQQQQQQ", f.read(56))))
        i, ph = max(enumerate(phdrs), key=lambda e: e[1][6] if e[1][0] == 1 else -1)
        ph[2], ph[3], ph[4] = ph[2] + 0x100, ph[3] + 0x100, ph[4] + 0x100
        ph[5] = ph[6] = ph[6] - 0x500
        f.seek(phoff + 56 * i)
        f.write(struct.pack("<IIQQQQQQ", *ph))
    return ph[4], ph[4] + ph[6]


@pytest.mark.vm
@pytest.mark.parametrize("level", [0, 31])
def test_partial_pages_as_makedumpfile(cycles: Callable[..., Cycle], tmp_path: Path,
                                       level: int) -> None:
    """A segment that starts and ends inside a page (docs/page-filter.md): the kdump file has
    makedumpfile's headers, bitmaps and pages (its first page zero-filled before the start,
    its last page in neither bitmap); the ELF dump keeps the last page's bytes, which makedumpfile's
    -E leaves out of p_filesz."""
    src = tmp_path / "partial.elf"
    start, end = with_partial_pages(vmcore_of(cycles(*REFERENCE_X86)), src)
    mdf = tmp_path / "mdf"
    subprocess.run(["makedumpfile", "-c", "-d", str(level), str(src), str(mdf)], check=True,
                   capture_output=True)
    result = save_vmcore(str(src), str(tmp_path / "ours"), SaveOptions(level, "zlib",
                                                                       progress=False))
    assert_same_pages(Path(result.directory or "") / "vmcore", mdf)  # ISA-L's zlib pages
    theirs = read_kdump(str(mdf))
    assert theirs.bitmap1[start >> 12] and not theirs.bitmap1[end >> 12]
    mdf.unlink()
    elf = save_vmcore(str(src), str(tmp_path / "elf"), SaveOptions(level, format="elf",
                                                                   progress=False))
    with Vmcore(str(src)) as v, Vmcore(str(Path(elf.directory or "") / "vmcore")) as ours:
        tail = end & ~0xFFF
        assert ours.read_phys_filled(tail, end - tail) == v.read_phys(tail, end - tail)
        assert ours.read_phys_filled(start, 0x200) == v.read_phys(start, 0x200)


@pytest.mark.vm
@pytest.mark.parametrize("arch,method", [("x86_64", "file"), ("arm64", "classic")])
def test_status_after_start_and_harmless_probes(cycles: Callable[..., Cycle], arch: str,
                                                method: str) -> None:
    """After `start` kdump is operational (exit 0); the extended probe says missing on these
    kernels and probing (status runs all three probes) leaves the loaded kernel alone."""
    import json

    c = cycles("--arch", arch)
    assert_good_dump(c)
    before = json.loads((c.out / "status.json").read_text())
    results = c.out / "results" / "first"
    after = json.loads((results / "status-loaded.out").read_text())
    assert (results / "status-loaded.rc").read_text().strip() == "0"
    assert before["operational"] is False and before["loaded"] is False
    assert after["operational"] is True and after["loaded"] is True and after["reason"] is None
    assert before["load_paths"] == after["load_paths"]
    assert after["load_paths"]["extended"] == "missing" and after["method"] == method


@pytest.fixture(scope="module")
def reference_vmlinux(cycles: Callable[..., Cycle]) -> Path:
    c = cycles(*REFERENCE_X86)
    path = Path(c.report["vmlinux"])
    assert path.exists()
    return path


@pytest.mark.vm
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_drgn_and_crash_open_every_format(cycles: Callable[..., Cycle], tmp_path: Path,
                                          reference_vmlinux: Path, fmt: str) -> None:
    import shutil

    import drgn

    options, name = FORMATS[fmt]
    result = save_vmcore(str(vmcore_of(cycles(*REFERENCE_X86))), str(tmp_path), options)
    dump = Path(result.directory or "") / name
    prog = drgn.Program()
    prog.set_core_dump(str(dump))
    prog.load_debug_info([str(reference_vmlinux)])
    assert prog.crashed_thread().object.comm.string_() == b"kdumpcrasher"
    if shutil.which("crash") is None:
        pytest.skip("crash is not installed")
    out = subprocess.run(["crash", "-s", str(reference_vmlinux), str(dump)], input="sys\nquit\n",
                         capture_output=True, text=True, timeout=600)
    assert 'PANIC: "Kernel panic - not syncing: sysrq triggered crash"' in out.stdout, out.stderr
    assert "read error" not in out.stdout + out.stderr


@pytest.mark.vm
@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_analysis_without_dwarf(cycles: Callable[..., Cycle], tmp_path: Path,
                                arch: str) -> None:
    """The crash-cycle dumps still give the release and the panic message with no vmlinux."""
    import json
    import sys

    c = cycles("--arch", arch)
    assert_good_dump(c)
    (dump,) = sorted(c.out.glob("dumps/*/vmcore"))
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}  # no debuginfo cache to find
    out = subprocess.run([sys.executable, "-m", "kdumpctl_py", "analyse", str(dump),
                          "--debug-dir", str(tmp_path), "--json"], capture_output=True,
                         text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["release"] == c.report["release"]
    assert "sysrq triggered crash" in report["panic_message"]


@pytest.mark.vm
@pytest.mark.parametrize("compress", ["zlib", "lzo", "none"])  # Debian 12's makedumpfile lacks zstd
def test_makedumpfile_reads_our_dmesg(cycles: Callable[..., Cycle], tmp_path: Path,
                                      compress: str) -> None:
    """makedumpfile --dump-dmesg reads the kernel log out of kdumpctl-py's kdump file."""
    result = save_vmcore(str(vmcore_of(cycles(*REFERENCE_X86))), str(tmp_path / "ours"),
                         SaveOptions(31, compress, progress=False))
    dump = Path(result.directory or "") / "vmcore"
    out = tmp_path / "dmesg.txt"
    subprocess.run(["makedumpfile", "--dump-dmesg", str(dump), str(out)], check=True,
                   capture_output=True)
    assert out.read_text() == (dump.parent / "vmcore-dmesg.txt").read_text()
