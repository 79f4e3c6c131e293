"""What kind of dump a file is, from its first bytes, and one wording for a file that is
not a dump: `dmesg`, `analyse` and `debuginfo` refuse the same input the same way."""

from __future__ import annotations

from kdumpctl_py.elf import ELF_MAGIC
from kdumpctl_py.errors import UsageError

ELF = "ELF"
KDUMP = "kdump-compressed"
FLATTENED = "makedumpfile flattened"

MAGICS = (
    (ELF_MAGIC, ELF),
    (b"KDUMP   ", KDUMP),
    (b"makedumpfile", FLATTENED),
)


def dump_format(head: bytes) -> str | None:
    """ELF, kdump-compressed or flattened, from the first bytes of the file."""
    for magic, name in MAGICS:
        if head.startswith(magic):
            return name
    return None


def readable_dump(path: str) -> tuple[str, bytes]:
    """The format of the dump at `path` and its first bytes; one error line for a file that
    cannot be opened, is no dump, or is a flattened stream that must be rebuilt first."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except IsADirectoryError:
        raise UsageError(_in_directory(path)) from None
    except OSError as e:
        raise UsageError(f"cannot open {path}: {e.strerror}") from None
    fmt = dump_format(head)
    if fmt is None:
        raise UsageError(f"{path} is neither an ELF vmcore nor a kdump-compressed dump")
    if fmt == FLATTENED:
        out = path.removesuffix(".flat") if path.endswith(".flat") else f"{path}.kdump"
        raise UsageError(f"{path} is in makedumpfile's flattened format (-F): turn it into the "
                         f"dump it describes with `kdumpctl-py reassemble {path} {out}` first")
    return fmt, head


def _in_directory(path: str) -> str:
    """A dump's directory given for its dump: which file in it to give instead."""
    import os

    for name in ("vmcore", "vmcore-incomplete", "vmcore.flat"):
        if os.path.isfile(os.path.join(path, name)):
            return f"{path} is a directory; give the dump in it, {os.path.join(path, name)}"
    return f"{path} is a directory, not a dump"
