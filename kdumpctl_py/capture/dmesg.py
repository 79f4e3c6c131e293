"""The kernel log of a crashed kernel, read from its memory with VMCOREINFO alone.

No debug info is needed: the kernel exports the addresses, sizes and field
offsets of its printk buffer in VMCOREINFO (`log_buf_vmcoreinfo_setup()` in
kernel/printk/printk.c) precisely so that dump tools can do this. Two layouts
exist:

- 5.10 and later: the lockless ring buffer (`SYMBOL(prb)`,
  kernel/printk/printk_ringbuffer.[ch]). A ring of descriptors, each an ID plus
  a 2-bit state in `state_var` and the logical positions (lpos) of a block in
  a text data ring; a parallel ring of `printk_info` (seq, timestamp, level,
  caller, device). Committed and finalized records are read; a text block
  that wraps is read from the start of the ring; a record whose descriptor was
  recycled, or whose block now carries another descriptor's ID, has lost its
  text and is reported in `lost`, never shown with somebody else's text.
- 3.5 to 5.9: `struct printk_log` records in one byte buffer
  (`SYMBOL(log_buf)`), from `log_first_idx` to `log_next_idx`, a zero `len`
  marking the wrap.

Every number taken from the dump is checked before it sizes a read or a loop:
struct sizes and offsets, ring sizes (the kernel caps `log_buf_len` at 2 GiB),
the distance between head and tail, lpos values, text lengths. A damaged dump
gives a one-line `UsageError`/`KdumpError`, or the readable part of the log
with `warnings`; reads are in bounded chunks, so memory stays proportional to
the log itself.

The memory is read through `KernelMemory`: anything with `read_virt()` and
`vmcoreinfo` (an ELF `Vmcore`, later a kdump-compressed reader).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from kdumpctl_py.errors import KdumpError, UsageError
from kdumpctl_py.facts.vmcoreinfo import VmcoreInfo


class KernelMemory(Protocol):
    """What reading the log needs: kernel virtual memory and VMCOREINFO.

    An optional `byteorder` attribute ("little" or "big") is honoured; without
    it the dump is taken as little-endian.
    """

    @property
    def vmcoreinfo(self) -> VmcoreInfo: ...

    def read_virt(self, vaddr: int, size: int) -> bytes: ...


# Limits from the kernel: log_buf_len is at most LOG_BUF_LEN_MAX (2 GiB), and
# the lockless ring has one descriptor per 2^PRB_AVGBITS (32) bytes of text.
MAX_SIZE_BITS = 31
MAX_COUNT_BITS = MAX_SIZE_BITS - 5
MAX_STRUCT = 4096  # no printk structure comes near this
DESC_CHUNK = 1024  # descriptors (and infos) read at a time
MAX_WARNINGS = 20
# What a read of a damaged or partial dump raises: MissingMemory (a KdumpError) for
# memory the dump lacks, OSError (EIO, EFAULT) for a page /proc/vmcore cannot give back.
UNREADABLE = (KdumpError, OSError)

# Descriptor states (enum desc_state) and special lpos values.
DESC_RESERVED, DESC_COMMITTED, DESC_FINALIZED, DESC_REUSABLE = 0, 1, 2, 3
FAILED_LPOS = 0x1
NO_LPOS = 0x3
LOG_CONT = 8  # printk_info.flags: a fragment of a continuation line
CALLER_CPU = 0x80000000

FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp",
              "cron", "authpriv", "ftp")
LEVELS = ("emerg", "alert", "crit", "err", "warn", "notice", "info", "debug")


class Record(NamedTuple):
    """One printk record. `seq` is None for the legacy buffer (its seq is not in VMCOREINFO);
    `facility`/`level`/`flags` are None if the struct layout is not the one known."""

    seq: int | None
    ts_nsec: int
    text: bytes
    facility: int | None = None
    level: int | None = None
    flags: int | None = None
    caller_id: int | None = None
    subsystem: str | None = None
    device: str | None = None
    final: bool = True  # False: committed but not finalized (could still have been extended)

    @property
    def caller(self) -> str | None:
        """As PRINTK_CALLER prints it: T and the pid in task context, else C and the CPU."""
        if self.caller_id is None:
            return None
        cid = self.caller_id
        return f"C{cid & ~CALLER_CPU}" if cid & CALLER_CPU else f"T{cid}"

    @property
    def continuation(self) -> bool:
        return bool((self.flags or 0) & LOG_CONT)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seq": self.seq,
            "ts_nsec": self.ts_nsec,
            "facility": self.facility,
            "level": self.level,
            "continuation": self.continuation,
            "caller": self.caller,
            "text": self.text.decode("utf-8", "backslashreplace"),
        }
        if self.subsystem:
            out["subsystem"] = self.subsystem
        if self.device:
            out["device"] = self.device
        if not self.final:
            out["final"] = False
        return out


class Lost(NamedTuple):
    """A record that existed but whose text cannot be shown.

    reason: "overwritten" (descriptor recycled or its text block reused),
    "no-data" (the kernel had no room for its text), "reserved" (being written
    at the crash), "invalid" (inconsistent descriptor), "unreadable" (memory
    not in the dump)."""

    seq: int | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "reason": self.reason}


@dataclass
class KernelLog:
    """The crashed kernel's log: its records, those lost, and warnings."""

    source: str  # "printk_ringbuffer" (5.10+) or "log_buf" (3.5-5.9)
    records: list[Record] = field(default_factory=list)
    lost: list[Lost] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _suppressed: int = 0

    def warn(self, message: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(message)
        else:
            self._suppressed += 1

    def finish(self) -> KernelLog:
        if self._suppressed:
            self.warnings.append(f"{self._suppressed} more warnings not shown")
            self._suppressed = 0
        return self

    def text(self, *, caller: bool = False, decode: bool = False) -> str:
        return "".join(format_record(r, caller=caller, decode=decode) for r in self.records)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "records": [r.to_json() for r in self.records],
            "lost": [x.to_json() for x in self.lost],
            "warnings": list(self.warnings),
        }


