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


class Proxy:
    """A real proxy on loopback that records the targets it opened tunnels to: HTTP CONNECT
    (``kind="http"``) or SOCKS5 (``kind="socks5"``, no authentication or user/password). Only
    tunnels to loopback are opened; ``close()`` stops it."""

    def __init__(self, kind: str = "http", credentials: tuple[str, str] | None = None):
        self.kind, self.credentials = kind, credentials
        self.tunnels: list[str] = []
        self.auth: list[str] = []  # Proxy-Authorization values / SOCKS5 user names seen
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"{kind}://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        stop(self._listener)

    def _serve(self) -> None:
        while True:
            try:
                client, _unused = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        try:
            host, port = self._socks5(client) if self.kind == "socks5" else self._connect(client)
        except (OSError, ValueError):
            client.close()
            return
        if not host.startswith("127."):
            client.close()
            return
        self.tunnels.append(f"{host}:{port}")
        upstream = socket.create_connection((host, port), timeout=10)
        if self.kind == "socks5":
            client.sendall(b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1") + b"\x00\x00")
        else:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()

    def _connect(self, client: socket.socket) -> tuple[str, int]:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                raise OSError("closed")
            head += chunk
        lines = head.decode().split("\r\n")
        self.auth += [line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("proxy-authorization:")]
        host, port = lines[0].split(" ")[1].rsplit(":", 1)
        return host.strip("[]"), int(port)

    def _socks5(self, client: socket.socket) -> tuple[str, int]:
        def take(count):
            data = b""
            while len(data) < count:
                chunk = client.recv(count - len(data))
                if not chunk:
                    raise OSError("closed")
                data += chunk
            return data

        _version, count = take(2)
        methods = take(count)
        if self.credentials:
            if 2 not in methods:
                client.sendall(b"\x05\xff")
                raise OSError("no user/password method offered")
            client.sendall(b"\x05\x02")
            _v, ulen = take(2)
            user = take(ulen).decode()
            password = take(take(1)[0]).decode()
            self.auth.append(user)
            ok = (user, password) == self.credentials
            client.sendall(b"\x01" + (b"\x00" if ok else b"\x01"))
            if not ok:
                raise OSError("bad credentials")
        else:
            client.sendall(b"\x05\x00")
        _v, _cmd, _rsv, kind = take(4)
        if kind == 1:
            host = socket.inet_ntoa(take(4))
        elif kind == 3:
            host = take(take(1)[0]).decode()
        else:
            host = socket.inet_ntop(socket.AF_INET6, take(16))
        return host, int.from_bytes(take(2), "big")


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
