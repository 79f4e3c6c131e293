"""Builders shared by the test modules: synthetic machines, dumps, kernels and files.

Tests import helpers from here (and from the other non-test modules beside it),
never from another test module.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import os
import re
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kdumpctl_py.analyse.kernlog import LogLine
from kdumpctl_py.elf import EM_AARCH64
from kdumpctl_py.errors import KdumpError
from kdumpctl_py.facts.view import META, SystemView
from tests.capture.printk_rings import RESERVED, Ring
from tests.conftest import FIXTURES, SNAPSHOTS
from tests.elfwriter import kcore_bytes, note, vmcore_bytes
from tests.snapshots import make_snapshot

# This machine's shape: Debian in deb822, plus third-party repositories that must be ignored.
DEBIAN_SOURCES = """\
Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://mirror.example/debian
Suites: bookworm
Components: main
"""


def elf_with_id(path: Path, build_id: str | None, machine: int = 62) -> Path:
    """An ELF whose only build-ID-looking note is GNU's, after a Xen note of the same type
    (vmlinux has exactly that: Xen's type 3 is not a build ID)."""
    notes = note(b"Xen", 3, b"\0\0\0\x80\xff\xff\xff\xff")
    if build_id is not None:
        notes += note(b"GNU", 3, bytes.fromhex(build_id))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(kcore_bytes([], notes, machine=machine, tail=0))
    return path


QEMU_DTB = FIXTURES / "dtb" / "qemu-virt-arm64.dtb"


def dts(blob: bytes) -> str:
    out = subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", "-"], input=blob,
                         capture_output=True, check=True)
    return out.stdout.decode()


def compile_dts(text: str) -> bytes:
    out = subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-"], input=text.encode(),
                         capture_output=True, check=True)
    return out.stdout


def chosen_props(text: str) -> dict[str, str]:
    """/chosen's properties as dtc prints them: name -> value text ('' for an empty one)."""
    block = re.search(r"^\tchosen \{\n(.*?)^\t\};", text, re.M | re.S)
    assert block, "no /chosen in the dtc output"
    props = {}
    for line in block.group(1).splitlines():
        m = re.fullmatch(r"\t\t([^ =;]+)(?: = (.*))?;", line)
        assert m, f"unexpected line in /chosen: {line!r}"
        props[m.group(1)] = m.group(2) or ""
    return props


def memreserve(text: str) -> list[tuple[int, int]]:
    return [(int(a, 16), int(s, 16))
            for a, s in re.findall(r"^/memreserve/\s+(0x[0-9a-f]+) (0x[0-9a-f]+);", text, re.M)]


def cells(*values: tuple[int, int]) -> str:
    """dtc's rendering of (value, cell count) pairs: <0x00 0x50000000 ...>."""
    words = []
    for value, n in values:
        words += [f"{(value >> (32 * i)) & 0xFFFFFFFF:#04x}" for i in reversed(range(n))]
    return "<" + " ".join(words) + ">"


def board(*, cells_lines: str = "#address-cells = <2>;\n\t#size-cells = <2>;",
          chosen: str | None = 'bootargs = "root=/dev/vda";\n\t\tstdout-path = "/soc/uart";',
          reserve: str = "") -> bytes:
    """A small hand-made tree: root cells, a memory node, a bus, and /chosen (or none)."""
    chosen_node = "" if chosen is None else f"\tchosen {{\n\t\t{chosen}\n\t}};\n"
    return compile_dts(f"""/dts-v1/;
{reserve}
/ {{
\t{cells_lines}
\tcompatible = "test,board";
\tmodel = "hand-made";
\tmemory@40000000 {{
\t\tdevice_type = "memory";
\t}};
\tsoc {{
\t\t#address-cells = <1>;
\t\t#size-cells = <1>;
\t\tuart {{
\t\t\tcompatible = "arm,pl011";
\t\t\treg = <0x9000000 0x1000>;
\t\t}};
\t}};
{chosen_node}}};
""")


