# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One IP plan for every role: ``fabric_clusters``, each cluster's name, connection, region,
location, pod/service/node ranges (IPv4, IPv6 or both) and VIPs, declared once in the inventory.

kubefed, hybrid_dns, ecommerce_net and istio_mesh read it when present: a role's own field
fills in only where the plan says nothing, and a field both declare must agree (two values for
one cluster's range is the inconsistency the plan exists to end). Every role checks the whole
plan with the same function, so a run of any scenario refuses an overlap anywhere in it.
"""

from __future__ import annotations

from ansible_collections.k8snet.fabric.plugins.module_utils.plan import checks, ipplan

VARIABLE = "fabric_clusters"
RANGES = ("pod_cidrs", "service_cidrs")
LISTS = ("pod_cidrs", "service_cidrs", "node_cidrs", "vips")
SHAPE = ("list", {"name!": "str", "context": ("opt", "str"), "kubeconfig": ("opt", "str"), "region": ("opt", "str"),
                  "location": ("opt", "str"), "pod_cidrs": ("opt", ("list", "str")),
                  "service_cidrs": ("opt", ("list", "str")), "node_cidrs": ("opt", ("list", "str")),
                  "vips": ("opt", ("list", "str"))})


def role_problems(spec: dict, shapes: dict, prefix: str, **shape_options) -> list[str]:
    """What every scenario checks first: the shapes of the role's variables (named ``prefix`` +
    key), then, when they are right, ``fabric_clusters``. Nothing after it may run while these fail:
    it would read fields of the wrong type or clusters that do not resolve."""
    out: list[str] = []
    if checks.shapes(spec, shapes, prefix, out, **shape_options):
        out += problems(spec.get("fabric_clusters") or [])
    return out


def problems(clusters) -> list[str]:
    """Every bad value of the plan, naming fabric_clusters[i].field and the value: shapes,
    unique names, and range_problems over its clusters."""
    out: list[str] = []
    if clusters is None or not checks.shape(clusters, SHAPE, VARIABLE, out):
        return out
    names: list = []
    for i, cluster in enumerate(clusters):
        checks.unique_label(cluster["name"], f"{VARIABLE}[{i}].name", names, out)
    return out + range_problems([{**cluster, "where": f"{VARIABLE}[{i}]"} for i, cluster in enumerate(clusters)])


def range_problems(clusters: list[dict]) -> list[str]:
    """The one check of clusters' address ranges, wherever they were declared (the plan, or a
    role's own variables merged by fill()). Each entry has its ``name``, the LISTS it declares,
    ``where`` (the entry's variable) and, when fill() merged it, ``origin`` (kind -> the variable
    each item came from; an item without one is named ``<where>.<kind>[j]``).
    Every range parses; each cluster keeps Kubernetes' dual-stack rules; pods and services of
    every cluster share no address (they are routed to each other, multi-cluster and hybrid);
    node ranges and VIPs lie outside every pod and service range."""
    out: list[str] = []
    parsed: dict = {}  # "<variable> (<cluster>)" -> (kind, value, IPSet)
    for cluster in clusters:
        families: dict = {}
        for kind in LISTS:
            sources = (cluster.get("origin") or {}).get(kind) or []
            for j, value in enumerate(cluster.get(kind) or []):
                source = sources[j] if j < len(sources) else f"{cluster['where']}.{kind}[{j}]"
                found = checks.collect(out, ipplan.parse, source, value)
                if found is not None:
                    parsed[f"{source} ({cluster['name']})"] = (kind, value, found)
                    families.setdefault(kind, []).append(ipplan.version(found))
        out += _family_problems(cluster["where"], cluster["name"], families)
    out += ipplan.conflicts({name: value for name, (kind, value, _found) in parsed.items() if kind in RANGES})
    for name, (kind, value, found) in parsed.items():
        if kind not in ("node_cidrs", "vips"):
            continue
        what = "a node range" if kind == "node_cidrs" else "a VIP"
        for other, (other_kind, other_value, other_found) in parsed.items():
            if other_kind in RANGES and found & other_found:
                out.append(f"{name}: {value} overlaps {other}, {other_value}: {what} must lie outside every "
                           "cluster's pod and service ranges (traffic to it would stay inside a cluster)")
    return out


def _family_problems(where: str, name: str, families: dict) -> list[str]:
    """Kubernetes' dual-stack rules: at most one service range per family, and pods and services
    in the same families (a family with services but no pods, or pods but no services, cannot
    serve)."""
    out = []
    services, pods = families.get("service_cidrs") or [], families.get("pod_cidrs") or []
    for family in sorted(set(services)):
        if services.count(family) > 1:
            out.append(f"{where}.service_cidrs: {name} has {services.count(family)} IPv{family} service ranges; "
                       "Kubernetes takes one per family (dual-stack: one IPv4 and one IPv6)")
    if services and pods and set(services) != set(pods):
        out.append(f"{where}: {name}'s pod ranges are IPv{'/IPv'.join(map(str, sorted(set(pods))))} but its service "
                   f"ranges IPv{'/IPv'.join(map(str, sorted(set(services))))}; a dual-stack cluster has both families "
                   "in both")
    return out


def find(clusters, name):
    """(index, entry) of the plan's cluster called ``name``; (None, None) when it has none."""
    for i, cluster in enumerate(clusters or []):
        if isinstance(cluster, dict) and cluster.get("name") == name:
            return i, cluster
    return None, None


