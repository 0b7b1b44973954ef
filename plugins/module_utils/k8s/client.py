# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's HTTP client: pooled keep-alive connections, auth, retries, counting.

Built on the standard library (http.client + ssl): the engine needs JSON over HTTPS and nothing
of the ``kubernetes`` package's generated models, whose import alone costs every module run
~0.1 s, and whose urllib3 layer costs ~0.1 ms of CPU per request that the API server (sharing
the machine in small clusters and CI) would rather have. Where the cluster is and who we are
comes from kubeconfig.py. This is the only place in the collection that speaks HTTP.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import ipaddress
import json
import os
import queue
import random
import re
import socket
import ssl
import tempfile
import threading
import time
from collections import Counter
from urllib.parse import unquote, urlencode, urlsplit

from ansible_collections.k8snet.fabric.plugins.module_utils.errors import (
    ApiError,
    ClusterUnreachable,
)
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.kubeconfig import (
    PROXY_SCHEMES,
    Credentials,
    resolve,
)

# Argument spec shared by every module that talks to a cluster (kubernetes.core's names).
CONNECTION_ARGSPEC = dict(
    kubeconfig=dict(type="path", aliases=["kubeconfig_path"]),
    context=dict(type="str"),
    host=dict(type="str"),
    api_key=dict(type="str", no_log=True),
    ca_cert=dict(type="path", aliases=["ssl_ca_cert"]),
    client_cert=dict(type="path", aliases=["cert_file"]),
    client_key=dict(type="path", aliases=["key_file"], no_log=False),
    validate_certs=dict(type="bool", aliases=["verify_ssl"]),
    impersonate_user=dict(type="str"),
    impersonate_groups=dict(type="list", elements="str"),
    request_timeout=dict(type="float", default=30.0),
    permissions_file=dict(type="str"),
)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Server-side apply reports a field the schema does not declare as a 500 (kubernetes/kubernetes
# #139253, open): it is the request's fault and answers the same every time, so no retry.
NOT_TRANSIENT_500 = "failed to create typed patch object"
# RFC 7234 warning values as the API server sends them: 299 - "text", several comma-joined.
WARNING = re.compile(r'\d{3} \S+ "((?:[^"\\]|\\.)*)"')
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# A dropped, refused or timed-out connection (socket errors are OSErrors; TLS errors are caught
# before these), or a keep-alive connection the server closed meanwhile.
CONNECTION_ERRORS = (OSError, http.client.HTTPException)


def tls_context(creds: Credentials) -> ssl.SSLContext:
    """Server verification and client certificate; certificate data never stays on disk."""
    try:
        if creds.verify:
            context = ssl.create_default_context(cafile=creds.ca_file, cadata=creds.ca_data)
        else:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    except (OSError, ssl.SSLError) as exc:
        raise ClusterUnreachable(f"{creds.source or creds.server}: certificate authority "
                                 f"{creds.ca_file or '(data)'} cannot be loaded: {exc}") from exc
    try:
        if creds.cert_data or creds.key_data:
            # ssl loads a client certificate only from files: private ones, removed at once. A
            # certificate file may come with key data and the other way round (client-go takes both).
            cert_pem = creds.cert_data or _read_bytes(creds.cert_file)
            key_pem = creds.key_data or _read_bytes(creds.key_file)
            if cert_pem and key_pem:
                with tempfile.TemporaryDirectory(prefix="k8snet-") as private:
                    cert, key = os.path.join(private, "cert.pem"), os.path.join(private, "key.pem")
                    for path, data in ((cert, cert_pem), (key, key_pem)):
                        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as handle:
                            handle.write(data)
                    context.load_cert_chain(cert, key)
        elif creds.cert_file and creds.key_file:
            context.load_cert_chain(creds.cert_file, creds.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ClusterUnreachable(f"{creds.source or creds.server}: client certificate cannot be "
                                 f"loaded: {exc}") from exc
    return context


def _read_bytes(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as handle:
        return handle.read()


def socks5_connect(proxy, address: tuple[str, int], timeout: float) -> socket.socket:
    """A TCP connection to ``address`` through a SOCKS5 proxy (RFC 1928; user name and password
    from the proxy URL, RFC 1929), as client-go dials a socks5:// proxy-url."""
    sock = socket.create_connection((proxy.hostname, proxy.port or 1080), timeout)
    try:
        def take(count: int) -> bytes:
            data = b""
            while len(data) < count:
                chunk = sock.recv(count - len(data))
                if not chunk:
                    raise OSError("SOCKS5 proxy closed the connection")
                data += chunk
            return data

        methods = b"\x00\x02" if proxy.username else b"\x00"
        sock.sendall(b"\x05" + bytes([len(methods)]) + methods)
        version, method = take(2)
        if version != 5 or method not in methods:
            raise OSError(f"SOCKS5 proxy accepts none of our authentication methods (it answered {method})")
        if method == 2:
            user, password = unquote(proxy.username).encode(), unquote(proxy.password or "").encode()
            sock.sendall(b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password)
            if take(2)[1] != 0:
                raise OSError("SOCKS5 proxy refused the user name and password")
        host, port = address
        try:
            packed = ipaddress.ip_address(host).packed
            target = (b"\x01" if len(packed) == 4 else b"\x04") + packed
        except ValueError:
            target = b"\x03" + bytes([len(host.encode())]) + host.encode()
        sock.sendall(b"\x05\x01\x00" + target + port.to_bytes(2, "big"))
        _version, reply, _reserved, kind = take(4)
        if reply != 0:
            raise OSError(f"SOCKS5 proxy could not connect to {host}:{port} (reply {reply})")
        take({1: 4, 4: 16}.get(kind) or take(1)[0])
        take(2)
    except BaseException:
        sock.close()
        raise
    return sock


def _open_socket(conn) -> None:
    """Connect ``conn`` directly, through its HTTP CONNECT tunnel, or through its SOCKS5 proxy."""
    if conn.socks_proxy is None:
        http.client.HTTPConnection.connect(conn)
        return
    conn.sock = socks5_connect(conn.socks_proxy, (conn.host, conn.port), conn.timeout)
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _HTTPConnection(http.client.HTTPConnection):
    socks_proxy = None

    def connect(self):
        _open_socket(self)


class _HTTPSConnection(http.client.HTTPSConnection):
    """HTTPS with kubeconfig's tls-server-name (the name the certificate is checked against)."""

    server_hostname: str | None = None
    socks_proxy = None

    def connect(self):
        _open_socket(self)
        name = self.server_hostname or self._tunnel_host or self.host
        self.sock = self._context.wrap_socket(self.sock, server_hostname=name)


class Client:
    """Pooled, retrying, counting JSON client for one API server."""

    def __init__(self, params: dict, workers: int = 8, retries: int = 5, backoff: float = 0.2,
                 credentials: Credentials | None = None):
        self._creds = credentials or resolve(params)
        self.server = self._creds.server
        url = urlsplit(self.server)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise ClusterUnreachable(f"server {self.server!r} is not an http(s) URL")
        self._https = url.scheme == "https"
        self._address = (url.hostname, url.port or (443 if self._https else 80))
        self._base_path = url.path.rstrip("/")
        self._proxy = urlsplit(self._creds.proxy_url) if self._creds.proxy_url else None
        if self._proxy and self._proxy.scheme not in PROXY_SCHEMES:
            raise ClusterUnreachable(f"proxy-url {self._creds.proxy_url!r}: only http:// and socks5:// proxies "
                                     f"are supported")
        self._exec_lock = threading.Lock()
        self._exec_runs = 0  # how often the exec plugin ran: a 401 renews only the credential it was sent with
        if self._creds.exec_config:
            self._run_exec()
        self._tls = tls_context(self._creds) if self._https else None
        self.timeout = params.get("request_timeout") or 30.0
        self.name = params.get("context") or self.server  # how messages name the cluster
        self.permissions_file = params.get("permissions_file")  # named when the server says 403
        # Set once the server has stopped answering (connection refused, reset, timed out for the
        # whole request budget): every later request of every worker fails at once instead of
        # retrying on its own, so a run fails within one budget of the cluster going away.
        self.gone: str | None = None
        self.retries = retries
        self.backoff = backoff
        self._idle: queue.LifoQueue = queue.LifoQueue()  # keep-alive connections, newest first
        self._lock = threading.Lock()
        self.counts: Counter = Counter()
        self.warnings: dict[str, str] = {}  # warning text -> the object (or path) that got it

    def with_token(self, token: str) -> "Client":
        """A client for the same server and trust, authenticating with ``token`` only and acting as
        the token's own identity (no impersonation): it checks what that token may do."""
        creds = dataclasses.replace(self._creds, token=token, token_file=None, cert_file=None, key_file=None,
                                    cert_data=None, key_data=None, exec_config=None, impersonate=None)
        return Client({"request_timeout": self.timeout}, workers=1, retries=1, credentials=creds)

    def ca_pem(self) -> str | None:
        """The CA this client trusts the server by (PEM), when one was given."""
        if self._creds.ca_data:
            return self._creds.ca_data
        if self._creds.ca_file:
            with open(self._creds.ca_file, encoding="ascii") as handle:
                return handle.read()
        return None

    # -- helpers -------------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        host, port = self._address
        http_proxy = self._proxy is not None and self._proxy.scheme == "http"
        if http_proxy:  # Go's default port for an http:// proxy without one
            host, port = self._proxy.hostname, self._proxy.port or 80
        if self._https:
            conn = _HTTPSConnection(host, port, timeout=self.timeout, context=self._tls)
            conn.server_hostname = self._creds.tls_server_name
        else:
            conn = _HTTPConnection(host, port, timeout=self.timeout)
        if http_proxy:
            auth = {}
            if self._proxy.username:
                pair = f"{unquote(self._proxy.username)}:{unquote(self._proxy.password or '')}"
                auth["Proxy-Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
            conn.set_tunnel(*self._address, headers=auth)
        elif self._proxy is not None:
            conn.socks_proxy = self._proxy
        return conn

    def _headers(self, extra: dict | None) -> list[tuple[str, str]]:
        """Every header line of a request: who we are (bearer token, impersonation) on each."""
        headers = [("Accept", "application/json"), ("User-Agent", "k8snet.fabric"), *(extra or {}).items()]
        token = self._creds.bearer()
        if token:
            headers.append(("Authorization", "Bearer " + token))
        if self._creds.impersonate:
            headers += self._creds.impersonate.headers()
        return headers

    def _run_exec(self, after: int | None = None) -> None:
        """Run the exec plugin (once for all workers): at the start, when its credential expired,
        or after a 401 to the credential of run ``after``. A new client certificate takes effect on
        new connections."""
        with self._exec_lock:
            if after is not None and after != self._exec_runs:
                return  # another worker renewed it meanwhile
            had_cert = self._creds.cert_data
            self._creds.run_exec()
            self._exec_runs += 1
            if self._exec_runs > 1 and self._https and (had_cert or self._creds.cert_data):
                self._tls = tls_context(self._creds)
                self.close()

    def _warn(self, header: str, about: str) -> None:
        """Keep the server's warnings (deprecated APIs and fields) with the first object that got
        each, for the module to show once."""
        found = [re.sub(r'\\(.)', r'\1', text) for text in WARNING.findall(header)] or [header]
        with self._lock:
            for text in found:
                self.warnings.setdefault(text, about)

    def _count(self, method: str, query: dict | None) -> None:
        dry = bool(query and query.get("dryRun"))
        key = "dry-run" if dry and method in WRITE_METHODS else method
        with self._lock:
            self.counts[key] += 1

    # -- the one request function -----------------------------------------------------------
    def request(self, method: str, path: str, *, query: dict | None = None, body=None,
                content_type: str = "application/json", allow: tuple[int, ...] = (),
                headers: dict | None = None, about: str | None = None) -> dict | None:
        """Send one request; return the decoded JSON body, or None for statuses in ``allow``.

        ``about`` names the object for the server's warnings (default: the path).

        Retries 429 and 5xx answers and dropped connections with exponential backoff and
        jitter (Retry-After is honoured); an exec credential is renewed once on 401. Other
        error statuses raise ApiError. A server that cannot be reached within the request
        budget (``request_timeout``, retries included) marks the client gone (see ``gone``).
        """
        target = self._base_path + path + (("?" + urlencode(query, doseq=True)) if query else "")
        payload = None
        extra = dict(headers or {})
        if body is not None:
            extra["Content-Type"] = content_type
            payload = body if isinstance(body, bytes) else (
                body.encode() if isinstance(body, str) else json.dumps(body).encode())
        attempt, renewed = 0, False
        started = time.monotonic()
        while True:
            if self.gone:
                raise ClusterUnreachable(self.gone)
            if self._creds.exec_expired():
                self._run_exec(after=self._exec_runs)
            exec_run = self._exec_runs
            self._count(method, query)
            conn = self._connection()
            reused = conn.sock is not None
            try:
                _send(conn, method, target, self._headers(extra), payload)
                resp = conn.getresponse()
                raw = resp.read()
            except CONNECTION_ERRORS as exc:
                conn.close()
                # A handshake the server refuses is final (certificates, protocol); a TLS
                # connection cut off (a kept-alive one closed meanwhile, a server dying mid
                # handshake: EOF) is a dropped connection like any other.
                if isinstance(exc, ssl.SSLError) and (isinstance(exc, ssl.SSLCertVerificationError) or not (
                        reused or isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)))):
                    raise ClusterUnreachable(f"{self.name}: the API server {self.server}: TLS failed ({exc})") from exc
                delay = self._delay(attempt + 1, None)
                if attempt >= self.retries or time.monotonic() - started + delay > self.timeout:
                    message = (f"{self.name}: the API server {self.server} cannot be reached ({method} {path}: "
                               f"{exc!r}; tried {attempt + 1} times in {time.monotonic() - started:.0f}s)")
                    with self._lock:
                        self.gone = self.gone or message
                    raise ClusterUnreachable(self.gone) from exc
                attempt += 1
                time.sleep(delay)
                continue
            if resp.will_close:
                conn.close()
            else:
                self._idle.put(conn)
            warning = resp.getheader("Warning")
            if warning:
                self._warn(warning, about or path)
            data = _decode(raw)
            if resp.status in RETRY_STATUSES and not (
                    resp.status == 500 and isinstance(data, dict)
                    and str(data.get("message", "")).startswith(NOT_TRANSIENT_500)):
                delay = self._delay(attempt + 1, resp.getheader("Retry-After"))
                # A 429 is the server asking to wait (Retry-After), not failing: a retrying client
                # waits for as long as the request budget lasts. Other statuses get `retries` attempts.
                throttled = (self.retries > 0 and resp.status == 429
                             and time.monotonic() - started + delay <= self.timeout)
                if attempt < self.retries or throttled:
                    attempt += 1
                    time.sleep(delay)
                    continue
            if resp.status == 401 and self._creds.exec_config and not renewed:
                renewed = True
                self._run_exec(after=exec_run)  # the plugin's credential was refused: ask it again
                continue
            if resp.status < 400:
                return data
            if resp.status in allow:
                return None
            error = _api_error(resp.status, resp.reason, data, method, path)
            if resp.status == 403 and self.permissions_file:
                error.message += (f" - the permissions this needs are in {self.permissions_file}: apply it and bind "
                                  "the identity the run uses")
            raise error

    def _delay(self, attempt: int, retry_after) -> float:
        if retry_after:
            try:
                return min(float(retry_after), 10.0)
            except ValueError:
                pass
        return min(self.backoff * (2 ** (attempt - 1)), 5.0) * (0.5 + random.random())

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def _send(conn: http.client.HTTPConnection, method: str, target: str, headers: list[tuple[str, str]],
          payload: bytes | None) -> None:
    """conn.request() with a list of header lines: Impersonate-Group and Impersonate-Extra-* repeat."""
    conn.putrequest(method, target)
    for name, value in headers:
        conn.putheader(name, value)
    if payload is not None:
        conn.putheader("Content-Length", str(len(payload)))
    elif method in ("POST", "PUT", "PATCH"):
        conn.putheader("Content-Length", "0")
    conn.endheaders(payload)


def _decode(raw: bytes):
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return {"message": raw.decode("utf-8", "replace")[:2000]}


def _api_error(status: int, reason: str, data, method: str, path: str) -> ApiError:
    data = data if isinstance(data, dict) else {}
    message = data.get("message") or reason or f"HTTP {status}"
    return ApiError(status, data.get("reason") or reason or "", message, data, method, path)
