# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""netpol_analyze's work: gather inputs (manifests, a live cluster, or both), analyse, report."""

from __future__ import annotations

import functools
import io
import ipaddress
import os

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import diff, manifests
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol import report
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.analyze import WORKLOAD_KINDS, Analysis, workload_of
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.connectivity import LINE_FORMATS
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.semantics import selector_matches

LIVE_PATHS = {"/api/v1/namespaces": "Namespace", "/apis/networking.k8s.io/v1/networkpolicies": "NetworkPolicy",
              "/api/v1/pods": "Pod"}
DETAILS = ("auto", "full", "grouped")
FULL_LIST_LIMIT = 10000  # lines; above it ``auto`` reports namespace pairs
RELEVANT = set(WORKLOAD_KINDS) | {"Namespace", "NetworkPolicy", "Service"}  # Services: findings only


def live_objects(client, namespaces: list[str] | None = None) -> list[dict]:
    """Namespaces, NetworkPolicies and Pods of a cluster (pods stand for their controllers).
    With ``namespaces``, only those are read, each by its own requests: what a namespaced Role
    allows, and no cluster-wide LIST on a large cluster."""
    found = []
    if namespaces:
        for ns in namespaces:
            namespace = client.request("GET", f"/api/v1/namespaces/{ns}", allow=(404,))
            if namespace is None:
                continue
            found.append(("Namespace", namespace))
            for path, kind in (("/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies", "NetworkPolicy"),
                               ("/api/v1/namespaces/{ns}/pods", "Pod")):
                found += [(kind, item) for item in client.request("GET", path.format(ns=ns)).get("items", [])]
    else:
        for path, kind in LIVE_PATHS.items():
            found += [(kind, item) for item in client.request("GET", path).get("items", [])]
    out = []
    for kind, item in found:
        item["kind"] = kind
        if kind != "Pod" or (item.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            out.append(item)
    return out


def overlay(base: list[dict], proposed: list[dict]) -> list[dict]:
    """What-if: proposed objects replace live ones of the same identity, or join them."""
    replaced = {diff.identity(o) for o in proposed}
    return [o for o in base if diff.identity(o) not in replaced] + list(proposed)


def with_stand_ins(objects: list[dict], stand_ins: list[dict]) -> tuple[list[dict], list[str]]:
    """Stand-in workloads join the objects only where no workload in their namespace carries
    their labels yet (an application not deployed yet is proved from its plan); returns the
    objects and the stand-ins used, as ``ns/name``."""
    present = [workload_of(o) for o in objects if isinstance(o, dict) and o.get("kind") in WORKLOAD_KINDS]
    used, out = [], list(objects)
    for obj in stand_ins:
        stand_in = workload_of(obj)
        if not any(w.namespace == stand_in.namespace and selector_matches({"matchLabels": stand_in.labels}, w.labels)
                   for w in present):
            out.append(obj)
            used.append(f"{stand_in.namespace}/{stand_in.name}")
    return out, used


def analyse(objects: list[dict], formats: list[str], expect: list[dict], dest: str | None = None,
            include_host_network: bool = False, detail: str = "auto", ipblock_pods: str = "address",
            pod_cidrs: tuple = (), range_names: tuple = (), title: str = "") -> dict:
    """Analyse, check the expectations, report. ``detail``: ``full`` lists every allowed
    connection, ``grouped`` folds them to namespace pairs, ``auto`` lists up to FULL_LIST_LIMIT
    lines and groups above that."""
    for fmt in formats:
        if fmt not in report.FORMATS:
            raise ValidationError(f"output_format: {fmt!r} is not one of {', '.join(report.FORMATS)}")
    if detail not in DETAILS:
        raise ValidationError(f"detail: {detail!r} is not one of {', '.join(DETAILS)}")
    for index, cidr in enumerate(pod_cidrs):
        try:
            ipaddress.ip_network(cidr, strict=True)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"pod_cidrs[{index}]: {cidr!r} is not a network ({exc})") from exc
    relevant = [o for o in objects if isinstance(o, dict) and o.get("kind") in RELEVANT]
    try:
        analysis = Analysis(relevant, include_host_network=include_host_network, ipblock_pods=ipblock_pods,
                            pod_cidrs=pod_cidrs, range_names=range_names)
        connectivity = analysis.connectivity()
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationError(f"objects: cannot analyse ({type(exc).__name__}: {exc})") from exc
    count = connectivity.count()
    listed = detail == "full" or (detail == "auto" and count <= FULL_LIST_LIMIT)
    groups = connectivity.groups()
    # Cross-environment findings name workload pairs only while the list is small: a dense
    # cluster has millions, one per namespace pair says the same.
    found = report.findings(analysis, None if count <= FULL_LIST_LIMIT else groups)
    violations = report.check_expectations(analysis, expect or [])
    # The rows as data only where they are used: returned (with dest, only up to the limit: the
    # files carry longer lists), or for the graph formats; the line formats stream from the classes.
    returned = listed and (not dest or count <= FULL_LIST_LIMIT)
    listing = report.rows(connectivity) if returned or (listed and set(formats) - set(LINE_FORMATS)) else None
    data = listing if listed else groups

    def produce(fmt: str, handle) -> None:
        if listed and fmt in LINE_FORMATS:
            connectivity.write(handle, fmt)
        else:
            handle.write(report.render(data, fmt, found, title=title, expect=expect or [], violations=violations))
    result = {
        "groups": groups,
        "findings": found,
        "violations": violations,
        "summary": {"workloads": len(analysis.workloads), "classes": len(analysis.classes),
                    "source_classes": len(connectivity.src_reps), "destination_classes": len(connectivity.dst_reps),
                    "policies": len(analysis.policies), "connections": count, "groups": len(groups),
                    "detail": "full" if listed else "grouped", "findings": len(found), "violations": len(violations)},
        "changed": False,
    }
    if returned:
        result["connections"] = listing
    if dest:
        os.makedirs(dest, exist_ok=True)
        paths = {}
        for fmt in formats:
            paths[fmt] = os.path.join(dest, f"connlist.{fmt}")
            changed = manifests.write_streamed(paths[fmt], functools.partial(produce, fmt))
            result["changed"] = result["changed"] or changed
        result["paths"] = paths
    else:
        result["reports"] = {}
        for fmt in formats:
            buffer = io.StringIO()
            produce(fmt, buffer)
            result["reports"][fmt] = buffer.getvalue()
    return result