# ---------------------------------------------------------------------------
# Formatting


_UNPRINTABLE = re.compile(r"[^\x20-\x7e\t\n\v\f\r]")


def _escape(text: bytes, indent: int) -> str:
    """Printable ASCII and white space as is, other bytes as \\xNN, and lines after
    the first indented under the text (as `dmesg` and `makedumpfile --dump-dmesg`)."""
    s = _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text.decode("latin-1"))
    return s.replace("\n", "\n" + " " * indent) if indent else s


def timestamp(ts_nsec: int) -> str:
    return f"[{ts_nsec // 1_000_000_000:5d}.{ts_nsec % 1_000_000_000 // 1000:06d}]"


def _name(names: tuple[str, ...], value: int | None) -> str:
    if value is None:
        return "?"
    return names[value] if value < len(names) else str(value)


def format_record(rec: Record, *, caller: bool = False, decode: bool = False) -> str:
    """One record as `dmesg` prints it: `[    1.234567] text`, with `decode` the
    facility and level first (`dmesg -x`), with `caller` the PRINTK_CALLER id."""
    prefix = ""
    if decode:
        prefix = f"{_name(FACILITIES, rec.facility):<6}:{_name(LEVELS, rec.level):<6}: "
    prefix += timestamp(rec.ts_nsec) + " "
    if caller and rec.caller is not None:
        prefix += f"[{rec.caller:>6}] "
    return prefix + _escape(rec.text, len(prefix)) + "\n"


def _kmsg_escape(text: bytes) -> str:
    return "".join(chr(c) if 32 <= c < 127 and c != 0x5C else f"\\x{c:02x}" for c in text)


def format_kmsg(rec: Record, *, caller: bool = False) -> str:
    """One record as /dev/kmsg gives it: `prio,seq,usec,flag[,caller=..];text` and
    ` SUBSYSTEM=`/` DEVICE=` lines."""
    prio = ((rec.facility or 0) << 3) | (rec.level if rec.level is not None else 4)
    seq = "-" if rec.seq is None else str(rec.seq)
    who = f",caller={rec.caller}" if caller and rec.caller is not None else ""
    flag = "c" if rec.continuation else "-"
    out = f"{prio},{seq},{rec.ts_nsec // 1000},{flag}{who};{_kmsg_escape(rec.text)}\n"
    for key, value in (("SUBSYSTEM", rec.subsystem), ("DEVICE", rec.device)):
        if value:
            out += f" {key}={_kmsg_escape(value.encode('utf-8', 'replace'))}\n"
    return out


# ---------------------------------------------------------------------------
# Reading


