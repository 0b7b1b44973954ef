"""istio_mesh_multicluster on two testbed clusters, proven by Istio's own control plane: the role
in apply mode gives us-east a remote secret for eu-west (a read-only account there, a bound
token), and pilot-discovery - istiod's discovery server from the pinned Istio module - run
against us-east lists eu-west's service and its endpoint in its registry. Without the remote
secret it does not."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import urllib.request

import pytest
import yaml

from tests.helpers import recap, run_testbed_playbook, wait_for
from tests.netstubs import free_port
from tests.testbed import build

from ansible_collections.k8snet.fabric.plugins.module_utils import federation, mesh_multicluster

pytestmark = pytest.mark.testbed
PRIMARY, REMOTE = "us-east", "eu-west"
ENDPOINT = "10.4.9.7"


def multicluster_vars(namespace: str, **settings) -> dict:
    return {"istio_mesh_namespaces": [{"name": namespace, "create": True}], "istio_mesh_services": [],
            "istio_mesh_gateway": {"enabled": False},
            "istio_mesh_multicluster": {"enabled": True, "mesh_id": "shop-mesh", "cluster_name": PRIMARY,
                                        "network": "net-us-east",
                                        "remotes": [{"name": REMOTE, "network": "net-eu-west", "context": REMOTE}],
                                        **settings}}


@pytest.fixture(scope="module", autouse=True)
def istio_root(testbed):
    """What istioctl install leaves behind in both primaries: the root namespace."""
    for cluster in (PRIMARY, REMOTE):
        testbed.client(cluster).request("POST", "/api/v1/namespaces", allow=(409,),
                                        body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}})
    yield
    # The role's labels set now holds the root namespace (its network label): give the later
    # tests a root namespace no set holds, as istioctl leaves it.
    for cluster in (PRIMARY, REMOTE):
        client = testbed.client(cluster)
        client.request("DELETE", "/api/v1/namespaces/istio-system", allow=(404,))
        wait_for(lambda client=client: client.request("GET", "/api/v1/namespaces/istio-system", allow=(404,)) is None,
                 f"istio-system gone in {cluster}", 60)


@pytest.fixture
def unjoined(testbed):
    """No remote secret for eu-west in us-east and no reader account in eu-west, before and after."""
    grant = mesh_multicluster.grant(REMOTE, PRIMARY, "istio-system")

    def unjoin():
        federation.unjoin(testbed.client(REMOTE), testbed.client(PRIMARY), grant, check_mode=False)
    unjoin()
    yield
    unjoin()


@pytest.fixture
def remote_service(testbed, namespace_name):
    """A Service of eu-west with one endpoint (no selector: the EndpointSlice is ours)."""
    client = testbed.client(REMOTE)
    client.request("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": namespace_name}})
    client.request("POST", f"/api/v1/namespaces/{namespace_name}/services", body={
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "catalog", "namespace": namespace_name},
        "spec": {"ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}})
    client.request("POST", f"/apis/discovery.k8s.io/v1/namespaces/{namespace_name}/endpointslices", body={
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": "catalog-1", "namespace": namespace_name,
                     "labels": {"kubernetes.io/service-name": "catalog",
                                "endpointslice.kubernetes.io/managed-by": "tests.k8snet.fabric"}},
        "endpoints": [{"addresses": [ENDPOINT], "conditions": {"ready": True}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
    yield f"catalog.{namespace_name}.svc.cluster.local"
    client.request("DELETE", f"/api/v1/namespaces/{namespace_name}", allow=(404,))


class PilotDiscovery:
    """pilot-discovery against one testbed cluster, every port on loopback; stopped by its pid."""

    def __init__(self, testbed, cluster: str, workdir):
        self.workdir = workdir
        config = yaml.safe_load(testbed.kubeconfig.read_text())
        config["current-context"] = cluster
        self.kubeconfig = workdir / f"{cluster}.kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.http = free_port()
        ports = {"--httpAddr": self.http, "--grpcAddr": free_port(), "--secureGRPCAddr": free_port(),
                 "--httpsAddr": free_port(), "--monitoringAddr": free_port()}
        self.log = workdir / "pilot-discovery.log"
        self.proc = subprocess.Popen(
            [str(build.build_tool("pilot-discovery")), "discovery", "--kubeconfig", str(self.kubeconfig),
             "--clusterID", cluster, "--registries", "Kubernetes", "--ctrlz_port", str(free_port()),
             *[arg for flag, port in ports.items() for arg in (flag, f"127.0.0.1:{port}")]],
            cwd=workdir, stdout=self.log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "POD_NAMESPACE": "istio-system", "POD_NAME": "istiod-test", "PILOT_ENABLE_ANALYSIS": "false"})

    def debug(self, path: str):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/debug/{path}", timeout=5) as resp:
            return json.loads(resp.read() or b"null")

    def serving(self) -> bool:
        try:
            self.debug("registryz")
            return True
        except OSError:
            return False

    def endpoints(self, host: str) -> dict:
        """The endpoint addresses per cluster istiod holds for ``host`` (its endpoint shards)."""
        shards = (self.debug("endpointShardz") or {}).get(host) or {}
        out: dict = {}
        for per_namespace in shards.values():
            for key, endpoints in (per_namespace.get("Shards") or {}).items():
                out.setdefault(key.split("/")[-1], []).extend(sorted(a for e in endpoints or [] for a in e["Addresses"]))
        return out

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass


def test_pilot_discovery_lists_the_remote_clusters_endpoints_through_the_roles_remote_secret(
        testbed, tmp_path, namespace_name, unjoined, remote_service):
    pilot = PilotDiscovery(testbed, PRIMARY, tmp_path)
    try:
        wait_for(lambda: pilot.proc.poll() is not None or pilot.serving(),
                 "pilot-discovery serving its debug API", 90)
        assert pilot.proc.poll() is None, pilot.log.read_text()[-4000:]
        assert pilot.endpoints(remote_service) == {}, "eu-west is not part of the mesh yet"

        before = {cluster: testbed.audit_mark(cluster) for cluster in (PRIMARY, REMOTE)}
        checked = run_testbed_playbook(tmp_path, "mesh.yml", multicluster_vars(namespace_name), "--check", "--diff")
        assert checked.returncode == 0 and recap(checked.stdout)["changed"] > 0, checked.stdout[-4000:]
        assert testbed.writes(REMOTE, since=before[REMOTE]) == []
        assert testbed.client(PRIMARY).request(
            "GET", f"/api/v1/namespaces/istio-system/secrets/istio-remote-secret-{REMOTE}", allow=(404,)) is None

        first = run_testbed_playbook(tmp_path, "mesh.yml", multicluster_vars(namespace_name))
        assert first.returncode == 0, first.stdout[-4000:]
        secret = testbed.client(PRIMARY).request("GET", f"/api/v1/namespaces/istio-system/secrets/istio-remote-secret-{REMOTE}")
        assert secret["metadata"]["labels"]["istio/multiCluster"] == "true"
        kubeconfig = yaml.safe_load(base64.b64decode(secret["data"][REMOTE]))
        assert kubeconfig["users"][0]["user"]["token"] not in first.stdout, "the token reached the output"
        found = wait_for(lambda: pilot.endpoints(remote_service).get(REMOTE), "eu-west's endpoint in us-east's registry", 90)
        assert found == [ENDPOINT]
        # Istio learns each cluster's network from its root namespace's label.
        root = testbed.client(PRIMARY).request("GET", "/api/v1/namespaces/istio-system")
        assert root["metadata"]["labels"]["topology.istio.io/network"] == "net-us-east"

        # The reader is read-only: its token cannot write in eu-west.
        reader = testbed.client(REMOTE).with_token(kubeconfig["users"][0]["user"]["token"])
        try:
            refused = reader.request("POST", "/api/v1/namespaces", allow=(403,),
                                     body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"{namespace_name}-x"}})
            assert refused is None or refused.get("code") == 403 or refused.get("reason") == "Forbidden"
        finally:
            reader.close()

    finally:
        pilot.stop()
    # Stopped first: pilot-discovery runs as the same testbed user and writes its own state.
    mark = {cluster: testbed.audit_mark(cluster) for cluster in (PRIMARY, REMOTE)}
    again = run_testbed_playbook(tmp_path, "mesh.yml", multicluster_vars(namespace_name))
    assert recap(again.stdout)["changed"] == 0, again.stdout[-4000:]
    assert {cluster: testbed.writes(cluster, since=mark[cluster]) for cluster in mark} == {PRIMARY: [], REMOTE: []}

    # Taken out of the mesh: the remote secret here and the reader account there are gone.
    removed = run_testbed_playbook(tmp_path, "mesh.yml", multicluster_vars(
        namespace_name, remotes=[], removed=[{"name": REMOTE, "context": REMOTE}]))
    assert removed.returncode == 0 and recap(removed.stdout)["changed"] > 0, removed.stdout[-4000:]
    assert testbed.client(PRIMARY).request(
        "GET", f"/api/v1/namespaces/istio-system/secrets/istio-remote-secret-{REMOTE}", allow=(404,)) is None
    assert testbed.client(REMOTE).request(
        "GET", f"/api/v1/namespaces/istio-system/serviceaccounts/istio-reader-{PRIMARY}", allow=(404,)) is None
