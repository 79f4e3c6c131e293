"""Putting crashkernel= on the boot loader's kernel command line.

Each layout has a pure planner, old file text -> new file text, that changes
only the crashkernel= words and keeps every other byte (quoting, spacing,
other parameters, comments). `plan_reset` finds which layout a root directory
uses, reads the files and returns a `BootPlan`; writing it is the caller's
job. Files it cannot read with certainty are refused, never guessed at.

Layouts, in the order they are tried:
- grubby (Fedora, RHEL), run only on the live system;
- Boot Loader Specification entries, /boot/loader/entries/*.conf `options`
  (plus /etc/kernel/cmdline, kernel-install's template for new kernels,
  when every kernel is changed);
- /etc/kernel/cmdline alone (kernel-install with unified kernel images);
- /etc/default/grub's GRUB_CMDLINE_LINUX, then grub.cfg regenerated
  (update-grub on Debian, grub2-mkconfig elsewhere).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kdumpctl_py.errors import KdumpError, UsageError
from kdumpctl_py.plan.crashkernel import CMA_SUFFIX, PARAM

ALL = "ALL"
BLS_DIRS = ("boot/loader/entries", "efi/loader/entries", "boot/efi/loader/entries")
KERNEL_CMDLINE = "etc/kernel/cmdline"
DEFAULT_GRUB = "etc/default/grub"
DEFAULT_GRUB_D = "etc/default/grub.d"
SBIN = ("usr/sbin", "sbin", "usr/bin", "bin")
# The kernel's isspace(): where next_arg() ends a word outside quotes.
SPACE = " \t\n\v\f\r"


@dataclass(frozen=True)
class FileEdit:
    path: Path
    old: bytes
    new: str

    def diff(self) -> str:
        return "".join(difflib.unified_diff(
            self.old.decode().splitlines(keepends=True), self.new.splitlines(keepends=True),
            fromfile=str(self.path), tofile=str(self.path)))


@dataclass(frozen=True)
class BootPlan:
    layout: str  # grubby, bls, kernel-install, grub
    edits: tuple[FileEdit, ...]
    commands: tuple[tuple[str, ...], ...]  # run after the edits, in order
    notes: tuple[str, ...]


# -- the pure edits -------------------------------------------------------------

def words(text: str) -> list[tuple[int, int]]:
    """(start, end) of each word as the kernel's next_arg() splits: double quotes group spaces."""
    spans = []
    i = 0
    while i < len(text):
        if text[i] in SPACE:
            i += 1
            continue
        start, quoted = i, False
        while i < len(text) and (quoted or text[i] not in SPACE):
            quoted ^= text[i] == '"'
            i += 1
        spans.append((start, i))
    return spans


def _is_crashkernel(word: str) -> bool:
    """A crashkernel= word the edits replace or drop: not a crashkernel=X,cma one, the
    admin's CMA area beside the reservation (Linux 6.16+), which they keep."""
    return word.lstrip('"').startswith(PARAM) and not word.rstrip('"').endswith(CMA_SUFFIX)


def has_crashkernel(cmdline: str) -> bool:
    return any(_is_crashkernel(cmdline[s:e]) for s, e in words(cmdline))


def set_crashkernel(cmdline: str, value: str) -> str:
    """`cmdline` with one crashkernel=value: in place of the first crashkernel= word.

    Later crashkernel= words go, since the kernel would take the last one or
    mix in ,high/,low ones. Without one (or with crashkernel= inside another
    word, which the kernel would read too), the word goes before a "--" (what
    follows it is for init), else after the last word, keeping any trailing
    newline.
    """
    spans = words(cmdline)
    inside = [e for s, e in spans if PARAM in cmdline[s:e] and not _is_crashkernel(
        cmdline[s:e]) and not cmdline[s:e].rstrip('"').endswith(CMA_SUFFIX)]
    if inside:
        # The kernel finds crashkernel= anywhere in the line (strstr) and takes the last:
        # inside another word (foo.crashkernel=1) it wins over one before it, so the new
        # word goes after every other (where a run before this one put it already).
        dashes = [s for s, e in spans if cmdline[s:e] == "--"]
        if dashes and inside[-1] > dashes[0]:
            raise KdumpError(f"a word after \"--\" holds {PARAM}, which the kernel reads "
                             "too and would take: remove it first")
        mine = [(s, e) for s, e in spans if _is_crashkernel(cmdline[s:e])]
        if [cmdline[s:e] for s, e in mine] == [PARAM + value] and mine[0][0] > inside[-1]:
            return cmdline
        cmdline = remove_crashkernel(cmdline)
        spans = words(cmdline)
    elif any(_is_crashkernel(cmdline[s:e]) for s, e in spans):
        return _rewrite(cmdline, PARAM + value)
    dashes = [s for s, e in spans if cmdline[s:e] == "--"]
    if dashes:
        return cmdline[:dashes[0]] + PARAM + value + " " + cmdline[dashes[0]:]
    if not spans:
        return PARAM + value + cmdline
    end = spans[-1][1]
    return cmdline[:end] + " " + PARAM + value + cmdline[end:]


