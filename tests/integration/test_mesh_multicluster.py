"""istio_mesh_multicluster on two testbed clusters, proven by Istio's own control plane: the role
in apply mode gives us-east a remote secret for eu-west (a read-only account there, a bound
token), and pilot-discovery - istiod's discovery server from the pinned Istio module - run
against us-east lists eu-west's service and its endpoint in its registry. Without the remote
secret it does not. Each cluster's istiod signs with its own intermediate CA under the mesh's
one root (mesh_intermediate_ca's cacerts), so their certificates verify each other."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import urllib.request

import pytest
import yaml
from cryptography import x509

from tests.helpers import recap, run_playbook, run_testbed_playbook, wait_for, write_root_ca
from tests.netstubs import free_port
from tests.testbed import build

from ansible_collections.k8snet.fabric.plugins.module_utils import cluster_join
from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import istio_mesh_multicluster

pytestmark = pytest.mark.testbed
PRIMARY, REMOTE = "us-east", "eu-west"
ENDPOINT = "10.4.9.7"


@pytest.fixture(scope="module")
def mesh_root(tmp_path_factory) -> tuple[str, str]:
    """The mesh's root CA files, as the user keeps them beside the inventory."""
    return write_root_ca(tmp_path_factory.mktemp("mesh-pki"))


def multicluster_vars(namespace: str, root: tuple[str, str], **settings) -> dict:
    return {"istio_mesh_namespaces": [{"name": namespace, "create": True}], "istio_mesh_services": [],
            "istio_mesh_gateway": {"enabled": False},
            "istio_mesh_multicluster": {"enabled": True, "mesh_id": "shop-mesh", "cluster_name": PRIMARY,
                                        "network": "net-us-east",
                                        "remotes": [{"name": REMOTE, "network": "net-eu-west", "context": REMOTE}],
                                        "root_ca": {"cert_file": root[0], "key_file": root[1]}, **settings}}


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
    grant = istio_mesh_multicluster.grant(REMOTE, PRIMARY, "istio-system")

    def unjoin():
        cluster_join.unjoin(testbed.client(REMOTE), testbed.client(PRIMARY), grant, check_mode=False)
    unjoin()
    yield
    unjoin()


@pytest.fixture
def no_cacerts(testbed):
    """Neither cluster holds a cacerts Secret, before and after: istiod would sign with its own."""
    def clear():
        for cluster in (PRIMARY, REMOTE):
            testbed.client(cluster).request("DELETE", "/api/v1/namespaces/istio-system/secrets/cacerts", allow=(404,))
    clear()
    yield
    clear()


def cacerts(testbed, cluster: str) -> dict | None:
    """The cluster's cacerts files (PEM bytes by name), None when there is none."""
    secret = testbed.client(cluster).request("GET", "/api/v1/namespaces/istio-system/secrets/cacerts", allow=(404,))
    return {k: base64.b64decode(v) for k, v in secret["data"].items()} if secret else None


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

    def __init__(self, testbed, cluster: str, workdir, env: dict | None = None):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        config = yaml.safe_load(testbed.kubeconfig.read_text())
        config["current-context"] = cluster
        self.kubeconfig = workdir / f"{cluster}.kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.http, self.secure_grpc = free_port(), free_port()
        ports = {"--httpAddr": self.http, "--grpcAddr": free_port(), "--secureGRPCAddr": self.secure_grpc,
                 "--httpsAddr": free_port(), "--monitoringAddr": free_port()}
        self.log = workdir / "pilot-discovery.log"
        self.proc = subprocess.Popen(
            [str(build.build_tool("pilot-discovery")), "discovery", "--kubeconfig", str(self.kubeconfig),
             "--clusterID", cluster, "--registries", "Kubernetes", "--ctrlz_port", str(free_port()),
             *[arg for flag, port in ports.items() for arg in (flag, f"127.0.0.1:{port}")]],
            cwd=workdir, stdout=self.log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "POD_NAMESPACE": "istio-system", "POD_NAME": "istiod-test", "PILOT_ENABLE_ANALYSIS": "false",
                 **(env or {})})

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
        testbed, tmp_path, namespace_name, unjoined, remote_service, mesh_root, no_cacerts):
    pilot = PilotDiscovery(testbed, PRIMARY, tmp_path)
    try:
        wait_for(lambda: pilot.proc.poll() is not None or pilot.serving(),
                 "pilot-discovery serving its debug API", 90)
        assert pilot.proc.poll() is None, pilot.log.read_text()[-4000:]
        assert pilot.endpoints(remote_service) == {}, "eu-west is not part of the mesh yet"

        before = {cluster: testbed.audit_mark(cluster) for cluster in (PRIMARY, REMOTE)}
        checked = run_testbed_playbook(tmp_path, "mesh.yml", multicluster_vars(namespace_name, mesh_root), "--check", "--diff")
        assert checked.returncode == 0 and recap(checked.stdout)["changed"] > 0, checked.stdout[-4000:]
        assert testbed.writes(REMOTE, since=before[REMOTE]) == []
        assert testbed.client(PRIMARY).request(
            "GET", f"/api/v1/namespaces/istio-system/secrets/istio-remote-secret-{REMOTE}", allow=(404,)) is None
        assert cacerts(testbed, PRIMARY) is None, "check mode wrote the signing CA"

        first = run_testbed_playbook(tmp_path, "mesh.yml", multicluster_vars(namespace_name, mesh_root))
        assert first.returncode == 0, first.stdout[-4000:]
        secret = testbed.client(PRIMARY).request("GET", f"/api/v1/namespaces/istio-system/secrets/istio-remote-secret-{REMOTE}")
        assert secret["metadata"]["labels"]["istio/multiCluster"] == "true"
        kubeconfig = yaml.safe_load(base64.b64decode(secret["data"][REMOTE]))
        assert kubeconfig["users"][0]["user"]["token"] not in first.stdout, "the token reached the output"
        signing = cacerts(testbed, PRIMARY)
        assert signing["root-cert.pem"] == open(mesh_root[0], "rb").read()
        assert signing["ca-key.pem"].decode().strip().splitlines()[1] not in first.stdout, "the CA key reached the output"
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
    again = run_testbed_playbook(tmp_path, "mesh.yml", multicluster_vars(namespace_name, mesh_root))
    assert recap(again.stdout)["changed"] == 0, again.stdout[-4000:]
    assert {cluster: testbed.writes(cluster, since=mark[cluster]) for cluster in mark} == {PRIMARY: [], REMOTE: []}

    # Taken out of the mesh: the remote secret here and the reader account there are gone.
    removed = run_testbed_playbook(tmp_path, "mesh.yml", multicluster_vars(
        namespace_name, mesh_root, remotes=[], removed=[{"name": REMOTE, "context": REMOTE}]))
    assert removed.returncode == 0 and recap(removed.stdout)["changed"] > 0, removed.stdout[-4000:]
    assert testbed.client(PRIMARY).request(
        "GET", f"/api/v1/namespaces/istio-system/secrets/istio-remote-secret-{REMOTE}", allow=(404,)) is None
    assert testbed.client(REMOTE).request(
        "GET", f"/api/v1/namespaces/istio-system/serviceaccounts/istio-reader-{PRIMARY}", allow=(404,)) is None


