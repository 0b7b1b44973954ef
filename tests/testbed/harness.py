"""Start, stop and inspect the testbed: one etcd and three real kube-apiservers on loopback.

Used by the pytest fixtures (tests/conftest.py), by molecule's create/destroy playbooks and by
``python -m tests.testbed up|down|status``. With K8SNET_TEST_KUBECONFIG set, nothing is started:
the contexts us-east, eu-west and edge-factory-1 of that kubeconfig are used as they are.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from . import build, pki
from .versions import CLUSTERS

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.client import Client  # noqa: E402
from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.errors import ApiError  # noqa: E402

RUN = Path(os.environ.get("K8SNET_TESTBED_RUN", build.CACHE / "run"))
EXTERNAL_KUBECONFIG = os.environ.get("K8SNET_TEST_KUBECONFIG")
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
USERS = ("admin", "limited")
START_TIMEOUT = 90.0


class TestbedError(RuntimeError):
    """The testbed could not start; the message quotes the process log."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def context_name(cluster: str, user: str = "admin") -> str:
    return cluster if user == "admin" else f"{cluster}-{user}"


def _gone(pid: int) -> bool:
    """True once the process has exited. A process started by an earlier CLI call is no
    child of ours and may linger as a zombie where PID 1 does not reap: that counts as gone."""
    try:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return True
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