LOW_RAM = (0x100000, 0xBFFFFFFF)  # 3 GiB - 1 MiB


HIGH_RAM = (0x100000000, 0x63FFFFFFF)  # 21 GiB


def synthetic_snapshot(tmp_path: Path, cmdline: str = "ro quiet",
                       crash: tuple[tuple[int, int], ...] = (), crash_size: int | None = None,
                       loaded: bool | None = False, boot: dict[str, int] | None = None,
                       masked: bool = False, arch: str = "x86_64") -> Path:
    """A copy of the x86_64 fixture with 24 GiB of RAM and the given crash regions and files."""
    root = tmp_path / "snap"
    shutil.copytree(SNAPSHOTS / "host-x86_64", root)
    lines = ["00000000-00000fff : Reserved", "00001000-0009fbff : System RAM"]
    for ram in (LOW_RAM, HIGH_RAM):
        lines.append(f"{ram[0]:08x}-{ram[1]:08x} : System RAM")
        lines += [f"  {s:08x}-{e:08x} : Crash kernel" for s, e in crash if ram[0] <= s <= ram[1]]
    if masked:
        lines = [" " * (len(ln) - len(ln.lstrip())) + "00000000-00000000 : " + ln.split(" : ")[1]
                 for ln in lines]
    (root / "proc/iomem").write_text("\n".join(lines) + "\n")
    (root / "proc/cmdline").write_text(cmdline + "\n")
    if crash_size is None:
        crash_size = sum(e - s + 1 for s, e in crash)
    (root / "sys/kernel/kexec_crash_size").write_text(f"{crash_size}\n")
    if loaded is not None:
        (root / "sys/kernel/kexec_crash_loaded").write_text(f"{int(loaded)}\n")
    meta: dict[str, Any] = json.loads((root / META).read_text())
    meta["boot"] = boot or {}
    meta["uname"]["machine"] = arch
    (root / META).write_text(json.dumps(meta))
    return root


