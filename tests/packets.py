"""A role's proof report held to real packets: every probe on the data plane equals the report.

The report is the connection list a role writes (``connlist.txt``: ``src => dst : conn`` for
every allowed connection, workloads as ``ns/name[Kind]`` and outside addresses as ranges
``first-last``); what it does not list is denied. The probes run from every pod of the proof's
namespaces and every outside namespace to every pod of those namespaces on each of its ports.

Also the building blocks the data-plane tests share: pods on chosen nodes, policies, polling,
and what the machine's own namespace holds (links, rules, namespaces) before and after.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import time
from pathlib import Path

from tests.helpers import running, wait_for

from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.analyze import owner_name


def parse_report(path: Path) -> dict[tuple[str, str], str]:
    rows = {}
    for line in Path(path).read_text().splitlines():
        if " => " not in line or " : " not in line:
            continue
        pair, conn = line.rsplit(" : ", 1)
        src, dst = pair.split(" => ", 1)
        rows[(src.strip(), dst.strip())] = conn.strip()
    return rows


def conn_allows(conn: str, protocol: str, port: int) -> bool:
    """np-guard's spelling, as the report writes it: 'All Connections', 'TCP 80,8080-8090,UDP 53'."""
    if conn == "All Connections":
        return True
    current = None
    for piece in conn.split(","):
        words = piece.split()
        if len(words) == 2:
            current, piece = words
        if current != protocol:
            continue
        low, _sep, high = piece.strip().partition("-")
        if int(low) <= port <= int(high or low):
            return True
    return False


def _in_range(label: str, address: str) -> bool:
    """``first-last``, or ``first-last (name)`` where the role named the range."""
    first, sep, last = label.split(" (", 1)[0].partition("-")
    try:
        low, high = ipaddress.ip_address(first), ipaddress.ip_address(last if sep else first)
        return low.version == ipaddress.ip_address(address).version and low <= ipaddress.ip_address(address) <= high
    except ValueError:
        return False


def workload_id(pod: dict) -> str:
    """The report's name for the workload a live pod belongs to."""
    meta = pod["metadata"]
    kind, name = owner_name(pod) or ("Pod", meta["name"])
    return f"{meta['namespace']}/{name}[{kind}]"


def report_allows(rows: dict, src: str, dst: str, protocol: str, port: int) -> bool:
    """One cluster's report: ``src`` and ``dst`` are each a workload id or an address."""
    if "[" in src and "[" in dst:
        conn = rows.get((src, dst))
        return bool(conn) and conn_allows(conn, protocol, port)
    if "[" in dst:  # from an address: the rows from ranges into the workload
        return any(_in_range(s, src) and conn_allows(conn, protocol, port)
                   for (s, d), conn in rows.items() if d == dst and "[" not in s)
    return any(_in_range(d, dst) and conn_allows(conn, protocol, port)  # to an address
               for (s, d), conn in rows.items() if s == src and "[" not in d)


def agreement(probe, claim, deadline: float = 10.0) -> tuple[dict, dict, dict]:
    """Probe until every verdict equals its claim or ``deadline`` seconds pass (the enforcer
    may still be catching up). ``probe()`` returns {key: verdict}; ``claim(key)`` is True (open),
    False (closed) or None (no claim), asked once per key. Returns (matrix, claims, wrong)."""
    claims: dict = {}
    started = time.monotonic()
    while True:
        matrix = probe()
        for key in matrix.keys() - claims.keys():
            claims[key] = claim(key)
        wrong = {key: verdict for key, verdict in matrix.items()
                 if claims[key] is not None and (verdict == "open") != claims[key]}
        if not wrong or time.monotonic() - started > deadline:
            return matrix, claims, wrong
        time.sleep(0.2)


