"""The kernel log from hand-made printk buffers: the lockless ring of 5.10+ and log_buf."""

from __future__ import annotations

import errno
import json
import os
import signal
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdumpctl_py.capture.dmesg import (
    DESC_CHUNK,
    KernelLog,
    Lost,
    Record,
    format_kmsg,
    format_record,
    read_kernel_log,
    read_vmcore_log,
)
from kdumpctl_py.capture.vmcore import Vmcore
from kdumpctl_py.errors import KdumpError, UsageError
from tests.builders import busy_ring
from tests.capture.printk_rings import (
    COMMITTED,
    DATA,
    DESCS,
    IMAGE,
    INFOS,
    FakeMemory,
    LegacyBuf,
    Ring,
    elf_vmcore,
)


def read(ring: Ring | LegacyBuf, info: str | None = None) -> KernelLog:
    return read_kernel_log(FakeMemory(ring.memory(), info or ring.vmcoreinfo()))


def texts(log: KernelLog) -> list[tuple[int | None, bytes]]:
    return [(r.seq, r.text) for r in log.records]


# -- the lockless ring buffer


def test_ring_through_an_elf_vmcore(tmp_path: Path) -> None:
    ring = busy_ring()
    assert ring.wrapped == [7]  # the block of record 7 wraps to the ring's start
    path = tmp_path / "vmcore"
    path.write_bytes(elf_vmcore(ring.memory(), ring.vmcoreinfo()))
    with Vmcore(str(path)) as v:
        log = read_kernel_log(v)
    assert log.source == "printk_ringbuffer" and log.warnings == []
    assert texts(log) == [(i, b"line %d " % i + b"x" * (i * 7 % 40)) for i in range(7, 12)]
    # 5 and 6 were pushed out of the text ring; 12 was being written at the crash.
    assert log.lost == [Lost(5, "overwritten"), Lost(6, "overwritten"), Lost(12, "reserved")]
    rec = log.records[0]
    assert (rec.ts_nsec, rec.level, rec.facility, rec.caller, rec.final) == (
        1_000_010_500, 6, 0, "T107", True)
    assert read_vmcore_log(str(path)).records == log.records


def test_every_record_while_a_ring_fills() -> None:
    """After each write the readable records are exactly the newest that still fit."""
    ring = Ring(count_bits=4, size_bits=9)
    written: list[tuple[int, bytes]] = []
    for i in range(60):
        text = b"%d:" % i + b"abcdefghij"[: i % 11] * (i % 4)
        written.append((ring.add(text), text))
        log = read(ring)
        got = texts(log)
        assert got == written[len(written) - len(got):]  # a suffix, in order
        first = written[len(written) - len(got)][0]
        # what went before is lost, never skipped in silence
        assert [x.seq for x in log.lost] == list(range(first - len(log.lost), first))
        assert len(got) + len(log.lost) <= ring.count
        assert log.warnings == []
    assert ring.wrapped, "the text ring never wrapped"


def test_fresh_ring_is_empty_and_the_bootstrap_descriptor_is_not_a_record() -> None:
    ring = Ring()
    log = read(ring)
    assert (log.records, log.lost, log.warnings) == ([], [], [])
    ring.add(b"first")
    assert texts(read(ring)) == [(0, b"first")]


def test_empty_records_and_records_without_room_for_text() -> None:
    ring = Ring()
    ring.add(b"before")
    ring.add(b"")  # printk("\n"): a data-less record, an empty line in dmesg
    ring.add(b"too long", fail=True)  # FAILED_LPOS: the kernel kept only the metadata
    ring.add(b"after")
    log = read(ring)
    assert texts(log) == [(0, b"before"), (1, b""), (3, b"after")]
    assert log.lost == [Lost(2, "no-data")]
    assert format_record(log.records[1]) == "[    0.000000] \n"


def test_committed_head_is_shown_but_not_final() -> None:
    ring = Ring()
    ring.add(b"a fragment", state=COMMITTED, cont=True)
    log = read(ring)
    assert texts(log) == [(0, b"a fragment")] and not log.records[0].final
    assert log.records[0].continuation
    ring.add(b"next")  # reserving the next record finalizes it, as in the kernel
    assert [r.final for r in read(ring).records] == [True, True]


