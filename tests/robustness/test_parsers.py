"""Every parser of outside data either works or refuses with one line (issue 11).

Inputs are mutations of real, valid inputs (byte flips, truncation, splices)
and plain random data. Anything but a KdumpError/UsageError is a failure, and
a hypothesis deadline catches hangs. Memory is bounded separately by giving
each binary format a length field that claims gigabytes.
"""

from __future__ import annotations

import io
import struct
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdumpctl_py.arch import get_arch
from kdumpctl_py.capture.kdumpfile import read_kdump
from kdumpctl_py.capture.save import SaveOptions, save_vmcore
from kdumpctl_py.capture.vmcore import Vmcore
from kdumpctl_py.facts.elfcore import parse_elf_core
from kdumpctl_py.facts.iomem import parse_iomem
from kdumpctl_py.facts.kernel_image import probe, unwrap
from kdumpctl_py.facts.vmcoreinfo import parse_vmcoreinfo
from kdumpctl_py.plan.crashkernel import evaluate
from kdumpctl_py.plan.dtb import build_capture_dtb, summarize
from tests.builders import arm64_image, make_vmcore, zboot
from tests.conftest import FIXTURES
from tests.robustness.tally import check_contract

FUZZ = settings(max_examples=150, deadline=2000, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
QEMU_DTB = (FIXTURES / "dtb/qemu-virt-arm64.dtb").read_bytes()
IOMEM = (FIXTURES / "snapshots/host-x86_64/proc/iomem").read_text()


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(0, 8))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(max_size=64))
    return bytes(data)


@FUZZ
@given(st.one_of(st.text(max_size=400), mutated(IOMEM.encode()).map(
    lambda b: b.decode("latin-1"))))
def test_iomem(text: str) -> None:
    check_contract("/proc/iomem", parse_iomem, text)


def _vmcoreinfo(data: bytes) -> None:
    vi = parse_vmcoreinfo(data)
    for key in list(vi.entries)[:20]:
        for getter in (vi.symbol, vi.size, vi.offset, vi.length, vi.number):
            name = key[key.find("(") + 1:-1] if "(" in key else key
            getter(name)
    _ = (vi.page_size, vi.kernel_offset, vi.osrelease)


VMCOREINFO = (b"OSRELEASE=6.1.0\nPAGESIZE=4096\nSYMBOL(_stext)=ffffffff81000000\n"
              b"SIZE(page)=64\nOFFSET(page.flags)=0\nNUMBER(kimage_voffset)=0xffff7fff\n"
              b"KERNELOFFSET=1e000000\n")


@FUZZ
@given(st.one_of(st.binary(max_size=300), mutated(VMCOREINFO)))
def test_vmcoreinfo(data: bytes) -> None:
    check_contract("VMCOREINFO", _vmcoreinfo, data)


KCORE = (FIXTURES / "snapshots").glob("*/proc/kcore")


def _kcore_seed() -> bytes:
    for path in KCORE:
        return path.read_bytes()
    from tests.elfwriter import kcore_bytes, note

    return kcore_bytes([(0xFFFF888000100000, 0x100000, 0x1000)],
                       note(b"VMCOREINFO", 0, VMCOREINFO))


@FUZZ
@given(st.one_of(st.binary(max_size=400), mutated(_kcore_seed())))
def test_kcore_skeleton(data: bytes) -> None:
    check_contract("/proc/kcore skeleton", lambda d: parse_elf_core(io.BytesIO(d), "kcore"), data)


def _image(data: bytes) -> None:
    probe(unwrap(data, "image")[0], "image")


IMAGES = [arm64_image(), zboot(__import__("gzip").compress(arm64_image()), b"gzip"),
          __import__("gzip").compress(arm64_image())]


@FUZZ
@given(st.one_of(st.binary(max_size=600), st.sampled_from(IMAGES).flatmap(mutated)))
def test_kernel_image(data: bytes) -> None:
    check_contract("kernel image", _image, data)


