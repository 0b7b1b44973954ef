"""The data plane's helper process: ports that answer inside pod namespaces, each node
namespace's way to its API server, and probes from any namespace.

A socket stays in the network namespace it was made in, so one process serves and probes all
the namespaces: its main thread enters a namespace (setns) only to make a socket there and
returns at once; every other thread stays in the machine's namespace. Driven by JSON lines on
stdin, one JSON line answered on stdout per command; stopped by pid with the rest of the data
plane (its sockets go with it).

Run as ``python -m tests.testbed.netagent``; the protocol is DataPlane's (dataplane.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import selectors
import socket
import sys
import threading
import time

CLONE_NEWNET = 0x40000000
_LIBC = ctypes.CDLL(None, use_errno=True)
# The namespace the agent started in (the main thread's at start): every setns returns here.
HOME = os.open("/proc/self/ns/net", os.O_RDONLY)
SOCKET_TYPES = {"TCP": socket.SOCK_STREAM, "UDP": socket.SOCK_DGRAM}


def _setns(fd: int, what: str) -> None:
    if _LIBC.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns into {what}: {os.strerror(code)}")


class Namespaces:
    """Open handles of the namespaces in use, so a probe run enters each by a kept fd."""

    def __init__(self):
        self.fds: dict[str, int] = {}

    @contextlib.contextmanager
    def inside(self, path: str):
        if path not in self.fds:
            self.fds[path] = os.open(path, os.O_RDONLY)
        _setns(self.fds[path], path)
        try:
            yield
        finally:
            try:
                _setns(HOME, "the agent's own namespace")
            except OSError:
                os._exit(70)  # never go on making sockets in a namespace not meant for them

    def drop(self, path: str) -> None:
        fd = self.fds.pop(path, None)
        if fd is not None:
            os.close(fd)


class Server(threading.Thread):
    """Answers on every registered socket: TCP listeners accept, send the client's address as
    they saw it and close (the handshake is the answer); UDP sockets answer each datagram with
    the client's address; relay listeners pump each connection to their target. The address
    tells a test whether a Service proxy kept the client's source or rewrote it."""

    def __init__(self):
        super().__init__(daemon=True)
        self.selector = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.wake_r, self.wake_w = os.pipe()
        self.selector.register(self.wake_r, selectors.EVENT_READ, ("wake", None))
        self.pending: list = []

    def add(self, sock: socket.socket, role: str, target=None) -> None:
        sock.setblocking(False)
        with self.lock:
            self.pending.append(("add", sock, role, target))
        os.write(self.wake_w, b"x")

    def remove(self, sock: socket.socket) -> threading.Event:
        """Close ``sock`` on the server's thread; the event is set once it is closed, so a
        process started after the wait can bind its port."""
        closed = threading.Event()
        with self.lock:
            self.pending.append(("remove", sock, None, closed))
        os.write(self.wake_w, b"x")
        return closed

    def run(self) -> None:
        while True:
            for key, _unused in self.selector.select():
                role, target = key.data
                if role == "wake":
                    os.read(self.wake_r, 4096)
                    self._apply_pending()
                    continue
                sock = key.fileobj
                try:
                    if role == "tcp":
                        conn, peer = sock.accept()
                        with contextlib.suppress(OSError):
                            conn.send(peer[0].encode())
                        conn.close()
                    elif role == "udp":
                        _unused, peer = sock.recvfrom(2048)
                        sock.sendto(peer[0].encode(), peer)
                    elif role == "relay":
                        conn, _unused = sock.accept()
                        threading.Thread(target=_relay, args=(conn, target), daemon=True).start()
                except (BlockingIOError, InterruptedError, ConnectionError):
                    pass

    def _apply_pending(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, []
        for op, sock, role, target in pending:
            if op == "add":
                self.selector.register(sock, selectors.EVENT_READ, (role, target))
            else:
                with contextlib.suppress(KeyError, ValueError):
                    self.selector.unregister(sock)
                sock.close()
                target.set()


def _relay(conn: socket.socket, target: tuple) -> None:
    """One connection from a node namespace, carried to the API server in the agent's own
    namespace (this thread never leaves it)."""
    conn.setblocking(True)
    try:
        upstream = socket.create_connection(tuple(target), timeout=10)
        upstream.settimeout(None)
    except OSError:
        conn.close()
        return

    def pump(src, dst):
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    other = threading.Thread(target=pump, args=(upstream, conn), daemon=True)
    other.start()
    pump(conn, upstream)
    other.join()
    conn.close()
    upstream.close()


class Agent:
    def __init__(self):
        self.namespaces = Namespaces()
        self.server = Server()
        self.server.start()
        self.sockets: dict[str, list] = {}  # key -> sockets made for it
        self.paths: dict[str, str] = {}  # key -> its namespace

    def handle(self, command: dict) -> dict:
        op = command["op"]
        if op == "ping":
            return {"ok": True}
        if op == "listen":
            return self.listen(command["key"], command["netns"], command["ports"])
        if op == "relay":
            return self.relay(command["key"], command["netns"], tuple(command["listen"]), tuple(command["target"]))
        if op == "forget":
            return self.forget(command["key"])
        if op == "probe":
            peers = [] if command.get("peers") else None
            results = probe(self.namespaces, command["probes"], float(command.get("timeout", 1.0)),
                            int(command.get("parallel", 256)), peers)
            return {"results": results, **({"peers": peers} if peers is not None else {})}
        if op == "resolve":
            return resolve(self.namespaces, command["netns"], command["server"], command["names"],
                           command.get("type", "A"), float(command.get("timeout", 2.0)))
        raise ValueError(f"unknown op {op!r}")

    def listen(self, key: str, path: str, ports: list) -> dict:
        made = []
        with self.namespaces.inside(path):
            for port, protocol in ports:
                sock = socket.socket(socket.AF_INET, SOCKET_TYPES[protocol])
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("0.0.0.0", int(port)))
                if protocol == "TCP":
                    sock.listen(512)
                made.append((sock, protocol.lower()))
        for sock, role in made:
            self.server.add(sock, role)
        self.sockets.setdefault(key, []).extend(sock for sock, _unused in made)
        self.paths[key] = path
        return {"ok": True, "sockets": len(made)}

    def relay(self, key: str, path: str, listen: tuple, target: tuple) -> dict:
        with self.namespaces.inside(path):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(listen)
            sock.listen(64)
        self.server.add(sock, "relay", target)
        self.sockets.setdefault(key, []).append(sock)
        self.paths[key] = path
        return {"ok": True}

    def forget(self, key: str) -> dict:
        # Answer only once the sockets are closed: a real process takes their ports next.
        for closed in [self.server.remove(sock) for sock in self.sockets.pop(key, [])]:
            if not closed.wait(10):
                raise TimeoutError(f"the agent's sockets for {key} did not close")
        path = self.paths.pop(key, None)
        if path and path not in self.paths.values():
            self.namespaces.drop(path)
        return {"ok": True}