def as_if_live(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Run commands without --sysroot but on the files under root, as a machine whose
    own files they are: how the acting paths are tested without touching this one."""
    from kdumpctl_py.facts.view import SystemView

    monkeypatch.setattr("kdumpctl_py.cli.open_view", lambda args, probe=False: SystemView(root))
    monkeypatch.setenv("KDUMPCTL_LOCK", str(root.parent / "lock"))


RELEASE = "6.5.6-300.fc39.x86_64"


FEDORA_ENTRY = f"""\
title Fedora Linux ({RELEASE}) 39 (Workstation Edition)
version {RELEASE}
linux /vmlinuz-{RELEASE}
initrd /initramfs-{RELEASE}.img
options root=UUID=6d1a5c6e-7c56-4bd1-a7b7-9c0d3e0e59a1 ro rootflags=subvol=root rhgb quiet \
crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M
grub_users $grub_users
grub_arg --unrestricted
grub_class fedora
"""


DEBIAN_GRUB = """\
# If you change this file, run 'update-grub' afterwards to update
# /boot/grub/grub.cfg.
# For full documentation of the options in this file, see:
#   info -f grub -n 'Simple configuration'

GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX=""

# If your computer has multiple operating systems installed, then you
# probably want to run os-prober. However, if your computer is a host
#GRUB_DISABLE_OS_PROBER=false
"""


def debian(root: Path, tools: tuple[str, ...] = ("update-grub",)) -> Path:
    (root / "etc/default").mkdir(parents=True)
    (root / "etc/default/grub").write_text(DEBIAN_GRUB)
    (root / "usr/sbin").mkdir(parents=True)
    for tool in tools:
        (root / "usr/sbin" / tool).write_text("#!/bin/sh\n")
    return root / "etc/default/grub"


PAGE = 4096


UTS = b"Linux".ljust(65, b"\0") + b"testhost".ljust(65, b"\0") + b"6.1.0-test".ljust(65, b"\0")


INFO = (b"OSRELEASE=6.1.0-test\nPAGESIZE=4096\nCRASHTIME=1790000000\n"
        b"SYMBOL(init_uts_ns)=ffff888000000000\nOFFSET(uts_namespace.name)=0\n")


LINEAR = 0xFFFF888000000000


def memory(seed: int, pages: int, zero_every: int = 3) -> bytes:
    rng = np.random.default_rng(seed)
    out = bytearray()
    for i in range(pages):
        if i % zero_every == 0:
            out += bytes(PAGE)
        elif i % 2:
            out += rng.integers(0, 256, PAGE, dtype=np.uint8).tobytes()  # incompressible
        else:
            out += (bytes([i % 251]) * 64) * (PAGE // 64)  # compressible
    return bytes(out)


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def open_fds_settled() -> set[int]:
    """The open fds for a test to compare with once it ran: collected first, so that an
    earlier test's garbage does not close its files in between (a drgn program, in
    reference cycles, keeps its dump and vmlinux open until the cycle collector runs)."""
    gc.collect()
    return open_fds()


def fails_closing_every_fd(monkeypatch: pytest.MonkeyPatch, owner: object, name: str, n: int,
                           run: Callable[[], object]) -> None:
    """`run` with `owner.name` failing with EIO from its n-th call on: it fails, there,
    and leaves no fd open (one left would keep the target busy when capture unmounts it)."""
    real = getattr(owner, name)
    calls = [0]

    def failing(*args: object, **kwargs: object) -> object:  # a function: a method stays one
        calls[0] += 1
        if calls[0] >= n:
            raise OSError(errno.EIO, "Input/output error")
        return real(*args, **kwargs)

    before = open_fds_settled()
    monkeypatch.setattr(owner, name, failing)
    with pytest.raises((KdumpError, OSError)):
        run()
    monkeypatch.undo()
    assert calls[0] >= n  # it failed where it was meant to
    assert open_fds() == before


def make_vmcore(tmp_path: Path) -> tuple[Path, dict[int, bytes]]:
    low = bytearray(memory(1, 8))
    low[:len(UTS)] = UTS  # init_uts_ns at physical 0
    high = memory(2, 40)
    segs = [(LINEAR, 0, bytes(low), 8 * PAGE),
            (LINEAR + 0x100000, 0x100000, high[:32 * PAGE], 40 * PAGE)]  # 8 pages past filesz
    notes = note(b"CORE", 1, bytes(336)) * 2 + note(b"VMCOREINFO", 0, INFO)
    path = tmp_path / "vmcore"
    path.write_bytes(vmcore_bytes(segs, notes))
    want = {i: bytes(low[i * PAGE:(i + 1) * PAGE]) for i in range(8)}
    want.update({0x100 + i: high[i * PAGE:(i + 1) * PAGE] for i in range(32)})
    return path, want


def unreadable_page(monkeypatch: pytest.MonkeyPatch, vmcore: Path, code: int = errno.EFAULT,
                    page: int = 5) -> None:
    """Reads of page `page` of make_vmcore's second PT_LOAD (pfn 0x105) fail with `code`,
    as /proc/vmcore's do for old memory it cannot copy (EFAULT: riscv64's firmware RAM)."""
    from kdumpctl_py.capture.vmcore import Vmcore

    with Vmcore(str(vmcore)) as v:
        bad = v.core.loads[1].offset + page * PAGE
    real_into = Vmcore.pread_into

    def pread_into(self: Vmcore, buf: memoryview, offset: int) -> int:
        if offset <= bad < offset + len(buf):
            raise OSError(code, os.strerror(code))
        return real_into(self, buf, offset)

    def pread(self: Vmcore, size: int, offset: int) -> bytes:
        buf = bytearray(size)
        return bytes(buf[:pread_into(self, memoryview(buf), offset)])

    monkeypatch.setattr(Vmcore, "pread", pread)
    monkeypatch.setattr(Vmcore, "pread_into", pread_into)

def arm64_image(image_size: int = 0x2000000, flags: int = 0b0010, efi: bool = True) -> bytes:
    code0 = 0x5A4D if efi else 0x14000000  # "MZ" for an EFI stub, else a branch
    head = struct.pack("<IIQQQQQQ4sI", code0, 0, 0, image_size, flags, 0, 0, 0, b"ARM\x64", 0)
    return head + bytes(4096)


def riscv_image(image_size: int = 0x2000000, efi: bool = True) -> bytes:
    """A riscv64 Image header (struct riscv_image_header), text_offset 2 MiB as Debian's."""
    code0 = 0x5A4D if efi else 0x0000006F  # "MZ" for an EFI stub, else `j .`
    head = struct.pack("<IIQQQIIQQ4sI", code0, 0, 2 << 20, image_size, 0, 2, 0, 0,
                       int.from_bytes(b"RISCV\0\0\0", "little"), b"RSC\x05", 0)
    return head + bytes(4096)