def _dtb(data: bytes) -> None:
    summarize(data, "DTB")
    build_capture_dtb(data, [(0x60000000, 0x10000000)], (0x6FFF0000, 0x1000),
                      initrd=(0x61000000, 0x100000), cmdline="console=ttyAMA0",
                      randbytes=lambda n: b"\x01" * n)


@FUZZ
@given(st.one_of(st.binary(max_size=200), mutated(QEMU_DTB)))
def test_dtb(data: bytes) -> None:
    check_contract("DTB input", _dtb, data)


@FUZZ
@given(st.text(alphabet=st.sampled_from("crashkernel=0123456789xKMGTPE-:,@ highlow\t"),
               max_size=80), st.integers(0, 1 << 44))
def test_crashkernel(cmdline: str, ram: int) -> None:
    check_contract("crashkernel=", evaluate, cmdline, ram, get_arch("x86_64"))


@pytest.fixture(scope="module")
def vmcore_seed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path, _ = make_vmcore(tmp_path_factory.mktemp("seed"))
    return path.read_bytes()


@pytest.fixture(scope="module")
def kdump_seed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    tmp = tmp_path_factory.mktemp("kseed")
    path, _ = make_vmcore(tmp)
    r = save_vmcore(str(path), str(tmp / "out"), SaveOptions(1, "zlib", progress=False))
    return (Path(r.directory or "") / "vmcore").read_bytes()


def _read_vmcore(path: str) -> None:
    with Vmcore(path) as v:
        for paddr, size, _ in v.phys_ranges()[:3]:
            v.read_phys(paddr, min(size, 8192))


@settings(max_examples=60, deadline=4000, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_elf_vmcore(tmp_path: Path, vmcore_seed: bytes, data: st.DataObject) -> None:
    raw = data.draw(mutated(vmcore_seed[:4096]).map(lambda h: h + vmcore_seed[4096:]))
    path = tmp_path / "v"
    path.write_bytes(raw)
    check_contract("ELF vmcore", _read_vmcore, str(path))


@settings(max_examples=60, deadline=4000, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_kdump_compressed(tmp_path: Path, kdump_seed: bytes, data: st.DataObject) -> None:
    raw = data.draw(mutated(kdump_seed[:12288]).map(lambda h: h + kdump_seed[12288:]))
    path = tmp_path / "k"
    path.write_bytes(raw)
    check_contract("kdump-compressed", read_kdump, str(path))


def _peak(fn: object, *args: object) -> int:
    tracemalloc.start()
    try:
        check_contract("length fields", fn, *args)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def test_length_fields_do_not_drive_allocation(tmp_path: Path, vmcore_seed: bytes,
                                               kdump_seed: bytes) -> None:
    """A header that claims gigabytes costs no more memory than the file's real size."""
    limit = 16 << 20
    # kdump-compressed: bitmap_blocks says 2^31 blocks
    k = bytearray(kdump_seed)
    struct.pack_into("<I", k, 436, 1 << 30)
    (tmp_path / "k").write_bytes(k)
    assert _peak(read_kdump, str(tmp_path / "k")) < limit
    # ELF vmcore: a note whose descsz claims 4 GiB
    v = bytearray(vmcore_seed)
    note_off = struct.unpack_from("<Q", v, 64 + 8)[0]
    struct.pack_into("<I", v, note_off + 4, 0xFFFFFFF0)
    (tmp_path / "v").write_bytes(v)
    assert _peak(_read_vmcore, str(tmp_path / "v")) < limit
    # ELF vmcore: a PT_NOTE p_filesz of 1 TiB
    v = bytearray(vmcore_seed)
    struct.pack_into("<Q", v, 64 + 32, 1 << 40)
    (tmp_path / "v2").write_bytes(v)
    assert _peak(_read_vmcore, str(tmp_path / "v2")) < limit
    # gzip bomb: 1 GiB of zeros in 1 MiB
    import zlib

    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = c.compress(bytes(1 << 20))
    for _ in range(1023):
        bomb += c.compress(bytes(1 << 20))
    bomb += c.flush()
    assert _peak(_image, bomb) < 3 * (128 << 20)  # stops at the 128 MiB cap
