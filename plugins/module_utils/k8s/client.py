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

import dataclasses
import http.client
import json
import os
import queue
import random
import re
import ssl
import tempfile
import threading
import time
from collections import Counter
from urllib.parse import urlencode, urlsplit

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.errors import (
    ApiError,
    ClusterUnreachable,
)
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.kubeconfig import Credentials, resolve

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
    if creds.verify:
        context = ssl.create_default_context(cafile=creds.ca_file, cadata=creds.ca_data)
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        if creds.cert_data and creds.key_data:
            # ssl loads a client certificate only from files: private ones, removed at once.
            with tempfile.TemporaryDirectory(prefix="k8snet-") as private:
                cert, key = os.path.join(private, "cert.pem"), os.path.join(private, "key.pem")
                for path, data in ((cert, creds.cert_data), (key, creds.key_data)):
                    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as handle:
                        handle.write(data)
                context.load_cert_chain(cert, key)
        elif creds.cert_file:
            context.load_cert_chain(creds.cert_file, creds.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ClusterUnreachable(f"{creds.source or creds.server}: client certificate cannot be "
                                 f"loaded: {exc}") from exc
    return context


class _HTTPSConnection(http.client.HTTPSConnection):
    """HTTPS with kubeconfig's tls-server-name (the name the certificate is checked against)."""

    server_hostname: str | None = None

    def connect(self):
        http.client.HTTPConnection.connect(self)
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
        if self._proxy and self._proxy.scheme not in ("http", "https"):
            raise ClusterUnreachable(f"proxy-url {self._creds.proxy_url!r}: only http(s) proxies are supported")
        if self._creds.exec_config:
            self._creds.run_exec()
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
        """A client for the same server and trust, authenticating with ``token`` only."""
        creds = dataclasses.replace(self._creds, token=token, cert_file=None, key_file=None, cert_data=None,
                                    key_data=None, exec_config=None)
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
        if self._proxy:
            host, port = self._proxy.hostname, self._proxy.port or 3128
        if self._https:
            conn = _HTTPSConnection(host, port, timeout=self.timeout, context=self._tls)
            conn.server_hostname = self._creds.tls_server_name
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        if self._proxy:
            conn.set_tunnel(*self._address)
        return conn

    def _headers(self, extra: dict | None) -> dict:
        headers = {"Accept": "application/json", "User-Agent": "k8snet.fabric", **(extra or {})}
        if self._creds.token:
            headers["Authorization"] = "Bearer " + self._creds.token
        return headers

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
            self._count(method, query)
            conn = self._connection()
            reused = conn.sock is not None
            try:
                conn.request(method, target, body=payload, headers=self._headers(extra))
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
                self._creds.run_exec()  # the plugin's credential expired: ask it again
                if self._https:  # it may have handed out a new client certificate
                    self._tls = tls_context(self._creds)
                    self.close()
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

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


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
