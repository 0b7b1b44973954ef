# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scenario 1 as data: an application's tiers and flows -> policy intent, services, TLS ingress,
monitoring, and the expectations that prove the segmentation on every run."""

from __future__ import annotations

import re

from ansible_collections.k8snet.fabric.plugins.module_utils import checks, ipplan
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.errors import ValidationError
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol import model

NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
INTERNET = "internet"
SERVICE_TYPES = ("ClusterIP", "LoadBalancer", "NodePort")
TLS_SECRET = "shop-tls"


def problems(spec: dict) -> list[str]:
    """Every bad value in the role's variables, naming the variable."""
    out = []
    tiers = {t.get("name"): t for t in spec.get("tiers") or []}
    for i, tier in enumerate(spec.get("tiers") or []):
        where = f"ecommerce_net_tiers[{i}]"
        if not NAME.match(str(tier.get("name", ""))):
            out.append(f"{where}.name: {tier.get('name')!r} must be a DNS label")
        checks.port(tier.get("port"), f"{where}.port", out)
        if tier.get("service_type", "ClusterIP") not in SERVICE_TYPES:
            out.append(f"{where}.service_type: {tier.get('service_type')!r} is not one of {', '.join(SERVICE_TYPES)}")
    for i, flow in enumerate(spec.get("flows") or []):
        where = f"ecommerce_net_flows[{i}]"
        for side in ("from", "to"):
            if flow.get(side) != INTERNET and flow.get(side) not in tiers:
                out.append(f"{where}.{side}: {flow.get(side)!r} is not a tier (tiers: {', '.join(sorted(tiers))}) "
                           f"nor {INTERNET!r}")
        try:
            model.port_entry(flow.get("port"), f"{where}.port")
        except ValidationError as exc:
            out.append(str(exc))
    internet = spec.get("internet") or {}
    try:
        model.peer_entry({"cidr": internet.get("cidr"), **({"except": internet["except"]} if internet.get("except") else {})},
                         "ecommerce_net_internet")
    except ValidationError as exc:
        out.append(str(exc))
    envs = spec.get("environments") or []
    for i, env in enumerate(envs):
        if not NAME.match(str(env.get("namespace", ""))):
            out.append(f"ecommerce_net_environments[{i}].namespace: {env.get('namespace')!r} is not a namespace name")
    if len({e.get("namespace") for e in envs}) != len(envs):
        out.append("ecommerce_net_environments: two environments share a namespace")
    return out


def policy_config(spec: dict) -> list[dict]:
    """network_policies intent: default deny and exactly the declared flows, per environment."""
    internet = spec["internet"]
    out = []
    for env in spec["environments"]:
        flows = []
        for flow in spec["flows"]:
            src = ({"cidr": internet["cidr"], **({"except": internet["except"]} if internet.get("except") else {})}
                   if flow["from"] == INTERNET else {"pods": {"app": flow["from"]}})
            flows.append({"name": f"{flow['from']}-to-{flow['to']}", "from": src,
                          "to": {"pods": {"app": flow["to"]}}, "ports": [flow["port"]]})
        out.append({"namespace": env["namespace"], "default_deny": True, "allow_dns": spec.get("dns_egress", True),
                    "flows": flows})
    return out