def read_kernel_log(mem: KernelMemory) -> KernelLog:
    """The crashed kernel's log, from whichever buffer VMCOREINFO describes."""
    info = mem.vmcoreinfo
    if info.symbol("prb") is not None:
        return _Lockless(mem, info).read()
    if info.symbol("log_buf") is not None:
        if info.symbol("log_end") is not None:
            raise UsageError("this kernel (before 3.5) keeps its log as plain text "
                             "(SYMBOL(log_end)); reading it is not supported")
        return _Legacy(mem, info).read()
    raise UsageError("VMCOREINFO has neither SYMBOL(prb) nor SYMBOL(log_buf): "
                     "no kernel log to read")


def read_vmcore_log(path: str) -> KernelLog:
    """The log of the dump at `path`: an ELF vmcore or a kdump-compressed file; one cut
    short gives what is there and a warning saying so."""
    return read_vmcore(path)[0]


def read_vmcore(path: str) -> tuple[KernelLog, VmcoreInfo, str]:
    """The dump's log, its VMCOREINFO and its format (`ELF`, `kdump-compressed`)."""
    from kdumpctl_py.capture.dumpkind import readable_dump
    from kdumpctl_py.capture.extent import truncation

    fmt, magic = readable_dump(path)
    cut = truncation(path)
    try:
        log, info = _read_log(path, magic)
    except KdumpError as e:
        if cut is None:
            raise
        raise UsageError(f"{path} is {cut}; {e}") from None
    if cut is not None:
        log.warn(f"{path} is {cut}; what was past the end is missing")
    return log, info, fmt


def _read_log(path: str, magic: bytes) -> tuple[KernelLog, VmcoreInfo]:
    from kdumpctl_py.capture.vmcore import Vmcore

    if magic.startswith(b"KDUMP   "):
        from kdumpctl_py.capture.kdumpfile import KdumpMemory

        with KdumpMemory(path) as k:
            return read_kernel_log(k), k.vmcoreinfo
    with Vmcore(path, partial=True) as v:
        return read_kernel_log(v), v.vmcoreinfo


class _Info:
    """VMCOREINFO numbers for one layout, each checked before use."""

    def __init__(self, info: VmcoreInfo) -> None:
        self.info = info

    def need(self, value: int | None, key: str) -> int:
        if value is None:
            raise UsageError(f"VMCOREINFO lacks {key}; cannot read the kernel log")
        return value

    def symbol(self, name: str) -> int:
        return self.need(self.info.symbol(name), f"SYMBOL({name})")

    def size(self, name: str) -> int:
        value = self.need(self.info.size(name), f"SIZE({name})")
        if not 0 < value <= MAX_STRUCT:
            raise UsageError(f"VMCOREINFO SIZE({name})={value} is not a plausible struct size")
        return value

    def offset(self, struct: str, member: str, width: int, size: int,
               optional: bool = False) -> int | None:
        """OFFSET(struct.member), checked to leave `width` bytes inside a struct of `size`."""
        key = f"OFFSET({struct}.{member})"
        value = self.info.offset(f"{struct}.{member}")
        if value is None:
            if optional:
                return None
            raise UsageError(f"VMCOREINFO lacks {key}; cannot read the kernel log")
        if value < 0 or value + width > size:
            raise UsageError(f"VMCOREINFO {key}={value} does not fit in a {size}-byte {struct}")
        return value

    def req(self, struct: str, member: str, width: int, size: int) -> int:
        value = self.offset(struct, member, width, size)
        assert value is not None
        return value


def _cstring(raw: bytes) -> str | None:
    text = raw.split(b"\0", 1)[0]
    return text.decode("utf-8", "backslashreplace") if text else None


