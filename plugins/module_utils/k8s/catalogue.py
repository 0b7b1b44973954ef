# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controllers that act on the custom kinds the roles write: which API groups only their
CRDs serve, and the file each one is installed from in an air-gap bundle."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Controller:
    name: str  # how roles and the controllers module name it
    title: str  # how messages name it
    groups: tuple[str, ...]  # API groups that only its CRDs serve
    # Its file in the bundle: the upstream release manifest, named as edge_k3s' add-ons name it.
    # Empty: the collection does not install it (it is named, and its APIs checked, only).
    manifest: str = ""
    source: str = ""  # where the manifest comes from upstream (for messages and docs)
    # Objects of built-in kinds need it too when they carry an annotation with this prefix
    # (MetalLB's on LoadBalancer Services); then these kinds of its CRDs must be served.
    annotation: str = ""
    marks: tuple[tuple[str, str], ...] = ()


CATALOGUE: tuple[Controller, ...] = (
    Controller("envoy-gateway", "Envoy Gateway", ("gateway.networking.k8s.io", "gateway.envoyproxy.io"),
               "envoy-gateway-install.yaml", "the release's install.yaml (Gateway API and Envoy Gateway CRDs included)"),
    Controller("external-dns", "external-dns", ("externaldns.k8s.io",),
               "external-dns.yaml", "`helm template` of its chart with your DNS provider's settings and crd.create"),
    Controller("prometheus-operator", "the Prometheus Operator", ("monitoring.coreos.com",),
               "prometheus-operator-bundle.yaml", "the release's bundle.yaml"),
    Controller("metallb", "MetalLB", ("metallb.io",),
               "metallb-native.yaml", "the release's config/manifests/metallb-native.yaml",
               annotation="metallb.io/", marks=(("metallb.io/v1beta1", "IPAddressPool"),)),
    Controller("k8gb", "k8gb", ("k8gb.absa.oss", "k8gb.io")),
    Controller("mcs-api", "an MCS API implementation (Submariner Lighthouse, GKE multi-cluster Services)",
               ("multicluster.x-k8s.io",)),
    Controller("kubefed", "the KubeFed control plane", ("core.kubefed.io",)),
    Controller("istio", "Istio", ("networking.istio.io", "security.istio.io", "telemetry.istio.io")),
    Controller("cert-manager", "cert-manager", ("cert-manager.io", "acme.cert-manager.io")),
)
BY_NAME = {c.name: c for c in CATALOGUE}
INSTALLABLE = tuple(c.name for c in CATALOGUE if c.manifest)
# API group -> the controller whose CRDs alone serve it.
BY_GROUP = {group: c for c in CATALOGUE for group in c.groups}
ANNOTATING = tuple(c for c in CATALOGUE if c.annotation)


def needed(objects: list) -> dict[str, list[tuple[str, str]]]:
    """Controller name -> the (apiVersion, kind) pairs of ``objects`` only it serves, sorted."""
    kinds: dict[str, set] = {}
    for obj in objects or []:
        if not isinstance(obj, dict) or obj.get("kind") == "CustomResourceDefinition":
            continue
        api_version = str(obj.get("apiVersion") or "")
        controller = BY_GROUP.get(api_version.rpartition("/")[0])
        if controller:
            kinds.setdefault(controller.name, set()).add((api_version, str(obj.get("kind"))))
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        for controller in ANNOTATING:
            if any(str(key).startswith(controller.annotation) for key in annotations):
                kinds.setdefault(controller.name, set()).update(controller.marks)
    return {name: sorted(found) for name, found in sorted(kinds.items())}


def crd_kinds(objects: list) -> set[tuple[str, str]]:
    """The (apiVersion, kind) pairs the CustomResourceDefinitions among ``objects`` serve."""
    out = set()
    for obj in objects or []:
        if isinstance(obj, dict) and obj.get("kind") == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            for version in spec.get("versions") or []:
                if version.get("served", True):
                    out.add((f"{spec.get('group')}/{version.get('name')}", (spec.get("names") or {}).get("kind")))
    return out