def test_text_whose_block_was_reused_is_lost_not_shown() -> None:
    """A finalized descriptor whose block now starts with another id: a writer racing
    the crash reused the space. Its text belongs to someone else."""
    ring = Ring()
    ring.add(b"kept")
    ring.add(b"clobbered")
    off = ring.block_of(1)
    ring.data[off:off + 8] = struct.pack("<Q", 12345)
    log = read(ring)
    assert texts(log) == [(0, b"kept")]
    assert log.lost == [Lost(1, "overwritten")]


def test_text_len_beyond_its_block_is_truncated_with_a_warning() -> None:
    ring = Ring()
    ring.add(b"12345678")
    ring.infos[0].text_len = 200
    log = read(ring)
    assert texts(log) == [(0, b"12345678")]  # the block holds 8 bytes of text
    assert "exceeds its 8-byte block" in log.warnings[0]


def test_seq_that_does_not_belong_to_the_slot_is_invalid() -> None:
    ring = Ring()
    ring.add(b"zero")
    ring.add(b"one")
    ring.infos[1].seq = 77
    log = read(ring)
    assert texts(log) == [(0, b"zero")] and log.lost == [Lost(None, "invalid")]
    assert "seq 77" in log.warnings[0]


def test_head_too_far_from_tail_reads_the_newest_ring_full() -> None:
    ring = Ring()
    for i in range(3):
        ring.add(b"m%d" % i)
    ring.tail = (ring.head - 1000) & ((1 << 62) - 1)
    log = read(ring)
    assert texts(log) == [(0, b"m0"), (1, b"m1"), (2, b"m2")]
    assert "1000 descriptors past tail" in log.warnings[0]


def test_metadata_and_output_forms() -> None:
    ring = Ring()
    ring.add(b"acpi PNP0A03:00: _OSC: OS supports [ASPM]", ts=1_473_234_346, level=6,
             caller=1, subsystem=b"acpi", device=b"+acpi:PNP0A03:00")
    ring.add(b"irq work", ts=17_080_843_074, level=3, facility=0, caller=0x80000001)
    ring.add(b"from user\\space", ts=12_000, level=4, facility=1, caller=168)
    a, b, c = read(ring).records
    assert (a.subsystem, a.device, a.caller) == ("acpi", "+acpi:PNP0A03:00", "T1")
    assert (b.caller, b.level) == ("C1", 3)
    assert format_record(a) == "[    1.473234] acpi PNP0A03:00: _OSC: OS supports [ASPM]\n"
    assert format_record(b, caller=True, decode=True) == (
        "kern  :err   : [   17.080843] [    C1] irq work\n")
    assert format_record(c, decode=True) == "user  :warn  : [    0.000012] from user\\space\n"
    assert format_kmsg(a) == ("6,0,1473234,-;acpi PNP0A03:00: _OSC: OS supports [ASPM]\n"
                              " SUBSYSTEM=acpi\n DEVICE=+acpi:PNP0A03:00\n")
    assert format_kmsg(c, caller=True) == "12,2,12,-,caller=T168;from user\\x5cspace\n"
    assert a.to_json() == {
        "seq": 0, "ts_nsec": 1_473_234_346, "facility": 0, "level": 6, "continuation": False,
        "caller": "T1", "text": "acpi PNP0A03:00: _OSC: OS supports [ASPM]",
        "subsystem": "acpi", "device": "+acpi:PNP0A03:00",
    }


def test_multi_line_records_are_indented_and_control_bytes_escaped() -> None:
    rec = Record(seq=1, ts_nsec=4_887_544_000, text=b"If you:\n  \"x\"\tok\x01\xc3\xa9")
    assert format_record(rec) == ("[    4.887544] If you:\n"
                                  "                 \"x\"\tok\\x01\\xc3\\xa9\n")
    assert format_record(rec, caller=True) == format_record(rec)  # no caller known
    assert format_kmsg(rec) == "4,1,4887544,-;If you:\\x0a  \"x\"\\x09ok\\x01\\xc3\\xa9\n"
    assert rec.to_json()["text"] == "If you:\n  \"x\"\tok\x01é"
    assert KernelLog("x", [rec, rec]).text() == format_record(rec) * 2


