# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connectivity reports (np-guard's line format, JSON, CSV, Markdown, DOT, Mermaid, HTML),
expectations and findings."""

from __future__ import annotations

import html
import ipaddress
import json
import re

from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.analyze import Analysis, Workload, block_of
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.connectivity import LINE_FORMATS, LINE_HEADERS
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.semantics import (
    CLUSTER_DNS_LABELS,
    CLUSTER_DNS_NAMESPACE,
    ConnSet,
    policy_types,
    rule_conns,
    selector_matches,
)

FORMATS = ("txt", "json", "csv", "md", "dot", "mermaid", "html")
DNS_WORKLOAD = Workload(CLUSTER_DNS_NAMESPACE, "kube-dns", "Deployment", dict(CLUSTER_DNS_LABELS))


PAIRS_SUFFIX = {"txt": " ({} workload pairs)", "csv": ",{}", "md": " {} |"}
GROUPED_HEADERS = {"txt": "", "csv": "src,dst,conn,pairs\n", "md": "| src | dst | conn | pairs |\n|-----|-----|------|-------|\n"}


def rows(connections) -> list[dict]:
    return [{"src": s, "dst": d, "conn": str(c)} for s, d, c in connections]


def render(data: list[dict], fmt: str, findings: list[dict] | None = None, title: str = "",
           expect: list[dict] | None = None, violations: list[str] | None = None) -> str:
    """A report of connection rows ({src, dst, conn}) or of grouped rows (with ``pairs``: the
    number of workload pairs a row stands for). The HTML page also carries ``title`` and the
    expectations with their outcome."""
    grouped = bool(data) and "pairs" in data[0]
    if fmt in LINE_FORMATS:
        prefix_of, piece_of = LINE_FORMATS[fmt]
        header, suffix = (GROUPED_HEADERS[fmt], PAIRS_SUFFIX[fmt]) if grouped else (LINE_HEADERS[fmt], "")
        return header + "".join(prefix_of(r["src"]) + piece_of(r["dst"], r["conn"]) + suffix.format(r.get("pairs")) + "\n"
                                for r in data)
    if grouped:
        data = [{**r, "conn": f"{r['conn']} ({r['pairs']} pairs)"} for r in data]
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt == "dot":
        return _dot(data)
    if fmt == "mermaid":
        return _mermaid(data)
    if fmt == "html":
        return _html(data, findings or [], title, expect or [], violations or [])
    raise ValueError(f"output_format {fmt!r} is not one of {', '.join(FORMATS)}")


def _nodes(data):
    names = sorted({r["src"] for r in data} | {r["dst"] for r in data})
    return names, {n: f"n{i}" for i, n in enumerate(names)}


def _is_range(name: str) -> bool:
    return "/" not in name  # workloads are ns/name[Kind], namespace groups ns/*


def _dot(data) -> str:
    names, ids = _nodes(data)
    by_ns: dict[str, list[str]] = {}
    for n in names:
        if not _is_range(n):
            by_ns.setdefault(n.split("/", 1)[0], []).append(n)
    lines = ["digraph {"]
    for ns, members in sorted(by_ns.items()):
        lines.append(f'\tsubgraph "cluster_{ns}" {{')
        lines += [f'\t\t"{m}" [label="{m.split("/", 1)[1]}" color="blue" fontcolor="blue"]' for m in members]
        lines += [f'\t\tlabel="{ns}"', "\t}"]
    lines += [f'\t"{n}" [label="{n}" color="red2" fontcolor="red2"]' for n in names if _is_range(n)]
    lines += [f'\t"{r["src"]}" -> "{r["dst"]}" [label="{r["conn"]}" color="gold2" fontcolor="darkgreen"]' for r in data]
    return "\n".join(lines + ["}"]) + "\n"


def _mermaid(data) -> str:
    names, ids = _nodes(data)
    lines = ["flowchart LR"]
    by_ns: dict[str, list[str]] = {}
    for n in names:
        (by_ns.setdefault(n.split("/", 1)[0], []) if not _is_range(n) else by_ns.setdefault("", [])).append(n)
    for ns, members in sorted(by_ns.items()):
        if ns:
            lines.append(f'  subgraph ns_{re.sub(r"[^A-Za-z0-9_]", "_", ns)}["{ns}"]')
        for m in members:
            label = m.split("/", 1)[1] if ns else m
            lines.append(f'    {ids[m]}["{label}"]' if ns else f'  {ids[m]}(["{label}"])')
        if ns:
            lines.append("  end")
    lines += [f'  {ids[r["src"]]} -->|"{r["conn"]}"| {ids[r["dst"]]}' for r in data]
    return "\n".join(lines) + "\n"


def _svg(data, names) -> str:
    """The connectivity graph as inline SVG: nodes on a circle, one arrow per allowed pair."""
    import math

    size, radius = 640, 230
    centre = size / 2
    pos = {n: (centre + radius * math.cos(2 * math.pi * i / max(len(names), 1) - math.pi / 2),
               centre + radius * math.sin(2 * math.pi * i / max(len(names), 1) - math.pi / 2))
           for i, n in enumerate(names)}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size + 320}" height="{size}" viewBox="-160 0 {size + 320} {size}">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#666"/></marker></defs>']
    for r in data:
        (x1, y1), (x2, y2) = pos[r["src"]], pos[r["dst"]]
        length = math.hypot(x2 - x1, y2 - y1) or 1
        x2, y2 = x2 - (x2 - x1) * 12 / length, y2 - (y2 - y1) * 12 / length
        colour = "#c0392b" if r["conn"].startswith("All Connections") else "#d4a017"
        parts.append(f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="{colour}" '
                     f'stroke-width="1.5" marker-end="url(#arrow)"><title>{html.escape(r["src"])} =&gt; '
                     f'{html.escape(r["dst"])} : {html.escape(r["conn"])}</title></line>')
    for n, (x, y) in pos.items():
        fill = "#fdecea" if _is_range(n) else "#e8f0fe"
        anchor = "start" if x >= centre else "end"
        dx = 12 if x >= centre else -12
        parts.append(f'<circle cx="{x:.0f}" cy="{y:.0f}" r="9" fill="{fill}" stroke="#555"/>'
                     f'<text x="{x + dx:.0f}" y="{y + 4:.0f}" font-size="11" text-anchor="{anchor}">{html.escape(n)}</text>')
    return "".join(parts) + "</svg>"


def _expectation_text(exp: dict) -> str:
    port = f" {str(exp.get('protocol') or 'TCP').upper()} {exp['port']}" if exp.get("port") else ""
    verb = "reaches" if exp.get("allowed", True) else "does not reach"
    return f"{_show(exp.get('src'))} {verb} {_show(exp.get('dst'))}{port}" + (f" ({exp['why']})" if exp.get("why") else "")


def _html(data, findings, title: str = "", expect=(), violations=()) -> str:
    """One self-contained page: a title, the expectations and how they came out, a src x dst
    matrix, a graph, the findings, the list. No external assets."""
    names, _unused = _nodes(data)
    heading = "Network policy connectivity" + (f" - {title}" if title else "")
    failed = {int(v.split("]", 1)[0].split("[", 1)[1]) for v in violations if v.startswith("expect[")}
    expectations = "".join(
        f"<li class=\"{'violated' if i in failed else 'held'}\">{'VIOLATED' if i in failed else 'held'}: "
        f"{html.escape(_expectation_text(exp))}</li>" for i, exp in enumerate(expect)) or "<li>none given</li>"
    # Rotated column headers need room above the table: as much as the longest name takes at 60 degrees.
    header_rem = min(40.0, 2 + 0.45 * 0.87 * max((len(n) for n in names), default=0))
    cell = {(r["src"], r["dst"]): r["conn"] for r in data}
    head = "".join(f'<th class="v"><div>{html.escape(n)}</div></th>' for n in names)
    body = []
    for s in names:
        tds = []
        for d in names:
            conn = cell.get((s, d))
            cls = "self" if s == d else ("all" if (conn or "").startswith("All Connections") else ("some" if conn else "none"))
            tds.append(f'<td class="{cls}" title="{html.escape(s)} =&gt; {html.escape(d)}">'
                       f'{html.escape(conn or "")}</td>')
        body.append(f"<tr><th>{html.escape(s)}</th>{''.join(tds)}</tr>")
    finding_rows = "".join(f"<li><b>{html.escape(f['kind'])}</b>: {html.escape(f['message'])}</li>" for f in findings) \
        or "<li>none</li>"
    listing = "".join(f"<tr><td>{html.escape(r['src'])}</td><td>{html.escape(r['dst'])}</td>"
                      f"<td>{html.escape(r['conn'])}</td></tr>" for r in data)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(heading)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}}
h1{{font-size:1.3rem}} table{{border-collapse:collapse;font-size:.8rem}}
td,th{{border:1px solid #ccc;padding:.25rem .4rem;text-align:left}}
th.v{{height:{header_rem:.1f}rem;white-space:nowrap;vertical-align:bottom}}
th.v div{{transform:rotate(-60deg);transform-origin:bottom left;width:1.5rem}}
li.violated{{color:#a00;font-weight:bold}}
td.all{{background:#f8d7da}} td.some{{background:#fff3cd}} td.none{{background:#e8f5e9}} td.self{{background:#eee}}
.legend span{{display:inline-block;padding:.1rem .5rem;margin-right:.5rem;border:1px solid #ccc}}
</style></head><body>
<h1>{html.escape(heading)}</h1>
<h2>Expectations ({len(expect) - len(failed)} of {len(expect)} held)</h2><ul>{expectations}</ul>
<p class="legend"><span class="all" style="background:#f8d7da">all connections</span>
<span style="background:#fff3cd">some ports</span><span style="background:#e8f5e9">denied</span></p>
<h2>Matrix (row = source, column = destination)</h2>
<table><tr><th></th>{head}</tr>{''.join(body)}</table>
<h2>Graph</h2>{_svg(data, names)}
<h2>Findings</h2><ul>{finding_rows}</ul>
<h2>Allowed connections</h2>
<table><tr><th>src</th><th>dst</th><th>conn</th></tr>{listing}</table>
</body></html>
"""


