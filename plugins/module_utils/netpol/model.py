# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The network policy intent model and its translation to NetworkPolicies (and back).

Intent, per namespace::

    namespace: shop
    default_deny: [ingress, egress]       # or true (both) / false
    allow_dns: true                       # egress to the cluster DNS for every pod
    flows:
      - name: web-to-api
        from: {pods: {app: web}}          # pods in this namespace
        to: {pods: {app: api}}
        ports: [8080, "53/UDP", "8000-8100/TCP", http]

Peers: ``{pods: {labels}}`` (this namespace), ``+ namespace: name`` or ``+ namespaces: {labels}``,
``{namespaces: {labels}}`` (every pod there), ``{cidr: ..., except: [...]}``. A flow between pods
becomes an ingress rule on the destination and an egress rule on the source, so it works under
default deny in both directions. Generated policies carry the flow's name in an annotation, so
``gathered`` turns them back into this model.
"""

from __future__ import annotations

import re

from ansible_collections.k8snet.fabric.plugins.module_utils.plan import ipplan
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.semantics import CLUSTER_DNS_LABELS, CLUSTER_DNS_NAMESPACE

FLOW_ANNOTATION = "fabric.k8snet.io/flow"
ROLE_ANNOTATION = "fabric.k8snet.io/role"
PROTOCOLS = ("TCP", "UDP", "SCTP")
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PORT_TEXT = re.compile(r"^(?P<lo>\d+)(-(?P<hi>\d+))?(/(?P<proto>[A-Za-z]+))?$")
NAMED_PORT = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(/(?P<proto>[A-Za-z]+))?$")
DEFAULT_DNS = {"namespace": CLUSTER_DNS_NAMESPACE, "pods": dict(CLUSTER_DNS_LABELS), "ports": ["53/UDP", "53/TCP"]}


def _fail(where: str, message: str):
    raise ValidationError(f"{where}: {message}")


# -- ports ---------------------------------------------------------------------------------
def port_entry(value, where: str) -> dict:
    """One port: 80, "80/UDP", "8000-8100/TCP", "http", "dns/UDP", or {port, protocol, end_port}."""
    if isinstance(value, dict):
        protocol = str(value.get("protocol") or "TCP").upper()
        text = str(value.get("port", ""))
        if value.get("end_port") is not None:
            text += f"-{value['end_port']}"
        return port_entry(f"{text}/{protocol}" if text else f"/{protocol}", where)
    if isinstance(value, bool):
        _fail(where, f"{value!r} is not a port")
    text = str(value).strip()
    if text.startswith("/"):
        protocol = text[1:].upper()
        _check_protocol(protocol, where, value)
        return {"protocol": protocol}
    match = PORT_TEXT.match(text)
    if match:
        low = int(match["lo"])
        high = int(match["hi"]) if match["hi"] else None
        protocol = (match["proto"] or "TCP").upper()
        _check_protocol(protocol, where, value)
        for number in (low, high):
            if number is not None and not 1 <= number <= 65535:
                _fail(where, f"port {number} in {value!r} is out of range (1-65535)")
        if high is not None and high < low:
            _fail(where, f"port range {value!r} ends before it starts")
        entry = {"protocol": protocol, "port": low}
        if high is not None and high != low:
            entry["endPort"] = high
        return entry
    match = NAMED_PORT.match(text)
    name = text.split("/", maxsplit=1)[0]
    if match and len(name) <= 15 and re.search("[a-z]", name):
        protocol = (match["proto"] or "TCP").upper()
        _check_protocol(protocol, where, value)
        return {"protocol": protocol, "port": name}
    _fail(where, f"{value!r} is not a port (use 80, \"53/UDP\", \"8000-8100/TCP\" or a named port)")


def _check_protocol(protocol: str, where: str, value) -> None:
    if protocol not in PROTOCOLS:
        _fail(where, f"protocol {protocol!r} in {value!r} is not one of {', '.join(PROTOCOLS)}")


# -- peers -----------------------------------------------------------------------------------
def _labels(value, where: str) -> dict:
    if not isinstance(value, dict):
        _fail(where, f"expected a mapping of labels, got {value!r}")
    return {str(k): str(v) for k, v in value.items()}


def peer_entry(peer, where: str) -> dict:
    """A NetworkPolicyPeer from the intent's peer mapping."""
    if not isinstance(peer, dict) or not peer:
        _fail(where, "an empty peer would match every pod of the namespace; say pods: {} if you mean that")
    unknown = set(peer) - {"pods", "namespace", "namespaces", "cidr", "except"}
    if unknown:
        _fail(where, f"unknown key(s) {', '.join(sorted(unknown))} (use pods, namespace, namespaces, cidr, except)")
    if "cidr" in peer:
        if set(peer) - {"cidr", "except"}:
            _fail(where, "cidr cannot be combined with pods or namespaces")
        cidr = str(peer["cidr"])
        if "/" not in cidr:
            _fail(where, f"cidr {cidr!r} needs a prefix length")
        ipplan.parse(f"{where}.cidr", cidr)
        block = {"cidr": cidr}
        excepts = [str(e) for e in peer.get("except") or []]
        for index, item in enumerate(excepts):
            reason = ipplan.contains(f"{where}.cidr", cidr, f"{where}.except[{index}]", item)
            if reason:
                _fail(where, reason)
        if excepts:
            block["except"] = excepts
        return {"ipBlock": block}
    if "except" in peer:
        _fail(where, "except needs a cidr")
    if "namespace" in peer and "namespaces" in peer:
        _fail(where, "use namespace (a name) or namespaces (labels), not both")
    out = {}
    if "namespace" in peer:
        if not NAME.match(str(peer["namespace"])):
            _fail(where, f"namespace {peer['namespace']!r} is not a valid namespace name")
        out["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": str(peer["namespace"])}}
    elif "namespaces" in peer:
        out["namespaceSelector"] = {"matchLabels": _labels(peer["namespaces"], f"{where}.namespaces")} \
            if peer["namespaces"] else {}
    if "pods" in peer:
        labels = _labels(peer["pods"], f"{where}.pods")
        out["podSelector"] = {"matchLabels": labels} if labels else {}
    return out


