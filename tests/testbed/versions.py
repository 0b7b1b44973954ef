"""Pinned versions of everything the testbed runs or installs.

The Kubernetes and etcd pins live in ``go/go.mod`` (the Go build reads them from there);
this file pins the upstream projects whose CRDs the scenarios use. Each CRD is read from the
upstream project's own Go module, downloaded with ``go mod download`` at the version below.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CrdSource:
    """One upstream Go module and the CRD files inside it that the testbed installs."""

    project: str
    module: str
    version: str
    files: tuple[str, ...]
    # When a file holds CRDs of several API groups, install only these groups.
    groups: frozenset[str] = field(default_factory=frozenset)
    # A project the Go module proxy here does not serve: reported, never faked.
    unavailable: str = ""


CRD_SOURCES: tuple[CrdSource, ...] = (
    CrdSource(
        "istio", "istio.io/api", "v1.32.0",
        ("kubernetes/customresourcedefinitions.gen.yaml",),
        groups=frozenset({"networking.istio.io", "security.istio.io", "telemetry.istio.io"}),
    ),
    CrdSource(
        "mcs-api", "sigs.k8s.io/mcs-api", "v0.5.2",
        ("config/crd/multicluster.x-k8s.io_serviceexports.yaml",
         "config/crd/multicluster.x-k8s.io_serviceimports.yaml"),
    ),
    # v0.23.0 needs Go 1.27; v0.22.0 has the same DNSEndpoint CRD.
    CrdSource(
        "external-dns", "sigs.k8s.io/external-dns", "v0.22.0",
        ("config/crd/standard/dnsendpoints.externaldns.k8s.io.yaml",),
    ),
    CrdSource(
        "prometheus-operator", "github.com/prometheus-operator/prometheus-operator", "v0.85.0",
        tuple(f"example/prometheus-operator-crd/monitoring.coreos.com_{name}.yaml"
              for name in ("servicemonitors", "podmonitors", "prometheusrules", "prometheuses")),
    ),
    CrdSource(
        "metallb", "go.universe.tf/metallb", "v0.15.2",
        ("config/crd/bases/metallb.io_ipaddresspools.yaml",
         "config/crd/bases/metallb.io_l2advertisements.yaml"),
    ),
    CrdSource(
        "kubefed", "sigs.k8s.io/kubefed", "v0.10.0",
        ("charts/kubefed/charts/controllermanager/crds/crds.yaml",),
        groups=frozenset({"core.kubefed.io"}),
    ),
    CrdSource(
        "k8gb", "github.com/k8gb-io/k8gb", "v0.15.0",
        ("chart/k8gb/crd/k8gb.absa.oss_gslbs.yaml",),
        unavailable="the Go module proxy reachable here answers 403 'not available' for "
                    "github.com/k8gb-io/k8gb at every version (and for its forks)",
    ),
)

# The clusters the scenarios name, with the service range each apiserver allocates from.
CLUSTERS: dict[str, str] = {
    "us-east": "10.96.0.0/16",
    "eu-west": "10.97.0.0/16",
    "edge-factory-1": "10.43.0.0/16",  # K3s' default service CIDR, as in scenario 4
}
