"""The capture kernel's own initramfs: only what `capture` and `save` import.

The first kernel's initramfs (initramfs.py) carries everything a cycle runs
there (kexec-tools, libfdt, pyelftools, the whole stdlib). The capture kernel
unpacks its initramfs into a rootfs that may fill only half of the crash
reservation, with the compressed copy in the same reservation until it is
unpacked, so its archive keeps only busybox, the interpreter, the modules the
save path imports, their shared libraries and the virtio modules, and is
xz-compressed (every Debian kernel has CONFIG_RD_XZ).

Which modules: the project's own by reading its import statements (the cli
package's and the capture and save commands', wherever they are, at any depth,
except kdumpctl_py.analyse; a command line imports only its own command's cli
module); the standard library's by importing all of those with
the host's Python and naming what it loaded, then closing over the guest's own
sources' top-level imports (a newer guest stdlib may import more); numpy and
zstandard whole, less their tests, headers and build tools.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import lzma
import marshal
import posixpath
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from .errors import HarnessError
from .guestroot import Entry, Tree, canonical

PROJECT = "kdumpctl_py"
# Imported by `kdumpctl-py capture` and `save`: everything they import, at any depth.
ENTRY_MODULES = ("kdumpctl_py.cli", "kdumpctl_py.cli.capture", "kdumpctl_py.cli.save")
# Never in the capture initramfs: the analysis runs on the host, after the reboot.
EXCLUDED_PROJECT = ("kdumpctl_py.analyse",)
# Third-party packages kept whole (less THIRD_PARTY_PRUNE): their imports differ by
# version, and numpy's C extensions import its Python modules by name.
THIRD_PARTY = ("numpy", "zstandard", "lzo")
THIRD_PARTY_PRUNE = re.compile(
    r"/(tests?|testing|f2py|distutils|array_api|doc|include|_pyinstaller)(/|$)"
    r"|/(_core|core)/lib(/|$)"
    r"|/typing/mypy_plugin\.py$"
    r"|/_(simd|umath_tests|rational_tests|struct_ufunc_tests|operand_flag_tests)"
    r"\.[^/]*so$"
    r"|\.(pyi|h|c|pxd|txt|cfg|in|md|rst|cu)$|/py\.typed$"
    r"|^usr/lib/python3/dist-packages/zstandard/(_cffi|backend_cffi)"  # the C backend is used
)
BUSYBOX = "usr/bin/busybox"
# xz as the kernel's own usr/Makefile does it: CRC32 (the kernel's decoder has no
# CRC64) and a 1 MiB dictionary, which is what unpacking allocates (XZ_DYNALLOC).
XZ_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9, "dict_size": 1 << 20}]

_C_NAME = re.compile(rb"(?<=\0)[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?=\0)")
_TOP_IMPORT = re.compile(
    r"^(?:import\s+([\w., ]+)|from\s+([\w.]+)\s+import\b[ \t(]*([\w., \t*]*))", re.M)


def _module_file(pkg_root: Path, name: str) -> Path | None:
    base = pkg_root / name.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING"))


def _imports(tree: ast.Module, name: str, is_package: bool) -> list[str]:
    """Dotted names a module imports at run time (no TYPE_CHECKING), in functions too."""
    found: list[str] = []
    package = name if is_package else name.rpartition(".")[0]

    def visit(nodes: Iterable[ast.AST]) -> None:
        for node in nodes:
            if _is_type_checking(node):
                continue
            if isinstance(node, ast.Import):
                found.extend(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[:len(parts) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                found.append(base)
                found.extend(f"{base}.{a.name}" for a in node.names)  # maybe submodules
            visit(ast.iter_child_nodes(node))

    visit(tree.body)
    return found


def project_modules(pkg_root: Path) -> tuple[set[str], set[str]]:
    """The project's modules the capture needs, and the other names they import.

    pkg_root holds the kdumpctl_py package (an unpacked wheel).
    """
    todo = list(ENTRY_MODULES)
    done: set[str] = set()
    external: set[str] = set()
    while todo:
        name = todo.pop()
        if name.startswith(EXCLUDED_PROJECT) or name in done:
            continue
        path = _module_file(pkg_root, name)
        if path is None:
            continue  # `from pkg import function`: not a module
        done.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        tree = ast.parse(path.read_text(), str(path))
        for imported in _imports(tree, name, path.name == "__init__.py"):
            if imported.split(".")[0] == PROJECT:
                todo.append(imported)
            elif imported:
                external.add(imported)
    return done, external


TRACE = """\
import importlib, json, sys
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:
        pass  # optional (lzo, systemd) or `from module import function`