def objects(spec: dict) -> list[dict]:
    """Namespaces, Services, Ingress, ServiceMonitor and PrometheusRule per environment."""
    out = []
    ingress, mon = spec["ingress"], spec["monitoring"]
    for env in spec["environments"]:
        ns = env["namespace"]
        out.append({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"environment": env["name"], "app.kubernetes.io/part-of": "ecommerce"}}})
        for tier in spec["tiers"]:
            svc_type = tier.get("service_type", "ClusterIP")
            service = {"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": tier["name"], "namespace": ns, "labels": {"app": tier["name"]}},
                       "spec": {"type": svc_type, "selector": {"app": tier["name"]},
                                "ports": [{"name": "http" if tier["port"] != 5432 else "postgres", "port": tier["port"],
                                           "targetPort": tier["port"], "protocol": "TCP"}]}}
            if tier.get("headless"):
                service["spec"]["clusterIP"] = "None"
            if svc_type == "LoadBalancer" and spec.get("lb_annotations"):
                service["metadata"]["annotations"] = dict(spec["lb_annotations"])
            if tier.get("metrics_port"):
                service["spec"]["ports"].append({"name": "metrics", "port": tier["metrics_port"],
                                                 "targetPort": tier["metrics_port"], "protocol": "TCP"})
            out.append(service)
        if ingress.get("enabled", True):
            annotations = {}
            if ingress.get("ssl_redirect", True):
                annotations["nginx.ingress.kubernetes.io/ssl-redirect"] = "true"
                annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] = "true"
            if ingress.get("rate_limit_rps"):
                annotations["nginx.ingress.kubernetes.io/limit-rps"] = str(ingress["rate_limit_rps"])
            if ingress.get("waf", True):
                annotations["nginx.ingress.kubernetes.io/enable-modsecurity"] = "true"
                annotations["nginx.ingress.kubernetes.io/enable-owasp-core-rules"] = "true"
            host = ingress["host"] if env["name"] == "production" else f"{env['name']}.{ingress['host']}"
            out.append({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                        "metadata": {"name": "shop", "namespace": ns, "annotations": annotations},
                        "spec": {"ingressClassName": ingress.get("class_name", "nginx"),
                                 "tls": [{"hosts": [host], "secretName": TLS_SECRET}],
                                 "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                                     "service": {"name": spec["public_tier"], "port": {"number": spec["public_port"]}}}}]}}]}})
        if mon.get("enabled", True):
            out.append({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
                        "metadata": {"name": "ecommerce", "namespace": ns},
                        "spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In",
                                                                    "values": [t["name"] for t in spec["tiers"] if t.get("metrics_port")]}]},
                                 "endpoints": [{"port": "metrics", "interval": mon.get("interval", "30s")}]}})
            out.append({"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                        "metadata": {"name": "network-alerts", "namespace": ns},
                        "spec": {"groups": [{"name": "network", "rules": [
                            {"alert": "HighLatency",
                             "expr": f'histogram_quantile(0.95, sum by (le, service) (rate(http_request_duration_seconds_bucket{{namespace="{ns}"}}[5m]))) > {mon["latency_threshold_seconds"]}',
                             "for": mon["latency_for"], "labels": {"severity": "warning"},
                             "annotations": {"summary": "p95 latency of {{ $labels.service }} above " + f"{mon['latency_threshold_seconds']}s"}},
                            {"alert": "HighErrorRate",
                             "expr": f'sum by (service) (rate(http_requests_total{{namespace="{ns}", status=~"5.."}}[5m])) / '
                                     f'sum by (service) (rate(http_requests_total{{namespace="{ns}"}}[5m])) > {mon["error_rate_threshold"]}',
                             "for": mon["latency_for"], "labels": {"severity": "critical"},
                             "annotations": {"summary": "5xx ratio of {{ $labels.service }} above " + f"{mon['error_rate_threshold']}"}}]}]}})
    return out


def tier_workloads(spec: dict) -> list[dict]:
    """The tiers as pods (labels and ports), so the proof needs no running application."""
    out = []
    for env in spec["environments"]:
        for tier in spec["tiers"]:
            ports = [{"name": "http", "containerPort": tier["port"]}]
            out.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": tier["name"], "namespace": env["namespace"],
                                                                        "labels": {"app": tier["name"]}},
                        "spec": {"containers": [{"name": tier["name"], "ports": ports}]}})
    out.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "coredns", "namespace": "kube-system",
                                                              "labels": {"k8s-app": "kube-dns"}},
                "spec": {"containers": [{"name": "coredns"}]}})
    return out


def expectations(spec: dict) -> list[dict]:
    """What every run proves: each declared flow open on its port, nothing else between tiers,
    no traffic across environments, DNS for every pod, internet only to the public tier."""
    out = []
    declared = {(f["from"], f["to"]) for f in spec["flows"]}
    ports = {(f["from"], f["to"]): model.port_entry(f["port"], "port") for f in spec["flows"]}
    names = [t["name"] for t in spec["tiers"]]
    probe = spec["internet_probe"]
    for env in spec["environments"]:
        ns = env["namespace"]
        for (src, dst), port in ports.items():
            source = probe if src == INTERNET else f"{ns}/{src}"
            out.append({"src": source, "dst": f"{ns}/{dst}", "port": port["port"], "protocol": port["protocol"], "allowed": True})
            if src == INTERNET and isinstance(port.get("port"), int):
                # ... and on that port only
                other = 443 if port["port"] != 443 else 8443
                out.append({"src": source, "dst": f"{ns}/{dst}", "port": other, "protocol": port["protocol"], "allowed": False})
        for src in names:
            for dst in names:
                if src != dst and (src, dst) not in declared:
                    out.append({"src": f"{ns}/{src}", "dst": f"{ns}/{dst}", "allowed": False})
            out.append({"src": f"{ns}/{src}", "dst": "kube-system/coredns", "port": 53, "protocol": "UDP",
                        "allowed": bool(spec.get("dns_egress", True))})
        for dst in names:
            if (INTERNET, dst) not in declared:
                out.append({"src": probe, "dst": f"{ns}/{dst}", "allowed": False})
        for other in spec["environments"]:
            if other["namespace"] != ns:
                for src in names:
                    for dst in names:
                        out.append({"src": f"{ns}/{src}", "dst": f"{other['namespace']}/{dst}", "allowed": False})
    return out
