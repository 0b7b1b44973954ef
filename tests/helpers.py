"""Running real ansible-playbook from tests, on the checkout's own collection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def start_playbook(tmp_path: Path, plays: list[dict], *args: str, extra_vars: dict | None = None,
                   inventory: str | None = None, env: dict | None = None) -> subprocess.Popen:
    """ansible-playbook with the repo's ansible.cfg, started in the background (output as text)."""
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
    # A session of its own, without a terminal, as in CI and AWX: nothing can prompt (ssh asking
    # about a host key it does not know fails instead of waiting for an answer).
    return subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def run_playbook(tmp_path: Path, plays: list[dict], *args: str, extra_vars: dict | None = None,
                 inventory: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """ansible-playbook with the repo's ansible.cfg; JSON task results on stdout."""
    proc = start_playbook(tmp_path, plays, *args, extra_vars=extra_vars, inventory=inventory, env=env)
    try:
        stdout, stderr = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def run_testbed_playbook(tmp_path: Path, playbook: str, extra_vars: dict, *args: str) -> subprocess.CompletedProcess:
    """One of playbooks/ against inventories/testbed, with extra vars."""
    plays = yaml.safe_load((REPO / "playbooks" / playbook).read_text())
    return run_playbook(tmp_path, plays, *args, extra_vars=extra_vars, inventory=str(REPO / "inventories" / "testbed"))


def on_cluster(testbed, cluster: str, host: str = "us-east") -> dict:
    """Extra vars that connect the testbed inventory's cluster host ``host`` to another of the
    testbed's clusters (a fresh one): its fabric_clusters entry with that context."""
    group_vars = yaml.safe_load((REPO / "inventories" / "testbed" / "group_vars" / "all.yml").read_text())
    entry = next(c for c in group_vars["fabric_clusters"] if c["name"] == host)
    return {"fabric_clusters": [{**entry, "context": cluster, "kubeconfig": str(testbed.kubeconfig)}]}


def recap(output: str) -> dict:
    """The PLAY RECAP counters summed over every host, e.g. {'ok': 12, 'changed': 0, ...}
    (playbooks start with a localhost play that checks the inventory)."""
    totals: dict = {}
    for line in output[output.rfind("PLAY RECAP"):].splitlines():
        if ": ok=" in line or " : ok=" in line:
            for key, value in (p.split("=") for p in line.split(":", 1)[1].split()):
                totals[key] = totals.get(key, 0) + int(value)
    if not totals:
        raise AssertionError("no PLAY RECAP in output:\n" + output[-3000:])
    return totals


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


def phase_is(obj: dict | None, phase: str):
    """The object once its status.phase is phase, else None (for wait_for)."""
    return obj if obj and (obj.get("status") or {}).get("phase") == phase else None


def condition(c, path: str, kind: str, ancestors: bool = False) -> str | None:
    """The status of condition ``kind`` of the object at ``path`` (a policy's: of its first ancestor)."""
    status = c.request("GET", path).get("status") or {}
    if ancestors:
        status = (status.get("ancestors") or [{}])[0]
    return next((cond["status"] for cond in status.get("conditions") or [] if cond["type"] == kind), None)


def route_condition(c, path: str, kind: str) -> str | None:
    """The status of condition ``kind`` a route's first parent reports."""
    parents = (c.request("GET", path).get("status") or {}).get("parents") or [{}]
    return next((cond["status"] for cond in parents[0].get("conditions") or [] if cond["type"] == kind), None)


def run_clean(cmd, cwd, env=None, timeout=600) -> subprocess.CompletedProcess:
    """A command as a user's project runs it: no ANSIBLE_* settings of this repository."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    return subprocess.run(cmd, cwd=cwd, env={**base, "ANSIBLE_NOCOLOR": "1", **(env or {})},
                          capture_output=True, text=True, timeout=timeout, check=False)


def install_collection(root: Path) -> dict:
    """Build the collection's tarball and install it under root/collections, read-only (as in an
    execution environment image). Returns the tarball, the collections path and the install."""
    galaxy = str(Path(sys.executable).parent / "ansible-galaxy")
    built = run_clean([galaxy, "collection", "build", "--force", "--output-path", str(root), str(REPO)], root)
    assert built.returncode == 0, built.stdout + built.stderr
    tarball = next(root.glob("k8snet-fabric-*.tar.gz"))
    collections = root / "collections"
    done = run_clean([galaxy, "collection", "install", "--force", "-p", str(collections), str(tarball)], root)
    assert done.returncode == 0, done.stdout + done.stderr
    home = collections / "ansible_collections" / "k8snet" / "fabric"
    for path in [home, *home.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    return {"root": root, "tarball": tarball, "collections": collections, "home": home}


def writable_again(installed: dict) -> None:
    for path in [installed["home"], *installed["home"].rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)


def install_manifest(client, manifest: Path, keep: tuple[str, ...] = ()) -> list[dict]:
    """An upstream release manifest applied as K3s or kubectl would (owned by its file name, so a
    second call with ``keep`` kinds prunes the rest); webhooks are left out, because no request
    reaches a pod here. Returns the objects applied."""
    from ansible_collections.k8snet.fabric.plugins.module_utils.k8s import manifests
    from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.apply import Engine

    objects = [d for d in manifests.parse(manifest.read_text(), str(manifest))
               if d["kind"] not in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
               and (not keep or d["kind"] in keep)]
    Engine(client, force_conflicts=True).converge(manifest.name.split(".", maxsplit=1)[0], "kube-system", objects,
                                                  "overridden")
    return objects


def write_root_ca(folder: Path, days: int = 3650, ca: bool = True, name: str = "root") -> tuple[str, str]:
    """A self-signed root CA's files ``<name>.crt`` and ``<name>.key`` in ``folder`` (with
    ca=False, a certificate that is not a CA's): (certificate path, key path)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, f"mesh {name}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True).sign(key, hashes.SHA256()))
    (folder / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    return str(folder / f"{name}.crt"), str(folder / f"{name}.key")
