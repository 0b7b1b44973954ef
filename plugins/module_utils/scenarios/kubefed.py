# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scenario 2 as data: clusters (region, pod range, the address the application answers on)
and the services they share -> ServiceExports, cross-cluster NetworkPolicies, health-gated
global records, and the expectations that prove the policies.

What the chapter had and what replaces it:
- ``multicluster.k8s.io`` -> ``multicluster.x-k8s.io`` (the MCS API, KEP-1645); a ServiceExport
  has no spec (ports come from the Service), and ServiceImports are made by the MCS
  implementation (Submariner, Cilium, GKE...), never by hand as the chapter does;
- ``DNSEndpoint`` in ``multicluster.k8s.io`` -> ``externaldns.k8s.io/v1alpha1``;
- ``global.load.balancer/config`` (no controller reads it) -> the DNSEndpoint's targets: the
  healthy clusters of the best priority tier (globaldns);
- ``kubefed join`` -> ``kubefedctl join``, done here by the cluster_join module (bound tokens
  that are renewed, instead of a legacy token Secret);
- the ``Jaeger`` CR and the database StatefulSet are application concerns, not networking ones.
"""

from __future__ import annotations

import re

from ansible_collections.k8snet.fabric.plugins.module_utils import tls_certificate
from ansible_collections.k8snet.fabric.plugins.module_utils.plan import checks, fabric_clusters, globaldns, ipplan
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol import model

MCS_API = "multicluster.x-k8s.io/v1alpha1"
GSLB_API = "k8gb.io/v1beta1"
# Who answers for the global name, and the routings each one has: records the controller publishes
# from its probes (external-dns), k8gb's Gslb in every cluster (health checked in-cluster), or
# Route 53's own routing and health checks (external-dns DNSEndpoint with aws/* properties).
MECHANISMS = {"probes": ("failover", "weighted"), "k8gb": ("failover", "weighted"),
              "route53": ("failover", "weighted", "latency", "geolocation")}


SHAPES = {
    "host": "str",
    "kubeconfig": ("opt", "str"),
    "clusters": ("list", {"name!": "str", "context": ("opt", "str"), "region": ("opt", "str"), "pod_cidr": ("opt", "str"),
                          "service_cidr": ("opt", "str"), "vips": ("opt", ("list", "str")), "priority": ("opt", "int"),
                          "weight": ("opt", "int"), "geo": ("opt", "str"), "health_check_id": ("opt", "str"),
                          "prometheus": ("opt", "str")}),
    "services": ("list", {"name!": "str", "namespace!": "str", "port!": "int", "target_port": ("opt", "int"),
                          "clusters": ("opt", ("list", "str")), "data_region": ("opt", "str"),
                          "allow_from": ("opt", ("list", "str"))}),
    "global_dns": {"domain": ("opt", "str"), "ttl": ("opt", "int"), "records": ("opt", "str"), "mechanism": ("opt", "str"),
                   "ingress_class": ("opt", "str")},
    "global_tls": ("opt", {"mode": "str", "issuer": ("opt", "str"), "days": ("opt", "int"), "renew_days": ("opt", "int")}),
    "probes": ("opt", {"enabled": "bool", "port": "int", "timeout": "number"}),
    "federated_types": ("opt", ("list", "str")),
    "lb": ("opt", {"enabled": "bool", "port": "int", "clients": ("list", "str"), "address_annotation": ("opt", "str")}),
    "metrics": ("opt", {"enabled": "bool", "port": "int", "interval": "str", "namespace": "str"}),
}
# What a kubefed cluster entry may take from the IP plan (fabric_clusters), role field -> plan field.
FROM_PLAN = {"context": "context", "region": "region", "pod_cidr": "pod_cidrs", "service_cidr": "service_cidrs",
             "vips": "vips"}
SCRAPE_API = "monitoring.coreos.com/v1alpha1"
METALLB_ADDRESSES = "metallb.io/loadBalancerIPs"  # MetalLB's annotation for the addresses a Service wants
PROMETHEUS_URL = re.compile(r"^(https?)://([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):([0-9]{1,5})$")


def problems(spec: dict) -> list[str]:
    """Every bad value in the role's variables, naming the variable; empty when all is well.
    Shapes first: nothing below reads a field of the wrong type."""
    out = fabric_clusters.role_problems(spec, SHAPES, "kubefed_")
    if out:
        return out
    spec, out = resolved(spec)
    if out:
        return out
    clusters = spec.get("clusters") or []
    if not clusters:
        out.append("kubefed_clusters: at least one cluster is needed")
    for i, name in enumerate(spec.get("federated_types") or []):
        resource, _unused, group = name.partition(".")
        if name != "*" and not (checks.DNS_LABEL.match(resource) and all(checks.DNS_LABEL.match(g) for g in group.split(".") if group)):
            out.append(f"kubefed_federated_types[{i}]: {name!r} is not a type written resource[.group] "
                       "(deployments.apps, services) or '*'")
    names, pods = [], {}
    for i, cluster in enumerate(clusters):
        where = f"kubefed_clusters[{i}]"
        checks.unique_label(cluster.get("name"), f"{where}.name", names, out)
        if not cluster.get("context"):
            out.append(f"{where}.context: the kubeconfig context of the cluster is needed (here or in fabric_clusters)")
        if not cluster.get("pod_cidrs"):
            out.append(f"{where}.pod_cidr: needed (cross-cluster traffic is allowed by pod range; here or in fabric_clusters)")
        for value in cluster.get("pod_cidrs") or []:  # the valid ones, for the checks below; range_problems names the rest
            parsed = checks.collect([], ipplan.parse, "", value)
            if parsed is not None:
                pods[cluster["name"]] = pods[cluster["name"]] | parsed if cluster["name"] in pods else parsed
        checks.small_number(cluster.get("priority", 1), f"{where}.priority", out)
    out += source_name_clashes(clusters)
    # The role's ranges merged with the plan's, checked as the plan's are: one rule, one wording.
    out += fabric_clusters.range_problems([{**cluster, "where": f"kubefed_clusters[{i}]"}
                                           for i, cluster in enumerate(clusters) if isinstance(cluster.get("name"), str)])
    if spec.get("host") not in names:
        out.append(f"kubefed_host: {spec.get('host')!r} is not one of kubefed_clusters "
                   f"({', '.join(sorted(set(map(str, names))))})")
    for where, svc in checks.mappings(spec.get("services"), "kubefed_services", out):
        checks.namespaced_name(svc, where, out)
        checks.port(svc.get("port"), f"{where}.port", out)
        checks.port(svc.get("target_port", svc.get("port")), f"{where}.target_port", out)
        for name in svc.get("clusters") or []:
            if name not in names:
                out.append(f"{where}.clusters: {name!r} is not one of kubefed_clusters")
        out += compliance_problems(svc, where, clusters, pods)
    dns = spec.get("global_dns") or {}
    if dns.get("domain"):
        checks.domain(dns["domain"], "kubefed_global_dns.domain", out)
    out += global_tls_problems(spec)
    out += lb_problems(spec, clusters, pods)
    out += metrics_problems(spec, clusters)
    mechanism, routing = dns.get("mechanism", "probes"), dns.get("records", "failover")
    if mechanism not in MECHANISMS:
        out.append(f"kubefed_global_dns.mechanism: {mechanism!r} is not one of {', '.join(MECHANISMS)}")
    elif routing not in MECHANISMS[mechanism]:
        out.append(f"kubefed_global_dns.records: {routing!r} is not a routing of mechanism {mechanism} "
                   f"({', '.join(MECHANISMS[mechanism])})")
    elif not out:
        out += routing_problems(clusters, mechanism, routing, dns)
    return out


def resolved(spec: dict) -> tuple[dict, list[str]]:
    """The spec with every cluster completed from the IP plan (fabric_clusters); clusters then
    carry lists pod_cidrs, service_cidrs (IPv4, IPv6 or both) and vips."""
    clusters, out, files = [], [], {}
    for i, cluster in enumerate(spec.get("clusters") or []):
        merged, found = fabric_clusters.fill(cluster, f"kubefed_clusters[{i}]", spec.get("fabric_clusters"), FROM_PLAN)
        clusters.append(merged)
        out += found
        index, planned = fabric_clusters.find(spec.get("fabric_clusters"), cluster.get("name"))
        if (planned or {}).get("kubeconfig"):
            files.setdefault(planned["kubeconfig"], f"fabric_clusters[{index}].kubeconfig")
    # kubefedctl's model: every context in one kubeconfig (the join reads host and member at once);
    # kubefed_kubeconfig, when given, is that file whatever the plan says.
    if not spec.get("kubeconfig") and len(files) > 1:
        out.append("kubefed: the federation's clusters must be reachable through one kubeconfig (or set "
                   "kubefed_kubeconfig), but " + ", ".join(f"{where} is {path}" for path, where in files.items()))
    kubeconfig = spec.get("kubeconfig") or next(iter(files), "")
    return {**spec, "clusters": clusters, "kubeconfig": kubeconfig}, out


def in_region(cluster: dict, data_region: str) -> bool:
    """A cluster holds a data region's data when its region is that region or inside it
    (eu-west-1 is in eu)."""
    region = str(cluster.get("region") or "")
    return region == data_region or region.startswith(f"{data_region}-")


def compliance_problems(svc: dict, where: str, clusters: list[dict], pods: dict) -> list[str]:
    """A regulated service (data_region) runs, is published and is reachable only in its region's
    clusters; exceptions are named (allow_from: clusters or address ranges), never implied.
    ``pods``: each cluster's parsed pod range (the valid ones)."""
    region = svc.get("data_region")
    if not region:
        return [f"{where}.allow_from: exceptions only apply to a service with a data_region"] if svc.get("allow_from") else []
    out = []
    home = [c for c in clusters if in_region(c, region)]
    if not home:
        out.append(f"{where}.data_region: no cluster is in region {region!r} (cluster regions: "
                   f"{', '.join(sorted(str(c.get('region')) for c in clusters))}); {svc.get('name')}'s data has nowhere to live")
    for name in svc.get("clusters") or []:
        cluster = next((c for c in clusters if c.get("name") == name), None)
        if cluster and not in_region(cluster, region):
            out.append(f"{where}.clusters: {name!r} (region {cluster.get('region')}) is outside data region {region}: "
                       f"{svc.get('name')}'s {region} data would leave {region}")
    names = {c.get("name") for c in clusters}
    for i, source in enumerate(svc.get("allow_from") or []):
        if source in names:
            continue
        parsed = checks.collect(out, ipplan.parse, f"{where}.allow_from[{i}]", source)
        if parsed is None:
            continue
        for cluster in clusters:
            if not in_region(cluster, region) and cluster.get("name") in pods and parsed & pods[cluster["name"]]:
                out.append(f"{where}.allow_from[{i}]: {source} covers pods of {cluster.get('name')} (region {cluster.get('region')}), "
                           f"opening {svc.get('name')}'s {region} data to another region; name the cluster to make that exception")
    return out


