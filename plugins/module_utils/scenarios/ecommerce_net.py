# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scenario 1 as data: an application's tiers, the platform around it (gateway, monitoring,
DNS, the load balancer) and the flows between them -> policy intent, Services, a Gateway API
(or Ingress) entry, monitoring, PodDisruptionBudgets, and the expectations that prove, on every
run, that the platform's own traffic flows and nothing else does."""

from __future__ import annotations

import re

from ansible_collections.k8snet.fabric.plugins.module_utils import tls_certificate
from ansible_collections.k8snet.fabric.plugins.module_utils.plan import checks, fabric_clusters, ipplan
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol import model
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.semantics import CLUSTER_DNS_LABELS, CLUSTER_DNS_NAMESPACE

INTERNET = "internet"
GATEWAY = "gateway"
MONITORING = "monitoring"
SERVICE_TYPES = ("ClusterIP", "LoadBalancer", "NodePort")
TRAFFIC_POLICIES = ("Local", "Cluster")
INGRESS_APIS = ("gateway", "ingress")
IMPLEMENTATIONS = ("envoy-gateway", "none")
TLS_SECRET = "shop-tls"
ENTRY = "shop"
METRICS_COMPONENT = {"app.kubernetes.io/component": "metrics"}
DNS = {"namespace": CLUSTER_DNS_NAMESPACE, "pods": dict(CLUSTER_DNS_LABELS)}
HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
AWS_SSL_CERT = "service.beta.kubernetes.io/aws-load-balancer-ssl-cert"
AWS_SSL_PORTS = "service.beta.kubernetes.io/aws-load-balancer-ssl-ports"


# -- validation -------------------------------------------------------------------------------
PORT = ("opt", "any")  # ports are checked by value (numbers, "53/UDP", named ports)
SHAPES = {
    "environments": ("list", {"name!": "str", "namespace!": "str"}),
    "tiers": ("list", {"name!": "str", "port!": "any", "service_type": "str", "metrics_port": PORT,
                       "headless": "bool", "port_name": "str"}),
    "peers": ("map", {"cidr": "str", "except": ("list", "str"), "namespace": "str", "namespaces": ("map", "str"),
                      "pods": ("opt", ("map", "str"))}),
    "flows": ("list", {"from!": "str", "to!": "str", "port!": PORT}),
    "dns_egress": "bool",
    "lb": {"external_traffic_policy!": "str", "node_cidrs": ("opt", ("list", "str")),
           "annotations": ("opt", ("map", "str")), "tls_certificate_arn": ("opt", "str")},
    "ingress_api": "str",
    "ingress": {"enabled!": "bool", "host!": "str", "backend!": "str", "ssl_redirect": "bool",
                "gateway_class_name": "str", "implementation": "str", "rate_limit_rps": ("opt", "int"),
                "class_name": "str", "waf": "bool"},
    "monitoring": {"enabled!": "bool", "interval": "str", "latency_threshold_seconds!": "number",
                   "latency_for!": "str", "error_rate_threshold!": "number"},
    # Kubernetes objects: the fields read here are checked, every other field is the API's ("*").
    "workloads": ("list", {"*": "any", "kind!": "str", "metadata!": {"*": "any", "name!": "str", "namespace": "str"},
                           "spec": {"*": "any", "replicas": ("opt", "int"), "selector": ("opt", "any"),
                                    "template": {"*": "any", "metadata": ("opt", {"*": "any", "labels": ("opt", ("map", "str"))}),
                                                 "spec": ("opt", {"*": "any", "containers": ("opt", ("list", {"*": "any", "name": "str"}))})}}}),
    "spread_topology_key": "str",
    "tls": ("opt", {"*": "any", "mode": "str", "issuer": ("opt", "str"), "days": ("opt", "int"),
                    "renew_days": ("opt", "int")}),
    **fabric_clusters.CONNECTION_SHAPES,
}