# -- expectations ---------------------------------------------------------------------------
def check_expectations(analysis: Analysis, expect: list[dict]) -> list[str]:
    """Every violated expectation, in words, answered from the classes (no listing needed). An
    expectation: src, dst (workload ``ns/name`` or ``ns/name[Kind]``, an IP address, or a
    selector ``{namespace: ns, pods: {labels}}`` (or ``namespaces: {labels}``) that stands for
    every workload it matches), optional protocol (TCP) and port, allowed (bool), and why (the
    sentence a violation starts with)."""
    violations = []
    for index, exp in enumerate(expect):
        protocol, port = str(exp.get("protocol") or "TCP").upper(), exp.get("port")
        want = bool(exp.get("allowed", True))
        lead = f"expect[{index}]" + (f" ({exp['why']})" if exp.get("why") else "")
        sides = []
        for side in ("src", "dst"):
            refs = _refs(analysis, exp.get(side))
            if not refs:
                violations.append(f"{lead}: {side} {_show(exp.get(side))} is not a known workload or address")
                break
            sides.append(refs)
        else:
            for src in sides[0]:
                for dst in sides[1]:
                    if src == dst and any(isinstance(exp.get(k), dict) for k in ("src", "dst")):
                        continue  # a selector on both sides: a workload to itself is not a flow
                    conn = analysis.conn(src, dst)
                    have = conn.allows(protocol, int(port)) if port is not None else bool(conn)
                    if have != want:
                        what = f"{protocol} {port}" if port is not None else "any connection"
                        violations.append(f"{lead}: {src} => {dst} {what} should be "
                                          f"{'allowed' if want else 'denied'} but is {'allowed' if have else 'denied'}"
                                          f" (allowed: {conn})")
    return violations