def test_descriptors_missing_from_the_dump_give_a_partial_log() -> None:
    ring = Ring(count_bits=12, size_bits=17)
    for i in range(DESC_CHUNK + 300):
        ring.add(b"r%d" % i)
    mem = ring.memory()
    descs = mem.pop(DESCS)
    chunk = DESC_CHUNK * 24
    mem[DESCS] = descs[:chunk]  # descriptors 1024..2047 were filtered out
    mem[DESCS + 2 * chunk] = descs[2 * chunk:]
    log = read_kernel_log(FakeMemory(mem, ring.vmcoreinfo()))
    assert texts(log)[-1] == (DESC_CHUNK - 1, b"r1023")
    assert len(log.records) == DESC_CHUNK
    assert log.lost == [Lost(None, "unreadable")] * 300
    assert log.warnings == ["printk descriptors 1024-2047 are not in the dump"]


class EioMemory(FakeMemory):
    """/proc/vmcore in the capture kernel: some pages fail with EIO."""

    bad: tuple[int, int] = (0, 0)

    def read_virt(self, vaddr: int, size: int) -> bytes:
        if vaddr < self.bad[1] and self.bad[0] < vaddr + size:
            raise OSError(errno.EIO, "Input/output error")
        return super().read_virt(vaddr, size)


def test_io_errors_lose_records_or_fail_in_one_line() -> None:
    ring = Ring()
    for i in range(3):
        ring.add(b"record %d" % i)
    mem = EioMemory(ring.memory(), ring.vmcoreinfo())
    mem.bad = (DATA + ring.block_of(1), DATA + ring.block_of(1) + 1)
    log = read_kernel_log(mem)
    assert texts(log) == [(0, b"record 0"), (2, b"record 2")]
    assert log.lost == [Lost(1, "unreadable")]
    mem.bad = (IMAGE + 0x20, IMAGE + 0x21)
    with pytest.raises(KdumpError, match="printk ring buffer at .*: Input/output error$"):
        read_kernel_log(mem)


# -- damaged dumps: one line, never a traceback


def corrupt(ring: Ring, offset: int, fmt: str, value: int) -> dict[int, bytes]:
    mem = ring.memory()
    image = bytearray(mem[IMAGE])
    struct.pack_into(fmt, image, 0x20 + offset, value)
    mem[IMAGE] = bytes(image)
    return mem


@pytest.mark.parametrize(("offset", "fmt", "value", "message"), [
    (0, "<I", 40, "count_bits 40"),  # desc_ring.count_bits
    (48, "<I", 2, "size_bits 2"),  # text_data_ring.size_bits
    (48, "<I", 32, "size_bits 32"),
    (0, "<I", 9, "more descriptors"),  # 2^9 descriptors, 2^8 bytes
    (24, "<Q", 1 << 63, "not descriptor ids"),  # head_id with state bits
])
def test_implausible_ring_sizes_are_refused(offset: int, fmt: str, value: int,
                                            message: str) -> None:
    ring = busy_ring()
    with pytest.raises(UsageError, match=message):
        read_kernel_log(FakeMemory(corrupt(ring, offset, fmt, value), ring.vmcoreinfo()))


def test_ring_arrays_outside_the_dump_are_a_one_line_error() -> None:
    """However the dump lacks them, bad input (exit 2): found by review, a page cut off
    gave 2 and one that does not decompress 1."""
    ring = busy_ring()
    with pytest.raises(UsageError, match="cannot read the printk descriptor ring at 0x"):
        read_kernel_log(FakeMemory(corrupt(ring, 8, "<Q", 0x1000), ring.vmcoreinfo()))
    mem = ring.memory()
    mem[DATA] = mem[DATA][:100]
    with pytest.raises(UsageError, match="cannot read the printk text ring"):
        read_kernel_log(FakeMemory(mem, ring.vmcoreinfo()))
    mem = ring.memory()
    mem[IMAGE] = struct.pack("<Q", 0xDEAD0000) + mem[IMAGE][8:]
    with pytest.raises(UsageError, match="cannot read the printk ring buffer at 0xdead0000"):
        read_kernel_log(FakeMemory(mem, ring.vmcoreinfo()))


