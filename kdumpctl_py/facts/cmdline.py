"""Kernel command lines split the way the kernel's next_arg() splits them."""

from __future__ import annotations


def split_cmdline(cmdline: str) -> list[str]:
    """Words of a kernel command line; double quotes group spaces and are dropped."""
    words: list[str] = []
    word: list[str] = []
    quoted = False
    started = False
    for ch in cmdline:
        if ch == '"':
            quoted = not quoted
            started = True
        elif ch.isspace() and not quoted:
            if started:
                words.append("".join(word))
            word, started = [], False
        else:
            word.append(ch)
            started = True
    if started:
        words.append("".join(word))
    return words


def param_values(cmdline: str, name: str) -> list[str]:
    """Every value given to `name=` on the line, in order (the kernel uses the last)."""
    prefix = name + "="
    return [w[len(prefix):] for w in split_cmdline(cmdline) if w.startswith(prefix)]
