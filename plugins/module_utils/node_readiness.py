# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait until named Nodes are registered and Ready; say which are not, and why."""

from __future__ import annotations

import time


def node_state(node: dict | None) -> str | None:
    """None when the node is Ready, else why not, in words."""
    if node is None:
        return "not registered (its kubelet or K3s agent has not joined)"
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            if condition.get("status") == "True":
                return None
            return (f"Ready is {condition.get('status')}"
                    + (f" ({condition.get('reason')}: {condition.get('message')})" if condition.get("reason") else ""))
    return "no Ready condition reported yet"


def wait_ready(client, names: list[str], timeout: float, interval: float = 2.0) -> dict:
    """Poll the named Nodes until all are Ready or the timeout passes (one LIST a round)."""
    deadline = time.monotonic() + timeout
    while True:
        live = {n["metadata"]["name"]: n for n in client.request("GET", "/api/v1/nodes")["items"]}
        waiting = {name: node_state(live.get(name)) for name in names}
        not_ready = {name: why for name, why in waiting.items() if why}
        if not not_ready or time.monotonic() >= deadline:
            return {"ready": [n for n in names if n not in not_ready],
                    "not_ready": [{"name": n, "reason": why} for n, why in not_ready.items()]}
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