def problems(spec: dict) -> list[str]:
    """Every bad value in the role's variables, naming the variable and the value. Shapes first:
    nothing below reads a field of the wrong type."""
    out = fabric_clusters.role_problems(spec, SHAPES, "ecommerce_net_")
    if out:
        return out
    spec, out = with_plan(spec)
    if cert_managed(spec):
        out += tls_certificate.cert_manager_problems(spec["tls"], "ecommerce_net_tls")
    tiers = spec.get("tiers") or []
    if not tiers:
        out.append("ecommerce_net_tiers: at least one tier is needed")
    names = []
    for i, tier in enumerate(tiers):
        where = f"ecommerce_net_tiers[{i}]"
        checks.unique_label(tier.get("name"), f"{where}.name", names, out, twice="is used by two tiers")
        checks.port(tier.get("port"), f"{where}.port", out)
        if tier.get("metrics_port") is not None:
            checks.port(tier.get("metrics_port"), f"{where}.metrics_port", out)
            if tier.get("metrics_port") == tier.get("port"):
                out.append(f"{where}.metrics_port: {tier['metrics_port']!r} is the tier's port; metrics need their own "
                           "so the LoadBalancer can publish one without the other")
        if tier.get("service_type", "ClusterIP") not in SERVICE_TYPES:
            out.append(f"{where}.service_type: {tier.get('service_type')!r} is not one of {', '.join(SERVICE_TYPES)}")
    peers = spec.get("peers") or {}
    for name, peer in peers.items():
        where = f"ecommerce_net_peers.{name}"
        checks.label(name, f"ecommerce_net_peers: key {name!r}", out)
        if name in names:
            out.append(f"{where}: a peer cannot have a tier's name")
        if not isinstance(peer, dict):
            out.append(f"{where}: {peer!r} must be a mapping (namespace/namespaces + pods, or cidr + except)")
            continue
        checks.collect(out, model.peer_entry, peer, where)
        if "cidr" not in peer and not ({"namespace", "namespaces"} & set(peer)):
            out.append(f"{where}: platform peers live in their own namespace; give namespace (a name) or namespaces "
                       "(labels), or a cidr")
    for i, flow in enumerate(spec.get("flows") or []):
        where = f"ecommerce_net_flows[{i}]"
        if flow.get("from") not in names and flow.get("from") not in peers:
            out.append(f"{where}.from: {flow.get('from')!r} is neither a tier ({', '.join(map(str, names))}) nor a peer "
                       f"of ecommerce_net_peers ({', '.join(sorted(peers))})")
        if flow.get("to") not in names:
            out.append(f"{where}.to: {flow.get('to')!r} is not a tier ({', '.join(map(str, names))}); flows end at the "
                       "application (the role writes policies in its namespaces only)")
        checks.collect(out, model.port_entry, flow.get("port"), f"{where}.port")
    envs = spec.get("environments") or []
    if not envs:
        out.append("ecommerce_net_environments: at least one environment is needed")
    for i, env in enumerate(envs):
        checks.label(env.get("name"), f"ecommerce_net_environments[{i}].name", out)
        checks.label(env.get("namespace"), f"ecommerce_net_environments[{i}].namespace", out)
    if len({e.get("namespace") for e in envs}) != len(envs):
        out.append("ecommerce_net_environments: two environments share a namespace")
    out += _lb_problems(spec, tiers)
    out += _ingress_problems(spec, names, peers)
    mon = spec.get("monitoring") or {}
    if mon.get("enabled") and MONITORING not in peers:
        out.append("ecommerce_net_monitoring.enabled: Prometheus must be able to scrape; declare where it runs as "
                   "ecommerce_net_peers.monitoring")
    if mon.get("enabled"):
        checks.prometheus_duration(mon.get("latency_for"), "ecommerce_net_monitoring.latency_for", out)
        checks.prometheus_duration(mon.get("interval", "30s"), "ecommerce_net_monitoring.interval", out)
    return out


def _lb_problems(spec: dict, tiers: list[dict]) -> list[str]:
    out: list[str] = []
    lb = spec.get("lb") or {}
    policy = lb.get("external_traffic_policy", "Local")
    if policy not in TRAFFIC_POLICIES:
        out.append(f"ecommerce_net_lb.external_traffic_policy: {policy!r} is not one of {', '.join(TRAFFIC_POLICIES)}")
    nodes = lb.get("node_cidrs") or []
    for i, cidr in enumerate(nodes):
        checks.collect(out, model.peer_entry, {"cidr": cidr}, f"ecommerce_net_lb.node_cidrs[{i}]")
    if policy == "Cluster" and not nodes and any(t.get("service_type") in ("LoadBalancer", "NodePort") for t in tiers):
        out.append("ecommerce_net_lb.node_cidrs: with external_traffic_policy Cluster the LoadBalancer delivers "
                   "client traffic from node addresses; list the nodes' ranges")
    return out