def intermediate_ca(testbed, tmp_path, root: tuple[str, str], cluster: str, *args, **options) -> dict:
    """mesh_intermediate_ca once for ``cluster`` through ansible-playbook; its result."""
    out = tmp_path / f"ca-{cluster}.json"
    plays = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "signing CA", "k8snet.fabric.mesh_intermediate_ca": {
            "root_cert_path": root[0], "root_key_path": root[1], "cluster_name": cluster,
            "kubeconfig": str(testbed.kubeconfig), "context": cluster, **options},
         "register": "made", "ignore_errors": True},
        {"name": "keep the result", "ansible.builtin.copy": {"content": "{{ made | to_json }}", "dest": str(out)},
         "check_mode": False}]}]
    result = run_playbook(tmp_path, plays, *args)
    assert result.returncode == 0 and out.exists(), result.stdout[-3000:]
    assert "PRIVATE KEY" not in result.stdout + out.read_text()
    return json.loads(out.read_text())


def served_certificate(port: int, root_cert: str) -> x509.Certificate:
    """The certificate istiod serves on its secure gRPC port, after a handshake that verifies it
    up to ``root_cert`` (the chain it sends must lead there)."""
    context = ssl.create_default_context(cafile=root_cert)
    context.check_hostname = False
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw) as tls_socket:
            return x509.load_der_x509_certificate(tls_socket.getpeercert(binary_form=True))