def remove_crashkernel(cmdline: str) -> str:
    """`cmdline` without its crashkernel= words."""
    return _rewrite(cmdline, None)


def _rewrite(cmdline: str, replacement: str | None) -> str:
    """The first crashkernel= word replaced (unless None), the others dropped.

    A dropped word takes the blanks before it with it, or those after it at
    the start of the text, so no double or leading blanks are left.
    """
    out, pos = [], 0
    for s, e in words(cmdline):
        if not _is_crashkernel(cmdline[s:e]):
            continue
        if replacement is not None:
            out.append(cmdline[pos:s] + replacement)
            pos, replacement = e, None
            continue
        cut = s
        while cut > pos and cmdline[cut - 1] in " \t":
            cut -= 1
        out.append(cmdline[pos:cut])
        pos = e
        if cut == 0:
            while pos < len(cmdline) and cmdline[pos] in " \t":
                pos += 1
    out.append(cmdline[pos:])
    return "".join(out)


def edit_bls_entry(text: str, value: str) -> str:
    """A BLS entry with crashkernel=value on its `options`. systemd-boot joins every options
    line, GRUB's blscfg reads the first and stops at a line without a value: so a new word
    goes on the first, and a line left empty by the edit goes."""
    lines = text.splitlines(keepends=True)
    options = {n: _split_option(line) for n, line in enumerate(lines)
               if line.split(None, 1)[:1] == ["options"]}
    if not options:  # found by review: GRUB's blscfg takes that to mean $default_kernelopts
        raise KdumpError("it has no options line, so GRUB gives its kernel $default_kernelopts "
                         "from grubenv, which an options line would replace; use grubby, or "
                         "add the options line by hand")
    if any("$kernelopts" in body for _, body, _ in options.values()):
        raise KdumpError("its options line is $kernelopts, kept in grubenv; use grubby")
    with_ck = [n for n, (_, body, _) in options.items() if has_crashkernel(body)]
    target = with_ck[0] if with_ck else min(options)
    for n, (head, body, ending) in options.items():
        if n == target:
            lines[n] = head + set_crashkernel(body, value) + ending
        elif n in with_ck:
            rest = remove_crashkernel(body)
            lines[n] = head + rest + ending if rest.strip() else ""
    return "".join(lines)


def _split_option(line: str) -> tuple[str, str, str]:
    """An options line as ("options" with the blanks around it, the value, the line ending);
    a bare "options" gets the blank a value needs after it."""
    body = line.rstrip("\r\n")
    key = len(body) - len(body.lstrip()) + len("options")
    while key < len(body) and body[key] in " \t":
        key += 1
    head = body[:key] if body[:key].endswith((" ", "\t")) else body[:key] + " "
    return head, body[key:], line[len(body):]


def edit_kernel_cmdline(text: str, value: str) -> str:
    """/etc/kernel/cmdline: the whole file is the command line (newlines are spaces)."""
    return set_crashkernel(text, value)


_ASSIGN = re.compile(r"^([ \t]*(?:export[ \t]+)?(GRUB_CMDLINE_LINUX(?:_DEFAULT)?)=)(.*)$")


@dataclass(frozen=True)
class _Assignment:
    line: int
    name: str
    head: str  # up to and including '='
    quote: str  # '"', "'" or "" (unquoted)
    value: str
    tail: str  # after the closing quote: blanks, a comment, the line ending

    def render(self, value: str) -> str:
        quote = self.quote or ('"' if any(c in SPACE for c in value) else "")
        return f"{self.head}{quote}{value}{quote}{self.tail}"


