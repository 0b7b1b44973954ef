"""What kube-router v2.1.0's firewall does with pod-to-pod traffic, where it departs from the
NetworkPolicy API: a model used to tell its known deviation from any other disagreement.

kube-router builds one chain per pod and runs, for a packet to or from that pod, the chains of
the policies selecting it: a policy of both types is run in both directions, and its chain holds
its ingress rules (source among the peers, destination among the policy's pods) *and* its egress
rules (source among the policy's pods, destination among the peers). So a packet from A to B
that a policy selecting both A and B allows as *egress* also passes B's *ingress* check in that
policy's chain, though the policy gives B no ingress rule for A (pkg/controllers/netpol/pod.go,
setupPodNetpolRules; policy.go). The same holds mirrored for A's egress check. The API says
each direction is decided by the rules of that direction only.

And an egress rule without ``to`` that names a port resolves the name on the pods of the
policy's namespace, then allows that port number toward every destination (policy.go, "match
all dst but match some named dst-port"): the API matches a named port only on a destination pod
that has it, so never on an outside address.

Everything else (isolation, selectors, ports, ipBlocks by address) is as netpol_analyze's
address model has it, which the differential test holds to the kernel.
"""

from __future__ import annotations

from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.analyze import Analysis, _address
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.semantics import policy_types, rule_conns


def _rules(analysis: Analysis, policy, direction: str) -> list:
    every = analysis.ingress_rules if direction == "ingress" else analysis.egress_rules
    return [rule for rule in every if rule[3] is policy]


def _peer_matches(analysis: Analysis, rule, peer) -> bool:
    """``peer`` is a pod class (ipBlocks holding its address are already among the rule's
    classes, the address model) or an address segment."""
    classes, blocks, _ports, _policy = rule
    if classes is None:
        return True
    return peer in classes if isinstance(peer, int) else analysis._in_block(peer, blocks)


def _ports_allow(analysis: Analysis, rule, direction: str, dst_ports: dict, protocol: str, port: int) -> bool:
    classes, _blocks, ports, policy = rule
    if direction == "egress" and classes is None:
        # Deviation 2: an egress rule with no `to` resolves a named port on the pods of the
        # policy's namespace and allows that number toward every destination (policy.go).
        namespace = [w.named_ports for w in analysis.classes if w.namespace == policy.namespace]
        return any(rule_conns(ports, named, analysis.strict).allows(protocol, port) for named in namespace + [{}])
    return rule_conns(ports, dst_ports, analysis.strict).allows(protocol, port)


def _passes(analysis: Analysis, own: int, other, direction: str, dst_ports: dict, protocol: str, port: int) -> bool:
    """The check in ``own``'s chain: ``direction`` is 'ingress' when own is the destination."""
    mirrored = "egress" if direction == "ingress" else "ingress"
    applicable = [(p, sel) for p, sel in zip(analysis.policies, analysis.selected)
                  if own in sel and direction.capitalize() in policy_types(p.spec)]
    if not applicable:
        return True
    for policy, selected in applicable:
        if any(_peer_matches(analysis, r, other) and _ports_allow(analysis, r, direction, dst_ports, protocol, port)
               for r in _rules(analysis, policy, direction)):
            return True
        # Deviation 1: a policy of both types also runs its other direction's rules here.
        both = {"Ingress", "Egress"} <= policy_types(policy.spec)
        if both and isinstance(other, int) and other in selected and any(
                _peer_matches(analysis, r, own) and _ports_allow(analysis, r, mirrored, dst_ports, protocol, port)
                for r in _rules(analysis, policy, mirrored)):
            return True
    return False


def allows(analysis: Analysis, src: str, dst: str, protocol: str, port: int) -> bool:
    """kube-router's answer from ``src`` to ``dst``: each a pod (``ns/name``) or an address."""
    def resolve(ref):
        address = _address(ref)
        return (address, None) if address else (analysis.class_of[analysis._find(ref)], ref)
    s, s_pod = resolve(src)
    d, d_pod = resolve(dst)
    dst_ports = analysis.classes[d].named_ports if d_pod else {}
    return ((not d_pod or _passes(analysis, d, s, "ingress", dst_ports, protocol, port))
            and (not s_pod or _passes(analysis, s, d, "egress", dst_ports, protocol, port)))
