# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scenario 3 as data: services with versions, routes, resilience and callers -> Istio objects
(networking.istio.io/v1, security.istio.io/v1, telemetry.istio.io/v1), the install file for
istioctl, and the requests that prove who may call what (evaluated by istio_authz.py).

What the chapter had and what replaces it:
- v1alpha3/v1beta1 APIs -> v1 (served since Istio 1.22);
- its VirtualService routes to subsets of ``premium-service`` while its DestinationRule defines
  none, for another host: requests would fail with "no healthy upstream". Here every route's
  subsets are checked against the service's versions, and the DestinationRule defines them;
- ``values.global.mtls.enabled`` is gone from Istio: mTLS is PeerAuthentication, which the chapter
  also has (kept, STRICT, in the root namespace);
- ``LEAST_CONN`` is deprecated: ``LEAST_REQUEST``;
- the gateway ``microservice-gateway`` it routes through is never defined: a Gateway is built;
- the IstioOperator is no in-cluster resource any more (the operator was removed in 1.24):
  it is rendered as the file ``istioctl install -f`` reads.
"""

from __future__ import annotations

import re

from ansible_collections.k8snet.fabric.plugins.module_utils import istio_authz, tls_certificate
from ansible_collections.k8snet.fabric.plugins.module_utils.plan import checks, fabric_clusters
from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import istio_mesh_multicluster
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError

DURATION = re.compile(r"^\d+(\.\d+)?(ms|s|m|h)$")
LOAD_BALANCERS = ("LEAST_REQUEST", "ROUND_ROBIN", "RANDOM", "PASSTHROUGH")
MTLS_MODES = ("STRICT", "PERMISSIVE")
# The install file's OpenTelemetry extension provider, which the Telemetry's tracing names.
TRACING_PROVIDER = "otel-tracing"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE")
HEADER_MATCHES = ("exact", "prefix", "regex")
# istio: an Istio Gateway on the ingress gateway install's pods; gateway-api: a Gateway API
# Gateway (class istio) for which Istio deploys the gateway itself - Istio's recommended path.
GATEWAY_APIS = ("istio", "gateway-api")


def gateway_account(gateway: dict, root: str) -> str:
    """The identity of the gateway's pods: the install's ingress gateway account, or the one
    Istio creates for a Gateway API Gateway (<name>-istio in its namespace)."""
    if gateway.get("service_account"):
        return gateway["service_account"]
    if gateway.get("api", "istio") == "gateway-api":
        return f"{gateway.get('namespace', root)}/{gateway['name']}-istio"
    return "istio-system/istio-ingressgateway-service-account"


def _duration(value, where: str, out: list[str]) -> None:
    if value is not None and (not isinstance(value, str) or not DURATION.match(value)):
        out.append(f"{where}: {value!r} is not a duration like 500ms, 10s or 1m")


def _percent(value, where: str, out: list[str]) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        out.append(f"{where}: {value!r} is not a percentage 0-100")


def _service_problems(svc: dict, where: str, out: list[str]) -> None:
    checks.namespaced_name(svc, where, out)
    checks.port(svc.get("port"), f"{where}.port", out)
    versions = svc.get("versions") or {}
    if not isinstance(versions, dict) or not versions:
        out.append(f"{where}.versions: at least one version (subset name -> pod labels) is needed")
        versions = {}
    seen_labels = {}
    for name, labels in versions.items():
        checks.label(name, f"{where}.versions.{name}", out)
        if not isinstance(labels, dict) or not labels:
            out.append(f"{where}.versions.{name}: pod labels are needed to tell the version apart")
            continue
        key = tuple(sorted(labels.items()))
        if key in seen_labels:
            out.append(f"{where}.versions.{name}: same labels as version {seen_labels[key]!r}")
        seen_labels[key] = name
    policy = svc.get("traffic_policy") or {}
    balancer = policy.get("load_balancer", "LEAST_REQUEST")
    if balancer == "LEAST_CONN":
        out.append(f"{where}.traffic_policy.load_balancer: LEAST_CONN is deprecated in Istio; use LEAST_REQUEST")
    elif balancer not in LOAD_BALANCERS:
        out.append(f"{where}.traffic_policy.load_balancer: {balancer!r} is not one of {', '.join(LOAD_BALANCERS)}")
    for key in ("max_connections", "max_pending_requests"):
        value = policy.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            out.append(f"{where}.traffic_policy.{key}: {value!r} must be a whole number >= 1")
    outlier = policy.get("outlier") or {}
    for key in ("interval", "base_ejection_time"):
        _duration(outlier.get(key), f"{where}.traffic_policy.outlier.{key}", out)
    routes = svc.get("routes") or [{"split": {next(iter(versions), "v1"): 100}}]
    for r, route in enumerate(routes):
        rwhere = f"{where}.routes[{r}]"
        split = route.get("split") or {}
        if not isinstance(split, dict) or not split:
            out.append(f"{rwhere}.split: version -> weight is needed")
            continue
        for version, weight in split.items():
            if version not in versions:
                out.append(f"{rwhere}.split: version {version!r} is not one of the service's versions "
                           f"({', '.join(versions) or 'none'}); its requests would find no upstream")
            if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
                out.append(f"{rwhere}.split.{version}: {weight!r} is not a weight 0-100")
        if sum(w for w in split.values() if isinstance(w, int)) != 100:
            out.append(f"{rwhere}.split: weights add up to {sum(w for w in split.values() if isinstance(w, int))}, "
                       f"not 100")
        for header, match in ((route.get("match") or {}).get("headers") or {}).items():
            if not isinstance(match, dict) or len(match) != 1 or next(iter(match)) not in HEADER_MATCHES:
                out.append(f"{rwhere}.match.headers.{header}: one of {', '.join(HEADER_MATCHES)} is needed")
        if route.get("match") is None and r != len(routes) - 1:
            out.append(f"{rwhere}: a route without match catches everything; routes after it never apply")
    _duration(svc.get("timeout"), f"{where}.timeout", out)
    retries = svc.get("retries") or {}
    _duration(retries.get("per_try_timeout"), f"{where}.retries.per_try_timeout", out)
    if svc.get("fault"):
        out.append(f"{where}.fault: fault injection belongs to the route it tests (routes[i].fault); "
                   "on the service it would hit every route and switch off their timeout and retries")
    for r, route in enumerate(routes):
        _fault_problems(route, svc, f"{where}.routes[{r}]", out)
    for a, rule in enumerate(svc.get("allow") or []):
        _allow_problems(rule, f"{where}.allow[{a}]", out)


def _fault_problems(route: dict, svc: dict, where: str, out: list[str]) -> None:
    fault = route.get("fault") or {}
    if not fault:
        return
    if set(fault) - {"delay", "abort"}:
        out.append(f"{where}.fault: {sorted(set(fault) - {'delay', 'abort'})} unknown; use delay and/or abort")
    if fault.get("delay"):
        _percent(fault["delay"].get("percent"), f"{where}.fault.delay.percent", out)
        _duration(fault["delay"].get("fixed"), f"{where}.fault.delay.fixed", out)
    if fault.get("abort"):
        _percent(fault["abort"].get("percent"), f"{where}.fault.abort.percent", out)
        status = fault["abort"].get("status")
        if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
            out.append(f"{where}.fault.abort.status: {status!r} is not an HTTP status 200-599")
    for key in ("timeout", "retries"):
        if route.get(key):
            # Istio: "timeouts or retries will not be enabled when faults are enabled" on a route.
            out.append(f"{where}: {key} and fault on one route - Istio does not apply timeouts or retries "
                       f"to a route with fault injection; drop {key} here or test the fault on another route")


def _pattern_ok(value) -> bool:
    """Istio's string match: exact, 'prefix*', '*suffix' or '*'."""
    return isinstance(value, str) and value != "" and "*" not in value.strip("*") and value.count("*") <= 1