def _refs(analysis: Analysis, ref) -> list[str]:
    """The entities an expectation side stands for: one name or address, or every workload a
    selector matches."""
    if isinstance(ref, dict):
        pods, ns_labels = {"matchLabels": ref.get("pods") or {}}, ref.get("namespaces")
        in_namespace = (lambda ns: ns == ref.get("namespace")) if ns_labels is None else (
            lambda ns: selector_matches({"matchLabels": ns_labels}, analysis.namespaces.get(ns, {})))
        return sorted(w.id for w in analysis.workloads if in_namespace(w.namespace) and selector_matches(pods, w.labels))
    ref = str(ref)
    return [ref] if analysis.knows(ref) else []


def _show(ref) -> str:
    if isinstance(ref, dict):
        labels = ",".join(f"{k}={v}" for k, v in (ref.get("pods") or {}).items())
        where = (f"namespace {ref.get('namespace')}" if "namespaces" not in ref else
                 "namespaces " + ",".join(f"{k}={v}" for k, v in ref["namespaces"].items()))
        return f"pods {labels or '(all)'} in {where}"
    return str(ref)


# -- findings -------------------------------------------------------------------------------
# One function per kind, registered in report order; each yields (message, where) for the
# analysis (and, for a large input, the grouped rows). A new kind is one function here.
FINDINGS: dict = {}


