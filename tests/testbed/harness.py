"""Start, stop and inspect the testbed: one etcd and three real clusters on loopback.

Each cluster is a kube-apiserver, a kube-controller-manager, a kube-scheduler and kwok (which
plays the kubelet of every registered Node: Nodes stay Ready, scheduled Pods become Running
with IPs from their node's podCIDR). Nothing runs containers and no packet flows.

Used by the pytest fixtures (tests/conftest.py), by molecule's create/destroy playbooks and by
``python -m tests.testbed up|down|status``. With K8SNET_TEST_KUBECONFIG set, nothing is started:
the contexts us-east, eu-west and edge-factory-1 of that kubeconfig are used as they are.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from . import build, pki
from .ports import free_port, port_free
from .versions import CLUSTERS, FRESH_CLUSTER, ClusterSpec, NodeSpec

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.client import Client  # noqa: E402

from .dataplane import DataPlane  # noqa: E402 - it reads the collection's DNS identity too

RUN = Path(os.environ.get("K8SNET_TESTBED_RUN", build.CACHE / "run"))
EXTERNAL_KUBECONFIG = os.environ.get("K8SNET_TEST_KUBECONFIG")
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
USERS = ("admin", "limited")
START_TIMEOUT = 90.0
KWOK_ANNOTATION = "kwok.x-k8s.io/node"


class TestbedError(RuntimeError):
    """The testbed could not start; the message quotes the process log."""


def _node_ready(node: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def context_name(cluster: str, user: str = "admin") -> str:
    return cluster if user == "admin" else f"{cluster}-{user}"


def etcd_command(binary: Path, name: str, data_dir: Path) -> tuple[list[str], str]:
    """A one-member etcd on two free loopback ports: its argv and client URL."""
    client, peer = free_port(), free_port()
    client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    return [str(binary), f"--name={name}", f"--data-dir={data_dir}",
            f"--listen-client-urls={client_url}", f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster={name}={peer_url}", "--unsafe-no-fsync", "--log-level=warn"], client_url


def etcd_healthy(client_url: str) -> bool:
    try:
        with urllib.request.urlopen(client_url + "/health", timeout=1) as resp:
            return b'"true"' in resp.read()
    except OSError:
        return False


def gone(pid: int) -> bool:
    """True once the process has exited. A process started by an earlier CLI call is no
    child of ours and may linger as a zombie where PID 1 does not reap: that counts as gone."""
    try:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return True
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                return False
        # A Go program's main thread turns zombie before its other threads have exited and
        # released its files (a listening port): gone only once no file is left open.
        return not os.listdir(f"/proc/{pid}/fd")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
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
        return [pid for pid in self._state().get("pids", {}).values() if not gone(pid)]

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
            # Only whole lines: a mark may fall inside a line the apiserver was writing (that
            # event is older than the mark), and the last line may be half written (CI met both).
            handle.seek(max(since - 1, 0))
            # The line the mark fell in may still be being written: until it ends, nothing
            # after the mark is complete (reading on would start in its middle).
            if since and handle.read(1) != b"\n" and not handle.readline().endswith(b"\n"):
                return []
            return [json.loads(line) for line in handle if line.endswith(b"\n") and line.strip()]

    def writes(self, cluster: str, since: int = 0, user: str | None = None) -> list[dict]:
        """Write requests made by the testbed's users (not the apiserver itself), without
        dry runs: what check mode and failed validation must never produce. With ``user``,
        only that user's (a service account's, for instance)."""
        def made_by(event):
            name = event.get("user", {}).get("username", "")
            return name == user if user else not name.startswith("system:")
        return [e for e in self.audit_events(cluster, since)
                if e.get("verb") in WRITE_VERBS and made_by(e) and "dryRun=All" not in e.get("requestURI", "")]

    # -- up ------------------------------------------------------------------------------
    def up(self, log=print) -> dict:
        """Start everything (or reuse a running testbed); return timings in seconds."""
        if self.is_up():
            log(f"testbed: already up ({self.kubeconfig})")
            return self._state().get("timings", {})
        if self.external:
            return {}
        self.down(quiet=True)
        binaries = build.build_all(log)
        crds = build.all_crds(log)
        stages = build.kwok_stages()
        started = time.monotonic()
        shutil.rmtree(self.run_dir, ignore_errors=True)  # every start is a fresh cluster
        for sub in ("pki", "audit", "logs", "kubeconfigs"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        pki.generate(self.run_dir / "pki")
        state = {"pids": {}, "argv": {}, "servers": {}}
        try:
            etcd_url = self._start_etcd(binaries["etcd"], state)
            for cluster, spec in CLUSTERS.items():
                self._start_apiserver(binaries["kube-apiserver"], cluster, spec, etcd_url, state)
            self.state_file.write_text(json.dumps(state, indent=1))
            self._write_kubeconfig(state["servers"])
            self._wait(lambda: all(self._ready(c) for c in self.clusters), "apiservers /readyz",
                       state)
            ready_at = time.monotonic()
            with ThreadPoolExecutor(len(self.clusters)) as pool:
                list(pool.map(lambda c: self._bootstrap(c, crds), self.clusters))
            crds_at = time.monotonic()
            for cluster, spec in CLUSTERS.items():
                self._start_control_plane(binaries, cluster, state["servers"][cluster], stages, state)
            with ThreadPoolExecutor(len(self.clusters)) as pool:
                list(pool.map(lambda c: self._settle(c, CLUSTERS[c], state), self.clusters))
        except BaseException:
            self.down(quiet=True)
            raise
        done = time.monotonic()
        state["timings"] = {"apiservers_ready": round(ready_at - started, 1),
                            "crds_established": round(crds_at - ready_at, 1),
                            "control_plane_acting": round(done - crds_at, 1),
                            "total": round(done - started, 1)}
        self.state_file.write_text(json.dumps(state, indent=1))
        nodes = sum(len(spec.nodes) for spec in CLUSTERS.values())
        log(f"testbed: 3 clusters up with {len(crds)} CRDs, controllers, schedulers and "
            f"{nodes} kwok nodes in {state['timings']['total']}s (kubeconfig {self.kubeconfig})")
        return state["timings"]

    def _spawn(self, name: str, argv: list[str], state: dict, env: dict | None = None) -> None:
        logfile = (self.run_dir / "logs" / f"{name}.log").open("ab")
        proc = subprocess.Popen(argv, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, **env} if env else None)
        state["pids"][name] = proc.pid
        state["argv"][name] = argv
        self.state_file.write_text(json.dumps(state, indent=1))

    def _start_etcd(self, binary: Path, state: dict) -> str:
        argv, client_url = etcd_command(binary, "testbed", self.run_dir / "etcd")
        self._spawn("etcd", argv, state)
        self._wait(lambda: etcd_healthy(client_url), "etcd /health", state)
        return client_url

    def _start_apiserver(self, binary: Path, cluster: str, spec: ClusterSpec, etcd_url: str,
                         state: dict) -> None:
        port = free_port()
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
            f"--service-cluster-ip-range={spec.service_cidr}",
            f"--audit-policy-file={HERE / 'audit-policy.yaml'}",
            f"--audit-log-path={self.audit_log(cluster)}", "--audit-log-format=json",
            "--audit-log-mode=blocking",
        ], state)
        state["servers"][cluster] = f"https://127.0.0.1:{port}"

    def _component_kubeconfig(self, cluster: str, server: str, user: str, credentials: dict | None = None) -> Path:
        """A kubeconfig for one component of one cluster (kwok has no --context flag): the
        user's client certificate, or the given credentials (a service account's token)."""
        pki_dir = self.run_dir / "pki"
        path = self.run_dir / "kubeconfigs" / f"{cluster}-{user}.yaml"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": cluster, "cluster": {"server": server,
                                                       "certificate-authority": str(pki_dir / "ca.crt")}}],
            "users": [{"name": user, "user": credentials or {"client-certificate": str(pki_dir / f"{user}.crt"),
                                                             "client-key": str(pki_dir / f"{user}.key")}}],
            "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
            "current-context": cluster,
        }))
        path.chmod(0o600)
        return path

    def account_kubeconfig(self, cluster: str, namespace: str, account: str) -> Path:
        """A kubeconfig with a short-lived token of a service account: a component acting with
        exactly the RBAC its manifest grants it."""
        token = self.client(cluster).request(
            "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                  "spec": {"expirationSeconds": 3600}})["status"]["token"]
        return self._component_kubeconfig(cluster, self._state()["servers"][cluster], f"{namespace}-{account}",
                                          {"token": token})

    def _component_flags(self, binaries: dict, cluster: str, server: str, component: str) -> list[str]:
        """What kube-controller-manager and kube-scheduler share: the binary, its own kubeconfig,
        a loopback serving port with a self-signed certificate, and no leader election (one each)."""
        kubeconfig = self._component_kubeconfig(cluster, server, component)
        return [str(binaries[component]), f"--kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
                f"--cert-dir={self.run_dir / 'pki' / f'{cluster}-{component}'}", "--leader-elect=false"]

    def _start_control_plane(self, binaries: dict, cluster: str, server: str, stages: list[Path],
                             state: dict) -> None:
        """The cluster's controller-manager, scheduler and kwok."""
        pki_dir = self.run_dir / "pki"
        self._spawn(f"{cluster}-controller-manager", [
            *self._component_flags(binaries, cluster, server, "kube-controller-manager"),
            "--use-service-account-credentials=true",
            # Every on-by-default controller; the cloud ones (service LB, routes, cloud node
            # lifecycle) live in cloud-controller-manager now and are not part of this binary.
            "--controllers=*",
            f"--service-account-private-key-file={pki_dir / 'sa.key'}",
            f"--root-ca-file={pki_dir / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki_dir / 'ca.crt'}",
            f"--cluster-signing-key-file={pki_dir / 'ca.key'}",
            # Node podCIDRs come from the harness, as a cloud's or K3s' IPAM would set them.
            "--allocate-node-cidrs=false",
            "--kube-api-qps=100", "--kube-api-burst=200", "--v=1",
        ], state)
        self._spawn(f"{cluster}-scheduler", [
            *self._component_flags(binaries, cluster, server, "kube-scheduler"), "--v=1"], state)
        kwok = self._component_kubeconfig(cluster, server, "kwok")
        self._spawn(f"{cluster}-kwok", [
            str(binaries["kwok"]), f"--kubeconfig={kwok}",
            *(f"--config={stage}" for stage in stages),
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
            "--node-ip=127.0.0.1", f"--node-port={free_port()}",
            f"--server-address=127.0.0.1:{free_port()}",
            "--v=WARN",
        ], state)

    def _settle(self, cluster: str, spec: ClusterSpec, state: dict) -> None:
        """Register the cluster's nodes; wait until they are Ready and untainted by the node
        lifecycle controller, and the default ServiceAccount exists (controllers act)."""
        client = self.client(cluster)
        for index, node in enumerate(spec.nodes):
            self.register_node(cluster, node, pod_cidr=spec.node_pod_cidr(index),
                               address=spec.node_address(index))

        def acting() -> bool:
            nodes = client.request("GET", "/api/v1/nodes", query={
                "labelSelector": "type=kwok"})["items"]
            ready = [n for n in nodes if _node_ready(n)
                     and not any(t["key"].startswith("node.kubernetes.io/") for t in n["spec"].get("taints") or [])]
            account = client.request("GET", "/api/v1/namespaces/default/serviceaccounts/default",
                                     allow=(404,))
            return len(ready) >= len(spec.nodes) and account is not None

        self._wait(acting, f"{cluster}: nodes Ready and controllers acting", state)

    def register_node(self, cluster: str, node: NodeSpec, pod_cidr: str, address: str = "") -> dict:
        """A Node as a kubelet registers it, kept alive by kwok (tests add their own too). Its
        InternalIP (kept by kwok, and the pods' hostIP) is where the data plane puts the node."""
        body = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node.name, "annotations": {KWOK_ANNOTATION: "fake"},
                         "labels": {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux",
                                    "kubernetes.io/arch": "amd64", "type": "kwok", **node.labels}},
            "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr], "taints": list(node.taints)},
            "status": {"capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                       "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"}},
        }
        client = self.client(cluster)
        existing = client.request("GET", f"/api/v1/nodes/{node.name}", allow=(404,))
        if existing is not None:
            return existing
        created = client.request("POST", "/api/v1/nodes", body=body)
        if not address:
            return created
        # The apiserver keeps no addresses given at creation; a kubelet sets them on status too.
        # Both entries: kwok's node-initialize stage rewrites the whole list (Hostname only) when
        # either is missing, which would drop the InternalIP whenever it runs after this patch.
        return client.request("PATCH", f"/api/v1/nodes/{node.name}/status", body={
            "status": {"addresses": [{"type": "InternalIP", "address": address},
                                     {"type": "Hostname", "address": node.name}]}},
            content_type="application/merge-patch+json")

    # -- a fresh cluster for one test ---------------------------------------------------
    @contextlib.contextmanager
    def fresh_cluster(self, log=print):
        """A cluster as a user first meets it: apiserver, controllers, scheduler and kwok nodes,
        the testbed's users and RBAC, and no CRD at all. Its contexts join the kubeconfig while
        it runs (``fresh-<n>``, ``fresh-<n>-limited``); its processes go on exit (its etcd keys
        stay under a prefix no later cluster uses)."""
        if self.external:
            raise TestbedError("an external cluster cannot be made fresh here")
        state = self._state()
        number = state.get("fresh", 0) + 1
        state["fresh"] = number
        name = f"fresh-{number}"
        started = time.monotonic()
        binaries = build.build_all(log)
        etcd_url = next((a.split("=", 1)[1] for a in state["argv"]["etcd"]
                         if a.startswith("--listen-client-urls=")), None)
        if etcd_url is None:
            raise TestbedError("the testbed's etcd has no --listen-client-urls to share")
        components = [name, f"{name}-controller-manager", f"{name}-scheduler", f"{name}-kwok"]
        try:
            self._start_apiserver(binaries["kube-apiserver"], name, FRESH_CLUSTER, etcd_url, state)
            self.state_file.write_text(json.dumps(state, indent=1))
            self._write_kubeconfig(state["servers"])
            self._wait(lambda: self._ready(name), f"{name} /readyz", state)
            self._bootstrap(name, [])
            self._start_control_plane(binaries, name, state["servers"][name], build.kwok_stages(), state)
            self._settle(name, FRESH_CLUSTER, state)
            log(f"testbed: {name} up in {time.monotonic() - started:.1f}s")
            yield name
        finally:
            for component in components:
                self.stop_component(component)
            state = self._state()
            state["servers"].pop(name, None)
            self.state_file.write_text(json.dumps(state, indent=1))
            self._write_kubeconfig(state["servers"])

    # -- components a test starts beside the clusters ------------------------------------
    def run_component(self, name: str, argv: list[str], env: dict | None = None) -> int:
        """Start a process beside the clusters (log: logs/<name>.log); it is in the state, so
        down() stops it with the rest even when the test that started it did not."""
        state = self._state()
        if name in state["pids"]:
            raise TestbedError(f"a component named {name} is already on record")
        self._spawn(name, argv, state, env)
        return state["pids"][name]

    def stop_component(self, name: str) -> None:
        """Kill a component run_component started and take it off the record."""
        if name not in self._state()["pids"]:
            return
        self.stop(name)
        state = self._state()
        for key in ("pids", "argv", "base_argv"):
            state.get(key, {}).pop(name, None)
        self.state_file.write_text(json.dumps(state, indent=1))

    def component_log(self, name: str) -> str:
        return self._log_tail(name)

    # -- fault hooks ---------------------------------------------------------------------
    def stop(self, name: str) -> None:
        """Kill one process of the testbed (an apiserver is named by its cluster)."""
        state = self._state()
        pid = state["pids"][name]
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 15
        server = state["servers"].get(name)
        # The kernel may release a dead process's listening socket a moment after the process
        # is reported gone; a restart must find its port free.
        while not gone(pid) or (server and not port_free(int(server.rsplit(":", 1)[1]))):
            if time.monotonic() > deadline:
                raise TestbedError(f"{name} (pid {pid}) did not exit and free its port after SIGKILL")
            time.sleep(0.05)

    def start(self, name: str, extra_args: tuple[str, ...] = ()) -> None:
        """Start a stopped process again with its own arguments (plus extra ones, which later
        ones override); an apiserver keeps its port, so kubeconfigs stay valid."""
        state = self._state()
        if not gone(state["pids"][name]):
            # Still running (a caller's cleanup after a failure before the stop): a second copy
            # would fail on the port and its pid would replace the running one's in the state.
            return
        argv = state.get("base_argv", {}).get(name) or state["argv"][name]
        state.setdefault("base_argv", {})[name] = argv
        self._spawn(name, [*argv, *extra_args], state)
        if name in self.clusters:
            self._wait(lambda: self._ready(name), f"{name} /readyz after restart", state)

    def restart(self, name: str, extra_args: tuple[str, ...] = ()) -> None:
        self.stop(name)
        self.start(name, extra_args)

    def pause(self, name: str = "etcd") -> None:
        """Freeze a process (SIGSTOP): it holds its connections and answers nothing."""
        os.killpg(self._state()["pids"][name], signal.SIGSTOP)

    def resume(self, name: str = "etcd") -> None:
        os.killpg(self._state()["pids"][name], signal.SIGCONT)

    @contextlib.contextmanager
    def throttled(self, cluster: str, inflight: int = 1, mutating: int = 1):
        """The cluster's apiserver with tiny inflight limits (429s under load), then restored.
        Priority and fairness is off meanwhile: it would queue the excess instead of refusing
        it, and the plain inflight filter answers 429 with Retry-After at once."""
        self.restart(cluster, (f"--max-requests-inflight={inflight}",
                               f"--max-mutating-requests-inflight={mutating}",
                               "--enable-priority-and-fairness=false"))
        try:
            yield
        finally:
            self.restart(cluster)

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
                if gone(pid):
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
        rbac = [doc for name in ("limited.yaml", "kube-router.yaml", "coredns.yaml", "external-dns.yaml",
                                 "envoy-gateway.yaml")
                for doc in yaml.safe_load((HERE / "rbac" / name).read_text())["items"]]
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
        DataPlane(self).down(quiet=quiet)  # its enforcers talk to these apiservers
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
            while not gone(pid):
                if time.monotonic() > deadline:
                    raise TestbedError(f"{name} (pid {pid}) did not exit after SIGKILL")
                time.sleep(0.05)
        if self.state_file.exists():
            self.state_file.unlink()
        if not quiet and pids:
            print(f"testbed: stopped {len(pids)} processes")
