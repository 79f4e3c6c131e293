"""kdumpctl-py.conf(5), written from the settings table.

`python -m kdumpctl_py.config.man > man/kdumpctl-py.conf.5` regenerates the page;
a test fails when the committed page and the table differ.
"""

from __future__ import annotations

import textwrap

from kdumpctl_py.config.settings import DEFAULT_PATH, ENV_PATH, FEDORA_IGNORED, SETTINGS

IGNORED = ",\n".join(FEDORA_IGNORED)

HEAD = rf""".\" Generated from kdumpctl_py/config/settings.py by kdumpctl_py/config/man.py.
.\" Edit the table there, then: python -m kdumpctl_py.config.man > man/kdumpctl-py.conf.5
.TH KDUMPCTL\-PY.CONF 5 2026-11-26 kdumpctl\-py "File Formats"
.SH NAME
kdumpctl\-py.conf \- configuration of kdumpctl\-py
.SH SYNOPSIS
.I {DEFAULT_PATH}
.SH DESCRIPTION
The configuration of
.BR kdumpctl\-py (8),
in the directive syntax of Fedora's
.IR kdump.conf :
one directive per line, followed by its arguments.
Arguments are split as a shell splits words: quotes group, a backslash escapes,
and a word starting with
.B #
starts a comment.
Nothing is run through a shell.
.PP
A missing
.I {DEFAULT_PATH}
means the defaults.
The environment variable
.B {ENV_PATH}
names another file, which must exist; with
.B \-\-sysroot
the file is read under that root.
A directive given twice (other than
.B cmdline_append
and
.BR cmdline_remove ),
an unknown directive, or a malformed value is an error naming the file and line;
.B kdumpctl\-py config check
reports it without acting.
Fedora's directives that only shape Fedora's own kdump initramfs or boot loader
({IGNORED})
are ignored with a warning, so that Fedora's stock
.I kdump.conf
loads as it is; its raw and virtiofs targets, fence_kdump_args,
fence_kdump_nodes, kdump_emergency and default are errors.
.SH DIRECTIVES
"""

TAIL = r""".SH EXAMPLES
Save zstd-compressed dumps on a separate file system, keep the newest three, and
tell a monitoring script the outcome:
.PP
.RS
.nf
ext4 LABEL=crash
path /dumps
core_collector makedumpfile \-z \-d 31
keep 3
kdump_post /usr/local/sbin/report\-dump
failure_action dump_to_rootfs
.fi
.RE
.SH SEE ALSO
.BR kdumpctl\-py (8),
.BR kdump.conf (5),
.BR makedumpfile (8)
"""


def _roff(text: str) -> str:
    """Escape text for a roff line: hyphens that are not minus signs stay plain."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def render_man() -> str:
    parts = [HEAD]
    for s in SETTINGS:
        names = "|".join(s.names)
        parts.append(f".TP\n.BI \"{_roff(names)} \" \"{_roff(s.syntax)}\"\n")
        parts.append(_sentences(s.doc))
        parts.append(f"Default: {_roff(s.default)}.\n")
        if s.options:
            parts.append(_sentences(f"Overridden by {', '.join(s.options)}."))
    parts.append(TAIL)
    return "".join(parts)


def _sentences(doc: str) -> str:
    """One sentence a line, as roff wants (a new line after each full stop)."""
    out = []
    for sentence in doc.replace(". ", ".\n").splitlines():
        out += [_roff(piece) for piece in textwrap.wrap(sentence.strip(), 72,
                                                        break_on_hyphens=False)]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render_man(), end="")