# A UDP probe's datagram is a DNS question (id 0x6b38, "k8snet-probe." A): the agent's sockets
# answer anything, and a real DNS server answers it too, so one probe serves both.
UDP_PROBE = bytes.fromhex("6b38010000010000000000000c6b38736e65742d70726f62650000010001")


def probe(namespaces: Namespaces, probes: list, timeout: float, parallel: int,
          peers: list | None = None) -> list[str]:
    """Connect from each probe's namespace to (address, port, protocol); a probe is 'open' when
    a TCP handshake completes or a UDP datagram is answered, else the reason ('refused' for a
    rejection or no listener, 'unreachable', 'timeout'). Chunks of ``parallel`` probes run
    together, each chunk ordered by namespace so the agent enters each namespace once. With
    ``peers`` (a list), each open probe also waits for the address the server saw it come
    from (the agent's listeners send it) and the list gets one entry per probe."""
    order = sorted(range(len(probes)), key=lambda i: probes[i][0])
    results: list[str] = [""] * len(probes)
    seen: list[str] = [""] * len(probes)
    for start in range(0, len(order), parallel):
        _probe_chunk(namespaces, probes, order[start:start + parallel], results, timeout,
                     seen if peers is not None else None)
    if peers is not None:
        peers.extend(seen)
    return results


