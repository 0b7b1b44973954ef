"""Least privilege per role: each apply-mode role runs as identities bound to exactly the RBAC it
ships (roles/<role>/files/rbac.yml): it converges and re-runs with no change; with one API group's
rules taken away it fails before writing anything, naming the verb, the resource and the file.
The edge site's cluster part is proven in test_edge_cluster.py (it needs the site's add-ons)."""

from __future__ import annotations

import sys

import pytest
import yaml

from tests.helpers import REPO, run_playbook
from tests.integration.test_hybrid_dns import CLUSTER
from tests.integration.test_istio_mesh import mesh_vars
from tests.integration.test_kubefed import HOST, MEMBER, federation
from tests.rbac import assert_least_privilege, token_of

pytestmark = pytest.mark.testbed


def runner_for(playbook: str, extra: dict):
    """A runner of one of playbooks/ on inventories/testbed with the given kubeconfig."""
    plays = yaml.safe_load((REPO / "playbooks" / playbook).read_text())

    def run(kubeconfig, folder):
        folder.mkdir(parents=True, exist_ok=True)
        return run_playbook(folder, plays, inventory=str(REPO / "inventories" / "testbed"), extra_vars={
            "fabric_testbed_kubeconfig": str(kubeconfig), "fabric_build_dir": str(folder / "build"), **extra})
    return run


def test_hybrid_dns(testbed, tmp_path, namespace_name):
    apps = [{"name": "hybrid-app", "namespace": namespace_name, "port": 443, "create_namespace": True}]
    assert_least_privilege(testbed, tmp_path, "hybrid_dns", [CLUSTER], runner_for("hybrid.yml", {"hybrid_dns_apps": apps}),
                           take_away="externaldns.k8s.io", resource="dnsendpoints")


def test_istio_mesh(testbed, tmp_path, namespace_name):
    testbed.client(CLUSTER).request("POST", "/api/v1/namespaces", allow=(409,),  # what istioctl install leaves
                                    body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}})
    assert_least_privilege(testbed, tmp_path, "istio_mesh", [CLUSTER], runner_for("mesh.yml", mesh_vars(namespace_name)),
                           take_away="telemetry.istio.io", resource="telemetries")


def test_kubefed_on_host_and_member(testbed, tmp_path, namespace_name):
    """The host's part of a join (the KubeFedCluster) is refused before the member is touched;
    the member's grant for the host is the federated types, not everything."""
    assert_least_privilege(testbed, tmp_path, "kubefed", [HOST, MEMBER], runner_for("multicluster.yml", federation(namespace_name)),
                           take_away="core.kubefed.io", resource="kubefedclusters")
    granted = testbed.client(MEMBER).request(
        "GET", f"/apis/rbac.authorization.k8s.io/v1/clusterroles/kubefed-controller-manager:{MEMBER}-{HOST}")
    groups = {g for rule in granted["rules"] for g in rule.get("apiGroups", [])}
    assert "*" not in groups and groups == {"", "apps", "batch", "networking.k8s.io"}, granted["rules"]


def test_ecommerce_net_with_awx_credential_variables(testbed, tmp_path, namespace_name):
    """The same for ecommerce_net, connected the way an AWX Kubernetes credential connects: only
    K8S_AUTH_* variables (the bound account's token), no kubeconfig."""
    testbed.client(CLUSTER).request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace_name}})
    plays = yaml.safe_load((REPO / "playbooks" / "ecommerce.yml").read_text())

    def run(kubeconfig, folder):
        home = folder / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {"HOME": str(home), "KUBECONFIG": "", "K8S_AUTH_HOST": testbed._state()["servers"][CLUSTER],
               "K8S_AUTH_API_KEY": token_of(kubeconfig, CLUSTER), "K8S_AUTH_SSL_CA_CERT": str(testbed.run_dir / "pki" / "ca.crt")}
        inventory = folder / "inventory.yml"
        inventory.write_text(yaml.safe_dump({"all": {"vars": {"ansible_connection": "local",
                                                              "ansible_python_interpreter": sys.executable},
                                                     "children": {"clusters": {"hosts": {CLUSTER: {}}}}}}))
        extra = {"fabric_mode": "apply", "fabric_build_dir": str(folder / "build"),
                 "ecommerce_net_set_namespace": namespace_name,
                 "ecommerce_net_environments": [{"name": "production", "namespace": namespace_name}]}
        return run_playbook(folder, plays, extra_vars=extra, inventory=str(inventory), env=env)

    assert_least_privilege(testbed, tmp_path, "ecommerce_net", [CLUSTER], run,
                           take_away="monitoring.coreos.com", resource="servicemonitors")
