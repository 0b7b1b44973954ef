# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scenario 4 as data: K3s host configs and the edge site's Kubernetes objects.

Pure functions from a site description (built by the edge_k3s role from inventory variables)
to plain dicts; the role writes the host files and hands the objects to resource_set.
"""

from __future__ import annotations

import re

from ansible_collections.k8snet.fabric.plugins.module_utils import ipplan
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.errors import ValidationError

# What `k3s server --disable` accepts.
DISABLE_CHOICES = ("coredns", "servicelb", "traefik", "local-storage", "metrics-server", "runtimes")
# Keys only `k3s server` understands; an agent given them refuses to start.
SERVER_ONLY_KEYS = ("cluster-init", "cluster-cidr", "service-cidr", "cluster-dns", "cluster-domain",
                    "disable", "tls-san", "write-kubeconfig-mode", "flannel-backend", "secrets-encryption")
LABEL = re.compile(r"^(([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)/)?"
                   r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?=([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
TAINT = re.compile(r"^[^=:\s]+(=[^:\s]*)?:(NoSchedule|PreferNoSchedule|NoExecute)$")
SITE_LABEL = "edge-location"
API_PORT = 6443
PROCESSING_NS = "edge-processing"
MONITORING_NS = "edge-monitoring"
METALLB_NS = "metallb-system"


# -- validation ----------------------------------------------------------------------------
def site_problems(site: dict, sites: list[dict] | None = None) -> list[str]:
    """Everything wrong with one site's plan, each naming the variable (and host) at fault."""
    problems = []
    name = site.get("name")
    where = f"site {name}"
    if not name or not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", str(name)):
        problems.append(f"{where}: edge_k3s_site {name!r} must be a DNS label (lowercase, digits, '-')")
    ranges = {"edge_k3s_cluster_cidr": site.get("cluster_cidr"), "edge_k3s_service_cidr": site.get("service_cidr"),
              "edge_k3s_lan_cidr": site.get("lan_cidr")}
    for index, pool in enumerate(site.get("metallb_pool") or []):
        ranges[f"edge_k3s_metallb_pool[{index}]"] = pool
    try:
        problems += [f"{where}: {c}" for c in ipplan.conflicts(
            ranges, [("edge_k3s_lan_cidr", k) for k in ranges if k.startswith("edge_k3s_metallb_pool")])]
        for key in [k for k in ranges if k.startswith("edge_k3s_metallb_pool")]:
            if site.get("lan_cidr"):
                outside = ipplan.contains("edge_k3s_lan_cidr", site["lan_cidr"], key, ranges[key])
                if outside:
                    problems.append(f"{where}: {outside} (layer-2 pools must be on the site LAN)")
        if site.get("cluster_dns") and site.get("service_cidr"):
            outside = ipplan.address_in("edge_k3s_cluster_dns", site["cluster_dns"],
                                        "edge_k3s_service_cidr", site["service_cidr"])
            if outside:
                problems.append(f"{where}: {outside}")
    except ValidationError as exc:
        problems.append(f"{where}: {exc}")
    for item in site.get("disable") or []:
        if item not in DISABLE_CHOICES:
            problems.append(f"{where}: edge_k3s_disable item {item!r} is not one of {', '.join(DISABLE_CHOICES)}")
    hosts = site.get("hosts") or []
    if not any(h.get("role") == "server" for h in hosts):
        problems.append(f"{where}: no host of the site is in edge_servers")
    seen = {}
    for host in hosts:
        node = host.get("node_name") or host["name"]
        if node in seen:
            problems.append(f"{where}: hosts {seen[node]} and {host['name']} share the node name {node!r}")
        seen[node] = host["name"]
        for label in host.get("labels") or []:
            if not LABEL.match(str(label)):
                problems.append(f"host {host['name']}: edge_k3s_node_labels item {label!r} must be key=value "
                                f"(a Kubernetes label)")
        for taint in host.get("taints") or []:
            if not TAINT.match(str(taint)):
                problems.append(f"host {host['name']}: edge_k3s_node_taints item {taint!r} must be "
                                f"key[=value]:NoSchedule|PreferNoSchedule|NoExecute")
    # Sites meant to be connected must not reuse each other's ranges.
    for other in sites or []:
        if other.get("name") == name or other.get("name") not in (site.get("connected_sites") or []):
            continue
        pairs = {f"{name} {k}": site.get(k) for k in ("cluster_cidr", "service_cidr", "lan_cidr")}
        pairs.update({f"{other['name']} {k}": other.get(k) for k in ("cluster_cidr", "service_cidr", "lan_cidr")})
        try:
            for conflict in ipplan.conflicts(pairs):
                if conflict.split(" ", 1)[0] != conflict.split(" overlaps ", 1)[1].split(" ", 1)[0]:
                    problems.append(f"{where}: connected to {other['name']}, but {conflict}")
        except ValidationError:
            pass  # reported for the site that owns the bad value
    return problems