def test_an_io_error_reading_the_ring_is_a_failure_not_bad_input() -> None:
    ring = busy_ring()

    class Failing(FakeMemory):
        def read_virt(self, vaddr: int, size: int) -> bytes:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    with pytest.raises(KdumpError, match="Input/output error") as e:
        read_kernel_log(Failing(ring.memory(), ring.vmcoreinfo()))
    assert not isinstance(e.value, UsageError)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.replace("OFFSET(prb_desc.text_blk_lpos)=8\n", ""),
     "lacks OFFSET.prb_desc.text_blk_lpos."),
    (lambda s: s.replace("SIZE(printk_info)=88", "SIZE(printk_info)=99999"),
     "not a plausible struct size"),
    (lambda s: s.replace("OFFSET(printk_info.ts_nsec)=8", "OFFSET(printk_info.ts_nsec)=84"),
     "does not fit in a 88-byte printk_info"),
    (lambda s: s.replace("SIZE(atomic_long_t)=8", "SIZE(atomic_long_t)=5"), "neither 4 nor 8"),
    (lambda s: s.replace("SYMBOL(prb)", "SYMBOL(nothing)"), "neither SYMBOL.prb. nor"),
    (lambda s: s.replace("SYMBOL(prb)=", "SYMBOL(prb)=zz"), "is not a number"),
])
def test_bad_vmcoreinfo_is_a_usage_error(edit: object, message: str) -> None:
    ring = busy_ring()
    assert callable(edit)
    with pytest.raises(UsageError, match=message):
        read(ring, edit(ring.vmcoreinfo()))


def test_layout_without_caller_offset_leaves_level_unknown() -> None:
    ring = busy_ring()
    log = read(ring, ring.vmcoreinfo().replace("OFFSET(printk_info.caller_id)=20\n", ""))
    rec = log.records[0]
    assert (rec.level, rec.facility, rec.caller) == (None, None, None)
    assert format_record(rec, decode=True).startswith("?     :?     : [    1.000010] line 7")


# -- the legacy log_buf (3.5 to 5.9)


def test_legacy_log_buf_with_wrap_dict_and_caller(tmp_path: Path) -> None:
    buf = LegacyBuf(buf_len=256)
    for i in range(14):
        buf.add(b"legacy %d " % i + b"y" * (i * 5 % 17), ts=i * 1000, level=i % 8, caller=i,
                dict_=b"SUBSYSTEM=pci\0DEVICE=+pci:0000:00:01.0" if i == 12 else b"")
    assert buf.first > buf.next  # the records wrap
    path = tmp_path / "vmcore"
    path.write_bytes(elf_vmcore(buf.memory(), buf.vmcoreinfo()))
    log = read_vmcore_log(str(path))
    assert log.source == "log_buf" and log.warnings == [] and log.lost == []
    assert [r.text for r in log.records] == [
        b"legacy %d " % i + b"y" * (i * 5 % 17) for i in range(10, 14)]
    last = log.records[-2]
    assert (last.seq, last.ts_nsec, last.level, last.caller, last.subsystem, last.device) == (
        None, 12000, 4, "T12", "pci", "+pci:0000:00:01.0")


def test_legacy_without_caller_id() -> None:
    buf = LegacyBuf(buf_len=128, caller=False)
    buf.add(b"old kernel", ts=5)
    (rec,) = read(buf).records
    assert (rec.text, rec.caller, rec.level) == (b"old kernel", None, 6)


def test_legacy_empty_buffer() -> None:
    assert read(LegacyBuf()).records == []


def test_legacy_damaged_record_cuts_the_log_short() -> None:
    buf = LegacyBuf(buf_len=256)
    for i in range(4):
        buf.add(b"rec %d" % i)
    struct.pack_into("<H", buf.buf, 2 * 28 + 8, 3)  # the third record's len
    log = read(buf)
    assert [r.text for r in log.records] == [b"rec 0", b"rec 1"]
    assert "has length 3" in log.warnings[0]


@pytest.mark.parametrize(("field", "value", "message"), [
    (8, 0, "inconsistent"),  # log_buf_len
    (8, (1 << 31) + 4, "inconsistent"),
    (12, 300, "inconsistent"),  # log_first_idx
])
def test_legacy_implausible_indexes(field: int, value: int, message: str) -> None:
    buf = LegacyBuf()
    buf.add(b"x")
    mem = buf.memory()
    image = bytearray(mem[IMAGE])
    struct.pack_into("<I", image, field, value)
    mem[IMAGE] = bytes(image)
    with pytest.raises(UsageError, match=message):
        read_kernel_log(FakeMemory(mem, buf.vmcoreinfo()))


def test_plain_text_log_of_old_kernels_is_refused() -> None:
    buf = LegacyBuf()
    with pytest.raises(UsageError, match="before 3.5"):
        read(buf, buf.vmcoreinfo() + "SYMBOL(log_end)=ffffffff82000100\n")