class _Reader:
    def __init__(self, mem: KernelMemory, info: VmcoreInfo) -> None:
        self.mem = mem
        self.vi = _Info(info)
        order = getattr(mem, "byteorder", "little")
        self.order: Any = "big" if order == "big" else "little"
        word = info.size("atomic_long_t") or 8
        if word not in (4, 8):
            raise UsageError(f"VMCOREINFO SIZE(atomic_long_t)={word} is neither 4 nor 8")
        self.word = word

    def num(self, buf: bytes, off: int, width: int) -> int:
        return int.from_bytes(buf[off:off + width], self.order)

    def fetch(self, vaddr: int, size: int, what: str) -> bytes:
        """Bytes of the log's structures. Memory the dump lacks or cannot decompress is
        the dump's fault, bad input (exit 2) however it is damaged; an I/O error reading
        it (EIO from /proc/vmcore or a disk) is a failure (exit 1)."""
        try:
            return self.mem.read_virt(vaddr, size)
        except OSError as e:
            raise KdumpError(f"cannot read {what} at {vaddr:#x}: {e.strerror or e}") from None
        except KdumpError as e:
            raise UsageError(f"cannot read {what} at {vaddr:#x}: {e}") from None

    def probe(self, vaddr: int, size: int, what: str) -> None:
        """Check that both ends of an array are in the dump before walking it."""
        self.fetch(vaddr, 1, what)
        self.fetch(vaddr + size - 1, 1, what)


class _Chunks:
    """Fixed-size entries of a kernel array, read DESC_CHUNK at a time."""

    def __init__(self, read: Callable[[int, int], bytes], base: int, entry: int,
                 count: int) -> None:
        self._read, self.base, self.entry, self.count = read, base, entry, count
        self._key = -1
        self._data: bytes | None = None
        self.failed: set[int] = set()

    def get(self, index: int) -> bytes | None:
        key = index // DESC_CHUNK
        if key != self._key:
            self._key = key
            first = key * DESC_CHUNK
            n = min(DESC_CHUNK, self.count - first)
            try:
                self._data = self._read(self.base + first * self.entry, n * self.entry)
            except UNREADABLE:
                self._data = None
                self.failed.add(key)
        if self._data is None:
            return None
        off = (index % DESC_CHUNK) * self.entry
        return self._data[off:off + self.entry]


