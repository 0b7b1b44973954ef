"""Fault injection around a running playbook on the testbed."""

from __future__ import annotations

import time

from tests.helpers import wait_for


def succeeded_writes(testbed, cluster: str, mark: int) -> list[dict]:
    return [e for e in testbed.writes(cluster, since=mark) if e.get("responseStatus", {}).get("code", 500) < 300]


def kill_at_first_write(testbed, cluster: str, proc, what: str) -> tuple[str, float]:
    """Kill the cluster's apiserver as soon as the running playbook's first write lands there;
    start it again afterwards. Returns the playbook's output and the seconds from kill to exit."""
    mark = testbed.audit_mark(cluster)
    try:
        wait_for(lambda: proc.poll() is not None or succeeded_writes(testbed, cluster, mark), f"{what}'s first write on {cluster}",
                 timeout=120, interval=0.02)
        assert proc.poll() is None, f"{what} ended before its first write on {cluster}"
        testbed.stop(cluster)
        killed = time.monotonic()
        stdout, _stderr = proc.communicate(timeout=120)
        return stdout, time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
        testbed.start(cluster)