def probes_against_reports(dataplane, testbed, proofs: dict[str, tuple[list[str], Path]], outside: list[str],
                           clients: tuple = (), deadline: float = 10.0) -> dict:
    """Probe every pod of the proofs' namespaces ({cluster: (namespaces, report)}) and the
    ``outside`` endpoints against every pod of them. The expected answer of a pair comes from
    the reports: within a cluster, its report's row; across clusters, the source cluster's row
    toward the destination's address *and* the destination cluster's row from the source's
    address (each cluster's policies see the other's pods as addresses). ``clients`` are
    (cluster, namespace) pairs whose pods only send: no policy selects them and the reports do
    not list them, so they count by their address, as outside clients do. Outside endpoints
    with ports are probed from the pods too (the source's report row toward the address).
    Returns {'probes', 'pods', 'matrix', 'wrong': {key: (kernel, report)}} once the kernel
    agrees with the reports, or with what still disagrees after ``deadline`` seconds. Pairs of one workload's own pods
    are left out: a report makes no claim on them."""
    reports = {cluster: parse_report(report) for cluster, (_namespaces, report) in proofs.items()}
    ids: dict[str, tuple[str, str]] = {}
    for cluster, (namespaces, _report) in proofs.items():
        client = testbed.client(cluster)
        for ns in namespaces:
            for pod in client.request("GET", f"/api/v1/namespaces/{ns}/pods")["items"]:
                ids[f"{cluster}/{ns}/{pod['metadata']['name']}"] = (cluster, workload_id(pod))
    dataplane.sync()
    dataplane.settle()
    pods = [name for name in dataplane.pods if name in ids]
    client_namespaces = set(clients)
    senders = [name for name in dataplane.pods if tuple(name.split("/")[:2]) in client_namespaces]
    outsiders = [f"outside:{name}" for name in outside]
    # Outside endpoints with ports are servers too: the pods' egress toward them is probed.
    servers = [name for name in outsiders if dataplane.outside[name].ports]

    def claimed(src: str, dst: str, protocol: str, port: int) -> bool:
        if dst.startswith("outside:"):
            src_cluster, src_id = ids[src]
            return report_allows(reports[src_cluster], src_id, dataplane.endpoint(dst).address, protocol, port)
        dst_cluster, dst_id = ids[dst]
        if src in ids and ids[src][0] == dst_cluster:
            return report_allows(reports[dst_cluster], ids[src][1], dst_id, protocol, port)
        ingress = report_allows(reports[dst_cluster], dataplane.endpoint(src).address, dst_id, protocol, port)
        if src not in ids:
            return ingress
        src_cluster, src_id = ids[src]
        return ingress and report_allows(reports[src_cluster], src_id, dataplane.endpoint(dst).address, protocol, port)

    def claim(key):
        src, dst, port = key
        if ids.get(src) == ids.get(dst, dst):
            return None
        number, protocol = port.split("/")
        return claimed(src, dst, protocol, int(number))

    matrix, claims, wrong = agreement(
        lambda: {**dataplane.probe(pods + senders + outsiders, pods), **dataplane.probe(pods, servers)}, claim, deadline)
    return {"probes": len(matrix), "pods": len(pods), "matrix": matrix,
            "wrong": {key: (verdict, "allowed" if claims[key] else "denied") for key, verdict in wrong.items()}}


def probes_against_report(dataplane, testbed, cluster: str, namespaces: list[str], report: Path,
                          outside: list[str], deadline: float = 10.0) -> dict:
    """One cluster's proof held to the packets (probes_against_reports with one cluster)."""
    return probes_against_reports(dataplane, testbed, {cluster: (namespaces, report)}, outside, deadline=deadline)


def pod(ns: str, name: str, labels: dict, ports=((80, "TCP"), (53, "UDP")), node: str | None = None) -> dict:
    spec = {"containers": [{"name": "app", "image": "registry.invalid/app:1",
                            "ports": [{"containerPort": n, "protocol": p, **({"name": "http"} if n == 80 else {})}
                                      for n, p in ports]}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": spec}


def create_pods(client, ns: str, pods: list[dict], timeout: float = 60) -> None:
    """Create ``ns`` and the pods, and wait until kwok runs them all with an IP."""
    client.request("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": ns, "labels": {"team": ns}}})
    for body in pods:
        client.request("POST", f"/api/v1/namespaces/{ns}/pods", body=body)
    wait_for(lambda: running(client, ns, "", len(pods)), f"{len(pods)} pods Running with IPs in {ns}", timeout, 0.1)


def policy(ns: str, name: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def until(check, timeout: float = 10.0):
    """Poll ``check`` until it returns a true value; returns (value, seconds taken)."""
    started = time.monotonic()
    while True:
        value = check()
        if value or time.monotonic() - started > timeout:
            return value, time.monotonic() - started
        time.sleep(0.02)


def controlled(dataplane, condition, what: str, timeout: float = 90.0):
    """wait_for what a controller of the plane (MetalLB's) does; fails at once, with its log,
    when one of them has exited instead of waiting out the timeout."""
    def check():
        exits = dataplane.controller_exits()
        if exits:
            raise AssertionError("\n".join(exits))
        return condition()
    return wait_for(check, what, timeout)


def links(holder: int | None = None) -> str:
    """`ip -br link` in the namespace ``holder`` holds, or in the machine's own."""
    enter = ["nsenter", f"--net=/proc/{holder}/ns/net"] if holder else []
    return subprocess.run([*enter, "ip", "-br", "link"], capture_output=True, text=True, check=True).stdout


def net_namespaces() -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                found.add(os.stat(f"/proc/{entry}/ns/net").st_ino)
            except OSError:
                pass
    return found


def root_rules() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
