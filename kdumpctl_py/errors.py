"""The two kinds of failure a user can meet, each shown as one line.

Everything the CLI catches is turned into `kdumpctl-py: error: <message>`; the
exception class decides the exit status, so code deep inside a planner never
has to know about exit codes or printing.
"""


class KdumpError(Exception):
    """Something failed that the user can act on (exit status 1)."""

    exit_code = 1


class UsageError(KdumpError):
    """Bad usage or bad input: a wrong option, a malformed value or file (exit status 2)."""

    exit_code = 2