def source_name_clashes(clusters: list[dict]) -> list[str]:
    """A cluster named like the name allowed_sources gives another cluster's further pod range
    (us-east's second range is us-east-1) or an allow_from exception (exception-0) would share
    its policies' names: refused here, naming both, instead of failing late at the API."""
    derived = {f"{c.get('name')}-{j}": (i, j) for i, c in enumerate(clusters) for j in range(1, len(c.get("pod_cidrs") or []))}
    out = []
    for i, cluster in enumerate(clusters):
        name = cluster.get("name")
        if name in derived:
            other, j = derived[name]
            origin = (clusters[other].get("origin") or {}).get("pod_cidrs") or []
            source = origin[j] if j < len(origin) else f"kubefed_clusters[{other}].pod_cidrs[{j}]"
            out.append(f"kubefed_clusters[{i}].name: {name!r} is also the name the policies give {source} "
                       f"({clusters[other].get('name')}'s range {clusters[other]['pod_cidrs'][j]}); rename the cluster")
        elif isinstance(name, str) and re.match(r"^exception-\d+$", name):
            out.append(f"kubefed_clusters[{i}].name: {name!r} is the name the policies give an allow_from exception; "
                       "rename the cluster")
    return out


def allowed_sources(svc: dict, spec: dict) -> list[tuple[str, str]]:
    """(name, address range) of what may reach the service: every cluster's pods, or for a
    regulated service its region's clusters and the named exceptions."""
    region, exceptions = svc.get("data_region"), svc.get("allow_from") or []
    # A cluster's first range keeps its name (policy names stay as they were single-stack).
    out = [(c["name"] if j == 0 else f"{c['name']}-{j}", cidr) for c in spec["clusters"]
           if not region or in_region(c, region) or c["name"] in exceptions for j, cidr in enumerate(c["pod_cidrs"])]
    names = {c["name"] for c in spec["clusters"]}
    return out + [(f"exception-{i}", source) for i, source in enumerate(exceptions) if source not in names]