def zboot(payload: bytes, comp: bytes) -> bytes:
    head = b"MZ\0\0zimg" + struct.pack("<II", 64, len(payload)) + bytes(8) + comp.ljust(16, b"\0")
    return head.ljust(64, b"\0") + payload


def cpu_files(notes: dict[int, int], size: int) -> dict[str, str | bytes]:
    files: dict[str, str | bytes] = {"/sys/devices/system/cpu/possible": f"0-{len(notes) - 1}\n"}
    for cpu, addr in notes.items():
        files[f"/sys/devices/system/cpu/cpu{cpu}/crash_notes"] = f"{addr:x}\n"
        files[f"/sys/devices/system/cpu/cpu{cpu}/crash_notes_size"] = f"{size}\n"
    return files


ARM64_IOMEM = """\
09000000-09000fff : pl011@9000000
40000000-7fffffff : System RAM
  40210000-4113ffff : Kernel code
  41140000-4166ffff : reserved
  41670000-41a5ffff : Kernel data
  6fe00000-7fdfffff : Crash kernel
"""


def arm64_snapshot(root: Path, with_kcore_ram: bool = True) -> SystemView:
    voffset = 0xFFFF7FFF87E00000
    vmcoreinfo = (f"OSRELEASE=6.1.0-test\nSYMBOL(_stext)={0x40210000 + voffset:x}\n"
                  f"NUMBER(VA_BITS)=48\nNUMBER(kimage_voffset)={voffset:#x}\n"
                  "NUMBER(PHYS_OFFSET)=0x40000000\nKERNELOFFSET=7fe00000\n").encode()
    loads = [(0xFFFF000000000000, 0x40000000, 0x40000000)] if with_kcore_ram else []
    loads.append((0xFFFF800008000000, (1 << 64) - 1, 0x10000000))
    files = {"/proc/iomem": ARM64_IOMEM,
             "/proc/kcore": kcore_bytes(loads, note(b"VMCOREINFO", 0, vmcoreinfo), EM_AARCH64),
             "/sys/kernel/vmcoreinfo": "0x7fdb0000 1024\n",
             **cpu_files({0: 0x7FD8C000}, 424)}
    return SystemView(make_snapshot(root, "aarch64", files))


def busy_ring() -> Ring:
    """8 descriptors, 256 bytes of text: 12 records wrap both rings; one is left reserved."""
    ring = Ring(count_bits=3, size_bits=8)
    for i in range(12):
        ring.add(b"line %d " % i + b"x" * (i * 7 % 40), ts=1_000_000_000 + i * 1500,
                 caller=100 + i)
    ring.add(b"half-written", state=RESERVED)
    return ring


