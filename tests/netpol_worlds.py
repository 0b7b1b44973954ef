"""Generated clusters (namespaces, workloads, policies) for differential tests and benchmarks."""

from __future__ import annotations

import random

APPS = ("web", "api", "db", "cache", "worker")
TIERS = ("front", "back")
PROTOCOLS = ("TCP", "UDP", "SCTP")
CIDRS = (("10.0.0.0/8", ["10.1.0.0/16"]), ("192.168.0.0/16", []), ("0.0.0.0/0", ["10.0.0.0/8"]),
         ("172.16.0.0/12", ["172.16.5.0/24", "172.17.0.0/16"]))


def _selector(rng):
    choice = rng.random()
    if choice < 0.2:
        return {}
    if choice < 0.7:
        return {"matchLabels": {"app": rng.choice(APPS)}}
    op = rng.choice(["In", "NotIn", "Exists", "DoesNotExist"])
    expr = {"key": rng.choice(["app", "tier"]), "operator": op}
    if op in ("In", "NotIn"):
        expr["values"] = rng.sample(APPS if expr["key"] == "app" else TIERS, 2 if expr["key"] == "app" else 1)
    return {"matchExpressions": [expr]}


def _peer(rng, namespaces, cidrs=CIDRS):
    choice = rng.random()
    if choice < 0.35:
        return {"podSelector": _selector(rng)}
    if choice < 0.55:
        return {"namespaceSelector": {"matchLabels": {"team": rng.choice(["red", "blue"])}}}
    if choice < 0.8:
        return {"namespaceSelector": rng.choice([{}, {"matchLabels": {"kubernetes.io/metadata.name": rng.choice(namespaces)}}]),
                "podSelector": _selector(rng)}
    cidr, excepts = rng.choice(cidrs)
    block = {"cidr": cidr}
    if excepts and rng.random() < 0.7:
        block["except"] = excepts
    return {"ipBlock": block}


def _ports(rng, protocols=PROTOCOLS):
    if rng.random() < 0.3:
        return None
    out = []
    for _unused in range(rng.randint(1, 2)):
        entry = {}
        if rng.random() < 0.7:
            entry["protocol"] = rng.choice(protocols)
        kind = rng.random()
        if kind < 0.5:
            entry["port"] = rng.choice([80, 443, 8080, 5432, 53])
        elif kind < 0.7:
            entry["port"] = rng.choice([80, 8000])
            entry["endPort"] = entry["port"] + rng.choice([1, 100])
        elif kind < 0.9:
            entry["port"] = rng.choice(["http", "metrics", "dns"])
        out.append(entry)
    return out


def world(seed: int, namespaces: int = 3, workloads: int = 6, policies: int = 4, *, prefix: str = "ns",
          bare_pods: bool = False, cidrs=CIDRS, protocols=PROTOCOLS) -> list[dict]:
    """Namespaces, workloads (Deployments, or bare Pods with ``bare_pods``) and policies drawn
    from ``seed``; ``cidrs`` are the ipBlocks policies may name, ``protocols`` their ports'."""
    rng = random.Random(seed)
    names = [f"{prefix}{i}" for i in range(namespaces)]
    objects = [{"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": n, "labels": {"team": rng.choice(["red", "blue"])}}} for n in names]
    for i in range(workloads):
        labels = {"app": rng.choice(APPS)}
        if rng.random() < 0.5:
            labels["tier"] = rng.choice(TIERS)
        ports = [{"name": name, "containerPort": number, "protocol": proto}
                 for name, number, proto in (("http", 8080, "TCP"), ("metrics", 9090, "TCP"), ("dns", 53, "UDP"))
                 if rng.random() < 0.5]
        pod_spec = {"containers": [{"name": "c", "image": "x", "ports": ports}]}
        namespace = rng.choice(names)
        if bare_pods:
            objects.append({"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": f"w{i}", "namespace": namespace, "labels": labels}, "spec": pod_spec})
            continue
        objects.append({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": f"w{i}", "namespace": namespace},
                        "spec": {"selector": {"matchLabels": labels},
                                 "template": {"metadata": {"labels": labels}, "spec": pod_spec}}})
    for i in range(policies):
        spec = {"podSelector": _selector(rng)}
        for direction, key in (("ingress", "from"), ("egress", "to")):
            if rng.random() < 0.6:
                rules = []
                for _unused in range(rng.randint(0, 2)):
                    rule = {}
                    if rng.random() < 0.8:
                        rule[key] = [_peer(rng, names, cidrs) for _unused in range(rng.randint(1, 2))]
                    ports = _ports(rng, protocols)
                    if ports:
                        rule["ports"] = ports
                    rules.append(rule)
                spec[direction] = rules
        if rng.random() < 0.6:
            types = [t for t, d in (("Ingress", "ingress"), ("Egress", "egress")) if d in spec or rng.random() < 0.3]
            spec["policyTypes"] = types or ["Ingress"]
        objects.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                        "metadata": {"name": f"np{i}", "namespace": rng.choice(names)}, "spec": spec})
    return objects
