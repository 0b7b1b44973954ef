# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scenario 5 as data: locations (on-premises, clouds) with their address ranges and resolvers,
and the applications every location reaches -> CoreDNS forwarding zones, external-dns records
gated by health, cross-location NetworkPolicies, and the expectations that prove them.

What the chapter had and what replaces it:
- one ``forward`` of the whole domain to every provider's resolver (any zone could be asked of
  any provider) -> one server block per location zone, forwarding to that location only;
- ``global.load.balancer/*`` Service annotations (no controller reads them) -> external-dns
  DNSEndpoint records (externaldns.k8s.io/v1alpha1): the best healthy priority tier, weighted
  with Route 53's ``aws/weight`` where asked;
- an "external-dns-config" ConfigMap (external-dns reads no such thing) -> the zones above;
- TransitGatewayConfig / VirtualNetwork CRDs (fictional groups) -> out of scope: the role checks
  the IP plan those networks must respect instead.
"""

from __future__ import annotations

import re

from ansible_collections.k8snet.fabric.plugins.module_utils.plan import checks, fabric_clusters, globaldns, ipplan
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol import model
from ansible_collections.k8snet.fabric.plugins.module_utils.net_probe import server_address

COREDNS_MODES = ("custom", "corefile")
RECORD_POLICIES = globaldns.RECORD_POLICIES
# probes: the role's health checks pick the serving locations when it runs; route53: every
# location's record carries Route 53 routing (and its health check), Route 53 fails over itself.
RECORD_MECHANISMS = ("probes", "route53")
MANAGED_BY = "k8snet.fabric hybrid_dns"


# -- validation ----------------------------------------------------------------------------------
def _location_problems(loc: dict, where: str, out: list[str]):
    """Problems of one location; returns its address ranges (None when they do not parse)."""
    checks.label(loc.get("name"), f"{where}.name", out)
    checks.label(str(loc.get("zone", loc.get("name"))).split(".", maxsplit=1)[0], f"{where}.zone", out)
    cidrs = loc.get("cidrs")
    if not isinstance(cidrs, list) or not cidrs:
        out.append(f"{where}.cidrs: a location needs a list of its address ranges")
        cidrs = []
    own = checks.collect(out, ipplan.union, f"{where}.cidrs", cidrs) if cidrs else None
    if not loc.get("dns_servers"):
        out.append(f"{where}.dns_servers: a location's zone needs at least one resolver")
    for j, server in enumerate(loc.get("dns_servers") or []):
        checks.collect(out, server_address, server, f"{where}.dns_servers[{j}]")
    if loc.get("tls_server_name") is not None:
        checks.domain(loc["tls_server_name"], f"{where}.tls_server_name", out)
    for j, endpoint in enumerate(loc.get("endpoints") or []):
        address = checks.collect(out, ipplan.parse, f"{where}.endpoints[{j}]", endpoint)
        if address is not None and own is not None and not address.issubset(own):
            out.append(f"{where}.endpoints[{j}]: {endpoint} is not inside the location's cidrs "
                       f"({', '.join(map(str, cidrs))})")
    for key in ("weight", "priority"):
        checks.small_number(loc.get(key, 1), f"{where}.{key}", out)
    return own


SHAPES = {
    "domain": "str",
    "locations": ("list", {"name!": "str", "zone": ("opt", "str"), "cidrs": ("opt", ("list", "str")),
                           "dns_servers": ("opt", ("list", "str")), "endpoints": ("opt", ("list", "str")),
                           "weight": ("opt", "int"), "priority": ("opt", "int"), "tls_server_name": ("opt", "str"),
                           "health_check_id": ("opt", "str")}),
    "cluster": {"name": ("opt", "str"), "location": ("opt", "str"), "pods": ("opt", "str"), "services": ("opt", "str")},
    "context": ("opt", "str"),
    "kubeconfig": ("opt", "str"),
    "apps": ("list", {"name!": "str", "namespace!": "str", "port!": "int", "host": ("opt", "str"),
                      "egress_ports": ("opt", ("list", "int")),
                      "create_namespace": ("opt", "bool"), "target_port": ("opt", "int"), "load_balancer": ("opt", "bool")}),
    "records": "str",
    "record_mechanism": ("opt", "str"),
    "record_ttl": "int",
    "coredns": {"mode": "str", "namespace": "str", "port": "int", "cache_seconds": ("opt", "int"),
                "health_check": ("opt", "str"), "cluster_domain": ("opt", "str"), "upstream": ("opt", "str")},
    "probe_port": ("opt", "int"),
    "latency": ("opt", {"prober": "str", "module": "str", "namespace": "str", "interval": "str",
                        "latency_ms": "number", "loss_ratio": "number", "for": "str",
                        "labels": ("opt", ("map", "str"))}),
}


def problems(spec: dict) -> list[str]:
    """Every bad value in the role's variables, naming the variable; empty when all is well.
    Shapes first: nothing below reads a field of the wrong type."""
    out = fabric_clusters.role_problems(spec, SHAPES, "hybrid_dns_", names={"probe_port": "hybrid_dns_probes.port"})
    if out:
        return out
    cluster, out = this_cluster(spec)
    checks.domain(spec.get("domain"), "hybrid_dns_domain", out)
    locations = spec.get("locations") or []
    if not locations:
        out.append("hybrid_dns_locations: at least one location is needed")
    named_ranges, location_sets, zones = {}, {}, {}
    for where, loc in checks.mappings(locations, "hybrid_dns_locations", out):
        if loc.get("name") in location_sets:
            out.append(f"{where}.name: {loc.get('name')!r} is used twice")
        zone = zone_of(loc, spec.get("domain", ""))
        if zone in zones:
            out.append(f"{where}.zone: {zone} is also the zone of {zones[zone]}")
        zones[zone] = where
        location_sets[loc.get("name")] = _location_problems(loc, where, out)
        if location_sets[loc.get("name")] is not None:
            named_ranges.update({f"{where}.cidrs[{j}]": c for j, c in enumerate(loc["cidrs"])})
    out += ipplan.conflicts(named_ranges)

    home = cluster.get("location")
    if home is None:
        out.append("hybrid_dns_cluster.location: needed, the location this cluster runs in (here or in fabric_clusters)")
    elif home not in location_sets:
        out.append(f"{cluster['origin']['location']}: {home!r} is not a location "
                   f"({', '.join(sorted(map(str, location_sets)))})")
    # This cluster's ranges, merged with the plan's, checked as the plan's are (one rule, one wording).
    out += fabric_clusters.range_problems([{**cluster, "name": str(cluster.get("name") or "this cluster"),
                                            "where": "hybrid_dns_cluster"}])
    for kind in ("pod_cidrs", "service_cidrs"):
        for source, value in zip(cluster["origin"].get(kind, []), cluster.get(kind) or []):
            mine = checks.collect([], ipplan.parse, source, value)  # a bad one is named above
            if mine is None:
                continue
            for name, theirs in location_sets.items():
                # The cluster's own location contains its ranges; any other must not.
                if theirs is not None and name != home and mine & theirs:
                    out.append(f"{source}: {value} overlaps location {name!r} "
                               f"({ipplan.describe(mine & theirs)}): traffic to that location would stay in the cluster")
            out += _served_inside(locations, source, value, mine)
    out += _other_clusters_in_locations(spec.get("fabric_clusters") or [], cluster.get("name"), location_sets)
    checks.port((spec.get("coredns") or {}).get("port", 53), "hybrid_dns_coredns.port", out)
    ttl = spec.get("record_ttl", 60)
    if not 1 <= ttl <= 86400:
        out.append(f"hybrid_dns_record_ttl: {ttl!r} must be 1-86400 seconds")
    mode = (spec.get("coredns") or {}).get("mode", "custom")
    if mode not in COREDNS_MODES:
        out.append(f"hybrid_dns_coredns.mode: {mode!r} is not one of {', '.join(COREDNS_MODES)}")
    if spec.get("records", "failover") not in RECORD_POLICIES:
        out.append(f"hybrid_dns_records: {spec['records']!r} is not one of {', '.join(RECORD_POLICIES)}")
    mechanism = spec.get("record_mechanism", "probes")
    if mechanism not in RECORD_MECHANISMS:
        out.append(f"hybrid_dns_record_mechanism: {mechanism!r} is not one of {', '.join(RECORD_MECHANISMS)}")
    elif mechanism == "route53":
        named = [loc for loc in locations if isinstance(loc, dict)]
        out += globaldns.route53_problems(named, spec.get("records", "failover"),
                                          {loc.get("name"): f"hybrid_dns_locations[{i}]" for i, loc in enumerate(named)},
                                          "hybrid_dns_locations", "location")
    for where, app in checks.mappings(spec.get("apps"), "hybrid_dns_apps", out):
        checks.namespaced_name(app, where, out)
        checks.collect(out, model.port_entry, app.get("port"), f"{where}.port")
        if app.get("target_port") is not None:
            checks.port(app["target_port"], f"{where}.target_port", out)
        for j, port in enumerate(app.get("egress_ports") or []):
            checks.collect(out, model.port_entry, port, f"{where}.egress_ports[{j}]")
    out += _latency_problems(spec.get("latency") or {})
    return out


def _latency_problems(latency: dict) -> list[str]:
    out: list[str] = []
    if not latency.get("prober"):
        return out
    checks.host_port(latency["prober"], "hybrid_dns_latency.prober", "<host>:<port> of a blackbox exporter",
                     "e.g. blackbox-exporter.monitoring.svc:9115", out)
    checks.label(latency.get("namespace"), "hybrid_dns_latency.namespace", out)
    if not re.match(r"^[A-Za-z0-9_]+$", str(latency.get("module", ""))):
        out.append(f"hybrid_dns_latency.module: {latency.get('module')!r} is not a blackbox exporter module name")
    for key in ("interval", "for"):
        checks.prometheus_duration(latency.get(key), f"hybrid_dns_latency.{key}", out)
    if not latency.get("latency_ms", 0) > 0:
        out.append(f"hybrid_dns_latency.latency_ms: {latency.get('latency_ms')!r} must be above 0")
    if not 0 < latency.get("loss_ratio", 0) < 1:
        out.append(f"hybrid_dns_latency.loss_ratio: {latency.get('loss_ratio')!r} must be above 0 and below 1")
    return out


LATENCY_JOB = "hybrid-latency"


def latency_objects(spec: dict) -> list[dict]:
    """Latency and reachability of every location, measured continuously from the cluster: a
    Prometheus Operator Probe per location (its endpoints on the probe port, by the blackbox
    exporter at ``prober``, labelled with the location) and alerts when a location answers
    slower than ``latency_ms`` or fails more than ``loss_ratio`` of its probes."""
    latency = spec.get("latency") or {}
    if not latency.get("prober"):
        return []
    namespace, port = latency["namespace"], spec.get("probe_port", 443)
    # The labels the user's Prometheus selects Probes and rules by (probeSelector, ruleSelector).
    meta = {"namespace": namespace, **({"labels": dict(latency["labels"])} if latency.get("labels") else {})}
    probes = [{"apiVersion": "monitoring.coreos.com/v1", "kind": "Probe",
               "metadata": {"name": f"{LATENCY_JOB}-{loc['name']}", **meta},
               "spec": {"jobName": LATENCY_JOB, "interval": latency["interval"], "module": latency["module"],
                        "prober": {"url": latency["prober"], "scheme": "http", "path": "/probe"},
                        "targets": {"staticConfig": {
                            "static": [f"[{e}]:{port}" if ":" in e else f"{e}:{port}" for e in loc["endpoints"]],
                            "labels": {"location": loc["name"]}}}}}
              for loc in spec["locations"] if loc.get("endpoints")]
    job, hold = f'job="{LATENCY_JOB}"', latency["for"]
    rules = [
        {"alert": "HybridLocationSlow",
         "expr": f"avg by (location) (avg_over_time(probe_duration_seconds{{{job}}}[5m])) * 1000 > {latency['latency_ms']}",
         "for": hold, "labels": {"severity": "warning"},
         "annotations": {"summary": "location {{ $labels.location }} answers in {{ $value | humanize }} ms"}},
        {"alert": "HybridLocationLoss",
         "expr": f"1 - avg by (location) (avg_over_time(probe_success{{{job}}}[5m])) > {latency['loss_ratio']}",
         "for": hold, "labels": {"severity": "critical"},
         "annotations": {"summary": "location {{ $labels.location }} fails {{ $value | humanizePercentage }} of probes"}},
    ]
    return probes + [{"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                      "metadata": {"name": LATENCY_JOB, **meta},
                      "spec": {"groups": [{"name": "hybrid.latency", "rules": rules}]}}]


def zone_of(location: dict, domain: str) -> str:
    """The location's zone: ``<zone or name>.<domain>``, or the zone given in full."""
    zone = str(location.get("zone") or location.get("name"))
    return zone if zone.endswith("." + domain.rstrip(".")) else f"{zone}.{domain.rstrip('.')}"


# -- CoreDNS ----------------------------------------------------------------------------------
def server_blocks(spec: dict) -> str:
    """One CoreDNS server block per location zone, each forwarding to that location's resolvers
    only (sequentially: the first healthy resolver answers, the others are the fallback)."""
    coredns = spec.get("coredns") or {}
    port = coredns.get("port", 53)
    lines = [f"# Managed by {MANAGED_BY}: one zone per location, each to its own resolvers."]
    for loc in spec["locations"]:
        servers = []
        tls_name = loc.get("tls_server_name")
        for server in loc["dns_servers"]:
            address, server_port = server_address(server, "dns_servers", 853 if tls_name else 53)
            host = f"[{address}]" if ":" in address else address
            servers.append(f"{'tls://' if tls_name else ''}{host}:{server_port}")
        lines += [f"{zone_of(loc, spec['domain'])}:{port} {{",
                  *([f"    bind {' '.join(coredns['bind'])}"] if coredns.get("bind") else []),
                  "    errors",
                  f"    cache {coredns.get('cache_seconds', 30)}",
                  f"    forward . {' '.join(servers)} {{",
                  # DNS over TLS: the resolvers' certificate is verified for this name (system CAs).
                  *([f"        tls_servername {tls_name}"] if tls_name else []),
                  "        policy sequential",
                  f"        health_check {coredns.get('health_check', '5s')}",
                  "    }",
                  "}"]
    return "\n".join(lines) + "\n"


def corefile(spec: dict) -> str:
    """A whole Corefile: the cluster's usual block (kubeadm's default) and the location zones."""
    coredns = spec.get("coredns") or {}
    port = coredns.get("port", 53)
    domain = coredns.get("cluster_domain", "cluster.local")
    bind = [f"    bind {' '.join(coredns['bind'])}"] if coredns.get("bind") else []
    kubernetes_options = [f"        {line}" for line in coredns.get("kubernetes_options") or []]
    cluster_block = [
        f".:{port} {{", *bind, "    errors",
        "    health {\n        lameduck 5s\n    }" if coredns.get("health", True) else None,
        "    ready" if coredns.get("ready", True) else None,
        f"    kubernetes {domain} in-addr.arpa ip6.arpa {{",
        "        pods insecure", "        fallthrough in-addr.arpa ip6.arpa", "        ttl 30",
        *kubernetes_options, "    }",
        "    prometheus :9153" if coredns.get("prometheus", True) else None,
        f"    forward . {coredns.get('upstream', '/etc/resolv.conf')} {{", "        max_concurrent 1000", "    }",
        "    cache 30", "    loop", "    reload", "    loadbalance", "}", ""]
    return "\n".join(line for line in cluster_block if line is not None) + server_blocks(spec)


def coredns_object(spec: dict) -> dict:
    """The ConfigMap CoreDNS reads: ``coredns-custom`` (k3s, AKS import its *.server keys) or the
    ``coredns`` ConfigMap's whole Corefile (kubeadm, EKS and others import nothing)."""
    coredns = spec.get("coredns") or {}
    if coredns.get("mode", "custom") == "custom":
        name, data = coredns.get("configmap", "coredns-custom"), {"hybrid.server": server_blocks(spec)}
    else:
        name, data = coredns.get("configmap", "coredns"), {"Corefile": corefile(spec)}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": coredns.get("namespace", "kube-system"),
                         "labels": {"app.kubernetes.io/managed-by": "k8snet.fabric"}},
            "data": data}


# -- global records ------------------------------------------------------------------------------
def serving_locations(spec: dict, healthy: dict | None) -> list[dict]:
    """The locations the global records point at (see globaldns.serving)."""
    return globaldns.serving(spec["locations"], healthy)


def dns_endpoints(spec: dict, healthy: dict | None) -> list[dict]:
    """One DNSEndpoint per application: <host>.<domain> A records of the serving locations
    (mechanism probes), or of every location with its Route 53 routing (route53)."""
    policy, ttl = spec.get("records", "failover"), spec.get("record_ttl", 60)
    out = []
    for app in spec.get("apps") or []:
        name, dns_name = f"{app['name']}-global", f"{app.get('host', app['name'])}.{spec['domain'].rstrip('.')}"
        if spec.get("record_mechanism", "probes") == "route53":
            located = [loc for loc in spec["locations"] if loc.get("endpoints")]
            out.append(globaldns.route53_endpoint(name, app["namespace"], dns_name, located, policy, ttl))
        else:
            out.append(globaldns.dns_endpoint(name, app["namespace"], dns_name, serving_locations(spec, healthy),
                                              policy, ttl))
    return out


def pod_port(app: dict) -> dict:
    """The port the application's pods listen on (policies act on it): target_port, else port."""
    entry = model.port_entry(app["port"], "port")
    return {**entry, "port": app["target_port"]} if app.get("target_port") else entry


def load_balancers(spec: dict) -> list[dict]:
    """The chapter's global LoadBalancer per application that asks for one: port -> the pods'
    target_port (the policies admit the target port; the chapter's admitted 443 while its
    LoadBalancer sent 8443, which the proof's service-port-blocked finding refuses)."""
    out = []
    for app in spec.get("apps") or []:
        if app.get("load_balancer"):
            entry, target = model.port_entry(app["port"], "port"), pod_port(app)
            out.append({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": f"{app['name']}-global", "namespace": app["namespace"], "labels": {"app": app["name"]}},
                        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": {"app": app["name"]},
                                 "ports": [{"name": "https", "port": entry["port"], "protocol": entry["protocol"],
                                            "targetPort": target["port"]}]}})
    return out


# -- policies and proof ------------------------------------------------------------------------
def policy_config(spec: dict) -> list[dict]:
    """network_policies intent per application namespace: default deny, DNS, each location to
    the application on its port, and the application to each location (egress_ports, or all)."""
    by_namespace: dict[str, list[dict]] = {}
    for app in spec.get("apps") or []:
        flows = by_namespace.setdefault(app["namespace"], [])
        target = pod_port(app)
        port = app["port"] if not app.get("target_port") else (
            target["port"] if target["protocol"] == "TCP" else f"{target['port']}/{target['protocol']}")
        for loc in spec["locations"]:
            for n, cidr in enumerate(loc["cidrs"]):
                suffix = f"-{n}" if len(loc["cidrs"]) > 1 else ""
                flows.append({"name": f"{loc['name']}{suffix}-to-{app['name']}", "from": {"cidr": cidr},
                              "to": {"pods": {"app": app["name"]}}, "ports": [port]})
                egress = {"name": f"{app['name']}-to-{loc['name']}{suffix}", "from": {"pods": {"app": app["name"]}},
                          "to": {"cidr": cidr}}
                if app.get("egress_ports"):
                    egress["ports"] = list(app["egress_ports"])
                flows.append(egress)
    return [{"namespace": ns, "default_deny": True, "allow_dns": True, "flows": flows}
            for ns, flows in by_namespace.items()]


def workloads(spec: dict) -> list[dict]:
    """The applications as pods, so the proof needs no running application."""
    return model.stand_in_pods([(app["namespace"], app["name"]) for app in spec.get("apps") or []])


def expectations(spec: dict) -> list[dict]:
    """What every run proves: each location reaches each application on its port and on no
    other; an address outside every location reaches nothing; the application reaches each
    location (on its egress ports) and nothing outside; DNS works."""
    union = ipplan.union("cidrs", [c for loc in spec["locations"] for c in loc["cidrs"]])
    # An address no location holds (not 0.0.0.0/8, which no host sends from).
    rest = ipplan.parse("all", "0.0.0.0/0") - ipplan.parse("this", "0.0.0.0/8") - union
    outside = str(rest.iter_cidrs()[0][0])
    out = []
    for app in spec.get("apps") or []:
        target = f"{app['namespace']}/{app['name']}"
        port = pod_port(app)
        other = 8443 if port.get("port") != 8443 else 9443
        for loc in spec["locations"]:
            probe = str(ipplan.union("cidrs", loc["cidrs"]).iter_cidrs()[0][0])
            out.append({"src": probe, "dst": target, "port": port["port"], "protocol": port["protocol"], "allowed": True})
            out.append({"src": probe, "dst": target, "port": other, "protocol": "TCP", "allowed": False})
            egress = [model.port_entry(p, "egress_ports") for p in app.get("egress_ports") or []]
            first = egress[0] if egress else {"port": 443, "protocol": "TCP"}
            out.append({"src": target, "dst": probe, "port": first["port"], "protocol": first["protocol"],
                        "allowed": True})
        out.append({"src": outside, "dst": target, "port": port["port"], "protocol": port["protocol"], "allowed": False})
        out.append({"src": target, "dst": outside, "port": 443, "protocol": "TCP", "allowed": False})
        out.append({"src": target, "dst": "kube-system/coredns", "port": 53, "protocol": "UDP", "allowed": True})
    return out


def probes(spec: dict) -> dict:
    """net_probe's input: each location's resolvers asked for its zone, each endpoint connected."""
    port = spec.get("probe_port", 443)
    return {"dns": [{"server": str(server), "name": zone_of(loc, spec["domain"]), "type": "SOA",
                     **({"tls_server_name": loc["tls_server_name"]} if loc.get("tls_server_name") else {})}
                    for loc in spec["locations"] for server in loc["dns_servers"]],
            "tcp": [{"host": str(endpoint), "port": port}
                    for loc in spec["locations"] for endpoint in loc.get("endpoints") or []]}


def probe_problems(spec: dict, answers: list[dict]) -> list[str]:
    """A zone whose resolvers all failed (CoreDNS would answer SERVFAIL for all of it)."""
    out = []
    for loc in spec["locations"]:
        zone = zone_of(loc, spec["domain"])
        mine = [a for a in answers if a.get("name") == zone]
        if mine and not any(a.get("ok") for a in mine):
            out.append(f"hybrid_dns_locations {loc['name']!r}: no resolver answers for {zone} ("
                       + "; ".join(f"{a.get('server')}: {a.get('error')}" for a in mine) + ")")
    return out


def this_cluster(spec: dict) -> tuple[dict, list[str]]:
    """hybrid_dns_cluster completed from the IP plan's entry of the same name (default: the
    inventory host): location and ranges, as lists pod_cidrs and service_cidrs."""
    return fabric_clusters.fill(spec.get("cluster") or {}, "hybrid_dns_cluster", spec.get("fabric_clusters"),
                                {"location": "location", "pods": "pod_cidrs", "services": "service_cidrs"})


def _other_clusters_in_locations(plan: list, mine: str | None, location_sets: dict) -> list[str]:
    """The IP plan's other clusters: a range of theirs inside a location they are not in would be
    taken for that location's addresses by the policies (let in as that location's clients)."""
    out = []
    for i, other in enumerate(plan):
        if not isinstance(other, dict) or other.get("name") == mine:
            continue
        home = other.get("location")
        for kind in ("pod_cidrs", "service_cidrs", "node_cidrs"):
            for j, value in enumerate(other.get(kind) or []):
                theirs = ipplan.parse(f"fabric_clusters[{i}].{kind}[{j}]", value)
                for name, location in location_sets.items():
                    if location is not None and name != home and theirs & location:
                        out.append(f"fabric_clusters[{i}].{kind}[{j}] ({other.get('name')}): {value} lies in location "
                                   f"{name!r} ({ipplan.describe(theirs & location)}), but {other.get('name')} is "
                                   f"{'in ' + repr(home) if home else 'in no location'}: the policies would let its "
                                   f"addresses in as {name}'s; set fabric_clusters[{i}].location: {name}, or move the range")
    return out


def _served_inside(locations: list, source: str, value, mine) -> list[str]:
    """A location's resolver or endpoint inside the cluster's own pods or services would be
    answered (or not) inside the cluster, never by the location."""
    out = []
    for i, loc in enumerate(locations):
        for key in ("dns_servers", "endpoints"):
            for j, address in enumerate(loc.get(key) or []):
                try:
                    inside = ipplan.parse("address", server_address(address, "address")[0]).issubset(mine)
                except ValidationError:
                    continue  # reported with the location
                if inside:
                    out.append(f"hybrid_dns_locations[{i}].{key}[{j}]: {address} lies inside {source}, {value}: "
                               "traffic to it would stay in the cluster")
    return out


def plan(spec: dict, probed: dict | None = None) -> dict:
    """The whole plan, or only ``problems`` when a variable is bad or, given net_probe's result
    (``probed``), when a zone has no answering resolver or no endpoint is healthy."""
    found = problems(spec)
    if found:
        return {"problems": found}
    healthy = None
    if probed:
        found = probe_problems(spec, probed.get("dns") or [])
        # With Route 53 routing, Route 53's health checks decide; the role's do not gate records.
        if probed.get("tcp") and spec.get("record_mechanism", "probes") == "probes":
            healthy = {str(r["host"]): bool(r.get("ok")) for r in probed["tcp"]}
    serving = serving_locations(spec, healthy)
    if spec.get("apps") and not serving:
        found.append("hybrid_dns health checks: no endpoint of any location is healthy; refusing to publish "
                     "records without a target (fix the endpoints, or switch hybrid_dns_probes.endpoints off)")
    if found:
        return {"problems": found}
    return {"problems": [], "zones": {loc["name"]: zone_of(loc, spec["domain"]) for loc in spec["locations"]},
            "connection": fabric_clusters.connection({**spec, "cluster_name": (spec.get("cluster") or {}).get("name")},
                                                     "hybrid_dns"),
            "serving": [loc["name"] for loc in serving], "probes": probes(spec),
            "coredns": coredns_object(spec), "records": dns_endpoints(spec, healthy),
            "namespaces": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
                           for ns in sorted({a["namespace"] for a in spec.get("apps") or [] if a.get("create_namespace")})],
            "services": load_balancers(spec), "monitoring": latency_objects(spec),
            "policy_config": policy_config(spec), "workloads": workloads(spec), "expect": expectations(spec),
            "range_names": [{"name": loc["name"], "cidr": cidr} for loc in spec["locations"] for cidr in loc["cidrs"]]}
