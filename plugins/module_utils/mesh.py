# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scenario 3 as data: services with versions, routes, resilience and callers -> Istio objects
(networking.istio.io/v1, security.istio.io/v1, telemetry.istio.io/v1), the install file for
istioctl, and an evaluator of AuthorizationPolicies that proves who may call what.

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

from ansible_collections.k8snet.fabric.plugins.module_utils import checks
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.errors import ValidationError

DURATION = re.compile(r"^\d+(\.\d+)?(ms|s|m|h)$")
LOAD_BALANCERS = ("LEAST_REQUEST", "ROUND_ROBIN", "RANDOM", "PASSTHROUGH")
MTLS_MODES = ("STRICT", "PERMISSIVE")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE")
HEADER_MATCHES = ("exact", "prefix", "regex")


def _duration(value, where: str, out: list[str]) -> None:
    if value is not None and (not isinstance(value, str) or not DURATION.match(value)):
        out.append(f"{where}: {value!r} is not a duration like 500ms, 10s or 1m")


def _percent(value, where: str, out: list[str]) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        out.append(f"{where}: {value!r} is not a percentage 0-100")


def caller(text, where: str) -> tuple[str, str]:
    """'namespace/serviceaccount' -> (namespace, serviceaccount)."""
    parts = str(text).split("/")
    if len(parts) != 2 or not all(checks.DNS_LABEL.match(p) for p in parts):
        raise ValidationError(f"{where}: {text!r} must be namespace/serviceaccount")
    return parts[0], parts[1]


def _service_problems(svc: dict, where: str, out: list[str]) -> None:
    checks.label(svc.get("name"), f"{where}.name", out)
    checks.label(svc.get("namespace"), f"{where}.namespace", out)
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
    fault = svc.get("fault") or {}
    if fault.get("delay"):
        _percent(fault["delay"].get("percent"), f"{where}.fault.delay.percent", out)
        _duration(fault["delay"].get("fixed"), f"{where}.fault.delay.fixed", out)
    if fault.get("abort"):
        _percent(fault["abort"].get("percent"), f"{where}.fault.abort.percent", out)
        status = fault["abort"].get("status")
        if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
            out.append(f"{where}.fault.abort.status: {status!r} is not an HTTP status 200-599")
    for a, rule in enumerate(svc.get("allow") or []):
        awhere = f"{where}.allow[{a}]"
        checks.collect(out, caller, rule.get("from"), f"{awhere}.from")
        for method in rule.get("methods") or []:
            if method not in METHODS:
                out.append(f"{awhere}.methods: {method!r} is not an HTTP method ({', '.join(METHODS)})")
        for path in rule.get("paths") or []:
            if not isinstance(path, str) or not (path.startswith("/") or path == "*" or path.startswith("*")):
                out.append(f"{awhere}.paths: {path!r} must start with '/' (or '*' for a suffix match)")


def problems(spec: dict) -> list[str]:
    """Every bad value in the role's variables, naming the variable; empty when all is well."""
    out: list[str] = []
    if spec.get("mtls", "STRICT") not in MTLS_MODES:
        out.append(f"istio_mesh_mtls: {spec['mtls']!r} is not one of {', '.join(MTLS_MODES)}")
    namespaces = {}
    for i, ns in enumerate(spec.get("namespaces") or []):
        checks.label(ns.get("name"), f"istio_mesh_namespaces[{i}].name", out)
        if ns.get("mtls") is not None and ns["mtls"] not in MTLS_MODES:
            out.append(f"istio_mesh_namespaces[{i}].mtls: {ns['mtls']!r} is not one of {', '.join(MTLS_MODES)}")
        namespaces[ns.get("name")] = ns
    services = {}
    for i, svc in enumerate(spec.get("services") or []):
        where = f"istio_mesh_services[{i}]"
        if not isinstance(svc, dict):
            out.append(f"{where}: expected a mapping")
            continue
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
        checks.collect(out, caller, gateway.get("service_account", "istio-system/istio-ingressgateway-service-account"),
                       "istio_mesh_gateway.service_account")
    telemetry = spec.get("telemetry") or {}
    if telemetry.get("tracing_sampling") is not None:
        _percent(telemetry["tracing_sampling"], "istio_mesh_telemetry.tracing_sampling", out)
    return out


# -- objects -------------------------------------------------------------------------------------
def fqdn(svc: dict, domain: str) -> str:
    return f"{svc['name']}.{svc['namespace']}.svc.{domain}"