def metrics_problems(spec: dict, clusters: list[dict]) -> list[str]:
    """Cross-cluster metrics: the pods' metrics port, a scrape interval, and every member's
    Prometheus (scheme://host:port) for the host's federation."""
    metrics = spec.get("metrics") or {}
    if not metrics.get("enabled"):
        return []
    out: list[str] = []
    checks.port(metrics.get("port"), "kubefed_metrics.port", out)
    checks.prometheus_duration(metrics.get("interval"), "kubefed_metrics.interval", out)
    checks.label(metrics.get("namespace"), "kubefed_metrics.namespace", out)
    for svc in spec.get("services") or []:
        if isinstance(svc, dict) and metrics.get("port") in (svc.get("port"), svc.get("target_port")):
            out.append(f"kubefed_metrics.port: {metrics.get('port')} is {svc.get('name')}'s serving port; metrics need their own")
    for i, cluster in enumerate(clusters):
        url = cluster.get("prometheus")
        if cluster.get("name") != spec.get("host") and not url:
            out.append(f"kubefed_clusters[{i}].prometheus: the host federates {cluster.get('name')}'s metrics from its "
                       "Prometheus; give its address (https://prometheus.<cluster>.example.com:443)")
        elif url and not PROMETHEUS_URL.match(str(url)):
            out.append(f"kubefed_clusters[{i}].prometheus: {url!r} is not scheme://host:port")
    return out


