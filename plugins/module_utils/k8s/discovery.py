# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the API server serves: (apiVersion, kind) -> resource path and scope.

Uses aggregated discovery (two requests for the whole server) and keeps the answer on disk per
server for ``ttl`` seconds. A miss refreshes once before failing, so CRDs installed a moment ago
are found; the failure names the closest kinds the server does serve.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.catalogue import BY_GROUP
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import (
    ApiError,
    DiscoveryError,
)

AGGREGATED = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
              "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
              "application/json")
DEFAULT_TTL = 600.0


def controller_hint(api_version: str, served_groups) -> str:
    """Who installs ``api_version``'s CRDs, when the server serves nothing of its group."""
    group = api_version.rpartition("/")[0]
    if group in BY_GROUP and group not in served_groups:
        return f"; nothing of {group} is served: {BY_GROUP[group].title} is not installed on this cluster"
    return ""


def cache_dir() -> str:
    base = os.environ.get("K8SNET_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "k8snet-fabric")
    return os.path.join(base, "discovery")


@dataclass(frozen=True)
class ResourceType:
    """One served kind: enough to build every URL the engine needs."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_kind(self) -> str:
        """The ApplySet spelling: ``Kind.group`` (``Kind`` alone for the core group)."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _unused, version = api_version.rpartition("/")
    return group, version


class Discovery:
    """Resolves kinds for one server, from a time-limited on-disk cache."""

    def __init__(self, client, ttl: float = DEFAULT_TTL):
        self._client = client
        self._ttl = ttl
        self._lock = threading.Lock()
        key = hashlib.sha256(client.server.encode()).hexdigest()[:16]
        self._path = os.path.join(cache_dir(), f"{key}.json")
        self._types: dict[tuple[str, str], ResourceType] | None = None
        self.refreshed = False

    # -- loading -------------------------------------------------------------------------
    def _load_cache(self) -> dict | None:
        try:
            with open(self._path) as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return None
        if time.time() - data.get("fetched", 0) > self._ttl or data.get("server") != self._client.server:
            return None
        return data

    def _fetch(self) -> dict:
        resources = []
        for root in ("/api", "/apis"):
            doc = self._client.request("GET", root, headers={"Accept": AGGREGATED})
            if doc.get("kind") != "APIGroupDiscoveryList":
                return {"resources": self._fetch_legacy(), "server": self._client.server,
                        "fetched": time.time()}
            for group in doc.get("items", []):
                group_name = group.get("metadata", {}).get("name", "")
                for version in group.get("versions", []):
                    for res in version.get("resources", []):
                        kind = (res.get("responseKind") or {}).get("kind")
                        if kind:
                            resources.append([group_name, version["version"], kind,
                                              res["resource"], res.get("scope") == "Namespaced"])
        data = {"resources": resources, "server": self._client.server, "fetched": time.time()}
        self._store(data)
        return data

    def _fetch_legacy(self) -> list:
        """Per-group discovery, for servers older than aggregated discovery."""
        resources = []
        group_versions = [("", v) for v in self._client.request("GET", "/api").get("versions", [])]
        for group in self._client.request("GET", "/apis").get("groups", []):
            group_versions += [(group["name"], v["version"]) for v in group.get("versions", [])]
        for group, version in group_versions:
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            try:
                doc = self._client.request("GET", path)
            except ApiError:
                continue  # an unavailable aggregated API must not break discovery
            for res in doc.get("resources", []):
                if "/" not in res["name"]:
                    resources.append([group, version, res["kind"], res["name"], res["namespaced"]])
        self._store({"resources": resources, "server": self._client.server, "fetched": time.time()})
        return resources

    def _store(self, data: dict) -> None:
        try:
            os.makedirs(os.path.dirname(self._path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(self._path))
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle)
            os.replace(tmp, self._path)
        except OSError:
            pass  # a read-only home still works, just without the cache

    def _index(self, refresh: bool = False) -> dict[tuple[str, str], ResourceType]:
        with self._lock:
            if self._types is None or refresh:
                data = None if refresh else self._load_cache()
                if data is None:
                    data = self._fetch()
                    self.refreshed = True
                self._types = {}
                for group, version, kind, plural, namespaced in data["resources"]:
                    rtype = ResourceType(group, version, kind, plural, namespaced)
                    self._types.setdefault((rtype.api_version, kind), rtype)
            return self._types

    # -- lookup --------------------------------------------------------------------------
    def resolve(self, api_version: str, kind: str) -> ResourceType:
        found = self._index().get((api_version, kind))
        if found is None and not self.refreshed:
            found = self._index(refresh=True).get((api_version, kind))
        if found is None:
            raise DiscoveryError(self._miss_message(api_version, kind))
        return found

    def invalidate(self) -> None:
        """Forget everything (after installing CRDs), on disk too."""
        with self._lock:
            self._types = None
            self.refreshed = False
            try:
                os.unlink(self._path)
            except OSError:
                pass

    def _miss_message(self, api_version: str, kind: str) -> str:
        served = self._index()
        same_kind = sorted(av for av, k in served if k == kind)
        if same_kind:  # another version or group of it is served: a wrong apiVersion
            hint = "served apiVersions of that kind: " + ", ".join(same_kind)
        else:
            names = {f"{av} {k}": (av, k) for av, k in served}
            close = difflib.get_close_matches(f"{api_version} {kind}", list(names), n=3, cutoff=0.5)
            close += [n for n in names if names[n][1].lower() == kind.lower() and n not in close]
            hint = ("closest served: " + ", ".join(close)) if close else "no similar kind is served"
            hint += controller_hint(api_version, {av.rpartition("/")[0] for av, _kind in served})
        return f"apiVersion {api_version!r} kind {kind!r} is not served by {self._client.server} ({hint})"
