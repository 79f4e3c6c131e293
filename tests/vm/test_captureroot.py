"""Quick-tier tests of the capture initramfs's selection and the memory records (no QEMU)."""

from __future__ import annotations

import importlib.util
import lzma
import marshal
import subprocess
import sys
from pathlib import Path

from tests.vm.harness import captureroot, guestinit, memory
from tests.vm.harness.guestroot import Entry, Tree


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_project_modules_follow_capture_and_save_but_no_other_command(tmp_path: Path) -> None:
    pkg = _package(tmp_path, {
        "kdumpctl_py/__init__.py": "",
        "kdumpctl_py/cli/__init__.py": "import argparse\nfrom kdumpctl_py import errors\n",
        "kdumpctl_py/cli/save.py": "def run():\n    from kdumpctl_py.capture.save import go\n",
        "kdumpctl_py/cli/capture.py": "import sys\n",
        "kdumpctl_py/cli/analyse.py": (
            "import sqlite3\ndef run():\n    from kdumpctl_py.analyse import x\n"),
        "kdumpctl_py/errors.py": "",
        "kdumpctl_py/capture/__init__.py": "",
        "kdumpctl_py/capture/save.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import kdumpctl_py.facts\n"
            "from . import sink\ndef go():\n    import zstandard\n"),
        "kdumpctl_py/capture/sink.py": "import numpy.typing as npt\n",
        "kdumpctl_py/analyse/__init__.py": "import drgn\n",
        "kdumpctl_py/facts/__init__.py": "",
    })
    own, external = captureroot.project_modules(pkg)
    assert own == {"kdumpctl_py", "kdumpctl_py.cli", "kdumpctl_py.cli.save",
                   "kdumpctl_py.cli.capture", "kdumpctl_py.errors",
                   "kdumpctl_py.capture", "kdumpctl_py.capture.save",
                   "kdumpctl_py.capture.sink"}
    assert {"argparse", "sys", "zstandard", "numpy.typing"} <= external
    assert not {"drgn", "sqlite3"} & external


def test_the_real_capture_needs_no_openssl() -> None:
    """hashlib and hmac load OpenSSL's libcrypto (4.5 MB unpacked): once config.render's
    known_hosts check was in the capture's reach, crashkernel=144M no longer saved."""
    _, external = captureroot.project_modules(Path(__file__).resolve().parents[2])
    assert not {"hashlib", "hmac", "ssl", "drgn"} & external


def _guest_tree() -> Tree:
    t = Tree()
    std = "usr/lib/python3.11"
    t.add(f"{std}/os.py", Entry("file", data=b"import stat\n"))
    t.add(f"{std}/stat.py", Entry("file", data=b"try:\n    import _stat\nexcept ImportError:\n"
                                                  b"    pass\n"))
    t.add(f"{std}/secrets.py", Entry("file", data=b"import base64\n"))
    t.add(f"{std}/base64.py", Entry("file", data=b""))
    t.add(f"{std}/json/__init__.py", Entry("file", data=b"from .decoder import x\n"))
    t.add(f"{std}/tkinter/__init__.py", Entry("file", data=b""))
    t.add(f"{std}/lib-dynload/_json.cpython-311-aarch64-linux-gnu.so",
          Entry("file", data=b"\x7fELF-not-parsed"))
    dist = "usr/lib/python3/dist-packages"
    t.add(f"{dist}/numpy/__init__.py", Entry("file", data=b"import os\n"))
    t.add(f"{dist}/numpy/random/bit.cpython-311-aarch64-linux-gnu.so",
          Entry("file", data=b"\0junk\0secrets\0__prepare__\0"))
    t.add(f"{dist}/numpy/tests/test_x.py", Entry("file", data=b"import tkinter\n"))
    t.add(f"{dist}/numpy/core/include/numpy/x.h", Entry("file", data=b""))
    return t


def test_select_maps_host_names_into_the_guest_and_closes_over_its_imports() -> None:
    keep = captureroot.select(_guest_tree(), "3.11", "aarch64-linux-gnu", "x86_64-linux-gnu",
                              ["json", "_json", "sys"])
    std, dist = "usr/lib/python3.11", "usr/lib/python3/dist-packages"
    assert keep == {
        f"{std}/json/__init__.py", f"{std}/lib-dynload/_json.cpython-311-aarch64-linux-gnu.so",
        f"{std}/os.py", f"{std}/stat.py",  # numpy imports os, os imports stat
        f"{std}/secrets.py", f"{std}/base64.py",  # named in numpy's C extension
        f"{dist}/numpy/__init__.py", f"{dist}/numpy/random/bit.cpython-311-aarch64-linux-gnu.so",
    }