def small_ring() -> Ring:
    ring = Ring()
    ring.add(b"Linux version 6.1.0", ts=0, level=5, caller=0)
    ring.add(b"virtio_blk virtio0: [vda] 3145728 512-byte logical blocks", ts=5_758_867_000,
             caller=5, subsystem=b"virtio", device=b"+virtio:virtio0")
    ring.add(b"Kernel panic - not syncing: sysrq triggered crash\nsecond line", ts=17_079_585_123,
             level=0, caller=168)
    return ring


class FakeMachine:
    """The capture service's machine, recording each call instead of making it."""

    def __init__(self, rc: int = 0, device: bool = True) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.rc, self.device = rc, device

    def run(self, argv: list[str]) -> int:
        self.calls.append(("run", *argv))
        return self.rc if "pre" in argv[0] else 0

    def wait_for(self, path: str, seconds: float = 0) -> bool:
        self.calls.append(("wait", path))
        return self.device

    def mount(self, fstype: str, device: str, options: str, mountpoint: str) -> None:
        self.calls.append(("mount", fstype, device, mountpoint, *filter(None, [options])))
        Path(mountpoint).mkdir(parents=True, exist_ok=True)

    def umount(self, mountpoint: str) -> None:
        self.calls.append(("umount", mountpoint))

    def act(self, action: str) -> None:
        self.calls.append(("act", action))


def panic_vmcore(path: Path, console: str, release: str = "6.1.0-57-cloud-amd64",
                 build_id: str = "ab" * 20) -> Path:
    """A small ELF vmcore whose kernel log holds `console`'s lines ("[  ts] text", as a
    serial console shows them), with OSRELEASE and BUILD-ID in its VMCOREINFO: what the
    log-only analysis and the crash signature read."""
    from tests.capture.printk_rings import elf_vmcore

    ring = Ring(count_bits=7, size_bits=14)
    for line in console_log(console):
        ring.add(line.text.encode(), ts=line.timestamp_ns)
    info = ring.vmcoreinfo() + f"OSRELEASE={release}\nBUILD-ID={build_id}\n"
    path.write_bytes(elf_vmcore(ring.memory(), info))
    return path


def console_log(text: str) -> list[LogLine]:
    """Lines as `dmesg` and serial consoles print them: "[   17.079585] text"."""
    out = []
    for line in text.strip("\n").splitlines():
        m = re.match(r"\[\s*(\d+)\.(\d{6})\] ?(.*)$", line)
        assert m, line
        out.append(LogLine(int(m.group(1)) * 10**9 + int(m.group(2)) * 1000, m.group(3)))
    return out


def assert_same_pages(ours: Path, theirs: Path) -> None:
    """Two kdump-compressed files that may differ only in how each page is compressed (ISA-L
    against makedumpfile's zlib): every byte before the page descriptors (headers, notes,
    both bitmaps) the same, and every dumped page the same once decompressed."""
    from kdumpctl_py.capture.kdumpfile import KdumpMemory

    with KdumpMemory(str(ours)) as a, KdumpMemory(str(theirs)) as b:
        head = a.dump.descs_offset
        assert head == b.dump.descs_offset
        assert ours.read_bytes()[:head] == theirs.read_bytes()[:head]
        pfns = np.flatnonzero(a.dump.bitmap2).tolist()
        assert pfns and all(a.page(pfn) == b.page(pfn) for pfn in pfns)


def unfinished_kdump_header() -> bytes:
    """The first block of a kdump-compressed file still marked DUMP_DH_COMPRESSED_INCOMPLETE,
    and nothing after it: a save cut short before the header was rewritten."""
    from kdumpctl_py.capture.kdumpfile import DUMP_DH_COMPRESSED_INCOMPLETE, DiskDumpHeader

    return DiskDumpHeader(bytes(390), (0, 0), DUMP_DH_COMPRESSED_INCOMPLETE, 4096, 1, 2, 16,
                          1).pack()



@contextlib.contextmanager
def tmpfs(mnt: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `mnt` (made here), where a write runs out of space for
    real; lazily unmounted after. Skips the test where it cannot be mounted."""
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