def _allow_problems(rule, where: str, out: list[str]) -> None:
    if not isinstance(rule, dict):
        out.append(f"{where}: expected a mapping with from/namespaces and methods, paths, ports")
        return
    if not rule.get("from") and not rule.get("namespaces"):
        out.append(f"{where}: from (namespace/serviceaccount) or namespaces is needed: whom it lets in")
    if rule.get("from"):
        checks.collect(out, istio_authz.caller, rule["from"], f"{where}.from")
    for ns in rule.get("namespaces") or []:
        checks.label(ns, f"{where}.namespaces", out)
    for key in ("methods", "not_methods"):
        for method in rule.get(key) or []:
            if method not in METHODS:
                out.append(f"{where}.{key}: {method!r} is not an HTTP method ({', '.join(METHODS)})")
    for key in ("paths", "not_paths"):
        for path in rule.get(key) or []:
            if not _pattern_ok(path) or not (path.startswith("/") or path.startswith("*")):
                out.append(f"{where}.{key}: {path!r} must be an exact path (/x), a prefix (/x/*), a suffix "
                           f"(*.json) or '*'")
    for port in rule.get("ports") or []:
        checks.port(port, f"{where}.ports", out)


PERCENT = ("opt", "number")
FAULT = {"delay": ("opt", {"percent": PERCENT, "fixed": ("opt", "str")}),
         "abort": ("opt", {"percent": PERCENT, "status": ("opt", "any")})}
ROUTE = {"match": ("opt", {"headers": ("opt", ("map", ("opt", ("map", "str")))), "uri": ("opt", ("map", "str"))}),
         "split": ("opt", ("map", "any")), "fault": ("opt", FAULT), "timeout": ("opt", "str"), "retries": ("opt", "any")}
