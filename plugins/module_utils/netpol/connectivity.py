# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The allowed connections of an Analysis, computed on behaviour classes and expanded to
workload pairs only while they are written.

Label classes (equal namespace, labels, named ports) are finer than needed: as a source a
workload is defined by its egress rules and by which ingress rules' peers include it; as a
destination by its ingress rules, its named ports and which egress rules' peers include it.
Workloads equal in that respect are one source class or one destination class, and the
connections are computed once per (source class, destination class). A dense cluster of 4,000
workloads has ~200 source and ~750 destination classes, so the work and the memory follow the
classes; only the listing is as long as the number of workload pairs, and it is produced as a
stream in sorted order (np-guard's order: by source, then destination, as strings).
"""

from __future__ import annotations

import bisect
import ipaddress
from collections import Counter

from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.semantics import ConnSet

ALL = ConnSet.all()
NONE = ConnSet.none()
# How each line format joins source, destination and connections (see Connectivity.write).
LINE_FORMATS = {
    "txt": (lambda src: f"{src} => ", lambda dst, conn: f"{dst} : {conn}"),
    "csv": (lambda src: f"{src},", lambda dst, conn: f"{dst},\"{conn}\"" if "," in conn else f"{dst},{conn}"),
    "md": (lambda src: f"| {src} | ", lambda dst, conn: f"{dst} | {conn} |"),
}
LINE_HEADERS = {"txt": "", "csv": "src,dst,conn\n", "md": "| src | dst | conn |\n|-----|-----|------|\n"}


class Connectivity:
    """Every allowed (src, dst, ConnSet) of an Analysis, iterable in sorted order."""

    def __init__(self, analysis):
        self.a = a = analysis
        n = len(a.classes)
        # Which rules' explicit peers include each label class (rules open to any peer are not listed).
        in_peer_of: list[list[int]] = [[] for _unused in range(n)]
        out_peer_of: list[list[int]] = [[] for _unused in range(n)]
        for rules, peer_of in ((a.ingress_rules, in_peer_of), (a.egress_rules, out_peer_of)):
            for r, (classes, _unused, _unused, _unused) in enumerate(rules):
                for c in classes or ():
                    peer_of[c].append(r)
        # Behaviour classes: source class of a label class, destination class of a label class.
        self.src_of: list[int] = []
        self.dst_of: list[int] = []
        src_index: dict[tuple, int] = {}
        dst_index: dict[tuple, int] = {}
        self.src_reps: list[int] = []
        self.dst_reps: list[int] = []
        for c in range(n):
            src_key = (a.egress_isolated[c], tuple(a.out_ids[c]), tuple(in_peer_of[c]))
            dst_key = (a.ingress_isolated[c], tuple(a.in_ids[c]), _ports_key(a.classes[c].named_ports),
                       tuple(out_peer_of[c]))
            for key, index, reps, of in ((src_key, src_index, self.src_reps, self.src_of),
                                         (dst_key, dst_index, self.dst_reps, self.dst_of)):
                if key not in index:
                    index[key] = len(reps)
                    reps.append(c)
                of.append(index[key])
        self._src_peer_of = [frozenset(in_peer_of[c]) for c in self.src_reps]
        self._dst_peer_of = [frozenset(out_peer_of[c]) for c in self.dst_reps]
        self._dst_ports_key = [_ports_key(a.classes[c].named_ports) for c in self.dst_reps]
        self._rule_cache: dict = {}
        self._and_cache: dict = {}
        # The class matrix: per source class, {destination class: connections} (allowed only).
        self.matrix: list[dict[int, ConnSet]] = [{} for _unused in self.src_reps]
        srcs_of_rule: dict[int, set[int]] = {}
        for s, peer_of in enumerate(self._src_peer_of):
            for r in peer_of:
                srcs_of_rule.setdefault(r, set()).add(s)
        every_src = range(len(self.src_reps))
        for d, rep in enumerate(self.dst_reps):
            ids = a.in_ids[rep]
            if a.ingress_isolated[rep] and all(a.ingress_rules[r][0] is not None for r in ids):
                candidates = sorted(set().union(*(srcs_of_rule.get(r, ()) for r in ids)))
            else:
                candidates = every_src
            for s in candidates:
                conn = self._pair(s, d)
                if conn:
                    self.matrix[s][d] = conn
        # Workloads per class, and the IP ranges each class talks with.
        self.src_members: list[list[int]] = [[] for _unused in self.src_reps]
        self.dst_members: list[list[int]] = [[] for _unused in self.dst_reps]
        for i, c in enumerate(a.class_of):
            self.src_members[self.src_of[c]].append(i)
            self.dst_members[self.dst_of[c]].append(i)
        segments = a.segments()
        self.inbound = [self._ranges(a.in_rules[c], a.ingress_isolated[c], segments, a.classes[c].named_ports)
                        for c in self.dst_reps]
        self.outbound = [self._ranges(a.out_rules[c], a.egress_isolated[c], segments, {}) for c in self.src_reps]
        # Every entity (workload ids and IP ranges) in output order.
        ranges = {label for side in (self.inbound, self.outbound) for merged in side for label, _unused in merged}
        self.names = sorted([w.id for w in a.workloads] + list(ranges))
        self.rank = {name: index for index, name in enumerate(self.names)}
        self._workload_rank = [self.rank[w.id] for w in a.workloads]
        self._workload_at = {self._workload_rank[i]: i for i in range(len(a.workloads))}
        self._rows: dict[int, tuple[list[int], list[ConnSet]]] = {}

    # -- the class matrix ---------------------------------------------------------------
    def _side(self, rules: list, ids: list[int], peer_of: frozenset, named_ports: dict, ports_key) -> ConnSet:
        """What rules ``ids`` allow: those open to any peer, and those whose peers are in ``peer_of``."""
        matched = tuple(r for r in ids if rules[r][0] is None or r in peer_of)
        if not matched:
            return NONE
        key = (id(rules), matched, ports_key)
        if key not in self._rule_cache:
            self._rule_cache[key] = self.a.rules_allow([rules[r] for r in matched], named_ports)
        return self._rule_cache[key]

    def between(self, src: int, dst: int) -> ConnSet:
        """The connections from label class ``src`` to label class ``dst``: the one pair
        semantics (Analysis.conn and the listing both read the class matrix)."""
        return self.matrix[self.src_of[src]].get(self.dst_of[dst], NONE)

    def _pair(self, s: int, d: int) -> ConnSet:
        a, src, dst = self.a, self.src_reps[s], self.dst_reps[d]
        named, ports_key = a.classes[dst].named_ports, self._dst_ports_key[d]
        inbound = self._side(a.ingress_rules, a.in_ids[dst], self._src_peer_of[s], named, ports_key) \
            if a.ingress_isolated[dst] else ALL
        if not inbound:
            return NONE
        outbound = self._side(a.egress_rules, a.out_ids[src], self._dst_peer_of[d], named, ports_key) \
            if a.egress_isolated[src] else ALL
        if not outbound:
            return NONE
        key = (id(inbound), id(outbound))
        if key not in self._and_cache:
            self._and_cache[key] = (inbound, outbound, inbound & outbound)  # keeps both alive: ids stay unique
        return self._and_cache[key][2]

    def _ranges(self, rules: list, isolated: bool, segments: list, named_ports: dict) -> list[tuple[str, ConnSet]]:
        key = ("ranges", isolated, tuple(map(id, rules)), _ports_key(named_ports))
        if key not in self._rule_cache:
            conns = [self.a.external(rules, isolated, segment, named_ports) for segment in segments]
            self._rule_cache[key] = merge_segments(segments, conns, self.a.range_name)
        return self._rule_cache[key]

    # -- rows in output order -----------------------------------------------------------
    def _row(self, s: int) -> tuple[list[int], list[ConnSet]]:
        """Destinations (ranks) and connections of source class ``s``, sorted by destination."""
        if s not in self._rows:
            entries = [(self._workload_rank[j], conn) for d, conn in self.matrix[s].items() for j in self.dst_members[d]]
            entries += [(self.rank[label], conn) for label, conn in self.outbound[s]]
            entries.sort(key=lambda entry: entry[0])
            self._rows[s] = ([rank for rank, _unused in entries], [conn for _unused, conn in entries])
        return self._rows[s]

    def _range_rows(self) -> dict[int, tuple[list[int], list[ConnSet]]]:
        rows: dict[int, list] = {}
        for d, merged in enumerate(self.inbound):
            for label, conn in merged:
                rows.setdefault(self.rank[label], []).extend((self._workload_rank[j], conn) for j in self.dst_members[d])
        out = {}
        for rank, entries in rows.items():
            entries.sort(key=lambda entry: entry[0])
            out[rank] = ([r for r, _unused in entries], [conn for _unused, conn in entries])
        return out

    def rows(self):
        """(source name, destination ranks, connections) per source in output order; a
        workload's own rank is left out (its traffic to itself is not subject to policy)."""
        range_rows = self._range_rows()
        for rank, name in enumerate(self.names):
            if rank in range_rows:
                yield name, *range_rows[rank]
                continue
            i = self._workload_at.get(rank)
            if i is None:
                continue
            ranks, conns = self._row(self.src_of[self.a.class_of[i]])
            at = bisect.bisect_left(ranks, rank)
            if at < len(ranks) and ranks[at] == rank:
                ranks, conns = ranks[:at] + ranks[at + 1:], conns[:at] + conns[at + 1:]
            yield name, ranks, conns

    def __iter__(self):
        names = self.names
        for src, ranks, conns in self.rows():
            for rank, conn in zip(ranks, conns):
                yield src, names[rank], conn

    def write(self, handle, fmt: str) -> int:
        """Write the full list in a line format (txt, csv, md); returns the number of lines.
        Each source's lines are one join of its destination pieces: the piece of a destination
        with given connections is made once, whatever the number of sources."""
        prefix_of, piece_of = LINE_FORMATS[fmt]
        handle.write(LINE_HEADERS[fmt])
        texts: dict[ConnSet, str] = {}
        pieces: dict[tuple, str] = {}
        count = 0
        for src, ranks, conns in self.rows():
            if not ranks:
                continue
            row = []
            for rank, conn in zip(ranks, conns):
                key = (rank, id(conn))
                piece = pieces.get(key)
                if piece is None:
                    text = texts.get(conn)
                    if text is None:
                        text = texts[conn] = str(conn)
                    piece = pieces[key] = piece_of(self.names[rank], text)
                row.append(piece)
            prefix = prefix_of(src)
            handle.write(prefix + ("\n" + prefix).join(row) + "\n")
            count += len(row)
        return count

    # -- sizes and groups -----------------------------------------------------------------
    def count(self) -> int:
        """The number of lines of the full list, without producing it."""
        total = 0
        for s, row in enumerate(self.matrix):
            width = sum(len(self.dst_members[d]) for d in row) + len(self.outbound[s])
            total += width * len(self.src_members[s])
        total -= sum(1 for c in self.a.class_of if self.dst_of[c] in self.matrix[self.src_of[c]])
        total += sum(len(merged) * len(self.dst_members[d]) for d, merged in enumerate(self.inbound))
        return total

    def groups(self) -> list[dict]:
        """The list folded to namespaces: per (source, destination, connections) the number of
        workload pairs, sorted; a side is a namespace's workloads (``ns/*``) or an IP range."""
        workloads = self.a.workloads
        group = [f"{w.namespace}/*" for w in workloads]
        src_ns = [Counter(group[i] for i in members) for members in self.src_members]
        dst_ns = [Counter(group[i] for i in members) for members in self.dst_members]
        pairs: Counter = Counter()
        for s, row in enumerate(self.matrix):
            for d, conn in row.items():
                for source, sources in src_ns[s].items():
                    for target, targets in dst_ns[d].items():
                        pairs[(source, target, conn)] += sources * targets
            for label, conn in self.outbound[s]:
                for source, sources in src_ns[s].items():
                    pairs[(source, label, conn)] += sources
        for d, merged in enumerate(self.inbound):
            for label, conn in merged:
                for target, targets in dst_ns[d].items():
                    pairs[(label, target, conn)] += targets
        for i, c in enumerate(self.a.class_of):  # a workload and itself
            conn = self.matrix[self.src_of[c]].get(self.dst_of[c])
            if conn is not None:
                pairs[(group[i], group[i], conn)] -= 1
        return [{"src": src, "dst": dst, "conn": str(conn), "pairs": number}
                for (src, dst, conn), number in sorted(pairs.items(), key=lambda item: (item[0][0], item[0][1], str(item[0][2])))
                if number > 0]


def _ports_key(named_ports: dict) -> tuple:
    return tuple(sorted(named_ports.items()))


def merge_segments(segments: list, conns: list, name_of=None) -> list[tuple[str, ConnSet]]:
    """Adjacent address ranges with equal connections (and equal names, with ``name_of``)
    become one ``start-end`` range, labelled ``start-end (name)`` when it has a name."""
    def name(version, lo, hi):
        return name_of(version, lo, hi) if name_of else ""
    out, current = [], None
    for (version, lo, hi), conn in zip(segments, conns):
        if current and current[0] == version and current[2] + 1 == lo and current[3] == conn \
                and current[4] == name(version, lo, hi):
            current = (version, current[1], hi, conn, current[4])
            continue
        if current and current[3]:
            out.append(current)
        current = (version, lo, hi, conn, name(version, lo, hi))
    if current and current[3]:
        out.append(current)
    return [(f"{ipaddress.ip_address(lo)}-{ipaddress.ip_address(hi)}" + (f" ({label})" if label else ""), conn)
            for _unused, lo, hi, conn, label in out]
