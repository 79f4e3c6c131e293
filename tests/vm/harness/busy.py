"""Run in the first kernel (--busy): fill memory with each kind of page a dump level tells apart.

An idle guest's memory is mostly free pages and the initramfs, so an idle dump
exercises little of the page filter. Before the crash this puts file pages in
the page cache (ext4 data with buffer heads, which makedumpfile calls "private",
and the block device's own cache), shmem (tmpfs), slab (inodes and dentries of
many small files), anonymous memory of a process that stays alive until the
panic, and hugetlb pages, all filled with non-zero bytes. Standard library only:
it runs on the guest's Debian Python.
"""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
import time

MIB = 1 << 20
PATTERN = b"kdumpctl-py busy page "


def fill(size: int) -> bytes:
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


def page_cache(disk_dir: str, size: int) -> None:
    with open(os.path.join(disk_dir, "busy-cache.dat"), "wb") as f:
        f.write(fill(size))
        f.flush()
        os.fsync(f.fileno())
    with open("/dev/vda", "rb") as dev:
        while dev.tell() < size and dev.read(MIB):
            pass


def shmem_and_slab(root: str, size: int, files: int) -> None:
    os.makedirs(root, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={2 * size}", "tmpfs", root], check=True)
    with open(os.path.join(root, "shmem.dat"), "wb") as f:
        f.write(fill(size))
    for i in range(files):
        os.mkdir(os.path.join(root, f"d{i}"))


def hugetlb(root: str, pages: int) -> None:
    with open("/proc/sys/vm/nr_hugepages", "w") as f:
        f.write(str(pages))
    os.makedirs(root, exist_ok=True)
    subprocess.run(["mount", "-t", "hugetlbfs", "none", root], check=True)
    with open("/proc/sys/vm/nr_hugepages") as f:
        got = int(f.read())
    huge = 2 * MIB
    fd = os.open(os.path.join(root, "huge.dat"), os.O_CREAT | os.O_RDWR)
    os.ftruncate(fd, got * huge)
    with mmap.mmap(fd, got * huge) as m:
        m.write(fill(got * huge))
    os.close(fd)


def anonymous(size: int) -> None:
    """A child that keeps `size` bytes of touched anonymous memory until the panic."""
    if os.fork() == 0:
        os.setsid()
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        held = bytearray(fill(size))
        while held:
            time.sleep(3600)
        os._exit(0)


def main() -> int:
    page_cache("/mnt", 32 * MIB)
    shmem_and_slab("/busy/tmpfs", 32 * MIB, 20000)
    hugetlb("/busy/huge", 16)
    anonymous(64 * MIB)
    time.sleep(1)
    with open("/proc/meminfo") as f:
        wanted = ("MemFree", "Cached", "Buffers", "Shmem:", "Slab", "AnonPages",
                  "HugePages_Total", "HugePages_Free")
        sys.stdout.writelines(line for line in f if line.startswith(wanted))
    return 0


if __name__ == "__main__":
    sys.exit(main())