ALLOW = {"from": ("opt", "str"), "namespaces": ("opt", ("list", "str")), "methods": ("opt", ("list", "str")),
         "not_methods": ("opt", ("list", "str")), "paths": ("opt", ("list", "str")), "not_paths": ("opt", ("list", "str")),
         "ports": ("opt", ("list", "any"))}
SHAPES = {
    "root_namespace": "str", "trust_domain": "str", "cluster_domain": "str", "revision": ("opt", "str"), "mtls": "str",
    "namespaces": ("list", {"name!": "str", "create": ("opt", "bool"), "mtls": ("opt", "str")}),
    "services": ("list", {"name!": "str", "namespace!": "str", "port!": "int",
                          "versions": ("opt", ("map", ("opt", ("map", "str")))),
                          "traffic_policy": ("opt", {"load_balancer": ("opt", "str"), "max_connections": ("opt", "int"),
                                                     "max_pending_requests": ("opt", "int"),
                                                     "outlier": ("opt", ("map", "any"))}),
                          "routes": ("opt", ("list", ROUTE)), "timeout": ("opt", "str"),
                          "retries": ("opt", {"attempts": ("opt", "int"), "per_try_timeout": ("opt", "str"),
                                              "retry_on": ("opt", "str")}),
                          "fault": ("opt", "any"), "allow": ("opt", ("list", ALLOW))}),
    "authz_default_deny": "bool",
    "gateway": {"enabled": "bool", "api": ("opt", "str"), "class": ("opt", "str"), "name": ("opt", "str"), "namespace": ("opt", "str"),
                "hosts": ("opt", ("list", "str")), "tls_secret": ("opt", "str"), "routes_to": ("opt", "str"),
                "service_account": ("opt", "str")},
    "telemetry": {"access_logging": ("opt", "bool"), "tracing_sampling": PERCENT, "tracing_collector": ("opt", "str")},
    "gateway_tls": ("opt", {"mode": "str", "issuer": ("opt", "str"), "days": ("opt", "int"), "renew_days": ("opt", "int"),
                            "*": "any"}),
    "multicluster": istio_mesh_multicluster.SHAPE,
    "monitoring": "bool",
    "alerts": {"latency_p95_ms": ("opt", "any"), "error_ratio": ("opt", "any"), "for": ("opt", "str")},
    "istioctl_install": "bool",
    "install": {"profile": ("opt", "str"), "ingress_gateway": ("opt", "bool"), "pilot_resources": ("opt", "any"),
                "gateway_resources": ("opt", "any"), "proxy_resources": ("opt", "any")},
    "expect": ("list", "any"),
    **fabric_clusters.CONNECTION_SHAPES,
}