def lb_problems(spec: dict, clusters: list[dict], pods: dict) -> list[str]:
    """The per-region LoadBalancers: a port, client ranges, and a VIP in every cluster that runs
    a shared service (the VIPs themselves are checked against every range above). ``pods``: each
    cluster's parsed pod range."""
    lb = spec.get("lb") or {}
    if not lb.get("enabled"):
        return []
    out: list[str] = []
    checks.port(lb.get("port"), "kubefed_lb.port", out)
    clients = {i: checks.collect(out, ipplan.parse, f"kubefed_lb.clients[{i}]", cidr)
               for i, cidr in enumerate(lb.get("clients") or [])}
    for svc in (s for s in spec.get("services") or [] if isinstance(s, dict) and s.get("data_region")):
        for i, client in clients.items():
            for cluster in clusters:
                theirs = pods.get(cluster.get("name"))
                if (client is None or theirs is None or in_region(cluster, svc["data_region"])
                        or cluster.get("name") in (svc.get("allow_from") or [])):
                    continue
                # A client range is one family: it must cover all or none of that family's pods.
                theirs = ipplan.of_family(theirs, ipplan.version(client))
                if client & theirs and not theirs.issubset(client):
                    out.append(f"kubefed_lb.clients[{i}]: {lb['clients'][i]} covers part of {cluster.get('name')}'s pods ({', '.join(cluster['pod_cidrs'])}); "
                               f"{svc.get('name')}'s {svc['data_region']} data cannot be kept from them - cover all or none")
    for i, cluster in enumerate(clusters):
        if not cluster.get("vips") and any(cluster.get("name") in (svc.get("clusters") or [cluster.get("name")])
                                           for svc in spec.get("services") or [] if isinstance(svc, dict)):
            out.append(f"kubefed_clusters[{i}].vips: {cluster.get('name')}'s LoadBalancer needs its VIP (kubefed_lb.enabled)")
    return out


def routing_problems(clusters: list[dict], mechanism: str, routing: str, dns: dict) -> list[str]:
    """What the chosen mechanism needs of the clusters, named per cluster."""
    out: list[str] = []
    if mechanism != "probes" and not dns.get("domain"):
        out.append(f"kubefed_global_dns.domain: mechanism {mechanism} publishes <service>.<domain>; a domain is needed")
    where = {c["name"]: f"kubefed_clusters[{i}]" for i, c in enumerate(clusters)}
    if mechanism == "k8gb":
        for c in clusters:
            if not c.get("region"):
                out.append(f"{where[c['name']]}.region: k8gb needs the cluster's geo tag (its k8gb clusterGeoTag)")
        primary = {c.get("region") for c in globaldns.tiers(clusters)[0]}
        if routing == "failover" and len(primary) > 1:
            out.append(f"kubefed_clusters: k8gb fails over to one primary geo tag; the best priority holds regions "
                       f"{', '.join(sorted(map(str, primary)))} (give one of them a lower priority)")
    elif mechanism == "route53":
        out += globaldns.route53_problems(clusters, routing, {c["name"]: where[c["name"]] for c in clusters},
                                          "kubefed_clusters", "cluster")
    return out


def runs_in(svc: dict, spec: dict) -> list[str]:
    """The clusters a service runs in: as listed, else all (a regulated service: its region's)."""
    region = svc.get("data_region")
    return list(svc.get("clusters") or [c["name"] for c in spec["clusters"] if not region or in_region(c, region)])


def gslb_objects(svc: dict, spec: dict) -> list[dict]:
    """k8gb's input in one cluster: an Ingress for the global host, and the Gslb pointing at it
    with the strategy (failover to the best priority's geo tag, or round robin weighted by region)."""
    dns = spec["global_dns"]
    host = f"{svc['name']}.{dns['domain'].rstrip('.')}"
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": svc["name"], "namespace": svc["namespace"]},
               "spec": {"rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                   "service": {"name": svc["name"], "port": {"number": svc["port"]}}}}]}}]}}
    if dns.get("ingress_class"):
        ingress["spec"]["ingressClassName"] = dns["ingress_class"]
    serving = [c for c in spec["clusters"] if c["name"] in runs_in(svc, spec)]
    strategy: dict = {"dnsTtlSeconds": dns.get("ttl", 180)}
    if dns.get("records", "failover") == "failover":
        strategy.update(type="failover", primaryGeoTag=globaldns.tiers(serving)[0][0]["region"])
    else:
        weights: dict = {}
        for c in serving:
            weights[c["region"]] = weights.get(c["region"], 0) + c.get("weight", 1)
        strategy.update(type="roundRobin", weight=weights)
    gslb = {"apiVersion": GSLB_API, "kind": "Gslb", "metadata": {"name": svc["name"], "namespace": svc["namespace"]},
            "spec": {"resourceRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": svc["name"]},
                     "strategy": strategy}}
    return [ingress, gslb]