def _ingress_problems(spec: dict, names: list, peers: dict) -> list[str]:
    out: list[str] = []
    ingress = spec.get("ingress") or {}
    if not ingress.get("enabled"):
        return out
    api = spec.get("ingress_api", "gateway")
    if api not in INGRESS_APIS:
        out.append(f"ecommerce_net_ingress_api: {api!r} is not one of {', '.join(INGRESS_APIS)}")
    host = ingress.get("host")
    if not isinstance(host, str) or not HOSTNAME.match(host) or len(host) > 253:
        out.append(f"ecommerce_net_ingress.host: {host!r} is not a DNS name (lowercase letters, digits, '-', '.')")
    if ingress.get("backend") not in names:
        out.append(f"ecommerce_net_ingress.backend: {ingress.get('backend')!r} is not a tier ({', '.join(map(str, names))})")
    if GATEWAY not in peers:
        out.append("ecommerce_net_ingress.enabled: the gateway (or ingress controller) must reach the backend; "
                   "declare where its pods run as ecommerce_net_peers.gateway")
    elif (api == "ingress") == _selects_envoy_gateway(peers[GATEWAY]):
        # The peer the policies admit to the backend must be the one that serves the chosen API,
        # or the serving controller is locked out while the proof (about the peer) still passes.
        if api == "ingress":
            out.append("ecommerce_net_ingress_api: 'ingress' is served by an Ingress controller (class "
                       f"{ingress.get('class_name', 'nginx')!r}), but ecommerce_net_peers.gateway still selects Envoy "
                       "Gateway's proxies, so the policies would lock the controller out of the backend; set "
                       "ecommerce_net_peers.gateway to the controller's pods (ingress-nginx: namespace ingress-nginx, "
                       "pods app.kubernetes.io/name: ingress-nginx)")
        elif ingress.get("implementation", "envoy-gateway") == "envoy-gateway":
            out.append("ecommerce_net_ingress.implementation: 'envoy-gateway' serves the Gateway, but "
                       "ecommerce_net_peers.gateway does not select its proxies (labels app.kubernetes.io/managed-by: "
                       "envoy-gateway, app.kubernetes.io/component: proxy), so the policies would lock them out of the "
                       "backend; point ecommerce_net_peers.gateway at them, or set implementation: none for another "
                       "Gateway implementation")
    rps = ingress.get("rate_limit_rps") or 0
    if isinstance(rps, bool) or not isinstance(rps, int) or rps < 0:
        out.append(f"ecommerce_net_ingress.rate_limit_rps: {rps!r} must be a whole number (0: no limit)")
    if api == "gateway":
        implementation = ingress.get("implementation", "envoy-gateway")
        if implementation not in IMPLEMENTATIONS:
            out.append(f"ecommerce_net_ingress.implementation: {implementation!r} is not one of {', '.join(IMPLEMENTATIONS)}")
        if rps and implementation == "none":
            out.append(f"ecommerce_net_ingress.rate_limit_rps: {rps} needs an implementation's policy object (Gateway API "
                       "has no portable rate limit); set implementation: envoy-gateway, or 0")
        if ingress.get("waf"):
            out.append("ecommerce_net_ingress.waf: Gateway API and Envoy Gateway have no WAF object; put your cloud's "
                       "WAF in front of the load balancer, or use ecommerce_net_ingress_api: ingress with a "
                       "ModSecurity-capable controller")
        checks.label(ingress.get("gateway_class_name"), "ecommerce_net_ingress.gateway_class_name", out)
    return out


# -- plan ---------------------------------------------------------------------------------------
def with_plan(spec: dict) -> tuple[dict, list[str]]:
    """The spec with the LoadBalancer's node ranges from the IP plan (fabric_clusters entry of
    this cluster) when the role gives none; given in both, they must agree."""
    lb = dict(spec.get("lb") or {})
    merged, out = fabric_clusters.fill({"name": spec.get("cluster_name"), "node_cidrs": lb.get("node_cidrs")},
                                       "ecommerce_net_lb", spec.get("fabric_clusters"), {"node_cidrs": "node_cidrs"})
    lb["node_cidrs"] = merged.get("node_cidrs") or []
    return {**spec, "lb": lb}, out