def problems(spec: dict) -> list[str]:
    """Every bad value in the role's variables, naming the variable; empty when all is well.
    Shapes first: nothing below reads a field of the wrong type."""
    out = fabric_clusters.role_problems(spec, SHAPES, "istio_mesh_", absent_ok=True)
    if out:
        return out
    if spec.get("mtls", "STRICT") not in MTLS_MODES:
        out.append(f"istio_mesh_mtls: {spec['mtls']!r} is not one of {', '.join(MTLS_MODES)}")
    namespaces = {}
    for i, ns in enumerate(spec.get("namespaces") or []):
        checks.label(ns.get("name"), f"istio_mesh_namespaces[{i}].name", out)
        if ns.get("mtls") is not None and ns["mtls"] not in MTLS_MODES:
            out.append(f"istio_mesh_namespaces[{i}].mtls: {ns['mtls']!r} is not one of {', '.join(MTLS_MODES)}")
        namespaces[ns.get("name")] = ns
    services = {}
    for where, svc in checks.mappings(spec.get("services"), "istio_mesh_services", out):
        _service_problems(svc, where, out)
        key = (svc.get("namespace"), svc.get("name"))
        if key in services:
            out.append(f"{where}: {key[0]}/{key[1]} is declared twice")
        services[key] = svc
        if svc.get("namespace") not in namespaces:
            out.append(f"{where}.namespace: {svc.get('namespace')!r} is not in istio_mesh_namespaces, so its pods "
                       f"get no sidecar and none of this applies to them")
    gateway = spec.get("gateway") or {}
    if gateway.get("enabled"):
        checks.label(gateway.get("name"), "istio_mesh_gateway.name", out)
        target = gateway.get("routes_to")
        if not any(s.get("name") == target for s in spec.get("services") or [] if isinstance(s, dict)):
            out.append(f"istio_mesh_gateway.routes_to: {target!r} is not one of istio_mesh_services")
        if not gateway.get("hosts"):
            out.append("istio_mesh_gateway.hosts: the gateway needs the host names it serves")
        checks.collect(out, istio_authz.caller, gateway_account(gateway, spec.get("root_namespace", "istio-system")),
                       "istio_mesh_gateway.service_account")
        if gateway.get("api", "istio") not in GATEWAY_APIS:
            out.append(f"istio_mesh_gateway.api: {gateway.get('api')!r} is not one of {', '.join(GATEWAY_APIS)}")
    alerts = spec.get("alerts") or {}
    for key in ("latency_p95_ms", "error_ratio"):
        value = alerts.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0
                                  or (key == "error_ratio" and value >= 1)):
            out.append(f"istio_mesh_alerts.{key}: {value!r} must be a number above 0"
                       + (" and below 1" if key == "error_ratio" else ""))
    if alerts.get("for") is not None:
        checks.prometheus_duration(alerts["for"], "istio_mesh_alerts.for", out)
    if spec.get("istioctl_install") and not spec.get("revision"):
        out.append("istio_mesh_istioctl_install: installs are pinned to a revision; set istio_mesh_revision (e.g. 1-30)")
    telemetry = spec.get("telemetry") or {}
    if telemetry.get("tracing_sampling") is not None:
        _percent(telemetry["tracing_sampling"], "istio_mesh_telemetry.tracing_sampling", out)
    if telemetry.get("tracing_collector"):
        checks.collect(out, tracing_collector, telemetry["tracing_collector"])
    gateway_tls = spec.get("gateway_tls") or {}
    if gateway.get("enabled") and gateway_tls.get("mode") == "cert-manager":
        out += tls_certificate.cert_manager_problems(gateway_tls, "istio_mesh_gateway_tls")
    if istio_mesh_multicluster.enabled(spec):
        out += istio_mesh_multicluster.problems(spec["multicluster"])
        if not fabric_clusters.connection(spec, "istio_mesh").get("context"):
            out.append("istio_mesh_context: a multi-cluster mesh names this cluster's context (the remote secrets "
                       "are written there while each remote's context is read)")
    return out


def certificate(spec: dict) -> list[dict]:
    """cert-manager's Certificate for the gateway's hosts, into the Secret the gateway reads
    (istio_mesh_gateway_tls.mode cert-manager): cert-manager issues and renews it."""
    gateway, gateway_tls = spec.get("gateway") or {}, spec.get("gateway_tls") or {}
    if not gateway.get("enabled") or gateway_tls.get("mode") != "cert-manager":
        return []
    secret = gateway.get("tls_secret", gateway["name"])
    namespace = gateway.get("namespace", spec.get("root_namespace", "istio-system"))
    return [tls_certificate.cert_manager_certificate(secret, namespace, gateway.get("hosts") or [], gateway_tls)]


def tracing_collector(text: str) -> tuple[str, int]:
    """``[namespace/]service-fqdn:port`` of the OpenTelemetry collector -> (service, port), as
    Istio's ``opentelemetry`` extension provider takes them (an OTLP/gRPC endpoint, 4317)."""
    where = "istio_mesh_telemetry.tracing_collector"
    example = "e.g. opentelemetry-collector.observability.svc.cluster.local:4317"
    problems_found: list[str] = []
    namespace, _slash, address = str(text).rpartition("/")
    if namespace:
        checks.label(namespace, f"{where} ({text}) namespace", problems_found)
    parsed = checks.host_port(address, where, "<service FQDN>:<port>", example, problems_found)
    if parsed and "." not in parsed[0]:
        problems_found.append(f"{where}: {parsed[0]!r} is not a fully qualified service name ({example})")
    if problems_found:
        raise ValidationError(problems_found[0])
    return (f"{namespace}/{parsed[0]}" if namespace else parsed[0]), parsed[1]


# -- objects -------------------------------------------------------------------------------------
def fqdn(svc: dict, domain: str) -> str:
    return f"{svc['name']}.{svc['namespace']}.svc.{domain}"


def _destination_rule(svc: dict, host: str) -> dict:
    policy = svc.get("traffic_policy") or {}
    traffic = {"loadBalancer": {"simple": policy.get("load_balancer", "LEAST_REQUEST")}}
    pool = {}
    if policy.get("max_connections"):
        pool["tcp"] = {"maxConnections": policy["max_connections"]}
    if policy.get("max_pending_requests"):
        pool["http"] = {"http1MaxPendingRequests": policy["max_pending_requests"]}
    if pool:
        traffic["connectionPool"] = pool
    outlier = policy.get("outlier") or {}
    if outlier:
        traffic["outlierDetection"] = {k: v for k, v in (
            ("consecutive5xxErrors", outlier.get("consecutive_5xx")), ("interval", outlier.get("interval")),
            ("baseEjectionTime", outlier.get("base_ejection_time")),
            ("maxEjectionPercent", outlier.get("max_ejection_percent"))) if v is not None}
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": svc["name"], "namespace": svc["namespace"]},
            "spec": {"host": host, "trafficPolicy": traffic,
                     "subsets": [{"name": name, "labels": dict(labels)}
                                 for name, labels in sorted(svc["versions"].items())]}}