class _Lockless(_Reader):
    def __init__(self, mem: KernelMemory, info: VmcoreInfo) -> None:
        super().__init__(mem, info)
        vi, w = self.vi, self.word
        counter = info.offset("atomic_long_t.counter") or 0
        if counter != 0:  # atomic_long_t is { long counter; }
            raise UsageError(f"VMCOREINFO OFFSET(atomic_long_t.counter)={counter} is not 0")

        self.rb_size = vi.size("printk_ringbuffer")
        dr_size = vi.size("prb_desc_ring")
        tr_size = vi.size("prb_data_ring")
        self.rb_desc_ring = vi.req("printk_ringbuffer", "desc_ring", dr_size, self.rb_size)
        self.rb_text_ring = vi.req("printk_ringbuffer", "text_data_ring", tr_size, self.rb_size)
        self.dr_count_bits = vi.req("prb_desc_ring", "count_bits", 4, dr_size)
        self.dr_descs = vi.req("prb_desc_ring", "descs", w, dr_size)
        self.dr_infos = vi.req("prb_desc_ring", "infos", w, dr_size)
        self.dr_head_id = vi.req("prb_desc_ring", "head_id", w, dr_size)
        self.dr_tail_id = vi.req("prb_desc_ring", "tail_id", w, dr_size)
        self.tr_size_bits = vi.req("prb_data_ring", "size_bits", 4, tr_size)
        self.tr_data = vi.req("prb_data_ring", "data", w, tr_size)

        self.desc_size = vi.size("prb_desc")
        lpos_size = vi.size("prb_data_blk_lpos")
        self.desc_state = vi.req("prb_desc", "state_var", w, self.desc_size)
        blk = vi.req("prb_desc", "text_blk_lpos", lpos_size, self.desc_size)
        self.desc_begin = blk + vi.req("prb_data_blk_lpos", "begin", w, lpos_size)
        self.desc_next = blk + vi.req("prb_data_blk_lpos", "next", w, lpos_size)

        self.info_size = isz = vi.size("printk_info")
        self.info_seq = vi.req("printk_info", "seq", 8, isz)
        self.info_ts = vi.req("printk_info", "ts_nsec", 8, isz)
        self.info_text_len = vi.req("printk_info", "text_len", 2, isz)
        self.info_caller = vi.offset("printk_info", "caller_id", 4, isz, optional=True)
        # facility (u8) and flags:5/level:3 (u8) follow text_len (u16) and precede the
        # u32 caller_id; VMCOREINFO has no offsets for them, so use them only when the
        # exported offsets show exactly that layout.
        self.info_fac = (self.info_text_len + 2
                         if self.info_caller == self.info_text_len + 4 else None)
        self.dev_fields: list[tuple[str, int, int]] = []
        dev = vi.offset("printk_info", "dev_info", 1, isz, optional=True)
        dsz = info.size("dev_printk_info")
        if dev is not None and dsz is not None and 0 < dsz <= isz - dev:
            for name in ("subsystem", "device"):
                length = info.length(f"printk_info_{name}")
                off = vi.offset("dev_printk_info", name, length or 0, dsz, optional=True)
                if off is not None and length:
                    self.dev_fields.append((name, dev + off, length))

        self.id_bits = 8 * w - 2
        self.id_mask = (1 << self.id_bits) - 1
        self.lpos_mask = (1 << (8 * w)) - 1

    def read(self) -> KernelLog:
        w, vi = self.word, self.vi
        ptr = self.num(self.fetch(vi.symbol("prb"), w, "prb"), 0, w)
        rb = self.fetch(ptr, self.rb_size, "the printk ring buffer")
        dr, tr = self.rb_desc_ring, self.rb_text_ring
        count_bits = self.num(rb, dr + self.dr_count_bits, 4)
        size_bits = self.num(rb, tr + self.tr_size_bits, 4)
        if count_bits > MAX_COUNT_BITS or not w.bit_length() <= size_bits <= MAX_SIZE_BITS:
            raise UsageError(f"printk ring buffer sizes are implausible (count_bits {count_bits}, "
                             f"size_bits {size_bits}): the dump is damaged")
        if count_bits > size_bits:
            raise UsageError(f"printk ring buffer has more descriptors (2^{count_bits}) than "
                             f"text bytes (2^{size_bits}): the dump is damaged")
        self.count = count = 1 << count_bits
        self.data_size = 1 << size_bits
        self.size_bits = size_bits
        descs = self.num(rb, dr + self.dr_descs, w)
        infos = self.num(rb, dr + self.dr_infos, w)
        self.data = self.num(rb, tr + self.tr_data, w)
        head = self.num(rb, dr + self.dr_head_id, w)
        tail = self.num(rb, dr + self.dr_tail_id, w)
        if head > self.id_mask or tail > self.id_mask:
            raise UsageError(f"printk ring buffer head/tail ids {head:#x}/{tail:#x} are not "
                             "descriptor ids: the dump is damaged")
        self.probe(descs, count * self.desc_size, "the printk descriptor ring")
        self.probe(infos, count * self.info_size, "the printk info ring")
        self.probe(self.data, self.data_size, "the printk text ring")

        log = KernelLog("printk_ringbuffer")
        span = (head - tail) & self.id_mask
        if span >= count:
            log.warn(f"printk ring head {head:#x} is {span} descriptors past tail {tail:#x} "
                     f"in a ring of {count}; reading the newest {count}")
            tail = (head - count + 1) & self.id_mask
            span = count - 1
        read = self.mem.read_virt
        self.descs = _Chunks(read, descs, self.desc_size, count)
        self.infos = _Chunks(read, infos, self.info_size, count)
        for k in range(span + 1):
            self._record(log, (tail + k) & self.id_mask, k == span)
        for what, chunks in (("descriptors", self.descs), ("infos", self.infos)):
            for key in sorted(chunks.failed):
                log.warn(f"printk {what} {key * DESC_CHUNK}-"
                         f"{min(count, (key + 1) * DESC_CHUNK) - 1} are not in the dump")
        return log.finish()

    def _seq(self, index: int) -> tuple[bytes | None, int | None]:
        """The info of a descriptor and its seq, if the seq belongs at this index."""
        inf = self.infos.get(index)
        if inf is None:
            return None, None
        seq = self.num(inf, self.info_seq, 8)
        return inf, (seq if seq % self.count == index else None)

    def _facility_level(self, inf: bytes) -> tuple[int | None, int | None, int | None]:
        """struct printk_info's facility, and its level and flags bitfields (which the
        compiler packs from the other end on big-endian machines)."""
        fac = self.info_fac
        if fac is None:
            return None, None, None
        bits = inf[fac + 1]
        if self.order == "little":
            return inf[fac], bits >> 5, bits & 0x1F
        return inf[fac], bits & 7, bits >> 3

    def _record(self, log: KernelLog, id_: int, is_head: bool) -> None:
        index = id_ & (self.count - 1)
        desc = self.descs.get(index)
        if desc is None:
            log.lost.append(Lost(None, "unreadable"))
            return
        w = self.word
        sv = self.num(desc, self.desc_state, w)
        state = sv >> self.id_bits & 3
        if sv & self.id_mask != id_:
            # The head's slot before its writer stored the new id, or damage.
            _, seq = self._seq(index)
            log.lost.append(Lost(seq, "reserved" if is_head else "invalid"))
            if not is_head:
                log.warn(f"printk descriptor {index} holds id {sv & self.id_mask:#x}, "
                         f"expected {id_:#x}")
            return
        inf, seq = self._seq(index)
        if state == DESC_REUSABLE:
            # Recycled: its text is gone. A seq that does not belong at this index is
            # the bootstrap descriptor of an unwrapped ring, not a record.
            if seq is not None:
                log.lost.append(Lost(seq, "overwritten"))
            return
        if state == DESC_RESERVED:
            log.lost.append(Lost(seq, "reserved"))
            return
        if inf is None:
            log.lost.append(Lost(None, "unreadable"))
            return
        if seq is None:
            log.lost.append(Lost(None, "invalid"))
            log.warn(f"printk record at descriptor {index} has seq "
                     f"{self.num(inf, self.info_seq, 8)}, which does not belong there")
            return
        text = self._text(log, seq, id_, self.num(desc, self.desc_begin, w),
                          self.num(desc, self.desc_next, w), self.num(inf, self.info_text_len, 2))
        if text is None:
            return
        facility, level, flags = self._facility_level(inf)
        dev = {name: _cstring(inf[off:off + n]) for name, off, n in self.dev_fields}
        log.records.append(Record(
            seq=seq,
            ts_nsec=self.num(inf, self.info_ts, 8),
            text=text,
            facility=facility,
            level=level,
            flags=flags,
            caller_id=(None if self.info_caller is None
                       else self.num(inf, self.info_caller, 4)),
            subsystem=dev.get("subsystem"),
            device=dev.get("device"),
            final=state == DESC_FINALIZED,
        ))

    def _text(self, log: KernelLog, seq: int, id_: int, begin: int, next_: int,
              text_len: int) -> bytes | None:
        """The record's text from its data block (get_data() and copy_data() of the kernel),
        or None after noting why it is lost."""
        w, bits, size = self.word, self.size_bits, self.data_size
        if begin & 1 and next_ & 1:
            if begin == next_ == NO_LPOS:
                return b""  # a data-less record: an empty line
            if begin == next_ == FAILED_LPOS:
                log.lost.append(Lost(seq, "no-data"))
                return None
            self._invalid(log, seq, f"data-less lpos {begin:#x}/{next_:#x}")
            return None
        if begin >> bits == next_ >> bits and begin < next_:
            offset, blk = begin & (size - 1), next_ - begin
        elif ((begin + size) & self.lpos_mask) >> bits == next_ >> bits:
            offset, blk = 0, next_ & (size - 1)  # wrapped: the block is at the ring's start
        else:
            self._invalid(log, seq, f"text block {begin:#x}-{next_:#x}")
            return None
        if begin % w or next_ % w or blk < w:
            self._invalid(log, seq, f"text block {begin:#x}-{next_:#x}")
            return None
        if text_len > blk - w:
            log.warn(f"printk record {seq}: text length {text_len} exceeds its "
                     f"{blk - w}-byte block; truncated")
            text_len = blk - w
        try:
            raw = self.mem.read_virt(self.data + offset, w + text_len)
        except UNREADABLE:
            log.lost.append(Lost(seq, "unreadable"))
            return None
        if self.num(raw, 0, w) != id_:
            # The block now belongs to a newer record: the text was overwritten.
            log.lost.append(Lost(seq, "overwritten"))
            return None
        return raw[w:]

    def _invalid(self, log: KernelLog, seq: int, what: str) -> None:
        log.lost.append(Lost(seq, "invalid"))
        log.warn(f"printk record {seq} has an invalid {what}")


