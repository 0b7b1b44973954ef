"""Pinned versions of everything the testbed runs or installs.

The Kubernetes and etcd pins live in ``go/go.mod`` (the Go build reads them from there);
this file pins the upstream projects whose CRDs the scenarios use. Each CRD is read from the
upstream project's own Go module, downloaded with ``go mod download`` at the version below.
"""

from __future__ import annotations

import ipaddress
import itertools
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
    # A folder under shared/upstream/ holding the files, for a project the Go module proxy
    # here does not serve (K8SNET_UPSTREAM_DIR overrides where shared/upstream/ is).
    local_dir: str = ""
    # Helm chart templates that guard the CRD with `{{- if ... }}` lines: those lines are dropped.
    helm_guarded: bool = False


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
    # cert-manager's Certificates and issuers (istio_mesh_gateway_tls mode cert-manager): plain
    # CRDs in its module, no controller runs here.
    CrdSource(
        "cert-manager", "github.com/cert-manager/cert-manager", "v1.21.2",
        tuple(f"deploy/crds/cert-manager.io_{name}.yaml" for name in ("certificates", "issuers", "clusterissuers")),
    ),
    CrdSource(
        "prometheus-operator", "github.com/prometheus-operator/prometheus-operator", "v0.85.0",
        tuple(f"example/prometheus-operator-crd/monitoring.coreos.com_{name}.yaml"
              for name in ("servicemonitors", "podmonitors", "prometheusrules", "prometheuses", "alertmanagers",
                           "scrapeconfigs", "probes")),
    ),
    # v0.15.3: the newest whose dependencies the module proxy here serves (v0.16 needs frr-k8s
    # v0.0.25 or later, refused); tools/metallb builds the controller and speaker at the same one.
    CrdSource(
        "metallb", "go.universe.tf/metallb", "v0.15.3",
        ("config/crd/bases/metallb.io_ipaddresspools.yaml",
         "config/crd/bases/metallb.io_l2advertisements.yaml"),
    ),
    CrdSource(
        "kubefed", "sigs.k8s.io/kubefed", "v0.10.0",
        ("charts/kubefed/charts/controllermanager/crds/crds.yaml",),
        groups=frozenset({"core.kubefed.io"}),
    ),
    # Standard channel: Gateway, GatewayClass, HTTPRoute, ReferenceGrant (and GRPCRoute,
    # BackendTLSPolicy, ListenerSet that v1.6 also ships as standard).
    CrdSource(
        "gateway-api", "sigs.k8s.io/gateway-api", "v1.6.3",
        tuple(f"config/crd/standard/gateway.networking.k8s.io_{name}.yaml"
              for name in ("gatewayclasses", "gateways", "httproutes", "referencegrants")),
    ),
    # Envoy Gateway's own CRDs (ecommerce_net's rate limits are BackendTrafficPolicies; its
    # control plane watches the others), from its CRD chart; tools/envoy-gateway is the same pin.
    CrdSource(
        "envoy-gateway", "github.com/envoyproxy/gateway", "v1.9.1",
        tuple(f"charts/gateway-crds-helm/templates/generated/gateway.envoyproxy.io_{name}.yaml"
              for name in ("backends", "backendtrafficpolicies", "clienttrafficpolicies", "envoyextensionpolicies",
                           "envoypatchpolicies", "envoyproxies", "httproutefilters", "securitypolicies")),
        helm_guarded=True,
    ),
    # The Go module proxy refuses github.com/k8gb-io/k8gb; the CRDs come unmodified from
    # shared/upstream/ (with LICENSE and provenance), read in place, never copied.
    CrdSource(
        "k8gb", "github.com/k8gb-io/k8gb", "v0.20.0",
        ("k8gb.io_gslbs.yaml",),
        local_dir="k8gb-v0.20.0",
    ),
)


@dataclass(frozen=True)
class NodeSpec:
    """A Node the harness registers (kwok plays its kubelet)."""

    name: str
    labels: dict = field(default_factory=dict)
    taints: tuple = ()