def _http_route(svc: dict, host: str, route: dict) -> dict:
    out = {}
    headers = (route.get("match") or {}).get("headers")
    if headers:
        out["match"] = [{"headers": {h: dict(m) for h, m in headers.items()}}]
    out["route"] = [{"destination": {"host": host, "subset": version, "port": {"number": svc["port"]}},
                     "weight": weight} for version, weight in route["split"].items() if weight > 0]
    fault = route.get("fault") or {}
    if svc.get("timeout") and not fault:
        out["timeout"] = svc["timeout"]
    retries = {} if fault else svc.get("retries") or {}
    if retries:
        out["retries"] = {k: v for k, v in (("attempts", retries.get("attempts", 2)),
                                            ("perTryTimeout", retries.get("per_try_timeout")),
                                            ("retryOn", retries.get("retry_on"))) if v is not None}
    if fault:
        out["fault"] = {}
        if fault.get("delay"):
            out["fault"]["delay"] = {"percentage": {"value": float(fault["delay"]["percent"])},
                                     "fixedDelay": fault["delay"]["fixed"]}
        if fault.get("abort"):
            out["fault"]["abort"] = {"percentage": {"value": float(fault["abort"]["percent"])},
                                     "httpStatus": fault["abort"]["status"]}
    return out


def gateway_api_objects(spec: dict) -> list[dict]:
    """Gateway API for the mesh ingress: a Gateway of class istio (HTTPS terminating with the TLS
    Secret, HTTP) and HTTPRoutes - one redirecting HTTP to HTTPS, one to the service. Weighted
    version splits stay in the VirtualService for traffic inside the mesh; an HTTPRoute routes to
    Services, so splitting at the ingress would need a Service per version."""
    root = spec.get("root_namespace", "istio-system")
    gateway = spec["gateway"]
    namespace = gateway.get("namespace", root)
    svc = next(s for s in spec.get("services") or [] if s["name"] == gateway["routes_to"])
    listeners = [{"name": f"https-{i}", "hostname": host, "port": 443, "protocol": "HTTPS",
                  "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": gateway.get("tls_secret", gateway["name"])}]},
                  "allowedRoutes": {"namespaces": {"from": "Selector", "selector": {"matchLabels": {
                      "kubernetes.io/metadata.name": svc["namespace"]}}}}}
                 for i, host in enumerate(gateway["hosts"])]
    listeners.append({"name": "http", "port": 80, "protocol": "HTTP",
                      "allowedRoutes": {"namespaces": {"from": "Same"}}})
    parent = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway["name"], "namespace": namespace}
    return [
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
         "metadata": {"name": gateway["name"], "namespace": namespace},
         "spec": {"gatewayClassName": gateway.get("class", "istio"), "listeners": listeners}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
         "metadata": {"name": f"{gateway['name']}-https-redirect", "namespace": namespace},
         "spec": {"parentRefs": [{**parent, "sectionName": "http"}], "hostnames": list(gateway["hosts"]),
                  "rules": [{"filters": [{"type": "RequestRedirect",
                                          "requestRedirect": {"scheme": "https", "statusCode": 301}}]}]}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
         "metadata": {"name": svc["name"], "namespace": svc["namespace"]},
         "spec": {"parentRefs": [{**parent, "sectionName": f"https-{i}"} for i in range(len(gateway["hosts"]))],
                  "hostnames": list(gateway["hosts"]),
                  "rules": [{"backendRefs": [{"name": svc["name"], "port": svc["port"]}]}]}},
    ]


def authorization_rule(rule: dict, trust_domain: str) -> dict:
    """One caller rule as Istio writes it: source (principals, namespaces) and operation
    (methods, notMethods, paths, notPaths, ports as strings)."""
    source = {}
    if rule.get("from"):
        source["principals"] = [istio_authz.principal(rule["from"], trust_domain)]
    if rule.get("namespaces"):
        source["namespaces"] = list(rule["namespaces"])
    operation = {field: [str(v) for v in rule[key]] for key, field in (
        ("methods", "methods"), ("not_methods", "notMethods"), ("paths", "paths"), ("not_paths", "notPaths"),
        ("ports", "ports")) if rule.get(key)}
    return {"from": [{"source": source}], **({"to": [{"operation": operation}]} if operation else {})}


