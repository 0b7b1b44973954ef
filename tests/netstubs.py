"""Real network endpoints for tests: free ports, TCP listeners on loopback addresses."""

from __future__ import annotations

import socket
import threading


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (DNS servers take both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                    return port
                except OSError:
                    continue


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