def _probe_chunk(namespaces: Namespaces, probes: list, chunk: list[int], results: list, timeout: float,
                 seen: list | None = None) -> None:
    selector = selectors.DefaultSelector()
    live = {}
    current, stack = None, contextlib.ExitStack()
    try:
        for index in chunk:
            path, address, port, protocol = probes[index]
            if path != current:
                stack.close()
                stack = contextlib.ExitStack()
                stack.enter_context(namespaces.inside(path))
                current = path
            sock = socket.socket(socket.AF_INET, SOCKET_TYPES[protocol] | socket.SOCK_NONBLOCK)
            if protocol == "TCP":
                code = sock.connect_ex((address, int(port)))
                if code not in (0, errno.EINPROGRESS):
                    results[index] = _reason(code)
                    sock.close()
                    continue
                selector.register(sock, selectors.EVENT_WRITE, index)
            else:
                sock.connect((address, int(port)))
                try:
                    sock.send(UDP_PROBE)
                except OSError as exc:
                    results[index] = _reason(exc.errno)
                    sock.close()
                    continue
                selector.register(sock, selectors.EVENT_READ, index)
            live[index] = sock
    finally:
        stack.close()
    deadline = time.monotonic() + timeout
    while live:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        for key, _unused in selector.select(remaining):
            index, sock = key.data, key.fileobj
            if probes[index][3] == "TCP" and not results[index]:
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                results[index] = "open" if code == 0 else _reason(code)
                if code == 0 and seen is not None:
                    selector.modify(sock, selectors.EVENT_READ, index)  # then read what it saw
                    continue
            else:
                try:
                    answer = sock.recv(2048)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if probes[index][3] == "UDP":
                        results[index] = _reason(exc.errno)
                    answer = b""
                if probes[index][3] == "UDP":
                    results[index] = "open" if answer else "refused"
                if seen is not None:
                    seen[index] = answer.decode(errors="replace") if len(answer) < 64 else ""
            selector.unregister(sock)
            sock.close()
            del live[index]
    for index, sock in live.items():
        results[index] = results[index] or "timeout"  # an open TCP probe waiting for its peer stays open
        selector.unregister(sock)
        sock.close()
    selector.close()


def resolve(namespaces: Namespaces, path: str, server: str, names: list, rdtype: str, timeout: float) -> dict:
    """Ask ``server`` from inside a namespace, like a stub resolver walking its search list:
    the first name answered NOERROR with records wins. Returns the name asked last, its rcode
    and the answer's addresses (or 'timeout')."""
    import dns.exception
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    answer = {"name": "", "rcode": "", "addresses": []}
    for name in names:
        with namespaces.inside(path):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # dnspython's timeout holds only for a non-blocking socket: a blocking one given to it
        # waits forever for a server that never answers.
        sock.setblocking(False)
        try:
            reply = dns.query.udp(dns.message.make_query(name, rdtype), server, timeout=timeout, sock=sock)
        except dns.exception.Timeout:
            return {"name": name, "rcode": "timeout", "addresses": []}
        finally:
            sock.close()
        addresses = sorted(item.to_text() for rrset in reply.answer for item in rrset
                           if rrset.rdtype == dns.rdatatype.from_text(rdtype))
        answer = {"name": name, "rcode": dns.rcode.to_text(reply.rcode()), "addresses": addresses}
        if reply.rcode() == dns.rcode.NOERROR and addresses:
            break
    return answer


def _reason(code: int) -> str:
    if code == errno.ECONNREFUSED:
        return "refused"
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM):
        return "unreachable"
    return errno.errorcode.get(code, str(code)).lower()


def main() -> int:
    agent = Agent()
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = agent.handle(json.loads(line))
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller as text
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
