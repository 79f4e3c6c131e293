"""QEMU guestfwd's per-connection program: joins its standard input and output to
127.0.0.1:PORT, where the test's own server listens. Nothing else is reachable."""

from __future__ import annotations

import os
import socket
import sys
import threading


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def main() -> int:
    conn = socket.create_connection(("127.0.0.1", int(sys.argv[1])))

    def guest_to_server() -> None:
        while data := os.read(0, 65536):
            conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)

    threading.Thread(target=guest_to_server, daemon=True).start()
    while data := conn.recv(65536):
        _write_all(1, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