def test_relative_imports_of_stdlib_packages_are_followed() -> None:
    """3.13's pathlib is a package: `from ._abc import *` in its __init__."""
    t = Tree()
    std = "usr/lib/python3.13"
    t.add(f"{std}/pathlib/__init__.py", Entry("file", data=b"from ._abc import *\n"
                                                            b"from ._local import (Path,\n"))
    t.add(f"{std}/pathlib/_abc.py", Entry("file", data=b"from .. import nothing\n"))
    t.add(f"{std}/pathlib/_local.py", Entry("file", data=b""))
    t.add(f"{std}/pathlib/_unused.py", Entry("file", data=b""))
    keep = captureroot.select(t, "3.13", "x86_64-linux-gnu", "x86_64-linux-gnu", ["pathlib"])
    assert keep == {f"{std}/pathlib/__init__.py", f"{std}/pathlib/_abc.py",
                    f"{std}/pathlib/_local.py"}


def test_bytecode_replaces_sources_only_for_the_hosts_python() -> None:
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    entries = {"usr/lib/python3/dist-packages/m.py": Entry("file", data=b"X = 6 * 7\n"),
               "init": Entry("file", data=b"#!/bin/sh\n")}
    out = captureroot.bytecode(entries, version)
    assert set(out) == {"usr/lib/python3/dist-packages/m.pyc", "init"}
    data = out["usr/lib/python3/dist-packages/m.pyc"].read()
    assert data[:4] == importlib.util.MAGIC_NUMBER
    namespace: dict[str, object] = {}
    exec(marshal.loads(data[16:]), namespace)
    assert namespace["X"] == 42
    assert captureroot.bytecode(entries, "2.7") is entries


def test_sourceless_bytecode_imports(tmp_path: Path) -> None:
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    out = captureroot.bytecode({"usr/lib/python3/mod.py": Entry("file", data=b"V = 1\n")},
                               version)
    (tmp_path / "mod.pyc").write_bytes(out["usr/lib/python3/mod.pyc"].read())
    r = subprocess.run([sys.executable, "-c", "import mod; print(mod.V)"], cwd=tmp_path,
                       capture_output=True, text=True, check=True)
    assert r.stdout == "1\n"


def test_xz_is_what_the_kernel_decodes() -> None:
    """CRC32 (the kernel's xz has no CRC64) and a 1 MiB dictionary."""
    data = captureroot.XZ_FILTERS
    assert data[0]["dict_size"] == 1 << 20
    packed = lzma.compress(b"x" * 1000, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32,
                           filters=data)
    assert packed[6:8] == b"\x00\x01"  # stream flags: check type 1, CRC32


def test_memory_lines_parse_into_a_table() -> None:
    console = (
        b"[    0.000000] Memory: 103424K/164196K available (14343K kernel code, 2327K rwdata, "
        b"8348K rodata, 2612K init, 5436K bss, 60772K reserved, 0K cma-reserved)\n"
        b"[    1.9] Freeing initrd memory: 12188K\n"
        b"KDUMPCTL-VM-MEM: unpacked MemTotal=124416 MemFree=58060 MemAvailable=63800 Shmem=40448\n"
        b"KDUMPCTL-VM-MEM: saved MemTotal=124416 MemFree=37888 min_free_kb=2252 "
        b"VmHWM_kb=48537 seconds=21.6\n")
    mem = memory.parse(console)
    assert mem["kernel"] == {"available_kb": 103424, "total_kb": 164196, "reserved_kb": 60772,
                             "cma_kb": 0, "initrd_freed_kb": 12188}
    assert mem["stages"]["saved"] == {"MemTotal": 124416, "MemFree": 37888, "min_free_kb": 2252,
                                      "VmHWM_kb": 48537, "seconds": 21.6}
    lines = memory.table(mem)
    assert lines[0].startswith("kernel init: 160.3 MiB reserved memory, 101.0 MiB available")
    assert lines[-1].split()[:3] == ["saved", "121.5", "37.0"]
    assert guestinit.MEM_MARKER.encode() == memory.MEM_MARKER
