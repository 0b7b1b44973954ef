"""The testbed's data plane at size: pods as namespaces under kube-router, against named peers.

Measured in the same run on us-east with N bare pods (two ports each, five labels):
  up         the data plane for N running pods (node namespaces, kube-router's first sync, one
             namespace per pod)  vs  kwok making the same N pods Running (the testbed's own
             pod start, the peer)
  matrix     every probe between the N pods (N*(N-1)*2 connects)  vs  netpol_analyze answering
             the same pairs (Analysis.conn; the model the probes check)
  enforce    a policy write until the kernel refuses a probe it covers  vs  the apiserver's
             answer to the write itself (the peer)
Prints each with its ratio, and the issue's budgets (up <= 20 s, a 100-pod matrix <= 10 s).

    make bench-dataplane     # or: .venv/bin/python -m bench.dataplane --pods 100 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "collections"))

from tests.helpers import running, wait_for  # noqa: E402
from tests.testbed import Testbed  # noqa: E402
from tests.testbed.dataplane import DataPlane  # noqa: E402

from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.analyze import Analysis  # noqa: E402
from ansible_collections.k8snet.fabric.plugins.module_utils.netpol.runner import live_objects  # noqa: E402

CLUSTER = "us-east"


def pods_running(client, ns: str, count: int) -> float:
    """Create ``count`` pods in ``ns``; seconds until all are Running with an IP."""
    started = time.monotonic()
    client.request("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    for i in range(count):
        client.request("POST", f"/api/v1/namespaces/{ns}/pods", body={
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}", "namespace": ns, "labels": {"app": f"a{i % 5}"}},
            "spec": {"containers": [{"name": "c", "image": "x", "ports": [
                {"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}]}]}})
    wait_for(lambda: running(client, ns, "", count), f"{count} pods Running", 120, 0.05)
    return time.monotonic() - started


def one_round(testbed: Testbed, count: int) -> dict:
    client = testbed.client(CLUSTER)
    ns = f"bench-dp-{uuid.uuid4().hex[:6]}"
    plane = DataPlane(testbed, (CLUSTER,))
    try:
        kwok = pods_running(client, ns, count)
        up = plane.up()["total"]
        members = [name for name in plane.pods if name.split("/")[1] == ns]
        started = time.monotonic()
        matrix = plane.probe(members, members)
        probing = time.monotonic() - started
        assert set(matrix.values()) == {"open"}, "no policy yet: everything must be open"
        analysis = Analysis(live_objects(client, [ns]))
        started = time.monotonic()
        for src, dst, port in matrix:
            number, protocol = port.split("/")
            analysis.conn(f"{ns}/{src.split('/')[2]}", f"{ns}/{dst.split('/')[2]}").allows(protocol, int(number))
        analysing = time.monotonic() - started
        src, dst = f"{CLUSTER}/{ns}/p1", f"{CLUSTER}/{ns}/p0"  # a1 -> a0: closed by the policy below
        started = time.monotonic()
        client.request("POST", f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies", body={
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "a0-in", "namespace": ns},
            "spec": {"podSelector": {"matchLabels": {"app": "a0"}}, "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"app": "a2"}}}]}]}})
        write = time.monotonic() - started
        while plane.probe([src], [dst], timeout=0.5)[(src, dst, "80/TCP")] == "open":
            if time.monotonic() - started > 30:
                raise RuntimeError("the policy never reached the kernel")
        enforce = time.monotonic() - started
        return {"kwok": kwok, "up": up, "probes": len(matrix), "matrix": probing, "analyser": analysing,
                "write": write, "enforce": enforce}
    finally:
        plane.down(quiet=True)
        client.request("DELETE", f"/api/v1/namespaces/{ns}", allow=(404,))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    testbed = Testbed()
    started_here = not testbed.is_up()
    testbed.up(log=lambda _m: None)
    try:
        rounds = [one_round(testbed, args.pods) for _unused in range(args.repeat)]
    finally:
        if started_here:
            testbed.down(quiet=True)
    med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    print(f"data plane, {args.pods} pods on {CLUSTER}, medians of {args.repeat} rounds")
    print(f"  up       {med['up']:7.2f} s   kwok running the pods {med['kwok']:7.2f} s   ratio {med['up'] / med['kwok']:6.2f}"
          f"   budget 20 s: {'ok' if med['up'] <= 20 else 'OVER'}")
    print(f"  matrix   {med['matrix']:7.2f} s   netpol_analyze, same pairs {med['analyser']:7.2f} s   "
          f"ratio {med['matrix'] / med['analyser']:6.2f}   ({int(med['probes'])} probes; "
          f"budget 10 s at 100 pods: {'ok' if args.pods != 100 or med['matrix'] <= 10 else 'OVER'})")
    print(f"  enforce  {med['enforce']:7.2f} s   apiserver write {med['write']:7.3f} s   "
          f"ratio {med['enforce'] / med['write']:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