def _selector(labels: dict) -> dict:
    return {"matchLabels": labels} if labels else {}


# -- intent -> policies ------------------------------------------------------------------------
def build(config: list[dict]) -> list[dict]:
    """NetworkPolicies for every namespace entry; raises ValidationError naming the field."""
    if not isinstance(config, list):
        _fail("config", "expected a list of namespace entries")
    policies, seen = [], set()
    for n, entry in enumerate(config):
        where = f"config[{n}]"
        if not isinstance(entry, dict):
            _fail(where, "expected a mapping")
        namespace = str(entry.get("namespace") or "")
        if not NAME.match(namespace):
            _fail(f"{where}.namespace", f"{namespace!r} is not a valid namespace name")
        policies += _namespace_policies(entry, namespace, where)
    for policy in policies:
        key = (policy["metadata"]["namespace"], policy["metadata"]["name"])
        if key in seen:
            _fail("config", f"two flows produce the policy {key[0]}/{key[1]}; flow names must be unique per namespace")
        seen.add(key)
    return policies


def _policy(namespace: str, name: str, selector: dict, types: list[str], role: str, **rules) -> dict:
    spec = {"podSelector": selector, "policyTypes": types}
    spec.update(rules)
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace, "annotations": {ROLE_ANNOTATION: role}}, "spec": spec}