def _parse_assignment(n: int, line: str) -> _Assignment | None:
    """A GRUB_CMDLINE_LINUX[_DEFAULT]= line, or None for other lines; refuses what is unclear."""
    body = line.rstrip("\r\n")
    m = _ASSIGN.match(body)
    if m is None:
        if "GRUB_CMDLINE_LINUX" in body and not body.lstrip().startswith("#"):
            raise KdumpError(f"line {n + 1} changes GRUB_CMDLINE_LINUX in a way this tool "
                             "cannot follow")
        return None
    name, rest = m.group(2), m.group(3)
    quote = rest[:1] if rest and rest[0] in "\"'" else ""
    if quote:
        close = rest.find(quote, 1)
        if close == -1:
            raise KdumpError(f"line {n + 1}: {name} continues on the next line")
        value, tail = rest[1:close], rest[close + 1:]
    else:
        cut = next((i for i, c in enumerate(rest) if c in " \t#"), len(rest))
        value, tail = rest[:cut], rest[cut:]
        if any(c in "\"';&|<>()" for c in value):
            raise KdumpError(f"line {n + 1}: {name} is not a plain shell word")
    if any(c in "$`\\" for c in value):
        raise KdumpError(f"line {n + 1}: {name} uses $, ` or \\, which the shell expands")
    after = tail.strip(" \t")
    if after and (not after.startswith("#") or tail[0] not in " \t"):
        # a # that does not begin a word is no comment: the shell reads it into the value
        raise KdumpError(f"line {n + 1}: unexpected {after!r} after {name}")
    if line.endswith("\r\n"):
        raise KdumpError(f"line {n + 1} ends in CR LF, and the shell reads the CR into {name}")
    return _Assignment(n, name, m.group(1), quote, value, tail + line[len(body):])


# What opens and closes a compound command (a function's body is a { } group), as any word
# of a line; quoted text and comments are taken out before they are looked for.
_OPENERS = frozenset(("if", "case", "for", "while", "until", "select", "{"))
_CLOSERS = frozenset(("fi", "esac", "done", "}"))
_QUOTED = re.compile(r"\"(?:\\.|[^\"\\])*\"|'[^']*'")
_HEREDOC = re.compile(r"(?<!<)<<(?!<)-?[ \t]*([\"']?)([\w.-]+)\1")  # not <<< here-strings


def _nesting(lines: list[str]) -> list[bool]:
    """For each line, whether it is inside an if, case, loop, function, { } group or
    here-document: an assignment there is in force or not as the shell decides (or is
    no assignment at all), which a plan cannot follow."""
    inside, depth, delimiter = [], 0, None
    for line in lines:
        body = line.rstrip("\r\n")
        if delimiter is not None:
            inside.append(True)
            if body.lstrip("\t") == delimiter:
                delimiter = None
            continue
        before = depth
        code = _QUOTED.sub(" x ", body).split("#", 1)[0]  # a comment line leaves blanks
        for word in re.split(r"[ \t;&|()]+", code):
            depth += (word in _OPENERS) - (word in _CLOSERS)
        depth = max(depth, 0)
        inside.append(before > 0 or depth > 0)  # its opening and closing lines too
        if (m := _HEREDOC.search(code)) is not None:
            delimiter = m.group(2)
    return inside


def _last_assignments(lines: list[str]) -> dict[str, _Assignment]:
    """The last assignment of each variable, the one the shell keeps; one inside a compound
    command or here-document is refused (found by review: the last of two under if/else
    was edited, whichever branch the shell takes)."""
    last: dict[str, _Assignment] = {}
    for n, (line, nested) in enumerate(zip(lines, _nesting(lines), strict=True)):
        assignment = _parse_assignment(n, line)
        if assignment is not None and nested:
            raise KdumpError(f"line {n + 1} sets {assignment.name} inside an if, case, loop, "
                             "function or here-document, so whether it is in force is the "
                             f"shell's to decide; add {PARAM} there by hand")
        if assignment is not None:
            last[assignment.name] = assignment
    return last


def _grub_target(last: dict[str, _Assignment]) -> str:
    """The variable edit_default_grub writes crashkernel= into."""
    default = last.get("GRUB_CMDLINE_LINUX_DEFAULT")
    return ("GRUB_CMDLINE_LINUX_DEFAULT" if default and has_crashkernel(default.value)
            else "GRUB_CMDLINE_LINUX")