# -- host files ----------------------------------------------------------------------------
def first_server(site: dict) -> dict:
    return next(h for h in site["hosts"] if h.get("role") == "server")


def server_url(site: dict) -> str:
    return f"https://{site.get('api_endpoint') or first_server(site).get('address')}:{API_PORT}"


def k3s_config(site: dict, host_name: str) -> dict:
    """/etc/rancher/k3s/config.yaml for one host: server keys only on servers."""
    host = next(h for h in site["hosts"] if h["name"] == host_name)
    labels = [f"{SITE_LABEL}={site['name']}"] + list(host.get("labels") or [])
    config = {"node-label": labels}
    if host.get("node_name"):
        config["node-name"] = host["node_name"]
    if host.get("taints"):
        config["node-taint"] = list(host["taints"])
    if host.get("node_ip"):
        config["node-ip"] = host["node_ip"]
    servers = [h for h in site["hosts"] if h.get("role") == "server"]
    if host.get("role") == "server":
        config.update({
            "write-kubeconfig-mode": "0600",
            "cluster-cidr": site["cluster_cidr"],
            "service-cidr": site["service_cidr"],
            "cluster-dns": site["cluster_dns"],
            "disable": list(site.get("disable") or []),
            "tls-san": sorted({*(site.get("tls_san") or []), *(h.get("address") for h in servers if h.get("address")),
                               *([site["api_endpoint"]] if site.get("api_endpoint") else [])}),
        })
        if len(servers) > 1:  # embedded etcd: the first server starts the cluster, the rest join it
            if host["name"] == servers[0]["name"]:
                config["cluster-init"] = True
            else:
                config["server"] = server_url(site)
    else:
        config["server"] = server_url(site)
    for key in SERVER_ONLY_KEYS:
        assert host.get("role") == "server" or key not in config, key
    return config


def registries(site: dict) -> dict | None:
    """registries.yaml for a local mirror (air-gapped pulls), or None."""
    mirrors = site.get("registry_mirrors") or {}
    if not mirrors:
        return None
    return {"mirrors": {registry: {"endpoint": list(endpoints)} for registry, endpoints in sorted(mirrors.items())}}


def site_kubeconfig(text: str, site: dict) -> str:
    """K3s' /etc/rancher/k3s/k3s.yaml made fit for the controller: server pointed at the API
    endpoint, and cluster, user and context named after the site instead of 'default'."""
    import yaml

    config = yaml.safe_load(str(text)) or {}
    name = str(site["name"])  # a plain str: YAML cannot represent Ansible's tagged strings
    for cluster in config.get("clusters") or []:
        cluster["name"] = name
        cluster.setdefault("cluster", {})["server"] = server_url(site)
    for user in config.get("users") or []:
        user["name"] = name
    for context in config.get("contexts") or []:
        context["name"] = name
        context["context"] = {**(context.get("context") or {}), "cluster": name, "user": name}
    config["current-context"] = name
    return yaml.safe_dump(config, sort_keys=False)


