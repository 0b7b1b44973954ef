# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's HTTP client: connection settings, auth, pooled requests, retries, counting.

Authentication is resolved by the ``kubernetes`` package's kubeconfig loader (contexts, client
certs, tokens, exec plugins, in-cluster config); requests then go through one urllib3 pool sized
for the engine's workers, with JSON handled here, so no response is turned into generated model
classes. This is the only place in the collection that speaks HTTP.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from urllib.parse import urlencode

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.errors import (
    ApiError,
    ClusterUnreachable,
)

try:
    import urllib3
    from kubernetes.client import Configuration
    from kubernetes.config import ConfigException, kube_config, incluster_config
    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError as exc:  # reported by the module as a missing requirement
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = exc

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
)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _configuration(params: dict) -> "Configuration":
    """Build a kubernetes Configuration the way kubernetes.core users expect.

    Order: kubeconfig (parameter, K8S_AUTH_KUBECONFIG, KUBECONFIG, ~/.kube/config) with its
    context, or in-cluster config; explicit host/api_key/certs override what it says.
    """
    cfg = Configuration()
    kubeconfig = (params.get("kubeconfig") or os.environ.get("K8S_AUTH_KUBECONFIG")
                  or os.environ.get("KUBECONFIG"))
    default_path = os.path.expanduser("~/.kube/config")
    try:
        if kubeconfig or (not params.get("host") and os.path.exists(default_path)):
            path = os.path.expanduser(kubeconfig or default_path)
            if not os.path.exists(path):
                raise ClusterUnreachable(f"kubeconfig: file {path!r} does not exist")
            kube_config.load_kube_config(config_file=path, context=params.get("context"),
                                         client_configuration=cfg, persist_config=False)
        elif not params.get("host") and os.environ.get("KUBERNETES_SERVICE_HOST"):
            incluster_config.load_incluster_config(client_configuration=cfg)
        elif not params.get("host"):
            raise ClusterUnreachable(
                "no cluster given: set kubeconfig (or K8S_AUTH_KUBECONFIG) or host")
    except ConfigException as exc:
        raise ClusterUnreachable(f"kubeconfig/context: {exc}") from exc
    if params.get("host"):
        cfg.host = params["host"]
    if params.get("api_key"):
        cfg.api_key = {"authorization": "Bearer " + params["api_key"]}
    if params.get("ca_cert"):
        cfg.ssl_ca_cert = params["ca_cert"]
    if params.get("client_cert"):
        cfg.cert_file = params["client_cert"]
    if params.get("client_key"):
        cfg.key_file = params["client_key"]
    if params.get("validate_certs") is not None:
        cfg.verify_ssl = params["validate_certs"]
    return cfg


class Client:
    """Pooled, retrying, counting JSON client for one API server."""

    def __init__(self, params: dict, workers: int = 8, retries: int = 5, backoff: float = 0.2):
        if not HAS_KUBERNETES:
            raise ClusterUnreachable(
                f"the 'kubernetes' Python package is required: {KUBERNETES_IMPORT_ERROR}")
        self._cfg = _configuration(params)
        self.server = self._cfg.host.rstrip("/")
        self.timeout = params.get("request_timeout") or 30.0
        self.retries = retries
        self.backoff = backoff
        pool_args = {"maxsize": max(workers, 1), "block": True, "retries": False}
        if self.server.startswith("https"):
            pool_args["cert_reqs"] = "CERT_REQUIRED" if self._cfg.verify_ssl else "CERT_NONE"
            pool_args["ca_certs"] = self._cfg.ssl_ca_cert
            pool_args["cert_file"] = self._cfg.cert_file
            pool_args["key_file"] = self._cfg.key_file
            if self._cfg.tls_server_name:
                pool_args["server_hostname"] = self._cfg.tls_server_name
            if not self._cfg.verify_ssl:
                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        if self._cfg.proxy:
            self._pool = urllib3.ProxyManager(self._cfg.proxy, **pool_args)
        else:
            self._pool = urllib3.PoolManager(**pool_args)
        self._lock = threading.Lock()
        self.counts: Counter = Counter()

    # -- helpers -------------------------------------------------------------------------
    def _auth_headers(self) -> dict:
        if self._cfg.refresh_api_key_hook is not None:
            self._cfg.refresh_api_key_hook(self._cfg)
        token = self._cfg.auth_settings().get("BearerToken")
        return {"authorization": token["value"]} if token else {}

    def _count(self, method: str, query: dict | None) -> None:
        dry = bool(query and query.get("dryRun"))
        key = "dry-run" if dry and method in WRITE_METHODS else method
        with self._lock:
            self.counts[key] += 1

    # -- the one request function -----------------------------------------------------------
    def request(self, method: str, path: str, *, query: dict | None = None, body=None,
                content_type: str = "application/json", allow: tuple[int, ...] = (),
                headers: dict | None = None) -> dict | None:
        """Send one request; return the decoded JSON body, or None for statuses in ``allow``.

        Retries 429 and 5xx answers and dropped connections with exponential backoff and
        jitter (Retry-After is honoured). Other error statuses raise ApiError.
        """
        url = self.server + path + (("?" + urlencode(query, doseq=True)) if query else "")
        headers = {"Accept": "application/json", "User-Agent": "k8snet.fabric", **(headers or {})}
        headers.update(self._auth_headers())
        payload = None
        if body is not None:
            headers["Content-Type"] = content_type
            payload = body if isinstance(body, (bytes, str)) else json.dumps(body)
        attempt = 0
        while True:
            self._count(method, query)
            try:
                resp = self._pool.request(method, url, body=payload, headers=headers,
                                          timeout=self.timeout, preload_content=True)
            except (urllib3.exceptions.ProtocolError, urllib3.exceptions.NewConnectionError,
                    urllib3.exceptions.TimeoutError, urllib3.exceptions.MaxRetryError) as exc:
                if attempt >= self.retries:
                    raise ClusterUnreachable(
                        f"{method} {self.server}{path}: cannot reach the API server ({exc})") from exc
                attempt += 1
                time.sleep(self._delay(attempt, None))
                continue
            except urllib3.exceptions.SSLError as exc:
                raise ClusterUnreachable(f"{self.server}: TLS failed ({exc})") from exc
            if resp.status in RETRY_STATUSES and attempt < self.retries:
                attempt += 1
                time.sleep(self._delay(attempt, resp.headers.get("Retry-After")))
                continue
            data = _decode(resp.data)
            if resp.status < 400:
                return data
            if resp.status in allow:
                return None
            raise _api_error(resp.status, resp.reason, data, method, path)

    def _delay(self, attempt: int, retry_after) -> float:
        if retry_after:
            try:
                return min(float(retry_after), 10.0)
            except ValueError:
                pass
        return min(self.backoff * (2 ** (attempt - 1)), 5.0) * (0.5 + random.random())

    def close(self) -> None:
        self._pool.clear()


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