def finding(kind: str):
    def register(function):
        FINDINGS[kind] = function
        return function
    return register


def findings(analysis: Analysis, groups: list[dict] | None = None) -> list[dict]:
    """Problems found, every registered kind in order. Cross-environment flows are named per
    workload pair, or - given the grouped rows of a large input - per namespace pair."""
    return [{"kind": kind, "message": message, **where}
            for kind, check in FINDINGS.items() for message, where in check(analysis, groups)]


@finding("host-network")
def _host_network(a: Analysis, _groups):
    for w in a.host_network:
        yield f"{w.id} uses the host network: policies do not apply to it (not analysed)", {}


@finding("policy-selects-nothing")
def _policy_selects_nothing(a: Analysis, _groups):
    for p, selected in zip(a.policies, a.selected):
        if not selected:
            yield f"policy {p.id}: its podSelector matches no workload", {"policy": p.id}


@finding("peer-matches-nothing")
def _peer_matches_nothing(a: Analysis, _groups):
    for p, compiled in zip(a.policies, a.rule_table):
        for direction in ("ingress", "egress"):
            for index, (classes, blocks, _unused, _unused) in enumerate(compiled[direction]):
                if classes is not None and not classes and not blocks:
                    yield f"policy {p.id}: {direction} rule {index} has peers that match no workload", {"policy": p.id}


@finding("ipblock-holds-pods")
def _ipblock_holds_pods(a: Analysis, _groups):
    """ipBlocks that hold pods' addresses (live pods, or the pod ranges given): what they allow
    depends on the enforcer, so the report says which model it used."""
    models = ("kube-router, Calico and other iptables/nftables enforcers admit those pods by address; "
              "identity-based ones (Cilium) do not")
    for p, direction, index, ip_block in a.ip_blocks():
        block = block_of(ip_block)
        held = [w.id for w in a.workloads if block in a.inside_blocks.get(w.id, ())]
        ranges = [r for r in a.pod_cidrs if _covers_part(block, r)]
        if not held and not ranges:
            continue
        what = (f"{len(held)} workload(s), e.g. {held[0]}" if held else "") + \
            (" and " if held and ranges else "") + (f"pod range {', '.join(ranges)}" if ranges else "")
        yield (f"policy {p.id}: {direction} rule {index} ipBlock {block[0]} holds pod addresses ({what}); {models}; "
               f"this analysis uses the {a.ipblock_pods!r} model", {"policy": p.id})