@dataclass(frozen=True)
class ClusterSpec:
    """One testbed cluster: its ranges and the nodes registered on it. Each node gets the
    next /24 of the pod range as its podCIDR, as the node IPAM controller would."""

    service_cidr: str
    pod_cidr: str
    nodes: tuple[NodeSpec, ...]
    # Node addresses (InternalIP): where the data plane's node namespaces sit. Outside every
    # range the scenarios name, so no role's ipBlock covers a node by accident.
    node_cidr: str = ""

    @property
    def dns_address(self) -> str:
        """The cluster DNS Service's ClusterIP: the tenth address of the Service range, as
        kubeadm and K3s choose it."""
        return str(ipaddress.ip_network(self.service_cidr)[10])

    def node_address(self, index: int) -> str:
        return str(ipaddress.ip_network(self.node_cidr)[index + 1])

    def node_pod_cidr(self, index: int) -> str:
        """Node ``index``'s podCIDR: the index-th /24 of the pod range, as node IPAM hands out."""
        return str(next(itertools.islice(ipaddress.ip_network(self.pod_cidr).subnets(new_prefix=24), index, None)))


def _zones(region: str, prefix: str) -> tuple[NodeSpec, ...]:
    return tuple(NodeSpec(f"{prefix}-{zone}", {"topology.kubernetes.io/region": region,
                                               "topology.kubernetes.io/zone": f"{region}{zone}"})
                 for zone in "abc")


# The clusters the scenarios name. us-east/eu-west use the kubefed role's ranges; the edge
# site has K3s' defaults and the edge inventory's hosts as nodes (agent-2 tainted as there).
CLUSTERS: dict[str, ClusterSpec] = {
    "us-east": ClusterSpec("10.96.0.0/16", "10.0.0.0/14", _zones("us-east-1", "us-east"), "100.127.0.0/24"),
    "eu-west": ClusterSpec("10.97.0.0/16", "10.4.0.0/14", _zones("eu-west-1", "eu-west"), "100.127.1.0/24"),
    "edge-factory-1": ClusterSpec("10.43.0.0/16", "10.42.0.0/16", (
        NodeSpec("factory1-server-1", {"node-role.kubernetes.io/control-plane": "true"}),
        NodeSpec("factory1-agent-1"),
        NodeSpec("factory1-agent-2", taints=({"key": "dedicated", "value": "sensors",
                                              "effect": "NoSchedule"},)),
    ), "100.127.2.0/24"),
}
# A cluster with no CRD, started by the tests that need one (Testbed.fresh_cluster): what a
# role meets on a cluster where nothing is installed yet.
FRESH_CLUSTER = ClusterSpec("10.98.0.0/16", "10.8.0.0/14", _zones("us-west-2", "fresh")[:2], "100.127.3.0/24")
KUBE_ROUTER_USER = "kube-router"  # its client certificate (pki.CLIENTS) and RBAC (rbac/kube-router.yaml)
KUBE_PROXY_USER = "kube-proxy"  # system:kube-proxy, which bootstrap RBAC binds to system:node-proxier
COREDNS_USER = "coredns"  # its client certificate (pki.CLIENTS) and RBAC (rbac/coredns.yaml)
EXTERNAL_DNS_USER = "external-dns"  # its client certificate (pki.CLIENTS) and RBAC (rbac/external-dns.yaml)
ENVOY_GATEWAY_USER = "envoy-gateway"  # its client certificate (pki.CLIENTS) and RBAC (rbac/envoy-gateway*.yaml)
ENVOY_GATEWAY_CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"  # the chart's controllerName
CLUSTER_DOMAIN = "cluster.local"

# kwok's upstream stages (files in its module): nodes Ready with heartbeats, pods Running.
KWOK_STAGES = ("kustomize/stage/node/fast/node-initialize.yaml",
               "kustomize/stage/node/heartbeat/node-heartbeat.yaml",
               "kustomize/stage/pod/fast/pod-ready.yaml",
               "kustomize/stage/pod/fast/pod-complete.yaml",
               "kustomize/stage/pod/fast/pod-delete.yaml")