def plan(spec: dict) -> dict:
    """The whole plan, or only ``problems`` when a variable is bad or an address range cannot be used."""
    found = problems(spec)
    if found:
        return {"problems": found}
    try:
        return _plan(with_plan(spec)[0])
    except ValidationError as exc:  # a range a probe cannot use: data the role shows, like the rest
        return {"problems": [str(exc)]}


def _plan(spec: dict) -> dict:
    spec["probes"] = {name: _probe_address(f"ecommerce_net_peers.{name}", peer)
                      for name, peer in (spec.get("peers") or {}).items() if "cidr" in peer}
    lb = spec.get("lb") or {}
    if lb.get("external_traffic_policy") == "Cluster" and lb.get("node_cidrs"):
        # What the pods see of the internet then: the nodes, after the LoadBalancer's SNAT.
        spec["probes"][INTERNET] = _probe_address("ecommerce_net_lb.node_cidrs[0]", {"cidr": lb["node_cidrs"][0]})
    return {"problems": [], "policy_config": policy_config(spec), "objects": objects(spec),
            "connection": fabric_clusters.connection(spec, "ecommerce_net"),
            "stand_ins": stand_ins(spec), "expect": expectations(spec), "proof_namespaces": proof_namespaces(spec),
            "range_names": range_names(spec), "warnings": workload_warnings(spec),
            "tls_hosts": tls_hosts(spec) if (spec.get("ingress") or {}).get("enabled") else []}


def range_names(spec: dict) -> list[dict]:
    """The peers given as address ranges, by their names (``internet``), for the reports."""
    return [{"name": name, "cidr": peer["cidr"], "except": list(peer.get("except") or [])}
            for name, peer in sorted((spec.get("peers") or {}).items()) if isinstance(peer, dict) and peer.get("cidr")]


def _probe_address(where: str, peer: dict) -> str:
    """An address the range admits (the proof sends from it)."""
    allowed = ipplan.parse(f"{where}.cidr", peer["cidr"])
    for item in peer.get("except") or []:
        allowed = allowed - ipplan.parse(f"{where}.except", item)
    if not allowed:
        raise ValidationError(f"{where}: its except covers the whole cidr")
    first = next(iter(allowed.iter_cidrs()))
    return str(first[1] if first.size > 2 else first[0])


def _grouped_flows(spec: dict) -> list[tuple[str, str, list]]:
    """Declared flows merged per (from, to), ports in declaration order."""
    merged: dict[tuple[str, str], list] = {}
    for flow in spec.get("flows") or []:
        ports = merged.setdefault((flow["from"], flow["to"]), [])
        if flow["port"] not in ports:
            ports.append(flow["port"])
    return [(src, dst, ports) for (src, dst), ports in merged.items()]


def _policy_peers(spec: dict, name: str) -> list[dict]:
    """network_policies peers for a flow's source. Platform pods are chosen by namespace labels,
    so only the ingress side (in the application's namespaces) is written; `internet` is what
    reaches the pods: client addresses (externalTrafficPolicy Local) or node addresses (Cluster)."""
    lb = spec.get("lb") or {}
    if name == INTERNET and lb.get("external_traffic_policy") == "Cluster":
        return [{"cidr": cidr} for cidr in lb["node_cidrs"]]
    peer = spec["peers"].get(name)
    if peer is None:
        return [{"pods": {"app": name}}]
    if "cidr" in peer:
        return [{"cidr": peer["cidr"], **({"except": list(peer["except"])} if peer.get("except") else {})}]
    namespaces = {"kubernetes.io/metadata.name": peer["namespace"]} if "namespace" in peer else dict(peer["namespaces"])
    return [{"namespaces": namespaces, "pods": dict(peer.get("pods") or {})}]


def policy_config(spec: dict) -> list[dict]:
    """network_policies intent: default deny and exactly the declared flows, per environment."""
    out = []
    for env in spec["environments"]:
        flows = []
        for src, dst, ports in _grouped_flows(spec):
            peers = _policy_peers(spec, src)
            for index, peer in enumerate(peers):
                flows.append({"name": f"{src}-to-{dst}" + (f"-{index}" if index else ""), "from": peer,
                              "to": {"pods": {"app": dst}}, "ports": list(ports)})
        out.append({"namespace": env["namespace"], "default_deny": True, "allow_dns": spec.get("dns_egress", True),
                    "flows": flows})
    return out


