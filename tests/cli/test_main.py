from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kdumpctl_py.capture.save import SaveOptions, save_vmcore
from kdumpctl_py.cli import (
    COMMANDS,
    OTHER_NAMES,
    build_parser,
    invoked,
    main,
    terminal_columns,
)
from tests.builders import make_vmcore, panic_vmcore

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "snapshots"


def test_bad_usage_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kdumpctl-py: error: ")


def test_bad_sysroot_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sysroot", "/nonexistent", "status"]) == 2
    assert capsys.readouterr().err == (
        "kdumpctl-py: error: sysroot /nonexistent is not a directory or a .tar.gz snapshot\n")


def test_debug_shows_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--debug", "--sysroot", "/nonexistent", "status"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("snapshot\n")


def test_the_program_ends_a_save_at_once_with_its_output_whole(tmp_path: Path) -> None:
    """A save's process skips the interpreter's teardown: the flattened dump it streams on
    standard output arrives whole, and exits 0."""
    src, _ = make_vmcore(tmp_path)
    out = subprocess.run([sys.executable, "-m", "kdumpctl_py", "save", "--vmcore", str(src),
                          "--target", "-", "--flat", "--compress", "zlib", "--zlib-engine",
                          "zlib", "--dump-level", "1", "--no-progress"],
                         capture_output=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    stream = io.BytesIO()
    save_vmcore(str(src), "-", SaveOptions(1, "zlib", flat=True, progress=False,
                                           zlib_engine="zlib"), stream)
    assert out.stdout == stream.getvalue()
    assert out.stderr.startswith(b"saved standard output: ")


@pytest.mark.parametrize(("quick", "sysroot", "ended"), [(True, False, True), (False, False, False),
                                                         (True, True, False)])
def test_quick_exit_only_for_the_program_and_without_a_sysroot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quick: bool, sysroot: bool,
        ended: bool) -> None:
    """main() called in (a test, another program) returns; a --sysroot snapshot unpacked
    for the command is left to the teardown that removes it."""
    src, _ = make_vmcore(tmp_path)

    class Ended(BaseException):  # as os._exit, nothing main() catches
        pass

    def end(code: int) -> None:
        raise Ended(code)

    monkeypatch.setattr(os, "_exit", end)
    argv = [*(["--sysroot", str(FIXTURES / "debian12-amd64")] if sysroot else []), "save",
            "--vmcore", str(src), "--target", str(tmp_path / "out"), "--compress", "zlib",
            "--dump-level", "1", "--no-progress"]
    if ended:
        with pytest.raises(Ended, match="0"):
            main(argv, quick_exit=quick)
    else:
        assert main(argv, quick_exit=quick) == 0


def test_console_entry_point_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "kdumpctl_py", "--version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("kdumpctl-py ")



@pytest.mark.parametrize("argv", [["get-default-crashkernel", "--arch", "x86_64"],
                                  ["dmesg", "VMCORE"], ["analyse", "VMCORE", "--json"],
                                  ["save", "--vmcore", "VMCORE", "--target", "out",
                                   "--no-progress"]],
                         ids=lambda argv: argv[0])
def test_a_closed_standard_output_is_one_line(argv: list[str], tmp_path: Path) -> None:
    """Found by review: started with standard output closed (`>&-`), dmesg and analyse
    ended in `internal error: AttributeError`, a save that had saved the dump too, and
    get-default-crashkernel printed nothing and exited 0. A write fails as on a closed
    descriptor, and the command says so in one line, exit 1."""
    src = str(panic_vmcore(tmp_path / "vmcore", "[    1.000000] Linux version 6.1.0\n"))
    r = subprocess.run([sys.executable, "-m", "kdumpctl_py",
                        *(src if a == "VMCORE" else a for a in argv)],
                       stdout=None, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                       preexec_fn=lambda: os.close(1),
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1:] == [
        "kdumpctl-py: error: cannot write standard output: it is closed; redirect it to a "
        "file, or to /dev/null to discard it"], r.stderr
    assert "Traceback" not in r.stderr



