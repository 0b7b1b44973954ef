"""Running real ansible-playbook from tests, on the checkout's own collection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def run_playbook(tmp_path: Path, plays: list[dict], *args: str, extra_vars: dict | None = None,
                 inventory: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """ansible-playbook with the repo's ansible.cfg; JSON task results on stdout."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False))
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook),
           "-i", inventory or "localhost,", "-c", "local"]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    cmd += list(args)
    full_env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                    ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_DEPRECATION_WARNINGS="0",
                    **(env or {}))
    return subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=600)


def run_testbed_playbook(tmp_path: Path, playbook: str, extra_vars: dict, *args: str) -> subprocess.CompletedProcess:
    """One of playbooks/ against inventories/testbed, with extra vars."""
    plays = yaml.safe_load((REPO / "playbooks" / playbook).read_text())
    return run_playbook(tmp_path, plays, *args, extra_vars=extra_vars, inventory=str(REPO / "inventories" / "testbed"))


def recap(output: str) -> dict:
    """The PLAY RECAP counters of the single host, e.g. {'ok': 2, 'changed': 0, ...}."""
    for line in output[output.rfind("PLAY RECAP"):].splitlines():
        if " : ok=" in line or ": ok=" in line:
            return {k: int(v) for k, v in (p.split("=") for p in line.split(":", 1)[1].split())}
    raise AssertionError("no PLAY RECAP in output:\n" + output[-3000:])


def wait_for(condition, what: str, timeout: float = 60.0, interval: float = 0.25):
    """Poll until condition() returns something truthy; return it, or fail naming what."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def pods(client, namespace: str, selector: str = "") -> list[dict]:
    return client.request("GET", f"/api/v1/namespaces/{namespace}/pods", query={"labelSelector": selector})["items"]


def running(client, namespace: str, selector: str, count: int):
    """The pods once exactly `count` of them are Running with an IP (kwok's doing), else None."""
    live = [p for p in pods(client, namespace, selector)
            if p["status"].get("phase") == "Running" and p["status"].get("podIP")]
    return live if len(live) == count else None