class Testbed:
    """The three clusters, their kubeconfig and their audit logs."""

    def __init__(self, run_dir: Path = RUN):
        self.run_dir = Path(run_dir)
        self.external = bool(EXTERNAL_KUBECONFIG)
        self.kubeconfig = Path(EXTERNAL_KUBECONFIG) if self.external else self.run_dir / "kubeconfig"
        self.state_file = self.run_dir / "state.json"
        self.clusters = tuple(CLUSTERS)

    # -- state ---------------------------------------------------------------------------
    def _state(self) -> dict:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def _alive_pids(self) -> list[int]:
        return [pid for pid in self._state().get("pids", {}).values() if not _gone(pid)]

    def is_up(self) -> bool:
        if self.external:
            return True
        state = self._state()
        if not state or len(self._alive_pids()) != len(state.get("pids", {})):
            return False
        return all(self._ready(c) for c in self.clusters)

    def status(self) -> dict:
        state = self._state()
        return {
            "external": self.external,
            "kubeconfig": str(self.kubeconfig),
            "up": self.is_up(),
            "clusters": {c: state.get("servers", {}).get(c) for c in self.clusters},
            "pids": state.get("pids", {}),
            "unavailable_crds": state.get("unavailable_crds", {}),
            "timings": state.get("timings", {}),
        }

    # -- clients and audit ---------------------------------------------------------------
    def client(self, cluster: str, user: str = "admin", workers: int = 8) -> Client:
        return Client({"kubeconfig": str(self.kubeconfig), "context": context_name(cluster, user)},
                      workers=workers)

    def connection(self, cluster: str, user: str = "admin") -> dict:
        """Module connection parameters for one cluster and user."""
        return {"kubeconfig": str(self.kubeconfig), "context": context_name(cluster, user)}

    def audit_log(self, cluster: str) -> Path:
        return self.run_dir / "audit" / f"{cluster}.log"

    def audit_mark(self, cluster: str) -> int:
        """A position in the cluster's audit log; pass it to ``audit_events(since=...)``."""
        path = self.audit_log(cluster)
        return path.stat().st_size if path.exists() else 0

    def audit_events(self, cluster: str, since: int = 0) -> list[dict]:
        if self.external:
            raise TestbedError("an external cluster has no audit log here")
        with self.audit_log(cluster).open("rb") as handle:
            handle.seek(since)
            return [json.loads(line) for line in handle if line.strip()]

    def writes(self, cluster: str, since: int = 0) -> list[dict]:
        """Write requests made by the testbed's users (not the apiserver itself), without
        dry runs: what check mode and failed validation must never produce."""
        return [e for e in self.audit_events(cluster, since)
                if e.get("verb") in WRITE_VERBS
                and not e.get("user", {}).get("username", "").startswith("system:")
                and "dryRun=All" not in e.get("requestURI", "")]

    # -- up ------------------------------------------------------------------------------
    def up(self, log=print) -> dict:
        """Start everything (or reuse a running testbed); return timings in seconds."""
        if self.is_up():
            log(f"testbed: already up ({self.kubeconfig})")
            return self._state().get("timings", {})
        if self.external:
            return {}
        self.down(quiet=True)
        binaries = build.build_binaries(log)
        crds, unavailable = build.all_crds(log)
        started = time.monotonic()
        shutil.rmtree(self.run_dir, ignore_errors=True)  # every start is a fresh cluster
        for sub in ("pki", "audit", "logs"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        pki.generate(self.run_dir / "pki")
        state = {"pids": {}, "servers": {}, "unavailable_crds": unavailable}
        try:
            etcd_url = self._start_etcd(binaries["etcd"], state)
            for cluster, service_cidr in CLUSTERS.items():
                self._start_apiserver(binaries["kube-apiserver"], cluster, service_cidr,
                                      etcd_url, state)
            self.state_file.write_text(json.dumps(state, indent=1))
            self._write_kubeconfig(state["servers"])
            self._wait(lambda: all(self._ready(c) for c in self.clusters), "apiservers /readyz",
                       state)
            ready_at = time.monotonic()
            with ThreadPoolExecutor(len(self.clusters)) as pool:
                list(pool.map(lambda c: self._bootstrap(c, crds), self.clusters))
        except BaseException:
            self.down(quiet=True)
            raise
        done = time.monotonic()
        state["timings"] = {"apiservers_ready": round(ready_at - started, 1),
                            "crds_established": round(done - ready_at, 1),
                            "total": round(done - started, 1)}
        self.state_file.write_text(json.dumps(state, indent=1))
        log(f"testbed: 3 clusters up with {len(crds)} CRDs in {state['timings']['total']}s "
            f"(kubeconfig {self.kubeconfig})")
        for project, why in unavailable.items():
            log(f"testbed: CRDs of {project} not installed: {why}")
        return state["timings"]

    def _spawn(self, name: str, argv: list[str], state: dict) -> None:
        logfile = (self.run_dir / "logs" / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, stdout=logfile, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        state["pids"][name] = proc.pid
        self.state_file.write_text(json.dumps(state, indent=1))

    def _start_etcd(self, binary: Path, state: dict) -> str:
        client, peer = _free_port(), _free_port()
        client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        self._spawn("etcd", [
            str(binary), "--name=testbed", f"--data-dir={self.run_dir / 'etcd'}",
            f"--listen-client-urls={client_url}", f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=testbed={peer_url}", "--unsafe-no-fsync", "--log-level=warn",
        ], state)

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(client_url + "/health", timeout=1) as resp:
                    return b'"true"' in resp.read()
            except OSError:
                return False

        self._wait(healthy, "etcd /health", state)
        return client_url

    def _start_apiserver(self, binary: Path, cluster: str, service_cidr: str, etcd_url: str,
                         state: dict) -> None:
        port = _free_port()
        pki_dir = self.run_dir / "pki"
        self._spawn(cluster, [
            str(binary),
            f"--etcd-servers={etcd_url}", f"--etcd-prefix=/k8snet/{cluster}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
            f"--cert-dir={self.run_dir / 'pki'}",
            f"--tls-cert-file={pki_dir / 'apiserver.crt'}",
            f"--tls-private-key-file={pki_dir / 'apiserver.key'}",
            f"--client-ca-file={pki_dir / 'ca.crt'}",
            "--authorization-mode=RBAC,Node",
            # No kubelets or peers here; a loopback advertise address needs no reconciler.
            "--endpoint-reconciler-type=none",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki_dir / 'sa.pub'}",
            f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
            f"--service-cluster-ip-range={service_cidr}",
            f"--audit-policy-file={HERE / 'audit-policy.yaml'}",
            f"--audit-log-path={self.audit_log(cluster)}", "--audit-log-format=json",
            "--audit-log-mode=blocking",
        ], state)
        state["servers"][cluster] = f"https://127.0.0.1:{port}"

    def _ready(self, cluster: str) -> bool:
        try:
            self.client(cluster).request("GET", "/readyz")
            return True
        except Exception:  # noqa: BLE001 - anything short of 200 means not ready yet
            return False

    def _wait(self, condition, what: str, state: dict, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            for name, pid in state["pids"].items():
                if _gone(pid):
                    raise TestbedError(f"{name} exited while waiting for {what}:\n"
                                       + self._log_tail(name))
            time.sleep(0.25)
        raise TestbedError(f"timed out after {timeout}s waiting for {what}:\n"
                           + "\n".join(self._log_tail(n) for n in state["pids"]))

    def _log_tail(self, name: str) -> str:
        path = self.run_dir / "logs" / f"{name}.log"
        return f"--- {path}\n" + (path.read_text(errors="replace")[-3000:] if path.exists() else "")

    def _write_kubeconfig(self, servers: dict) -> None:
        pki_dir = self.run_dir / "pki"

        def b64(name: str) -> str:
            return base64.b64encode((pki_dir / name).read_bytes()).decode()

        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": c, "cluster": {"server": s, "certificate-authority-data": b64("ca.crt")}}
                         for c, s in servers.items()],
            "users": [{"name": u, "user": {"client-certificate-data": b64(f"{u}.crt"),
                                           "client-key-data": b64(f"{u}.key")}} for u in USERS],
            "contexts": [{"name": context_name(c, u), "context": {"cluster": c, "user": u}}
                         for c in servers for u in USERS],
            "current-context": next(iter(servers)),
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    def _bootstrap(self, cluster: str, crds: list[dict]) -> None:
        """RBAC for the limited user, then every CRD, waiting until all are Established."""
        client = self.client(cluster, workers=4)
        rbac = [d for d in yaml.safe_load_all((HERE / "rbac" / "limited.yaml").read_text()) if d]
        for doc in rbac:
            plural = doc["kind"].lower() + "s"
            self._apply(client, f"/apis/rbac.authorization.k8s.io/v1/{plural}/{doc['metadata']['name']}", doc)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda crd: self._apply(
                client, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}",
                crd), crds))
        wanted = {crd["metadata"]["name"] for crd in crds}

        def established() -> bool:
            items = client.request("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
            ok = {i["metadata"]["name"] for i in items
                  if any(c["type"] == "Established" and c["status"] == "True"
                         for c in (i.get("status") or {}).get("conditions") or [])}
            return wanted <= ok

        self._wait(established, f"CRDs Established on {cluster}", self._state())

    @staticmethod
    def _apply(client: Client, path: str, obj: dict) -> None:
        client.request("PATCH", path, query={"fieldManager": "k8snet-testbed", "force": "true"},
                       body=obj, content_type="application/apply-patch+yaml")

    # -- down ----------------------------------------------------------------------------
    def down(self, quiet: bool = False) -> None:
        """Stop every process the testbed started and wait until they are gone."""
        if self.external:
            return
        state = self._state()
        pids = state.get("pids", {})
        # SIGKILL: every start is a fresh cluster, so there is nothing to shut down gracefully,
        # and a graceful apiserver waits many seconds for an etcd that is going away too.
        for pid in pids.values():
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + 15
        for name, pid in pids.items():
            while not _gone(pid):
                if time.monotonic() > deadline:
                    raise TestbedError(f"{name} (pid {pid}) did not exit after SIGKILL")
                time.sleep(0.05)
        if self.state_file.exists():
            self.state_file.unlink()
        if not quiet and pids:
            print(f"testbed: stopped {len(pids)} processes")
