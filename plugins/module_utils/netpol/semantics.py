# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""NetworkPolicy semantics, to the letter of the Kubernetes API reference.

Connection sets (protocol -> port intervals), label selectors, policy types defaulting and
rule ports. Pure functions; the analyzer composes them.
"""

from __future__ import annotations

PROTOCOLS = ("SCTP", "TCP", "UDP")
MAX_PORT = 65535
# The cluster DNS's pods, as kubeadm, K3s and the cloud distributions label CoreDNS: the one
# definition every DNS rule, stand-in and finding uses.
CLUSTER_DNS_NAMESPACE = "kube-system"
CLUSTER_DNS_LABELS = {"k8s-app": "kube-dns"}


class ConnSet:
    """Allowed connections: for each protocol a sorted tuple of disjoint inclusive port ranges."""

    __slots__ = ("ranges",)

    def __init__(self, ranges: dict | None = None):
        self.ranges = {p: tuple(r) for p, r in (ranges or {}).items() if r}

    @classmethod
    def all(cls) -> "ConnSet":
        return cls({p: ((1, MAX_PORT),) for p in PROTOCOLS})

    @classmethod
    def none(cls) -> "ConnSet":
        return NONE  # ConnSets are never mutated, so one empty set serves everyone

    @classmethod
    def ports(cls, protocol: str, low: int, high: int) -> "ConnSet":
        return cls({protocol: ((low, high),)})

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def __eq__(self, other) -> bool:
        return isinstance(other, ConnSet) and self.ranges == other.ranges

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.ranges.items())))

    def __or__(self, other: "ConnSet") -> "ConnSet":
        out = {}
        for proto in set(self.ranges) | set(other.ranges):
            out[proto] = _merge(list(self.ranges.get(proto, ())) + list(other.ranges.get(proto, ())))
        return ConnSet(out)

    def __and__(self, other: "ConnSet") -> "ConnSet":
        out = {}
        for proto in set(self.ranges) & set(other.ranges):
            pieces = []
            for a_lo, a_hi in self.ranges[proto]:
                for b_lo, b_hi in other.ranges[proto]:
                    lo, hi = max(a_lo, b_lo), min(a_hi, b_hi)
                    if lo <= hi:
                        pieces.append((lo, hi))
            out[proto] = _merge(pieces)
        return ConnSet(out)

    def __le__(self, other: "ConnSet") -> bool:
        return (self & other) == self

    def is_all(self) -> bool:
        return self == ConnSet.all()

    def allows(self, protocol: str, port: int) -> bool:
        return any(lo <= port <= hi for lo, hi in self.ranges.get(protocol, ()))

    def __str__(self) -> str:
        """np-guard's spelling: 'All Connections', 'TCP 80,8080-8090,UDP 53', 'No Connections'."""
        if self.is_all():
            return "All Connections"
        if not self:
            return "No Connections"
        parts = []
        for proto in PROTOCOLS:
            if proto in self.ranges:
                ports = ",".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in self.ranges[proto])
                parts.append(f"{proto} {ports}")
        return ",".join(parts)

    __repr__ = __str__


NONE = ConnSet()


def _merge(ranges: list) -> tuple:
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


# -- selectors ----------------------------------------------------------------------------
def selector_matches(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector: matchLabels AND every matchExpression; an empty selector matches all."""
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def selector_key(selector: dict | None):
    """A hashable form of a selector, for caching its matches."""
    if selector is None:
        return None
    labels = tuple(sorted((selector.get("matchLabels") or {}).items()))
    exprs = tuple(sorted((e.get("key"), e.get("operator"), tuple(sorted(e.get("values") or [])))
                         for e in selector.get("matchExpressions") or []))
    return labels, exprs


# -- policy types and ports ---------------------------------------------------------------
def policy_types(spec: dict) -> set[str]:
    """Explicit policyTypes, or the default: Ingress always, Egress if egress rules exist."""
    if spec.get("policyTypes"):
        return set(spec["policyTypes"])
    types = {"Ingress"}
    if spec.get("egress"):
        types.add("Egress")
    return types


def rule_conns(ports: list | None, named_ports: dict, strict: bool = True) -> ConnSet:
    """What a rule's ``ports`` allow toward a destination with ``named_ports``
    ({(name, protocol): number}). Missing or empty ``ports`` allows every port and protocol.

    A named port is "the port on the given protocol" (NetworkPolicyPort): it resolves only to a
    container port of that name *and* protocol. ``strict=False`` resolves by name alone, as
    np-guard does; it exists to classify differential-test disagreements."""
    if not ports:
        return ConnSet.all()
    out = ConnSet.none()
    for entry in ports:
        protocol = entry.get("protocol") or "TCP"
        port = entry.get("port")
        if port is None:
            out = out | ConnSet.ports(protocol, 1, MAX_PORT)
        elif isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
            low = int(port)
            high = int(entry.get("endPort") or low)
            out = out | ConnSet.ports(protocol, low, high)
        else:
            number = named_ports.get((port, protocol))
            if number is None and not strict:
                number = next((n for (name, _unused), n in sorted(named_ports.items()) if name == port), None)
            if number is not None:
                out = out | ConnSet.ports(protocol, number, number)
    return out