def edit_default_grub(text: str, value: str) -> str:
    """/etc/default/grub with crashkernel=value in GRUB_CMDLINE_LINUX.

    The last assignment of a variable is the one the shell keeps. If
    GRUB_CMDLINE_LINUX_DEFAULT already holds crashkernel= it is changed there
    (it comes later on the command line, so it wins); a crashkernel= left in
    the other variable is removed.
    """
    lines = text.splitlines(keepends=True)
    last = _last_assignments(lines)
    linux, default = last.get("GRUB_CMDLINE_LINUX"), last.get("GRUB_CMDLINE_LINUX_DEFAULT")
    target = last.get(_grub_target(last), linux)
    if target is None:
        sep = "" if not lines or lines[-1].endswith("\n") else "\n"
        return text + f'{sep}GRUB_CMDLINE_LINUX="{PARAM}{value}"\n'
    lines[target.line] = target.render(set_crashkernel(target.value, value))
    for other in (linux, default):
        if other is not None and other is not target and has_crashkernel(other.value):
            lines[other.line] = other.render(remove_crashkernel(other.value))
    return "".join(lines)


# -- finding the layout and planning -------------------------------------------

def find_tool(root: Path, name: str) -> str | None:
    """The path of a program inside `root`, as seen from inside it."""
    for d in SBIN:
        if (root / d / name).is_file():
            return f"/{d}/{name}"
    return None


def _read(path: Path) -> tuple[bytes, str]:
    try:
        raw = path.read_bytes()
        return raw, raw.decode()
    except UnicodeDecodeError:
        raise KdumpError(f"{path} is not UTF-8 text; not editing it") from None


def _entry_field(text: str, key: str) -> str | None:
    for line in text.splitlines():
        parts = line.split(None, 1)
        if parts[:1] == [key]:
            return parts[1].strip() if len(parts) > 1 else ""
    return None


def _bls_entries(root: Path) -> list[Path]:
    return sorted(p for d in BLS_DIRS if (root / d).is_dir() for p in (root / d).glob("*.conf"))


def _entry_matches(text: str, kernel: str | None, release: str) -> bool:
    linux = _entry_field(text, "linux")
    if linux is None:
        return False
    if kernel == ALL:
        return True
    if kernel is None:
        return _entry_field(text, "version") == release or Path(linux).name == f"vmlinuz-{release}"
    return Path(linux).name == Path(kernel).name


def shared_cmdline(root: Path, run_tools: bool) -> bool:
    """Whether one command line serves every kernel (/etc/kernel/cmdline, /etc/default/grub)
    rather than one per kernel (grubby, BLS entries)."""
    return not ((run_tools and find_tool(root, "grubby")) or _bls_entries(root))


def has_boot_config(root: Path) -> bool:
    """Whether reset-crashkernel finds a command line to edit under root (one it would
    refuse, reached by a link out of root, counts: it says why)."""
    try:
        return bool(find_tool(root, "grubby") or _bls_entries(root)
                    or _present(root, KERNEL_CMDLINE) or _present(root, DEFAULT_GRUB))
    except KdumpError:
        return True


def _present(root: Path, name: str) -> bool:
    """Whether `name` is a file under root, through its symlinks read inside root."""
    return _real(root, root / name).is_file()


def plan_reset(root: Path, value: str, kernel: str | None, release: str,
               run_tools: bool) -> BootPlan:
    """How to put crashkernel=value on the command line of `kernel` under `root`.

    `kernel` is a kernel image path, ALL, or None for the running `release`.
    Tools (grubby, grub regeneration) are planned only when `run_tools`,
    i.e. when root is the live system.
    """
    grubby = find_tool(root, "grubby") if run_tools else None
    if grubby:
        target = kernel or f"/boot/vmlinuz-{release}"
        return BootPlan("grubby", (), ((grubby, f"--update-kernel={target}",
                                        f"--args={PARAM}{value}"),), ())
    entries = _bls_entries(root)
    if entries:
        return _plan_bls(root, entries, value, kernel, release)
    if _present(root, KERNEL_CMDLINE):
        if kernel not in (None, ALL):
            raise UsageError(f"/{KERNEL_CMDLINE} applies to every kernel; use --kernel ALL")
        return BootPlan("kernel-install", _edits(root, [root / KERNEL_CMDLINE],
                                                 edit_kernel_cmdline, value), (),
                        ("kernels already installed keep their command line until "
                         "kernel-install adds them again",))
    if _present(root, DEFAULT_GRUB):
        return _plan_grub(root, value, kernel, run_tools)
    raise KdumpError("no boot loader configuration found (grubby, /boot/loader/entries, "
                     f"/{KERNEL_CMDLINE}, /{DEFAULT_GRUB})")