def objects(spec: dict) -> list[dict]:
    """Every Istio object of the mesh (namespaces are separate: see namespace_objects)."""
    domain, trust = spec.get("cluster_domain", "cluster.local"), spec.get("trust_domain", "cluster.local")
    root = spec.get("root_namespace", "istio-system")
    gateway = spec.get("gateway") or {}
    out = [{"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": "default", "namespace": root},
            "spec": {"mtls": {"mode": spec.get("mtls", "STRICT")}}}]
    for ns in spec.get("namespaces") or []:
        if ns.get("mtls") and ns["mtls"] != spec.get("mtls", "STRICT"):
            out.append({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                        "metadata": {"name": "default", "namespace": ns["name"]},
                        "spec": {"mtls": {"mode": ns["mtls"]}}})
        if spec.get("authz_default_deny", True):
            # ALLOW with no rules: every workload of the namespace refuses what no policy allows.
            out.append({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                        "metadata": {"name": "allow-nothing", "namespace": ns["name"]}, "spec": {}})
    if gateway.get("enabled") and gateway.get("api", "istio") == "istio":
        out.append({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
                    "metadata": {"name": gateway["name"], "namespace": gateway.get("namespace", root)},
                    "spec": {"selector": dict(gateway.get("selector") or {"istio": "ingressgateway"}),
                             "servers": [{"port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                                          "tls": {"mode": "SIMPLE", "credentialName": gateway.get("tls_secret", gateway["name"])},
                                          "hosts": list(gateway["hosts"])},
                                         {"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                                          "tls": {"httpsRedirect": True}, "hosts": list(gateway["hosts"])}]}})
    elif gateway.get("enabled"):
        out += gateway_api_objects(spec)
    if istio_mesh_multicluster.enabled(spec):
        out.append(istio_mesh_multicluster.cross_network_gateway(root))
    for svc in spec.get("services") or []:
        host = fqdn(svc, domain)
        routes = svc.get("routes") or [{"split": {sorted(svc["versions"])[0]: 100}}]
        vs_spec = {"hosts": [host], "http": [_http_route(svc, host, r) for r in routes]}
        through_gateway = gateway.get("enabled") and gateway.get("routes_to") == svc["name"]
        if through_gateway and gateway.get("api", "istio") == "istio":
            vs_spec["hosts"] += list(gateway["hosts"])
            vs_spec["gateways"] = ["mesh", f"{gateway.get('namespace', root)}/{gateway['name']}"]
        out.append(_destination_rule(svc, host))
        out.append({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                    "metadata": {"name": svc["name"], "namespace": svc["namespace"]}, "spec": vs_spec})
        rules = []
        for rule in svc.get("allow") or []:
            rules.append(authorization_rule(rule, trust))
        if through_gateway:
            rules.append({"from": [{"source": {"principals": [istio_authz.principal(gateway_account(gateway, root), trust)]}}]})
        if rules:
            out.append({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                        "metadata": {"name": f"{svc['name']}-callers", "namespace": svc["namespace"]},
                        "spec": {"selector": {"matchLabels": {"app": svc["name"]}}, "action": "ALLOW",
                                 "rules": rules}})
    telemetry = spec.get("telemetry") or {}
    if telemetry:
        tel = {}
        if telemetry.get("access_logging", True):
            tel["accessLogging"] = [{"providers": [{"name": "envoy"}]}]
        if telemetry.get("tracing_sampling") is not None:
            tracing = {"randomSamplingPercentage": float(telemetry["tracing_sampling"])}
            if telemetry.get("tracing_collector"):  # without one, the mesh's default providers
                tracing = {"providers": [{"name": TRACING_PROVIDER}], **tracing}
            tel["tracing"] = [tracing]
        out.append({"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
                    "metadata": {"name": "mesh-default", "namespace": root}, "spec": tel})
    if spec.get("monitoring", True):
        out.append({"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
                    "metadata": {"name": "envoy-stats", "namespace": root},
                    "spec": {"namespaceSelector": {"any": True},
                             "selector": {"matchExpressions": [{"key": "istio-prometheus-ignore",
                                                                "operator": "DoesNotExist"}]},
                             "podMetricsEndpoints": [{"path": "/stats/prometheus", "interval": "15s",
                                                      "relabelings": [{"action": "keep", "sourceLabels": [
                                                          "__meta_kubernetes_pod_container_name"],
                                                          "regex": "istio-proxy"}]}]}})
        out.append({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
                    "metadata": {"name": "istiod", "namespace": root},
                    "spec": {"selector": {"matchLabels": {"istio": "pilot"}},
                             "endpoints": [{"port": "http-monitoring", "interval": "15s"}]}})
        out += observability_objects(spec)
    return out


def _service_filter(spec: dict) -> str:
    namespaces = sorted({s["namespace"] for s in spec.get("services") or []})
    return f'reporter="destination", destination_service_namespace=~"{"|".join(namespaces) or ".*"}"'


def observability_objects(spec: dict) -> list[dict]:
    """The chapter's dashboard and alerts from Istio's standard metrics: request rate, p95
    latency (istio_request_duration_milliseconds_bucket) and the share of 5xx answers."""
    root = spec.get("root_namespace", "istio-system")
    alerts = spec.get("alerts") or {}
    where = _service_filter(spec)
    rate = f"sum by (destination_service) (rate(istio_requests_total{{{where}}}[5m]))"
    errors = f'sum by (destination_service) (rate(istio_requests_total{{{where}, response_code=~"5.."}}[5m]))'
    p95 = (f"histogram_quantile(0.95, sum by (le, destination_service) "
           f"(rate(istio_request_duration_milliseconds_bucket{{{where}}}[5m])))")
    panels = [{"id": i + 1, "title": title, "type": "timeseries",
               "gridPos": {"h": 8, "w": 8, "x": 8 * i, "y": 0},
               "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
               "targets": [{"expr": expr, "legendFormat": "{{destination_service}}", "refId": "A"}]}
              for i, (title, expr, unit) in enumerate((
                  ("Request rate", rate, "reqps"), ("p95 latency", p95, "ms"),
                  ("Error rate (5xx share)", f"{errors} / {rate}", "percentunit")))]
    dashboard = {"title": "Istio mesh - services", "uid": "k8snet-istio-mesh", "schemaVersion": 39,
                 "time": {"from": "now-1h", "to": "now"}, "panels": panels}
    import json

    return [
        # Grafana's dashboard sidecar loads ConfigMaps labelled grafana_dashboard=1.
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "istio-mesh-dashboard", "namespace": root, "labels": {"grafana_dashboard": "1"}},
         "data": {"istio-mesh-dashboard.json": json.dumps(dashboard, indent=2, sort_keys=True)}},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
         "metadata": {"name": "istio-mesh-alerts", "namespace": root, "labels": {"role": "mesh-alerts"}},
         "spec": {"groups": [{"name": "istio-mesh.rules", "rules": [
             {"alert": "IstioHighLatencyP95", "expr": f"{p95} > {alerts.get('latency_p95_ms', 1000)}",
              "for": alerts.get("for", "5m"), "labels": {"severity": "warning"},
              "annotations": {"summary": "p95 latency of {{ $labels.destination_service }} is {{ $value }} ms"}},
             {"alert": "IstioHighErrorRate", "expr": f"{errors} / {rate} > {alerts.get('error_ratio', 0.05)}",
              "for": alerts.get("for", "5m"), "labels": {"severity": "critical"},
              "annotations": {"summary": "{{ $labels.destination_service }} answers {{ $value | humanizePercentage }} "
                                         "of requests with 5xx"}}]}]}},
    ]


def namespace_objects(spec: dict, owned: bool) -> list[dict]:
    """The mesh namespaces the role creates (``owned``) or only labels, with the sidecar
    injection label (a revision label when given); labelled too: the root namespace with the
    cluster's network (multi-cluster)."""
    label = {"istio.io/rev": spec["revision"]} if spec.get("revision") else {"istio-injection": "enabled"}
    out = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns["name"], "labels": dict(label)}}
           for ns in spec.get("namespaces") or [] if bool(ns.get("create")) == owned]
    if istio_mesh_multicluster.enabled(spec) and not owned:
        # istioctl's root namespace: Istio reads the cluster's network from its label.
        out.append(istio_mesh_multicluster.root_namespace_label(spec.get("root_namespace", "istio-system"),
                                                                spec["multicluster"]["network"]))
    return out