class _Legacy(_Reader):
    """struct printk_log records (3.5 to 5.9; `struct log` before 3.11)."""

    def __init__(self, mem: KernelMemory, info: VmcoreInfo) -> None:
        super().__init__(mem, info)
        name = "printk_log" if info.size("printk_log") is not None else "log"
        vi = self.vi
        self.hsize = h = vi.size(name)
        self.off_ts = vi.req(name, "ts_nsec", 8, h)
        self.off_len = vi.req(name, "len", 2, h)
        self.off_text_len = vi.req(name, "text_len", 2, h)
        self.off_dict_len = vi.req(name, "dict_len", 2, h)
        self.off_caller = vi.offset(name, "caller_id", 4, h, optional=True)
        # { u64 ts_nsec; u16 len, text_len, dict_len; u8 facility; u8 flags:5, level:3; ... }
        known = (self.off_ts, self.off_len, self.off_text_len, self.off_dict_len) == (0, 8, 10, 12)
        self.off_fac = 14 if known and h >= 16 else None

    def read(self) -> KernelLog:
        vi, w = self.vi, self.word
        buf = self.num(self.fetch(vi.symbol("log_buf"), w, "log_buf"), 0, w)
        buf_len = self.num(self.fetch(vi.symbol("log_buf_len"), 4, "log_buf_len"), 0, 4)
        first = self.num(self.fetch(vi.symbol("log_first_idx"), 4, "log_first_idx"), 0, 4)
        end = self.num(self.fetch(vi.symbol("log_next_idx"), 4, "log_next_idx"), 0, 4)
        if not self.hsize < buf_len <= 1 << MAX_SIZE_BITS or first >= buf_len or end >= buf_len:
            raise UsageError(f"log_buf_len {buf_len}, log_first_idx {first}, log_next_idx {end} "
                             "are inconsistent: the dump is damaged")
        self.probe(buf, buf_len, "log_buf")
        log = KernelLog("log_buf")
        for idx, header in self._walk(log, buf, buf_len, first, end):
            text_len = self.num(header, self.off_text_len, 2)
            dict_len = self.num(header, self.off_dict_len, 2)
            try:
                body = self.mem.read_virt(buf + idx + self.hsize, text_len + dict_len)
            except UNREADABLE:
                log.lost.append(Lost(None, "unreadable"))
                continue
            fields = {}
            for item in body[text_len:].split(b"\0"):
                key, sep, value = item.partition(b"=")
                if sep and key in (b"SUBSYSTEM", b"DEVICE"):
                    fields[key] = _cstring(value)
            facility = level = flags = None
            if self.off_fac is not None:
                facility = header[self.off_fac]
                bits = header[self.off_fac + 1]
                level, flags = ((bits >> 5, bits & 0x1F) if self.order == "little"
                                else (bits & 7, bits >> 3))
            log.records.append(Record(
                seq=None,
                ts_nsec=self.num(header, self.off_ts, 8),
                text=body[:text_len],
                facility=facility,
                level=level,
                flags=flags,
                caller_id=(None if self.off_caller is None
                           else self.num(header, self.off_caller, 4)),
                subsystem=fields.get(b"SUBSYSTEM"),
                device=fields.get(b"DEVICE"),
            ))
        return log.finish()

    def _walk(self, log: KernelLog, buf: int, buf_len: int, first: int,
              end: int) -> Iterator[tuple[int, bytes]]:
        """(index, header) of each record from `first` to `end`; at most one wrap, and
        every step moves forward, so the walk ends within buf_len / header size steps."""
        h = self.hsize
        idx, wrapped = first, False
        while idx != end:
            if idx + h > buf_len or (idx > end and (wrapped or first <= end)):
                log.warn(f"log_buf walk left the buffer at index {idx}; the log is cut short")
                return
            try:
                header = self.mem.read_virt(buf + idx, h)
            except UNREADABLE:
                log.warn(f"log_buf record at index {idx} is not in the dump; "
                         "the log is cut short")
                return
            length = self.num(header, self.off_len, 2)
            if length == 0:  # the end-of-buffer marker: continue at the start
                if wrapped:
                    log.warn("log_buf wraps twice; the log is cut short")
                    return
                idx, wrapped = 0, True
                continue
            text_len = self.num(header, self.off_text_len, 2)
            dict_len = self.num(header, self.off_dict_len, 2)
            if length < h + text_len + dict_len or idx + length > buf_len:
                log.warn(f"log_buf record at index {idx} has length {length} for "
                         f"{text_len}+{dict_len} bytes; the log is cut short")
                return
            yield idx, header
            idx += length