def host_of(spec: dict, env: dict) -> str:
    host = spec["ingress"]["host"]
    return host if env["name"] == "production" else f"{env['name']}.{host}"


def cert_managed(spec: dict) -> bool:
    """ecommerce_net_tls.mode cert-manager with the ingress on: cert-manager issues shop-tls."""
    return bool((spec.get("ingress") or {}).get("enabled")) and (spec.get("tls") or {}).get("mode") == "cert-manager"


def tls_hosts(spec: dict) -> list[str]:
    """The names shop-tls covers: the ingress host and <environment>.<host> for the others."""
    host = spec["ingress"]["host"]
    return [host] + [f"{env['name']}.{host}" for env in spec["environments"] if env["name"] != "production"]


def objects(spec: dict) -> list[dict]:
    """Namespaces, Services, the Gateway API entry (or Ingress), monitoring and PDBs."""
    out = []
    for env in spec["environments"]:
        ns = env["namespace"]
        out.append({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"environment": env["name"], "app.kubernetes.io/part-of": "ecommerce"}}})
        if cert_managed(spec):
            out.append(tls_certificate.cert_manager_certificate(TLS_SECRET, ns, tls_hosts(spec), spec["tls"]))
        for tier in spec["tiers"]:
            out += _services(spec, tier, ns)
        if spec["ingress"].get("enabled"):
            out += _gateway(spec, env) if spec.get("ingress_api", "gateway") == "gateway" else [_ingress(spec, env)]
        if spec["monitoring"].get("enabled"):
            out += _monitoring(spec, ns)
    out += _disruption_budgets(spec)
    return out


def _services(spec: dict, tier: dict, ns: str) -> list[dict]:
    """The tier's Service publishes its port only; metrics go on a ClusterIP Service of their own,
    so a LoadBalancer never exposes them."""
    svc_type = tier.get("service_type", "ClusterIP")
    labels = {"app": tier["name"]}
    ports = [{"name": tier.get("port_name", "http"), "port": tier["port"], "targetPort": tier["port"], "protocol": "TCP"}]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": tier["name"], "namespace": ns, "labels": labels},
               "spec": {"type": svc_type, "selector": {"app": tier["name"]}, "ports": ports}}
    if tier.get("headless"):
        service["spec"]["clusterIP"] = "None"
    if svc_type in ("LoadBalancer", "NodePort"):
        lb = spec.get("lb") or {}
        service["spec"]["externalTrafficPolicy"] = lb.get("external_traffic_policy", "Local")
        if svc_type == "LoadBalancer":
            annotations = dict(lb.get("annotations") or {})
            if lb.get("tls_certificate_arn"):
                # The NLB terminates TLS on 443 and forwards plain HTTP to the tier's port.
                annotations.update({AWS_SSL_CERT: lb["tls_certificate_arn"], AWS_SSL_PORTS: "443"})
                ports.append({"name": "https", "port": 443, "targetPort": tier["port"], "protocol": "TCP"})
            if annotations:
                service["metadata"]["annotations"] = annotations
    out = [service]
    if tier.get("metrics_port"):
        out.append({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": f"{tier['name']}-metrics", "namespace": ns, "labels": {**labels, **METRICS_COMPONENT}},
                    "spec": {"type": "ClusterIP", "selector": {"app": tier["name"]},
                             "ports": [{"name": "metrics", "port": tier["metrics_port"], "targetPort": tier["metrics_port"],
                                        "protocol": "TCP"}]}})
    return out


def _backend_port(spec: dict) -> int:
    return next(t["port"] for t in spec["tiers"] if t["name"] == spec["ingress"]["backend"])


