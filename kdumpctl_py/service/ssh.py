"""Dumps on an ssh server: the commands (pure), and the save that runs them.

Every connection is `ssh -i KEY -o BatchMode=yes`: never a password or a
prompt, bounded by a connect timeout and keep-alives, host keys checked
against `known_hosts` beside the key (/root/.ssh/known_hosts for the default
key). Remote commands are POSIX sh lines with every name quoted. The dump is
compressed here and streamed in makedumpfile's flattened format into
`PATH/HOST-DATE/vmcore-incomplete` (after vmcore-dmesg.txt, before
save.json); only when ssh and the remote `cat` both succeeded and the size
there is the size sent does it become `vmcore.flat`, which `kdumpctl-py
reassemble` turns into `vmcore` on the server when kdumpctl-py is installed
there.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, BinaryIO, cast

from kdumpctl_py.capture.dumpdir import DMESG, TargetError, dmesg_text, dump_name
from kdumpctl_py.capture.record import NAME as RECORD_NAME
from kdumpctl_py.capture.record import (
    Attempt,
    SaveRecord,
    parse_record,
    record_says_incomplete,
)
from kdumpctl_py.capture.sink import FLAT_HEADER_SIZE, FLAT_RECORD
from kdumpctl_py.config.model import SshTarget, known_hosts
from kdumpctl_py.errors import KdumpError
from kdumpctl_py.journal import warn
from kdumpctl_py.service import retention
from kdumpctl_py.service.target import ROUTE_WAIT_S

if TYPE_CHECKING:
    from kdumpctl_py.capture.save import SaveOptions

CONNECT_TIMEOUT_S = 20
ALIVE_INTERVAL_S = 10
ALIVE_COUNT = 3
COMMAND_TIMEOUT_S = 120
# The one call after SIGTERM, save.json saying why nothing was saved: on a dead network
# COMMAND_TIMEOUT_S outlasts systemd's stop timeout (90 s by default), whose SIGKILL
# would end the service before it reports the interruption.
AFTER_INTERRUPT_TIMEOUT_S = 10
REASSEMBLE_TIMEOUT_S = 3600
STDERR_KEPT = 64 << 10  # of ssh's stderr while streaming: the end, where its last line is
# A write to the stream blocked this long: the server is alive (ServerAlive would have
# ended a dead connection) but no longer reads the dump, as with a hung disk there.
STALL_S = 300


def ssh_argv(target: SshTarget, key: str, command: str) -> list[str]:
    """ssh with the key only, no prompt, bounded waits; `command` runs in the remote shell."""
    argv = ["ssh", "-T", "-i", key, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
            "-o", f"ServerAliveInterval={ALIVE_INTERVAL_S}",
            "-o", f"ServerAliveCountMax={ALIVE_COUNT}",
            "-o", f"UserKnownHostsFile={known_hosts(key)}", "-l", target.user]
    if target.port:
        argv += ["-p", str(target.port)]
    return argv + ["--", target.host, command]


def key_problem(key: str) -> str | None:
    """Why ssh cannot use the key file at all, which ssh itself reports only as the server
    refusing it (`Permission denied (publickey)`): missing, open to others (ssh ignores
    it), or with a passphrase nobody can type in the capture kernel. None: none of these,
    or ssh-keygen is not there to tell."""
    try:
        st = os.stat(key)
    except OSError as e:
        return f"the key {key} cannot be read ({e.strerror}); kdumpctl-py propagate makes one"
    if st.st_uid == os.geteuid() and st.st_mode & 0o077:
        return (f"the key {key} is open to others (mode {st.st_mode & 0o777:04o}), so ssh "
                f"ignores it: chmod 600 {key}")
    try:
        r = subprocess.run(["ssh-keygen", "-y", "-P", "", "-f", key], capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0 and b"passphrase" in r.stderr:
        return (f"the key {key} has a passphrase, which nobody can type in the capture "
                f"kernel: remove it with ssh-keygen -p -N '' -f {key}")
    return None


def keygen_argv(key: str) -> list[str]:
    """An ed25519 key without a passphrase: the capture kernel has nobody to type one."""
    return ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
            f"kdumpctl-py@{socket.gethostname()}", "-f", key]


def install_command(public: str) -> str:
    """Add the public key to ~/.ssh/authorized_keys unless it is there, as ssh-copy-id
    does (a missing final newline is added first)."""
    q = shlex.quote(public)
    return ('cd "$HOME" && umask 077 && mkdir -p .ssh && touch .ssh/authorized_keys && '
            f"if ! grep -qxF {q} .ssh/authorized_keys; then "
            '{ [ -z "$(tail -c1 .ssh/authorized_keys)" ] || echo; '
            f"printf '%s\\n' {q}; }} >> .ssh/authorized_keys; fi")


def install_key_argv(target: SshTarget, key: str, public: str) -> list[str]:
    """ssh as the user would log in (password or agent, asked once), recording the
    server's host key beside the key, running install_command."""
    argv = ["ssh", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
            "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"UserKnownHostsFile={known_hosts(key)}", "-l", target.user]
    if target.port:
        argv += ["-p", str(target.port)]
    return argv + ["--", target.host, install_command(public)]


def where(target: SshTarget, path: str = "") -> str:
    """How people see a remote directory: user@host:/path; the server itself: user@host."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{target.user}@{host}" + (f":{path}" if path else "")


def mkdir_command(path: str, name: str) -> str:
    """Create PATH, then a fresh dump directory NAME (NAME-1, ... when taken); print it.
    mkdir itself says whether a name is taken, as make_dump_dir's does on a local disk: a
    test before it would let two machines of one name, crashed in the same second, both
    pick the same name, and the second's mkdir fail its save."""
    q = shlex.quote
    full = q(f"{path} already holds 100 dumps named {name}")
    return (f"mkdir -p -m 0700 -- {q(path)} && cd -- {q(path)} && d={q(name)} && i=0 && "
            'while ! e=$(mkdir -m 0700 -- "$d" 2>&1); do '
            '{ [ -e "$d" ] || [ -L "$d" ]; } || { printf "%s\\n" "$e" >&2; exit 1; }; '
            f'i=$((i+1)); [ $i -lt 100 ] || {{ printf "%s\\n" {full} >&2; exit 1; }}; '
            f'd={q(name)}-$i; done && printf "%s\\n" "$d"')


def write_command(directory: str, name: str) -> str:
    """Standard input into DIR/NAME, through NAME.tmp and a rename; NAME.tmp is removed
    when that fails (a full disk)."""
    q = shlex.quote
    tmp = q(name + ".tmp")
    return (f"cd -- {q(directory)} && {{ cat > {tmp} && sync {tmp} && "
            f"mv -f -- {tmp} {q(name)} || {{ rm -f -- {tmp}; exit 1; }}; }}")


def stream_command(directory: str) -> str:
    return f"cat > {shlex.quote(directory + '/vmcore-incomplete')}"


def finish_command(directory: str, size: int, complete: bool = True) -> str:
    """vmcore-incomplete becomes vmcore.flat only when it holds every byte sent; then
    reassembled into vmcore by the server's kdumpctl-py when there is one. A dump that
    lacks pages it could not read keeps -incomplete in both names, as `save` leaves it.
    Prints what the directory holds: vmcore or vmcore.flat (with -incomplete)."""
    q = shlex.quote
    tail = "" if complete else "-incomplete"
    flat, whole = f"vmcore.flat{tail}", f"vmcore{tail}"
    short = f'vmcore-incomplete holds $n of the {size} bytes sent'
    return (f"cd -- {q(directory)} && n=$(wc -c < vmcore-incomplete) && "
            f'{{ [ "$n" -eq {size} ] || {{ echo "{short}" >&2; exit 1; }}; }} && '
            f"sync vmcore-incomplete && mv -- vmcore-incomplete {flat} && sync . && "
            "if command -v kdumpctl-py >/dev/null 2>&1; then "
            f"if kdumpctl-py reassemble {flat} {whole} >&2; then "
            f"rm -f -- {flat} && sync . && echo {whole}; "
            f"else rm -f -- {whole}-incomplete; echo {flat}; fi; "
            f"else echo {flat}; fi")


RECORD_READ = 64 << 10  # of each save.json the listing carries: a record is a few KiB


def list_command(path: str) -> str:
    """Every entry one level and two levels under PATH: type (l, d or f), a space, the
    relative name; then each DIR/save.json as `j DIR/` and its first RECORD_READ bytes
    (NULs dropped), so that retention judges hundreds of dumps in one ssh call. Each entry
    ends in a NUL. Only sh's globs and tests, not `find -printf`, which BusyBox and BSD
    servers lack; hidden names are not listed, and a dump's never is.
    The kdump header's unfinished mark, which a local disk's rule also reads, is not
    read (a read of every dump file): over ssh a dump is named complete only once the
    server holds every byte sent (finish_command)."""
    return (f"cd -- {shlex.quote(path)} 2>/dev/null || exit 0; "
            'for e in * */*; do if [ -L "$e" ]; then t=l; elif [ -d "$e" ]; then t=d; '
            'elif [ -e "$e" ]; then t=f; else continue; fi; '
            "printf '%s %s\\0' \"$t\" \"$e\"; done; "
            f'for f in */{RECORD_NAME}; do [ -f "$f" ] || continue; '
            'printf \'j %s/\' "${f%/*}"; '
            f"head -c {RECORD_READ} -- \"$f\" | tr -d '\\000'; printf '\\0'; done")


def dumps_from_listing(listing: bytes) -> list[retention.Dump]:
    """`list_command`'s output as retention's dumps: real directories only, never links;
    a `vmcore` whose save.json says it is not whole is incomplete, as on a local disk."""
    dirs: set[str] = set()
    files: dict[str, set[str]] = {}
    records: dict[str, bytes] = {}
    for entry in listing.split(b"\0"):
        kind, _, rest = entry.partition(b" ")
        top, slash, inner = rest.partition(b"/")
        name = top.decode("utf-8", "surrogateescape")
        if kind == b"j":
            records[name] = inner
        elif not slash and kind == b"d":
            dirs.add(name)
        elif slash:
            files.setdefault(name, set()).add(inner.decode("utf-8", "surrogateescape"))
    return retention.dumps_in({d: files.get(d, set()) for d in dirs},
                              lambda name: record_says_incomplete(
                                  parse_record(records.get(name, b""))))


class RemoteError(TargetError):
    """ssh or the server failed: saving again there, with less filtering, would too."""


@dataclass
class Remote:
    """Runs the commands of one ssh target; errors carry ssh's or the server's last line."""

    target: SshTarget
    key: str
    route_wait: float = ROUTE_WAIT_S

    def wait_for_server(self) -> None:
        """Until the server's port answers, at most `route_wait` seconds."""
        deadline = time.monotonic() + self.route_wait
        while True:
            try:
                socket.create_connection((self.target.host, self.target.port or 22),
                                         timeout=5).close()
                return
            except OSError as e:
                if time.monotonic() >= deadline:
                    raise RemoteError(f"ssh {self.where()}: the server did not answer in "
                                     f"{self.route_wait:.0f} s: {e.strerror or e}") from None
                time.sleep(1)

    def run(self, command: str, data: bytes = b"", timeout: float = COMMAND_TIMEOUT_S) -> bytes:
        argv = ssh_argv(self.target, self.key, command)
        try:
            r = subprocess.run(argv, input=data, capture_output=True, timeout=timeout,
                               check=False)
        except subprocess.TimeoutExpired:
            raise RemoteError(f"ssh {self.where()}: no answer in {timeout:.0f} s") from None
        if r.returncode != 0:
            why = _last_line(r.stderr, r.returncode) if r.stderr.strip() else (
                # every command here says why it fails: this is a shell that ran none
                f"the server exited {r.returncode} saying nothing: is the login shell of "
                f"{self.target.user} there a POSIX shell (not /bin/false or nologin)?")
            # a key ssh could not use reads as one the server refused
            problem = key_problem(self.key) if "Permission denied" in why else None
            raise RemoteError(f"ssh {self.where()}: "
                              + (f"{why.rstrip('.')}: {problem}" if problem else why))
        return r.stdout

    def where(self, path: str = "") -> str:
        return where(self.target, path)

    def stream(self, directory: str) -> tuple[subprocess.Popen[bytes], StderrTail]:
        proc = subprocess.Popen(ssh_argv(self.target, self.key, stream_command(directory)),
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        assert proc.stderr is not None
        return proc, StderrTail(proc.stderr)


class StderrTail:
    """ssh's stderr read while the dump streams, only its last STDERR_KEPT bytes kept.
    Unread, a chatty server (a shell's startup file, warnings) fills the pipe, ssh stops
    reading the stream and the save blocks for ever; an error quotes only the last line."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self.data = b""
        self._pipe = pipe
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(self._pipe.fileno(), 1 << 16):
                self.data = (self.data + chunk)[-STDERR_KEPT:]

    def text(self, timeout: float = 10) -> bytes:
        """What was kept, once ssh has closed its stderr (exited), or after `timeout`."""
        self._thread.join(timeout)
        return self.data


class WatchedStream:
    """The stream to ssh, each write timed: one blocked STALL_S kills ssh, so the write
    fails (EPIPE) and the chain goes on to its failure action, instead of the capture
    kernel waiting for ever on a server that stopped reading. Time spent between writes
    (filtering a TiB before the first page is sent) is not a stall. A write cut short by
    anything but the stream's own failure (SIGTERM's Interrupted) kills ssh at once: the
    save is over, and closing the dump as incomplete must not wait on a stalled server."""

    def __init__(self, stream: IO[bytes], proc: subprocess.Popen[bytes]) -> None:
        self.stalled = False
        self._stream, self._proc = stream, proc
        self._since: float | None = None
        self._done = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def _timed(self, op: Callable[[], int | None]) -> int | None:
        self._since = time.monotonic()
        try:
            return op()
        except OSError:
            raise
        except BaseException:
            self._proc.kill()
            raise
        finally:
            self._since = None

    def write(self, data: bytes | memoryview) -> int | None:
        return self._timed(lambda: self._stream.write(data))

    def flush(self) -> None:
        self._timed(self._stream.flush)

    def close(self) -> None:
        """Close the stream (its last bytes written, timed as any write), and the watch."""
        try:
            self._timed(self._stream.close)
        finally:
            self._done.set()

    def _watch(self) -> None:
        while not self._done.wait(1):
            since = self._since
            if since is not None and time.monotonic() - since > STALL_S:
                self.stalled = True
                self._proc.kill()
                return


def _stalled(stream: WatchedStream) -> str:
    return f"the server took no data for {STALL_S} s" if stream.stalled else ""


def _last_line(stderr: bytes, rc: int) -> str:
    lines = [ln for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else f"exit status {rc}"


@dataclass
class RemoteDump:
    directory: str  # on the server
    vmcore: str  # vmcore or vmcore.flat
    bytes_sent: int
    record: SaveRecord | None = None  # save.json, also written beside the dump there


class AttemptFailed(KdumpError):
    """Saving failed here (not ssh, not the server); `directory` on the server holds what
    the attempt left."""

    def __init__(self, message: str, directory: str) -> None:
        super().__init__(message)
        self.directory = directory


class AttemptInterrupted(AttemptFailed):
    """SIGTERM or SIGINT ended the attempt: it ends the chain, as capture.fallback's does."""


def save_over_ssh(remote: Remote, path: str, vmcore: str, options: SaveOptions,
                  how: str = "", failed: list[Attempt] | None = None) -> RemoteDump:
    """The dump under PATH on the server, compressed here and streamed flattened; its
    record (save.json) is made, and written by the caller."""
    from dataclasses import replace

    from kdumpctl_py.capture.save import IncompleteDump, Interrupted, save_vmcore
    from kdumpctl_py.capture.vmcore import Vmcore

    started = time.monotonic()
    with Vmcore(vmcore, partial=True) as v:
        name, dmesg = dump_name(v), dmesg_text(v)
    remote.wait_for_server()
    created = remote.run(mkdir_command(path, name)).decode().strip()
    if not created or "/" in created:
        raise RemoteError(f"ssh {remote.where(path)}: no dump directory was created")
    directory = f"{path.rstrip('/')}/{created}"
    # The log first, as on a local disk: it survives a stream that breaks.
    remote.run(write_command(directory, DMESG), dmesg.encode())
    proc, tail = remote.stream(directory)
    assert proc.stdin is not None
    stream = WatchedStream(proc.stdin, proc)
    try:
        result = save_vmcore(vmcore, "-", replace(options, flat=True, check_space=False),
                             cast(BinaryIO, stream))
    except IncompleteDump as e:  # unreadable pages: the stream is whole and says so
        result = e.result
    except BaseException as e:
        # SIGTERM (sent to ssh too by systemd), the stream broke (ssh gone, EPIPE), or the
        # attempt failed here (a read of the vmcore, the filter): only the last goes on
        interrupted = not isinstance(e, Exception) or isinstance(e, Interrupted)
        broken = (isinstance(e, OSError) and e.errno == errno.EPIPE) or proc.poll() is not None
        proc.kill()
        proc.wait()
        with contextlib.suppress(OSError):
            stream.close()
        if interrupted:
            raise AttemptInterrupted(f"interrupted; {remote.where(directory)}/vmcore-incomplete "
                                     "holds an incomplete dump", directory) from None
        err = tail.text()
        if broken:
            raise RemoteError(f"streaming to {remote.where(directory)} broke "
                              f"({_stalled(stream) or _last_line(err, proc.returncode)}; {e}); "
                              "vmcore-incomplete there is not a whole dump") from None
        text = str(e) if isinstance(e, KdumpError) else f"{type(e).__name__}: {e}"
        raise AttemptFailed(text, directory) from e
    try:
        with contextlib.suppress(BrokenPipeError):  # ssh gone: its status says why
            stream.close()
        proc.wait(timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise RemoteError(f"ssh {remote.where(directory)} did not finish after the stream; "
                          "vmcore-incomplete there is not known to be whole") from None
    err = tail.text()
    if proc.returncode != 0:
        raise RemoteError(f"streaming to {remote.where(directory)} failed "
                          f"({_stalled(stream) or _last_line(err, proc.returncode)}); "
                          "vmcore-incomplete there is not a whole dump")
    sent = FLAT_HEADER_SIZE + result.bytes_out + FLAT_RECORD.size
    if result.lost:  # listed first, as settle lists them, before the dump is named
        remote.run(write_command(directory, "unreadable-pages.txt"), result.lost_text.encode())
    kept = remote.run(finish_command(directory, sent, result.complete),
                      timeout=REASSEMBLE_TIMEOUT_S)
    dump = RemoteDump(directory, kept.decode().strip()
                      or ("vmcore.flat" if result.complete else "vmcore.flat-incomplete"), sent)
    dump.record = SaveRecord(
        options.dump_level, result.dump_level, how or f"at -d {options.dump_level} over ssh",
        "flat" if dump.vmcore.startswith("vmcore.flat") else options.format,
        options.compress if options.format == "kdump" else "none", result.complete,
        round(time.monotonic() - started, 3), sent, dump.vmcore, list(failed or []),
        warnings=list(result.stats.warnings))
    return dump


def save_with_fallback_over_ssh(remote: Remote, path: str, vmcore: str,
                                options: SaveOptions) -> RemoteDump:
    """capture.fallback's chain over ssh: less and less filtering until a dump is
    written, the plain copy as an unfiltered ELF stream; ssh or the server failing
    (RemoteError) ends it. A failed attempt's directory goes once one succeeds, then
    save.json is written beside the dump."""
    from dataclasses import replace

    from kdumpctl_py.capture.fallback import SaveFailed, plan_steps

    failed: list[Attempt] = []
    for step in plan_steps(options):
        attempt = step.options or replace(options, format="elf", compress="none",
                                          dump_level=0, struct_pages=False)
        how = f"{step.how} over ssh"
        try:
            dump = save_over_ssh(remote, path, vmcore, attempt, how, failed)
        except AttemptFailed as e:
            failed.append(Attempt(step.how, attempt.dump_level if step.options else None,
                                  str(e), e.directory))
            if isinstance(e, AttemptInterrupted):  # recorded there, as on a local disk
                with _sigterm_absorbed():
                    where = _record_failure(remote, options, failed, AFTER_INTERRUPT_TIMEOUT_S)
                if where is None:
                    raise AttemptInterrupted(f"{e}; {RECORD_NAME} could not be written there",
                                             e.directory) from None
                raise
            warn(f"saving {how} failed: {e}")
            continue
        left = [a.directory for a in failed if a.directory]
        if left:
            try:
                remote.run("rm -rf -- " + " ".join(shlex.quote(d) for d in left))
                for a in failed:
                    a.removed = bool(a.directory)
            except RemoteError as e:  # the dump is saved; what is left is only clutter
                warn(str(e))
        assert dump.record is not None
        try:
            remote.run(write_command(dump.directory, RECORD_NAME),
                       dump.record.to_json().encode())
        except RemoteError as e:  # the dump is whole: a missing record is only a warning
            warn(f"{RECORD_NAME} not written: {e}")
        return dump
    where = _record_failure(remote, options, failed)
    raise SaveFailed("no dump could be written: " + "; ".join(
        f"{a.how}: {a.error}" for a in failed)
        + (f" (recorded in {remote.where(where)})" if where else ""), failed)


@contextlib.contextmanager
def _sigterm_absorbed() -> Iterator[None]:
    """SIGTERM again while the interruption is recorded, a call bounded by
    AFTER_INTERRUPT_TIMEOUT_S, asks for what is already under way: absorbed, so that
    the default action does not kill the program before it says where the dump is."""
    old = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _record_failure(remote: Remote, options: SaveOptions, failed: list[Attempt],
                    timeout: float = COMMAND_TIMEOUT_S) -> str | None:
    """save.json (saved false) in the last failed attempt's directory on the server, as
    capture.fallback leaves one on a local disk; its path, or None."""
    left = [a.directory for a in failed if a.directory]
    if not left:
        return None
    record = SaveRecord(options.dump_level, None, "not saved", "none", "none", False, 0.0, 0,
                        "", failed, saved=False)
    try:
        remote.run(write_command(left[-1], RECORD_NAME), record.to_json().encode(), timeout)
    except RemoteError as e:
        warn(f"no dump was saved, and {RECORD_NAME} could not be written either: {e}")
        return None
    return f"{left[-1]}/{RECORD_NAME}"


def apply_retention(remote: Remote, path: str, keep: int,
                    saved: str | None = None) -> retention.Retention:
    """retention.plan over the server's listing: only complete dump directories go, never
    the one just `saved`."""
    result = retention.plan(dumps_from_listing(remote.run(list_command(path))), keep, saved)
    if result.deleted:
        names = " ".join(shlex.quote(n) for n in result.deleted)
        remote.run(f"cd -- {shlex.quote(path)} && rm -rf -- {names}")
    return result