def test_each_clusters_istiod_signs_with_its_own_intermediate_under_the_one_root(
        testbed, tmp_path, mesh_root, no_cacerts):
    root_pem = open(mesh_root[0], "rb").read()
    checked = intermediate_ca(testbed, tmp_path, mesh_root, PRIMARY, "--check")
    assert checked["changed"] and checked["ca"] == "issued" and cacerts(testbed, PRIMARY) is None, checked

    made = {cluster: intermediate_ca(testbed, tmp_path, mesh_root, cluster) for cluster in (PRIMARY, REMOTE)}
    assert all(m["changed"] and m["ca"] == "issued" for m in made.values()), made
    assert made[PRIMARY]["root_fingerprint_sha256"] == made[REMOTE]["root_fingerprint_sha256"]
    assert made[PRIMARY]["fingerprint_sha256"] != made[REMOTE]["fingerprint_sha256"]
    files = {cluster: cacerts(testbed, cluster) for cluster in (PRIMARY, REMOTE)}
    assert all(f["root-cert.pem"] == root_pem and f["cert-chain.pem"] == f["ca-cert.pem"] + root_pem
               for f in files.values())

    # istiod as Istio deploys it reads the cacerts Secret of its cluster (here fetched from the
    # API, as an external istiod does: USE_REMOTE_CERTS) and signs with that intermediate.
    pilots = {cluster: PilotDiscovery(testbed, cluster, tmp_path / cluster, env={
        "USE_REMOTE_CERTS": "true", "ROOT_CA_DIR": str(tmp_path / cluster / "cacerts")}) for cluster in (PRIMARY, REMOTE)}
    try:
        for cluster, pilot in pilots.items():
            wait_for(lambda pilot=pilot: pilot.proc.poll() is not None or pilot.serving(),
                     f"pilot-discovery of {cluster} serving", 90)
            assert pilot.proc.poll() is None, pilot.log.read_text()[-4000:]
            served = wait_for(lambda pilot=pilot: _served_or_none(pilot.secure_grpc, mesh_root[0]),
                              f"{cluster}'s istiod serving a certificate under the mesh's root", 60)
            intermediate = x509.load_pem_x509_certificate(files[cluster]["ca-cert.pem"])
            served.verify_directly_issued_by(intermediate)
            # Every namespace's workloads trust the one root (the ConfigMap istiod distributes).
            distributed = wait_for(lambda cluster=cluster: (testbed.client(cluster).request(
                "GET", "/api/v1/namespaces/default/configmaps/istio-ca-root-cert", allow=(404,)) or {}).get("data"),
                f"istio-ca-root-cert in {cluster}", 60)
            wait_for(lambda cluster=cluster: testbed.client(cluster).request(
                "GET", "/api/v1/namespaces/default/configmaps/istio-ca-root-cert")["data"]["root-cert.pem"].encode() == root_pem,
                f"the mesh's root in {cluster}'s istio-ca-root-cert (holds {distributed['root-cert.pem'][:60]!r})", 60)
    finally:
        for pilot in pilots.values():
            pilot.stop()

    # Kept while good: the second run writes nothing.
    mark = testbed.audit_mark(PRIMARY)
    again = intermediate_ca(testbed, tmp_path, mesh_root, PRIMARY)
    assert not again["changed"] and again["ca"] == "kept" and again["reason"] == "", again
    assert testbed.writes(PRIMARY, since=mark) == []

    # Near its end: renewed under the same root; check mode only says so.
    testbed.client(REMOTE).request("DELETE", "/api/v1/namespaces/istio-system/secrets/cacerts")
    brief = intermediate_ca(testbed, tmp_path, mesh_root, REMOTE, days=20, renew_days=10)
    assert brief["ca"] == "issued" and brief["days_left"] in (19, 20), brief
    version = testbed.client(REMOTE).request("GET", "/api/v1/namespaces/istio-system/secrets/cacerts")["metadata"]["resourceVersion"]
    would = intermediate_ca(testbed, tmp_path, mesh_root, REMOTE, "--check")
    assert would["changed"] and would["ca"] == "renewed", would
    assert would["reason"] == f"expires in {brief['days_left']} days, fewer than renew_days 60"
    assert testbed.client(REMOTE).request(
        "GET", "/api/v1/namespaces/istio-system/secrets/cacerts")["metadata"]["resourceVersion"] == version
    renewed = intermediate_ca(testbed, tmp_path, mesh_root, REMOTE)
    assert renewed["changed"] and renewed["ca"] == "renewed" and renewed["days_left"] in (729, 730), renewed
    assert x509.load_pem_x509_certificate(cacerts(testbed, REMOTE)["ca-cert.pem"]) \
        .verify_directly_issued_by(x509.load_pem_x509_certificate(root_pem)) is None

    # Another root is refused and nothing is written: moving a mesh's root is a migration.
    other = write_root_ca(tmp_path, name="other-root")
    mark = testbed.audit_mark(REMOTE)
    refused = intermediate_ca(testbed, tmp_path, other, REMOTE)
    assert refused["failed"] and "its root-cert.pem is not the root in" in refused["msg"], refused
    assert testbed.writes(REMOTE, since=mark) == []
    assert cacerts(testbed, REMOTE)["root-cert.pem"] == root_pem

    # No root namespace yet (before istioctl install): dry-run in it, then made as Istio's steps make it.
    client, fresh = testbed.client(REMOTE), "istio-trust-fresh"
    try:
        would = intermediate_ca(testbed, tmp_path, mesh_root, REMOTE, "--check", namespace=fresh)
        assert would["changed"] and would["ca"] == "issued", would
        assert client.request("GET", f"/api/v1/namespaces/{fresh}", allow=(404,)) is None, "check mode made the namespace"
        made = intermediate_ca(testbed, tmp_path, mesh_root, REMOTE, namespace=fresh)
        assert made["changed"] and made["secret"] == f"{fresh}/cacerts", made
        assert client.request("GET", f"/api/v1/namespaces/{fresh}/secrets/cacerts")["data"]["root-cert.pem"]
    finally:
        client.request("DELETE", f"/api/v1/namespaces/{fresh}", allow=(404,))


def _served_or_none(port: int, root_cert: str) -> x509.Certificate | None:
    try:
        return served_certificate(port, root_cert)
    except (OSError, ssl.SSLError):
        return None
