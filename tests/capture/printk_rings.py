"""Hand-made printk buffers for tests, laid out in memory as a 64-bit little-endian kernel.

`Ring` models the writer side of the lockless ring buffer of 5.10+
(kernel/printk/printk_ringbuffer.c) closely enough to produce what a real one
holds: the bootstrap descriptor, sequence numbers that start at the array
index, data blocks that wrap to the start of the text ring, descriptors made
reusable when the text ring or the descriptor ring runs out of room.
`LegacyBuf` writes `struct printk_log` records as log_store() of 3.5-5.9 did.
Both give their memory as {address: bytes} and their VMCOREINFO text.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field

from kdumpctl_py.capture.vmcore import MissingMemory
from kdumpctl_py.facts.vmcoreinfo import VmcoreInfo, parse_vmcoreinfo
from tests.elfwriter import note, vmcore_bytes

MASK64 = (1 << 64) - 1
ID_MASK = (1 << 62) - 1
RESERVED, COMMITTED, FINALIZED, REUSABLE = 0, 1, 2, 3
FAILED_LPOS, NO_LPOS = 1, 3
LOG_NEWLINE, LOG_CONT = 2, 8

IMAGE = 0xFFFFFFFF82000000  # the kernel image: the prb pointer and the static ring struct
LINEAR = 0xFFFF888000000000
DESCS = LINEAR + 0x100000
INFOS = LINEAR + 0x200000
DATA = LINEAR + 0x400000

# The printk entries of x86_64 Debian 6.1's VMCOREINFO.
PRB_INFO = f"""SYMBOL(prb)={IMAGE:x}
SYMBOL(printk_rb_static)={IMAGE + 0x20:x}
SIZE(printk_ringbuffer)=88
OFFSET(printk_ringbuffer.desc_ring)=0
OFFSET(printk_ringbuffer.text_data_ring)=48
OFFSET(printk_ringbuffer.fail)=80
SIZE(prb_desc_ring)=48
OFFSET(prb_desc_ring.count_bits)=0
OFFSET(prb_desc_ring.descs)=8
OFFSET(prb_desc_ring.infos)=16
OFFSET(prb_desc_ring.head_id)=24
OFFSET(prb_desc_ring.tail_id)=32
SIZE(prb_desc)=24
OFFSET(prb_desc.state_var)=0
OFFSET(prb_desc.text_blk_lpos)=8
SIZE(prb_data_blk_lpos)=16
OFFSET(prb_data_blk_lpos.begin)=0
OFFSET(prb_data_blk_lpos.next)=8
SIZE(printk_info)=88
OFFSET(printk_info.seq)=0
OFFSET(printk_info.ts_nsec)=8
OFFSET(printk_info.text_len)=16
OFFSET(printk_info.caller_id)=20
OFFSET(printk_info.dev_info)=24
SIZE(dev_printk_info)=64
OFFSET(dev_printk_info.subsystem)=0
LENGTH(printk_info_subsystem)=16
OFFSET(dev_printk_info.device)=16
LENGTH(printk_info_device)=48
SIZE(prb_data_ring)=32
OFFSET(prb_data_ring.size_bits)=0
OFFSET(prb_data_ring.data)=8
OFFSET(prb_data_ring.head_lpos)=16
OFFSET(prb_data_ring.tail_lpos)=24
SIZE(atomic_long_t)=8
OFFSET(atomic_long_t.counter)=0
"""


def sv(id_: int, state: int) -> int:
    return (state << 62) | id_


@dataclass
class Info:
    seq: int = 0
    ts_nsec: int = 0
    text_len: int = 0
    facility: int = 0
    flags: int = 0
    level: int = 0
    caller_id: int = 0
    subsystem: bytes = b""
    device: bytes = b""

    def pack(self) -> bytes:
        return (struct.pack("<QQHBBI", self.seq & MASK64, self.ts_nsec, self.text_len,
                            self.facility, (self.level << 5) | self.flags, self.caller_id)
                + self.subsystem.ljust(16, b"\0") + self.device.ljust(48, b"\0"))


@dataclass
class Ring:
    count_bits: int = 3
    size_bits: int = 8
    descs: list[list[int]] = field(init=False)  # [state_var, begin, next]
    infos: list[Info] = field(init=False)

    def __post_init__(self) -> None:
        self.count = 1 << self.count_bits
        self.size = 1 << self.size_bits
        self.descs = [[0, 0, 0] for _ in range(self.count)]
        self.infos = [Info() for _ in range(self.count)]
        self.data = bytearray(self.size)
        # DESC0_ID: -(count + 1) computed in unsigned int, as the kernel's macro does.
        id0 = (-(self.count + 1)) & 0xFFFFFFFF
        self.head = self.tail = id0
        self.descs[-1] = [sv(id0, REUSABLE), FAILED_LPOS, FAILED_LPOS]
        self.infos[0].seq = -self.count & MASK64
        self.head_lpos = self.tail_lpos = -self.size & MASK64  # BLK0_LPOS
        self.blocks: deque[tuple[int, int, int]] = deque()  # live (id, begin, next)
        self.wrapped: list[int] = []  # seqs whose text block wrapped

    # -- the writer

    def add(self, text: bytes, *, ts: int = 0, level: int = 6, facility: int = 0,
            caller: int = 1, state: int = FINALIZED, subsystem: bytes = b"",
            device: bytes = b"", fail: bool = False, cont: bool = False) -> int:
        """Append a record as prb_reserve() + prb_commit/final_commit() would; its seq."""
        prev = self.head & (self.count - 1)
        if self.descs[prev][0] >> 62 == COMMITTED:  # desc_make_final() of the previous head
            self.descs[prev][0] = sv(self.head, FINALIZED)
        id_ = (self.head + 1) & ID_MASK
        if (id_ - self.tail) & ID_MASK >= self.count:
            self._push_desc_tail()
        idx = id_ & (self.count - 1)
        info = self.infos[idx]
        seq = idx if info.seq == 0 and idx != 0 else (info.seq + self.count) & MASK64
        if fail:
            begin = next_ = FAILED_LPOS
        elif text:
            begin, next_ = self._alloc(id_, text, seq)
        else:
            begin = next_ = NO_LPOS
        self.descs[idx] = [sv(id_, state), begin, next_]
        self.infos[idx] = Info(seq, ts, len(text), facility, LOG_CONT if cont else LOG_NEWLINE,
                               level, caller, subsystem, device)
        self.head = id_
        return seq

    def _push_desc_tail(self) -> None:
        tidx = self.tail & (self.count - 1)
        state, begin, next_ = self.descs[tidx]
        assert state >> 62 in (FINALIZED, REUSABLE), "the tail must be final to push it"
        self.descs[tidx][0] = sv(self.tail, REUSABLE)
        if not begin & 1:
            self._push_data_tail(next_)
        self.tail = (self.tail + 1) & ID_MASK

    def _push_data_tail(self, lpos: int) -> None:
        """Free blocks until tail_lpos reaches lpos (data_push_tail())."""
        while (lpos - self.tail_lpos - 1) & MASK64 < self.size:  # unsigned, as in C
            if not self.blocks:
                self.tail_lpos = lpos
                break
            id_, _, next_ = self.blocks.popleft()
            idx = id_ & (self.count - 1)
            if self.descs[idx][0] & ID_MASK == id_:
                assert self.descs[idx][0] >> 62 in (FINALIZED, REUSABLE)
                self.descs[idx][0] = sv(id_, REUSABLE)
            self.tail_lpos = next_

    def _alloc(self, id_: int, text: bytes, seq: int) -> tuple[int, int]:
        size = (len(text) + 8 + 7) & ~7
        assert size <= self.size - 8, "text too long for this ring"
        begin = self.head_lpos
        next_ = (begin + size) & MASK64
        wraps = begin >> self.size_bits != next_ >> self.size_bits
        if wraps:  # the block goes to the start of the next wrap
            next_ = ((next_ & ~(self.size - 1)) + size) & MASK64
        self._push_data_tail((next_ - self.size) & MASK64)
        self.head_lpos = next_
        start = begin & (self.size - 1)
        self.data[start:start + 8] = struct.pack("<Q", id_)
        if wraps:
            start = 0
            self.data[0:8] = struct.pack("<Q", id_)
            self.wrapped.append(seq)
        self.data[start + 8:start + 8 + len(text)] = text
        self.blocks.append((id_, begin, next_))
        return begin, next_

    # -- what a dump holds

    def block_of(self, seq: int) -> int:
        """The offset in the text ring where the block of record `seq` starts."""
        state, begin, next_ = self.descs[seq & (self.count - 1)]
        wraps = begin >> self.size_bits != next_ >> self.size_bits
        return 0 if wraps else begin & (self.size - 1)

    def memory(self) -> dict[int, bytes]:
        rb = struct.pack("<I4xQQQQQ", self.count_bits, DESCS, INFOS, self.head, self.tail, 0)
        rb += struct.pack("<I4xQQQ", self.size_bits, DATA, self.head_lpos, self.tail_lpos)
        rb += struct.pack("<Q", 0)
        image = struct.pack("<Q", IMAGE + 0x20).ljust(0x20, b"\0") + rb
        descs = b"".join(struct.pack("<QQQ", *d) for d in self.descs)
        infos = b"".join(i.pack() for i in self.infos)
        return {IMAGE: image.ljust(0x1000, b"\0"), DESCS: descs, INFOS: infos,
                DATA: bytes(self.data)}

    def vmcoreinfo(self) -> str:
        return PRB_INFO


@dataclass
class LegacyBuf:
    """log_buf of struct printk_log records (x86: packed, 4-byte aligned)."""

    buf_len: int = 256
    caller: bool = True

    def __post_init__(self) -> None:
        self.hsize = 20 if self.caller else 16
        self.buf = bytearray(self.buf_len)
        self.first = self.next = 0
        self.first_seq = self.next_seq = 0

    def _has_space(self, size: int, empty: bool) -> bool:  # logbuf_has_space()
        if self.next > self.first or empty:
            free = max(self.buf_len - self.next, self.first)
        else:
            free = self.first - self.next
        return free >= size + self.hsize

    def _log_next(self, idx: int) -> int:
        length = struct.unpack_from("<H", self.buf, idx + 8)[0]
        if length == 0:
            return int(struct.unpack_from("<H", self.buf, 8)[0])
        return idx + int(length)

    def add(self, text: bytes, *, ts: int = 0, level: int = 6, facility: int = 0,
            caller: int = 1, dict_: bytes = b"") -> None:
        """log_store(): drop the oldest records until this one fits, wrap if needed."""
        size = (self.hsize + len(text) + len(dict_) + 3) & ~3
        while self.first_seq < self.next_seq and not self._has_space(size, False):
            self.first = self._log_next(self.first)
            self.first_seq += 1
        assert self._has_space(size, self.first_seq == self.next_seq), "record too long"
        if self.next + size + self.hsize > self.buf_len:
            self.buf[self.next:self.next + self.hsize] = bytes(self.hsize)
            self.next = 0
        header = struct.pack("<QHHHBB", ts, size, len(text), len(dict_), facility, level << 5)
        if self.caller:
            header += struct.pack("<I", caller)
        rec = header + text + dict_
        self.buf[self.next:self.next + len(rec)] = rec
        self.next += size
        self.next_seq += 1

    def memory(self) -> dict[int, bytes]:
        image = struct.pack("<QIII", DATA, self.buf_len, self.first, self.next)
        return {IMAGE: image.ljust(0x1000, b"\0"), DATA: bytes(self.buf)}

    def vmcoreinfo(self) -> str:
        text = (f"SYMBOL(log_buf)={IMAGE:x}\nSYMBOL(log_buf_len)={IMAGE + 8:x}\n"
                f"SYMBOL(log_first_idx)={IMAGE + 12:x}\nSYMBOL(clear_idx)={IMAGE + 20:x}\n"
                f"SYMBOL(log_next_idx)={IMAGE + 16:x}\nSIZE(printk_log)={self.hsize}\n"
                "OFFSET(printk_log.ts_nsec)=0\nOFFSET(printk_log.len)=8\n"
                "OFFSET(printk_log.text_len)=10\nOFFSET(printk_log.dict_len)=12\n")
        if self.caller:
            text += "OFFSET(printk_log.caller_id)=16\n"
        return text


class FakeMemory:
    """Kernel memory as {address: bytes}, read like a Vmcore."""

    def __init__(self, regions: dict[int, bytes], info: str) -> None:
        self.regions = sorted(regions.items())
        self.vmcoreinfo: VmcoreInfo = parse_vmcoreinfo(info)
        self.reads = 0
        self.bytes_read = 0

    def read_virt(self, vaddr: int, size: int) -> bytes:
        self.reads += 1
        self.bytes_read += size
        for base, data in self.regions:
            if base <= vaddr and vaddr + size <= base + len(data):
                return data[vaddr - base:vaddr - base + size]
        raise MissingMemory(f"virtual address {vaddr:#x} is not in the fake dump")


def elf_vmcore(regions: dict[int, bytes], info: str) -> bytes:
    """An ELF vmcore holding the regions (at their linear-map physical addresses)."""
    segs = []
    for vaddr, data in sorted(regions.items()):
        paddr = vaddr - LINEAR if vaddr >= LINEAR and vaddr < IMAGE else vaddr - IMAGE + 0x1000000
        segs.append((vaddr, paddr, data, len(data)))
    return vmcore_bytes(segs, note(b"VMCOREINFO", 0, (info + "PAGESIZE=4096\n").encode()))