# -- random and damaged contents: only one-line errors, always quick


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError("reading the log did not finish")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check_bounded(mem: FakeMemory, limit_records: int) -> KernelLog | None:
    try:
        with time_limit(5):
            log = read_kernel_log(mem)
    except KdumpError as e:
        assert "\n" not in str(e) and str(e)
        return None
    total = sum(len(r.text) for r in log.records)
    assert len(log.records) + len(log.lost) <= limit_records
    assert total <= sum(len(d) for _, d in mem.regions)
    assert len(log.warnings) <= 21
    json.dumps(log.to_json())
    log.text(caller=True, decode=True)
    return log


FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(st.data())
def test_random_ring_contents(data: st.DataObject) -> None:
    count_bits = data.draw(st.integers(0, 6))
    size_bits = data.draw(st.integers(0, 12))
    count, size = 1 << count_bits, 1 << size_bits
    head = data.draw(st.integers(0, (1 << 64) - 1))
    tail = data.draw(st.one_of(st.integers(0, (1 << 64) - 1),
                               st.integers(0, 80).map(lambda d: (head - d) % (1 << 62))))
    rb = struct.pack("<I4xQQQQQ", count_bits, DESCS, INFOS, head, tail, 0)
    rb += struct.pack("<I4xQQQQ", size_bits, DATA, 0, 0, 0)
    words = st.sampled_from([0, 1, 3, head, tail, head & ((1 << 62) - 1), 2 << 62 | head,
                             size, size + 8, (1 << 64) - size])

    def blob(n: int) -> bytes:
        parts = data.draw(st.lists(st.one_of(words.map(lambda w: struct.pack("<Q", w % (1 << 64))),
                                             st.binary(min_size=1, max_size=16)),
                                   max_size=n // 4 + 1))
        return b"".join(parts)[:n].ljust(n, b"\0")

    mem = {IMAGE: struct.pack("<Q", IMAGE + 0x20).ljust(0x20, b"\0") + rb,
           DESCS: blob(count * 24), INFOS: blob(count * 88), DATA: blob(size)}
    log = check_bounded(FakeMemory(mem, Ring().vmcoreinfo()), count)
    if log is not None:
        assert count_bits <= size_bits


@FUZZ
@given(st.lists(st.binary(max_size=60), min_size=1, max_size=40),
       st.lists(st.tuples(st.sampled_from([DESCS, INFOS, DATA]), st.integers(0, 4095),
                          st.integers(0, 255)), max_size=12))
def test_damaged_ring(messages: list[bytes], damage: list[tuple[int, int, int]]) -> None:
    ring = Ring(count_bits=3, size_bits=8)
    for text in messages:
        ring.add(text)
    mem = ring.memory()
    for region, where, value in damage:
        blob = bytearray(mem[region])
        blob[where % len(blob)] = value
        mem[region] = bytes(blob)
    log = check_bounded(FakeMemory(mem, ring.vmcoreinfo()), ring.count)
    if not damage:
        assert log is not None and log.warnings == []
        assert [r.text for r in log.records] == messages[len(messages) - len(log.records):]


@FUZZ
@given(st.integers(0, 400), st.integers(0, 400), st.integers(0, 400), st.binary(max_size=400),
       st.booleans())
def test_random_legacy_buffer(buf_len: int, first: int, end: int, blob: bytes,
                              caller: bool) -> None:
    buf = LegacyBuf(caller=caller)
    mem = {IMAGE: struct.pack("<QIII", DATA, buf_len, first, end).ljust(0x100, b"\0"),
           DATA: blob.ljust(buf_len, b"\0")}
    check_bounded(FakeMemory(mem, buf.vmcoreinfo()), buf_len + 1)


@FUZZ
@given(st.lists(st.binary(max_size=50), min_size=1, max_size=30),
       st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)), max_size=8))
def test_damaged_legacy_buffer(messages: list[bytes], damage: list[tuple[int, int]]) -> None:
    buf = LegacyBuf(buf_len=256)
    for text in messages:
        buf.add(text)
    for where, value in damage:
        buf.buf[where] = value
    log = check_bounded(FakeMemory(buf.memory(), buf.vmcoreinfo()), 256)
    if not damage:
        assert log is not None and log.warnings == []
        assert [r.text for r in log.records] == messages[len(messages) - len(log.records):]
