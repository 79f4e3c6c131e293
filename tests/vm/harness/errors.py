"""The harness's exceptions: each carries what a person needs to act on it."""

from __future__ import annotations


class HarnessError(Exception):
    """A host-side step failed (download, build, QEMU start); not the guest's fault."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\n  hint: {self.hint}"


class StageError(HarnessError):
    """A guest stage did not complete: failed, timed out, or the guest went away.

    `stage` names the stage from the stage table, `kind` is one of "failed",
    "timeout" or "lost" (QEMU exited without the stage's marker), `console_tail`
    is the end of the serial console when it happened.
    """

    def __init__(self, stage: str, kind: str, detail: str, console_tail: str) -> None:
        super().__init__(f"stage {stage!r} {kind}: {detail}")
        self.stage = stage
        self.kind = kind
        self.detail = detail
        self.console_tail = console_tail

    def __str__(self) -> str:
        return (
            f"{self.message}\n"
            f"---- last lines of the console ----\n{self.console_tail}\n"
            f"---- end of console ----"
        )