# -- cluster objects ----------------------------------------------------------------------
def _meta(name: str, namespace: str | None = None, **labels) -> dict:
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = labels
    return meta


def _dns_egress() -> dict:
    return {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}


def _ipblock(entry) -> dict:
    if isinstance(entry, str):
        return {"ipBlock": {"cidr": entry}}
    block = {"cidr": entry["cidr"]}
    if entry.get("except"):
        block["except"] = list(entry["except"])
    return {"ipBlock": block}


def node_objects(site: dict) -> list[dict]:
    """Label patches for the site's nodes (applied to existing Node objects only)."""
    out = []
    for host in site["hosts"]:
        labels = dict(label.split("=", 1) for label in host.get("labels") or [])
        labels[SITE_LABEL] = site["name"]
        out.append({"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": host.get("node_name") or host["name"], "labels": labels}})
    return out


def site_objects(site: dict) -> list[dict]:
    """Every object of one edge site, in the current APIs (see docs for what changed)."""
    proc, sync, prom = site["processor"], site["sync"], site["prometheus"]
    app = {"app": "data-processor"}
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(PROCESSING_NS, **{SITE_LABEL: site["name"]})},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(MONITORING_NS, **{SITE_LABEL: site["name"]})},
    ]
    if site.get("metallb_pool"):
        # metallb-system belongs to the MetalLB installation, never to this set: pruning the
        # pool must not delete MetalLB.
        objects += [
            {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": _meta(f"{site['name']}-pool", METALLB_NS),
             "spec": {"addresses": list(site["metallb_pool"]), "autoAssign": True}},
            {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": _meta(f"{site['name']}-l2", METALLB_NS),
             "spec": {"ipAddressPools": [f"{site['name']}-pool"]}},
        ]
    objects += [
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": _meta("local-storage"),
         "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer",
         "reclaimPolicy": "Retain"},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta("local-pvc", PROCESSING_NS),
         "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-storage",
                  "resources": {"requests": {"storage": proc["storage"]}}}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta("edge-processor", PROCESSING_NS, **app),
         "spec": {"replicas": proc["replicas"], "selector": {"matchLabels": app},
                  "template": {"metadata": {"labels": app}, "spec": {
                      "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                          "nodeSelectorTerms": [{"matchExpressions": [
                              {"key": SITE_LABEL, "operator": "In", "values": [site["name"]]}]}]}}},
                      "containers": [{
                          "name": "processor", "image": proc["image"],
                          "ports": [{"name": "ingest", "containerPort": proc["port"], "protocol": "TCP"}],
                          "resources": {"requests": dict(proc["requests"]), "limits": dict(proc["limits"])},
                          "readinessProbe": {"httpGet": {"path": "/health", "port": "ingest"},
                                             "initialDelaySeconds": 5, "periodSeconds": 10},
                          "volumeMounts": [{"name": "local-storage", "mountPath": "/data"}]}],
                      "volumes": [{"name": "local-storage", "persistentVolumeClaim": {"claimName": "local-pvc"}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta("edge-processor", PROCESSING_NS, **app),
         "spec": {"type": "ClusterIP", "selector": app,
                  "ports": [{"name": "ingest", "port": proc["port"], "targetPort": "ingest", "protocol": "TCP"}]}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("sync-config", PROCESSING_NS),
         "data": {"cloud-endpoint": sync["endpoint"]}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": _meta("data-sync", PROCESSING_NS),
         "spec": {"schedule": sync["schedule"], "concurrencyPolicy": "Forbid",
                  "jobTemplate": {"spec": {"template": {"metadata": {"labels": {"app": "data-sync"}}, "spec": {
                      "restartPolicy": "OnFailure",
                      "containers": [{"name": "sync", "image": sync["image"], "env": [
                          {"name": "CLOUD_ENDPOINT", "valueFrom": {"configMapKeyRef": {"name": "sync-config", "key": "cloud-endpoint"}}},
                          {"name": "SYNC_TOKEN", "valueFrom": {"secretKeyRef": {"name": "sync-secrets", "key": "token"}}}],
                          "volumeMounts": [{"name": "local-storage", "mountPath": "/data", "readOnly": True}]}],
                      "volumes": [{"name": "local-storage", "persistentVolumeClaim": {"claimName": "local-pvc"}}]}}}}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("sync-check", PROCESSING_NS),
         "data": {"check.sh": "#!/bin/sh\n# Exit 1 when files in /data are older than the sync interval allows.\n"
                              f"if [ -n \"$(find /data -mmin +{sync['max_delay_minutes']} -type f)\" ]; then\n"
                              "  echo \"Data sync delayed\"\n  exit 1\nfi\n"}},
        # Default deny both ways, then exactly the chapter's flows plus DNS.
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta("default-deny", PROCESSING_NS),
         "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta("edge-network-policy", PROCESSING_NS),
         "spec": {"podSelector": {"matchLabels": app}, "policyTypes": ["Ingress", "Egress"],
                  "ingress": [{"from": [{"podSelector": {"matchLabels": {"type": "sensor"}}}],
                               "ports": [{"protocol": "TCP", "port": proc["port"]}]}],
                  "egress": [{"to": [_ipblock(e) for e in site["egress"]]}, _dns_egress()]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta("sensors-to-processor", PROCESSING_NS),
         "spec": {"podSelector": {"matchLabels": {"type": "sensor"}}, "policyTypes": ["Egress"],
                  "egress": [{"to": [{"podSelector": {"matchLabels": app}}],
                              "ports": [{"protocol": "TCP", "port": proc["port"]}]}, _dns_egress()]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta("data-sync-egress", PROCESSING_NS),
         "spec": {"podSelector": {"matchLabels": {"app": "data-sync"}}, "policyTypes": ["Egress"],
                  "egress": [{"to": [_ipblock(c) for c in sync["egress_cidrs"]], "ports": [{"protocol": "TCP", "port": 443}]},
                             _dns_egress()]}},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus", "metadata": _meta("edge-prometheus", MONITORING_NS),
         "spec": {"retention": prom["retention"], "resources": {"requests": {"memory": prom["memory"]}},
                  "nodeSelector": {SITE_LABEL: site["name"]},
                  "ruleSelector": {"matchLabels": {"role": "edge-alerts"}},
                  "storage": {"volumeClaimTemplate": {"spec": {
                      "storageClassName": "local-storage", "accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": prom["storage"]}}}}}}},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
         "metadata": _meta("edge-alerts", MONITORING_NS, role="edge-alerts"),
         "spec": {"groups": [{"name": "edge.rules", "rules": [
             # The chapter's up{job="edge-node", edge-location=...} does not parse (a label name
             # cannot hold '-'), and the site's own Prometheus needs no site filter: a node whose
             # Ready condition is not true, as kube-state-metrics reports it.
             {"alert": "EdgeNodeDown", "expr": 'kube_node_status_condition{condition="Ready", status="true"} == 0',
              "for": "5m", "labels": {"severity": "critical", "edge_location": site["name"]},
              "annotations": {"summary": "Edge node {{ $labels.node }} of " + site["name"] + " is not Ready"}},
             {"alert": "EdgeSyncDelayed",
              "expr": f'time() - kube_cronjob_status_last_successful_time{{namespace="{PROCESSING_NS}", cronjob="data-sync"}}'
                      f' > {sync["max_delay_minutes"] * 60}',
              "for": "5m", "labels": {"severity": "warning", "edge_location": site["name"]},
              "annotations": {"summary": f"data-sync of {site['name']} has not succeeded for "
                                         f"{sync['max_delay_minutes']} minutes"}}]}]}},
    ]
    return objects


def secret_objects(site: dict) -> list[dict]:
    """The site's Secrets, converged by their own no_log task."""
    return [{"apiVersion": "v1", "kind": "Secret", "metadata": _meta("sync-secrets", PROCESSING_NS),
             "type": "Opaque", "stringData": {"token": site["sync"]["token"]}}]
