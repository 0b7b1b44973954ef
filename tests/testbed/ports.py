"""Ports for the test processes, taken below the kernel's ephemeral range.

A port the kernel hands out for ``bind(0)`` comes from the same range it uses for the source
port of every outgoing connection: between choosing it and the server binding it, an
apiserver's connection to etcd can take it (CI saw kwok fail with "address already in use").
Ports below that range are never taken implicitly, so only another test process can race for
one: each pick is random, checked free, and never handed out twice by this process.
"""

from __future__ import annotations

import random
import socket
import threading

_LOWEST = 10000
_taken: set[int] = set()
_lock = threading.Lock()


def _ephemeral_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(address: str, port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's listeners do
        try:
            sock.bind((address, port))
            return True
        except OSError:
            return False


def port_free(port: int, address: str = "127.0.0.1") -> bool:
    """True when a TCP server could listen on address:port now."""
    return _bindable(address, port, socket.SOCK_STREAM)


def free_port(address: str = "127.0.0.1", udp: bool = False) -> int:
    """A TCP port (and UDP too with ``udp``) free on ``address``, outside the ephemeral range."""
    highest = max(_ephemeral_start(), _LOWEST + 1000)
    kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM) if udp else (socket.SOCK_STREAM,)
    with _lock:
        for _attempt in range(1000):
            port = random.randrange(_LOWEST, highest)
            if port not in _taken and all(_bindable(address, port, kind) for kind in kinds):
                _taken.add(port)
                return port
    raise RuntimeError(f"no free port on {address} between {_LOWEST} and {highest}")
