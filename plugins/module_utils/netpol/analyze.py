# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which connections NetworkPolicies allow, between workloads and to/from external IP ranges.

Pods with equal namespace, labels and named ports behave identically, so the analysis runs on
those equivalence classes, not on pods; selectors are evaluated once per class and cached.
Out of scope (as in the Kubernetes model itself): host-network pods (reported, not analysed)
and node-to-pod traffic.

Pod addresses inside ipBlocks: the API leaves it to the implementation. iptables/nftables
enforcers (kube-router, Calico, kube-network-policies) match the packet's address, so an ipBlock
that holds a pod's IP admits that pod; identity-based ones (Cilium) treat ipBlocks as outside
the cluster. ``ipblock_pods='address'`` (the default) models the first - measured against
kube-router's firewall on real packets - and ``'identity'`` the second. Pods' addresses come
from live Pods; manifests have none, and there both models agree.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field

from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.connectivity import Connectivity
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.semantics import (
    ConnSet,
    policy_types,
    rule_conns,
    selector_key,
    selector_matches,
)

WORKLOAD_KINDS = ("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob",
                  "ReplicationController")
NS_NAME_LABEL = "kubernetes.io/metadata.name"
IPBLOCK_MODELS = ("address", "identity")


@dataclass
class Workload:
    namespace: str
    name: str
    kind: str
    labels: dict
    named_ports: dict = field(default_factory=dict)  # (name, protocol) -> number
    host_network: bool = False
    addresses: list = field(default_factory=list)  # live pods' IPs (every pod a controller stands for)

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}[{self.kind}]"


def _template(obj: dict) -> dict:
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "Pod":
        return obj
    if kind == "CronJob":
        return ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
    return spec.get("template") or {}


def workload_of(obj: dict) -> Workload:
    template = _template(obj)
    pod_spec = template.get("spec") or {}
    meta = obj.get("metadata") or {}
    named = {}
    for container in (pod_spec.get("containers") or []) + (pod_spec.get("initContainers") or []):
        for index, port in enumerate(container.get("ports") or []):
            if not isinstance(port, dict) or not isinstance(port.get("containerPort"), int):
                raise ValidationError(
                    f"{obj.get('kind')} {meta.get('namespace') or 'default'}/{meta.get('name', '?')}: container "
                    f"{container.get('name')!r} ports[{index}] has no containerPort number ({port!r})")
            if port.get("name"):
                named[(port["name"], port.get("protocol") or "TCP")] = port["containerPort"]
    return Workload(meta.get("namespace") or "default", meta.get("name", "?"), obj["kind"],
                    dict((template.get("metadata") or {}).get("labels") or {}), named,
                    bool(pod_spec.get("hostNetwork")), pod_addresses(obj))


def pod_addresses(obj: dict) -> list[str]:
    """A live Pod's IPs (status.podIPs, else status.podIP); nothing for other objects."""
    if obj.get("kind") != "Pod":
        return []
    status = obj.get("status") or {}
    found = [entry.get("ip") for entry in status.get("podIPs") or [] if isinstance(entry, dict)]
    return [ip for ip in found if ip] or ([status["podIP"]] if status.get("podIP") else [])


def owner_name(pod: dict) -> tuple[str, str] | None:
    """(kind, name) of the controller a live pod belongs to; a ReplicaSet named
    <deployment>-<pod-template-hash> stands for its Deployment. Other owners are taken as they are."""
    meta = pod.get("metadata") or {}
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    # Static and mirror pods are "owned" by their Node: each is a workload of its own. An owner
    # without a kind or name names nothing the analysis can stand the pod for.
    if not owner or owner.get("kind") in (None, "", "Node") or not owner.get("name"):
        return None
    kind, name = owner["kind"], owner["name"]
    template_hash = (meta.get("labels") or {}).get("pod-template-hash")
    if kind == "ReplicaSet" and template_hash and name.endswith("-" + template_hash):
        return "Deployment", name[: -len(template_hash) - 1]
    return kind, name