print(json.dumps(sorted(sys.modules)))
"""


def host_trace(python: str, pkg_root: Path, names: Iterable[str]) -> list[str]:
    """Every module the host's Python loads importing `names` (the project first on the path)."""
    r = subprocess.run([python, "-c", TRACE, *sorted(names)], capture_output=True, text=True,
                       env={"PYTHONPATH": str(pkg_root), "PATH": "/usr/bin:/bin"},
                       timeout=300, check=False)
    if r.returncode != 0:
        raise HarnessError(f"tracing the capture's imports failed: {r.stderr.strip()[-500:]}")
    loaded: list[str] = json.loads(r.stdout)
    return loaded


class ModuleIndex:
    """Guest files by importable module name, for the stdlib, lib-dynload and dist-packages."""

    def __init__(self, tree: Tree, python: str) -> None:
        self.stdlib = f"usr/lib/python{python}"
        self.roots = (self.stdlib, f"{self.stdlib}/lib-dynload", "usr/lib/python3/dist-packages")
        self.files: dict[str, list[str]] = {}
        for path, e in tree.entries.items():
            for root in self.roots:
                if not path.startswith(root + "/") or e.kind == "dir":
                    continue
                rel = path[len(root) + 1:]
                if rel.endswith("/__init__.py"):
                    key = rel[:-len("/__init__.py")]
                elif rel.endswith(".py"):
                    key = rel[:-3]
                elif rel.endswith(".so"):
                    key = rel.split(".", 1)[0]
                else:
                    continue
                self.files.setdefault(key.replace("/", "."), []).append(path)

    def is_stdlib(self, name: str) -> bool:
        return any(p.startswith(self.stdlib + "/") for p in self.files.get(name.split(".")[0], []))

    def lookup(self, name: str) -> list[str]:
        """The module's files and its parent packages' __init__ files."""
        parts = name.split(".")
        found: list[str] = []
        for i in range(1, len(parts) + 1):
            found += self.files.get(".".join(parts[:i]), [])
        return found


def select(tree: Tree, python: str, triplet: str, host_triplet: str,
           loaded: Iterable[str]) -> set[str]:
    """Guest paths of the capture's Python: the loaded modules, closed over the guest's
    own top-level imports, with THIRD_PARTY packages whole."""
    index = ModuleIndex(tree, python)
    keep, todo = _third_party(tree, index)
    todo += [n.replace(host_triplet, triplet) for n in loaded]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name.split(".")[0] in THIRD_PARTY:
            continue
        seen.add(name)
        for path in index.lookup(name):
            if path in keep:
                continue
            chain = with_links(tree, path)
            keep.update(chain)
            final = tree.entries.get(chain[-1])
            if final and final.kind == "file" and path.endswith(".py") and \
                    path.startswith(index.stdlib + "/"):
                rel = path[len(index.stdlib) + 1:]
                todo += _source_imports(final, posixpath.dirname(rel).replace("/", "."))
    return keep


def _third_party(tree: Tree, index: ModuleIndex) -> tuple[set[str], list[str]]:
    """THIRD_PARTY packages' files (but what THIRD_PARTY_PRUNE drops), and the modules
    they import."""
    keep: set[str] = set()
    todo: list[str] = []
    dist = "usr/lib/python3/dist-packages/"
    for pkg in THIRD_PARTY:
        for path in tree.entries:
            if path.startswith(f"{dist}{pkg}/") and not THIRD_PARTY_PRUNE.search(path):
                keep.add(path)
                if path.endswith(".py"):
                    todo += _source_imports(tree.entries[path])
                elif path.endswith(".so"):  # Cython modules import by name from C
                    todo += [n for n in _c_strings(tree.entries[path]) if index.is_stdlib(n)]
    return keep, todo


def _c_strings(entry: Entry) -> set[str]:
    """NUL-delimited strings that look like dotted module names."""
    return {m.group(0).decode() for m in _C_NAME.finditer(entry.read())}