@finding("ipblock-holds-some-pods")
def _ipblock_holds_some_pods(a: Analysis, _groups):
    for w, block in a.partly_inside:
        yield (f"{w.id}: only some of its pods' addresses are in ipBlock {block[0]}; what the analysis allows it "
               f"holds for those pods only", {"workload": w.id})


def _covers_part(block: tuple, pod_range: str) -> bool:
    """True when the ipBlock (less its excepts) shares addresses with a pod range."""
    cidr, excepts = block
    net, pods = ipaddress.ip_network(cidr, strict=False), ipaddress.ip_network(pod_range, strict=False)
    if net.version != pods.version or not net.overlaps(pods):
        return False
    return not any(pods.subnet_of(e) for e in (ipaddress.ip_network(x, strict=False) for x in excepts)
                   if e.version == pods.version)


@finding("not-isolated")
def _not_isolated(a: Analysis, _groups):
    """A namespace where some workloads are isolated and others not."""
    for direction, isolated in (("ingress", a.ingress_isolated), ("egress", a.egress_isolated)):
        by_ns: dict[str, list[bool]] = {}
        for i, w in enumerate(a.workloads):
            by_ns.setdefault(w.namespace, []).append(isolated[a.class_of[i]])
        for i, w in enumerate(a.workloads):
            if any(by_ns[w.namespace]) and not isolated[a.class_of[i]]:
                yield (f"{w.id} is not {direction}-isolated although other workloads in {w.namespace} are "
                       f"(no default-deny covers it)", {"workload": w.id})


@finding("no-dns-egress")
def _no_dns_egress(a: Analysis, _groups):
    """Egress-isolated pods that cannot resolve names."""
    dns_ports = {("dns", "UDP"): 53, ("dns-tcp", "TCP"): 53}
    dns_classes = [c for c, w in enumerate(a.classes)
                   if w.namespace == CLUSTER_DNS_NAMESPACE and selector_matches({"matchLabels": CLUSTER_DNS_LABELS}, w.labels)]
    for i, w in enumerate(a.workloads):
        c = a.class_of[i]
        if not a.egress_isolated[c]:
            continue
        allowed = ConnSet.none()
        if dns_classes:
            for d in dns_classes:
                allowed = allowed | a.allowed(a.out_rules[c], True, d, dns_ports)
        else:
            allowed = _dns_egress_without_dns_pods(a, c)
        if not allowed.allows("UDP", 53):
            yield f"{w.id} is egress-isolated and may not reach DNS (UDP 53 to kube-dns)", {"workload": w.id}


@finding("named-port-unresolved")
def _named_port_unresolved(a: Analysis, _groups):
    for p, selected in zip(a.policies, a.selected):
        for direction in ("ingress", "egress"):
            for rule in p.spec.get(direction) or []:
                for port in rule.get("ports") or []:
                    name = port.get("port")
                    if isinstance(name, str) and not name.isdigit():
                        key = (name, port.get("protocol") or "TCP")
                        targets = selected if direction == "ingress" else range(len(a.classes))
                        if not any(key in a.classes[t].named_ports for t in targets):
                            yield (f"policy {p.id}: named port {name!r} ({key[1]}) is on no "
                                   f"{'selected' if direction == 'ingress' else ''} workload".replace("  ", " "),
                                   {"policy": p.id})


@finding("rule-shadowed")
def _rule_shadowed(a: Analysis, _groups):
    """A rule another rule of the same policy and direction covers."""
    for p, table in zip(a.policies, a.rule_table):
        for direction in ("ingress", "egress"):
            compiled = table[direction]
            for i, (ci, bi, pi, _unused) in enumerate(compiled):
                for j, (cj, bj, pj, _unused) in enumerate(compiled):
                    if i == j or (j > i and _same_rule(compiled[i], compiled[j])):
                        continue
                    if (ci is None or ci or bi) and _subsumes(ci, bi, cj, bj) and \
                            rule_conns(pi, {}) <= rule_conns(pj, {}) and not _uses_named(pi):
                        yield f"policy {p.id}: {direction} rule {i} is covered by rule {j}", {"policy": p.id}
                        break