def principal(text: str, trust_domain: str) -> str:
    namespace, account = caller(text, "principal")
    return f"{trust_domain}/ns/{namespace}/sa/{account}"


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
    if svc.get("timeout"):
        out["timeout"] = svc["timeout"]
    retries = svc.get("retries") or {}
    if retries:
        out["retries"] = {k: v for k, v in (("attempts", retries.get("attempts", 2)),
                                            ("perTryTimeout", retries.get("per_try_timeout")),
                                            ("retryOn", retries.get("retry_on"))) if v is not None}
    fault = svc.get("fault") or {}
    if fault:
        out["fault"] = {}
        if fault.get("delay"):
            out["fault"]["delay"] = {"percentage": {"value": float(fault["delay"]["percent"])},
                                     "fixedDelay": fault["delay"]["fixed"]}
        if fault.get("abort"):
            out["fault"]["abort"] = {"percentage": {"value": float(fault["abort"]["percent"])},
                                     "httpStatus": fault["abort"]["status"]}
    return out


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
    if gateway.get("enabled"):
        gw = {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
              "metadata": {"name": gateway["name"], "namespace": gateway.get("namespace", root)},
              "spec": {"selector": dict(gateway.get("selector") or {"istio": "ingressgateway"}),
                       "servers": [{"port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                                    "tls": {"mode": "SIMPLE", "credentialName": gateway.get("tls_secret", gateway["name"])},
                                    "hosts": list(gateway["hosts"])},
                                   {"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                                    "tls": {"httpsRedirect": True}, "hosts": list(gateway["hosts"])}]}}
        out.append(gw)
    for svc in spec.get("services") or []:
        host = fqdn(svc, domain)
        routes = svc.get("routes") or [{"split": {sorted(svc["versions"])[0]: 100}}]
        vs_spec = {"hosts": [host], "http": [_http_route(svc, host, r) for r in routes]}
        through_gateway = gateway.get("enabled") and gateway.get("routes_to") == svc["name"]
        if through_gateway:
            vs_spec["hosts"] += list(gateway["hosts"])
            vs_spec["gateways"] = ["mesh", f"{gateway.get('namespace', root)}/{gateway['name']}"]
        out.append(_destination_rule(svc, host))
        out.append({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                    "metadata": {"name": svc["name"], "namespace": svc["namespace"]}, "spec": vs_spec})
        rules = []
        for rule in svc.get("allow") or []:
            to = {k: list(v) for k, v in (("methods", rule.get("methods")), ("paths", rule.get("paths"))) if v}
            rules.append({"from": [{"source": {"principals": [principal(rule["from"], trust)]}}],
                          **({"to": [{"operation": to}]} if to else {})})
        if through_gateway:
            rules.append({"from": [{"source": {"principals": [principal(
                gateway.get("service_account", "istio-system/istio-ingressgateway-service-account"), trust)]}}]})
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
            tel["tracing"] = [{"randomSamplingPercentage": float(telemetry["tracing_sampling"])}]
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
    return out


def namespace_objects(spec: dict, owned: bool) -> list[dict]:
    """The mesh namespaces the role creates (``owned``) or only labels, with the sidecar
    injection label (a revision label when given)."""
    label = {"istio.io/rev": spec["revision"]} if spec.get("revision") else {"istio-injection": "enabled"}
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns["name"], "labels": dict(label)}}
            for ns in spec.get("namespaces") or [] if bool(ns.get("create")) == owned]


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
    if spec.get("revision"):
        out["spec"]["revision"] = spec["revision"]
    return out


# -- authorization proof -------------------------------------------------------------------------
def _matches(values: list[str] | None, value: str) -> bool:
    """Istio string matching: exact, 'prefix*', '*suffix', '*'."""
    for pattern in values or []:
        if pattern == "*" or pattern == value:
            return True
        if pattern.endswith("*") and value.startswith(pattern[:-1]):
            return True
        if pattern.startswith("*") and value.endswith(pattern[1:]):
            return True
    return False


SUPPORTED_SOURCE = {"principals", "notPrincipals", "namespaces", "notNamespaces"}
SUPPORTED_OPERATION = {"methods", "notMethods", "paths", "notPaths"}


def _field_ok(spec: dict, key: str, value: str) -> bool:
    if key in spec and not _matches(spec[key], value):
        return False
    if f"not{key[0].upper()}{key[1:]}" in spec and _matches(spec[f"not{key[0].upper()}{key[1:]}"], value):
        return False
    return True


def _rule_matches(rule: dict, request: dict) -> bool:
    if set(rule) - {"from", "to"}:
        raise ValidationError(f"rule fields {sorted(set(rule) - {'from', 'to'})} are not evaluated here")
    sources = [f.get("source") or {} for f in rule.get("from") or []]
    operations = [t.get("operation") or {} for t in rule.get("to") or []]
    for source in sources:
        if set(source) - SUPPORTED_SOURCE:
            raise ValidationError(f"source fields {sorted(set(source) - SUPPORTED_SOURCE)} are not evaluated here")
    for operation in operations:
        if set(operation) - SUPPORTED_OPERATION:
            raise ValidationError(f"operation fields {sorted(set(operation) - SUPPORTED_OPERATION)} are not evaluated here")
    from_ok = not sources or any(_field_ok(s, "principals", request["principal"])
                                 and _field_ok(s, "namespaces", request["namespace"]) for s in sources)
    to_ok = not operations or any(_field_ok(o, "methods", request["method"]) and _field_ok(o, "paths", request["path"])
                                  for o in operations)
    return from_ok and to_ok


def authorize(policies: list[dict], request: dict, root_namespace: str = "istio-system") -> tuple[bool, str]:
    """Istio's order for one request to a workload (``to_namespace``, ``to_labels``): a matching
    DENY denies; no ALLOW policy for the workload allows; a matching ALLOW allows; else deny."""
    applying = []
    for policy in policies:
        meta, spec = policy.get("metadata") or {}, policy.get("spec") or {}
        if meta.get("namespace") not in (request["to_namespace"], root_namespace):
            continue
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        if all(request["to_labels"].get(k) == v for k, v in selector.items()):
            applying.append(policy)
    for action in ("DENY", "ALLOW"):
        for policy in applying:
            spec = policy.get("spec") or {}
            if spec.get("action", "ALLOW") == action and any(_rule_matches(r, request) for r in spec.get("rules") or []):
                verb = "allowed" if action == "ALLOW" else "denied"
                return action == "ALLOW", f"{verb} by {policy['metadata']['namespace']}/{policy['metadata']['name']}"
    if not any((p.get("spec") or {}).get("action", "ALLOW") == "ALLOW" for p in applying):
        return True, "no ALLOW policy applies to the workload"
    return False, "no ALLOW policy matches"


def expectations(spec: dict) -> list[dict]:
    """What every run proves: each declared caller gets in with an allowed method, not with a
    method it was not given, and an undeclared caller of the same namespace does not."""
    out = []
    for svc in spec.get("services") or []:
        target = {"to": f"{svc['namespace']}/{svc['name']}"}
        for rule in svc.get("allow") or []:
            method = (rule.get("methods") or ["GET"])[0]
            path = next((p for p in rule.get("paths") or [] if p.startswith("/") and not p.endswith("*")), "/")
            out.append({**target, "from": rule["from"], "method": method, "path": path, "allowed": True})
            if rule.get("methods"):
                other = next(m for m in METHODS if m not in rule["methods"])
                out.append({**target, "from": rule["from"], "method": other, "path": path, "allowed": False})
            namespace = caller(rule["from"], "from")[0]
            out.append({**target, "from": f"{namespace}/undeclared-caller", "method": method, "path": path,
                        "allowed": False})
    return out


def verdicts(policies: list[dict], expect: list[dict], trust_domain: str = "cluster.local",
             root_namespace: str = "istio-system", workload_labels: dict | None = None) -> list[dict]:
    """Each expectation with the evaluator's answer and ``holds``."""
    out = []
    for item in expect:
        namespace, _ = caller(item["from"], "from")
        to_ns, to_name = item["to"].split("/", 1)
        request = {"principal": principal(item["from"], trust_domain), "namespace": namespace,
                   "method": item.get("method", "GET"), "path": item.get("path", "/"),
                   "to_namespace": to_ns, "to_labels": (workload_labels or {}).get(item["to"], {"app": to_name})}
        allowed, why = authorize(policies, request, root_namespace)
        expected = item.get("allowed", True)
        words = {True: "allowed", False: "denied"}
        out.append({**item, "verdict": allowed, "why": why, "holds": allowed == expected,
                    "message": f"{item['from']} -> {item['to']} {request['method']} {request['path']}: expected "
                               f"{words[expected]}, {words[allowed]} ({why})"})
    return out


def plan(spec: dict) -> dict:
    """The whole plan, or only ``problems`` when any variable is bad."""
    found = problems(spec)
    if found:
        return {"problems": found}
    return {"problems": [], "owned_namespaces": namespace_objects(spec, owned=True),
            "labelled_namespaces": namespace_objects(spec, owned=False), "objects": objects(spec),
            "operator": istio_operator(spec), "expect": expectations(spec) + list(spec.get("expect") or [])}