GLOBAL_TLS_MODES = ("none", "cert-manager")


def global_tls_problems(spec: dict) -> list[str]:
    settings = spec.get("global_tls") or {"mode": "none"}
    if settings.get("mode") not in GLOBAL_TLS_MODES:
        return [f"kubefed_global_tls.mode: {settings.get('mode')!r} is not one of {', '.join(GLOBAL_TLS_MODES)}"]
    if settings["mode"] == "none":
        return []
    out = tls_certificate.cert_manager_problems(settings, "kubefed_global_tls")
    if not (spec.get("global_dns") or {}).get("domain"):
        out.append("kubefed_global_tls.mode: cert-manager certifies <service>.<domain>; kubefed_global_dns.domain is empty")
    return out


def global_certificate(svc: dict, spec: dict) -> list[dict]:
    """The certificate of a shared service's global name, <service>.<domain>, in every cluster it
    runs in (kubefed_global_tls mode cert-manager): whichever cluster DNS sends a client to
    serves the same name from its own Secret <service>-global-tls, which cert-manager renews."""
    settings = spec.get("global_tls") or {}
    if settings.get("mode") != "cert-manager":
        return []
    name = f"{svc['name']}.{spec['global_dns']['domain'].rstrip('.')}"
    return [tls_certificate.cert_manager_certificate(f"{svc['name']}-global-tls", svc["namespace"], [name], settings)]


def cluster_objects(spec: dict) -> dict:
    """Per cluster: the namespaces, Services and ServiceExports of the services that run there
    (with k8gb, their Ingress and Gslb too)."""
    k8gb = (spec.get("global_dns") or {}).get("mechanism") == "k8gb"
    metrics = spec.get("metrics") or {}
    out = {c["name"]: [] for c in spec["clusters"]}
    for svc in spec.get("services") or []:
        for name in runs_in(svc, spec):
            objects = out[name]
            if not any(o["kind"] == "Namespace" and o["metadata"]["name"] == svc["namespace"] for o in objects):
                objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": svc["namespace"]}})
            ports = [{"name": "http", "port": svc["port"], "protocol": "TCP", "targetPort": svc.get("target_port", svc["port"])}]
            if metrics.get("enabled"):
                ports.append({"name": "metrics", "port": metrics["port"], "protocol": "TCP", "targetPort": metrics["port"]})
            objects.append({"apiVersion": "v1", "kind": "Service",
                            "metadata": {"name": svc["name"], "namespace": svc["namespace"], "labels": {"app": svc["name"]}},
                            "spec": {"selector": {"app": svc["name"]}, "ports": ports}})
            objects.append({"apiVersion": MCS_API, "kind": "ServiceExport",
                            "metadata": {"name": svc["name"], "namespace": svc["namespace"]}})
            objects += global_certificate(svc, spec)
            if k8gb:
                objects += gslb_objects(svc, spec)
            if (spec.get("lb") or {}).get("enabled"):
                objects.append(lb_service(svc, next(c for c in spec["clusters"] if c["name"] == name), spec["lb"]))
            if metrics.get("enabled"):
                objects.append(service_monitor(svc, metrics))
    if metrics.get("enabled"):
        out[spec["host"]] += federation_objects(spec)
    return out


def service_monitor(svc: dict, metrics: dict) -> dict:
    """The chapter's cross-cluster ServiceMonitor is a local one in each cluster (a ServiceMonitor
    only ever scrapes its own cluster); the host federates the members' Prometheus below."""
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": {"name": svc["name"], "namespace": svc["namespace"], "labels": {"app": svc["name"]}},
            "spec": {"selector": {"matchLabels": {"app": svc["name"]}},
                     "endpoints": [{"port": "metrics", "interval": metrics["interval"]}]}}


