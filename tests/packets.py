"""A role's proof report held to real packets: every probe on the data plane equals the report.

The report is the connection list a role writes (``connlist.txt``: ``src => dst : conn`` for
every allowed connection, workloads as ``ns/name[Kind]`` and outside addresses as ranges
``first-last``); what it does not list is denied. The probes run from every pod of the proof's
namespaces and every outside namespace to every pod of those namespaces on each of its ports.
"""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

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
    first, sep, last = label.partition("-")
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
    """``src`` is a workload id or an address; ``dst`` a workload id."""
    if "[" in src:
        conn = rows.get((src, dst))
        return bool(conn) and conn_allows(conn, protocol, port)
    return any(_in_range(s, src) and conn_allows(conn, protocol, port)
               for (s, d), conn in rows.items() if d == dst and "[" not in s)


def probes_against_report(dataplane, testbed, cluster: str, namespaces: list[str], report: Path,
                          outside: list[str], deadline: float = 10.0) -> dict:
    """Probe every pod of ``namespaces`` (and the ``outside`` endpoints) against every pod of
    them; returns {'probes': n, 'open': n, 'wrong': {key: (kernel, report)}} once the kernel
    agrees with the report, or with what still disagrees after ``deadline`` seconds. Pairs of
    one workload's own pods are left out: the report makes no claim on them."""
    rows = parse_report(report)
    client = testbed.client(cluster)
    ids = {}
    for ns in namespaces:
        for pod in client.request("GET", f"/api/v1/namespaces/{ns}/pods")["items"]:
            ids[f"{cluster}/{ns}/{pod['metadata']['name']}"] = workload_id(pod)
    dataplane.sync()
    dataplane.settle()
    pods = [name for name in dataplane.pods if name in ids]
    sources = pods + [f"outside:{name}" for name in outside]
    started = time.monotonic()
    while True:
        matrix = dataplane.probe(sources, pods)
        wrong = {}
        for (src, dst, port), verdict in matrix.items():
            if ids.get(src) == ids[dst]:
                continue
            number, protocol = port.split("/")
            source = ids[src] if src in ids else dataplane.outside[src].address
            claimed = report_allows(rows, source, ids[dst], protocol, int(number))
            if (verdict == "open") != claimed:
                wrong[(src, dst, port)] = (verdict, "allowed" if claimed else "denied")
        if not wrong or time.monotonic() - started > deadline:
            return {"probes": len(matrix), "open": sum(v == "open" for v in matrix.values()), "wrong": wrong,
                    "pods": len(pods), "matrix": matrix}
        time.sleep(0.2)