def _source_imports(entry: Entry, package: str = "") -> list[str]:
    """Top-level imports of a module in `package` (relative ones resolved against it:
    3.13's pathlib is a package whose __init__ imports `._abc` and `._local`)."""
    names: list[str] = []
    for m in _TOP_IMPORT.finditer(entry.read().decode(errors="replace")):
        if m.group(1):
            names += [n.strip().split(" ")[0] for n in m.group(1).split(",") if n.strip()]
        elif not m.group(2).startswith("."):
            names.append(m.group(2))
        elif package:
            dots = len(m.group(2)) - len(m.group(2).lstrip("."))
            if dots > len(package.split(".")):
                continue  # beyond the top-level package: not importable anyway
            parts = package.split(".")[:len(package.split(".")) - dots + 1]
            base = ".".join(parts + [m.group(2)[dots:]] if m.group(2)[dots:] else parts)
            names.append(base)
            imported = m.group(3) or ""
            names += [f"{base}.{n.strip().split(' ')[0]}" for n in imported.split(",")
                      if n.strip() and n.strip() != "*"]
    return names


def elf_closure(tree: Tree, paths: set[str], triplet: str) -> set[str]:
    """`paths` plus the shared libraries (and loader) their ELF files need, transitively."""

    search = [f"usr/lib/{triplet}", "usr/lib", "usr/lib64"]
    keep = set(paths)
    todo = list(paths)
    while todo:
        path = todo.pop()
        e = tree.entries.get(path)
        if e is None or e.kind != "file" or path.endswith(".ko"):
            continue
        for w in _needs(tree, path, e.read(), search):
            for p in with_links(tree, canonical(w)):
                if p not in keep:
                    keep.add(p)
                    todo.append(p)
    return keep


def _needs(tree: Tree, path: str, data: bytes, search: list[str]) -> list[str]:
    """The loader and the libraries (found along `search`) an ELF file needs; none for
    another file."""
    from . import elf

    if not elf.is_elf(data[:4]):
        return []
    try:
        dyn = elf.dynamic(data)
    except elf.NotElf64:
        return []
    wanted = [dyn.interp] if dyn.interp else []
    for lib in dyn.needed:
        found = next((f"{d}/{lib}" for d in search if tree.resolve(f"{d}/{lib}")), None)
        if found is None:
            raise HarnessError(f"capture initramfs: {path} needs {lib}, not in the guest")
        wanted.append(found)
    return wanted


def with_links(tree: Tree, path: str) -> list[str]:
    """A path, the symlinks met on the way to its file, and the file."""
    out = []
    cur = path
    for _ in range(40):
        out.append(cur)
        e = tree.entries.get(cur)
        if e is None or e.kind != "symlink":
            # A component may be a symlink (/lib64 -> usr/lib64): canonical file path.
            final = tree.resolve(cur)
            if final and final != cur:
                out.append(final)
            return out
        assert e.target is not None
        base = "" if e.target.startswith("/") else posixpath.dirname(cur)
        cur = canonical(posixpath.join("/", base, e.target))
    return out


def capture_tree(full: Tree, python: str, triplet: str, host_triplet: str,
                 loaded: Iterable[str], extra: Iterable[str]) -> Tree:
    """The capture kernel's tree: busybox, Python, the selected modules, `extra` paths."""
    interpreter = f"usr/bin/python{python}"
    wanted = select(full, python, triplet, host_triplet, loaded)
    wanted |= {BUSYBOX, "usr/bin/python3", interpreter, *extra}
    for path in list(wanted):
        wanted.update(with_links(full, path))
    wanted = elf_closure(full, wanted, triplet)
    missing = wanted - set(full.entries)
    if missing:
        raise HarnessError(f"capture initramfs: {sorted(missing)[0]} is not in the guest tree")
    lean = Tree()
    for path, e in sorted(bytecode({p: full.entries[p] for p in wanted}, python).items()):
        lean.add(path, e)
    # The interpreter finds its prefix by the stdlib's os.py and lib-dynload.
    lean.add(f"usr/lib/python{python}/lib-dynload", Entry("dir"))
    lean.add_skeleton()
    return lean


def bytecode(entries: dict[str, Entry], python: str) -> dict[str, Entry]:
    """Python sources as sourceless bytecode (module.pyc where module.py was).

    The capture kernel compiles every module it imports otherwise, each boot (nothing
    may be cached in its rootfs): seconds under TCG. Only the host's own Python
    version can compile for the guest's; other guests keep their sources.
    """
    if python != f"{sys.version_info[0]}.{sys.version_info[1]}":
        return entries
    out: dict[str, Entry] = {}
    for path, e in entries.items():
        if e.kind != "file" or not path.endswith(".py") or not path.startswith("usr/lib/python"):
            out[path] = e
            continue
        code = compile(e.read(), "/" + path, "exec", dont_inherit=True)
        header = importlib.util.MAGIC_NUMBER + bytes(12)  # flags 0, no source to check
        out[path + "c"] = Entry("file", perm=0o644, data=header + marshal.dumps(code))
    return out