def federation_objects(spec: dict) -> list[dict]:
    """On the host: one ScrapeConfig per member pulling the shared services' series from the
    member's Prometheus /federate (labelled with the cluster), and the alerts on it."""
    metrics = spec["metrics"]
    namespaces = "|".join(sorted({svc["namespace"] for svc in spec.get("services") or []}))
    out, rules = [], []
    for cluster in spec["clusters"]:
        if cluster["name"] == spec["host"] or not cluster.get("prometheus"):
            continue
        scheme, host, port = PROMETHEUS_URL.match(cluster["prometheus"]).groups()
        job = f"federate-{cluster['name']}"
        out.append({"apiVersion": SCRAPE_API, "kind": "ScrapeConfig",
                    "metadata": {"name": job, "namespace": metrics["namespace"]},
                    "spec": {"jobName": job, "metricsPath": "/federate", "honorLabels": True, "scheme": scheme.upper(),
                             "params": {"match[]": [f'{{namespace=~"{namespaces}"}}']},
                             "scrapeInterval": metrics["interval"],
                             "staticConfigs": [{"targets": [f"{host}:{port}"], "labels": {"cluster": cluster["name"]}}]}})
        rules.append({"alert": "FederatedClusterMetricsMissing", "expr": f'up{{job="{job}"}} == 0', "for": "5m",
                      "labels": {"severity": "warning", "cluster": cluster["name"]},
                      "annotations": {"summary": f"The host has no metrics from {cluster['name']}'s Prometheus for 5 minutes"}})
    for svc in spec.get("services") or []:
        rules.append({"alert": "SharedServiceDownInCluster",
                      "expr": f'max by (cluster) (up{{namespace="{svc["namespace"]}", service="{svc["name"]}"}}) == 0',
                      "for": "5m", "labels": {"severity": "critical", "service": svc["name"]},
                      "annotations": {"summary": f"{svc['name']} has no target up in cluster {{{{ $labels.cluster }}}}"}})
    out.append({"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                "metadata": {"name": "kubefed-federation", "namespace": metrics["namespace"]},
                "spec": {"groups": [{"name": "kubefed-federation", "rules": rules}]}})
    return out


def lb_service(svc: dict, cluster: dict, lb: dict) -> dict:
    """The service's LoadBalancer in one region: the cluster's VIPs through the provider's
    annotation (spec.loadBalancerIP is deprecated), Local traffic policy so the policies see clients."""
    annotation = lb.get("address_annotation") or METALLB_ADDRESSES
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"{svc['name']}-lb", "namespace": svc["namespace"], "labels": {"app": svc["name"]},
                         "annotations": {annotation: ",".join(str(v) for v in cluster["vips"])}},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": {"app": svc["name"]},
                     "ports": [{"name": "https", "port": lb["port"], "protocol": "TCP",
                                "targetPort": svc.get("target_port", svc["port"])}]}}


def policy_config(spec: dict) -> list[dict]:
    """network_policies intent (the same in every cluster): default deny, DNS, every cluster's
    pods to the service's pods on the target port, and the service's pods to every cluster on it."""
    by_namespace: dict[str, list[dict]] = {}
    for svc in spec.get("services") or []:
        port = svc.get("target_port", svc["port"])
        flows = by_namespace.setdefault(svc["namespace"], [])
        sources = allowed_sources(svc, spec)
        for name, cidr in sources:
            flows.append({"name": f"{name}-to-{svc['name']}", "from": {"cidr": cidr},
                          "to": {"pods": {"app": svc["name"]}}, "ports": [port]})
            flows.append({"name": f"{svc['name']}-to-{name}", "from": {"pods": {"app": svc["name"]}},
                          "to": {"cidr": cidr}, "ports": [port]})
        if (spec.get("metrics") or {}).get("enabled"):
            flows.append({"name": f"prometheus-to-{svc['name']}", "from": {"namespace": spec["metrics"]["namespace"]},
                          "to": {"pods": {"app": svc["name"]}}, "ports": [spec["metrics"]["port"]]})
        if (spec.get("lb") or {}).get("enabled"):
            allowed = {name for name, _cidr in sources}
            for i, cidr in enumerate(spec["lb"]["clients"]):
                # Clients, never another region's pods that the range happens to cover.
                barred = [pods for c in spec["clusters"] if c["name"] not in allowed for pods in c["pod_cidrs"]
                          if ipplan.contains("clients", cidr, "pods", pods) is None]
                flows.append({"name": f"lb-clients-{i}-to-{svc['name']}",
                              "from": {"cidr": cidr, **({"except": barred} if barred else {})},
                              "to": {"pods": {"app": svc["name"]}}, "ports": [port]})
    return [{"namespace": ns, "default_deny": True, "allow_dns": True, "flows": flows}
            for ns, flows in by_namespace.items()]


def sites(spec: dict) -> list[dict]:
    return [{"name": c["name"], "endpoints": list(c.get("vips") or []), "priority": c.get("priority", 1),
             "weight": c.get("weight", 1), "region": c.get("region"), "geo": c.get("geo"),
             "health_check_id": c.get("health_check_id")} for c in spec["clusters"]]


