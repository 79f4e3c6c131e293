"""Does an OpenSSH known_hosts file hold a key for a host? The capture kernel's ssh
runs with BatchMode, so a server it has no key for is a refused connection.

Plain and hashed entries (HashKnownHosts, Debian's default: `|1|salt|HMAC-SHA1`)
and wildcard patterns are read; a host on a port other than 22 is `[host]:port`,
as ssh writes it. `@revoked` lines and negated patterns never count.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re


def host_name(host: str, port: int | None) -> str:
    """How known_hosts names the host."""
    return f"[{host}]:{port}" if port and port != 22 else host


def _matches(pattern: str, name: str) -> bool:
    if pattern.startswith("|1|"):
        try:
            salt, digest = (base64.b64decode(p) for p in pattern[3:].split("|", 1))
        except (ValueError, binascii.Error):
            return False
        return hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), digest)
    return _wildcard(pattern).fullmatch(name.lower()) is not None


def _wildcard(pattern: str) -> re.Pattern[str]:
    """ssh's own pattern: `*` and `?` only. Not fnmatch's, whose `[...]` is a character
    class: `[host]:2222`, how ssh names a host on another port, would never match."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                              for c in pattern.lower()), re.DOTALL)


def knows_host(text: str, name: str) -> bool:
    """Whether a line of `text` holds a key for `name` (see host_name)."""
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0].startswith("@"):
            if fields[0] == "@revoked":
                continue
            fields = fields[1:]
        if len(fields) < 3:
            continue
        patterns = fields[0].split(",")
        if any(p.startswith("!") and _matches(p[1:], name) for p in patterns):
            continue
        if any(not p.startswith("!") and _matches(p, name) for p in patterns):
            return True
    return False