@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["status", "--help"]])
@pytest.mark.parametrize("stdout", ["/dev/full", "closed"])
def test_help_onto_a_full_or_closed_standard_output_is_one_line(argv: list[str],
                                                                 stdout: str) -> None:
    """Found by review: `--help > /dev/full` and `--version >&-` ended in a traceback of
    argparse writing the text, outside the handler of the command's own errors."""
    with open(os.devnull if stdout == "closed" else stdout, "w") as out:
        r = subprocess.run([sys.executable, "-m", "kdumpctl_py", *argv], stdout=out,
                           stderr=subprocess.PIPE, text=True,
                           preexec_fn=(lambda: os.close(1)) if stdout == "closed" else None,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    why = ("cannot write standard output: it is closed; redirect it to a file, or to "
           "/dev/null to discard it" if stdout == "closed" else "No space left on device")
    assert (r.returncode, r.stderr) == (1, f"kdumpctl-py: error: {why}\n")


def test_no_abbreviations(capsys: pytest.CaptureFixture[str]) -> None:
    """`analyse --debug VMCORE` is the global --debug, never --debug-dir (issue 23, item 6)."""
    args = build_parser().parse_args(["analyse", "--debug", "vmcore"])
    assert (args.debug, args.vmcore, args.debug_dirs) == (True, "vmcore", None)
    assert main(["analyse", "--debug-d", "x", "vmcore"]) == 2
    assert "unrecognized arguments: --debug-d" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["status", "--sysroot", "SNAP", "--debug"],
    ["--sysroot", "SNAP", "status", "--debug"],
    ["--debug", "status", "--sysroot", "SNAP"],
    ["config", "show", "--sysroot", "SNAP", "--debug"],
])
def test_global_options_anywhere(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.sysroot, args.debug) == ("SNAP", True)


def test_sub_command_keeps_the_global_sysroot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KDUMPCTL_SYSROOT", "ENV")
    assert build_parser().parse_args(["status"]).sysroot == "ENV"
    assert build_parser().parse_args(["--sysroot", "A", "status"]).sysroot == "A"
    assert build_parser().parse_args(["--sysroot", "A", "status", "--sysroot", "B"]).sysroot == "B"