def records(spec: dict, healthy: dict | None) -> list[dict]:
    """One DNSEndpoint per service on the host: <service>.<domain> -> the serving clusters' VIPs
    (mechanism probes), or every cluster's VIPs with Route 53 routing (route53); none with k8gb."""
    dns = spec.get("global_dns") or {}
    mechanism = dns.get("mechanism", "probes")
    if not dns.get("domain") or mechanism == "k8gb":
        return []
    out = []
    for svc in spec.get("services") or []:
        name, dns_name = f"{svc['name']}-global", f"{svc['name']}.{dns['domain'].rstrip('.')}"
        home = [s for s in sites(spec) if s["name"] in runs_in(svc, spec)]  # regulated data is served at home
        if mechanism == "route53":
            out.append(globaldns.route53_endpoint(name, svc["namespace"], dns_name, home,
                                                  dns.get("records", "failover"), dns.get("ttl", 180)))
        else:
            out.append(globaldns.dns_endpoint(name, svc["namespace"], dns_name, globaldns.serving(home, healthy),
                                              dns.get("records", "failover"), dns.get("ttl", 180)))
    return out


def workloads(services: list[dict]) -> list[dict]:
    """The shared services as pods, so the proof needs no running application."""
    return model.stand_in_pods([(svc["namespace"], svc["name"]) for svc in services])


def proofs(spec: dict) -> dict:
    """Per cluster, what its live policies must show: the services that run there, as pods, and
    the expectations about them (the other clusters' pod ranges are external peers there)."""
    out = {}
    for cluster in spec["clusters"]:
        services = [svc for svc in spec.get("services") or [] if cluster["name"] in runs_in(svc, spec)]
        out[cluster["name"]] = {"workloads": workloads(services), "expect": expectations(spec, services),
                                "range_names": range_names(spec, cluster["name"])}
    return out


def range_names(spec: dict, here: str) -> list[dict]:
    """For one cluster's report: the other clusters' pod ranges and the LoadBalancer's clients."""
    out = [{"name": f"{c['name']} pods", "cidr": cidr} for c in spec["clusters"] if c["name"] != here
           for cidr in c.get("pod_cidrs") or []]
    lb = spec.get("lb") or {}
    if lb.get("enabled"):
        out += [{"name": "LoadBalancer clients", "cidr": cidr} for cidr in lb.get("clients") or []]
    return out


def lb_warnings(spec: dict) -> list[str]:
    """What the LoadBalancers' clients mean for the chapter's strict cross-cluster policy."""
    lb = spec.get("lb") or {}
    if not lb.get("enabled") or not spec.get("services"):
        return []
    if not lb.get("clients"):
        return ["kubefed_lb.clients is empty: the regional LoadBalancers admit no client from outside the clusters; "
                "name the ranges your clients come from"] + shared_vip_warnings(spec)
    out = shared_vip_warnings(spec)
    for cidr in lb["clients"]:
        clients = ipplan.parse("clients", cidr)
        family = ipplan.version(clients)
        if clients.size == 2 ** (32 if family == 4 else 128):
            out.append(f"kubefed_lb.clients: {cidr} admits every IPv{family} address to each shared service's target "
                       f"port in every cluster (only other regions' pods are kept from regulated data); name the "
                       f"ranges your clients come from")
    return out


def shared_vip_warnings(spec: dict) -> list[str]:
    """Every service of a cluster asks for the cluster's VIPs. MetalLB lets Services with
    externalTrafficPolicy Local share an address only when they select the same pods (found
    when the testbed ran MetalLB), so only one of them gets it."""
    if (spec["lb"].get("address_annotation") or METALLB_ADDRESSES) != METALLB_ADDRESSES:
        return []
    out = []
    for cluster in spec.get("clusters") or []:
        names = [svc["name"] for svc in spec["services"] if cluster["name"] in runs_in(svc, spec)]
        if len(names) > 1:
            out.append(f"kubefed_lb: {', '.join(names)} all ask MetalLB for {cluster['name']}'s VIP "
                       f"{', '.join(str(v) for v in cluster.get('vips') or [])}; MetalLB shares an address only "
                       "between Services that select the same pods (externalTrafficPolicy Local), so one of them "
                       "gets it and the others get no address")
    return out


