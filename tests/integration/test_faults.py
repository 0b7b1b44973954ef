"""Faults survived, on the real testbed: an apiserver killed mid-converge, a frozen etcd, an
apiserver that throttles. Each run fails fast with one clear message, or gets through."""

from __future__ import annotations

import threading
import time

import pytest

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.apply import Engine, SetError
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.client import Client
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ClusterUnreachable
from tests.helpers import wait_for

pytestmark = pytest.mark.testbed


def configmaps(namespace: str, count: int, size: int = 0) -> list[dict]:
    return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i:05d}", "namespace": namespace},
             "data": {"index": str(i), "payload": f"{i:05d}" * (size // 5)}} for i in range(count)]


def live_count(client, namespace: str, limit: int | None = None) -> int:
    query = {"labelSelector": "applyset.kubernetes.io/part-of", **({"limit": limit} if limit else {})}
    return len(client.request("GET", f"/api/v1/namespaces/{namespace}/configmaps", query=query)["items"])


def test_an_apiserver_killed_mid_converge_fails_the_run_within_30s_and_the_rerun_converges(testbed, namespace_name):
    admin = testbed.client("us-east")
    admin.request("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace",
                                                      "metadata": {"name": namespace_name}})
    # Payloads make the writes take seconds on this machine, so the kill lands mid-apply.
    objects = configmaps(namespace_name, 1500, size=32_000)
    outcome: dict = {}

    def converge():
        try:
            outcome["result"] = Engine(testbed.client("us-east")).converge("fault-set", namespace_name, objects, "overridden")
        except SetError as exc:
            outcome["error"] = exc
        outcome["ended"] = time.monotonic()

    worker = threading.Thread(target=converge)
    worker.start()
    try:
        # Kill it once writes are under way (after the dry runs), so some objects are written.
        wait_for(lambda: "ended" in outcome or live_count(admin, namespace_name, limit=1), "the first writes",
                 timeout=120, interval=0.05)
        assert "ended" not in outcome, f"the converge ended before any write: {outcome}"
        testbed.stop("us-east")
        killed = time.monotonic()
        worker.join(120)
        assert not worker.is_alive(), "the converge still runs 120 s after its cluster went away"
    finally:
        testbed.start("us-east")
    took = outcome["ended"] - killed
    message = str(outcome.get("error"))
    assert "error" in outcome, outcome
    assert took < 30, f"the failure surfaced {took:.1f}s after the apiserver died"
    assert message.startswith("us-east: the API server https://127.0.0.1:") and "cannot be reached" in message
    written = int(message.split("The cluster went away while applying: ")[1].split(" of ")[0])
    assert 1 <= written < 1500 and " of 1500 objects were written before it did" in message
    assert message.count("\n") < 5, "one message, not one line per object"
    print(f"\nfailure surfaced {took:.1f}s after the kill; {written} of 1500 objects written:\n{message}")

    # Back up: the re-run converges, nothing is duplicated, and prune still knows the set.
    client = wait_for(lambda: _ready(testbed), "us-east back", timeout=60)
    before = live_count(client, namespace_name)
    result = Engine(client).converge("fault-set", namespace_name, objects, "overridden")
    summary = result["summary"]
    assert summary["failed"] == 0 and live_count(client, namespace_name) == 1500, "nothing duplicated or lost"
    assert summary["created"] == 1500 - before and summary["unchanged"] + summary["configured"] == before
    fewer = Engine(client).converge("fault-set", namespace_name, objects[:1000], "overridden")
    assert fewer["summary"]["pruned"] == 500 and live_count(client, namespace_name) == 1000


def _ready(testbed):
    try:
        client = testbed.client("us-east")
        client.request("GET", "/readyz")
        return client
    except Exception:  # noqa: BLE001 - still starting
        return None


def test_a_frozen_etcd_is_a_clear_timeout_within_the_request_budget(testbed, namespace_name):
    admin = testbed.client("eu-west")
    admin.request("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace",
                                                      "metadata": {"name": namespace_name}})
    impatient = Client({**testbed.connection("eu-west"), "request_timeout": 5})
    testbed.pause("etcd")
    started = time.monotonic()
    try:
        with pytest.raises((SetError, ClusterUnreachable)) as caught:
            Engine(impatient).converge("frozen-set", namespace_name, configmaps(namespace_name, 20), "overridden")
    finally:
        took = time.monotonic() - started
        testbed.resume("etcd")
    assert took < 15, f"{took:.1f}s with a 5 s budget"
    assert "eu-west: the API server" in str(caught.value) and "timed out" in str(caught.value).lower()
    print(f"\nfrozen etcd: failed after {took:.1f}s (budget 5 s)")
    client = wait_for(lambda: testbed.client("eu-west"), "eu-west")
    assert client.request("GET", f"/api/v1/namespaces/{namespace_name}/secrets/frozen-set", allow=(404,)) is None, \
        "no half-claimed set: the parent was never written"
    done = Engine(client).converge("frozen-set", namespace_name, configmaps(namespace_name, 20), "overridden")
    assert done["summary"]["created"] == 20


def test_a_throttling_apiserver_is_waited_for_and_the_converge_gets_through(testbed, namespace_name):
    testbed.client("eu-west").request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace_name}})
    with testbed.throttled("eu-west", inflight=1, mutating=1):
        # system:masters is exempt from inflight limits: the limited user is throttled.
        client = Client(testbed.connection("eu-west", user="limited"))
        result = Engine(client).converge("throttled-set", namespace_name, configmaps(namespace_name, 200), "overridden")
        assert result["summary"]["created"] == 200 and result["summary"]["failed"] == 0
        print(f"\nthrottled: {client.counts} requests")