def _namespace_policies(entry: dict, namespace: str, where: str) -> list[dict]:
    out = []
    deny = entry.get("default_deny", True)
    if deny is True:
        deny = ["ingress", "egress"]
    elif deny is False or deny is None:
        deny = []
    if not isinstance(deny, list) or set(deny) - {"ingress", "egress"}:
        _fail(f"{where}.default_deny", f"{entry.get('default_deny')!r} must be true, false or a list of ingress/egress")
    if deny:
        out.append(_policy(namespace, "default-deny", {}, [d.capitalize() for d in sorted(deny)], "default-deny"))
    if entry.get("allow_dns", "egress" in deny):
        dns = {**DEFAULT_DNS, **(entry.get("dns") or {})}
        rule = {"to": [peer_entry({"namespace": dns["namespace"], "pods": dns["pods"]}, f"{where}.dns")],
                "ports": [port_entry(p, f"{where}.dns.ports[{i}]") for i, p in enumerate(dns["ports"])]}
        out.append(_policy(namespace, "allow-dns", {}, ["Egress"], "allow-dns", egress=[rule]))
    names = set()
    for f, flow in enumerate(entry.get("flows") or []):
        fwhere = f"{where}.flows[{f}]"
        if not isinstance(flow, dict):
            _fail(fwhere, "expected a mapping")
        name = str(flow.get("name") or "")
        if not NAME.match(name) or len(name) > 50:
            _fail(f"{fwhere}.name", f"{name!r} must be a DNS label of at most 50 characters")
        if name in names:
            _fail(f"{fwhere}.name", f"{name!r} is used twice in namespace {namespace}")
        names.add(name)
        if "from" not in flow or "to" not in flow:
            _fail(fwhere, "a flow needs both from and to")
        ports = [port_entry(p, f"{fwhere}.ports[{i}]") for i, p in enumerate(flow.get("ports") or [])]
        if "ports" in flow and not ports:
            _fail(f"{fwhere}.ports", "an empty list would allow every port; leave ports out if you mean that")
        src, dst = flow["from"], flow["to"]
        src_peer = peer_entry(src, f"{fwhere}.from")
        dst_peer = peer_entry(dst, f"{fwhere}.to")
        annotations = {FLOW_ANNOTATION: name}
        rule_ports = {"ports": ports} if ports else {}
        # Ingress on the destination, when the destination is pods of this or another namespace.
        if "ipBlock" not in dst_peer:
            dst_ns = dst.get("namespace", namespace) if "namespaces" not in dst else None
            if dst_ns is None:
                _fail(f"{fwhere}.to", "a destination must be pods of one namespace (namespace: name) or a cidr")
            policy = _policy(dst_ns, f"{name}-in", _selector(_labels(dst.get("pods") or {}, f"{fwhere}.to.pods")),
                             ["Ingress"], "flow", ingress=[{"from": [_relative(src_peer, src, namespace, dst_ns)], **rule_ports}])
            policy["metadata"]["annotations"].update(annotations)
            out.append(policy)
        if "ipBlock" not in src_peer:
            src_ns = src.get("namespace", namespace) if "namespaces" not in src else None
            if src_ns is None:
                continue  # sources chosen by namespace labels: only the ingress side is ours to write
            policy = _policy(src_ns, f"{name}-out", _selector(_labels(src.get("pods") or {}, f"{fwhere}.from.pods")),
                             ["Egress"], "flow", egress=[{"to": [_relative(dst_peer, dst, namespace, src_ns)], **rule_ports}])
            policy["metadata"]["annotations"].update(annotations)
            out.append(policy)
        elif "ipBlock" in dst_peer:
            _fail(fwhere, "a flow from a cidr to a cidr is not cluster traffic")
    return out


def _relative(peer: dict, raw: dict, entry_ns: str, policy_ns: str) -> dict:
    """The peer as seen from a policy in ``policy_ns``: pods of the entry's namespace need a
    namespaceSelector when the policy lives elsewhere."""
    if "ipBlock" in peer or "namespaceSelector" in peer or policy_ns == entry_ns:
        return peer
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": entry_ns}}, **peer}