# How to reach a cluster is the runner's business (another account's kubeconfig, AWX's injected
# credential), not a fact about the cluster: a role's own value wins over the plan's.
CONNECTION = ("context", "kubeconfig")


# The spec keys of a role that reaches one cluster (its inventory host's plan entry).
CONNECTION_SHAPES = {"cluster_name": ("opt", "str"), "context": ("opt", "str"), "kubeconfig": ("opt", "str")}


def fill(entry: dict, where: str, clusters, fields: dict) -> tuple[dict, list[str]]:
    """The role's cluster ``entry`` with the plan's values where it has none; ``fields`` maps
    the role's field name to the plan's. The result uses the plan's names (a role's single range
    becomes a one-item list) and says in ``origin`` which variable each value came from. A field
    both give with different values is a problem naming both (connection fields: the role's wins)."""
    index, planned = find(clusters, entry.get("name"))
    merged, out = {k: v for k, v in entry.items() if k not in fields}, []
    origin = merged["origin"] = {}
    for mine, theirs in fields.items():
        value = entry.get(mine)
        listed = isinstance(value, list)  # given as a list (by the role here; by the plan below)
        if value not in (None, "", []) and theirs in LISTS and not listed:
            value = [value]
        from_plan = (planned or {}).get(theirs)
        if value not in (None, "", []) and theirs in CONNECTION:
            from_plan = None
        if value not in (None, "", []) and from_plan not in (None, "", []) and _differ(value, from_plan):
            out.append(f"{where}.{mine}: {entry[mine]!r} differs from {VARIABLE}[{index}].{theirs} {from_plan!r} "
                       f"({entry.get('name')}); declare it once, in {VARIABLE}")
        if from_plan not in (None, "", []):
            merged[theirs], source, listed = from_plan, f"{VARIABLE}[{index}].{theirs}", isinstance(from_plan, list)
        elif value not in (None, "", []):
            merged[theirs], source = value, f"{where}.{mine}"
        else:
            continue
        # Where each value came from, for messages that name the variable to fix: an item of a
        # list given as a list by its index, a single value (made a one-item list) by its name.
        if listed:
            origin[theirs] = [f"{source}[{j}]" for j in range(len(merged[theirs]))]
        else:
            origin[theirs] = [source] if isinstance(merged[theirs], list) else source
    return merged, out


def _differ(mine, theirs) -> bool:
    if isinstance(mine, list) and isinstance(theirs, list):
        return sorted(map(str, mine)) != sorted(map(str, theirs))
    return str(mine) != str(theirs)


def connection(spec: dict, role: str) -> dict:
    """The role's cluster connection (kubeconfig, context): its own variables, else the plan's
    entry for this inventory host (spec['cluster_name'])."""
    given = {"name": spec.get("cluster_name"), "context": spec.get("context"), "kubeconfig": spec.get("kubeconfig")}
    merged = fill(given, role, spec.get(VARIABLE), {field: field for field in CONNECTION})[0]
    return {field: merged.get(field, "") for field in CONNECTION}