def _gateway(spec: dict, env: dict) -> list[dict]:
    """Gateway + HTTPRoutes (gateway.networking.k8s.io/v1): HTTPS terminated with the TLS Secret,
    HTTP redirected to HTTPS by a RequestRedirect filter; rate limits as the implementation's policy."""
    ingress, ns, host = spec["ingress"], env["namespace"], host_of(spec, env)
    same = {"namespaces": {"from": "Same"}}
    gateway = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": ENTRY, "namespace": ns},
               "spec": {"gatewayClassName": ingress["gateway_class_name"], "listeners": [
                   {"name": "http", "protocol": "HTTP", "port": 80, "hostname": host, "allowedRoutes": same},
                   {"name": "https", "protocol": "HTTPS", "port": 443, "hostname": host, "allowedRoutes": same,
                    "tls": {"mode": "Terminate", "certificateRefs": [{"group": "", "kind": "Secret", "name": TLS_SECRET}]}}]}}
    redirect = ingress.get("ssl_redirect", True)
    parents = [{"name": ENTRY, "sectionName": "https"}] + ([] if redirect else [{"name": ENTRY, "sectionName": "http"}])
    out = [gateway, {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                     "metadata": {"name": ENTRY, "namespace": ns},
                     "spec": {"parentRefs": parents, "hostnames": [host], "rules": [
                         {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                          "backendRefs": [{"name": ingress["backend"], "port": _backend_port(spec)}]}]}}]
    if redirect:
        out.append({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                    "metadata": {"name": f"{ENTRY}-https-redirect", "namespace": ns},
                    "spec": {"parentRefs": [{"name": ENTRY, "sectionName": "http"}], "hostnames": [host], "rules": [
                        {"filters": [{"type": "RequestRedirect",
                                      "requestRedirect": {"scheme": "https", "statusCode": 301}}]}]}})
    if ingress.get("rate_limit_rps") and ingress.get("implementation", "envoy-gateway") == "envoy-gateway":
        out.append({"apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "BackendTrafficPolicy",
                    "metadata": {"name": f"{ENTRY}-rate-limit", "namespace": ns},
                    "spec": {"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": ENTRY}],
                             "rateLimit": {"type": "Local", "local": {"rules": [
                                 {"limit": {"requests": ingress["rate_limit_rps"], "unit": "Second"}}]}}}})
    return out


def _selects_envoy_gateway(peer) -> bool:
    """Whether a peer selects Envoy Gateway's proxy pods (the labels Envoy Gateway puts on them)."""
    pods = (peer.get("pods") or {}) if isinstance(peer, dict) else {}
    return pods.get("app.kubernetes.io/managed-by") == "envoy-gateway"


def _ingress(spec: dict, env: dict) -> dict:
    """networking.k8s.io/v1 Ingress for clusters that still run a maintained Ingress controller
    (the annotations are ingress-nginx's, which the chapter used)."""
    ingress, host = spec["ingress"], host_of(spec, env)
    annotations = {}
    if ingress.get("ssl_redirect", True):
        annotations["nginx.ingress.kubernetes.io/ssl-redirect"] = "true"
        annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] = "true"
    if ingress.get("rate_limit_rps"):
        annotations["nginx.ingress.kubernetes.io/limit-rps"] = str(ingress["rate_limit_rps"])
    if ingress.get("waf"):
        annotations["nginx.ingress.kubernetes.io/enable-modsecurity"] = "true"
        annotations["nginx.ingress.kubernetes.io/enable-owasp-core-rules"] = "true"
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": ENTRY, "namespace": env["namespace"], "annotations": annotations},
            "spec": {"ingressClassName": ingress.get("class_name", "nginx"),
                     "tls": [{"hosts": [host], "secretName": TLS_SECRET}],
                     "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                         "service": {"name": ingress["backend"], "port": {"number": _backend_port(spec)}}}}]}}]}}


def _monitoring(spec: dict, ns: str) -> list[dict]:
    mon = spec["monitoring"]
    return [
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "ecommerce", "namespace": ns},
         "spec": {"selector": {"matchLabels": dict(METRICS_COMPONENT)},
                  "endpoints": [{"port": "metrics", "interval": mon.get("interval", "30s")}]}},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "network-alerts", "namespace": ns},
         "spec": {"groups": [{"name": "network", "rules": [
             {"alert": "HighLatency",
              "expr": 'histogram_quantile(0.95, sum by (le, service) '
                      f'(rate(http_request_duration_seconds_bucket{{namespace="{ns}"}}[5m]))) > {mon["latency_threshold_seconds"]}',
              "for": mon["latency_for"], "labels": {"severity": "warning"},
              "annotations": {"summary": "p95 latency of {{ $labels.service }} above " + f"{mon['latency_threshold_seconds']}s"}},
             {"alert": "HighErrorRate",
              "expr": f'sum by (service) (rate(http_requests_total{{namespace="{ns}", status=~"5.."}}[5m])) / '
                      f'sum by (service) (rate(http_requests_total{{namespace="{ns}"}}[5m])) > {mon["error_rate_threshold"]}',
              "for": mon["latency_for"], "labels": {"severity": "critical"},
              "annotations": {"summary": "5xx ratio of {{ $labels.service }} above " + f"{mon['error_rate_threshold']}"}}]}]}}]