@finding("service-port-blocked")
def _service_port_blocked(a: Analysis, _groups):
    """Services whose pods' policies admit nothing on the port the Service sends to: the chapter's
    LoadBalancer 443 -> targetPort 8443 beside a policy that allows 443."""
    for svc in a.services:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        namespace, selector = meta.get("namespace") or "default", spec.get("selector")
        if not selector:
            continue
        isolated = [c for c, w in enumerate(a.classes) if w.namespace == namespace and a.ingress_isolated[c]
                    and selector_matches({"matchLabels": selector}, w.labels)]
        for port in spec.get("ports") or []:
            proto, target = port.get("protocol") or "TCP", port.get("targetPort", port.get("port"))
            for c in isolated:
                w = a.classes[c]
                number = int(target) if str(target).isdigit() else w.named_ports.get((target, proto))
                if number is None:
                    continue
                admitted = ConnSet.none()
                for _unused, _unused, ports, _unused in a.in_rules[c]:
                    admitted = admitted | rule_conns(ports, w.named_ports, a.strict)
                if not admitted.allows(proto, number):
                    yield (f"Service {namespace}/{meta.get('name')} sends port {port.get('port')} to {proto} {number} "
                           f"of {w.id}, and no policy admits anything there (they admit {admitted or 'nothing'})",
                           {"workload": w.id})
                    break


@finding("cross-environment")
def _cross_environment(a: Analysis, groups):
    env = {ns: labels.get("environment") for ns, labels in a.namespaces.items()}
    if not any(env.values()):
        return
    flows = ((g["src"], g["dst"], g["conn"], g["pairs"]) for g in groups) if groups is not None else \
        ((s, d, conn, None) for s, d, conn in a.connectivity())
    for s, d, conn, pairs in flows:
        if _is_range(s) or _is_range(d):
            continue
        es, ed = env.get(s.split("/", 1)[0]), env.get(d.split("/", 1)[0])
        if es and ed and es != ed:
            count = "" if pairs is None else f" ({pairs} workload pairs)"
            yield f"{s} ({es}) => {d} ({ed}) : {conn}{count}", {"src": s, "dst": d}


def _dns_egress_without_dns_pods(a: Analysis, c: int) -> ConnSet:
    """Egress toward a kube-dns pod that is not among the inputs (the usual case offline),
    read from the raw peers of the egress rules that apply to class ``c``."""
    out = ConnSet.none()
    dns_ns = a.namespaces.get(CLUSTER_DNS_NAMESPACE, {"kubernetes.io/metadata.name": CLUSTER_DNS_NAMESPACE})
    for policy, selected in zip(a.policies, a.selected):
        if c not in selected or "Egress" not in policy_types(policy.spec):
            continue
        for rule in policy.spec.get("egress") or []:
            ports = rule.get("ports")
            if not rule.get("to"):
                out = out | rule_conns(ports, {})
                continue
            for peer in rule["to"]:
                if "ipBlock" in peer:
                    continue
                ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
                ns_ok = selector_matches(ns_sel, dns_ns) if ns_sel is not None else policy.namespace == CLUSTER_DNS_NAMESPACE
                if ns_ok and selector_matches(pod_sel or {}, DNS_WORKLOAD.labels):
                    out = out | rule_conns(ports, {("dns", "UDP"): 53})
    return out


def _same_rule(a, b) -> bool:
    return a[0] == b[0] and a[1] == b[1] and a[2] == b[2]


def _subsumes(ci, bi, cj, bj) -> bool:
    if cj is None:
        return True
    if ci is None:
        return False
    return ci <= cj and all(b in bj for b in bi)


def _uses_named(ports) -> bool:
    return any(isinstance(p.get("port"), str) and not str(p.get("port")).isdigit() for p in ports or [])
