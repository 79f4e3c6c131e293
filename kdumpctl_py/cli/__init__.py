"""The kdumpctl-py command line: global options, sub-commands, and one-line errors.

Each sub-command lives in its own module here with `register(subparsers)`; a
command line imports and registers only the module of the command it names, and
modules import their heavy dependencies inside the command, so that
`kdumpctl-py` starts fast and runs in a capture kernel without drgn.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import importlib
import io
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from kdumpctl_py import __version__
from kdumpctl_py.errors import KdumpError, UsageError

if TYPE_CHECKING:
    from kdumpctl_py.facts.view import SystemView

PROG = "kdumpctl-py"
COMMANDS = (
    "status",
    "snapshot",
    "elfcorehdr",
    "dtb",
    "load",
    "save",
    "reassemble",
    "propagate",
    "get-default-crashkernel",
    "crashkernel",
    "showmem",
    "estimate",
    "shrink",
    "reset-crashkernel",
    "initramfs",
    "dmesg",
    "analyse",
    "dumps",
    "triage",
    "report",
    "debuginfo",
    "config",
    "capture",
    "test",
    "install",
)
# The commands a module registers besides its own name (a test keeps this true).
OTHER_NAMES = {"start": "load", "restart": "load", "reload": "load", "unload": "load",
               "stop": "load", "analyze": "analyse"}


class Parser(argparse.ArgumentParser):
    """argparse that reports bad usage as one line (exit 2) instead of usage plus message,
    takes no abbreviations (`--debug` must never become `--debug-dir`), and accepts the
    global options after any sub-command too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")

    def add_subparsers(self, **kwargs: Any) -> Commands:
        kwargs.setdefault("action", Commands)
        sub = super().add_subparsers(**kwargs)
        assert isinstance(sub, Commands)
        return sub


class Formatter(argparse.HelpFormatter):
    """argparse's help, as wide as argparse makes it, but not through shutil, whose import
    loads the bz2 and lzma libraries (half a MB of a save's peak RSS) only for the
    terminal's width: argparse makes a formatter for each option it adds."""

    def __init__(self, prog: str, **kwargs: Any) -> None:
        kwargs.setdefault("width", terminal_columns() - 2)
        super().__init__(prog, **kwargs)


def terminal_columns() -> int:
    """shutil.get_terminal_size()'s columns: $COLUMNS, else standard output's terminal's,
    else 80."""
    with contextlib.suppress(KeyError, ValueError):
        if (columns := int(os.environ["COLUMNS"])) > 0:
            return columns
    if sys.__stdout__ is None:
        return 80
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


def add_global_options(parser: argparse.ArgumentParser, top: bool) -> None:
    """--debug and --sysroot; below the top level they default to nothing, so that a
    sub-command leaves what was given before it alone."""
    unset: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument("--debug", action="store_true", help="show tracebacks and more detail",
                        **unset)
    parser.add_argument(
        "--sysroot",
        metavar="DIR",
        type=_sysroot,
        help="read facts from a snapshot (directory or .tar.gz) instead of this machine; "
        "never written to (env KDUMPCTL_SYSROOT)",
        **(unset or {"default": os.environ.get("KDUMPCTL_SYSROOT") or None}),
    )


def nonempty(text: str) -> str:
    """A path or value for argparse that may not be empty: an unset "$VAR" gives "", which
    would otherwise mean the option left out."""
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _sysroot(text: str) -> str:
    """--sysroot DIR, never empty: an empty one (an unset "$SNAP") would mean this machine,
    and let a command that changes it run."""
    if not text:
        raise argparse.ArgumentTypeError("an empty DIR names no snapshot; drop --sysroot "
                                         "to read this machine")
    return text


def add_arch_option(parser: argparse.ArgumentParser) -> None:
    """--arch, by uname's name or Debian's; the commands that take it default to this
    machine's."""
    from kdumpctl_py.arch import ARCH_NAMES, ARCHES

    names = ", ".join(f"{a.name} ({'/'.join(a.aliases)})" for a in ARCHES)
    parser.add_argument("--arch", choices=ARCH_NAMES, metavar="ARCH",
                        help=f"architecture: {names} (default: the running one)")


class Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """The sub-commands, each given to its module's `register`; their parsers know the
    global options."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = super().add_parser(name, **kwargs)
        add_global_options(p, top=False)
        p.set_defaults(command_prog=p.prog)  # the deepest command parsed wins
        return p


def build_parser(argv: Sequence[str] | None = None) -> Parser:
    """The parser for `argv`: with only the command it names, when it names one (a save
    in the capture kernel imports and builds one command's parser, not all of them);
    without argv, every command."""
    parser = Parser(prog=PROG, description="Reserve, load, capture and analyse kernel crash dumps.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    add_global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS if argv is None else invoked(argv):
        importlib.import_module(f"kdumpctl_py.cli.{name.replace('-', '_')}").register(sub)
    _describe(sub)
    return parser


def invoked(argv: Sequence[str]) -> tuple[str, ...]:
    """The module of the command argv names, where argparse finds it: the first word after
    the global options. Every module when the first word is another option (--help,
    --version) or no command, so that the top-level help and the invalid-choice error
    list them all."""
    words = iter(argv)
    for word in words:
        if word == "--sysroot":
            next(words, None)
        elif word != "--debug" and not word.startswith("--sysroot="):
            module = OTHER_NAMES.get(word, word)
            return (module,) if module in COMMANDS else COMMANDS
    return COMMANDS


def _describe(sub: argparse._SubParsersAction[Parser]) -> None:
    """Every command's --help starts with what it does; those that change the machine say so."""
    from kdumpctl_py.service.lock import STATE_COMMANDS

    for choice in sub._choices_actions:
        command = sub.choices[choice.dest]
        if not command.description and choice.help:
            command.description = choice.help[0].upper() + choice.help[1:] + "."
        if choice.dest in STATE_COMMANDS:
            command.description = (f"{command.description} It changes this machine, after any "
                                   "other such command has finished (the state lock).")


# The commands whose process ends as soon as they succeed, without the interpreter's
# teardown: freeing what numpy and every module hold took about 40 ms of CPU (35-50 over
# 10 runs) after a 4 GiB synthetic machine's save of about 0.45 s; nothing a save leaves
# needs it (the dump is fsync'd and renamed, its files closed; the output is flushed first).
# They run without the cycle collector too: a save leaves a few cyclic objects (25 after
# the 2 GiB vmcore's, in every format), no more for a bigger dump (test_save), and the
# collector's 44 passes, most over numpy's objects as they are imported, cost 9-10 ms of
# the 4 GiB machine's save.
QUICK_EXIT = frozenset({"save"})


class ClosedOutput(io.TextIOBase):
    """Standard output of a process started with it closed (`>&-`), which Python leaves as
    None: print() would drop the output without a word and a write or flush end in an
    internal error; here a write fails as one to a closed descriptor does, and the
    command ends with one line saying so (as coreutils' `write error`)."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "cannot write standard output: it is closed; redirect "
                      "it to a file, or to /dev/null to discard it")


def program() -> int:
    """The `kdumpctl-py` command (and `python -m kdumpctl_py`)."""
    if sys.stdout is None:
        sys.stdout = ClosedOutput()
    try:
        return main(quick_exit=True)
    except KeyboardInterrupt:  # Ctrl-C before the command ran: while its modules imported
        return _fail("interrupted", 130, "--debug" in sys.argv)


def main(argv: Sequence[str] | None = None, quick_exit: bool = False) -> int:
    """Run the command line `argv`; with `quick_exit` (the program, not a test calling
    in) a QUICK_EXIT command's process ends here when it succeeds."""
    # numpy's BLAS starts a thread per CPU when imported and nothing here multiplies
    # matrices: they only cost start-up time, and a CPU the save's threads want.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    if quick_exit:
        gc.disable()  # until the command is known: see QUICK_EXIT
    try:
        args = _parse(build_parser(argv), argv)
    except UsageError as e:
        return _fail(str(e), e.exit_code, False)  # a traceback of argparse helps nobody
    except OSError as e:  # --help or --version onto a full or closed standard output
        return _os_failure(e, debug)
    # a --sysroot snapshot unpacked for the command is removed by the teardown
    at_once = quick_exit and args.command in QUICK_EXIT and not args.sysroot
    if quick_exit and not at_once:
        gc.enable()
    try:
        code = _run_locked(args)
        if at_once and not code:
            _end_now()
        return code
    except KdumpError as e:
        return _fail(str(e), e.exit_code, debug)
    except KeyboardInterrupt:
        return _fail("interrupted", 130, debug)
    except OSError as e:
        return _os_failure(e, debug)
    except Exception as e:
        return _fail(f"internal error: {type(e).__name__}: {e} (rerun with --debug)", 1, debug)


def _os_failure(e: OSError, debug: bool) -> int:
    """An OSError as one line, exit 1; a reader that went away (e.g. `| head`) is not an
    error worth a message."""
    if isinstance(e, BrokenPipeError):
        sys.stderr.close()
        return 1
    hint = " (run as root?)" if e.errno in (errno.EPERM, errno.EACCES) else ""
    where = f"{e.filename}: " if e.filename else ""
    return _fail(f"{where}{e.strerror or e}{hint}", 1, debug)


def _parse(parser: Parser, argv: Sequence[str]) -> argparse.Namespace:
    """parse_args, but what is left over is told to see its command's own --help, which
    lists that command's options (the top-level one does not)."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        where = getattr(args, "command_prog", parser.prog)
        raise UsageError(f"unrecognized arguments: {' '.join(extra)} (see {where} --help)")
    return args


def check_sysroot(args: argparse.Namespace) -> None:
    """The one rule for --sysroot: it names facts to read, never a place to write.

    A command that changes the machine (the state commands, `install`, and `report`,
    which writes beside the dumps) runs under it only as a plan (--dry-run); one without
    a dry run refuses it. Commands that read
    accept it, and write nothing but an output named on their command line.
    """
    from kdumpctl_py.service.lock import STATE_COMMANDS

    if not args.sysroot or args.command not in STATE_COMMANDS | {"install", "report"}:
        return
    given = "--sysroot"
    if args.sysroot == os.environ.get("KDUMPCTL_SYSROOT"):
        given = "--sysroot (KDUMPCTL_SYSROOT)"
    if not hasattr(args, "dry_run"):
        raise UsageError(f"{args.command} acts on this machine, and {given} is only read; "
                         f"{drop_sysroot(args)}")
    if not args.dry_run:
        raise UsageError(f"{args.command} changes the machine, and {given} is only read; "
                         "add --dry-run to see the plan")


def drop_sysroot(args: argparse.Namespace) -> str:
    """How to stop reading a snapshot: drop the option, or unset the variable it came from
    (left set in a shell, it is easily forgotten)."""
    if args.sysroot == os.environ.get("KDUMPCTL_SYSROOT"):
        return "unset KDUMPCTL_SYSROOT"
    return "drop --sysroot"


def _run_locked(args: argparse.Namespace) -> int:
    """Run the command; one that changes the machine's state holds the state lock."""
    from kdumpctl_py.service.lock import STATE_COMMANDS, state_lock

    check_sysroot(args)
    if args.command not in STATE_COMMANDS or args.sysroot or getattr(args, "dry_run", False):
        code: int = args.func(args)
        return code
    with state_lock(args.command):
        code = args.func(args)
        return code


def _end_now() -> NoReturn:
    """Exit 0 at once, once the output is out."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _fail(message: str, code: int, debug: bool) -> int:
    if debug:
        import traceback

        traceback.print_exc()
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def open_view(args: argparse.Namespace, probe: bool = False) -> SystemView:
    """The SystemView for this invocation: the live machine or --sysroot; `probe`: with
    the live kernel's answers to the load calls' probes (once per boot, kdumpctl_py.load.probe)."""
    from kdumpctl_py.facts.view import SystemView

    view = SystemView(args.sysroot or "/")
    if not probe:
        return view
    from kdumpctl_py.load.probe import probed_view

    return probed_view(view)