def _real(root: Path, path: Path) -> Path:
    """The file an edit of `path` writes: the one its symlinks lead to, as sed
    --follow-symlinks and editors write (found by review: the link was replaced by a
    file, leaving the file it named, which a package or configuration manager keeps,
    as it was). An absolute link is read inside `root`: a snapshot's or image's names its
    own file, not this machine's."""
    for _ in range(40):  # the kernel's MAXSYMLINKS
        if not path.is_symlink():
            return path
        link = os.readlink(path)
        path = Path(os.path.normpath(root / link.lstrip("/") if os.path.isabs(link)
                                     else path.parent / link))
        if root != path and root not in path.parents:
            raise KdumpError(f"{path} is reached through a symlink leading out of {root}; "
                             "not editing it")
    raise KdumpError(f"{path}: too many levels of symbolic links; not editing it")


def _edits(root: Path, paths: list[Path], planner: Callable[[str, str], str],
           value: str) -> tuple[FileEdit, ...]:
    real = [_real(root, path) for path in paths]
    return tuple(e for path in real for e in _edit(path, *_read(path), planner, value))


def _edit(path: Path, raw: bytes, text: str, planner: Callable[[str, str], str],
          value: str) -> tuple[FileEdit, ...]:
    """The edit `planner` makes to the file read as `raw`, none when it changes nothing."""
    try:
        new = planner(text, value)
    except KdumpError as e:
        raise KdumpError(f"{path}: {e}; not editing it") from None
    return (FileEdit(path, raw, new),) if new != text else ()


def _plan_bls(root: Path, entries: list[Path], value: str, kernel: str | None,
              release: str) -> BootPlan:
    chosen = [p for p in entries if _entry_matches(_read(p)[1], kernel, release)]
    if not chosen:
        which = f"the running kernel {release}" if kernel is None else kernel
        raise KdumpError(f"no boot entry (loader/entries/*.conf) for {which}")
    edits = _edits(root, chosen, edit_bls_entry, value)
    if kernel == ALL and _present(root, KERNEL_CMDLINE):
        edits += _edits(root, [root / KERNEL_CMDLINE], edit_kernel_cmdline, value)
        return BootPlan("bls", edits, (), (f"/{KERNEL_CMDLINE} too, so that kernels installed "
                                           "later get it",))
    return BootPlan("bls", edits, (), ())


def _check_drop_ins(root: Path, target: str) -> None:
    """Refuse an edit that /etc/default/grub.d/*.cfg, read after the file, would undo: a
    drop-in that sets crashkernel= itself, or sets the variable the edit writes without
    adding to it (found by review: a cloud image's console drop-in made the edit vanish
    while reset-crashkernel said it was done)."""
    for snippet in sorted((root / DEFAULT_GRUB_D).glob("*.cfg")):
        live = [line for line in _read(snippet)[1].splitlines()
                if not line.lstrip().startswith("#")]
        if any(PARAM in line for line in live):
            raise KdumpError(f"{snippet} also sets {PARAM} and is read after /{DEFAULT_GRUB}, "
                             "so its value would win; remove it from there first")
        for line in live:
            m = _ASSIGN.match(line)
            if m and m.group(2) == target and f"${target}" not in line \
                    and f"${{{target}}}" not in line:
                raise KdumpError(f"{snippet} sets {target} again after /{DEFAULT_GRUB}, so "
                                 f"crashkernel= written there would not reach the kernel; "
                                 f"add it in {snippet}, or make that line add to ${target}")


def _plan_grub(root: Path, value: str, kernel: str | None, run_tools: bool) -> BootPlan:
    if kernel not in (None, ALL):
        raise UsageError(f"/{DEFAULT_GRUB} applies to every kernel; use --kernel ALL")
    path = _real(root, root / DEFAULT_GRUB)
    raw, text = _read(path)
    edits = _edit(path, raw, text, edit_default_grub, value)
    _check_drop_ins(root, _grub_target(_last_assignments(text.splitlines(keepends=True))))
    if find_tool(root, "update-grub"):
        command: tuple[str, ...] = ("update-grub",)
    elif find_tool(root, "grub2-mkconfig"):
        command = ("grub2-mkconfig", "-o", "/boot/grub2/grub.cfg")
    elif find_tool(root, "grub-mkconfig"):
        command = ("grub-mkconfig", "-o", "/boot/grub/grub.cfg")
    else:
        return BootPlan("grub", edits, (), ("no update-grub or grub-mkconfig found: regenerate "
                                            "grub.cfg before rebooting",))
    if not run_tools:
        return BootPlan("grub", edits, (), (f"run {' '.join(command)} inside {root} before "
                                            "booting it",))
    return BootPlan("grub", edits, (command,) if edits else (), ())