@dataclass
class Policy:
    namespace: str
    name: str
    spec: dict

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"


class Analysis:
    """The connectivity of one set of namespaces, workloads and policies."""

    def __init__(self, objects: list[dict], strict_named_ports: bool = True, include_host_network: bool = False,
                 ipblock_pods: str = "address", pod_cidrs: tuple = (), range_names: tuple = ()):
        """``include_host_network`` analyses hostNetwork pods as ordinary pods (as np-guard's
        netpol-analyzer does); by default they are left out and reported, since policies do not
        apply to them. ``ipblock_pods``: whether an ipBlock admits the pods whose addresses it
        holds (``address``) or only addresses outside the cluster (``identity``). ``pod_cidrs``:
        the clusters' pod ranges, so findings can name ipBlocks that cover pods not yet running.
        ``range_names``: ({name, cidr, except}, ...) - what the address ranges are to the reader
        (``internet``, a location, another cluster's pods); a reported range inside one is
        labelled ``first-last (name)``, the most specific name winning."""
        if ipblock_pods not in IPBLOCK_MODELS:
            raise ValidationError(f"ipblock_pods: {ipblock_pods!r} is not one of {', '.join(IPBLOCK_MODELS)}")
        self.strict = strict_named_ports
        self.ipblock_pods = ipblock_pods
        self.pod_cidrs = tuple(pod_cidrs or ())
        self.range_names = [_named_range(index, entry) for index, entry in enumerate(range_names or ())]
        self.namespaces: dict[str, dict] = {}
        self.workloads: list[Workload] = []
        self.policies: list[Policy] = []
        self.host_network: list[Workload] = []
        self.services: list[dict] = []  # read for findings only: policies act on pods' ports
        live_pods: dict[tuple, Workload] = {}
        for obj in objects:
            kind = obj.get("kind")
            meta = obj.get("metadata") or {}
            if kind == "Namespace":
                self.namespaces[meta["name"]] = {**(meta.get("labels") or {}), NS_NAME_LABEL: meta["name"]}
            elif kind == "Service":
                self.services.append(obj)
            elif kind == "NetworkPolicy":
                self.policies.append(Policy(meta.get("namespace") or "default", meta["name"], obj.get("spec") or {}))
            elif kind in WORKLOAD_KINDS:
                if kind == "Pod" and owner_name(obj):
                    okind, oname = owner_name(obj)
                    key = (meta.get("namespace") or "default", okind, oname)
                    if key in live_pods:
                        live_pods[key].addresses.extend(pod_addresses(obj))
                        continue
                    workload = live_pods[key] = workload_of(obj)
                    workload.kind, workload.name = okind, oname
                else:
                    workload = workload_of(obj)
                if workload.host_network and not include_host_network:
                    self.host_network.append(workload)
                else:
                    self.workloads.append(workload)
        # Owned pods stand for their controller; a controller given too is the same workload.
        seen, unique = set(), []
        for w in self.workloads:
            if w.id not in seen:
                seen.add(w.id)
                unique.append(w)
        self.workloads = unique
        for w in self.workloads:
            self.namespaces.setdefault(w.namespace, {NS_NAME_LABEL: w.namespace})
        for p in self.policies:
            self.namespaces.setdefault(p.namespace, {NS_NAME_LABEL: p.namespace})
        self._connectivity: Connectivity | None = None
        self._index: dict[str, int] | None = None
        self._build_classes()

    # -- equivalence classes --------------------------------------------------------------
    def _build_classes(self) -> None:
        index: dict[tuple, int] = {}
        self.class_of: list[int] = []
        self.classes: list[Workload] = []  # one representative per class
        self._block_members()
        for w in self.workloads:
            key = (w.namespace, tuple(sorted(w.labels.items())), tuple(sorted(w.named_ports.items())),
                   self.inside_blocks.get(w.id, frozenset()) if self.ipblock_pods == "address" else ())
            if key not in index:
                index[key] = len(self.classes)
                self.classes.append(w)
            self.class_of.append(index[key])
        self._selector_cache: dict = {}
        self._ns_cache: dict = {}
        n = len(self.classes)
        # Per policy: the classes it selects.
        self.selected = [self._pods(p.namespace, p.spec.get("podSelector") or {}) for p in self.policies]
        self.ingress_isolated = [False] * n
        self.egress_isolated = [False] * n
        # Every rule, numbered per direction: (peer classes or None for 'any', ipBlocks, ports, policy).
        self.ingress_rules: list[tuple] = []
        self.egress_rules: list[tuple] = []
        # Per class: the numbers of the rules that apply to it, and those rules.
        self.in_ids: list[list[int]] = [[] for _unused in range(n)]
        self.out_ids: list[list[int]] = [[] for _unused in range(n)]
        # The rule table: per policy (in self.policies' order) and direction, every rule as written,
        # compiled once - those of a direction its policyTypes leave out too (the findings read them).
        self.rule_table: list[dict[str, list[tuple]]] = [
            {direction: [self._rule(p, r.get(peers_key), r.get("ports")) for r in p.spec.get(direction) or []]
             for direction, peers_key in (("ingress", "from"), ("egress", "to"))} for p in self.policies]
        for p, selected, compiled in zip(self.policies, self.selected, self.rule_table):
            types = policy_types(p.spec)
            for direction, every, ids, isolated in (
                    ("Ingress", self.ingress_rules, self.in_ids, self.ingress_isolated),
                    ("Egress", self.egress_rules, self.out_ids, self.egress_isolated)):
                if direction not in types:
                    continue
                first = len(every)
                every += compiled[direction.lower()]
                for c in selected:
                    isolated[c] = True
                    ids[c].extend(range(first, len(every)))
        self.in_rules = [[self.ingress_rules[r] for r in ids] for ids in self.in_ids]
        self.out_rules = [[self.egress_rules[r] for r in ids] for ids in self.out_ids]

    def _block_members(self) -> None:
        """Which ipBlocks hold each workload's pod addresses (under the address model part of its
        class, so a class is uniform), and the workloads only some of whose pods they hold."""
        self.inside_blocks: dict[str, frozenset] = {}
        self.partly_inside: list[tuple[Workload, tuple]] = []
        self._block_classes: dict[tuple, frozenset] = {}
        blocks = {block_of(ip_block) for _p, _d, _i, ip_block in self.ip_blocks()}
        for w in self.workloads:
            if not w.addresses:
                continue
            inside = set()
            for block in blocks:
                held = [_block_holds(block, address) for address in w.addresses]
                if all(held):
                    inside.add(block)
                elif any(held):
                    inside.add(block)
                    self.partly_inside.append((w, block))
            self.inside_blocks[w.id] = frozenset(inside)

    def ip_blocks(self):
        """Every ipBlock peer of every policy: (policy, direction, rule index, the ipBlock)."""
        for p in self.policies:
            for direction, key in (("ingress", "from"), ("egress", "to")):
                for index, rule in enumerate(p.spec.get(direction) or []):
                    for peer in rule.get(key) or []:
                        if "ipBlock" in peer:
                            yield p, direction, index, peer["ipBlock"]

    def _namespaces(self, selector: dict) -> set[str]:
        key = selector_key(selector)
        if key not in self._ns_cache:
            self._ns_cache[key] = {ns for ns, labels in self.namespaces.items() if selector_matches(selector, labels)}
        return self._ns_cache[key]

    def _pods(self, namespaces, selector: dict) -> frozenset:
        ns_set = {namespaces} if isinstance(namespaces, str) else namespaces
        key = (tuple(sorted(ns_set)), selector_key(selector))
        if key not in self._selector_cache:
            self._selector_cache[key] = frozenset(
                i for i, w in enumerate(self.classes) if w.namespace in ns_set and selector_matches(selector, w.labels))
        return self._selector_cache[key]

    def _rule(self, policy: Policy, peers: list | None, ports: list | None) -> tuple:
        """(pod classes matched or None = every source/destination, ipBlocks, ports, policy)."""
        if not peers:
            return None, [("0.0.0.0/0", []), ("::/0", [])], ports, policy
        classes, blocks = set(), []
        for peer in peers:
            if "ipBlock" in peer:
                blocks.append((peer["ipBlock"]["cidr"], peer["ipBlock"].get("except") or []))
                if self.ipblock_pods == "address":  # the pods whose addresses it holds are peers too
                    classes |= self._classes_inside(block_of(peer["ipBlock"]))
                continue
            ns_selector, pod_selector = peer.get("namespaceSelector"), peer.get("podSelector")
            namespaces = self._namespaces(ns_selector) if ns_selector is not None else policy.namespace
            classes |= self._pods(namespaces, pod_selector or {})
        return frozenset(classes), blocks, ports, policy

    def _classes_inside(self, block: tuple) -> frozenset:
        if block not in self._block_classes:
            self._block_classes[block] = frozenset(
                c for c, w in enumerate(self.classes) if block in self.inside_blocks.get(w.id, ()))
        return self._block_classes[block]

    # -- rules ----------------------------------------------------------------------------
    def rules_allow(self, rules, named_ports: dict) -> ConnSet:
        """The union of what ``rules`` (rule tuples that match a peer) allow toward a destination
        with ``named_ports``: the one place a matched rule becomes connections."""
        out = ConnSet.none()
        for _classes, _blocks, ports, _policy in rules:
            out = out | rule_conns(ports, named_ports, self.strict)
        return out

    def allowed(self, rules: list, isolated: bool, peer: int, named_ports: dict) -> ConnSet:
        """What ``rules`` (of an ingress- or egress-``isolated`` class) allow with the class
        ``peer``. Pairs of workloads are answered by connectivity(), which applies this rule
        per behaviour class; this serves one side on its own (the DNS finding)."""
        if not isolated:
            return ConnSet.all()
        return self.rules_allow([r for r in rules if r[0] is None or peer in r[0]], named_ports)

    # -- external ranges ------------------------------------------------------------------
    def segments(self) -> list[tuple]:
        """Disjoint address ranges cut at every ipBlock boundary (IPv4 always, IPv6 if used)."""
        cuts = {4: {0, 2 ** 32}, 6: set()}
        for _p, _d, _i, block in self.ip_blocks():
            for cidr in [block["cidr"]] + list(block.get("except") or []):
                net = ipaddress.ip_network(cidr, strict=False)
                cuts[net.version] |= {int(net.network_address), int(net.broadcast_address) + 1}
        for _name, (version, lo, hi), excepts in self.range_names:  # a name ends where its range does
            if cuts[version]:  # IPv6 only where the policies use it
                cuts[version] |= {lo, hi + 1} | {edge for _v, e_lo, e_hi in excepts for edge in (e_lo, e_hi + 1)}
        if cuts[6]:
            cuts[6] |= {0, 2 ** 128}
        out = []
        for version, points in cuts.items():
            ordered = sorted(points)
            out += [(version, lo, hi - 1) for lo, hi in zip(ordered, ordered[1:])]
        return out

    def range_name(self, version: int, lo: int, hi: int) -> str:
        """The most specific name whose range (less its excepts) holds the whole segment, or ''."""
        best = None
        for name, (n_version, n_lo, n_hi), excepts in self.range_names:
            if n_version != version or not (n_lo <= lo and hi <= n_hi):
                continue
            if any(e_lo <= hi and lo <= e_hi for _v, e_lo, e_hi in excepts if _v == version):
                continue
            if best is None or n_hi - n_lo < best[0]:
                best = (n_hi - n_lo, name)
        return best[1] if best else ""

    @staticmethod
    def _in_block(segment: tuple, blocks: list) -> bool:
        version, lo, hi = segment
        for cidr, excepts in blocks:
            net_version, net_lo, net_hi = _address_range(cidr)
            if net_version != version or not (net_lo <= lo and hi <= net_hi):
                continue
            if any(e_lo <= lo and hi <= e_hi for _unused, e_lo, e_hi in map(_address_range, excepts)):
                continue
            return True
        return False

    def external(self, rules: list, isolated: bool, segment: tuple, named_ports: dict) -> ConnSet:
        if not isolated:
            return ConnSet.all()
        return self.rules_allow([r for r in rules if r[0] is None or self._in_block(segment, r[1])], named_ports)

    # -- the whole map --------------------------------------------------------------------
    def connectivity(self) -> Connectivity:
        """Every allowed connection, computed on classes, listed as a stream (made once)."""
        if self._connectivity is None:
            self._connectivity = Connectivity(self)
        return self._connectivity

    def connections(self) -> list[tuple[str, str, ConnSet]]:
        """Every allowed (src, dst, connections), workloads and merged IP ranges, sorted. A list
        as long as the workload pairs: large inputs use connectivity() and stream it."""
        return list(self.connectivity())

    def conn(self, src: str, dst: str) -> ConnSet:
        """Connections from src to dst, each a workload (``ns/name[Kind]`` or ``ns/name``) or an
        IP address. A workload to itself is not subject to policy; address to address is not
        in the model."""
        src_address, dst_address = _address(src), _address(dst)
        if src_address and dst_address:
            return ConnSet.none()
        if src_address:
            c = self.class_of[self._find(dst)]
            return self.external(self.in_rules[c], self.ingress_isolated[c], src_address, self.classes[c].named_ports)
        if dst_address:
            c = self.class_of[self._find(src)]
            return self.external(self.out_rules[c], self.egress_isolated[c], dst_address, {})
        s, d = self._find(src), self._find(dst)
        if s == d:
            return ConnSet.all()
        return self.connectivity().between(self.class_of[s], self.class_of[d])

    def knows(self, ref: str) -> bool:
        """True for a workload of the analysis or an IP address."""
        try:
            return bool(_address(ref)) or self._find(ref) >= 0
        except KeyError:
            return False

    def _find(self, ref: str) -> int:
        if self._index is None:
            self._index = {}
            for i, w in reversed(list(enumerate(self.workloads))):  # the first of equal names wins
                self._index[w.id] = self._index[f"{w.namespace}/{w.name}"] = i
        return self._index[ref]