def istio_operator(spec: dict) -> dict:
    """The install file for ``istioctl install -f`` (the chapter's resources, without the
    removed values.global.mtls)."""
    install = spec.get("install") or {}
    out = {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator",
           "metadata": {"name": "control-plane", "namespace": spec.get("root_namespace", "istio-system")},
           "spec": {"profile": install.get("profile", "default"),
                    "meshConfig": {"accessLogFile": "/dev/stdout", "trustDomain": spec.get("trust_domain", "cluster.local")},
                    "components": {"pilot": {"k8s": {"resources": install.get("pilot_resources") or {}}},
                                   "ingressGateways": [{"name": "istio-ingressgateway",
                                                        "enabled": bool(install.get("ingress_gateway", True)),
                                                        "k8s": {"resources": install.get("gateway_resources") or {}}}]},
                    "values": {"global": {"proxy": {"resources": install.get("proxy_resources") or {}}}}}}
    collector = (spec.get("telemetry") or {}).get("tracing_collector")
    if collector:
        service, port = tracing_collector(collector)
        out["spec"]["meshConfig"].update(enableTracing=True, extensionProviders=[
            {"name": TRACING_PROVIDER, "opentelemetry": {"service": service, "port": port}}])
    if spec.get("revision"):
        out["spec"]["revision"] = spec["revision"]
    if istio_mesh_multicluster.enabled(spec):
        out["spec"]["values"]["global"].update(istio_mesh_multicluster.install_values(spec["multicluster"]))
        out["spec"]["meshConfig"]["defaultConfig"] = {"proxyMetadata": dict(istio_mesh_multicluster.PROXY_METADATA)}
        out["spec"]["components"]["ingressGateways"].append(istio_mesh_multicluster.east_west_gateway(spec["multicluster"]))
    return out


