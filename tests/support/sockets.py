"""Socket helpers shared by the simulators."""

from __future__ import annotations

import select
import socket


def peer_closed(conn: socket.socket) -> bool:
    """Whether the peer has closed its side (readable with nothing to read); never blocks."""
    readable, _, _ = select.select([conn], [], [], 0)
    if not readable:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