def _address(ref: str) -> tuple[int, int, int] | None:
    """An IP address as the one-address segment (version, n, n), or None."""
    try:
        address = ipaddress.ip_address(ref)
    except ValueError:
        return None
    return address.version, int(address), int(address)


def _named_range(index: int, entry) -> tuple:
    """A range_names entry as (name, (version, first, last), [excepts as such triples])."""
    if not isinstance(entry, dict) or not entry.get("name") or not entry.get("cidr"):
        raise ValidationError(f"range_names[{index}]: {entry!r} needs a name and a cidr")
    try:
        return (str(entry["name"]), _address_range(str(entry["cidr"])),
                [_address_range(str(e)) for e in entry.get("except") or []])
    except ValueError as exc:
        raise ValidationError(f"range_names[{index}] ({entry.get('name')}): {exc}") from exc


def block_of(ip_block: dict) -> tuple:
    """An ipBlock as a hashable (cidr, excepts)."""
    return ip_block["cidr"], tuple(ip_block.get("except") or ())


def _block_holds(block: tuple, address: str) -> bool:
    """True when ``address`` is in the block's CIDR and in none of its excepts."""
    segment = _address(address)
    if segment is None:
        return False
    cidr, excepts = block
    version, low, high = _address_range(cidr)
    return version == segment[0] and low <= segment[1] <= high and not any(
        e_version == segment[0] and e_low <= segment[1] <= e_high for e_version, e_low, e_high in map(_address_range, excepts))


@functools.lru_cache(maxsize=4096)
def _address_range(cidr: str) -> tuple[int, int, int]:
    """(IP version, first address, last address) of a CIDR, as integers."""
    net = ipaddress.ip_network(cidr, strict=False)
    return net.version, int(net.network_address), int(net.broadcast_address)