def expectations(spec: dict, services: list[dict]) -> list[dict]:
    """Every cluster's pods (each of its ranges: IPv4, IPv6) reach each service on its target
    port and not on another; addresses outside every cluster do not; the service reaches every
    cluster on that port only; regulated data only from its region and the named exceptions."""
    union = ipplan.parse("pods", spec["clusters"][0]["pod_cidrs"][0])
    for cidr in (c for cluster in spec["clusters"] for c in cluster["pod_cidrs"]):
        union = union | ipplan.parse("pods", cidr)
    lb = spec.get("lb") or {}
    clients = [ipplan.parse("clients", c) for c in lb.get("clients") or []] if lb.get("enabled") else []
    pods = union
    for client in clients:
        union = union | client
    rest = (ipplan.parse("all", "0.0.0.0/0") - ipplan.parse("this", "0.0.0.0/8") - union).iter_cidrs()
    outside = str(rest[0][0]) if rest else None  # clients may be everyone
    out = []
    for svc in services:
        target = f"{svc['namespace']}/{svc['name']}"
        port = svc.get("target_port", svc["port"])
        other = port + 1 if port < 65535 else port - 1
        allowed = {name for name, _cidr in allowed_sources(svc, spec)}
        region = svc.get("data_region")
        for cluster in spec["clusters"]:
            may = cluster["name"] in allowed
            why = (f"{svc['name']} holds {region} data; {cluster['name']} is in {cluster.get('region')}"
                   + (" (a named exception)" if may and not in_region(cluster, region) else "")) if region else None
            probes = [str(ipplan.parse("pod", cidr).iter_cidrs()[0][0]) for cidr in cluster["pod_cidrs"]]
            for src, dst in [pair for probe in probes for pair in ((probe, target), (target, probe))]:
                out.append({"src": src, "dst": dst, "port": port, "protocol": "TCP", "allowed": may, **({"why": why} if why else {})})
                out.append({"src": src, "dst": dst, "port": other, "protocol": "TCP", "allowed": False})
        if outside:
            out.append({"src": outside, "dst": target, "port": port, "protocol": "TCP", "allowed": False})
        for client in clients:
            cidrs = (client - ipplan.parse("this", "0.0.0.0/8") - pods).iter_cidrs()
            if not cidrs:
                continue
            address = str(cidrs[0][0])
            out.append({"src": address, "dst": target, "port": port, "protocol": "TCP", "allowed": True,
                        "why": "clients reach the service through its regional LoadBalancer"})
            # What the clients are not let in to stays denied, even when they are everyone.
            out.append({"src": address, "dst": target, "port": other, "protocol": "TCP", "allowed": False})
        out.append({"src": target, "dst": "kube-system/coredns", "port": 53, "protocol": "UDP", "allowed": True})
    return out


def plan(spec: dict, probed: dict | None = None) -> dict:
    """The whole plan, or only ``problems``; with net_probe's result, only healthy VIPs are
    published and none healthy at all is a problem."""
    found = problems(spec)
    if found:
        return {"problems": found}
    spec = resolved(spec)[0]
    healthy = {str(r["host"]): bool(r.get("ok")) for r in (probed or {}).get("tcp") or []} or None
    by_probes = (spec.get("global_dns") or {}).get("mechanism", "probes") == "probes"
    serving = globaldns.serving(sites(spec), healthy if by_probes else None)  # k8gb, Route 53: they check health
    if by_probes and (spec.get("global_dns") or {}).get("domain") and spec.get("services") and not serving:
        return {"problems": ["kubefed health checks: no cluster's VIP answers; refusing to publish records "
                             "without a target (fix the clusters, or switch kubefed_probes.enabled off)"]}
    port = (spec.get("probes") or {}).get("port", 443)
    objects = cluster_objects(spec)
    global_records = records(spec, healthy)
    for record in global_records:  # the host's records live beside its copy of the service
        if not any(o["kind"] == "Namespace" and o["metadata"]["name"] == record["metadata"]["namespace"]
                   for o in objects[spec["host"]]):
            objects[spec["host"]].append({"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": record["metadata"]["namespace"]}})
        objects[spec["host"]].append(record)
    return {"problems": [], "host": spec["host"], "serving": [s["name"] for s in serving], "kubeconfig": spec["kubeconfig"],
            "objects": objects,
            "namespaces": {name: [o["metadata"]["name"] for o in items if o["kind"] == "Namespace"]
                           for name, items in objects.items()},
            "context": {c["name"]: c["context"] for c in spec["clusters"]},
            "clusters": [{"name": c["name"], "context": c["context"]} for c in spec["clusters"]],
            # What the tunnels between clusters carry: each cluster's pods and services.
            "ranges": {c["name"]: list(c.get("pod_cidrs") or []) + list(c.get("service_cidrs") or [])
                       for c in spec["clusters"]},
            "policy_config": policy_config(spec), "records": global_records,
            "probes": {"tcp": [{"host": str(v), "port": port} for c in spec["clusters"] for v in c.get("vips") or []]},
            "workloads": workloads(spec.get("services") or []),
            "expect": expectations(spec, spec.get("services") or []), "proofs": proofs(spec),
            "warnings": lb_warnings(spec)}
