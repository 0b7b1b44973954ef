"""Real network endpoints for tests: free ports, TCP listeners on loopback addresses."""

from __future__ import annotations

import socket
import threading

from tests.testbed import ports


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (DNS servers take both)."""
    return ports.free_port(udp=True)


def listening(address: str, port: int) -> socket.socket:
    """A TCP listener on address:port that accepts and closes every connection."""
    sock = socket.create_server((address, port))

    def accept():
        while True:
            try:
                conn, _unused = sock.accept()
                conn.close()
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return sock


def stop(sock: socket.socket) -> None:
    """Stop listening now (close alone leaves a listener blocked in accept answering)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