def tier_workloads(spec: dict) -> list[dict]:
    """The user's workloads that belong to a tier (pod template labelled app=<tier>)."""
    names = {t["name"] for t in spec["tiers"]}
    return [w for w in spec.get("workloads") or []
            if w.get("kind") in ("Deployment", "StatefulSet")
            and ((((w.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}).get("app") in names]


def _replicas(workload: dict) -> int:
    """spec.replicas; the API's default (1) when it is not given."""
    replicas = (workload.get("spec") or {}).get("replicas")
    return 1 if replicas is None else replicas


def _disruption_budgets(spec: dict) -> list[dict]:
    """A PodDisruptionBudget per supplied tier workload with more than one replica: node drains
    take at most one pod of a tier at a time."""
    out = []
    for workload in tier_workloads(spec):
        if _replicas(workload) < 2:
            continue
        meta = workload["metadata"]
        selector = workload["spec"].get("selector") or {"matchLabels": {"app": workload["spec"]["template"]["metadata"]["labels"]["app"]}}
        out.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                    "metadata": {"name": meta["name"], "namespace": meta.get("namespace", "default")},
                    "spec": {"maxUnavailable": 1, "selector": selector}})
    return out


def workload_warnings(spec: dict) -> list[str]:
    """The chapter's pitfalls in the supplied workloads: no readiness probe (Services send
    traffic to pods that are not ready), several replicas with no spread over the topology key
    (one zone's loss takes the tier down)."""
    out = []
    key = spec.get("spread_topology_key") or "topology.kubernetes.io/zone"
    for workload in tier_workloads(spec):
        name = f"{workload['kind']} {workload['metadata'].get('namespace', 'default')}/{workload['metadata']['name']}"
        pod_spec = workload["spec"]["template"].get("spec") or {}
        if not all(c.get("readinessProbe") for c in pod_spec.get("containers") or []):
            out.append(f"{name}: a container has no readinessProbe; its Service will send traffic to pods that are not ready")
        spread = [c.get("topologyKey") for c in pod_spec.get("topologySpreadConstraints") or []]
        if _replicas(workload) > 1 and key not in spread:
            out.append(f"{name}: {workload['spec']['replicas']} replicas with no topologySpreadConstraints over {key}; "
                       "they may all land in one zone")
    return out


# -- proof --------------------------------------------------------------------------------------
def stand_ins(spec: dict) -> list[dict]:
    """What the plan says will run, as pods: the tiers per environment, the platform's peers,
    and the cluster DNS. Live pods replace them where they exist (netpol_analyze stand_ins)."""
    out = []
    for env in spec["environments"]:
        for tier in spec["tiers"]:
            ports = [tier["port"]] + ([tier["metrics_port"]] if tier.get("metrics_port") else [])
            out.append(model.stand_in_pod(env["namespace"], tier["name"], {"app": tier["name"]}, ports))
    for name, peer in (spec.get("peers") or {}).items():
        if "cidr" in peer:
            continue
        if "namespace" in peer:
            out.append(model.stand_in_pod(peer["namespace"], name, peer.get("pods") or {}))
        else:  # chosen by namespace labels: a namespace of that shape, named after the peer
            out.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(peer["namespaces"])}})
            out.append(model.stand_in_pod(name, name, peer.get("pods") or {}))
    out.append(model.cluster_dns_stand_in())
    return out


def proof_namespaces(spec: dict) -> list[str]:
    """The namespaces a live proof reads: the application's, the platform peers', the DNS's."""
    out = [env["namespace"] for env in spec["environments"]]
    out += [peer["namespace"] for peer in (spec.get("peers") or {}).values() if "namespace" in peer]
    return sorted(set(out + [DNS["namespace"]]))