# -- authorization expectations -----------------------------------------------------------------
def _sample(patterns: list[str] | None, fallback: str) -> str:
    """A concrete value the first pattern matches: '/api/v1/*' -> '/api/v1/probe'."""
    pattern = (patterns or [fallback])[0]
    if pattern == "*":
        return fallback
    if pattern.endswith("*"):
        return pattern[:-1] + "probe"
    if pattern.startswith("*"):
        return "/probe" + pattern[1:]
    return pattern


def _outside(patterns: list[str] | None, candidates: tuple[str, ...]) -> str | None:
    return next((c for c in candidates if not istio_authz.matches(patterns, c)), None)


def expectations(spec: dict) -> list[dict]:
    """What every run proves for each caller rule: the caller gets in with a method and path the
    rule allows; not with a method or a path it was not given; an undeclared caller of the same
    namespace and a caller of another namespace do not."""
    out = []
    for svc in spec.get("services") or []:
        target = {"to": f"{svc['namespace']}/{svc['name']}", "port": svc["port"]}
        for rule in svc.get("allow") or []:
            who = rule.get("from") or f"{rule['namespaces'][0]}/any-caller"
            method = next((m for m in rule.get("methods") or METHODS if m not in (rule.get("not_methods") or [])), "GET")
            path = _sample(rule.get("paths"), "/")
            if istio_authz.matches(rule.get("not_paths"), path) and not istio_authz.matches(rule.get("not_paths"), "/"):
                path = "/"
            allowed = {**target, "from": who, "method": method, "path": path}
            out.append({**allowed, "allowed": True})
            if rule.get("methods") or rule.get("not_methods"):
                other = _outside(rule.get("methods") or [], METHODS) if rule.get("methods") else rule["not_methods"][0]
                if other:
                    out.append({**allowed, "method": other, "allowed": False})
            if rule.get("paths") or rule.get("not_paths"):
                denied_path = (_outside(rule.get("paths"), ("/admin", "/k8snet-not-allowed")) if rule.get("paths")
                               else _sample(rule["not_paths"], "/admin"))
                if denied_path:
                    out.append({**allowed, "path": denied_path, "allowed": False})
            namespace, account = istio_authz.caller(who, "from")
            if rule.get("from"):
                out.append({**allowed, "from": f"{namespace}/undeclared-caller", "allowed": False})
            outsider = "k8snet-elsewhere" if namespace != "k8snet-elsewhere" else "k8snet-elsewhere-2"
            if outsider not in (rule.get("namespaces") or []):
                out.append({**allowed, "from": f"{outsider}/{account}", "allowed": False})
    return out


def plan(spec: dict) -> dict:
    """The whole plan, or only ``problems`` when any variable is bad."""
    found = problems(spec)
    if found:
        return {"problems": found}
    return {"problems": [], "connection": fabric_clusters.connection(spec, "istio_mesh"),
            "owned_namespaces": namespace_objects(spec, owned=True),
            "labelled_namespaces": namespace_objects(spec, owned=False), "objects": objects(spec) + certificate(spec),
            "operator": istio_operator(spec), "expect": expectations(spec) + list(spec.get("expect") or []),
            "multicluster": multicluster(spec)}


def multicluster(spec: dict) -> dict:
    """This cluster's name in the mesh, the other clusters (their connections), whose remote
    secrets it gets (cluster_join kind istio), and those taken out of the mesh, whose remote
    secret and reader account go, and the root CA its intermediate is issued from (None when
    the user's PKI writes cacerts); empty without istio_mesh_multicluster.enabled."""
    if not istio_mesh_multicluster.enabled(spec):
        return {"cluster_name": "", "remotes": [], "removed": [], "root_ca": None}
    return {"cluster_name": spec["multicluster"]["cluster_name"],
            "root_ca": istio_mesh_multicluster.root_ca(spec["multicluster"]),
            "remotes": [{"name": r["name"], "network": r["network"], "context": r.get("context") or "",
                         "kubeconfig": r.get("kubeconfig") or "", "server": r.get("server") or ""}
                        for r in spec["multicluster"].get("remotes") or []],
            "removed": [{"name": r["name"], "context": r["context"], "kubeconfig": r.get("kubeconfig") or ""}
                        for r in spec["multicluster"].get("removed") or []]}