def test_usage_error_has_no_traceback_with_debug(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--debug", "--no-such-option"]) == 2
    err = capsys.readouterr().err
    # The command's own help lists its options (found by the new-administrator sweep: it
    # pointed at the top-level help, which does not).
    assert err == ("kdumpctl-py: error: unrecognized arguments: --no-such-option "
                   "(see kdumpctl-py status --help)\n")
    assert main(["dtb", "show", "x", "extra"]) == 2
    assert capsys.readouterr().err.endswith("(see kdumpctl-py dtb show --help)\n")


@pytest.mark.parametrize(("argv", "named"), [
    (["save", "--vmcore", "x"], ("save",)),
    (["--debug", "--sysroot", "S", "capture"], ("capture",)),
    (["--sysroot=S", "config", "show"], ("config",)),
    (["--sysroot", "save", "status"], ("status",)),  # the value of --sysroot is no command
    (["--help"], COMMANDS),
    (["--version", "save"], COMMANDS),
    (["start", "--dry-run"], ("load",)),
    (["analyze", "vmcore"], ("analyse",)),
    (["no-such-command"], COMMANDS),
    ([], COMMANDS),
])
def test_a_command_line_builds_only_its_command(argv: list[str],
                                               named: tuple[str, ...]) -> None:
    assert invoked(argv) == named


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_other_names_are_the_commands_their_modules_register() -> None:
    for module in COMMANDS:
        names = set(_subcommands(build_parser([module])))
        assert names == {module} | {n for n, m in OTHER_NAMES.items() if m == module}
    assert set(_subcommands(build_parser())) == set(COMMANDS) | set(OTHER_NAMES)


def test_each_command_parses_and_helps_as_with_every_command(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    every = _subcommands(build_parser())
    for name, full in every.items():
        alone = _subcommands(build_parser([name]))[name]
        assert alone.format_help() == full.format_help(), name
    assert vars(build_parser(["save", "--threads", "1"]).parse_args(
        ["save", "--threads", "1"])) == vars(build_parser().parse_args(["save", "--threads", "1"]))


@pytest.mark.parametrize("command", ["save", "capture"])
def test_save_and_capture_import_no_other_command(command: str) -> None:
    """The capture initramfs holds only these commands' cli modules
    (tests/vm/harness/captureroot.py), and a save pays for no other parser, nor for
    shutil's compression libraries."""
    code = ("import sys; from kdumpctl_py.cli import build_parser; "
            f"build_parser([{command!r}, '--help']); "
            "print(sorted(m for m in sys.modules if m.startswith('kdumpctl_py.cli.')), "
            "'shutil' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == f"{[f'kdumpctl_py.cli.{command}']!r} False"


@pytest.mark.parametrize("columns", [None, "100", "0", "wide"])
def test_help_is_as_wide_as_shutil_says(monkeypatch: pytest.MonkeyPatch,
                                        columns: str | None) -> None:
    """The width is found without importing shutil (and with it bz2 and lzma)."""
    import shutil

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert terminal_columns() == shutil.get_terminal_size().columns


@pytest.mark.parametrize("argv", [
    ["save", "--vmcore", "/nonexistent", "--target", ""],
    ["reset-crashkernel", "--value", "", "--dry-run"],
    ["status", "--prometheus", ""],
    ["snapshot", ""],
    ["config", "check", ""],
    ["save", "--vmcore", "", "--target", "/nonexistent"],
    ["reassemble", "", "out"],
    ["reassemble", "/nonexistent", ""],
    ["dumps", ""],
    ["analyse", "/nonexistent", "--vmlinux", ""],
    ["analyse", "/nonexistent", "--debug-dir", ""],
    ["debuginfo", "find", "/nonexistent", "--vmlinux", ""],
    ["debuginfo", "find", "/nonexistent", "--debug-dir", ""],
    ["debuginfo", "fetch", "/nonexistent", "--cache", ""],
    ["dtb", "build", "--base", "", "--usable-range", "0+1M", "--elfcorehdr", "0+4K", "-o", "x"],
    ["dtb", "build", "--usable-range", "0+1M", "--elfcorehdr", "0+4K", "-o", ""],
    ["elfcorehdr", "build", "-o", ""],
    ["load", "--dry-run", "--kernel", ""],
    ["load", "--dry-run", "--initrd", ""],
    ["start", "--dry-run", "--dtb", ""],
    ["reset-crashkernel", "--kernel", "", "--dry-run"],
    ["install", "--prefix", "", "--dry-run"],
    ["install", "--bindir", "", "--dry-run"],
    ["initramfs", "build", "", "--dry-run"],
    ["capture", "--no-action", "--vmcore", "/nonexistent", "--target", ""],
    ["capture", "--no-action", "--vmcore", "", "--target", "dumps"],
], ids=lambda argv: "-".join(a.strip("-") for a in argv if a.startswith("-") or a.isalpha()))
def test_an_empty_path_or_value_is_bad_usage(argv: list[str], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the new-administrator sweep and by review (an unset "$VAR" gives ""): an
    empty --value wrote the default, --prometheus '' printed the status, config check ''
    checked the file in force, save --target '' said only 'No such file or directory',
    snapshot '' that '' already exists; reassemble FLAT '' wrote a file named
    '-incomplete' before failing, save --vmcore '' could not open '', dumps '' said ' is
    not a directory'; load --kernel '', --initrd '' and --dtb '' planned the defaults,
    reset-crashkernel --kernel '' the running kernel, analyse --vmlinux '' and
    --debug-dir '' searched as without them, dtb build --base '' read /sys/firmware/fdt
    and told to give --base, install --prefix '' wrote into the current directory,
    capture --target '' saved there, -o '' said `cannot write .`. Nothing is written."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KDUMPCTL_LOCK", str(tmp_path / "lock"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("kdumpctl-py: error: argument ") and "must not be empty" in err \
        and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())


def test_the_program_saves_without_the_cycle_collector(tmp_path: Path) -> None:
    """A save makes no cyclic garbage worth collecting (test_save: the same few objects
    whatever the dump), so its process runs without the collector, whose passes over
    numpy's objects while they are imported cost 9 ms of a 4 GiB machine's 0.27 s save.
    Only the passes while the program itself is imported come before it is stopped."""
    src, _ = make_vmcore(tmp_path)
    counting = ("import gc, sys\n"
                "gc.callbacks.append(lambda phase, info: phase == 'stop' and "
                "sys.stderr.write('collector pass\\n'))\n"
                "from kdumpctl_py.cli import program\n"
                "raise SystemExit(program())\n")
    out = subprocess.run([sys.executable, "-c", counting, "save", "--vmcore", str(src),
                          "--target", str(tmp_path / "out"), "--compress", "zlib",
                          "--dump-level", "1", "--no-progress"],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stderr.count("collector pass") <= 8, out.stderr  # 46 with it
