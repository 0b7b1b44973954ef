"""istio_mesh_multicluster's pure parts: the checks, the install file, the objects, the grant."""

from __future__ import annotations

import base64

import yaml

from ansible_collections.k8snet.fabric.plugins.filter.istio_mesh import istio_mesh_plan
from ansible_collections.k8snet.fabric.plugins.module_utils import cluster_join
from ansible_collections.k8snet.fabric.plugins.module_utils.scenarios import istio_mesh_multicluster
from tests.unit.test_mesh import spec

SETTINGS = {"enabled": True, "mesh_id": "shop-mesh", "cluster_name": "us-east", "network": "net-us-east",
            "remotes": [{"name": "eu-west", "network": "net-eu-west", "context": "eu-west"}],
            "root_ca": {"cert_file": "pki/mesh-root.crt", "key_file": "pki/mesh-root.key"}}


def test_the_install_file_joins_the_mesh_with_an_east_west_gateway_on_the_clusters_network():
    plan = istio_mesh_plan(spec(multicluster=SETTINGS, context="us-east"))
    assert plan["problems"] == []
    install = plan["operator"]["spec"]
    assert install["values"]["global"]["meshID"] == "shop-mesh"
    assert install["values"]["global"]["multiCluster"] == {"clusterName": "us-east"}
    assert install["values"]["global"]["network"] == "net-us-east"
    assert install["meshConfig"]["defaultConfig"] == {"proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true"}}
    east_west = install["components"]["ingressGateways"][-1]
    assert east_west["label"]["topology.istio.io/network"] == "net-us-east"
    assert east_west["k8s"]["env"] == [{"name": "ISTIO_META_REQUESTED_NETWORK_VIEW", "value": "net-us-east"}]
    cross = next(o for o in plan["objects"] if o["metadata"]["name"] == "cross-network-gateway")
    assert cross["spec"]["servers"][0]["tls"] == {"mode": "AUTO_PASSTHROUGH"}
    root = next(o for o in plan["labelled_namespaces"] if o["metadata"]["name"] == "istio-system")
    assert root["metadata"]["labels"] == {"topology.istio.io/network": "net-us-east"}
    assert plan["multicluster"]["remotes"] == [{"name": "eu-west", "network": "net-eu-west", "context": "eu-west",
                                                "kubeconfig": "", "server": ""}]
    assert plan["multicluster"]["root_ca"] == {"cert_file": "pki/mesh-root.crt", "key_file": "pki/mesh-root.key",
                                               "days": 730, "renew_days": 60}


def test_without_multicluster_nothing_of_it_is_written():
    plan = istio_mesh_plan(spec())
    assert "meshID" not in plan["operator"]["spec"]["values"]["global"]
    assert not any(o["metadata"]["name"] == "cross-network-gateway" for o in plan["objects"])
    assert plan["multicluster"] == {"cluster_name": "", "remotes": [], "removed": [], "root_ca": None}


def test_bad_settings_are_named_before_anything_is_written():
    bad = {**SETTINGS, "mesh_id": "", "network": "Net_1",
           "remotes": [{"name": "us-east", "network": "net-eu-west", "context": "eu-west", "server": "http://eu:6443"}]}
    found = istio_mesh_plan(spec(multicluster=bad))["problems"]
    assert any(p.startswith("istio_mesh_multicluster.mesh_id: a multi-cluster mesh needs it") for p in found)
    assert any(p.startswith("istio_mesh_multicluster.network: 'Net_1'") for p in found)
    assert "istio_mesh_multicluster.remotes[0].name: 'us-east' is this cluster or another remote" in found
    assert any(p.startswith("istio_mesh_multicluster.remotes[0].server: 'http://eu:6443' is not an https:// URL") for p in found)
    assert any(p.startswith("istio_mesh_context: a multi-cluster mesh names this cluster's context") for p in found)
    twice = istio_mesh_plan(spec(multicluster={**SETTINGS, "removed": [{"name": "eu-west", "context": "eu-west"}]},
                                 context="us-east"))["problems"]
    assert twice == ["istio_mesh_multicluster.removed[0].name: 'eu-west' is also this cluster or one of remotes"]
    missing = istio_mesh_plan(spec(multicluster={**SETTINGS, "remotes": [{"name": "eu-west", "network": "n"}]}))
    assert any("remotes[0]" in p and "context" in p for p in missing["problems"])


def test_one_root_of_trust_is_asked_for_unless_the_users_pki_writes_cacerts():
    no_root = istio_mesh_plan(spec(multicluster={**SETTINGS, "root_ca": {"renew_days": 800}}, context="us-east"))
    assert [p.split(":")[0] for p in no_root["problems"]] == [
        "istio_mesh_multicluster.root_ca.cert_file", "istio_mesh_multicluster.root_ca.key_file",
        "istio_mesh_multicluster.root_ca.renew_days"]
    assert "800 must be above 0 and fewer than days (730)" in no_root["problems"][2]
    external = istio_mesh_plan(spec(multicluster={**SETTINGS, "root_ca": {"external": True}}, context="us-east"))
    assert external["problems"] == [] and external["multicluster"]["root_ca"] is None


def test_each_primary_gets_a_read_only_account_of_its_own_and_a_remote_secret_istiod_reads():
    grant = istio_mesh_multicluster.grant("eu-west", "us-east", "istio-system")
    account, role, binding = cluster_join.account_objects(grant)
    assert account["metadata"] == {"name": "istio-reader-us-east", "namespace": "istio-system"}
    verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
    assert verbs == {"get", "list", "watch", "create"}
    # create only where reading needs it (reviews), never a Secret and never a write elsewhere
    assert all(rule["resources"] in (["tokenreviews"], ["subjectaccessreviews"])
               for rule in role["rules"] if "create" in rule["verbs"])
    assert not any("secrets" in rule["resources"] for rule in role["rules"])
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "istio-reader-us-east", "namespace": "istio-system"}]
    [secret] = grant.host_objects("https://eu-west:6443", "PEM", "the-token")
    assert secret["metadata"]["labels"] == {"istio/multiCluster": "true"}
    assert secret["metadata"]["annotations"] == {"networking.istio.io/cluster": "eu-west"}
    kubeconfig = yaml.safe_load(base64.b64decode(secret["data"]["eu-west"]))
    assert kubeconfig["clusters"][0]["cluster"] == {"server": "https://eu-west:6443",
                                                    "certificate-authority-data": base64.b64encode(b"PEM").decode()}
    assert kubeconfig["users"][0]["user"] == {"token": "the-token"}
    assert grant.namespace_set is None, "the root namespace is istioctl's"


def test_cacerts_holds_the_intermediate_its_key_the_root_and_the_chain_up_to_it():
    secret = istio_mesh_multicluster.cacerts_secret("istio-system", b"INTERMEDIATE\n", b"KEY\n", b"ROOT\n")
    assert secret["metadata"] == {"name": "cacerts", "namespace": "istio-system"}
    files = {name: base64.b64decode(value) for name, value in secret["data"].items()}
    assert files == {"ca-cert.pem": b"INTERMEDIATE\n", "ca-key.pem": b"KEY\n", "root-cert.pem": b"ROOT\n",
                     "cert-chain.pem": b"INTERMEDIATE\nROOT\n"}