# -- policies -> intent ------------------------------------------------------------------------
def to_intent(policies: list[dict]) -> list[dict]:
    """The intent model of policies this module generated; others are listed raw under
    ``unmanaged`` of their namespace."""
    by_ns: dict[str, dict] = {}
    for policy in sorted(policies, key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"])):
        if policy.get("kind") != "NetworkPolicy":
            continue
        meta = policy["metadata"]
        ns = meta.get("namespace") or "default"
        entry = by_ns.setdefault(ns, {"namespace": ns, "default_deny": False, "allow_dns": False, "flows": []})
        annotations = meta.get("annotations") or {}
        role = annotations.get(ROLE_ANNOTATION)
        spec = policy.get("spec") or {}
        if role == "default-deny":
            entry["default_deny"] = sorted(t.lower() for t in spec.get("policyTypes") or [])
        elif role == "allow-dns":
            entry["allow_dns"] = True
        elif role == "flow":
            name = annotations.get(FLOW_ANNOTATION, meta["name"])
            flow = next((f for f in entry["flows"] if f["name"] == name), None)
            side = "in" if meta["name"].endswith("-in") else "out"
            rules = spec.get("ingress" if side == "in" else "egress") or [{}]
            selected = {"pods": (spec.get("podSelector") or {}).get("matchLabels") or {}}
            peer = _peer_intent((rules[0].get("from" if side == "in" else "to") or [{}])[0], ns)
            described = {"name": name, "from": peer if side == "in" else selected,
                         "to": selected if side == "in" else peer}
            if rules[0].get("ports"):
                described["ports"] = [_port_text(p) for p in rules[0]["ports"]]
            if flow is None:
                entry["flows"].append(described)
        else:
            entry.setdefault("unmanaged", []).append({"name": meta["name"], "spec": spec})
    return list(by_ns.values())


def _peer_intent(peer: dict, ns: str) -> dict:
    if "ipBlock" in peer:
        out = {"cidr": peer["ipBlock"]["cidr"]}
        if peer["ipBlock"].get("except"):
            out["except"] = list(peer["ipBlock"]["except"])
        return out
    out = {}
    ns_labels = (peer.get("namespaceSelector") or {}).get("matchLabels") or {}
    if list(ns_labels) == ["kubernetes.io/metadata.name"]:
        if ns_labels["kubernetes.io/metadata.name"] != ns:
            out["namespace"] = ns_labels["kubernetes.io/metadata.name"]
    elif "namespaceSelector" in peer:
        out["namespaces"] = ns_labels
    if "podSelector" in peer:
        out["pods"] = (peer["podSelector"] or {}).get("matchLabels") or {}
    return out


def _port_text(port: dict) -> str:
    protocol = port.get("protocol") or "TCP"
    if "port" not in port:
        return f"/{protocol}"
    text = str(port["port"])
    if port.get("endPort"):
        text += f"-{port['endPort']}"
    return f"{text}/{protocol}"


def stand_in_pod(namespace: str, name: str, labels: dict, ports=()) -> dict:
    """A pod that stands for a workload a proof needs before it runs (the one builder of them)."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "spec": {"containers": [{"name": "main", "ports": [{"containerPort": p} for p in ports]}]}}


def cluster_dns_stand_in() -> dict:
    """The cluster DNS as a pod (kube-system, k8s-app=kube-dns, port 53)."""
    return stand_in_pod(CLUSTER_DNS_NAMESPACE, "coredns", CLUSTER_DNS_LABELS, [53])


def stand_in_pods(workloads: list[tuple[str, str]]) -> list[dict]:
    """Pods labelled app=<name> for (namespace, name) pairs, and the cluster DNS pod: what a
    proof over policies needs when no application runs yet."""
    return [stand_in_pod(namespace, name, {"app": name}) for namespace, name in workloads] + [cluster_dns_stand_in()]