def _ref(spec: dict, name: str, ns: str):
    """An expectation side for a tier (in ns), a platform peer, or an address range."""
    if name in spec["probes"]:
        return spec["probes"][name]
    peer = (spec.get("peers") or {}).get(name)
    if peer is None:
        return {"namespace": ns, "pods": {"app": name}}
    if "namespace" in peer:
        return {"namespace": peer["namespace"], "pods": dict(peer.get("pods") or {})}
    return {"namespaces": dict(peer["namespaces"]), "pods": dict(peer.get("pods") or {})}


def _other_port(ports: list) -> int:
    taken = {p for p in ports if isinstance(p, int)}
    return next(p for p in (443, 8443, 1, 2) if p not in taken)


def expectations(spec: dict) -> list[dict]:
    """What every run proves, in words: each declared flow open on its ports and no other; the
    platform's own traffic open (the gateway to its backend, Prometheus to every metrics port,
    DNS for every pod, what the LoadBalancer publishes); nothing else between tiers, from the
    platform, from outside, or across environments."""
    out = []
    tiers = {t["name"]: t for t in spec["tiers"]}
    flows = _grouped_flows(spec)
    declared = {(src, dst): ports for src, dst, ports in flows}
    cluster_policy = (spec.get("lb") or {}).get("external_traffic_policy") == "Cluster"

    def expect(src, dst, ns, allowed, why, port=None):
        entry = {"src": _ref(spec, src, ns), "dst": _ref(spec, dst, ns), "allowed": allowed, "why": why}
        if port is not None:
            entry.update(model.port_entry(port, "port"))
        out.append(entry)

    for env in spec["environments"]:
        ns = env["namespace"]
        for src, dst, ports in flows:
            for port in ports:
                expect(src, dst, ns, True, f"declared flow {src} -> {dst} on {port}", port)
            if all(isinstance(p, int) for p in ports):
                other = _other_port(ports)
                expect(src, dst, ns, False, f"{src} -> {dst} is declared on {', '.join(map(str, ports))} only", other)
        if spec["ingress"].get("enabled"):
            backend = spec["ingress"]["backend"]
            expect(GATEWAY, backend, ns, True, f"the gateway (ecommerce_net_peers.gateway) must reach {backend}:"
                   f"{tiers[backend]['port']} to serve {host_of(spec, env)}", tiers[backend]["port"])
        if spec["monitoring"].get("enabled"):
            for tier in spec["tiers"]:
                if tier.get("metrics_port"):
                    expect(MONITORING, tier["name"], ns, True, f"Prometheus (ecommerce_net_peers.monitoring) scrapes "
                           f"{tier['name']}'s metrics on {tier['metrics_port']}", tier["metrics_port"])
        for tier in spec["tiers"]:
            if tier.get("service_type") in ("LoadBalancer", "NodePort") and INTERNET in spec["probes"]:
                how = "from node addresses (externalTrafficPolicy Cluster)" if cluster_policy else "from client addresses"
                out.append({"src": spec["probes"][INTERNET], "dst": _ref(spec, tier["name"], ns), "port": tier["port"],
                            "protocol": "TCP", "allowed": True,
                            "why": f"the {tier['service_type']} Service publishes {tier['name']}:{tier['port']}, {how}"})
                if tier.get("metrics_port"):
                    out.append({"src": spec["probes"][INTERNET], "dst": _ref(spec, tier["name"], ns),
                                "port": tier["metrics_port"], "protocol": "TCP", "allowed": False,
                                "why": f"only what the {tier['service_type']} publishes: not {tier['name']}'s metrics"})
            if spec.get("dns_egress", True):
                out.append({"src": _ref(spec, tier["name"], ns), "dst": dict(DNS), "port": 53, "protocol": "UDP",
                            "allowed": True, "why": f"{tier['name']} resolves names (ecommerce_net_dns_egress)"})
        sources = list(tiers) + sorted(spec.get("peers") or {})
        for src in sources:
            for dst in tiers:
                if src != dst and (src, dst) not in declared:
                    expect(src, dst, ns, False, f"nothing declared from {src} to {dst}")
        for other in spec["environments"]:
            if other["namespace"] != ns:
                out.append({"src": {"namespace": ns, "pods": {}}, "dst": {"namespace": other["namespace"], "pods": {}},
                            "allowed": False, "why": f"environments are apart ({env['name']} -> {other['name']})"})
    return out
